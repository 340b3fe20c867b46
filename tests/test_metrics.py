"""P1 ranks and metrics against brute-force per-user Python references (ties included)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from recnotes.data import Interactions
from recnotes.data.splits import Split
from recnotes.evaluate import evaluate_full
from recnotes.evaluate.metrics import beyond_accuracy


class Fixed:
    """Returns pre-set score rows, in the order users are asked for (ascending ids)."""

    name = "Fixed"

    def __init__(self, scores: np.ndarray, users: np.ndarray | None = None):
        self.scores, self.order, self.pos = scores, users, 0

    def score(self, histories):
        rows = np.arange(self.pos, self.pos + len(histories))
        self.pos += len(histories)
        users = rows if self.order is None else self.order[rows]
        return torch.from_numpy(self.scores[users])


def make_split(train: list[list[int]], valid: list[int], test: list[int], n_items: int) -> Split:
    """A Split built directly from lists (items may repeat, targets may be re-consumed)."""
    rows = [(0, i, 0) for i in range(1, n_items + 1)]  # makes every item 1..n_items exist
    data = Interactions.from_frame(pd.DataFrame(rows, columns=["user", "item", "timestamp"]))
    return Split(data, [np.array(t, np.int64) for t in train], np.array(valid, np.int64),
                 np.array(test, np.int64), "loo")


def brute_rank(row: np.ndarray, target: int, history: set[int], mask_seen: bool) -> int:
    """Pessimistic rank: other real, unmasked items with score >= the target's score."""
    excluded = {0} | (history if mask_seen else set())
    return sum(1 for j in range(len(row))
               if j != target and j not in excluded and row[j] >= row[target])


def brute_metrics(rank: int, k: int) -> dict[str, float]:
    return {f"HR@{k}": float(rank < k),
            f"NDCG@{k}": 1 / math.log2(rank + 2) if rank < k else 0.0,
            f"MRR@{k}": 1 / (rank + 1) if rank < k else 0.0}


@st.composite
def cases(draw):
    n_items = draw(st.integers(3, 12))
    n_users = draw(st.integers(1, 6))
    item = st.integers(1, n_items)
    train = [draw(st.lists(item, max_size=n_items)) for _ in range(n_users)]
    valid = [draw(item) for _ in range(n_users)]
    test = [draw(item) for _ in range(n_users)]
    # Few distinct values so that ties are common; -inf and +inf appear too.
    values = st.sampled_from([0.0, 1.0, 2.0, 3.0, -np.inf, np.inf])
    scores = np.array([[draw(values) for _ in range(n_items + 1)] for _ in range(n_users)])
    return make_split(train, valid, test, n_items), scores


@settings(max_examples=80, deadline=None)
@given(cases(), st.booleans(), st.sampled_from(["valid", "test"]), st.integers(1, 4))
def test_ranks_and_metrics_match_brute_force(case, mask_seen, stage, batch_size):
    split, scores = case
    ks = tuple(k for k in (1, 2, 3) if k <= split.n_items)
    res = evaluate_full(Fixed(scores), split, stage=stage, ks=ks, mask_seen=mask_seen,
                        batch_size=batch_size)
    hist, targets = split.histories(stage), split.targets(stage)
    for u in range(split.n_users):
        rank = brute_rank(scores[u], int(targets[u]), set(hist[u].tolist()), mask_seen)
        assert res.ranks[u] == rank
        expected = {}
        for k in ks:
            expected.update(brute_metrics(rank, k))
        for col, value in expected.items():
            assert res.per_user.loc[u, col] == pytest.approx(value)


@settings(max_examples=60, deadline=None)
@given(cases(), st.randoms(use_true_random=False))
def test_permuting_item_ids_does_not_change_metrics(case, rnd):
    split, scores = case
    n = split.n_items
    perm = np.concatenate([[0], 1 + np.array(rnd.sample(range(n), n))])  # item i -> perm[i]
    moved = Split(split.data, [perm[t] for t in split.train], perm[split.valid], perm[split.test], "loo")
    moved_scores = np.empty_like(scores)
    moved_scores[:, perm] = scores
    a = evaluate_full(Fixed(scores), split, ks=(1, 2))
    b = evaluate_full(Fixed(moved_scores), moved, ks=(1, 2))
    assert np.array_equal(a.ranks, b.ranks)
    pd.testing.assert_frame_equal(a.per_user, b.per_user)


