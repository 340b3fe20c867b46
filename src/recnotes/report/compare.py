"""Tables that compare models, formatted for a reader: three significant digits, intervals in a
column of their own, p-values that say "< 1e-4" at the permutation test's floor, no index-name row.

* :func:`accuracy_table`: one row per model, each metric with its bootstrap 95% interval;
* :func:`paired_table`: one model against others on the same users (mean difference, its
  interval, the sign-flip permutation p-value, Holm's correction over the comparisons);
* :func:`verdict`: a sentence that its own paired test supports ("significantly better",
  "no significant difference", ...).
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..evaluate.uncertainty import bootstrap_ci, paired_test

__all__ = ["fmt", "fmt_si", "fmt_p", "fmt_ci", "signed", "accuracy_frame", "show_accuracy", "accuracy_table", "paired_table", "paired_rows", "holm", "verdict", "tidy"]


#: the most decimals a metric, a difference or an interval shows on a page (``0.0005``, not
#: ``0.000471``): the third significant digit of a number that small is noise
METRIC_DECIMALS = 4


def fmt(x: float, digits: int = 3, max_decimals: int | None = None) -> str:
    """A number with ``digits`` significant digits, thousands separated (``0.105``, ``1,234``);
    with ``max_decimals``, at most that many decimals (``0.0005``; ``0`` where it rounds to zero)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if x == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(x)))
    decimals = max(0, digits - 1 - magnitude)
    if max_decimals is not None and decimals > max_decimals:
        return "0" if round(x, max_decimals) == 0 else f"{x:.{max_decimals}f}"
    return f"{x:,.{decimals}f}" if magnitude >= digits - 1 else f"{x:.{decimals}f}"


def fmt_si(x: float, digits: int = 3) -> str:
    """A count over many orders of magnitude with an SI prefix and ``digits`` significant digits
    (``2.46 k``, ``10.0 M``, ``177 G``): a column of FLOPs from thousands to hundreds of billions."""
    if x is None or (isinstance(x, float) and math.isnan(x)) or x == 0:
        return fmt(x, digits)
    step = min(max(math.floor(math.log10(abs(x)) / 3), 0), 4)
    return fmt(x / 1000 ** step, digits) + ("" if step == 0 else " " + "kMGT"[step - 1])


def fmt_count(n: int, digits: int = 3, below: int = 100_000) -> str:
    """A count for prose: exact below ``below`` (``98,114``), above in words with ``digits``
    significant digits (``211 thousand``, ``1.13 million``, ``135 million``); two counts
    compared in one sentence take the same ``below``."""
    n = int(n)
    if abs(n) < below:
        return f"{n:,}"
    for size, word in ((10 ** 12, "trillion"), (10 ** 9, "billion"), (10 ** 6, "million"), (10 ** 3, "thousand")):
        if abs(n) >= size * (1 - 0.5 * 10 ** -digits):
            return f"{fmt(float(f'{n / size:.{digits}g}'), digits)} {word}"  # rounded first: 999,999 is 1.00 million
    return f"{n:,}"  # not reached


def signed(x: float, digits: int = 3, decimals: int | None = None) -> str:
    """A difference with its sign and ``digits`` significant digits, never in exponent
    notation (``+0.0123``, ``-0.0000158``, ``0``): how the prose and the tables write a
    paired difference.  With ``decimals``, at most that many decimals (``+0.0003``; a difference
    that rounds to zero there is ``0``)."""
    if decimals is not None:
        if round(float(x), decimals) == 0:
            return "0"
        if abs(float(x)) < 10.0 ** (digits - decimals - 1):  # more decimals than allowed otherwise
            return f"{float(x):+.{decimals}f}"
    text = fmt(float(x), digits)
    return text if text.startswith("-") or text == "0" else f"+{text}"


def fmt_p(p: float, n_perm: int = 10_000) -> str:
    """A p-value: ``"< 1e-4"`` at the floor of a permutation test with ``n_perm`` draws
    (``1 / (n_perm + 1)``), two significant digits otherwise."""
    floor = 1.0 / (n_perm + 1)
    if p <= floor * 1.0001:
        return f"< {10 ** math.ceil(math.log10(floor)):.0e}".replace("e-0", "e-")
    return fmt(p, 2)


def fmt_ci(low: float, high: float, digits: int = 3, max_decimals: int | None = METRIC_DECIMALS) -> str:
    """An interval as ``low–high`` (one short string that does not wrap); where a bound is
    negative, as ``low to high`` (``-0.19–-0.067`` reads badly), which may wrap before "to".
    Bounds show at most ``max_decimals`` decimals."""
    sep = " to\u00a0" if min(low, high) < 0 else "–"
    return f"{fmt(low, digits, max_decimals)}{sep}{fmt(high, digits, max_decimals)}"


