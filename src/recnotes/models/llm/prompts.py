"""Prompt templates for ranking with a language model.

Three chat templates follow the LLMRank study (Hou et al., ECIR 2024).  Their
prompt shows the user's history as movie titles with years, oldest first and
most recent last, then the numbered candidates, then the instruction, as a
chat message for the model's chat template.  They differ in how they present
the history:

* ``sequential``: "I've watched the following movies in the past in order: ...";
* ``recency``: the same, plus "Note that my most recently watched movie is X.";
* ``in_context``: one demonstration built from the same user's earlier history
  ("if I've watched A, B, C then you should recommend D to me, and now that
  I've watched D, ...").  With fewer than two history items there is nothing
  to demonstrate, so it falls back to ``sequential``.

Two tasks end the prompt differently: ``likelihood`` asks for one title (the
model's answer is scored candidate by candidate), ``listwise`` asks for all
candidate numbers in ranked order.

The fourth template, ``completion``, is plain text for the model to continue,
with no chat template and no candidate list (likelihood only)::

    Films I watched, oldest first:
    Toy Story (1995)
    ...
    The next film I watched:

and each candidate is scored as the continuation ``" " + title`` followed by the
end-of-text token.

The fifth, ``list``, is the plain list alone, one title per line, each line
ended by a newline, and no question::

    Films I watched, oldest first:
    Toy Story (1995)
    ...

A candidate is scored as the next line, ``title + "\n"`` (the newline ends the
title, so no end-of-text token).  It is the format the fine-tuned ranker is
trained on (:mod:`recnotes.models.llm.finetune`): every line of a window of a
training sequence is a target, and a candidate's score is the log-probability
of the same line under the same model, token for token.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from .interface import Message

__all__ = ["TEMPLATES", "CHAT_TEMPLATES", "TEXT_TEMPLATES", "TASKS", "SYSTEM_PROMPT", "build_messages",
           "build_prompt", "completion_prompt", "list_prompt", "LIST_HEADER", "continuation_text", "render", "ParsedRanking", "parse_ranking", "Prompt"]

CHAT_TEMPLATES = ("sequential", "recency", "in_context")
TEXT_TEMPLATES = ("completion", "list")  #: plain text to continue, no candidate list (likelihood only)
TEMPLATES = CHAT_TEMPLATES + TEXT_TEMPLATES
COMPLETION_HEADER = "Films I watched, oldest first:"
LIST_HEADER = COMPLETION_HEADER + "\n"  #: the ``list`` prompt before its first line
COMPLETION_QUESTION = "The next film I watched:"
Prompt = str | list[Message]  #: plain text to continue, or chat messages
TASKS = ("likelihood", "listwise")
SYSTEM_PROMPT = "You are a movie recommender system."


def _numbered(titles: Sequence[str], brackets: bool = False) -> str:
    fmt = "[{}] {}" if brackets else "{}. {}"
    return "\n".join(fmt.format(k + 1, t) for k, t in enumerate(titles))


def _history_block(history: Sequence[str], template: str) -> str:
    if template == "in_context" and len(history) >= 2:
        earlier, last = history[:-1], history[-1]
        return (f"If I've watched the following movies in the past in order:\n{_numbered(earlier)}\n"
                f"then you should recommend {last} to me, and now that I've watched {last}, then ...")
    text = f"I've watched the following movies in the past in order:\n{_numbered(history)}"
    if template == "recency" and history:
        text += f"\nNote that my most recently watched movie is {history[-1]}."
    return text


def _instruction(n: int, task: str) -> str:
    if task == "likelihood":
        return (f"Which one of these {n} movies would I like to watch next most, according to my "
                f"watching history? Answer with its title only.")
    return (f"Please rank these {n} movies by measuring the possibilities that I would like to "
            f"watch next most, according to my watching history. Answer only with the candidate "
            f"numbers in brackets, most likely first, separated by commas, using each number once, "
            f"like: [3], [1], [2].")


def build_messages(history: Sequence[str], candidates: Sequence[str], template: str = "sequential",
                   task: str = "likelihood", system: str | None = SYSTEM_PROMPT) -> list[Message]:
    """The chat messages for one user: history titles (oldest first) and candidate titles.

    Raises ``ValueError`` for an unknown template or task, or no candidates.
    """
    if template not in CHAT_TEMPLATES:
        hint = f" ({template} is plain text: use build_prompt)" if template in TEXT_TEMPLATES else ""
        raise ValueError(f"unknown chat template {template!r}; choose one of {CHAT_TEMPLATES}{hint}")
    if task not in TASKS:
        raise ValueError(f"unknown ranking task {task!r}; choose one of {TASKS}")
    if len(candidates) == 0:
        raise ValueError("no candidates to rank")
    n = len(candidates)
    user = (f"{_history_block(list(history), template)}\n\n"
            f"Now there are {n} candidate movies that I can watch next:\n"
            f"{_numbered(candidates, brackets=True)}\n\n{_instruction(n, task)}")
    messages: list[Message] = []
    if system:
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": user})
    return messages


def completion_prompt(history: Sequence[str]) -> str:
    """The ``completion`` prompt: the history's titles, oldest first, one per line, then the question."""
    return "\n".join([COMPLETION_HEADER, *history, COMPLETION_QUESTION])


