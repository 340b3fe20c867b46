"""Metrics by segment (history length, head or tail target), against brute-force references."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from recnotes.data import Interactions, leave_one_out
from recnotes.evaluate import (bootstrap_ci, evaluate_full, head_items, history_segments, item_popularity,
                               paired_test, segment_table, segment_winners, target_segments,
                               RecentItems)
from recnotes.models import EASE, Popularity


@pytest.fixture(scope="module")
def split():
    rng = np.random.default_rng(0)
    rows = []
    for u in range(60):
        n = int(rng.integers(3, 40))
        # skewed item popularity: low ids are popular
        items = rng.choice(np.arange(1, 81), size=n, replace=False, p=np.linspace(2, 0.1, 80) / np.linspace(2, 0.1, 80).sum())
        rows += [(u, int(i), t) for t, i in enumerate(items)]
    frame = pd.DataFrame(rows, columns=["user", "item", "timestamp"])
    return leave_one_out(Interactions.from_frame(frame))


@pytest.fixture(scope="module")
def results(split):
    models = {"Popularity": Popularity().fit(split), "EASE": EASE(l2=10.0).fit(split)}
    return {n: evaluate_full(m, split, stage="test", ks=(10,)) for n, m in models.items()}


def test_history_terciles(split):
    seg = history_segments(split)
    lengths = np.array([len(h) for h in split.histories("test")])
    q1, q2 = np.quantile(lengths, [1 / 3, 2 / 3])
    want = np.where(lengths <= q1, "short", np.where(lengths <= q2, "medium", "long"))
    assert list(seg.astype(str)) == list(want)
    assert list(seg.cat.categories) == ["short", "medium", "long"]
    assert seg.attrs["edges"] == [q1, q2]
    # every user with the same length is in the same segment
    assert pd.DataFrame({"n": lengths, "s": seg.astype(str)}).groupby("n")["s"].nunique().max() == 1


def test_history_fixed_bins_and_labels(split):
    lengths = np.array([len(h) for h in split.histories("test")])
    seg = history_segments(split, edges=[10, 20])
    lo = lengths.min()
    assert list(seg.cat.categories) == [f"{lo}-10", "11-20", ">20"]
    for n, s in zip(lengths, seg.astype(str)):
        assert s == (f"{lo}-10" if n <= 10 else "11-20" if n <= 20 else ">20")
    with pytest.raises(ValueError, match="increasing"):
        history_segments(split, edges=[20, 10])
    with pytest.raises(ValueError, match="label"):
        history_segments(split, edges=[10], labels=["a", "b", "c"])


def test_head_items_brute_force():
    pop = np.array([0, 5, 9, 9, 1, 0, 7, 3, 2, 9, 4])  # index 0 is padding
    head = head_items(pop, share=0.2)  # ceil(0.2 * 10) = 2 items
    assert head.tolist() == [False, False, True, True] + [False] * 7  # ties: smaller id first
    head = head_items(pop, share=0.35)  # 4 items: the three 9s and the 7
    assert set(np.flatnonzero(head)) == {2, 3, 9, 6}
    assert not head_items(np.zeros(5, int), 0.5)[0]
    with pytest.raises(ValueError):
        head_items(pop, share=1.0)


def test_target_segments(split):
    seg = target_segments(split, head_share=0.2)
    pop = np.zeros(split.n_items + 1, int)
    for h in split.histories("test"):
        for i in h:
            pop[i] += 1
    assert np.array_equal(pop, item_popularity(split))
    n_head = int(np.ceil(0.2 * split.n_items))
    threshold = np.sort(pop[1:])[::-1][n_head - 1]
    for user, s in seg.items():
        p = pop[split.test[user]]
        if p > threshold:
            assert s == "head"
        elif p < threshold:
            assert s == "tail"
    assert seg.attrs["n_head"] == n_head
    head = head_items(pop, 0.2)
    assert seg.attrs["head_interaction_share"] == pytest.approx(pop[head].sum() / pop.sum())


def test_recent_items_scores_the_last_n_and_keeps_the_masking(split):
    ease = EASE(l2=10.0).fit(split)
    hist = split.histories("test")
    short = RecentItems(ease, 3)
    assert short.name == "EASE[last 3]"
    assert torch.equal(short.score(hist[:5]), ease.score([h[-3:] for h in hist[:5]]))
    full = evaluate_full(RecentItems(ease, 10_000), split, ks=(10,))
    assert np.array_equal(full.ranks, evaluate_full(ease, split, ks=(10,)).ranks)
    one = evaluate_full(RecentItems(ease, 1), split, ks=(10,))
    # seen items stay masked: no top-10 list contains an item of the user's full history
    assert not any(np.isin(top, h).any() for top, h in zip(one.topk, hist))
    with pytest.raises(ValueError):
        RecentItems(ease, 0)


def test_segment_table_matches_the_users_of_each_segment(split, results):
    seg = history_segments(split)
    table = segment_table(results, seg, metric="NDCG@10", n_boot=200, seed=3)
    assert list(table["segment"].unique()) == ["short", "medium", "long"]
    for row in table.itertuples():
        users = seg.index[seg == row.segment]
        values = results[row.model].per_user.loc[users, "NDCG@10"]
        assert row.n_users == len(users)
        assert (row.value, row.ci_low, row.ci_high) == pytest.approx(bootstrap_ci(values.to_numpy(), 200, 3))
    assert table.groupby("segment", observed=True)["n_users"].first().sum() == split.n_users
    with pytest.raises(ValueError, match="no per-user column"):
        segment_table(results, seg, metric="NDCG@5")


def test_segment_winners(split, results):
    seg = target_segments(split)
    table = segment_winners(results, seg, metric="HR@10", n_boot=500)
    for row in table.itertuples():
        users = seg.index[seg == row.segment]
        means = {n: r.per_user.loc[users, "HR@10"].mean() for n, r in results.items()}
        assert row.winner == max(means, key=means.get)
        assert row.value == pytest.approx(max(means.values()))
        test = paired_test(results[row.winner].per_user.loc[users, "HR@10"],
                           results[row.runner_up].per_user.loc[users, "HR@10"], n_boot=500)
        assert row.diff == pytest.approx(test["mean_diff"]) and row.p_value == pytest.approx(test["p_value"])
        assert row.diff >= 0
    with pytest.raises(ValueError, match="two models"):
        segment_winners({"EASE": results["EASE"]}, seg)
    some = evaluate_full(Popularity().fit(split), split, ks=(10,), users=np.arange(10))
    with pytest.raises(ValueError, match="other users"):
        segment_winners({"EASE": results["EASE"], "P": some}, seg)
