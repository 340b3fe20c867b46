"""What every language-model backend is: the interface, its errors, and its usage counters.

:mod:`.backends` (local Hugging Face models), :mod:`.api` (OpenAI-compatible chat servers) and
:mod:`.served` (OpenAI-compatible completion servers scored by likelihood) all depend on this
module and on nothing of each other's, but :mod:`.served` on :mod:`.api`'s HTTP client;
:mod:`.loading` picks one from a short spec.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

__all__ = ["LLMBackendError", "Message", "Prompt", "SCORERS", "REDUCTIONS", "Completion", "Usage", "LLMBackend", "check_batch"]

Message = dict[str, str]  #: one chat message: ``{"role": ..., "content": ...}``
Prompt = str | Sequence[Message]  #: plain text to continue, or a chat
SCORERS = ("packed", "shared", "naive")  #: likelihood paths, fastest first (same numbers)
REDUCTIONS = ("mean", "sum")  #: a continuation's score: mean log-probability per token, or the sum


class LLMBackendError(RuntimeError):
    """A backend cannot be loaded or called; the message says what to do."""


@dataclass
class Completion:
    """One generated answer and what it cost in tokens."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    cached: bool = False


@dataclass
class Usage:
    """Running totals of a backend's work (for cost and efficiency tables)."""

    calls: int = 0
    cached_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    def add(self, prompt_tokens: int, completion_tokens: int, cached: bool = False) -> None:
        """Record one call."""
        self.calls += 1
        self.cached_calls += int(cached)
        self.prompt_tokens += int(prompt_tokens)
        self.completion_tokens += int(completion_tokens)


class LLMBackend:
    """The interface: ``chat`` for generation, ``score_continuations`` for likelihoods."""

    name: str = "llm"
    supports_likelihood: bool = False

    def __init__(self) -> None:
        self.usage = Usage()

    def chat(self, messages: Sequence[Message], max_new_tokens: int = 64,
             temperature: float = 0.0) -> Completion:
        """Answer a chat (greedy when ``temperature == 0``)."""
        raise NotImplementedError

    def score_continuations(self, prompt: Prompt, continuations: Sequence[str], scorer: str = "packed",
                            end_token: bool = False, reduce: str = "mean") -> np.ndarray:
        """Mean per-token (or, with ``reduce="sum"``, summed) log-probability of each
        continuation after the prompt."""
        return self.score_batch([prompt], [continuations], scorer, end_token, reduce)[0]

    def score_batch(self, prompts: Sequence[Prompt], continuations: Sequence[Sequence[str]],
                    scorer: str = "packed", end_token: bool = False, reduce: str = "mean",
                    lower: Any = None) -> list[np.ndarray]:
        """:meth:`score_continuations` for several prompts, each with its own continuations.
        ``lower``: a :class:`~recnotes.models.llm.likelihood.LowerLayers` holding the bottom
        blocks' output, shared by models that are equal below their adapters (a backend that
        computes every block itself, as a server does, ignores it)."""
        raise LLMBackendError(
            f"backend {self.name!r} cannot score continuations by likelihood; "
            f"use the list-wise ranking method with it, or a local Hugging Face model")

    def describe(self) -> dict:
        """What the model is, for the cost tables: ``device``, ``dtype``, ``parameters`` and
        ``blocks`` (``None`` where the backend cannot know them, as for a served model) and
        ``origin`` (where the weights come from, in words)."""
        return {"device": "server", "dtype": None, "parameters": None, "blocks": None,
                "origin": getattr(self, "origin", self.name)}

    def count_tokens(self, text: str) -> int:
        """Number of tokens of ``text`` (an estimate where the tokenizer is unknown)."""
        return max(1, len(text) // 4)


def check_batch(prompts: Sequence, continuations: Sequence, scorer: str, reduce: str) -> None:
    """The arguments of a backend's ``score_batch``, checked the same way for every backend."""
    if scorer not in SCORERS:
        raise ValueError(f"unknown scorer {scorer!r}; choose one of {SCORERS}")
    if reduce not in REDUCTIONS:
        raise ValueError(f"unknown reduction {reduce!r}; choose one of {REDUCTIONS}")
    if len(prompts) != len(continuations):
        raise ValueError(f"{len(prompts)} prompts but {len(continuations)} lists of continuations")
