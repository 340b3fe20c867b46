"""ItemKNN: item-item cosine similarity with shrinkage, pruned to k neighbours.

``sim(i, j) = <x_i, x_j> / (|x_i| |x_j| + shrink)`` over the binary training
matrix's item columns; each item keeps its ``k`` most similar items; a user's
score for item ``j`` sums the similarities of ``j`` to the items in the history.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np
import scipy.sparse as sp
import torch

from .base import Recommender, histories_matrix

if TYPE_CHECKING:  # pragma: no cover
    from ..data.splits import Split

__all__ = ["ItemKNN", "cosine_knn"]


def cosine_knn(x: sp.spmatrix, k: int, shrink: float) -> sp.csr_matrix:
    """Item-item similarity ``[n_cols, n_cols]``: row ``i`` holds item ``i``'s top-``k``
    neighbours (shrunk cosine, no self-similarity)."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if shrink < 0:
        raise ValueError(f"shrink must be >= 0, got {shrink}")
    x = sp.csr_matrix(x, dtype=np.float64)
    co = (x.T @ x).tocsr()
    norms = np.sqrt(co.diagonal())
    co.setdiag(0.0)
    co.eliminate_zeros()
    co = co.tocoo()
    vals = co.data / (norms[co.row] * norms[co.col] + shrink + 1e-12)
    sim = sp.csr_matrix((vals, (co.row, co.col)), shape=co.shape)
    rows, cols, data = [], [], []
    for i in range(sim.shape[0]):
        lo, hi = sim.indptr[i], sim.indptr[i + 1]
        if hi == lo:
            continue
        v, c = sim.data[lo:hi], sim.indices[lo:hi]
        if hi - lo > k:
            # stable tie-break on the column id keeps the result deterministic
            top = np.lexsort((c, -v))[:k]
            v, c = v[top], c[top]
        rows.append(np.full(len(c), i))
        cols.append(c)
        data.append(v)
    if not rows:
        return sp.csr_matrix(sim.shape, dtype=np.float32)
    return sp.csr_matrix((np.concatenate(data).astype(np.float32),
                          (np.concatenate(rows), np.concatenate(cols))), shape=sim.shape)


class ItemKNN(Recommender):
    """Item-based nearest neighbours (cosine with shrinkage, ``k`` neighbours per item)."""

    name = "ItemKNN"

    def __init__(self, k: int = 10, shrink: float = 0.0) -> None:
        self.k = k
        self.shrink = shrink
        self.sim: sp.csr_matrix | None = None

    def fit(self, split: "Split") -> "ItemKNN":
        """Compute the pruned similarity matrix from the binary training matrix."""
        x = split.train_matrix("valid")
        if x.nnz == 0:
            raise ValueError("ItemKNN: the training matrix is empty")
        self.n_items = split.n_items
        # row i = neighbours of i; scoring item j sums sim(j, h) over history items h
        self.sim = cosine_knn(x, self.k, self.shrink).T.tocsr()
        return self

    def request_flops(self, history: np.ndarray) -> int:
        """Two FLOPs (a product and a sum) per similarity the history's films touch (SciPy,
        which PyTorch's counter does not see)."""
        return 2 * int(self.sim[np.asarray(history)].nnz)

    def score(self, histories: Sequence[np.ndarray]) -> torch.Tensor:
        """``H @ S``: summed similarities of each item to the history's items."""
        n = self._require_fitted()
        h = histories_matrix(histories, n)
        return torch.from_numpy(np.asarray((h @ self.sim).todense(), dtype=np.float32))
