"""Uncertainty of per-user metrics: seeded bootstrap intervals and paired comparisons.

Every metric is a mean over users, so its uncertainty comes from which users
happened to be evaluated.  :func:`bootstrap_ci` resamples users with
replacement (percentile interval); :func:`paired_test` compares two models on
the *same* users through their per-user differences: a paired bootstrap
interval of the mean difference and a two-sided sign-flip permutation test
(under "no difference", each user's difference is equally likely to have
either sign).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from .metrics import parse_column

__all__ = ["bootstrap_means", "bootstrap_ci", "bootstrap_table", "summary_table", "paired_test"]

_CHUNK = 4_000_000  # resampled values held in memory at once


def _as_2d(values) -> np.ndarray:
    v = np.asarray(values, np.float64)
    if v.ndim == 1:
        v = v[:, None]
    if v.ndim != 2 or v.shape[0] == 0:
        raise ValueError(f"need a non-empty 1-D or 2-D array of per-user values, got shape {v.shape}")
    if np.isnan(v).any():
        raise ValueError("per-user values contain NaN")
    return v


def bootstrap_means(values, n_boot: int = 1000, seed: int = 0) -> np.ndarray:
    """Means of ``n_boot`` resamples of the rows (users) of ``values`` ``[n]`` or ``[n, m]``;
    returns ``[n_boot, m]``.  The same resampled users serve every column."""
    v = _as_2d(values)
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, not {n_boot}")
    n = v.shape[0]
    rng = np.random.default_rng(seed)
    out = np.empty((n_boot, v.shape[1]))
    step = max(1, _CHUNK // n)
    for start in range(0, n_boot, step):
        stop = min(n_boot, start + step)
        idx = rng.integers(0, n, size=(stop - start, n))
        out[start:stop] = v[idx].mean(axis=1)
    return out


def _interval(boot: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, not {level}")
    alpha = (1 - level) / 2
    return np.quantile(boot, alpha, axis=0), np.quantile(boot, 1 - alpha, axis=0)


def bootstrap_ci(values, n_boot: int = 1000, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float, float]:
    """Mean of ``values`` and its percentile bootstrap interval: ``(mean, low, high)``."""
    v = _as_2d(values)
    if v.shape[1] != 1:
        raise ValueError(f"bootstrap_ci takes one metric (1-D values), got shape {v.shape}")
    low, high = _interval(bootstrap_means(v, n_boot, seed), level)
    return float(v.mean()), float(low[0]), float(high[0])


def bootstrap_table(frame: pd.DataFrame, n_boot: int = 1000, seed: int = 0,
                    level: float = 0.95) -> pd.DataFrame:
    """One row per column of ``frame`` (per-user values): ``column``, ``value`` (the mean),
    ``ci_low``, ``ci_high``, ``n_users``; all columns share the resampled users."""
    v = _as_2d(frame.to_numpy(np.float64))
    low, high = _interval(bootstrap_means(v, n_boot, seed), level)
    return pd.DataFrame({"column": list(frame.columns), "value": v.mean(axis=0),
                         "ci_low": low, "ci_high": high, "n_users": v.shape[0]})


def summary_table(per_user: pd.DataFrame, n_boot: int = 1000, seed: int = 0,
                  level: float = 0.95) -> pd.DataFrame:
    """:func:`bootstrap_table` of per-user metric columns such as ``"NDCG@10"``, with the
    column name split into ``metric`` and ``k``: columns ``metric``, ``k``, ``value``,
    ``ci_low``, ``ci_high``, ``n_users``."""
    table = bootstrap_table(per_user, n_boot, seed, level)
    parsed = [parse_column(c) for c in table.pop("column")]
    table.insert(0, "metric", [m for m, _ in parsed])
    table.insert(1, "k", [k for _, k in parsed])
    return table


def paired_test(a_per_user: Sequence[float] | pd.Series, b_per_user: Sequence[float] | pd.Series,
                n_boot: int = 10_000, seed: int = 0, level: float = 0.95) -> dict:
    """Compare two models on the same users: ``mean_diff`` (a - b), its paired bootstrap
    interval ``ci_low``/``ci_high``, the two-sided sign-flip permutation ``p_value``
    (``n_boot`` random sign patterns, so it is never below ``1 / (n_boot + 1)``), and ``n``.

    Two pandas Series are aligned on their index (users) first.
    """
    if isinstance(a_per_user, pd.Series) and isinstance(b_per_user, pd.Series):
        if not a_per_user.index.equals(b_per_user.index):
            if set(a_per_user.index) != set(b_per_user.index):
                raise ValueError("the two models were evaluated on different users")
            b_per_user = b_per_user.reindex(a_per_user.index)
    a = np.asarray(a_per_user, np.float64)
    b = np.asarray(b_per_user, np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired values need two 1-D arrays of equal length, got {a.shape} and {b.shape}")
    d = _as_2d(a - b)
    observed = float(d.mean())
    low, high = _interval(bootstrap_means(d, n_boot, seed), level)
    # Sign-flip permutation test, in chunks to bound memory.
    rng = np.random.default_rng(seed + 1)
    n = d.shape[0]
    extreme = 0
    step = max(1, _CHUNK // n)
    for start in range(0, n_boot, step):
        signs = rng.integers(0, 2, size=(min(step, n_boot - start), n)) * 2 - 1
        perm = (signs * d[:, 0]).mean(axis=1)
        extreme += int(np.sum(np.abs(perm) >= abs(observed) - 1e-12))
    p = (extreme + 1) / (n_boot + 1)
    return {"mean_diff": observed, "ci_low": float(low[0]), "ci_high": float(high[0]),
            "p_value": float(p), "n": int(n)}
