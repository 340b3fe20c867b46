"""Random: uniformly random scores, the chance level of every metric."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from .base import Recommender, check_histories

if TYPE_CHECKING:  # pragma: no cover
    from ..data.splits import Split

__all__ = ["Random"]


class Random(Recommender):
    """Scores drawn from a seeded generator: reproducible chance level."""

    name = "Random"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self._gen: torch.Generator | None = None

    def fit(self, split: "Split") -> "Random":
        """Only remembers the catalogue size and resets the generator."""
        self.n_items = split.n_items
        self._gen = torch.Generator().manual_seed(self.seed)
        return self

    def score(self, histories: Sequence[np.ndarray]) -> torch.Tensor:
        """Uniform random scores ``[b, n_items + 1]``."""
        n = self._require_fitted()
        check_histories(histories, n)
        return torch.rand(len(histories), n + 1, generator=self._gen)
