"""Protocol P2 (candidate ranking) and P1 on the real data: candidates, seeds, gathering."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recnotes.data import leave_one_out, load_movielens, random_split
from recnotes.evaluate import evaluate_candidates, evaluate_full, sample_candidates


@pytest.fixture(scope="module")
def split():
    return leave_one_out(load_movielens("ml-100k"))


class Seeded:
    """Full scores that depend only on the history (so any batching gives the same rows)."""

    name = "Seeded"

    def __init__(self, n_items: int, ties: bool = False):
        self.n_items, self.ties = n_items, ties

    def score(self, histories):
        rows = []
        for h in histories:
            g = torch.Generator().manual_seed(int(np.sum(h)) * 7919 + len(h))
            r = torch.rand(self.n_items + 1, generator=g)
            rows.append(torch.floor(r * 4) if self.ties else r)
        return torch.stack(rows)


class CandidatesOnly(Seeded):
    """A model that can only score candidates (like an LLM ranker)."""

    name = "CandidatesOnly"

    def score_candidates(self, histories, candidates):
        full = Seeded.score(self, histories)
        return full.gather(1, torch.from_numpy(np.asarray(candidates)))

    def score(self, histories):  # must not be used when score_candidates exists
        raise AssertionError("score called although score_candidates exists")


def test_candidates_are_unseen_seeded_and_hold_the_target(split):
    cands = sample_candidates(split, n_users=200, n_negatives=19, seed=5)
    again = sample_candidates(split, n_users=200, n_negatives=19, seed=5)
    other = sample_candidates(split, n_users=200, n_negatives=19, seed=6)
    assert np.array_equal(cands.users, again.users) and np.array_equal(cands.items, again.items)
    assert np.array_equal(cands.target_pos, again.target_pos)
    assert not np.array_equal(cands.items, other.items)
    assert cands.items.shape == (200, 20)
    assert np.all(np.diff(cands.users) > 0)  # ascending, distinct
    seqs = split.data.sequences()
    for row, u in enumerate(cands.users):
        items = cands.items[row]
        assert len(set(items.tolist())) == 20
        assert items[cands.target_pos[row]] == split.test[u]
        negatives = np.delete(items, cands.target_pos[row])
        assert not set(negatives.tolist()) & set(seqs[u].tolist())  # nothing the user ever saw
        assert not set(negatives.tolist()) & set(split.histories("test")[u].tolist())
        assert negatives.min() >= 1 and negatives.max() <= split.n_items
    # the target is not always in the same slot
    assert len(np.unique(cands.target_pos)) > 5


def test_p2_ranks_match_brute_force_and_both_scoring_paths(split):
    cands = sample_candidates(split, n_users=50, seed=1)
    model = Seeded(split.n_items, ties=True)
    res = evaluate_candidates(model, split, cands, ks=(1, 5, 10), batch_size=16)
    hist = split.histories("test")
    for row, u in enumerate(cands.users):
        s = model.score([hist[u]])[0].numpy()[cands.items[row]]
        t = cands.target_pos[row]
        assert res.ranks[row] == sum(1 for j in range(20) if j != t and s[j] >= s[t])
    via_candidates = evaluate_candidates(CandidatesOnly(split.n_items, ties=True), split, cands)
    assert np.array_equal(res.ranks, via_candidates.ranks)
    assert res.protocol == "P2" and res.topk is None and list(res.per_user.index) == list(cands.users)
    assert res.per_user["HR@10"].mean() == pytest.approx(np.mean(res.ranks < 10))


def test_p2_bad_input(split):
    cands = sample_candidates(split, n_users=5)
    with pytest.raises(ValueError, match="K=21 is larger"):
        evaluate_candidates(Seeded(split.n_items), split, cands, ks=(1, 21))
    with pytest.raises(ValueError, match="sampled for stage 'test', not 'valid'"):
        evaluate_candidates(Seeded(split.n_items), split, cands, stage="valid")
    with pytest.raises(ValueError, match="different split"):
        evaluate_candidates(Seeded(split.n_items), random_split(split.data, seed=0), cands)
    with pytest.raises(ValueError, match="fewer than n_negatives"):
        sample_candidates(split, n_users=3, n_negatives=split.n_items)

    class Wrong:
        def score_candidates(self, histories, candidates):
            return np.zeros((len(histories), 3))

    with pytest.raises(ValueError, match=r"Wrong.score_candidates returned scores of shape \(5, 3\)"):
        evaluate_candidates(Wrong(), split, cands)


def test_p1_on_ml100k_batching_and_subsets_agree(split):
    model = Seeded(split.n_items, ties=True)
    full = evaluate_full(model, split, batch_size=1000)
    small = evaluate_full(model, split, batch_size=37)
    assert np.array_equal(full.ranks, small.ranks) and np.array_equal(full.topk, small.topk)
    users = np.array([900, 3, 17, 3])
    sub = evaluate_full(model, split, users=users)
    assert sub.users.tolist() == [3, 17, 900]
    assert np.array_equal(sub.ranks, full.ranks[[3, 17, 900]])
    unmasked = evaluate_full(model, split, mask_seen=False, users=users)
    assert np.all(unmasked.ranks >= sub.ranks)  # seen items compete again
    assert full.n_users == 943 and full.users_per_second > 0
    summary = full.summary(n_bootstrap=200)
    row = summary.set_index(["metric", "k"]).loc[("NDCG", 10)]
    assert row.value == pytest.approx(np.mean(np.where(full.ranks < 10, 1 / np.log2(full.ranks + 2), 0)))
    assert row.ci_low <= row.value <= row.ci_high and row.n_users == 943


def test_p1_on_the_scores_device_with_numpy_scores(split):
    class NumpyScores:
        def score(self, histories):
            return np.tile(np.arange(split.n_items + 1, dtype=np.float64), (len(histories), 1))

    res = evaluate_full(NumpyScores(), split, users=np.arange(10), device="cpu")
    assert res.model == "NumpyScores"
    hist = split.histories("test")
    for u in range(10):  # higher id = higher score: rank = unseen items with a larger id
        t = split.test[u]
        assert res.ranks[u] == sum(1 for j in range(t + 1, split.n_items + 1) if j not in set(hist[u]))
