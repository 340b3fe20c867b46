"""The two evaluation protocols of the book.

* **P1, full ranking** (:func:`evaluate_full`): every user's target is ranked
  against the whole catalogue.  The padding column 0 is always masked; with
  ``mask_seen=True`` (the default, reported) every item in the user's history
  is masked too, in one vectorized scatter per batch.  The target itself is
  never masked, even when it also occurs in the history: in other datasets
  users re-consume items, and masking the answer would make it unreachable.
* **P2, candidate ranking** (:func:`sample_candidates`, :func:`evaluate_candidates`):
  a seeded sample of users, each with the true target plus negatives drawn
  uniformly from the items the user never interacted with; every model ranks
  the same candidates (by :meth:`score_candidates` when it has one, otherwise by
  gathering its full scores).

A model has ``score(histories) -> [batch, n_items + 1]`` (higher is better) and
optionally ``score_candidates(histories, candidates) -> [batch, n_candidates]``;
its ``name`` (or class name) labels the results.  Ranks follow the pessimistic
tie rule of :mod:`recnotes.evaluate.metrics`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from ..data.splits import Split, check_stage
from .metrics import beyond_accuracy, check_ks, rank_metrics, target_ranks
from .uncertainty import summary_table

__all__ = ["EvalResult", "Candidates", "evaluate_full", "sample_candidates",
           "evaluate_candidates", "model_name", "seed_mean"]

_NEG_INF = float("-inf")


def model_name(model: Any) -> str:
    """The label of a model in tables: its ``name`` attribute, else its class name."""
    name = getattr(model, "name", None)
    return name if isinstance(name, str) and name else type(model).__name__


@dataclass(eq=False)
class EvalResult:
    """Per-user outcome of one protocol for one model (users in ascending id order)."""

    protocol: str  # "P1" or "P2"
    model: str
    users: np.ndarray  # internal user ids, ascending
    ranks: np.ndarray  # 0-based rank of each user's target
    per_user: pd.DataFrame  # index = user, columns "HR@K", "NDCG@K", "MRR@K"
    ks: tuple[int, ...]
    stage: str
    n_candidates: int  # items ranked per user (catalogue size in P1)
    topk: np.ndarray | None = None  # [n_users, max K] top items after masking (P1); 0 = empty slot
    popularity: np.ndarray | None = None  # users per item in histories(stage), [n_items + 1] (P1)
    n_train_users: int | None = None
    mask_seen: bool | None = None
    seconds: float = math.nan  # wall time of scoring and ranking

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def users_per_second(self) -> float:
        return self.n_users / self.seconds if self.seconds > 0 else math.nan

    def summary(self, n_bootstrap: int = 1000, seed: int = 0, level: float = 0.95) -> pd.DataFrame:
        """Mean of each per-user metric with a seeded bootstrap interval:
        columns ``metric``, ``k``, ``value``, ``ci_low``, ``ci_high``, ``n_users``."""
        return summary_table(self.per_user, n_bootstrap, seed, level)

    def beyond_accuracy(self, ks: Sequence[int] | None = None) -> pd.DataFrame:
        """Coverage, novelty, average popularity and Gini of the top-K lists (P1 only)."""
        if self.topk is None or self.popularity is None:
            raise ValueError(f"beyond-accuracy metrics need top-K lists over the catalogue "
                             f"(protocol P1); this is {self.protocol}")
        return beyond_accuracy(self.topk, self.popularity, self.n_train_users or self.n_users,
                               self.ks if ks is None else tuple(ks))

    def __repr__(self) -> str:
        return (f"EvalResult({self.protocol}, {self.model!r}, {self.n_users} users, "
                f"stage={self.stage!r}, {self.seconds:.3f} s)")


def _check_users(users: np.ndarray | None, n_users: int) -> np.ndarray:
    if users is None:
        return np.arange(n_users)
    users = np.unique(np.asarray(users, np.int64))
    if len(users) == 0:
        raise ValueError("users is empty: nothing to evaluate")
    if users[0] < 0 or users[-1] >= n_users:
        raise ValueError(f"user ids must be internal ids in 0 .. {n_users - 1}")
    return users


def _as_scores(scores: Any, shape: tuple[int, int], device: torch.device | None, what: str) -> torch.Tensor:
    """A private float copy of ``scores`` on ``device``; wrong shapes raise ``ValueError``."""
    s = scores if isinstance(scores, torch.Tensor) else torch.as_tensor(np.asarray(scores))
    if tuple(s.shape) != shape:
        raise ValueError(f"{what} returned scores of shape {tuple(s.shape)}, expected {shape} "
                         f"([users in batch, items])")
    dtype = s.dtype if s.dtype in (torch.float32, torch.float64) else torch.float32
    return s.detach().to(device=device if device is not None else s.device, dtype=dtype, copy=True)


def _batch_history(matrix: sp.csr_matrix, users: np.ndarray, device: torch.device):
    """(row, column) pairs of the history items of a batch of users, from a CSR index
    (vectorized: one sparse row selection, no loop over users)."""
    sub = matrix[users]
    lengths = np.diff(sub.indptr)
    rows = np.repeat(np.arange(len(users)), lengths)
    return (torch.from_numpy(rows).to(device), torch.from_numpy(sub.indices.astype(np.int64)).to(device),
            torch.from_numpy(lengths.astype(np.int64)).to(device))


def evaluate_full(model: Any, split: Split, stage: str = "test", ks: Sequence[int] = (1, 5, 10, 20),
                  mask_seen: bool = True, batch_size: int = 256, users: np.ndarray | None = None,
                  device: torch.device | str | None = None) -> EvalResult:
    """Protocol P1: rank each user's ``stage`` target among all items, in batches.

    ``device`` defaults to the device of the model's scores.  Keeps the top
    ``max(ks)`` items per user for :meth:`EvalResult.beyond_accuracy`.
    """
    check_stage(stage)
    ks = check_ks(ks, split.n_items)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, not {batch_size}")
    users = _check_users(users, split.n_users)
    hist, targets = split.histories(stage), split.targets(stage)
    matrix = split.train_matrix(stage)
    width, kmax = split.n_items + 1, max(ks)
    ranks, tops = [], []
    start_time = time.perf_counter()
    for start in range(0, len(users), batch_size):
        u = users[start:start + batch_size]
        with torch.no_grad():
            raw = model.score([hist[i] for i in u])
        s = _as_scores(raw, (len(u), width), None if device is None else torch.device(device),
                       f"{model_name(model)}.score")
        dev = s.device
        t_idx = torch.from_numpy(targets[u]).to(dev)
        t = s.gather(1, t_idx.view(-1, 1)).clone()
        s[:, 0] = _NEG_INF
        n_excluded = torch.ones(len(u), dtype=torch.int64, device=dev)
        if mask_seen:
            rows, cols, lengths = _batch_history(matrix, u, dev)
            s[rows, cols] = _NEG_INF  # one scatter for the whole batch
            in_hist = torch.zeros(len(u), dtype=torch.int64, device=dev).index_add_(
                0, rows, (cols == t_idx[rows]).to(torch.int64))
            n_excluded += lengths - in_hist
            s.scatter_(1, t_idx.view(-1, 1), t)  # the target is never masked
        ranks.append(target_ranks(s, t_idx, n_excluded).cpu())
        top = torch.topk(s, kmax, dim=1)
        tops.append(torch.where(top.values == _NEG_INF, 0, top.indices).cpu())
    seconds = time.perf_counter() - start_time
    ranks_np = torch.cat(ranks).numpy().astype(np.int64)
    popularity = np.asarray(split.train_matrix(stage).sum(axis=0)).ravel().astype(np.int64)
    per_user = pd.DataFrame(rank_metrics(ranks_np, ks), index=pd.Index(users, name="user"))
    return EvalResult("P1", model_name(model), users, ranks_np, per_user, ks, stage, split.n_items,
                      topk=torch.cat(tops).numpy().astype(np.int64), popularity=popularity,
                      n_train_users=split.n_users, mask_seen=mask_seen, seconds=seconds)


@dataclass(frozen=True, eq=False)
class Candidates:
    """A fixed candidate set per sampled user; the target sits at ``target_pos``."""

    users: np.ndarray  # [n] internal user ids, ascending
    items: np.ndarray  # [n, 1 + n_negatives], shuffled
    target_pos: np.ndarray  # [n]
    stage: str
    seed: int

    @property
    def targets(self) -> np.ndarray:
        return self.items[np.arange(len(self.users)), self.target_pos]


def sample_candidates(split: Split, n_users: int | None = 200, n_negatives: int = 19, seed: int = 0,
                      stage: str = "test") -> Candidates:
    """Protocol P2's candidates: ``n_users`` users drawn without replacement (all users
    when there are fewer, or when ``n_users`` is None), each with the ``stage`` target
    plus ``n_negatives`` distinct items drawn uniformly from those the user never
    interacted with (in any part of the split), shuffled; all seeded by ``seed``."""
    check_stage(stage)
    if n_negatives < 0:
        raise ValueError(f"n_negatives must be >= 0, not {n_negatives}")
    if n_users is not None and n_users < 1:
        raise ValueError(f"n_users must be >= 1, not {n_users}")
    rng = np.random.default_rng(seed)
    n = split.n_users if n_users is None else min(n_users, split.n_users)
    users = np.sort(rng.choice(split.n_users, n, replace=False))
    seqs, targets = split.data.sequences(), split.targets(stage)
    all_items = np.arange(1, split.n_items + 1)
    items = np.empty((n, 1 + n_negatives), np.int64)
    target_pos = np.empty(n, np.int64)
    for row, u in enumerate(users):
        pool = np.setdiff1d(all_items, seqs[u], assume_unique=False)
        if len(pool) < n_negatives:
            raise ValueError(f"user {u} has only {len(pool)} unseen items, fewer than "
                             f"n_negatives={n_negatives}")
        cand = np.concatenate([[targets[u]], rng.choice(pool, n_negatives, replace=False)])
        perm = rng.permutation(len(cand))
        items[row] = cand[perm]
        target_pos[row] = int(np.flatnonzero(perm == 0)[0])
    return Candidates(users, items, target_pos, stage, seed)


def evaluate_candidates(model: Any, split: Split, candidates: Candidates, stage: str = "test",
                        ks: Sequence[int] = (1, 5, 10), batch_size: int = 256,
                        device: torch.device | str | None = None) -> EvalResult:
    """Protocol P2: rank each sampled user's target among its candidates.

    Uses ``model.score_candidates`` when the model has it, otherwise gathers the
    candidates' columns from ``model.score``.  No masking: candidates never
    contain a history item.
    """
    check_stage(stage)
    if candidates.stage != stage:
        raise ValueError(f"candidates were sampled for stage {candidates.stage!r}, not {stage!r}")
    n_cand = candidates.items.shape[1]
    ks = check_ks(ks, n_cand)
    users = candidates.users
    if len(users) and users.max() >= split.n_users:
        raise ValueError("candidates refer to users that this split does not have")
    if not np.array_equal(candidates.targets, split.targets(stage)[users]):
        raise ValueError("candidates were sampled from a different split (targets differ)")
    hist = split.histories(stage)
    name = model_name(model)
    dev = None if device is None else torch.device(device)
    ranks = []
    start_time = time.perf_counter()
    for start in range(0, len(users), batch_size):
        u = users[start:start + batch_size]
        cand = candidates.items[start:start + batch_size]
        h = [hist[i] for i in u]
        with torch.no_grad():
            if hasattr(model, "score_candidates"):
                s = _as_scores(model.score_candidates(h, cand), cand.shape, dev, f"{name}.score_candidates")
            else:
                full = _as_scores(model.score(h), (len(u), split.n_items + 1), dev, f"{name}.score")
                s = full.gather(1, torch.from_numpy(cand).to(full.device))
        pos = torch.from_numpy(candidates.target_pos[start:start + batch_size]).to(s.device)
        ranks.append(target_ranks(s, pos).cpu())
    seconds = time.perf_counter() - start_time
    ranks_np = torch.cat(ranks).numpy().astype(np.int64) if ranks else np.zeros(0, np.int64)
    per_user = pd.DataFrame(rank_metrics(ranks_np, ks), index=pd.Index(users, name="user"))
    return EvalResult("P2", name, users, ranks_np, per_user, ks, stage, n_cand, seconds=seconds)


def seed_mean(results: "dict[int, EvalResult]") -> pd.DataFrame:
    """Each user's metrics averaged over the seeds' results (all on the same users)."""
    frames = list(results.values())
    for f in frames[1:]:
        if not f.per_user.index.equals(frames[0].per_user.index):
            raise ValueError("the seeds were evaluated on different users")
    return sum(f.per_user for f in frames) / len(frames)
