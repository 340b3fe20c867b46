"""An OpenAI-compatible chat-completions backend, with an on-disk response cache.

Configured from the environment so that no secret lives in a notebook:
``OPENAI_BASE_URL`` (default ``https://api.openai.com/v1``), ``OPENAI_MODEL``
and ``OPENAI_API_KEY``.  The key is held in a :class:`Secret` whose ``repr``
and ``str`` are masked; it only ever goes into the ``Authorization`` header,
and it is scrubbed from any error text a server sends back.

Every answer is stored under ``recnotes.assets.cache_dir()/llm-cache/`` keyed by
the sha256 of (model, messages, parameters); a repeated request is served from
disk, so re-running a chapter costs nothing.  Token counts come from the
server's ``usage`` field (estimated from text length if it has none).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Sequence

from ... import assets
from ...safeio import JsonStore
from .interface import Completion, LLMBackend, LLMBackendError, Message

__all__ = ["Secret", "OpenAIBackend", "post_json", "request_key", "Capture", "CapturedRequest", "capture_requests"]

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"


class Secret:
    """A string that never shows itself in ``repr``, ``str`` or f-strings."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself (only for the request header)."""
        return self._value

    def scrub(self, text: str) -> str:
        """``text`` with every occurrence of the secret replaced by ``***``."""
        return text.replace(self._value, "***") if self._value else text

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __reduce__(self):  # refuse to be pickled into a notebook or a cache
        raise TypeError("a Secret cannot be pickled")


def request_key(model: str, messages: Sequence[Message], params: dict[str, Any]) -> str:
    """The cache key: sha256 of the canonical JSON of (model, messages, parameters)."""
    blob = json.dumps({"model": model, "messages": list(messages), "params": params},
                      sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


#: HTTP statuses worth another try: rate limited, or the server (or a proxy before it) failed
RETRY_STATUSES = (408, 429, 500, 502, 503, 504)


def post_json(url: str, body: dict, key: Secret | None = None, timeout: float = 60.0, max_retries: int = 2,
              backoff: float = 1.0, max_wait: float = 30.0) -> dict:
    """POST ``body`` as JSON and return the JSON answer.

    Rate limits (429), server errors (5xx), timeouts, dropped connections and answers that
    are not JSON are tried again up to ``max_retries`` times, waiting ``backoff * 2**attempt``
    seconds (or the server's ``Retry-After``, at most ``max_wait``); any other HTTP error, or
    the last failure, raises :class:`LLMBackendError` naming the URL.  The key goes into the
    ``Authorization`` header only and is scrubbed from every message.
    """
    key = key or Secret("")
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key.reveal()}"
    data = json.dumps(body).encode("utf-8")
    problem = "no attempt made"
    for attempt in range(max_retries + 1):
        log.info("POST %s (attempt %d)", url, attempt + 1)
        request = urllib.request.Request(url, data=data, headers=headers, method="POST")
        wait = backoff * 2.0 ** attempt
        try:
            with urllib.request.urlopen(request, timeout=timeout) as resp:
                raw = resp.read()
            try:
                return json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                problem = f"{url} did not answer with JSON ({key.scrub(raw[:120].decode('utf-8', 'replace'))!r})"
        except urllib.error.HTTPError as err:
            detail = key.scrub(err.read().decode("utf-8", "replace")[:500])
            problem = f"{url} answered HTTP {err.code}: {detail}"
            if err.code not in RETRY_STATUSES:
                raise LLMBackendError(problem) from None
            after = err.headers.get("Retry-After") if err.headers else None
            if after and after.strip().replace(".", "", 1).isdigit():
                wait = float(after)
        except (urllib.error.URLError, TimeoutError, OSError) as err:
            reason = key.scrub(str(getattr(err, "reason", err)))
            problem = f"could not reach {url} ({reason}); check the server's address and the network"
        if attempt < max_retries:
            time.sleep(min(wait, max_wait))
    raise LLMBackendError(f"{problem} (after {max_retries + 1} attempts)")


