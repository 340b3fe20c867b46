"""A served LLM scored by likelihood: an OpenAI-compatible ``/v1/completions`` endpoint
that echoes the prompt's log-probabilities (vLLM, SGLang).

The largest models a practitioner would test (7B to 70B parameters) are served by an
inference engine across the GPUs of a node and reached over HTTP.  Chapter 6's method, a
candidate's log-likelihood after the prompt, needs the log-probability of each token of a
given text, not generated text.  ``/v1/completions`` gives it with ``echo: true``,
``logprobs: 1`` and ``max_tokens: 0``: the answer repeats the text's tokens with their
log-probabilities (the first one ``null``, it has no context).  vLLM also has its own
``prompt_logprobs`` field; with ``prompt_logprobs=True`` the backend asks for that one.

For each user, one request carries the prompt alone and the prompt followed by each
candidate's text (several users per request, up to ``prompts_per_request`` texts); the
continuation's tokens are those after the prompt's own tokens, whose log-probabilities
are summed (or averaged per token, as the local backend does).  A text whose tokens do not
start with the prompt's tokens (a token across the boundary) is an error, never guessed.

* **It checks the server before trusting it** (:meth:`CompletionsBackend.check`, on the
  first scoring call): two probe texts that differ in their last word only.  The echoed
  tokens must spell the text, the first log-probability must be ``null`` and the others
  finite and at most 0; and the two texts' log-probabilities must be equal up to the
  changed word and differ there, as a causal model's are.  A server that shifts the
  log-probabilities by one token (llama-cpp-python's server has done so) fails that test;
  one that returns none (llama.cpp's ``llama-server`` refuses ``echo``) fails the first.
* Requests: a bounded number in flight (``max_in_flight``); 429, 5xx, timeouts and broken
  JSON are tried again with exponential backoff (:func:`~recnotes.models.llm.api.post_json`)
  and then reported, never cached.
* Answers are cached on disk by (server model, text): re-running a chapter against the
  same model asks the server nothing.  :attr:`usage` counts the prompt tokens the server
  reported (or, for cached texts, the tokens it had reported), so the chapter's cost table
  has tokens and seconds per user.

Configured like the chat backend: ``OPENAI_BASE_URL`` (for instance
``http://localhost:8000/v1``), ``OPENAI_API_KEY`` (optional for a local server) and the
served model's name (``load_backend("served:<model>")``).  ``end_token=True`` (the chat and
completion templates end a title with the end-of-text token) needs that token's text:
``eos_text=`` or ``RECNOTES_SERVED_EOS`` (for instance ``</s>`` or ``<|eot_id|>``); the
``list`` template ends a title with its newline and needs nothing.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ... import assets
from ...safeio import JsonStore
from .api import DEFAULT_BASE_URL, Secret, post_json
from .interface import LLMBackend, LLMBackendError, Prompt, check_batch

__all__ = ["CompletionsBackend", "Echo", "PROBE_TEXTS"]

#: two texts that differ in their last word only (see :meth:`CompletionsBackend.check`)
PROBE_TEXTS = ("Films I watched, oldest first:\nStar Wars (1977)\nThe Empire Strikes Back (1980)\nReturn",
               "Films I watched, oldest first:\nStar Wars (1977)\nThe Empire Strikes Back (1980)\nAlien")


class Echo:
    """One text's echoed tokens and their log-probabilities (``None`` for the first)."""

    __slots__ = ("tokens", "logprobs")

    def __init__(self, tokens: list[str], logprobs: list[float | None]) -> None:
        self.tokens, self.logprobs = tokens, logprobs

    def as_dict(self) -> dict:
        return {"tokens": self.tokens, "logprobs": self.logprobs}


