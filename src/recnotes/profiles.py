"""Run profiles: ``full`` (published numbers), ``ci`` (same code paths, minutes)
and ``smoke`` (seconds, for unit tests).

Every chapter has a papermill parameter ``profile``; the environment variable
``RECNOTES_PROFILE`` overrides it, so CI can re-run the executed book cheaply.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["Profile", "PROFILES", "resolve_profile", "get_profile"]


@dataclass(frozen=True)
class Profile:
    """Sizes that trade run time for precision; models read what they need."""

    name: str
    seeds: tuple[int, ...]  # seeds for trained models
    max_epochs: int  # upper bound on training epochs of neural models
    p2_users: int  # users sampled for the candidate-ranking protocol P2
    n_bootstrap: int  # bootstrap resamples for confidence intervals
    max_users: int | None  # cap on evaluated users (None = all)
    sample_users: int | None  # users of a per-user illustration, the first of the split's (None = all)
    timing_repeats: int  # timed calls of one request, their median reported
    timed_runs: int  # timed whole evaluations or trainings, the fastest reported
    sweep_points: int | None  # values of a swept size or list of models tried (None = all)

    def swept(self, values: tuple) -> tuple:
        """The values of a sweep this profile runs: all of them, or ``sweep_points`` spread from the
        first to the last."""
        n = len(values) if self.sweep_points is None else min(self.sweep_points, len(values))
        if n == len(values):
            return tuple(values)
        if n == 1:
            return (values[0],)
        return tuple(values[round(i * (len(values) - 1) / (n - 1))] for i in range(n))


PROFILES: dict[str, Profile] = {
    "full": Profile("full", seeds=(0, 1, 2), max_epochs=200, p2_users=200, n_bootstrap=1000, max_users=None,
                    sample_users=None, timing_repeats=300, timed_runs=5, sweep_points=None),
    "ci": Profile("ci", seeds=(0,), max_epochs=3, p2_users=20, n_bootstrap=200, max_users=None,
                  sample_users=50, timing_repeats=30, timed_runs=2, sweep_points=1),
    "smoke": Profile("smoke", seeds=(0,), max_epochs=1, p2_users=5, n_bootstrap=50, max_users=50,
                     sample_users=10, timing_repeats=10, timed_runs=1, sweep_points=1),
}


def resolve_profile(profile: str | None = None) -> str:
    """The profile name in force: ``$RECNOTES_PROFILE`` wins over the argument."""
    name = os.environ.get("RECNOTES_PROFILE") or profile or "full"
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}")
    return name


def get_profile(profile: str | None = None) -> Profile:
    """The :class:`Profile` in force (see :func:`resolve_profile`)."""
    return PROFILES[resolve_profile(profile)]
