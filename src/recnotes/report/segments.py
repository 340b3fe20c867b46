"""Segments for a reader: which model leads where, and only as far as a paired test supports it.

The per-user metrics are given as ``{model: DataFrame}`` (``EvalResult.per_user``, or
:func:`~recnotes.evaluate.seed_mean` over the seeds), so the trained models can
be compared on their canonical multi-seed numbers.

* :func:`segment_values`: each model's mean and bootstrap interval per segment (tidy);
* :func:`segment_wide`: the same as a models x segments table with three significant digits;
* :func:`segment_leaders`: per segment, the leader against the runner-up on the same users;
* :func:`beaten_in`, :func:`leaders_summary`: where another model than the best one leads, and a
  sentence about the leaders that the paired tests support;
* :func:`pairs_table`: every pair of models compared on the same users (Holm-adjusted);
* :func:`segment_figure`: the segments side by side with their intervals;
* :func:`markdown_table`: a small frame as a Markdown table (for glued Markdown).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..evaluate.segments import segment_table, segment_winners
from ..evaluate.uncertainty import paired_test
from .compare import fmt, fmt_ci, fmt_p, holm, signed, tidy
from .phrases import how_many

__all__ = ["segment_values", "segment_wide", "segment_leaders", "beaten_in", "leaders_summary", "pairs_table",
           "segment_figure", "markdown_table", "join_words"]


def _results(per_user: Mapping[str, pd.DataFrame]) -> dict[str, SimpleNamespace]:
    """What :mod:`recnotes.evaluate.segments` reads from an ``EvalResult``: its per-user frame."""
    return {name: SimpleNamespace(model=name, per_user=frame) for name, frame in per_user.items()}


def join_words(words: Sequence[str]) -> str:
    """``["a"]`` -> ``"a"``; ``["a", "b", "c"]`` -> ``"a, b and c"``."""
    words = list(words)
    if len(words) < 2:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def segment_values(per_user: Mapping[str, pd.DataFrame], segments: pd.Series, metric: str = "NDCG@10",
                   n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """One row per (segment, model): ``segment``, ``model``, ``value``, ``ci_low``, ``ci_high``,
    ``n_users`` (see :func:`~recnotes.evaluate.segment_table`)."""
    return segment_table(_results(per_user), segments, metric, n_boot=n_boot, seed=seed)


def segment_wide(values: pd.DataFrame) -> pd.DataFrame:
    """Models as rows, segments as columns, each cell the mean (three significant digits)."""
    wide = values.pivot(index="model", columns="segment", values="value")
    wide = wide.loc[list(dict.fromkeys(values["model"])), list(dict.fromkeys(values["segment"]))]
    return tidy(wide.apply(lambda col: col.map(fmt)))


def segment_leaders(per_user: Mapping[str, pd.DataFrame], segments: pd.Series | Sequence[pd.Series],
                    metric: str = "NDCG@10", seed: int = 0, n_perm: int = 10_000,
                    alpha: float = 0.05) -> pd.DataFrame:
    """Per segment (of one segmentation of the users, or of several, one after the other): the
    model with the highest mean ``metric`` against the runner-up on the segment's users (mean
    difference, paired bootstrap 95% interval, sign-flip permutation p; the runner-up's own
    mean is in ``.attrs["tests"]``).  The numbers, whether
    the difference is significant at ``alpha``, and each segment's users are in
    ``.attrs["tests"]``."""
    segmentations = [segments] if isinstance(segments, pd.Series) else list(segments)
    tests = []
    for seg in segmentations:
        table = segment_winners(_results(per_user), seg, metric, n_boot=n_perm, seed=seed)
        for row in table.itertuples(index=False):
            users = seg.index[(seg == row.segment).to_numpy()]
            tests.append({**row._asdict(), "significant": bool(row.p_value < alpha), "metric": metric,
                          "users": next(iter(per_user.values())).index.intersection(users)})
    rows = {}
    for t in tests:
        rows[str(t["segment"])] = {
            "users": t["n_users"], "leader": t["winner"], metric: fmt(t["value"]), "runner-up": t["runner_up"],
            "difference": signed(t["diff"]),
            "95% CI": fmt_ci(t["diff_low"], t["diff_high"]), "p": fmt_p(t["p_value"], n_perm)}
    out = tidy(pd.DataFrame.from_dict(rows, orient="index"))
    out.attrs["tests"] = tests
    return out


def beaten_in(leaders: pd.DataFrame, best: str, per_user: Mapping[str, pd.DataFrame], seed: int = 0,
              alpha: float = 0.05) -> tuple[list[str], list[str]]:
    """The segments of a :func:`segment_leaders` table led by another model than ``best``, tested
    directly against ``best`` on the segment's users: ``(beaten, level)``, each a list of
    ``"<leader> in <segment>"``: where the leader is significantly better than ``best``, and
    where it is not."""
    beaten, level = [], []
    for t in leaders.attrs["tests"]:
        if t["winner"] == best:
            continue
        users, metric = t["users"], t["metric"]
        test = paired_test(per_user[t["winner"]].loc[users, metric], per_user[best].loc[users, metric], seed=seed)
        (beaten if test["p_value"] < alpha and test["mean_diff"] > 0 else level).append(
            f"{t['winner']} in {t['segment']}")
    return beaten, level


def leaders_summary(leaders: pd.DataFrame, best: str, per_user: Mapping[str, pd.DataFrame], seed: int = 0,
                    alpha: float = 0.05) -> str:
    """What a :func:`segment_leaders` table supports about ``best`` (the best model over all
    users): in how many segments it leads and where significantly, and whether any other model
    is significantly better than ``best`` in a segment (:func:`beaten_in`)."""
    tests = leaders.attrs["tests"]
    leads = [str(t["segment"]) for t in tests if t["winner"] == best]
    sig = [str(t["segment"]) for t in tests if t["winner"] == best and t["significant"]]
    text = f"{best} has the highest {tests[0]['metric']} in {how_many(len(leads), len(tests), 'segments')}"
    if leads:
        text += (f" and is significantly ahead of the runner-up in {join_words(sig)}" if sig else
                 ", but in none of them significantly ahead of the runner-up")
    text += "."
    beaten, level = beaten_in(leaders, best, per_user, seed, alpha)
    if level:
        text += f" Where another model leads ({join_words(level)}), it is not significantly better than {best}."
    if beaten:
        text += f" {best} is significantly beaten by {join_words(beaten)}."
    else:
        text += f" No segment has a model significantly better than {best}."
    return text


def pairs_table(per_user: Mapping[str, pd.Series], seed: int = 0, n_perm: int = 10_000) -> pd.DataFrame:
    """Every pair of models (in the given order, first minus second) on the same users: mean
    difference, paired bootstrap 95% interval, permutation p and Holm's adjustment over all the
    pairs.  The numbers are in ``.attrs["tests"]`` (``a``, ``b`` and the test's fields)."""
    names = list(per_user)
    tests = [{"a": a, "b": b, **paired_test(per_user[a], per_user[b], n_boot=n_perm, seed=seed)}
             for i, a in enumerate(names) for b in names[i + 1:]]
    for t, adj in zip(tests, holm([t["p_value"] for t in tests])):
        t["p_holm"] = float(adj)
    rows = {f"{t['a']} minus {t['b']}": {"difference": signed(t["mean_diff"]),
                                      "95% CI": fmt_ci(t["ci_low"], t["ci_high"]), "p": fmt_p(t["p_value"], n_perm),
                                      "p (Holm)": fmt_p(t["p_holm"], n_perm), "users": t["n"]} for t in tests}
    out = tidy(pd.DataFrame.from_dict(rows, orient="index"))
    out.attrs["tests"] = tests
    return out


def segment_figure(panels: Mapping[str, pd.DataFrame], ylabel: str = "NDCG@10 (protocol P1)"):
    """One panel per ``{title: segment_values(...)}``: each model's mean per segment with its
    95% interval.  Returns the figure."""
    from .plots import model_colors, new_figure

    fig, axes = new_figure(ncols=len(panels), width=4.5 * len(panels), height=3.8, sharey=True)
    axes = np.atleast_1d(axes)
    for ax, (title, table) in zip(axes, panels.items()):
        names = list(dict.fromkeys(table["model"]))
        segs = list(dict.fromkeys(table["segment"]))
        colors, width = model_colors(names), 0.8 / len(names)
        for j, name in enumerate(names):
            rows = table[table["model"] == name].set_index("segment").loc[segs]
            x = np.arange(len(segs)) - 0.4 + width * (j + 0.5)
            ax.errorbar(x, rows["value"], yerr=[rows["value"] - rows["ci_low"], rows["ci_high"] - rows["value"]],
                        fmt="o", color=colors[name], label=name, capsize=2, ms=4)
        ax.set_xticks(np.arange(len(segs)), [str(s) for s in segs])
        ax.set(title=title, ylim=(-0.005, None))
    axes[0].set_ylabel(ylabel)
    axes[-1].legend(loc="upper right", fontsize=10)
    return fig


def markdown_table(frame: pd.DataFrame) -> str:
    """A Markdown pipe table of ``frame`` (its index as the first, unnamed column)."""
    def cell(x) -> str:
        return str(x).replace("|", "\\|")

    header = ["", *map(cell, frame.columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join([cell(i), *map(cell, row)]) + " |"
              for i, row in zip(frame.index, frame.itertuples(index=False))]
    return "\n".join(lines)
