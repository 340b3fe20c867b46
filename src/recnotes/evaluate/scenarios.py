"""The applications chapter's scenarios: films nobody has rated yet, and users who show a model
only their last few films, with the trained models evaluated over every seed of the profile.

* :func:`hide_items` makes the cold-start split: a seeded share of the films is removed
  from every training history, and the users to evaluate are those whose test film is
  hidden (and whose validation film, the last of the history a model sees, is not).
* :func:`evaluate_recent` evaluates models (``{name: {seed: model}}``, as
  :func:`recnotes.seeds.seed_models` returns them) on shortened histories.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from ..data.splits import Split

if TYPE_CHECKING:  # pragma: no cover
    from .protocols import EvalResult

__all__ = ["ColdStart", "hide_items", "evaluate_recent"]


@dataclass(frozen=True, eq=False)
class ColdStart:
    """A split whose training histories never contain ``items``, and the ``users`` to evaluate."""

    split: Split  # same users, targets and catalogue; training histories without the hidden items
    items: np.ndarray  # the hidden item ids, ascending
    users: np.ndarray  # users whose test item is hidden and whose validation item is not, ascending


def hide_items(split: Split, share: float = 0.1, seed: int = 0) -> ColdStart:
    """Hide ``floor(share * n_items)`` items, drawn uniformly with ``seed``, from every
    training history (targets stay as they are), so that no model is trained on them."""
    if not 0 < share < 1:
        raise ValueError(f"share must be between 0 and 1, not {share}")
    n_hidden = int(share * split.n_items)
    if n_hidden < 1:
        raise ValueError(f"a share of {share} of {split.n_items} items hides no item")
    rng = np.random.default_rng(seed)
    items = np.sort(rng.choice(np.arange(1, split.n_items + 1), size=n_hidden, replace=False))
    train = [t[~np.isin(t, items)] for t in split.train]
    cold = Split(data=split.data, train=train, valid=split.valid, test=split.test, kind=split.kind)
    users = np.flatnonzero(np.isin(split.test, items) & ~np.isin(split.valid, items))
    return ColdStart(cold, items, users)


def evaluate_recent(models: Mapping[str, Mapping[int, Any]], split: Split, sizes: Sequence[int],
                    ks: Sequence[int] = (10,)) -> dict[tuple[int, str], dict[int, "EvalResult"]]:
    """``{(n, model): {seed: EvalResult}}``: protocol P1 with each model shown only the last
    ``n`` items of every history (:class:`~recnotes.evaluate.segments.RecentItems`; every item
    the user really interacted with stays masked).  Results are labelled protocol
    ``"P1-last<n>"`` and the model's own name."""
    from .protocols import evaluate_full
    from .segments import RecentItems

    out: dict[tuple[int, str], dict[int, "EvalResult"]] = {}
    for n in sizes:
        for name, by_seed in models.items():
            runs = {}
            for s, model in by_seed.items():
                r = evaluate_full(RecentItems(model, n), split, stage="test", ks=ks)
                r.protocol, r.model = f"P1-last{n}", name
                runs[s] = r
            out[(n, name)] = runs
    return out
