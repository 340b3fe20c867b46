"""Metrics by segment: for which users and which targets a model works.

A mean over all users hides where a model wins.  This module assigns every
evaluated user to a segment, by the length of their history
(:func:`history_segments`) or by the popularity of their target item
(:func:`target_segments`, "head" = the most interacted-with items, "tail" =
the rest), and reports each model's per-user metric within each segment with
a bootstrap interval (:func:`segment_table`) and, per segment, the best model
against the runner-up on the same users (:func:`segment_winners`).
:class:`RecentItems` simulates new users by showing a model only the last
few items of each history.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..data.splits import Split, check_stage
from .uncertainty import bootstrap_ci, paired_test

if TYPE_CHECKING:  # pragma: no cover
    from .protocols import EvalResult

__all__ = ["history_lengths", "history_segments", "item_popularity", "head_items", "target_segments",
           "RecentItems", "segment_table", "segment_winners"]


def history_lengths(split: Split, stage: str = "test") -> np.ndarray:
    """Items each user has in ``histories(stage)``, shape ``[n_users]``."""
    return np.fromiter((len(h) for h in split.histories(stage)), np.int64, split.n_users)


def history_segments(split: Split, stage: str = "test", edges: Sequence[float] | None = None,
                     labels: Sequence[str] | None = None) -> pd.Series:
    """Each user's history-length segment (index = internal user id).

    A user with length ``n`` falls in segment ``i`` when ``edges[i-1] < n <= edges[i]``.
    ``edges`` defaults to the 1/3 and 2/3 quantiles of the lengths (terciles;
    users tied at an edge stay together, so the groups are only roughly equal),
    with labels ``short``, ``medium``, ``long``.  Other edges get labels such as
    ``"21-50"`` unless ``labels`` (one more than the edges) is given.  The
    edges used are in ``result.attrs["edges"]``.
    """
    lengths = history_lengths(split, stage)
    if edges is None:
        edges = np.quantile(lengths, [1 / 3, 2 / 3])
        labels = labels or ("short", "medium", "long")
    edges = np.asarray(edges, np.float64)
    if edges.ndim != 1 or len(edges) == 0 or np.any(np.diff(edges) <= 0):
        raise ValueError(f"edges must be a non-empty, strictly increasing sequence, not {edges.tolist()}")
    if labels is None:
        bounds = [lengths.min() - 1, *edges, lengths.max()]
        labels = [f"{int(np.floor(lo)) + 1}-{int(np.floor(hi))}" if i < len(edges) else f">{int(np.floor(lo))}"
                  for i, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:]))]
    if len(labels) != len(edges) + 1:
        raise ValueError(f"{len(edges)} edge(s) make {len(edges) + 1} segments, but {len(labels)} label(s) were given")
    idx = np.searchsorted(edges, lengths, side="left")  # n <= edges[i] -> segment i
    out = pd.Series(pd.Categorical([labels[i] for i in idx], categories=list(labels), ordered=True),
                    index=pd.RangeIndex(split.n_users, name="user"), name="history")
    out.attrs["edges"] = edges.tolist()
    return out


def item_popularity(split: Split, stage: str = "test") -> np.ndarray:
    """Interactions per item in ``histories(stage)``, shape ``[n_items + 1]`` (index 0, padding, is 0)."""
    hist = split.histories(stage)
    items = np.concatenate(hist) if len(hist) else np.zeros(0, np.int64)
    return np.bincount(items, minlength=split.n_items + 1)


def head_items(popularity: np.ndarray, share: float = 0.2) -> np.ndarray:
    """Boolean mask ``[n_items + 1]`` of the head: the ``ceil(share * n_items)`` items with the most
    interactions (ties broken by the smaller item id); the padding item 0 is never in it."""
    if not 0 < share < 1:
        raise ValueError(f"share must be between 0 and 1, not {share}")
    pop = np.asarray(popularity)
    n_items = len(pop) - 1
    n_head = int(np.ceil(share * n_items))
    order = np.lexsort((np.arange(1, n_items + 1), -pop[1:])) + 1  # most popular first, then by id
    mask = np.zeros(len(pop), bool)
    mask[order[:n_head]] = True
    return mask


def target_segments(split: Split, stage: str = "test", head_share: float = 0.2,
                    labels: tuple[str, str] = ("head", "tail")) -> pd.Series:
    """Each user's segment by the popularity of their ``stage`` target among the items the
    models were shown (:func:`item_popularity`): head (top ``head_share`` of items) or tail.
    ``result.attrs`` holds ``n_head`` and ``head_interaction_share`` (the head's share of
    all interactions)."""
    check_stage(stage)
    pop = item_popularity(split, stage)
    head = head_items(pop, head_share)
    in_head = head[split.targets(stage)]
    out = pd.Series(pd.Categorical(np.where(in_head, labels[0], labels[1]), categories=list(labels), ordered=True),
                    index=pd.RangeIndex(split.n_users, name="user"), name="target")
    out.attrs["n_head"] = int(head.sum())
    out.attrs["head_interaction_share"] = float(pop[head].sum() / max(1, pop.sum()))
    return out


class RecentItems:
    """A fitted model that sees only the last ``n`` items of each history, as if the user were
    new: ``score(histories)`` is the model's score of the shortened histories.  Evaluated with
    :func:`~recnotes.evaluate.evaluate_full` on the usual split, every item the user really
    interacted with is still masked, so only the information the model gets changes."""

    def __init__(self, model: Any, n: int) -> None:
        if n < 1:
            raise ValueError(f"a model needs at least one item of history, not n={n}")
        self.model, self.n = model, int(n)
        self.name = f"{getattr(model, 'name', type(model).__name__)}[last {self.n}]"

    def score(self, histories: Sequence[np.ndarray]):
        return self.model.score([np.asarray(h)[-self.n:] for h in histories])


def _per_user(result: "EvalResult", metric: str) -> pd.Series:
    if metric not in result.per_user:
        raise ValueError(f"{result.model} has no per-user column {metric!r}; it has {list(result.per_user)}")
    return result.per_user[metric]


def _segment_users(segments: pd.Series, users: pd.Index) -> dict[str, pd.Index]:
    missing = users.difference(segments.index)
    if len(missing):
        raise ValueError(f"{len(missing)} evaluated user(s) have no segment (for example user {missing[0]})")
    seg = segments.reindex(users)
    names = list(seg.cat.categories) if isinstance(seg.dtype, pd.CategoricalDtype) else sorted(seg.unique())
    return {name: users[(seg == name).to_numpy()] for name in names}


def segment_table(results: Mapping[str, "EvalResult"] | Sequence["EvalResult"], segments: pd.Series,
                  metric: str = "NDCG@10", n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """One row per (segment, model): the mean per-user ``metric`` of the segment's users and its
    percentile bootstrap interval.  Columns ``segment``, ``model``, ``value``, ``ci_low``,
    ``ci_high``, ``n_users``; segments in their category order, models in the given order.
    Empty segments are left out."""
    items = list(results.items()) if isinstance(results, Mapping) else [(r.model, r) for r in results]
    rows = []
    for name, r in items:
        values = _per_user(r, metric)
        for seg, users in _segment_users(segments, values.index).items():
            if len(users) == 0:
                continue
            mean, low, high = bootstrap_ci(values.loc[users].to_numpy(), n_boot, seed, level)
            rows.append({"segment": seg, "model": name, "value": mean, "ci_low": low, "ci_high": high,
                         "n_users": len(users)})
    out = pd.DataFrame(rows, columns=["segment", "model", "value", "ci_low", "ci_high", "n_users"])
    order = {s: i for i, s in enumerate(dict.fromkeys(
        list(segments.cat.categories) if isinstance(segments.dtype, pd.CategoricalDtype) else out["segment"]))}
    out = out.sort_values("segment", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)
    return out


def segment_winners(results: Mapping[str, "EvalResult"] | Sequence["EvalResult"], segments: pd.Series,
                    metric: str = "NDCG@10", n_boot: int = 10_000, seed: int = 0) -> pd.DataFrame:
    """Per segment: the model with the highest mean ``metric``, the runner-up, their paired
    difference on the segment's users (with its bootstrap interval) and the sign-flip
    permutation p-value (:func:`~recnotes.evaluate.paired_test`).  All models must have been
    evaluated on the same users."""
    items = dict(results) if isinstance(results, Mapping) else {r.model: r for r in results}
    if len(items) < 2:
        raise ValueError("segment_winners needs at least two models")
    values = {name: _per_user(r, metric) for name, r in items.items()}
    users = next(iter(values.values())).index
    for name, v in values.items():
        if not v.index.equals(users):
            raise ValueError(f"{name} was evaluated on other users than {next(iter(values))}")
    rows = []
    for seg, seg_users in _segment_users(segments, users).items():
        if len(seg_users) == 0:
            continue
        means = {name: float(v.loc[seg_users].mean()) for name, v in values.items()}
        best, second = sorted(means, key=lambda n: -means[n])[:2]
        test = paired_test(values[best].loc[seg_users], values[second].loc[seg_users], n_boot=n_boot, seed=seed)
        rows.append({"segment": seg, "winner": best, "value": means[best], "runner_up": second,
                     "runner_up_value": means[second], "diff": test["mean_diff"], "diff_low": test["ci_low"],
                     "diff_high": test["ci_high"], "p_value": test["p_value"], "n_users": len(seg_users)})
    return pd.DataFrame(rows)
