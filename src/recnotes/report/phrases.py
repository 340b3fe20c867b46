"""Sentences that a paired test supports, with the model they compare against: the words a
chapter glues into its prose, so that the prose says only what its own test says."""

from __future__ import annotations

from typing import Mapping

from .compare import fmt, fmt_p, signed, verdict

__all__ = ["compared", "placed", "signed", "change", "how_many", "pairs_sentences", "speed_words", "standing"]


def compared(test: Mapping[str, float], other: str, better: str = "better", worse: str = "worse",
             alpha: float = 0.05, key: str = "p_value") -> str:
    """``"significantly better than <other>"``, ``"significantly worse than <other>"`` or
    ``"not significantly different from <other>"``, as the paired test ``test`` (``mean_diff``
    of the model minus ``other``, and ``key``: its p-value, or ``"p_holm"``) supports."""
    words = verdict(test, better=better, worse=worse, alpha=alpha, key=key)
    return f"{words} than {other}" if words.startswith("significantly") else f"{words} from {other}"


def placed(test: Mapping[str, float], other: str, alpha: float = 0.05, key: str = "p_holm") -> str:
    """Where a model stands against ``other`` as the paired test supports it: ``"above <other>"``,
    ``"below <other>"`` or ``"not significantly different from <other>"``."""
    return {"significantly better": f"above {other}", "significantly worse": f"below {other}"}.get(
        verdict(test, alpha=alpha, key=key), f"not significantly different from {other}")


def standing(tests: Mapping[str, Mapping[str, float]], alpha: float = 0.05, key: str = "p_holm") -> str:
    """Where a model stands against several others (``tests``: name -> paired test of the model
    minus that one), grouped: ``"above Popularity, not significantly different from EASE, and
    below LSTM and GPTRec"`` (the groups in that order, the names in the order given)."""
    groups: dict[str, list[str]] = {"above": [], "not significantly different from": [], "below": []}
    for name, test in tests.items():
        words = verdict(test, alpha=alpha, key=key)
        groups["above" if words == "significantly better" else "below" if words == "significantly worse"
               else "not significantly different from"].append(name)
    parts = [f"{where} {_series(names)}" for where, names in groups.items() if names]
    if len(parts) < 3:
        return " and ".join(parts)
    return ", ".join(parts[:-1]) + ", and " + parts[-1]


def speed_words(ratio: float, tie: float = 1.1) -> str:
    """A timing ratio (above 1: faster) in words; within a factor ``tie`` of 1 it is a tie."""
    return "faster" if ratio > tie else "slower" if ratio < 1 / tie else "about as fast"


def change(before: float, after: float, test: Mapping[str, float], alpha: float = 0.05,
           key: str = "p_value", digits: int = 3) -> str:
    """A paired difference in words, with its direction, its size and its significance:
    ``"lower, 0.104 → 0.075, not significant at 5% (p 0.078)"``."""
    a, b = fmt(float(before), digits), fmt(float(after), digits)
    direction = "higher" if after > before else "lower" if after < before else "the same"
    significance = "significant" if test[key] < alpha else "not significant"
    return f"{direction}, {a} → {b}, {significance} at {100 * alpha:g}% (p {fmt_p(test[key])})"


def how_many(k: int, n: int, noun: str) -> str:
    """``k`` of ``n`` things in words a reader would use: ``"all 5 segments"``, ``"both
    models"``, ``"none of the 4 segments"``, ``"3 of the 5 segments"``."""
    if n == 2 and k == 2:
        return f"both {noun}"
    if k == n:
        return f"all {n} {noun}"
    if k == 0:
        return f"none of the {n} {noun}"
    return f"{k} of the {n} {noun}"


def _series(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def pairs_sentences(tests, key: str = "p_holm", alpha: float = 0.05) -> str:
    """Pairwise tests (each ``a`` minus ``b``, with ``mean_diff`` and ``key``) as prose: one
    sentence per model that others beat significantly ("TextEmbedding and GenreYearPopularity
    are significantly better than Random."), then one for the pairs the data cannot tell
    apart ("TextEmbedding and GenreYearPopularity are not significantly different."; with more
    pairs, "The data cannot tell apart A and B, nor C and D.")."""
    beaten: dict[str, list[str]] = {}
    ties: list[str] = []
    for t in tests:
        if t[key] < alpha:
            high, low = (t["a"], t["b"]) if t["mean_diff"] > 0 else (t["b"], t["a"])
            beaten.setdefault(low, []).append(high)
        else:
            ties.append(f"{t['a']} and {t['b']}")
    sentences = [f"{_series(winners)} {'is' if len(winners) == 1 else 'are'} significantly better than {low}."
                 for low, winners in beaten.items()]
    if len(ties) == 1:
        sentences.append(f"{ties[0]} are not significantly different.")
    elif ties:
        sentences.append(f"The data cannot tell apart {', nor '.join(ties[:-1])}, nor {ties[-1]}.")
    return " ".join(sentences)
