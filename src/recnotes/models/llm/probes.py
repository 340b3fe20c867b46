"""Bias probes for rankers: position bias, popularity bias, and re-recommending watched items.

* :func:`position_bias`: the same candidates shown in several orders, the true
  item placed at evenly spread prompt positions (first and last included);
  how the true item's rank depends on where the prompt put it.
* :func:`popularity_bias`: the rank correlation between a model's candidate
  scores and the items' training popularity.
* :func:`watched_first`: one candidate replaced by an item the prompt lists in
  the user's history; how often the model ranks a watched item first, against
  the rate a random ranker would (``n_watched / n_candidates``).

Ranks are 0-based: the number of candidates scored strictly higher than the
true item.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["position_bias", "position_summary", "popularity_bias", "PopularityBias",
           "watched_first", "WatchedFirst", "train_popularity", "top_agreement", "watched_first_rate"]


def _rank_of(scores: np.ndarray, pos: int) -> int:
    return int((scores > scores[pos]).sum())


def position_bias(ranker: Any, histories: Sequence[Sequence[int]], candidates: np.ndarray,
                  target_pos: Sequence[int], n_orders: int = 4, seed: int = 0) -> pd.DataFrame:
    """One row per (user, order): the true item's prompt position and its rank
    (``user`` is the row index into ``histories``).

    ``ranker`` needs ``score_user(history, candidates, order)`` (as
    :class:`~recnotes.models.llm.LLMRanker` has).  Order ``o`` puts the true
    item at position ``round(o * (n - 1) / (n_orders - 1))`` and the others in a
    seeded random order.
    """
    candidates = np.asarray(candidates)
    n = candidates.shape[1]
    if not 1 <= n_orders <= n:
        raise ValueError(f"n_orders must be in 1..{n}, got {n_orders}")
    spots = np.linspace(0, n - 1, n_orders).round().astype(int) if n_orders > 1 else np.array([0])
    rows = []
    for u, (hist, cands, t) in enumerate(zip(histories, candidates, target_pos)):
        rng = np.random.default_rng([seed, u])
        others = [k for k in range(n) if k != int(t)]
        for o, spot in enumerate(spots):
            rest = list(rng.permutation(others))
            order = np.array(rest[:spot] + [int(t)] + rest[spot:])
            scores = ranker.score_user(list(hist), cands, order=order)
            rows.append({"user": u, "order": o, "position": int(spot),
                         "rank": _rank_of(np.asarray(scores), int(t))})
    return pd.DataFrame(rows)


def position_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per prompt position: mean rank, HR@1 and users, plus the Spearman correlation
    of position and rank over all rows (``attrs["spearman"]``, ``attrs["p_value"]``)."""
    out = table.groupby("position").agg(mean_rank=("rank", "mean"),
                                        hr1=("rank", lambda r: float((r == 0).mean())),
                                        users=("user", "nunique")).reset_index()
    rho, p = stats.spearmanr(table["position"], table["rank"]) if len(table) > 2 else (np.nan, np.nan)
    out.attrs.update(spearman=float(rho), p_value=float(p))
    return out


def train_popularity(histories: Sequence[Sequence[int]], n_items: int) -> np.ndarray:
    """Interactions per item id in the given (training) histories, shape ``[n_items + 1]``."""
    items = [int(i) for h in histories for i in np.asarray(h).ravel() if i != 0]
    return np.bincount(np.asarray(items, dtype=np.int64), minlength=n_items + 1)


@dataclass
class PopularityBias:
    """Rank correlation of scores with training popularity (1 = ranks by popularity)."""

    mean_spearman: float  # mean over users of the within-user correlation
    pooled_spearman: float  # over all (user, candidate) pairs
    n_users: int


