"""Ranking metrics: target ranks from scores, accuracy metrics from ranks, and
beyond-accuracy metrics from top-K lists.

**Tie rule (pessimistic).** The 0-based rank of a target is the number of
*other* candidate items whose score is greater than *or equal to* the target's
score.  A model that gives every item the same score therefore ranks every
target last, instead of looking perfect; ties never help a model.  Masked
items (padding, and seen items when masking is on) are not candidates and
never count.

From a 0-based rank ``r`` and a cut-off ``K``:

* ``HR@K = 1[r < K]``
* ``NDCG@K = 1[r < K] / log2(r + 2)`` (one relevant item, so the ideal DCG is 1)
* ``MRR@K = 1[r < K] / (r + 1)``
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import torch

__all__ = [
    "ACCURACY_METRICS", "target_ranks", "rank_metrics", "parse_column", "check_ks",
    "coverage", "novelty", "avg_popularity", "gini", "beyond_accuracy",
]

ACCURACY_METRICS = ("HR", "NDCG", "MRR")


def check_ks(ks: Sequence[int], n_candidates: int) -> tuple[int, ...]:
    """Validate cut-offs: integers in ``1 .. n_candidates``; returned sorted and unique."""
    ks = tuple(sorted({int(k) for k in ks}))
    if not ks:
        raise ValueError("ks is empty: give at least one cut-off K")
    if ks[0] < 1:
        raise ValueError(f"cut-off K must be >= 1, got {ks[0]}")
    if ks[-1] > n_candidates:
        raise ValueError(f"cut-off K={ks[-1]} is larger than the number of items that can be "
                         f"ranked ({n_candidates})")
    return ks


def target_ranks(scores: torch.Tensor, targets: torch.Tensor,
                 n_excluded: torch.Tensor | None = None) -> torch.Tensor:
    """0-based pessimistic rank of each row's target among the row's columns.

    ``scores`` is ``[b, n]`` with excluded columns already set to ``-inf``;
    ``n_excluded`` (``[b]``, optional) says how many columns of each row were
    excluded that way (the target never is), so that a target whose own score
    is ``-inf`` is not counted below the excluded columns.
    """
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-D [users, items], got shape {tuple(scores.shape)}")
    # One cheap reduction first: the sum is NaN only if some score is NaN (or +inf and -inf mix).
    if torch.isnan(scores.sum()) and torch.isnan(scores).any():
        raise ValueError("scores contain NaN: a model must return finite or infinite scores")
    t = scores.gather(1, targets.view(-1, 1))
    # Counting through a uint8 view is about twice as fast on CPU as summing booleans.
    ge = (scores >= t).view(torch.uint8).sum(1, dtype=torch.int64) - 1  # the target counts once
    if n_excluded is not None:
        ge = ge - torch.where(t.view(-1) == float("-inf"), n_excluded.to(ge.dtype), 0)
    return ge


def rank_metrics(ranks: np.ndarray, ks: Sequence[int]) -> dict[str, np.ndarray]:
    """Per-user ``HR@K``, ``NDCG@K``, ``MRR@K`` (float64) from 0-based ranks."""
    r = np.asarray(ranks, np.float64)
    out: dict[str, np.ndarray] = {}
    for name in ACCURACY_METRICS:
        for k in ks:
            hit = r < k
            if name == "HR":
                v = hit.astype(np.float64)
            elif name == "NDCG":
                v = np.where(hit, 1.0 / np.log2(r + 2.0), 0.0)
            else:
                v = np.where(hit, 1.0 / (r + 1.0), 0.0)
            out[f"{name}@{k}"] = v
    return out


def parse_column(column: str) -> tuple[str, int | None]:
    """``"NDCG@10"`` -> ``("NDCG", 10)``; ``"coverage"`` -> ``("coverage", None)``."""
    name, _, k = column.partition("@")
    return name, (int(k) if k else None)


def _recommended(topk: np.ndarray, k: int) -> np.ndarray:
    """The real items of the first ``k`` columns (0 marks an empty slot)."""
    items = np.asarray(topk)[:, :k].ravel()
    return items[items > 0]


def coverage(topk: np.ndarray, n_items: int, k: int) -> float:
    """Share of the ``n_items`` real items that appear in at least one top-``k`` list."""
    return len(np.unique(_recommended(topk, k))) / n_items


def novelty(topk: np.ndarray, popularity: np.ndarray, n_users: int, k: int) -> float:
    """Mean self-information ``-log2 p(i)`` of recommended items, ``p(i)`` = share of
    training users who interacted with ``i`` (items never seen in training count once)."""
    items = _recommended(topk, k)
    if len(items) == 0:
        return float("nan")
    p = np.maximum(np.asarray(popularity)[items], 1) / n_users
    return float(np.mean(-np.log2(p)))


def avg_popularity(topk: np.ndarray, popularity: np.ndarray, k: int) -> float:
    """Mean training popularity (number of training users) of the recommended items."""
    items = _recommended(topk, k)
    return float(np.mean(np.asarray(popularity)[items])) if len(items) else float("nan")


def gini(topk: np.ndarray, n_items: int, k: int) -> float:
    """Gini coefficient of exposure over all ``n_items`` real items: 0 when every item
    is recommended equally often, near 1 when a few items take all exposure."""
    items = _recommended(topk, k)
    x = np.sort(np.bincount(items, minlength=n_items + 1)[1:]).astype(np.float64)
    if x.sum() == 0:
        return float("nan")
    i = np.arange(1, n_items + 1)
    return float(np.sum((2 * i - n_items - 1) * x) / (n_items * x.sum()))


def beyond_accuracy(topk: np.ndarray, popularity: np.ndarray, n_users: int,
                    ks: Sequence[int]) -> pd.DataFrame:
    """Coverage, novelty, average popularity and Gini at each K, as a tidy frame
    (``metric``, ``k``, ``value``).  ``popularity`` has ``n_items + 1`` entries."""
    n_items = len(popularity) - 1
    rows = []
    for k in ks:
        if k > np.asarray(topk).shape[1]:
            raise ValueError(f"K={k} is larger than the kept top-K lists ({np.asarray(topk).shape[1]})")
        rows += [("coverage", k, coverage(topk, n_items, k)),
                 ("novelty", k, novelty(topk, popularity, n_users, k)),
                 ("avg_popularity", k, avg_popularity(topk, popularity, k)),
                 ("gini", k, gini(topk, n_items, k))]
    return pd.DataFrame(rows, columns=["metric", "k", "value"])