class OpenAIBackend(LLMBackend):
    """Chat completions from an OpenAI-compatible server (see the module docstring)."""

    def __init__(self, model: str, base_url: str = DEFAULT_BASE_URL, api_key: str | None = None,
                 cache_dir: str | Path | None = None, timeout: float = 60.0,
                 max_retries: int = 2, extra_params: dict[str, Any] | None = None) -> None:
        super().__init__()
        if not model:
            raise LLMBackendError("no model name: pass model=... or set OPENAI_MODEL")
        self.model = model
        self.name = model
        self.base_url = base_url.rstrip("/")
        self._key = Secret(api_key or "")
        self.cache_dir = Path(cache_dir) if cache_dir else assets.cache_dir() / "llm-cache"
        self.store = JsonStore(self.cache_dir)  #: the answers, by request
        self.timeout = timeout
        self.max_retries = max_retries
        self.extra_params = dict(extra_params or {})

    @classmethod
    def from_env(cls, model: str | None = None, **kwargs: Any) -> "OpenAIBackend":
        """Read ``OPENAI_BASE_URL``, ``OPENAI_MODEL`` and ``OPENAI_API_KEY``."""
        model = model or os.environ.get("OPENAI_MODEL", "")
        if not model:
            raise LLMBackendError("set OPENAI_MODEL (for example gpt-4o-mini) or pass model=...")
        return cls(model=model, base_url=os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL,
                   api_key=os.environ.get("OPENAI_API_KEY"), **kwargs)

    def __repr__(self) -> str:
        key = "set" if self._key else "unset"
        return f"OpenAIBackend(model={self.model!r}, base_url={self.base_url!r}, api_key={key})"

    # ---------------------------------------------------------------- request
    def _post(self, body: dict) -> dict:
        return post_json(f"{self.base_url}/chat/completions", body, self._key, self.timeout, self.max_retries)

    def chat(self, messages: Sequence[Message], max_new_tokens: int = 64,
             temperature: float = 0.0) -> Completion:
        params = {"max_tokens": int(max_new_tokens), "temperature": float(temperature),
                  **self.extra_params}
        key = request_key(self.model, messages, params)
        record = self.store.get(key)
        cached = record is not None
        if record is None:
            answer = self._post({"model": self.model, "messages": list(messages), **params})
            try:
                text = answer["choices"][0]["message"]["content"] or ""
            except (KeyError, IndexError, TypeError):
                raise LLMBackendError(
                    f"unexpected answer from {self.base_url}: no choices[0].message.content") from None
            usage = answer.get("usage") or {}
            record = {
                "model": self.model, "messages": list(messages), "params": params, "text": text,
                "prompt_tokens": int(usage.get("prompt_tokens")
                                     or sum(self.count_tokens(m["content"]) for m in messages)),
                "completion_tokens": int(usage.get("completion_tokens") or self.count_tokens(text)),
                "usage_reported": bool(usage),
            }
            self.store.put(key, record)
        self.usage.add(record["prompt_tokens"], record["completion_tokens"], cached=cached)
        return Completion(text=record["text"], prompt_tokens=record["prompt_tokens"],
                          completion_tokens=record["completion_tokens"], cached=cached)


@dataclass
class CapturedRequest:
    """One HTTP request an :class:`OpenAIBackend` made, as a server would receive it."""

    method: str
    url: str
    headers: dict[str, str]
    body: dict

    def shown_headers(self) -> dict[str, str]:
        """The headers with the key itself replaced by a placeholder."""
        return {k: ("Bearer <the key>" if k.lower() == "authorization" else v) for k, v in self.headers.items()}


@dataclass
class Capture:
    """What :func:`capture_requests` yields: the requests made, and an empty answer cache."""

    requests: list
    cache_dir: str


@contextmanager
def capture_requests(answer: str = "[1]", api_key: str = "sk-made-up-0123456789"):
    """Run :class:`OpenAIBackend` against a stand-in server, to see exactly what leaves the machine.

    Inside the block, HTTP requests go to a stand-in that records them (the yielded
    :class:`Capture`'s ``requests``, each a :class:`CapturedRequest`) and answers every chat
    with ``answer``; ``OPENAI_API_KEY`` is set to the made-up ``api_key``, ``OPENAI_BASE_URL``
    is unset, and ``cache_dir`` is a fresh temporary folder for the backend's answer cache
    (so every request is really made).  Nothing reaches the network.
    """
    import io
    import tempfile
    from unittest import mock

    captured: list[CapturedRequest] = []

    def stand_in(request, timeout=None):
        captured.append(CapturedRequest(request.get_method(), request.full_url, dict(request.header_items()),
                                        json.loads(request.data)))
        reply = {"choices": [{"message": {"content": answer}}], "usage": {"prompt_tokens": 0, "completion_tokens": 0}}
        return io.BytesIO(json.dumps(reply).encode())

    environ = {k: v for k, v in os.environ.items() if k != "OPENAI_BASE_URL"}
    environ["OPENAI_API_KEY"] = api_key
    with tempfile.TemporaryDirectory(prefix="recnotes-capture-") as tmp, \
            mock.patch("urllib.request.urlopen", stand_in), mock.patch.dict(os.environ, environ, clear=True):
        yield Capture(captured, tmp)
