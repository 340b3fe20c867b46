"""A model of the book evaluated the one canonical way: every seed of the profile, then each
user's metrics averaged over the seeds.

The evaluation chapter's multi-seed runs are the book's reference numbers; any
chapter that needs a trained model's P1 or P2 result computes it with
:func:`evaluate_seeds` and :func:`seed_mean`, so the same (protocol, model,
metric, k, users) gets the same value in every results file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import pandas as pd

if TYPE_CHECKING:  # pragma: no cover
    from ..data.splits import Split
    from .protocols import Candidates, EvalResult

__all__ = ["model_seeds", "evaluate_seeds", "seed_mean"]


def model_seeds(name: str, profile: str | None = None, seed: int = 0) -> tuple[int, ...]:
    """The seeds a model is run with: the profile's seeds for a neural model, ``(seed,)`` else."""
    from ..experiments import CONFIGS, NeuralConfig
    from ..profiles import get_profile

    return get_profile(profile).seeds if issubclass(CONFIGS[name], NeuralConfig) else (seed,)


def evaluate_seeds(name: str, split: "Split", protocol: str = "P1", candidates: "Candidates | None" = None,
                   ks: Sequence[int] = (1, 5, 10, 20), profile: str | None = None, seed: int = 0,
                   dataset: str = "ml-100k", users=None) -> dict[int, "EvalResult"]:
    """``{seed: EvalResult}`` of the model ``name`` of :data:`~recnotes.experiments.CONFIGS`
    (its defaults; trained models come from the experiment cache) on protocol ``P1`` (the test
    items among the whole catalogue, ``users`` or all) or ``P2`` (``candidates``)."""
    from ..experiments import CONFIGS, run
    from ..profiles import resolve_profile
    from .protocols import evaluate_candidates, evaluate_full

    profile = resolve_profile(profile)
    out = {}
    for s in model_seeds(name, profile, seed):
        model = run(CONFIGS[name](dataset=dataset, seed=s, profile=profile), split, progress=False).model
        if protocol == "P1":
            out[s] = evaluate_full(model, split, stage="test", ks=ks, users=users)
        elif protocol == "P2":
            if candidates is None:
                raise ValueError("protocol P2 needs the candidates")
            out[s] = evaluate_candidates(model, split, candidates, ks=[k for k in ks if k <= candidates.items.shape[1]])
        else:
            raise ValueError(f"protocol must be 'P1' or 'P2', not {protocol!r}")
    return out


def seed_mean(results: "dict[int, EvalResult]") -> pd.DataFrame:
    """Each user's metrics averaged over the seeds' results (all on the same users)."""
    frames = list(results.values())
    for f in frames[1:]:
        if not f.per_user.index.equals(frames[0].per_user.index):
            raise ValueError("the seeds were evaluated on different users")
    return sum(f.per_user for f in frames) / len(frames)