def tidy(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame without index and column names (they print as an extra header row)."""
    out = frame.copy()
    out.index.names = [None] * out.index.nlevels
    out.columns.names = [None] * out.columns.nlevels
    return out


def accuracy_frame(per_user: Mapping[str, pd.DataFrame], metrics: Sequence[str] = ("NDCG@10", "HR@10"),
                   n_bootstrap: int = 1000, seed: int = 0, sort: str | None = None,
                   users: bool = False) -> pd.DataFrame:
    """One row per model, in numbers: each metric's mean over users (column ``<metric>``) and the
    bounds of its 95% bootstrap interval (``<metric> low``, ``<metric> high``); with ``users``,
    the number of users.  ``per_user`` maps a model to its per-user metrics (columns like
    ``"NDCG@10"``), for instance ``EvalResult.per_user`` or a mean over seeds.  ``sort``: a
    metric to order by (descending; ties keep the given order)."""
    rows = {}
    for name, frame in per_user.items():
        row = {}
        for m in metrics:
            mean, low, high = bootstrap_ci(frame[m].to_numpy(), n_bootstrap, seed=seed)
            row |= {m: float(mean), f"{m} low": float(low), f"{m} high": float(high)}
        if users:
            row["users"] = len(frame)
        rows[name] = row
    out = pd.DataFrame.from_dict(rows, orient="index")
    if sort is not None:
        out = out.loc[sorted(out.index, key=lambda n: -out.loc[n, sort])]
    return out


def show_accuracy(numbers: pd.DataFrame) -> pd.DataFrame:
    """:func:`accuracy_frame`'s numbers for the page: each mean to three significant digits and
    its interval as one ``low–high`` column (``<metric> 95% CI``)."""
    out = pd.DataFrame(index=numbers.index)
    for column in numbers.columns:
        if column.endswith(" low"):
            m = column.removesuffix(" low")
            out[f"{m} 95% CI"] = [fmt_ci(lo, hi) for lo, hi in zip(numbers[column], numbers[f"{m} high"])]
        elif column == "users":
            out[column] = numbers[column]
        elif not column.endswith(" high"):
            out[column] = numbers[column].map(lambda x: fmt(x, max_decimals=METRIC_DECIMALS))
    return tidy(out)


def accuracy_table(per_user: Mapping[str, pd.DataFrame], metrics: Sequence[str] = ("NDCG@10", "HR@10"),
                   n_bootstrap: int = 1000, seed: int = 0, sort: str | None = None,
                   users: bool = False) -> pd.DataFrame:
    """:func:`accuracy_frame` shown with :func:`show_accuracy`: one row per model, each metric's
    mean over users and its 95% bootstrap interval, formatted."""
    return show_accuracy(accuracy_frame(per_user, metrics, n_bootstrap, seed, sort, users))


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjustment of ``p_values`` (same order as given)."""
    p = np.asarray(p_values, float)
    order = np.argsort(p, kind="stable")
    m = len(p)
    adjusted = np.minimum(1.0, np.maximum.accumulate(p[order] * (m - np.arange(m))))
    out = np.empty(m)
    out[order] = adjusted
    return out


def paired_table(per_user: Mapping[str, pd.Series], model: str, others: Sequence[str] | None = None,
                 seed: int = 0, correct: bool = True, n_perm: int = 10_000, label: str | None = None) -> pd.DataFrame:
    """``model`` against each of ``others`` (default: every other key) on the same users, one
    row per other model: mean difference (model - other; its header names ``model``, as
    ``label`` where given), its paired bootstrap 95% interval, the permutation p-value and,
    with ``correct``, Holm's adjustment over these comparisons.

    The numeric columns are kept in ``.attrs["tests"]`` (a list of dicts) for glue and verdicts.
    """
    others = [n for n in (others or per_user) if n != model]
    tests = [{"vs": n, **paired_test(per_user[model], per_user[n], n_boot=n_perm, seed=seed)} for n in others]
    if correct and tests:
        for t, adj in zip(tests, holm([t["p_value"] for t in tests])):
            t["p_holm"] = float(adj)
    rows = {}
    for t in tests:
        row = {f"difference ({label or model} − row)": signed(t["mean_diff"], decimals=METRIC_DECIMALS),
               "95% CI": fmt_ci(t["ci_low"], t["ci_high"]),
               "p": fmt_p(t["p_value"], n_perm)}
        if correct:
            row["p (Holm)"] = fmt_p(t["p_holm"], n_perm)
        row["users"] = t["n"]
        rows[t["vs"]] = row
    out = tidy(pd.DataFrame.from_dict(rows, orient="index"))
    out.attrs["tests"] = tests
    return out


def paired_rows(pairs: Mapping[str, tuple[pd.Series, pd.Series]], columns: tuple[str, str] = ("a", "b"),
                seed: int = 0, n_perm: int = 10_000) -> pd.DataFrame:
    """One row per label: the means of its two per-user series (``columns`` name them), their
    mean difference (first - second) with its paired bootstrap 95% interval, the permutation
    p-value and Holm's adjustment over the rows.  The tests are in ``.attrs["tests"]``."""
    tests = [{"vs": label, **paired_test(a, b, n_boot=n_perm, seed=seed)} for label, (a, b) in pairs.items()]
    for t, adj in zip(tests, holm([t["p_value"] for t in tests])):
        t["p_holm"] = float(adj)
    rows = {t["vs"]: {columns[0]: fmt(float(a.mean())), columns[1]: fmt(float(b.mean())),
                      "difference": signed(t["mean_diff"], decimals=METRIC_DECIMALS),
                      "95% CI": fmt_ci(t["ci_low"], t["ci_high"]),
                      "p (Holm)": fmt_p(t["p_holm"], n_perm), "users": t["n"]}
            for t, (a, b) in zip(tests, pairs.values())}
    out = tidy(pd.DataFrame.from_dict(rows, orient="index"))
    out.attrs["tests"] = tests
    return out


def verdict(test: Mapping[str, float], better: str = "better", worse: str = "worse", alpha: float = 0.05,
            key: str = "p_value") -> str:
    """``"significantly better"``, ``"significantly worse"`` or ``"not significantly different"``,
    as the paired test ``test`` (from :func:`paired_table`'s ``attrs["tests"]`` or
    :func:`~recnotes.evaluate.uncertainty.paired_test`) supports."""
    if test[key] < alpha:
        return f"significantly {better if test['mean_diff'] > 0 else worse}"
    return "not significantly different"
