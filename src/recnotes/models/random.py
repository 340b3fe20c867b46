"""Random: uniformly random scores, the chance level of every metric.

Each history's scores are drawn from a generator seeded by the model's seed and
the history itself (and, for ``score_candidates``, the candidates), so a user
gets the same random ranking whatever the batch, the order of the calls or the
chapter: Random ranks the same P2 candidates identically everywhere.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from .base import Recommender, check_histories

if TYPE_CHECKING:  # pragma: no cover
    from ..data.splits import Split

__all__ = ["Random"]


def _row_rng(seed: int, *parts: np.ndarray) -> np.random.Generator:
    key = b"|".join(np.ascontiguousarray(p, dtype=np.int64).tobytes() for p in parts)
    return np.random.default_rng([seed, zlib.crc32(key)])


class Random(Recommender):
    """Seeded uniform scores per history: a reproducible chance level."""

    name = "Random"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def fit(self, split: "Split") -> "Random":
        """Only remembers the catalogue size."""
        self.n_items = split.n_items
        return self

    def request_flops(self, history: np.ndarray) -> int:
        """None: the scores are drawn, not computed."""
        return 0

    def score(self, histories: Sequence[np.ndarray]) -> torch.Tensor:
        """Uniform random scores ``[b, n_items + 1]``, a function of (seed, history)."""
        n = self._require_fitted()
        hs = check_histories(histories, n)
        rows = [_row_rng(self.seed, h).random(n + 1, dtype=np.float32) for h in hs]
        return torch.from_numpy(np.stack(rows)) if rows else torch.zeros(0, n + 1)

    def score_candidates(self, histories: Sequence[np.ndarray], candidates: np.ndarray) -> torch.Tensor:
        """Uniform random scores ``[b, c]``, a function of (seed, history, candidates)."""
        n = self._require_fitted()
        hs = check_histories(histories, n)
        cands = np.asarray(candidates, dtype=np.int64)
        rows = [_row_rng(self.seed, h, c).random(len(c)) for h, c in zip(hs, cands)]
        return torch.from_numpy(np.stack(rows)) if rows else torch.zeros(cands.shape, dtype=torch.float64)
