"""Tables a reader can read: recommendations with titles, metrics with intervals."""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

if TYPE_CHECKING:  # pragma: no cover
    from ..data.interactions import Interactions
    from ..evaluate.protocols import EvalResult

__all__ = ["top_k", "recommendations_frame", "metrics_table", "efficiency_table"]


def top_k(model, histories: Sequence[np.ndarray], k: int = 10, mask_seen: bool = True) -> np.ndarray:
    """The ``k`` best items per history, best first ``[len(histories), k]``; the padding
    item and (``mask_seen``) the history's own items are never recommended."""
    scores = torch.as_tensor(model.score(histories)).float().clone()
    if k < 1 or k > scores.shape[1] - 1:
        raise ValueError(f"k must be between 1 and the catalogue size {scores.shape[1] - 1}, got {k}")
    scores[:, 0] = float("-inf")
    if mask_seen:
        for row, h in enumerate(histories):  # a handful of users: presentation, not evaluation
            scores[row, torch.as_tensor(np.asarray(h, dtype=np.int64))] = float("-inf")
    return torch.topk(scores, k, dim=1).indices.cpu().numpy()


def recommendations_frame(data: "Interactions", models: Mapping[str, object], history: np.ndarray,
                          k: int = 5, mask_seen: bool = True) -> pd.DataFrame:
    """One column per model: its top-``k`` titles (with years) for one history."""
    cols = {name: data.titles(top_k(m, [history], k, mask_seen)[0]) for name, m in models.items()}
    frame = pd.DataFrame(cols)
    frame.index = pd.RangeIndex(1, k + 1)  # the rank; unnamed, so no extra header row
    return frame


def metrics_table(results: Sequence["EvalResult"], metrics: Sequence[str] = ("NDCG", "HR", "MRR"),
                  k: int = 10, n_bootstrap: int = 1000, seed: int = 0) -> pd.DataFrame:
    """One row per model (an :class:`EvalResult` each): each metric@k and its 95% bootstrap
    interval in a column of its own (see :func:`recnotes.report.compare.accuracy_table`)."""
    from .compare import accuracy_table

    return accuracy_table({r.model: r.per_user for r in results}, [f"{m}@{k}" for m in metrics],
                          n_bootstrap=n_bootstrap, seed=seed)


_UNITS = {"train_seconds": "training (s)", "seconds_per_epoch": "s / epoch",
          "eval_users_per_second": "evaluation (users/s)", "latency_p50_ms": "latency p50 (ms)",
          "latency_p95_ms": "latency p95 (ms)", "params": "parameters", "peak_memory_mb": "peak memory (MB)",
          "flops_per_request": "FLOPs / request", "seconds_per_user": "s / user", "tokens_per_user": "tokens / user"}


def efficiency_table(figures: Mapping[str, Mapping[str, float]]) -> pd.DataFrame:
    """``{model: {metric: value}}`` -> a table with readable column names and units."""
    out = pd.DataFrame.from_dict(figures, orient="index")
    out = out.rename(columns=_UNITS)
    out.index.name = "model"
    return out