def list_prompt(history: Sequence[str]) -> str:
    """The ``list`` prompt: the header line, then the history's titles, oldest first, each on its
    own line ended by a newline (the next line is the candidate's)."""
    return LIST_HEADER + "".join(continuation_text(t, "list") for t in history)


def continuation_text(title: str, template: str) -> str:
    """What is scored for a candidate: ``" " + title`` after a completion prompt (the line goes
    on after the colon), the title and its line's newline after a list prompt, the bare title as
    a chat answer."""
    if template == "completion":
        return f" {title}"
    if template == "list":
        return f"{title}\n"
    return title


def build_prompt(history: Sequence[str], candidates: Sequence[str], template: str = "sequential",
                 task: str = "likelihood", system: str | None = SYSTEM_PROMPT) -> Prompt:
    """The prompt of any template: chat messages (:func:`build_messages`), or for ``completion``
    and ``list`` the plain text of :func:`completion_prompt` or :func:`list_prompt` (which do not
    list the candidates)."""
    if template in TEXT_TEMPLATES:
        if task != "likelihood":
            raise ValueError(f"the {template} template lists no candidates: it supports the likelihood "
                             f"task only, not list-wise ranking")
        if len(candidates) == 0:
            raise ValueError("no candidates to rank")
        return completion_prompt(history) if template == "completion" else list_prompt(history)
    return build_messages(history, candidates, template, task, system)


def render(prompt: Prompt | Sequence[Message]) -> str:
    """A plain-text view of a prompt (a chat, or completion text), for showing a real one in the book."""
    if isinstance(prompt, str):
        return prompt
    return "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in prompt)


# ------------------------------------------------------------------ answers
_YEAR = re.compile(r"\(\s*\d{4}\s*\)")
_BRACKETED = re.compile(r"\[\s*(\d+)\s*\]")
_INT = re.compile(r"(?<![\w.])(\d+)(?![\w])")
_ENUMERATED = re.compile(r"^\s*(?:rank\s*)?\d+\s*[.):-]\s+(?P<rest>.*)$", re.IGNORECASE)


@dataclass
class ParsedRanking:
    """A list-wise answer read back: candidate indices (0-based, prompt order), most likely first.

    ``ranked`` holds what the model named (valid, first mention only); ``order``
    is the full ranking, with the ``missing`` candidates appended after the
    named ones in the order the prompt showed them.  ``invented`` counts
    mentions that match no candidate (numbers out of range, unknown titles),
    ``duplicates`` repeated mentions.
    """

    ranked: list[int]
    order: list[int]
    invented: int
    duplicates: int

    @property
    def missing(self) -> int:
        return len(self.order) - len(self.ranked)

    @property
    def parsed(self) -> bool:
        """Whether the answer named at least one candidate."""
        return bool(self.ranked)


def _norm(title: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", _YEAR.sub(" ", title).lower()).split())


def _mentions(line: str, keys: list[tuple[str, int]]) -> list[tuple[int, int]]:
    """(position, candidate) for every candidate title found in ``line``; longest titles win."""
    text, found, taken = f" {_norm(line)} ", [], []
    for key, idx in keys:
        start = text.find(f" {key} ")
        while start >= 0:
            end = start + len(key) + 1
            if not any(a < end and start < b for a, b in taken):
                found.append((start, idx))
                taken.append((start, end))
                break
            start = text.find(f" {key} ", start + 1)
    return sorted(found)


def _line_mentions(line: str, keys: list[tuple[str, int]]) -> tuple[list[int], int]:
    """1-based candidate numbers mentioned in one answer line, and how many mentions were invented."""
    line = _YEAR.sub(" ", line)
    bracketed = [int(x) for x in _BRACKETED.findall(line)]
    if bracketed:
        return bracketed, 0
    titled = _mentions(line, keys)
    if titled:
        return [idx + 1 for _, idx in titled], 0
    m = _ENUMERATED.match(line)
    if m:  # "1. something": the leading number is the answer's own list position
        rest = m.group("rest")
        numbers = [int(x) for x in _INT.findall(rest)]
        if numbers:
            return numbers, 0
        return [], int(bool(re.search(r"[A-Za-z]{2,}", rest)))  # an unknown title
    return [int(x) for x in _INT.findall(line)], 0


def parse_ranking(text: str, n: int, titles: Sequence[str] | None = None) -> ParsedRanking:
    """Read a list-wise answer: bracketed or bare candidate numbers, or candidate titles.

    Per line, bracketed numbers (``[3]``) win, then candidate titles (when
    ``titles`` are given, matched case- and punctuation-insensitively without
    the year), then bare numbers (a leading ``"1."`` enumeration is skipped).
    """
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    keys = sorted(((_norm(t), i) for i, t in enumerate(titles or []) if _norm(t)),
                  key=lambda kv: -len(kv[0]))
    ranked: list[int] = []
    invented = duplicates = 0
    for line in re.split(r"[\n;]+", text or ""):
        numbers, unknown = _line_mentions(line, keys)
        invented += unknown
        for k in numbers:
            if not 1 <= k <= n:
                invented += 1
            elif k - 1 in ranked:
                duplicates += 1
            else:
                ranked.append(k - 1)
    seen = set(ranked)
    order = ranked + [i for i in range(n) if i not in seen]
    return ParsedRanking(ranked=ranked, order=order, invented=invented, duplicates=duplicates)
