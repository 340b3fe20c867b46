"""The comparison tables and formatters of recnotes.report.compare."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recnotes.report.compare import accuracy_table, fmt, fmt_ci, fmt_count, fmt_p, fmt_si, holm, paired_table, verdict


@pytest.mark.parametrize("x,text", [(0.103373, "0.103"), (96.020121, "96.0"), (53923.081, "53,923"),
                                    (0.0001234, "0.000123"), (1.0, "1.00"), (0, "0"), (-0.0456, "-0.0456")])
def test_three_significant_digits(x, text):
    assert fmt(x) == text


@pytest.mark.parametrize("x,text", [(176_963_909_075, "177 G"), (50_828_221_824, "50.8 G"), (10_045_824, "10.0 M"),
                                    (2_460, "2.46 k"), (337, "337"), (0.5, "0.500"), (0, "0"), (2.5e15, "2,500 T")])
def test_counts_with_a_prefix_keep_three_significant_digits(x, text):
    assert fmt_si(x) == text


def test_p_values_at_the_permutation_floor():
    assert fmt_p(1 / 10001) == "< 1e-4"
    assert fmt_p(0.0123) == "0.012"
    assert fmt_p(0.41) == "0.41"
    assert fmt_ci(0.0921, 0.1187) == "0.0921–0.119"
    assert fmt_ci(-0.187, -0.0673) == "-0.187 to\u00a0-0.0673"  # no "–-" between the bounds
    assert fmt_ci(-0.02, 0.05) == "-0.0200 to\u00a00.0500"


def holm_reference(p):
    """Holm by its definition: sort, multiply by (m - i), running maximum, cap at 1."""
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    out, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def test_holm_against_its_definition():
    rng = np.random.default_rng(0)
    for _ in range(20):
        p = rng.uniform(0, 0.2, size=rng.integers(1, 8)).tolist()
        assert np.allclose(holm(p), holm_reference(p))


def test_accuracy_table_means_and_order():
    rng = np.random.default_rng(1)
    users = pd.Index(range(50))
    a = pd.DataFrame({"NDCG@10": rng.uniform(0, 0.2, 50)}, index=users)
    b = pd.DataFrame({"NDCG@10": rng.uniform(0.3, 0.5, 50)}, index=users)
    table = accuracy_table({"a": a, "b": b}, metrics=("NDCG@10",), sort="NDCG@10", users=True)
    assert list(table.index) == ["b", "a"] and table.index.name is None
    assert table.loc["a", "NDCG@10"] == fmt(a["NDCG@10"].mean())
    low, high = table.loc["b", "NDCG@10 95% CI"].split("–")
    assert float(low) <= b["NDCG@10"].mean() <= float(high)
    assert table.loc["a", "users"] == 50


def test_paired_table_and_verdicts():
    users = pd.Index(range(300))
    rng = np.random.default_rng(2)
    base = pd.Series(rng.uniform(0, 1, 300), index=users)
    per_user = {"better": base + 0.2, "same": base + rng.normal(0, 0.01, 300), "base": base}
    table = paired_table(per_user, "base", seed=0)
    tests = {t["vs"]: t for t in table.attrs["tests"]}
    assert list(table.columns) == ["difference (base − row)", "95% CI", "p", "p (Holm)", "users"]
    assert table.loc["better", "difference (base − row)"] == "-0.200"
    assert list(paired_table(per_user, "base", seed=0, label="the base").columns)[0] == "difference (the base − row)"
    assert table.loc["better", "p"] == "< 1e-4"
    assert verdict(tests["better"]) == "significantly worse"
    assert verdict(tests["same"]) == "not significantly different"
    assert tests["same"]["p_holm"] >= tests["same"]["p_value"]


def test_tidy_drops_every_index_and_column_name():
    from recnotes.report.compare import tidy

    frame = pd.DataFrame({"a": [1, 2]}, index=pd.MultiIndex.from_tuples([("x", 1), ("y", 2)], names=["model", "k"]))
    frame.columns.name = "metric"
    out = tidy(frame)
    assert list(out.index.names) == [None, None] and list(out.columns.names) == [None]
    assert "model" not in out.to_html() and "metric" not in out.to_html()


def test_paired_rows_are_each_pairs_own_test_with_holm_over_rows():
    from recnotes.evaluate import paired_test
    from recnotes.report.compare import holm, paired_rows

    rng = np.random.default_rng(3)
    users = pd.Index(range(60), name="user")
    pairs = {f"m{i}": (pd.Series(rng.random(60) + 0.1 * i, index=users), pd.Series(rng.random(60), index=users))
             for i in range(3)}
    table = paired_rows(pairs, ("with", "without"), seed=0)
    tests = {t["vs"]: t for t in table.attrs["tests"]}
    raw = [paired_test(a, b, seed=0)["p_value"] for a, b in pairs.values()]
    for (label, (a, b)), adjusted in zip(pairs.items(), holm(raw)):
        assert tests[label]["mean_diff"] == pytest.approx(float((a - b).mean()))
        assert tests[label]["p_holm"] == pytest.approx(adjusted)
        assert table.loc[label, "with"] == fmt(float(a.mean()))


def test_accuracy_numbers_are_the_means_and_their_bootstrap_bounds_and_the_table_shows_them():
    from recnotes.evaluate.uncertainty import bootstrap_ci
    from recnotes.report.compare import accuracy_frame, show_accuracy

    rng = np.random.default_rng(3)
    per_user = {"a": pd.DataFrame({"NDCG@10": rng.random(40)}), "b": pd.DataFrame({"NDCG@10": rng.random(40) + 0.5}),
                "c": pd.DataFrame({"NDCG@10": rng.random(40) - 2})}
    numbers = accuracy_frame(per_user, ("NDCG@10",), n_bootstrap=300, seed=2, sort="NDCG@10", users=True)
    assert list(numbers.index) == ["b", "a", "c"]
    for name, frame in per_user.items():
        mean, low, high = bootstrap_ci(frame["NDCG@10"].to_numpy(), 300, seed=2)
        assert numbers.loc[name, "NDCG@10"] == pytest.approx(frame["NDCG@10"].mean())
        assert (numbers.loc[name, "NDCG@10 low"], numbers.loc[name, "NDCG@10 high"]) == (low, high)
        assert numbers.loc[name, "users"] == 40
    shown = show_accuracy(numbers)
    assert list(shown.columns) == ["NDCG@10", "NDCG@10 95% CI", "users"]
    assert shown.loc["c", "NDCG@10 95% CI"] == fmt_ci(numbers.loc["c", "NDCG@10 low"], numbers.loc["c", "NDCG@10 high"])
    assert " to" in shown.loc["c", "NDCG@10 95% CI"]  # a negative interval, kept as numbers until shown
    assert shown.equals(accuracy_table(per_user, ("NDCG@10",), n_bootstrap=300, seed=2, sort="NDCG@10", users=True))


@pytest.mark.parametrize("n, text", [(98_114, "98,114"), (211_008, "211 thousand"), (395_733, "396 thousand"),
                                     (999_999, "1.00 million"), (1_133_907, "1.13 million"),
                                     (134_515_008, "135 million"), (2_000_000_000, "2.00 billion")])
def test_a_count_in_prose_is_exact_below_a_hundred_thousand_and_in_words_above(n, text):
    assert fmt_count(n) == text
    assert fmt_count(80_928, below=10_000) == "80.9 thousand" and fmt_count(9_999, below=10_000) == "9,999"
    if " " in text:  # the words give the count back within their last digit
        number, word = text.split()
        assert abs(float(number) * {"thousand": 1e3, "million": 1e6, "billion": 1e9}[word] - n) / n < 5e-3


@pytest.mark.parametrize("x, text", [(0.000337, "+0.0003"), (-0.000418, "-0.0004"), (-0.00863, "-0.0086"),
                                     (0.0123, "+0.0123"), (0.00004, "0"), (-0.25, "-0.250")])
def test_a_difference_with_at_most_four_decimals_rounds_there_and_keeps_its_sign(x, text):
    from recnotes.report.compare import signed

    assert signed(x, decimals=4) == text
    assert len(text.split(".")[-1]) <= 4 and (text == "0" or abs(float(text) - x) <= 0.5e-4 + 0.5e-3 * abs(x))


def test_metrics_and_intervals_show_at_most_four_decimals():
    from recnotes.report.compare import METRIC_DECIMALS

    assert fmt(0.000471, max_decimals=4) == "0.0005" and fmt(0.00355, max_decimals=4) == "0.0036"
    assert fmt(0.00004, max_decimals=4) == "0" and fmt(0.105, max_decimals=4) == "0.105"
    assert fmt_ci(-0.0545, -0.000679) == "-0.0545 to\u00a0-0.0007"
    assert fmt_ci(0.000471, 0.00524) == "0.0005–0.0052"
    table = paired_table({"a": pd.Series([0.1001, 0.2, 0.3]), "b": pd.Series([0.1, 0.2, 0.3])}, "a", seed=0)
    for text in table.iloc[0][:2]:
        for number in str(text).replace("\u00a0", " ").replace(" to ", "–").split("–"):
            assert len(number.split(".")[-1]) <= METRIC_DECIMALS if "." in number else True