def _text_key(model: str, text: str, mode: str) -> str:
    blob = json.dumps({"model": model, "text": text, "mode": mode}, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class CompletionsBackend(LLMBackend):
    """Likelihood scoring through an OpenAI-compatible ``/v1/completions`` server (see the
    module docstring).  List-wise answers from the same server go through its chat endpoint:
    :class:`~recnotes.models.llm.api.OpenAIBackend` (``load_backend("openai:<model>")``)."""

    supports_likelihood = True

    def __init__(self, model: str, base_url: str = DEFAULT_BASE_URL, api_key: str | None = None,
                 cache_dir: str | Path | None = None, timeout: float = 120.0, max_retries: int = 4,
                 backoff: float = 1.0, max_in_flight: int = 4, prompts_per_request: int = 32,
                 prompt_logprobs: bool = False, eos_text: str | None = None) -> None:
        super().__init__()
        if not model:
            raise LLMBackendError("no model name: pass the served model's name, e.g. load_backend('served:<model>')")
        if max_in_flight < 1 or prompts_per_request < 2:
            raise ValueError("max_in_flight must be at least 1 and prompts_per_request at least 2")
        self.model = self.name = model
        self.base_url = base_url.rstrip("/")
        self._key = Secret(api_key or "")
        self.cache_dir = Path(cache_dir) if cache_dir else assets.cache_dir() / "llm-cache" / "echo"
        self.store = JsonStore(self.cache_dir)  #: the echoed texts, by model, text and mode
        self.timeout, self.max_retries, self.backoff = timeout, max_retries, backoff
        self.max_in_flight, self.prompts_per_request = max_in_flight, prompts_per_request
        self.prompt_logprobs = prompt_logprobs
        self.eos_text = eos_text if eos_text is not None else os.environ.get("RECNOTES_SERVED_EOS") or None
        self.origin = f"{model}, served at {self.base_url}"
        self.checked = False
        self.requests = 0  #: HTTP requests made (cached texts make none)
        self.seconds = 0.0  #: wall-clock seconds spent waiting for the server

    @classmethod
    def from_env(cls, model: str | None = None, **kwargs: Any) -> "CompletionsBackend":
        """Read ``OPENAI_BASE_URL`` and ``OPENAI_API_KEY`` (and ``OPENAI_MODEL`` if no model is given)."""
        model = model or os.environ.get("OPENAI_MODEL", "")
        return cls(model=model, base_url=os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL,
                   api_key=os.environ.get("OPENAI_API_KEY"), **kwargs)

    def __repr__(self) -> str:
        return f"CompletionsBackend(model={self.model!r}, base_url={self.base_url!r})"

    # ------------------------------------------------------------------ server
    @property
    def _mode(self) -> str:
        return "prompt_logprobs" if self.prompt_logprobs else "echo"

    def _request(self, texts: list[str]) -> tuple[list[Echo], int]:
        body: dict[str, Any] = {"model": self.model, "prompt": texts, "max_tokens": 0, "temperature": 0.0}
        if self.prompt_logprobs:
            body["prompt_logprobs"] = 0
            body["max_tokens"] = 1
        else:
            body.update(echo=True, logprobs=1)
        start = time.perf_counter()
        answer = post_json(f"{self.base_url}/completions", body, self._key, self.timeout, self.max_retries,
                           self.backoff)
        self.seconds += time.perf_counter() - start
        self.requests += 1
        choices = answer.get("choices") if isinstance(answer, dict) else None
        if not isinstance(choices, list) or len(choices) != len(texts):
            raise LLMBackendError(f"{self.base_url}/completions answered {len(choices or [])} choices for "
                                  f"{len(texts)} prompts")
        echoes: list[Echo | None] = [None] * len(texts)
        for pos, choice in enumerate(choices):
            index = choice.get("index", pos) if isinstance(choice, dict) else pos
            if not isinstance(index, int) or not 0 <= index < len(texts) or echoes[index] is not None:
                raise LLMBackendError(f"{self.base_url}/completions answered a choice with index {index!r}")
            echoes[index] = self._parse(choice, texts[index])
        usage = answer.get("usage") or {}
        return echoes, int(usage.get("prompt_tokens") or sum(len(e.tokens) for e in echoes))

    def _parse(self, choice: Any, text: str) -> Echo:
        """The echoed tokens of ``text`` in one choice (generated tokens, if any, dropped)."""
        where = f"{self.base_url}/completions ({self.model})"
        if self.prompt_logprobs:
            entries = choice.get("prompt_logprobs") if isinstance(choice, dict) else None
            if not isinstance(entries, list) or not entries:
                raise LLMBackendError(f"{where} returned no prompt_logprobs: it is not a vLLM server; "
                                      f"use prompt_logprobs=False (echo with logprobs)")
            tokens, logprobs = [], []
            for entry in entries:
                if entry is None:
                    tokens.append(None)
                    logprobs.append(None)
                    continue
                if not isinstance(entry, dict) or len(entry) != 1:
                    raise LLMBackendError(f"{where}: a prompt_logprobs entry with {len(entry or {})} tokens "
                                          f"(asked for the prompt's own token only, prompt_logprobs=0)")
                (info,) = entry.values()
                tokens.append(info.get("decoded_token") if isinstance(info, dict) else None)
                logprobs.append(info.get("logprob") if isinstance(info, dict) else info)
            if tokens and tokens[0] is None:
                tokens[0] = ""  # the first token's text is not given; its log-probability is null
            return Echo([t or "" for t in tokens], logprobs)
        logprobs_obj = choice.get("logprobs") if isinstance(choice, dict) else None
        if not isinstance(logprobs_obj, dict) or not isinstance(logprobs_obj.get("token_logprobs"), list):
            raise LLMBackendError(
                f"{where} returned no log-probabilities for the echoed prompt: it does not support "
                f"echo with logprobs on /v1/completions (llama.cpp's llama-server does not, for one); "
                f"serve the model with vLLM or SGLang")
        tokens = list(logprobs_obj.get("tokens") or [])
        logprobs = list(logprobs_obj["token_logprobs"])
        offsets = logprobs_obj.get("text_offset")
        if len(tokens) != len(logprobs):
            raise LLMBackendError(f"{where}: {len(tokens)} echoed tokens but {len(logprobs)} log-probabilities")
        # drop generated tokens (a server that ignores max_tokens=0): those starting at or past the text's end
        if isinstance(offsets, list) and len(offsets) == len(tokens):
            keep = sum(1 for o in offsets if o < len(text))
        else:
            keep, length = 0, 0
            while keep < len(tokens) and length < len(text):
                length += len(tokens[keep])
                keep += 1
        return Echo(tokens[:keep], logprobs[:keep])

    def _validate(self, echo: Echo, text: str) -> None:
        where = f"{self.base_url}/completions ({self.model})"
        if not echo.logprobs:
            raise LLMBackendError(f"{where} echoed no tokens of the prompt")
        if echo.logprobs[0] is not None:
            raise LLMBackendError(
                f"{where} gave the first token of the prompt a log-probability ({echo.logprobs[0]}); a server "
                f"that aligns them right gives it none (null): its log-probabilities are likely shifted by one "
                f"token (llama-cpp-python's server has been seen to do this); serve the model with vLLM or SGLang")
        bad = [lp for lp in echo.logprobs[1:] if lp is None or not math.isfinite(lp) or lp > 1e-4]
        if bad:
            raise LLMBackendError(f"{where} returned log-probabilities that are missing or not at most 0 "
                                  f"(e.g. {bad[0]!r})")

    def check(self) -> None:
        """Refuse a server whose echoed log-probabilities are missing or misaligned (see the module
        docstring); called once before the first scoring request."""
        where = f"{self.base_url}/completions ({self.model})"
        (a, b), _ = self._request(list(PROBE_TEXTS))
        for echo, text in ((a, PROBE_TEXTS[0]), (b, PROBE_TEXTS[1])):
            self._validate(echo, text)
            if not self.prompt_logprobs and "".join(echo.tokens) != text:
                raise LLMBackendError(f"{where}: the echoed tokens do not spell the prompt "
                                      f"({''.join(echo.tokens)[:60]!r}...)")
        common = 0
        while common < min(len(a.tokens), len(b.tokens)) and a.tokens[common] == b.tokens[common]:
            common += 1
        if self.prompt_logprobs:  # no token texts to compare: the shared prefix is all but the last words
            common = min(len(a.logprobs), len(b.logprobs)) - 1
        if common < 4 or common >= min(len(a.logprobs), len(b.logprobs)):
            raise LLMBackendError(f"{where}: the two probe texts do not share their first tokens")
        same = np.allclose(np.asarray(a.logprobs[1:common], float), np.asarray(b.logprobs[1:common], float),
                           atol=1e-2)
        differ = abs(float(a.logprobs[common]) - float(b.logprobs[common])) > 1e-3
        if not (same and differ):
            raise LLMBackendError(
                f"{where} returned log-probabilities that are not aligned with the prompt's tokens: two texts "
                f"that differ only in their last word got different values for their shared first tokens, or "
                f"the same value for the word that differs. A server that shifts the echoed log-probabilities "
                f"by one token does this (llama-cpp-python's server has); serve the model with vLLM or SGLang")
        self.checked = True

    # ------------------------------------------------------------------ cache
    def _read(self, text: str) -> tuple[Echo, int] | None:
        record = self.store.get(_text_key(self.model, text, self._mode))
        try:
            return Echo(record["tokens"], record["logprobs"]), int(record["prompt_tokens"])
        except (KeyError, TypeError, ValueError):
            return None

    def _write(self, text: str, echo: Echo, tokens: int) -> None:
        self.store.put(_text_key(self.model, text, self._mode),
                       {"model": self.model, "text": text, **echo.as_dict(), "prompt_tokens": tokens})

    def echoes(self, texts: Sequence[str]) -> list[Echo]:
        """Each text's echoed tokens and log-probabilities (from the cache, or from the server in
        requests of up to ``prompts_per_request`` texts, up to ``max_in_flight`` at once)."""
        out: dict[str, Echo] = {}
        missing: list[str] = []
        for text in dict.fromkeys(texts):
            hit = self._read(text)
            if hit is None:
                missing.append(text)
            else:
                out[text] = hit[0]
                self.usage.add(hit[1], 0, cached=True)
        if missing:
            if not self.checked:
                self.check()
            chunks = [missing[i:i + self.prompts_per_request] for i in range(0, len(missing), self.prompts_per_request)]
            with ThreadPoolExecutor(max_workers=self.max_in_flight) as pool:
                for chunk, (echoes, tokens) in zip(chunks, pool.map(self._request, chunks)):
                    for k, (text, echo) in enumerate(zip(chunk, echoes)):
                        self._validate(echo, text)
                        share = tokens // len(chunk) + (1 if k < tokens % len(chunk) else 0)
                        self._write(text, echo, share)
                        self.usage.add(share, 0)
                        out[text] = echo
        return [out[t] for t in texts]

    # ---------------------------------------------------------------- scoring
    def _text(self, prompt: Prompt) -> str:
        if not isinstance(prompt, str):
            raise LLMBackendError(
                f"{self.name}: a served model is scored on plain-text prompts (the 'completion' and 'list' "
                f"templates); a chat prompt would need the model's chat template, which /v1/completions does "
                f"not apply")
        return prompt

    def score_batch(self, prompts: Sequence[Prompt], continuations: Sequence[Sequence[str]],
                    scorer: str = "packed", end_token: bool = False, reduce: str = "mean",
                    lower=None) -> list[np.ndarray]:
        """Summed (or mean per token) log-probability of each continuation after its prompt.
        ``scorer`` and ``lower`` are accepted for the local backend's signature; the server computes every text
        in full."""
        check_batch(prompts, continuations, scorer, reduce)
        texts = [self._text(prompt) for prompt in prompts]
        end = ""
        if end_token:
            if not self.eos_text:
                raise LLMBackendError(
                    f"{self.name}: ending each title with the end-of-text token needs that token's text "
                    f"(eos_text=..., or RECNOTES_SERVED_EOS, e.g. '</s>'); the 'list' template needs none")
            end = self.eos_text
        rows = []
        for text, conts in zip(texts, continuations):
            if any(not c for c in conts):
                raise ValueError("every continuation needs at least one token (got an empty string)")
            rows.append((text, [text + c + end for c in conts]))
        flat = [t for text, full in rows for t in (text, *full)]
        echoes = iter(self.echoes(flat))
        out = []
        for text, full in rows:
            head = next(echoes)
            n = len(head.logprobs)
            values = np.empty(len(full))
            for k, whole in enumerate(full):
                echo = next(echoes)
                if (not self.prompt_logprobs and echo.tokens[:n] != head.tokens) or len(echo.logprobs) <= n:
                    raise LLMBackendError(
                        f"{self.name}: the tokens of a prompt followed by a candidate do not start with the "
                        f"prompt's own tokens (a token spans the boundary at {text[-20:]!r} + "
                        f"{whole[len(text):len(text) + 20]!r}); end the prompt with a newline or a space")
                lps = np.asarray(echo.logprobs[n:], dtype=np.float64)
                values[k] = lps.sum() if reduce == "sum" else lps.mean()
            out.append(values)
        return out

    def count_tokens(self, text: str) -> int:
        """Number of tokens of ``text`` as the server counts them (one echo request, cached)."""
        return len(self.echoes([text])[0].tokens)

    # ------------------------------------------------------------- generation
    def chat(self, messages, max_new_tokens: int = 64, temperature: float = 0.0):
        raise LLMBackendError(f"{self.name}: list-wise answers from a server go through its chat endpoint: "
                              f"load_backend('openai:{self.model}') with the same OPENAI_BASE_URL")