def popularity_bias(scores: np.ndarray, candidates: np.ndarray,
                    popularity: np.ndarray) -> PopularityBias:
    """How much candidate scores follow item popularity (Spearman rank correlation)."""
    scores, candidates = np.asarray(scores, float), np.asarray(candidates)
    if scores.shape != candidates.shape:
        raise ValueError(f"scores {scores.shape} and candidates {candidates.shape} differ in shape")
    pop = np.asarray(popularity, float)[candidates]
    per_user = []
    for s, p in zip(scores, pop):
        if np.ptp(s) > 0 and np.ptp(p) > 0:
            per_user.append(stats.spearmanr(s, p)[0])
    pooled = stats.spearmanr(scores.ravel(), pop.ravel())[0] if scores.size > 2 else np.nan
    return PopularityBias(mean_spearman=float(np.mean(per_user)) if per_user else float("nan"),
                          pooled_spearman=float(pooled), n_users=len(per_user))


def top_agreement(scores: np.ndarray, candidates: np.ndarray, reference: np.ndarray) -> float:
    """The share of users whose highest-scored candidate is also the highest under ``reference``
    (a value per item id, such as training popularity; a film tied at the reference's top counts
    as its top)."""
    scores, candidates = np.asarray(scores, float), np.asarray(candidates)
    if scores.shape != candidates.shape:
        raise ValueError(f"scores {scores.shape} and candidates {candidates.shape} differ in shape")
    ref = np.asarray(reference, float)[candidates]
    pick = scores.argmax(axis=1)
    rows = np.arange(len(scores))
    return float((ref[rows, pick] == ref.max(axis=1)).mean()) if len(scores) else float("nan")


def watched_first_rate(scores: np.ndarray, watched_scores: np.ndarray, slots: Sequence[int]) -> float:
    """The share of users for whom an inserted watched film outscores every remaining candidate
    (the candidate in the slot it takes, ``slots[u]``, is dropped; likelihood scores of one
    candidate do not depend on the others)."""
    scores = np.asarray(scores, float)
    slots = np.asarray(slots)
    keep = np.ones(scores.shape, bool)
    keep[np.arange(len(slots)), slots] = False
    others = np.where(keep, scores, -np.inf).max(axis=1)
    return float((np.asarray(watched_scores) > others).mean())


@dataclass
class WatchedFirst:
    """How often an already-watched item is ranked first."""

    rate: float  # share of users whose top-ranked candidate is a watched item
    chance: float  # the rate of a random ranker
    target_first_rate: float  # share of users whose true next item is ranked first
    n_users: int


def watched_first(model: Any, histories: Sequence[Sequence[int]], candidates: np.ndarray,
                  target_pos: Sequence[int], n_watched: int = 1, recent: int = 10,
                  seed: int = 0) -> WatchedFirst:
    """Replace ``n_watched`` non-target candidates by items among the user's last
    ``recent`` history items (those a prompt shows) and rank with ``model.score_candidates``."""
    candidates = np.array(candidates, copy=True)
    n = candidates.shape[1]
    if not 1 <= n_watched < n:
        raise ValueError(f"n_watched must be in 1..{n - 1}, got {n_watched}")
    rng = np.random.default_rng(seed)
    watched_pos = np.zeros(candidates.shape, bool)
    for u, (hist, t) in enumerate(zip(histories, target_pos)):
        pool = [int(i) for i in np.asarray(hist).ravel() if i != 0][-recent:]
        pool = [i for i in dict.fromkeys(pool) if i not in set(candidates[u].tolist())]
        if len(pool) < n_watched:
            raise ValueError(f"user {u} has fewer than {n_watched} watched items to insert")
        slots = rng.choice([k for k in range(n) if k != int(t)], n_watched, replace=False)
        candidates[u, slots] = rng.choice(pool, n_watched, replace=False)
        watched_pos[u, slots] = True
    scores = np.asarray(model.score_candidates([list(h) for h in histories], candidates), float)
    top = scores.argmax(axis=1)
    rows = np.arange(len(top))
    return WatchedFirst(rate=float(watched_pos[rows, top].mean()), chance=n_watched / n,
                        target_first_rate=float((top == np.asarray(target_pos)).mean()),
                        n_users=len(top))
