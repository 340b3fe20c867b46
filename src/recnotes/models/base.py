"""The recommender interface every model implements, and the pieces models share.

A model is fitted on a :class:`~recnotes.data.splits.Split` and scores the
whole catalogue for a batch of users from their histories: ``score`` returns
``[batch, n_items + 1]`` (higher is better; column 0 is the padding item and
may hold anything, the evaluator masks it).  Models never compute metrics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np
import scipy.sparse as sp
import torch

from ..data.splits import pad_sequences

if TYPE_CHECKING:  # pragma: no cover
    from ..data.splits import Split

__all__ = ["Recommender", "histories_matrix", "check_histories", "NotFittedError"]


class NotFittedError(RuntimeError):
    """``score`` was called before ``fit``."""


def check_histories(histories: Sequence[np.ndarray], n_items: int) -> list[np.ndarray]:
    """Histories as int64 arrays of item ids in ``1 .. n_items``; a clear error otherwise."""
    out = []
    for h in histories:
        a = np.asarray(h, dtype=np.int64).ravel()
        if a.size and (a.min() < 0 or a.max() > n_items):
            raise ValueError(f"history has item ids outside 0..{n_items}: min {a.min()}, max {a.max()}")
        out.append(a[a > 0])
    return out


def histories_matrix(histories: Sequence[np.ndarray], n_items: int) -> sp.csr_matrix:
    """Binary user x item matrix ``[len(histories), n_items + 1]`` from lists of item ids."""
    hs = check_histories(histories, n_items)
    indptr = np.concatenate([[0], np.cumsum([len(h) for h in hs])])
    indices = np.concatenate(hs) if hs else np.zeros(0, np.int64)
    m = sp.csr_matrix((np.ones(len(indices), np.float32), indices, indptr),
                      shape=(len(hs), n_items + 1))
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


class Recommender:
    """Base class: ``fit(split)`` then ``score(histories)``; subclasses set ``name``."""

    name: str = "Recommender"
    n_items: int | None = None

    def fit(self, split: "Split") -> "Recommender":
        """Learn from the training part of ``split``; return ``self``."""
        raise NotImplementedError

    def score(self, histories: Sequence[np.ndarray]) -> torch.Tensor:
        """Scores ``[len(histories), n_items + 1]`` for every item (higher is better)."""
        raise NotImplementedError

    def score_candidates(self, histories: Sequence[np.ndarray], candidates: np.ndarray) -> torch.Tensor:
        """Scores ``[b, c]`` of the given candidate items (default: gather from :meth:`score`)."""
        full = torch.as_tensor(self.score(histories))
        cand = torch.as_tensor(np.asarray(candidates, dtype=np.int64), device=full.device)
        return full.gather(1, cand)

    def _require_fitted(self) -> int:
        if self.n_items is None:
            raise NotFittedError(f"{self.name} is not fitted: call fit(split) first")
        return self.n_items

    def __repr__(self) -> str:
        params = {k: v for k, v in vars(self).items() if isinstance(v, (int, float, str, bool))}
        inner = ", ".join(f"{k}={v!r}" for k, v in params.items())
        return f"{self.name}({inner})"


class SequenceRecommender(Recommender, torch.nn.Module):
    """A neural next-item model: ``forward(seqs [b, L]) -> logits [b, L, n_items + 1]``.

    Subclasses build their layers in :meth:`build`; :meth:`fit` hands them to
    :func:`recnotes.models.training.train`, which trains every position of each sequence at once.
    """

    max_len: int

    def __init__(self, train_config=None) -> None:
        torch.nn.Module.__init__(self)
        self.train_config = train_config
        self.history: list[dict] = []

    def build(self, n_items: int) -> None:
        """Create the layers for a catalogue of ``n_items`` real items."""
        raise NotImplementedError

    def config(self) -> dict:
        """The constructor arguments (JSON-serialisable), to rebuild the model from a checkpoint."""
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def fit(self, split: "Split", **kwargs) -> "SequenceRecommender":
        """Build for ``split``'s catalogue and train with :func:`recnotes.models.training.train`."""
        from .training import TrainConfig, seed_everything, train

        cfg = self.train_config or TrainConfig()
        seed_everything(cfg.seed)  # the initial weights depend on the seed too
        self.build(split.n_items)
        self.history = train(self, split, cfg, **kwargs)
        return self

    @torch.no_grad()
    def score(self, histories: Sequence[np.ndarray]) -> torch.Tensor:
        """Next-item logits after each history (its last ``max_len`` items)."""
        n = self._require_fitted()
        hs = check_histories(histories, n)
        was_training = self.training
        self.eval()
        width = max(2, min(self.max_len, max((len(h) for h in hs), default=1)))
        seqs = pad_sequences(hs, width).to(self.device)
        logits = self.last_logits(seqs)
        self.train(was_training)
        return logits.float()

    def last_logits(self, seqs: torch.Tensor) -> torch.Tensor:
        """Logits at the last position only ``[b, n_items + 1]``."""
        return self(seqs)[:, -1, :]

    def hidden_at(self, seqs: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
        """The last hidden states ``[n, d]`` at the positions where ``where`` is True (training);
        the logits there are ``hidden_at @ weight.T + bias`` with :meth:`output_layer`."""
        raise NotImplementedError

    def output_layer(self) -> tuple[torch.Tensor, "torch.Tensor | None"]:
        """The output layer's ``(weight [n_items + 1, d], bias or None)``."""
        raise NotImplementedError

    def logits_at(self, seqs: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
        """Logits ``[n, n_items + 1]`` at the positions where ``where`` is True."""
        weight, bias = self.output_layer()
        return torch.nn.functional.linear(self.hidden_at(seqs, where), weight, bias)
