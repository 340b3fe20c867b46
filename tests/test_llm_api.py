"""The OpenAI-compatible backend against a small local HTTP server (no external network):
request shape, the on-disk cache, token counts, and the API key never leaking."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from recnotes.models.llm import LLMBackendError, LLMRanker, OpenAIBackend, load_backend

KEY = "sk-test-0123456789abcdefSECRET"


class FakeOpenAI(BaseHTTPRequestHandler):
    """Answers ``POST /v1/chat/completions`` in the OpenAI format and records requests."""

    requests: list[dict] = []
    answer = "[2], [1], [3]"
    status = 200

    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
        if self.status != 200:  # an error page that echoes the key, as some servers do
            payload = {"error": {"message": f"Incorrect API key provided: {KEY}"}}
        else:
            n_prompt = sum(len(m["content"].split()) for m in body["messages"])
            payload = {"id": "chatcmpl-1", "object": "chat.completion", "model": body["model"],
                       "choices": [{"index": 0, "finish_reason": "stop",
                                    "message": {"role": "assistant", "content": self.answer}}],
                       "usage": {"prompt_tokens": n_prompt, "completion_tokens": 5,
                                 "total_tokens": n_prompt + 5}}
        data = json.dumps(payload).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):  # keep the test output quiet
        pass


@pytest.fixture
def server():
    FakeOpenAI.requests, FakeOpenAI.status = [], 200
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def env(monkeypatch, tmp_path, server):
    monkeypatch.setenv("RECNOTES_CACHE", str(tmp_path))
    monkeypatch.setenv("OPENAI_BASE_URL", server)
    monkeypatch.setenv("OPENAI_MODEL", "gpt-test")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    return tmp_path


MESSAGES = [{"role": "system", "content": "You are a movie recommender system."},
            {"role": "user", "content": "Rank these: [1] Heat [2] Fargo [3] Alien"}]


def test_request_shape_and_token_counts(env):
    backend = OpenAIBackend.from_env()
    answer = backend.chat(MESSAGES, max_new_tokens=30, temperature=0.0)
    (req,) = FakeOpenAI.requests
    assert req["path"] == "/v1/chat/completions"
    assert req["headers"]["Authorization"] == f"Bearer {KEY}"
    assert req["headers"]["Content-Type"] == "application/json"
    assert req["body"] == {"model": "gpt-test", "messages": MESSAGES, "max_tokens": 30,
                           "temperature": 0.0}
    n_prompt = sum(len(m["content"].split()) for m in MESSAGES)  # what the server reported
    assert (answer.text, answer.prompt_tokens, answer.completion_tokens) == ("[2], [1], [3]", n_prompt, 5)
    assert not answer.cached
    assert (backend.usage.calls, backend.usage.prompt_tokens, backend.usage.completion_tokens) == (1, n_prompt, 5)


def test_responses_are_cached_on_disk_by_request_hash(env):
    backend = OpenAIBackend.from_env()
    first = backend.chat(MESSAGES, max_new_tokens=30)
    second = OpenAIBackend.from_env().chat(MESSAGES, max_new_tokens=30)  # a fresh process would do the same
    assert len(FakeOpenAI.requests) == 1 and second.cached and second.text == first.text
    assert second.prompt_tokens == first.prompt_tokens  # token counts survive the cache
    files = list((env / "llm-cache").rglob("*.json"))
    assert len(files) == 1
    canonical = json.dumps({"model": "gpt-test", "messages": MESSAGES,
                            "params": {"max_tokens": 30, "temperature": 0.0}},
                           sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    assert files[0].stem == hashlib.sha256(canonical.encode()).hexdigest()
    backend.chat(MESSAGES, max_new_tokens=31)  # other parameters: a new request
    OpenAIBackend.from_env(model="gpt-other").chat(MESSAGES, max_new_tokens=30)  # other model too
    assert len(FakeOpenAI.requests) == 3
    assert KEY not in "".join(f.read_text() for f in (env / "llm-cache").rglob("*.json"))


def test_key_never_in_repr_logs_or_errors(env, caplog):
    caplog.set_level(logging.DEBUG)
    backend = load_backend("openai")
    assert KEY not in repr(backend) and KEY not in str(backend) and KEY not in f"{backend._key}"
    assert "api_key=set" in repr(backend)
    backend.chat(MESSAGES)
    FakeOpenAI.status = 401
    with pytest.raises(LLMBackendError) as err:
        backend.chat(MESSAGES, max_new_tokens=5)
    text = str(err.value) + repr(err.value)
    assert "401" in text and KEY not in text and "***" in text
    assert KEY not in "".join(traceback.format_exception(err.value))  # as a notebook would show it
    assert caplog.records and all(KEY not in r.getMessage() for r in caplog.records)
    with pytest.raises(TypeError):
        pickle.dumps(backend._key)


def test_server_errors_are_retried_then_reported(env):
    FakeOpenAI.status = 503
    backend = OpenAIBackend.from_env(max_retries=1)
    with pytest.raises(LLMBackendError, match="HTTP 503"):
        backend.chat(MESSAGES)
    assert len(FakeOpenAI.requests) == 2


def test_unreachable_server_and_missing_model(monkeypatch, tmp_path):
    monkeypatch.setenv("RECNOTES_CACHE", str(tmp_path))
    monkeypatch.delenv("OPENAI_MODEL", raising=False)
    with pytest.raises(LLMBackendError, match="OPENAI_MODEL"):
        OpenAIBackend.from_env()
    backend = OpenAIBackend("m", base_url="http://127.0.0.1:9/v1", api_key=KEY, max_retries=0, timeout=2)
    with pytest.raises(LLMBackendError, match="could not reach") as err:
        backend.chat(MESSAGES)
    assert KEY not in str(err.value)


def test_listwise_ranker_over_the_api(env):
    titles = ["<pad>"] + [f"Movie {i} (199{i})" for i in range(1, 10)]
    ranker = LLMRanker(load_backend("openai"), titles, method="listwise", shuffle=False)
    scores = ranker.score_candidates([np.array([1, 2])], np.array([[4, 5, 6]]))
    assert (-scores[0]).argsort().tolist() == [1, 0, 2]  # the server's answer "[2], [1], [3]"
    body = FakeOpenAI.requests[0]["body"]
    assert "Movie 1 (1991)" in body["messages"][-1]["content"] and "[3] Movie 6 (1996)" in body["messages"][-1]["content"]
    assert ranker.stats.users == 1 and ranker.stats.completion_tokens == 5
    with pytest.raises(LLMBackendError, match="listwise"):
        LLMRanker(load_backend("openai"), titles, method="likelihood")


def test_capture_requests_shows_what_leaves_the_machine(tmp_path):
    from recnotes.models.llm.api import OpenAIBackend, capture_requests

    for _ in range(2):  # the second time too: the block's own answer cache starts empty
        with capture_requests(answer="[2], [1]", api_key="sk-test-123") as capture:
            api = OpenAIBackend.from_env(model="gpt-4o-mini", cache_dir=capture.cache_dir)
            reply = api.chat([{"role": "user", "content": "Rank: [1] A (1990) [2] B (1991)"}], max_new_tokens=8)
        assert reply.text == "[2], [1]" and len(capture.requests) == 1
    request = capture.requests[0]
    assert request.method == "POST" and request.url.endswith("/chat/completions")
    assert request.headers["Authorization"] == "Bearer sk-test-123"
    assert "sk-test-123" not in json.dumps(request.body) and "sk-test-123" not in str(request.shown_headers())
    assert request.body["messages"][0]["content"].startswith("Rank:")
    assert "OPENAI_API_KEY" not in os.environ or os.environ["OPENAI_API_KEY"] != "sk-test-123"
