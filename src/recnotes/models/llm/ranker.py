"""The zero-shot LLM ranker: "ChatGPT as a recommender", measured on candidate lists.

:class:`LLMRanker` implements ``score_candidates(histories, candidates)`` of the
recnotes model interface.  For each user it builds a prompt from the last
``max_history`` items of the history (titles with years, most recent last) and
the candidate titles, and ranks the candidates one of two ways:

* ``likelihood``: the score of a candidate is the mean log-probability per
  token (or, with ``reduce="sum"``, the summed log-probability) of its title as
  the model's answer (or continuation, for the ``completion`` and ``list``
  templates), followed by the end-of-text token (the newline of its line for
  ``list``), so the title must also end there.  Several users' prompts and all their candidates are
  scored in one packed pass (:mod:`recnotes.models.llm.likelihood`).
* ``listwise``: the model writes the ranked candidate numbers; the answer is
  parsed with :func:`~recnotes.models.llm.prompts.parse_ranking`.  Candidates it
  omitted are placed after the ones it named, in the order the prompt showed
  them (itself a seeded random order, so this is a random tie-break); numbers
  or titles it invented are ignored.  Both are counted in :attr:`stats`.

Candidates are shown in a seeded random order per user (``shuffle=True``), so
the position of the true item in the prompt carries no information; the
position-bias probe passes explicit orders instead.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from ...progress import progress_bar
from ..base import Recommender
from .interface import REDUCTIONS, SCORERS, LLMBackend, LLMBackendError
from .prompts import CHAT_TEMPLATES, TEMPLATES, TEXT_TEMPLATES, build_prompt, continuation_text, parse_ranking

__all__ = ["LLMRanker", "RankerStats", "item_titles", "METHODS"]

METHODS = ("likelihood", "listwise")


def item_titles(data: Any) -> list[str]:
    """Display titles ``"Title (year)"`` indexed by internal item id, from an
    :class:`~recnotes.data.Interactions` (or anything with ``.titles(items)`` and
    ``.n_items``)."""
    return data.titles(np.arange(data.n_items + 1))


@dataclass
class RankerStats:
    """What ranking cost and how often list-wise answers needed repair."""

    users: int = 0
    seconds: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    answers: int = 0  # list-wise answers read
    unparsed: int = 0  # answers that named no candidate at all
    omitted: int = 0  # candidates filled in after the named ones
    invented: int = 0  # mentions that matched no candidate
    duplicates: int = 0
    raw_answers: list[str] = field(default_factory=list, repr=False)

    @property
    def seconds_per_user(self) -> float:
        """Wall seconds of ranking per user."""
        return self.seconds / self.users if self.users else float("nan")

    @property
    def tokens_per_user(self) -> float:
        """Tokens the model processed per user: prompt (once) plus continuations or answer."""
        return (self.prompt_tokens + self.completion_tokens) / self.users if self.users else float("nan")

    def as_dict(self) -> dict[str, float]:
        """Plain numbers for tables and results files."""
        out = {k: getattr(self, k) for k in ("users", "seconds", "prompt_tokens", "completion_tokens",
                                             "answers", "unparsed", "omitted", "invented", "duplicates")}
        out.update(seconds_per_user=self.seconds_per_user, tokens_per_user=self.tokens_per_user)
        return out


class LLMRanker(Recommender):
    """Zero-shot candidate ranking with a language model (see the module docstring).

    ``titles`` maps internal item ids to display titles (see :func:`item_titles`).  With
    ``backend=None`` it only builds prompts (to show them).
    """

    def __init__(self, backend: LLMBackend, titles: Sequence[str], method: str = "likelihood",
                 template: str = "sequential", max_history: int = 10, max_new_tokens: int = 80,
                 shuffle: bool = True, seed: int = 0, scorer: str = "packed", end_token: bool | None = None,
                 batch_users: int = 4, progress: bool = False, keep_answers: bool = False,
                 reduce: str = "mean") -> None:
        if method not in METHODS:
            raise ValueError(f"unknown ranking method {method!r}; choose one of {METHODS}")
        if template not in TEMPLATES:
            raise ValueError(f"unknown prompt template {template!r}; choose one of {TEMPLATES}")
        if method == "listwise" and template not in CHAT_TEMPLATES:
            raise ValueError(f"list-wise ranking needs a chat template that lists the candidates "
                             f"({CHAT_TEMPLATES}), not {template!r}")
        if scorer not in SCORERS:
            raise ValueError(f"unknown scorer {scorer!r}; choose one of {SCORERS}")
        if reduce not in REDUCTIONS:
            raise ValueError(f"unknown reduction {reduce!r}; choose one of {REDUCTIONS}")
        if end_token is None:  # a list line ends with its newline; other answers with end-of-text
            end_token = template != "list"
        if batch_users < 1 or max_history < (0 if template in TEXT_TEMPLATES else 1):
            raise ValueError(f"batch_users must be at least 1, and max_history at least 1 (0, the prior alone, "
                             f"for a {'/'.join(TEXT_TEMPLATES)} prompt), got {max_history}, {batch_users}")
        if backend is not None and method == "likelihood" and not backend.supports_likelihood:
            raise LLMBackendError(f"backend {backend.name!r} cannot score likelihoods; "
                                  f"use method='listwise' with it")
        self.backend, self.titles = backend, list(titles)
        self.method, self.template = method, template
        self.max_history, self.max_new_tokens = max_history, max_new_tokens
        self.shuffle, self.seed, self.scorer, self.end_token = shuffle, seed, scorer, end_token
        self.batch_users, self.progress, self.keep_answers = batch_users, progress, keep_answers
        self.reduce = reduce
        self.stats = RankerStats()

    @property
    def name(self) -> str:
        return f"LLMRanker[{self.method},{self.template}]"

    def __repr__(self) -> str:
        return f"{self.name}(backend={self.backend!r}, max_history={self.max_history})"

    def fit(self, split: Any = None) -> "LLMRanker":
        """Zero-shot: nothing to train."""
        return self

    def reset_stats(self) -> None:
        """Start counting time, tokens and repairs afresh."""
        self.stats = RankerStats()

    # -------------------------------------------------------------- prompts
    def _shown(self, history: Sequence[int]) -> list:
        """The films the prompt shows: the last ``max_history`` (none when it is 0: the prior alone)."""
        return list(history)[-self.max_history:] if self.max_history else []

    def prompt_order(self, history: Sequence[int], candidates: Sequence[int]) -> np.ndarray:
        """The order (indices into ``candidates``) in which the prompt shows them."""
        n = len(candidates)
        if not self.shuffle:
            return np.arange(n)
        key = np.asarray(self._shown(history) + [-1] + list(candidates), np.int64)
        rng = np.random.default_rng([self.seed, zlib.crc32(key.tobytes())])
        return rng.permutation(n)

    def prompt(self, history: Sequence[int], candidates: Sequence[int],
               order: Sequence[int] | None = None):
        """The prompt for one user (``order`` as in :meth:`prompt_order`): chat messages, or
        plain text for the ``completion`` template."""
        order = self.prompt_order(history, candidates) if order is None else np.asarray(order)
        shown = [self.titles[int(i)] for i in self._shown(history)]
        cands = [self.titles[int(candidates[k])] for k in order]
        return build_prompt(shown, cands, self.template, self.method)

    messages = prompt  # the name of the chat-only days

    def continuations(self, candidates: Sequence[int], order: Sequence[int]) -> list[str]:
        """The texts scored for the candidates, in prompt order."""
        return [continuation_text(self.titles[int(candidates[k])], self.template) for k in order]

    # -------------------------------------------------------------- scoring
    def score_user(self, history: Sequence[int], candidates: Sequence[int],
                   order: Sequence[int] | None = None) -> np.ndarray:
        """Scores (higher = better) of one user's candidates, in the candidates' order."""
        history = _clean(history)
        candidates = [int(c) for c in candidates]
        order = self.prompt_order(history, candidates) if order is None else np.asarray(order)
        if sorted(order.tolist()) != list(range(len(candidates))):
            raise ValueError("order must be a permutation of range(len(candidates))")
        prompt = self.prompt(history, candidates, order)
        before = (self.backend.usage.prompt_tokens, self.backend.usage.completion_tokens)
        start = time.perf_counter()
        if self.method == "likelihood":
            in_prompt_order = self.backend.score_continuations(
                prompt, self.continuations(candidates, order), self.scorer, self.end_token, self.reduce)
            scores = np.empty(len(candidates))
            scores[order] = in_prompt_order
        else:
            scores = self._listwise(prompt, candidates, order)
        self._count(1, start, before)
        return scores

    def _count(self, users: int, start: float, before: tuple[int, int]) -> None:
        st = self.stats
        st.seconds += time.perf_counter() - start
        st.users += users
        st.prompt_tokens += self.backend.usage.prompt_tokens - before[0]
        st.completion_tokens += self.backend.usage.completion_tokens - before[1]

    def score_users(self, histories: Sequence[Sequence[int]], candidates: np.ndarray, lower=None) -> np.ndarray:
        """Likelihood scores ``[n_users, n_candidates]`` of several users in one packed pass
        (``lower``: see :meth:`score_candidates`)."""
        rows = [(_clean(h), [int(c) for c in cands]) for h, cands in zip(histories, candidates)]
        orders = [self.prompt_order(h, c) for h, c in rows]
        prompts = [self.prompt(h, c, o) for (h, c), o in zip(rows, orders)]
        conts = [self.continuations(c, o) for (_, c), o in zip(rows, orders)]
        before = (self.backend.usage.prompt_tokens, self.backend.usage.completion_tokens)
        start = time.perf_counter()
        scored = self.backend.score_batch(prompts, conts, self.scorer, self.end_token, self.reduce, lower=lower)
        self._count(len(rows), start, before)
        out = np.empty((len(rows), len(rows[0][1]) if rows else 0))
        for i, (order, values) in enumerate(zip(orders, scored)):
            out[i, order] = values
        return out

    def _listwise(self, messages: list[dict[str, str]], candidates: list[int],
                  order: np.ndarray) -> np.ndarray:
        answer = self.backend.chat(messages, max_new_tokens=self.max_new_tokens).text
        shown = [self.titles[candidates[k]] for k in order]
        parsed = parse_ranking(answer, len(candidates), shown)
        st = self.stats
        st.answers += 1
        st.unparsed += int(not parsed.parsed)
        st.omitted += parsed.missing
        st.invented += parsed.invented
        st.duplicates += parsed.duplicates
        if self.keep_answers:
            st.raw_answers.append(answer)
        n = len(candidates)
        scores = np.empty(n)
        scores[order[parsed.order]] = np.arange(n, 0, -1, dtype=float)  # first named = n
        return scores

    def score_candidates(self, histories: Sequence[Sequence[int]],
                         candidates: np.ndarray | Sequence[Sequence[int]], lower=None) -> torch.Tensor:
        """Scores ``[n_users, n_candidates]`` (float64, higher = better) for each user's candidates.
        ``lower``: a :class:`~recnotes.models.llm.likelihood.LowerLayers` that keeps the bottom
        blocks' output for, or takes it from, another model equal to this one below its adapters
        (the likelihood method only)."""
        candidates = np.asarray(candidates)
        if candidates.ndim != 2 or len(candidates) != len(histories):
            raise ValueError(f"candidates must have shape [{len(histories)}, n_candidates], "
                             f"got {candidates.shape}")
        if len(candidates) == 0:
            return torch.zeros(candidates.shape, dtype=torch.float64)
        if self.method == "likelihood":
            step = self.batch_users
            chunks = range(0, len(candidates), step)
            bar = progress_bar(total=len(candidates), desc=self.name, leave=False, disable=not self.progress)
            parts = []
            for start in chunks:
                parts.append(self.score_users(histories[start:start + step], candidates[start:start + step], lower))
                bar.update(len(parts[-1]))
            bar.close()
            return torch.from_numpy(np.concatenate(parts))
        rows = zip((_clean(h) for h in histories), candidates)
        if self.progress:
            rows = progress_bar(rows, total=len(candidates), desc=self.name, leave=False)
        return torch.from_numpy(np.stack([self.score_user(h, c) for h, c in rows]))

    def score(self, histories: Sequence[Sequence[int]]) -> torch.Tensor:
        """Not available: an LLM ranks candidate lists, not the whole catalogue."""
        raise NotImplementedError(f"{self.name} scores candidate lists only: use score_candidates")


def _clean(history: Any) -> list[int]:
    """A history as a list of item ids, padding (id 0) dropped."""
    items = np.asarray(history.cpu() if hasattr(history, "cpu") else history).ravel()
    return [int(i) for i in items if i != 0]
