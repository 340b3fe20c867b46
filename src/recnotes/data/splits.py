"""Train / validation / test splits and padded sequence tensors.

Two splits share one structure, :class:`Split`:

* :func:`leave_one_out` (protocol P1, the book's primary split): per user,
  interactions sorted by time with ties kept in the original row order
  (:meth:`Interactions.sequences`); the last item is the test target, the
  second-to-last the validation target, the rest is training data.
* :func:`random_split` (the classic-baseline literature's split): per user,
  two interactions drawn at random (seeded) are held out, one as validation
  and one as test target; the rest, still in chronological order, is training
  data.

A model is fitted on ``histories("valid")`` (= train) to tune, and asked to
predict the test target from ``histories("test")`` (= train + the validation
item, appended last), so no held-out interaction is ever in the data a
prediction sees.  In a random split the validation item is not necessarily
the most recent one, so sequential models belong on the leave-one-out split.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch

from .interactions import PAD, Interactions

__all__ = ["tied_targets", "Split", "leave_one_out", "random_split", "pad_sequences", "STAGES", "check_stage"]

STAGES = ("valid", "test")


def check_stage(stage: str) -> None:
    if stage not in STAGES:
        raise ValueError(f"stage must be 'valid' or 'test', not {stage!r}")


@dataclass(frozen=True, eq=False)
class Split:
    """Per-user training sequences and one validation and one test target per user."""

    data: Interactions  # the (filtered) interactions the split was made from
    train: list[np.ndarray]  # per internal user: chronological train items (int64)
    valid: np.ndarray  # [n_users] validation target item per user
    test: np.ndarray  # [n_users] test target item per user
    kind: str  # "loo" or "random"
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def n_users(self) -> int:
        return len(self.train)

    @property
    def n_items(self) -> int:
        """Number of real items; score tensors have ``n_items + 1`` columns (0 = padding)."""
        return self.data.n_items

    def __repr__(self) -> str:
        n_train = sum(len(t) for t in self.train)
        return (f"Split({self.kind!r} of {self.data.name!r}: {self.n_users:,} users, "
                f"{self.n_items:,} items, {n_train:,} train interactions)")

    def histories(self, stage: str) -> list[np.ndarray]:
        """What a model sees before predicting: ``"valid"`` -> train; ``"test"`` -> train + [valid]."""
        check_stage(stage)
        if stage == "valid":
            return self.train
        if "test_histories" not in self._cache:
            self._cache["test_histories"] = [np.append(t, v) for t, v in zip(self.train, self.valid)]
        return self._cache["test_histories"]

    def targets(self, stage: str) -> np.ndarray:
        """The held-out item per user for ``stage`` (``"valid"`` or ``"test"``)."""
        check_stage(stage)
        return self.valid if stage == "valid" else self.test

    def select_users(self, users: np.ndarray) -> "Split":
        """The same split restricted to some users (renumbered ``0 .. len(users)-1`` in the
        given order), with the item ids and catalogue unchanged, so a model trained on one
        population of users can be fine-tuned or evaluated on another."""
        users = np.asarray(users, dtype=np.int64)
        if users.ndim != 1 or len(users) == 0:
            raise ValueError("select_users needs a non-empty 1-D array of user ids")
        if users.min() < 0 or users.max() >= self.n_users or len(np.unique(users)) != len(users):
            raise ValueError(f"user ids must be distinct and in 0..{self.n_users - 1}")
        return Split(data=self.data.select_users(users), train=[self.train[u] for u in users],
                     valid=self.valid[users], test=self.test[users], kind=self.kind)

    def train_matrix(self, stage: str = "valid") -> sp.csr_matrix:
        """Binary user x item matrix ``[n_users, n_items + 1]`` of ``histories(stage)``."""
        key = f"matrix_{stage}"
        if key not in self._cache:
            hist = self.histories(stage)
            lengths = np.fromiter((len(h) for h in hist), np.int64, len(hist))
            rows = np.repeat(np.arange(len(hist)), lengths)
            cols = np.concatenate(hist) if len(hist) else np.zeros(0, np.int64)
            m = sp.csr_matrix((np.ones(len(cols), np.float32), (rows, cols)),
                              shape=(self.n_users, self.n_items + 1))
            m.sum_duplicates()
            m.data[:] = 1.0
            self._cache[key] = m
        return self._cache[key]


def _prepare(data: Interactions, min_interactions: int, drop_short: bool) -> Interactions:
    if len(data) == 0:
        raise ValueError("no interactions: cannot split empty data")
    if min_interactions < 3:
        raise ValueError(f"min_interactions must be >= 3 (one train, one validation and one "
                         f"test item per user), not {min_interactions}")
    counts = data.user_counts()
    short = np.flatnonzero(counts < min_interactions)
    if len(short) == 0:
        return data
    if drop_short:
        return data.filter(min_user=min_interactions, iterate=False)
    raise ValueError(
        f"{len(short)} user(s) have fewer than {min_interactions} interactions (for example "
        f"original user {data.user_ids[short[:1]].tolist()[0]!r} with {counts[short[0]]}); filter them first "
        f"(data.filter(min_user={min_interactions})) or pass drop_short=True")


def leave_one_out(data: Interactions, min_interactions: int = 3, drop_short: bool = False) -> Split:
    """Chronological leave-one-out: last item = test, second-to-last = validation.

    Users with fewer than ``min_interactions`` raise a ``ValueError``; with
    ``drop_short=True`` they are dropped instead (users and items re-indexed).
    """
    data = _prepare(data, min_interactions, drop_short)
    seqs = data.sequences()
    return Split(data=data, train=[s[:-2] for s in seqs],
                 valid=np.array([s[-2] for s in seqs], np.int64),
                 test=np.array([s[-1] for s in seqs], np.int64), kind="loo")


def tied_targets(split: Split) -> np.ndarray:
    """Per user of a leave-one-out split: whether the test and the validation interaction share
    a timestamp (which of the two is "next" is then only the order of the raw file)."""
    if split.kind != "loo":
        raise ValueError(f"tied targets are defined for a leave-one-out split, not {split.kind!r}")
    data = split.data
    order = data.chronological_order()
    times = np.split(data.timestamp[order], np.cumsum(data.user_counts())[:-1])
    return np.array([t[-1] == t[-2] for t in times], dtype=bool)


def random_split(data: Interactions, seed: int = 0, min_interactions: int = 3,
                 drop_short: bool = False) -> Split:
    """Random hold-out: per user, two interactions drawn uniformly at random (seeded)
    become the validation and test targets; the rest stays, in chronological order,
    as training data.  Same checks and ``drop_short`` option as :func:`leave_one_out`.
    """
    data = _prepare(data, min_interactions, drop_short)
    rng = np.random.default_rng(seed)
    order = data.chronological_order()  # grouped by user, chronological within a user
    user = data.user[order]
    # A random key per interaction; per user, the largest key -> test, second largest -> valid.
    key = rng.random(len(order))
    by_key = np.lexsort((key, user))  # positions into `order`, grouped by user, ascending key
    ends = np.cumsum(data.user_counts())
    test_pos, valid_pos = by_key[ends - 1], by_key[ends - 2]
    held = np.zeros(len(order), bool)
    held[test_pos] = held[valid_pos] = True
    items = data.item[order]
    kept_counts = np.bincount(user[~held], minlength=data.n_users)
    train = np.split(items[~held], np.cumsum(kept_counts)[:-1])
    return Split(data=data, train=train, valid=items[valid_pos].astype(np.int64),
                 test=items[test_pos].astype(np.int64), kind="random")


def pad_sequences(seqs: list[np.ndarray], max_len: int, pad: int = PAD) -> torch.LongTensor:
    """Stack sequences into ``[len(seqs), max_len]`` with LEFT padding: the most recent
    item is always in the last column; longer sequences keep their last ``max_len`` items."""
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, not {max_len}")
    out = np.full((len(seqs), max_len), pad, np.int64)
    for row, s in enumerate(seqs):
        s = np.asarray(s, np.int64)[-max_len:]
        if len(s):
            out[row, max_len - len(s):] = s
    return torch.from_numpy(out)
