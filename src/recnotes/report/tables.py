"""Tables a reader can read: recommendations with titles."""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

if TYPE_CHECKING:  # pragma: no cover
    from ..data.interactions import Interactions

__all__ = ["top_k", "recommendations_frame"]


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
