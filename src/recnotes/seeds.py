"""A model of the book evaluated the one canonical way: every seed of the profile, then each
user's metrics averaged over the seeds (:func:`~recnotes.evaluate.seed_mean`).

The evaluation chapter's multi-seed runs are the book's reference numbers; any chapter that
needs a trained model's P1 or P2 result computes it with :func:`evaluate_seeds`, so the same
(protocol, model, metric, k, users) gets the same value in every results file.

The dataset a model is trained under is the one the split was loaded as
(:func:`~recnotes.experiments.dataset_of`): a chapter rerun on another dataset cannot train
its models a second time under another name, nor label them with the default one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from .experiments import CONFIGS, NeuralConfig, dataset_of, run
from .profiles import get_profile, resolve_profile

if TYPE_CHECKING:  # pragma: no cover
    from .data.splits import Split
    from .evaluate.protocols import Candidates, EvalResult

__all__ = ["seeds_of", "evaluate_seeds", "seed_models"]


def seeds_of(name: str, profile: str | None = None, seed: int = 0) -> tuple[int, ...]:
    """The seeds a model is run with: the profile's seeds for a neural model, ``(seed,)`` else."""
    return get_profile(profile).seeds if issubclass(CONFIGS[name], NeuralConfig) else (seed,)


def seed_models(name: str, split: "Split", profile: str | None = None, seed: int = 0,
                dataset: str | None = None) -> dict[int, Any]:
    """``{seed: fitted model}`` of the model ``name`` of :data:`~recnotes.experiments.CONFIGS`
    with its defaults (trained models from the experiment cache), for every seed it is run with
    (:func:`seeds_of`).  ``dataset``: the split's own (:func:`~recnotes.experiments.dataset_of`)
    unless given, as it must be for a split that :func:`~recnotes.experiments.load_split` did not make."""
    profile = resolve_profile(profile)
    dataset = dataset_of(split, dataset)
    return {s: run(CONFIGS[name](dataset=dataset, seed=s, profile=profile), split, progress=False).model
            for s in seeds_of(name, profile, seed)}


def evaluate_seeds(name: str, split: "Split", protocol: str = "P1", candidates: "Candidates | None" = None,
                   ks: Sequence[int] = (1, 5, 10, 20), profile: str | None = None, seed: int = 0,
                   dataset: str | None = None, users=None) -> dict[int, "EvalResult"]:
    """``{seed: EvalResult}`` of the model ``name`` (:func:`seed_models`) on protocol ``P1`` (the
    test items among the whole catalogue, ``users`` or all) or ``P2`` (``candidates``)."""
    from .evaluate.protocols import evaluate_candidates, evaluate_full

    if protocol not in ("P1", "P2"):
        raise ValueError(f"protocol must be 'P1' or 'P2', not {protocol!r}")
    if protocol == "P2" and candidates is None:
        raise ValueError("protocol P2 needs the candidates")
    out = {}
    for s, model in seed_models(name, split, profile, seed, dataset).items():
        if protocol == "P1":
            out[s] = evaluate_full(model, split, stage="test", ks=ks, users=users)
        else:
            out[s] = evaluate_candidates(model, split, candidates, ks=[k for k in ks if k <= candidates.items.shape[1]])
    return out
