"""Bootstrap intervals and the paired test against SciPy and exact enumeration."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from recnotes.evaluate import bootstrap_ci, bootstrap_table, paired_test


def test_bootstrap_ci_agrees_with_scipy_percentile_bootstrap():
    x = np.random.default_rng(0).normal(2.0, 1.0, 300)
    mean, low, high = bootstrap_ci(x, n_boot=5000, seed=1)
    ref = stats.bootstrap((x,), np.mean, n_resamples=5000, method="percentile",
                          confidence_level=0.95, random_state=2).confidence_interval
    width = ref.high - ref.low
    assert mean == pytest.approx(x.mean())
    assert low == pytest.approx(ref.low, abs=0.05 * width)
    assert high == pytest.approx(ref.high, abs=0.05 * width)
    # and with the normal-theory interval: mean +- 1.96 sd / sqrt(n)
    assert high - low == pytest.approx(2 * 1.96 * x.std(ddof=1) / np.sqrt(len(x)), rel=0.1)


def test_bootstrap_ci_covers_the_true_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(3)
    hits = sum(lo <= 0.3 <= hi for _, lo, hi in
               (bootstrap_ci(rng.random(150) < 0.3, n_boot=400, seed=s) for s in range(200)))
    assert 0.88 <= hits / 200 <= 0.99


def test_bootstrap_ci_is_seeded_and_degenerate_on_constants():
    x = np.random.default_rng(4).random(50)
    assert bootstrap_ci(x, seed=7) == bootstrap_ci(x, seed=7)
    assert bootstrap_ci(x, seed=7) != bootstrap_ci(x, seed=8)
    assert bootstrap_ci(np.full(20, 0.25)) == (0.25, 0.25, 0.25)
    with pytest.raises(ValueError, match="non-empty"):
        bootstrap_ci([])
    with pytest.raises(ValueError, match="NaN"):
        bootstrap_ci([0.1, np.nan])


def test_bootstrap_table_shares_resamples_across_columns():
    x = np.random.default_rng(5).random(80)
    table = bootstrap_table(pd.DataFrame({"a": x, "b": 2 * x}), n_boot=300, seed=0)
    a, b = table.set_index("column").loc["a"], table.set_index("column").loc["b"]
    assert b.ci_low == pytest.approx(2 * a.ci_low) and b.ci_high == pytest.approx(2 * a.ci_high)
    assert a.n_users == 80 and a.value == pytest.approx(x.mean())


def exact_sign_flip_p(d: np.ndarray) -> float:
    """Two-sided p-value over all 2^n sign patterns (the exact permutation distribution)."""
    obs = abs(d.mean())
    means = [abs(np.mean(d * np.array(s))) for s in itertools.product((-1, 1), repeat=len(d))]
    return float(np.mean(np.array(means) >= obs - 1e-12))


@pytest.mark.parametrize("shift", [0.0, 0.3, 0.8])
def test_paired_test_p_value_matches_exact_enumeration(shift):
    rng = np.random.default_rng(6)
    b = rng.random(11)
    a = b + shift + rng.normal(0, 0.5, 11)
    out = paired_test(a, b, n_boot=20_000, seed=0)
    assert out["n"] == 11 and out["mean_diff"] == pytest.approx(np.mean(a - b))
    assert out["p_value"] == pytest.approx(exact_sign_flip_p(a - b), abs=0.015)
    assert out["ci_low"] <= out["mean_diff"] <= out["ci_high"]


def test_paired_test_edge_cases():
    x = np.random.default_rng(8).random(30)
    same = paired_test(x, x, n_boot=500)
    assert same["mean_diff"] == 0 and same["p_value"] == 1.0
    far = paired_test(x + 1, x, n_boot=500)
    assert far["p_value"] == pytest.approx(1 / 501)  # never below 1 / (n_boot + 1)
    sa = pd.Series(x, index=np.arange(30))
    sb = pd.Series(x[::-1] * 0.5, index=np.arange(30)[::-1])  # same users, other order
    aligned = paired_test(sa, sb, n_boot=200)
    assert aligned["mean_diff"] == pytest.approx(np.mean(x - 0.5 * x))
    with pytest.raises(ValueError, match="equal length"):
        paired_test(x, x[:-1])
    with pytest.raises(ValueError, match="different users"):
        paired_test(sa, pd.Series(x, index=np.arange(1, 31)))