@settings(max_examples=60, deadline=None)
@given(cases())
def test_perfect_scorer_scores_one_and_a_last_scorer_zero(case):
    split, _ = case
    n, users = split.n_items, np.arange(split.n_users)
    perfect = np.zeros((split.n_users, n + 1))
    perfect[users, split.test] = 1.0
    res = evaluate_full(Fixed(perfect), split, ks=(1,))
    assert (res.per_user[["HR@1", "NDCG@1", "MRR@1"]].to_numpy() == 1).all()

    for low in (-1.0, -np.inf):  # strictly last, also when the target's score is -inf
        last = np.ones((split.n_users, n + 1))
        last[users, split.test] = low
        res = evaluate_full(Fixed(last), split, ks=(1,))
        for u in users:
            others = set(range(1, n + 1)) - set(split.histories("test")[u].tolist()) - {split.test[u]}
            assert res.ranks[u] == len(others)
            if others:
                assert res.per_user.loc[u, "HR@1"] == 0 and res.per_user.loc[u, "NDCG@1"] == 0


def test_constant_scorer_is_ranked_last_not_first():
    split = make_split([[1, 2], [3]], [3, 4], [5, 6], n_items=6)
    res = evaluate_full(Fixed(np.zeros((2, 7))), split, ks=(1, 2))
    assert res.ranks.tolist() == [6 - 3 - 1, 6 - 2 - 1]  # every unmasked other item ties: counted
    assert res.per_user["HR@2"].sum() == 0  # a perfect-looking constant scorer would get 1


def test_topk_matches_sorting_on_distinct_scores():
    rng = np.random.default_rng(0)
    train = [list(rng.choice(np.arange(1, 31), 5, replace=False)) for _ in range(7)]
    split = make_split(train, [int(rng.integers(1, 31)) for _ in range(7)],
                       [int(rng.integers(1, 31)) for _ in range(7)], n_items=30)
    scores = rng.permutation(7 * 31).reshape(7, 31).astype(np.float32)  # no ties
    res = evaluate_full(Fixed(scores), split, ks=(1, 5, 10), batch_size=3)
    for u in range(7):
        seen = set(split.histories("test")[u].tolist()) - {split.test[u]}
        order = sorted((j for j in range(1, 31) if j not in seen), key=lambda j: -scores[u, j])
        assert res.topk[u].tolist() == order[:10]


def test_beyond_accuracy_against_plain_python():
    rng = np.random.default_rng(1)
    n_items, n_users = 12, 9
    topk = rng.integers(0, n_items + 1, size=(n_users, 4))  # 0 = empty slot
    popularity = np.concatenate([[0], rng.integers(0, 6, n_items)])
    table = beyond_accuracy(topk, popularity, n_users, ks=(2, 4)).set_index(["metric", "k"])["value"]
    for k in (2, 4):
        rec = [int(i) for row in topk for i in row[:k] if i > 0]
        assert table["coverage", k] == pytest.approx(len(set(rec)) / n_items)
        assert table["avg_popularity", k] == pytest.approx(sum(popularity[i] for i in rec) / len(rec))
        nov = [-math.log2(max(popularity[i], 1) / n_users) for i in rec]
        assert table["novelty", k] == pytest.approx(sum(nov) / len(nov))
        x = [rec.count(i) for i in range(1, n_items + 1)]  # exposure of every item
        mad = sum(abs(a - b) for a in x for b in x) / n_items ** 2  # Gini = MAD / (2 mean)
        assert table["gini", k] == pytest.approx(mad / (2 * np.mean(x)))


def test_bad_input_raises_clear_errors():
    split = make_split([[1], [2]], [3, 4], [5, 1], n_items=5)
    with pytest.raises(ValueError, match=r"shape \(2, 5\), expected \(2, 6\)"):
        evaluate_full(Fixed(np.zeros((2, 5))), split, ks=(1,))
    with pytest.raises(ValueError, match="K=6 is larger than the number of items"):
        evaluate_full(Fixed(np.zeros((2, 6))), split, ks=(1, 6))
    with pytest.raises(ValueError, match="K must be >= 1"):
        evaluate_full(Fixed(np.zeros((2, 6))), split, ks=(0,))
    bad = np.zeros((2, 6))
    bad[1, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        evaluate_full(Fixed(bad), split, ks=(1,))
    with pytest.raises(ValueError, match="user ids must be"):
        evaluate_full(Fixed(np.zeros((2, 6))), split, ks=(1,), users=np.array([5]))
