"""Genre-and-year popularity: a cold-start baseline that needs no interactions of the film itself.

A film's score is the popularity of the films *like it*: the mean number of
training users of the other films, each weighted by how much it shares the
film's genres (Jaccard overlap of the genre sets) and how close its release
year is (the weight halves every ``year_half_life`` years apart)::

    w(i, j) = jaccard(genres_i, genres_j) * 0.5 ** (|year_i - year_j| / year_half_life)
    score(i) = sum_j w(i, j) * n_j / sum_j w(i, j)      over films j != i with n_j > 0

``n_j`` is the number of training users of film ``j``.  The film's own
interactions never enter its score, so a new film (nobody rated it) is scored by
the same rule as every other film and competes with them on equal terms.  A
missing year leaves the weight to the genres; a film whose genres overlap with
no rated film gets the mean popularity of all rated films.  Every user gets the
same scores (the evaluator masks the films each user has seen).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np
import pandas as pd
import torch

from .base import Recommender, check_histories

if TYPE_CHECKING:  # pragma: no cover
    from ..data.splits import Split

__all__ = ["GenreYearPopularity", "genre_year_weights"]


def _genre_matrix(genres: Sequence[Sequence[str]]) -> np.ndarray:
    """Binary film x genre matrix (``"unknown"`` is no genre)."""
    names = sorted({g for gs in genres for g in gs if g and g != "unknown"})
    index = {g: c for c, g in enumerate(names)}
    out = np.zeros((len(genres), max(1, len(names))), np.float64)
    for row, gs in enumerate(genres):
        for g in gs:
            if g in index:
                out[row, index[g]] = 1.0
    return out


def genre_year_weights(genres: Sequence[Sequence[str]], years: Sequence[float],
                       year_half_life: float = 2.0) -> np.ndarray:
    """``w(i, j)`` of the module docstring for every pair of films, ``[n, n]`` (diagonal 0)."""
    if year_half_life <= 0:
        raise ValueError(f"year_half_life must be positive, not {year_half_life}")
    m = _genre_matrix(genres)
    inter = m @ m.T
    sizes = m.sum(1)
    union = sizes[:, None] + sizes[None, :] - inter
    jaccard = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    y = np.asarray(pd.array(years, dtype="Float64").to_numpy(dtype=np.float64, na_value=np.nan))
    gap = np.abs(y[:, None] - y[None, :])
    era = np.where(np.isnan(gap), 1.0, 0.5 ** (np.nan_to_num(gap) / year_half_life))
    w = jaccard * era
    np.fill_diagonal(w, 0.0)
    return w


class GenreYearPopularity(Recommender):
    """Popularity of the films sharing a film's genres and era (see the module docstring)."""

    name = "GenreYearPopularity"

    def __init__(self, year_half_life: float = 2.0) -> None:
        if year_half_life <= 0:
            raise ValueError(f"year_half_life must be positive, not {year_half_life}")
        self.year_half_life = year_half_life
        self.scores: np.ndarray | None = None

    def fit(self, split: "Split") -> "GenreYearPopularity":
        """Count training users per film, then score every film from its rated neighbours."""
        meta = split.data.item_meta
        counts = np.asarray((split.train_matrix("valid") > 0).sum(axis=0)).ravel().astype(np.float64)
        counts[0] = 0.0
        w = genre_year_weights(list(meta["genres"]), list(meta["year"]), self.year_half_life)
        w[:, counts <= 0] = 0.0  # only rated films are neighbours; the padding item never is
        total = w.sum(1)
        fallback = counts[counts > 0].mean() if (counts > 0).any() else 0.0
        scores = np.where(total > 0, (w @ counts) / np.where(total > 0, total, 1.0), fallback)
        scores[0] = -1.0  # the padding item ranks below every real item
        self.n_items, self.scores = split.n_items, scores.astype(np.float32)
        return self

    def score(self, histories: Sequence[np.ndarray]) -> torch.Tensor:
        """The same scores ``[b, n_items + 1]`` for every history."""
        n = self._require_fitted()
        check_histories(histories, n)
        return torch.from_numpy(self.scores).unsqueeze(0).expand(len(histories), -1).clone()
