"""Popularity: recommend what most users interacted with (the floor every model must beat)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from .base import Recommender, check_histories

if TYPE_CHECKING:  # pragma: no cover
    from ..data.splits import Split

__all__ = ["Popularity"]


class Popularity(Recommender):
    """Every user gets the same scores: the number of training users per item."""

    name = "Popularity"

    def __init__(self) -> None:
        self.counts: np.ndarray | None = None

    def fit(self, split: "Split") -> "Popularity":
        """Count, per item, the training users who interacted with it."""
        x = split.train_matrix("valid")
        self.n_items = split.n_items
        counts = np.asarray((x > 0).sum(axis=0)).ravel().astype(np.float32)
        counts[0] = -1.0  # the padding item ranks below every real item
        self.counts = counts
        return self

    def request_flops(self, history: np.ndarray) -> int:
        """None: the scores are the stored counts."""
        return 0

    def score(self, histories: Sequence[np.ndarray]) -> torch.Tensor:
        """The popularity counts, repeated for each history."""
        n = self._require_fitted()
        check_histories(histories, n)
        row = torch.from_numpy(self.counts)
        return row.unsqueeze(0).expand(len(histories), -1).clone()
