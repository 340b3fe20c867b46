"""Segment tables and sentences say only what their paired tests support."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recnotes.evaluate import paired_test
from recnotes.report.compare import fmt_p
from recnotes.report.segments import (beaten_in, join_words, leaders_summary, markdown_table, pairs_table,
                                      segment_leaders, segment_values, segment_wide)

USERS = pd.RangeIndex(300, name="user")
SEGMENTS = pd.Series(pd.Categorical(np.repeat(["a", "b", "c"], 100), categories=["a", "b", "c"], ordered=True),
                     index=USERS)


def frame(values) -> pd.DataFrame:
    return pd.DataFrame({"NDCG@10": np.asarray(values, float)}, index=USERS)


def per_user(case: str) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(0)
    base = rng.random(300) * 0.2
    if case == "best everywhere":  # A clearly best in every segment
        return {"A": frame(base + 0.3), "B": frame(base), "C": frame(base * 0.5)}
    if case == "close in c":  # A leads a and b clearly; B leads c by noise only
        a = base + 0.3
        a[200:] = base[200:]
        d = rng.normal(0, 0.05, 100)
        b = base.copy()
        b[200:] = a[200:] + d - d.mean() + 0.002  # ahead by 0.002 on average, noise 0.05 per user
        return {"A": frame(a), "B": frame(b), "C": frame(base * 0.5)}
    if case == "beaten in c":  # B clearly better than A in c
        a = base + 0.3
        a[200:] = base[200:]
        b = base.copy()
        b[200:] += 0.3
        return {"A": frame(a), "B": frame(b), "C": frame(base * 0.5)}
    raise ValueError(case)


def test_leaders_match_their_paired_tests():
    pu = per_user("close in c")
    table = segment_leaders(pu, SEGMENTS, seed=0, n_perm=2000)
    assert list(table.index) == ["a", "b", "c"]
    for t in table.attrs["tests"]:
        users = USERS[(SEGMENTS == t["segment"]).to_numpy()]
        means = {n: f.loc[users, "NDCG@10"].mean() for n, f in pu.items()}
        assert t["winner"] == max(means, key=means.get)
        ref = paired_test(pu[t["winner"]].loc[users, "NDCG@10"], pu[t["runner_up"]].loc[users, "NDCG@10"],
                          n_boot=2000, seed=0)
        assert t["p_value"] == pytest.approx(ref["p_value"])
        assert t["significant"] == (ref["p_value"] < 0.05)
        assert table.loc[str(t["segment"]), "p"] == fmt_p(ref["p_value"], 2000)
    assert table.index.name is None and table.columns.name is None


def test_summary_when_the_best_leads_everywhere():
    pu = per_user("best everywhere")
    text = leaders_summary(segment_leaders(pu, SEGMENTS, n_perm=2000), "A", pu)
    assert text.startswith("A has the highest NDCG@10 in all 3 segments and is significantly ahead "
                           "of the runner-up in a, b and c.")
    assert text.endswith("No segment has a model significantly better than A.")


def test_summary_when_another_leads_by_noise():
    pu = per_user("close in c")
    leaders = segment_leaders(pu, SEGMENTS, n_perm=2000)
    tests = {str(t["segment"]): t for t in leaders.attrs["tests"]}
    assert tests["c"]["winner"] == "B" and not tests["c"]["significant"]
    text = leaders_summary(leaders, "A", pu)
    assert "in 2 of the 3 segments" in text
    assert "(B in c), it is not significantly better than A" in text
    assert "No segment has a model significantly better than A." in text
    assert beaten_in(leaders, "A", pu) == ([], ["B in c"])


def test_summary_when_the_best_is_beaten():
    pu = per_user("beaten in c")
    text = leaders_summary(segment_leaders(pu, SEGMENTS, n_perm=2000), "A", pu)
    assert "A is significantly beaten by B in c." in text and "No segment" not in text
    assert beaten_in(segment_leaders(pu, SEGMENTS, n_perm=2000), "A", pu) == (["B in c"], [])


def test_values_and_wide_table():
    pu = per_user("best everywhere")
    values = segment_values(pu, SEGMENTS, n_boot=100)
    assert len(values) == 9 and set(values.columns) >= {"segment", "model", "value", "ci_low", "ci_high", "n_users"}
    wide = segment_wide(values)
    assert list(wide.index) == ["A", "B", "C"] and list(wide.columns) == ["a", "b", "c"]
    want = pu["A"].loc[USERS[:100], "NDCG@10"].mean()
    assert wide.loc["A", "a"] == f"{want:.3f}"


def test_markdown_table_and_join_words():
    md = markdown_table(pd.DataFrame({"x": ["1", "a|b"]}, index=["r1", "r2"]))
    assert md.splitlines() == ["|  | x |", "|---|---|", "| r1 | 1 |", "| r2 | a\\|b |"]
    assert [join_words(w) for w in ([], ["a"], ["a", "b"], ["a", "b", "c"])] == ["", "a", "a and b", "a, b and c"]


def test_leaders_of_two_segmentations():
    pu = per_user("best everywhere")
    halves = pd.Series(pd.Categorical(np.where(np.arange(300) < 150, "first", "second")), index=USERS)
    table = segment_leaders(pu, [SEGMENTS, halves], n_perm=500)
    assert list(table.index) == ["a", "b", "c", "first", "second"]
    assert [len(t["users"]) for t in table.attrs["tests"]] == [100, 100, 100, 150, 150]
    assert "in all 5 segments" in leaders_summary(table, "A", pu)


def test_pairs_table_is_holm_adjusted_and_matches_paired_tests():
    pu = {n: f["NDCG@10"] for n, f in per_user("close in c").items()}
    table = pairs_table(pu, n_perm=2000)
    assert list(table.index) == ["A minus B", "A minus C", "B minus C"]  # the row says what the difference is
    ps = [paired_test(pu[t["a"]], pu[t["b"]], n_boot=2000)["p_value"] for t in table.attrs["tests"]]
    assert [t["p_value"] for t in table.attrs["tests"]] == pytest.approx(ps)
    order = np.argsort(ps)
    holm = np.maximum.accumulate(np.minimum(1, np.array(ps)[order] * (3 - np.arange(3))))
    assert [table.attrs["tests"][i]["p_holm"] for i in order] == pytest.approx(list(holm))
