"""Sentences that a paired test supports, with the model they compare against: the words a
chapter glues into its prose, so that the prose says only what its own test says."""

from __future__ import annotations

from typing import Mapping

from .compare import fmt, verdict

__all__ = ["compared", "signed"]


def compared(test: Mapping[str, float], other: str, better: str = "better", worse: str = "worse",
             alpha: float = 0.05, key: str = "p_value") -> str:
    """``"significantly better than <other>"``, ``"significantly worse than <other>"`` or
    ``"not significantly different from <other>"``, as the paired test ``test`` (``mean_diff``
    of the model minus ``other``, and ``key``: its p-value, or ``"p_holm"``) supports."""
    words = verdict(test, better=better, worse=worse, alpha=alpha, key=key)
    return f"{words} than {other}" if words.startswith("significantly") else f"{words} from {other}"


def signed(x: float, digits: int = 3) -> str:
    """A difference with its sign and ``digits`` significant digits, never in exponent
    notation (``+0.0123``, ``-0.0000158``, ``0``): how the prose and the tables write a
    paired difference."""
    text = fmt(float(x), digits)
    return text if text.startswith("-") or text == "0" else f"+{text}"
