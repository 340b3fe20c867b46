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


PROFILES: dict[str, Profile] = {
    "full": Profile("full", seeds=(0, 1, 2), max_epochs=200, p2_users=200, n_bootstrap=1000, max_users=None),
    "ci": Profile("ci", seeds=(0,), max_epochs=3, p2_users=20, n_bootstrap=200, max_users=None),
    "smoke": Profile("smoke", seeds=(0,), max_epochs=1, p2_users=5, n_bootstrap=50, max_users=50),
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
