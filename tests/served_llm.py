"""Test scaffolding: a small server speaking vLLM's ``/v1/completions`` format whose
log-probabilities are computed by the pinned model, in this process.

``POST /v1/completions`` with ``prompt`` (a string or a list), ``echo: true`` and
``logprobs: k`` answers, per prompt, the prompt's tokens (their text cut from the prompt by
the tokenizer's offsets), each token's log-probability given the tokens before it (the first
``null``) and ``text_offset``; with vLLM's ``prompt_logprobs: 0`` it answers that field
instead (``{token_id: {"logprob", "rank", "decoded_token"}}`` per token, the first ``null``).
``max_tokens`` must be 0 with echo (nothing is generated) or 1 with ``prompt_logprobs``.

Faults, to test the client: ``fail`` (a list of HTTP statuses answered to the first
requests, in order; ``"json"`` answers a broken body), ``delay`` (seconds before answering),
``shift`` (log-probabilities moved one token to the left, the first one a number, as
llama-cpp-python's server has returned them) and ``shift_null`` (the same, the first one
kept ``null``), ``no_logprobs`` (``logprobs: null``, as a server that ignores ``echo``).
"""

from __future__ import annotations

import json
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import torch


_COMPUTED: dict = {}


class _State:
    def __init__(self, backend, name: str) -> None:
        self.backend, self.name = backend, name
        self.lock = threading.Lock()
        self.fail: list = []
        self.delay = 0.0
        self.mode = "ok"
        self.requests: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0

    @torch.no_grad()
    def logprobs(self, text: str) -> tuple[list[int], list[tuple[int, int]], list[float | None]]:
        key = (id(self.backend.model), text)
        if key not in _COMPUTED:  # the model's numbers, computed once per text for all tests
            _COMPUTED[key] = self._compute(text)
        return _COMPUTED[key]

    def _compute(self, text: str):
        tok = self.backend.tokenizer
        enc = tok(text, add_special_tokens=True, return_offsets_mapping=True)
        ids = enc["input_ids"]
        model = self.backend.model
        with self.lock:  # one forward at a time (the model is shared)
            logits = model(torch.tensor([ids], device=self.backend.device)).logits[0].float()
        lp = torch.log_softmax(logits, dim=-1)
        values = [None] + [float(lp[i - 1, ids[i]]) for i in range(1, len(ids))]
        return ids, enc["offset_mapping"], values


def _handler(state: _State):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's naming)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with state.lock:
                state.requests.append(body)
                state.in_flight += 1
                state.max_in_flight = max(state.max_in_flight, state.in_flight)
                fault = state.fail.pop(0) if state.fail else None
            try:
                time.sleep(state.delay)
                if fault == "json":
                    status, data = 200, b'{"choices": ['
                elif fault is not None:
                    status, data = int(fault), json.dumps({"error": {"message": "try later"}}).encode()
                elif self.path != "/v1/completions":
                    status, data = 404, b'{"error": "not found"}'
                else:
                    status, data = 200, json.dumps(self._answer(body)).encode()
            finally:
                # counted out before the answer leaves: a client that reads it and sends its next
                # request at once is never counted twice, however late this thread runs again
                with state.lock:
                    state.in_flight -= 1
            self._send(status, data)

        def _answer(self, body: dict) -> dict:
            prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
            choices, total = [], 0
            for index, text in enumerate(prompts):
                ids, offsets, values = state.logprobs(text)
                total += len(ids)
                if state.mode in ("shift", "shift_null"):
                    values = values[1:] + [values[-1]]
                    if state.mode == "shift_null":
                        values[0] = None
                tokens = [text[a:b] for a, b in offsets]
                choice = {"index": index, "text": text if body.get("echo") else "", "finish_reason": "length"}
                if body.get("prompt_logprobs") is not None:
                    choice["prompt_logprobs"] = [None if v is None else
                                                 {str(i): {"logprob": v, "rank": 1, "decoded_token": t}}
                                                 for i, t, v in zip(ids, tokens, values)]
                    choice["logprobs"] = None
                elif body.get("echo") and body.get("logprobs") is not None and state.mode != "no_logprobs":
                    choice["logprobs"] = {"tokens": tokens, "token_logprobs": values,
                                          "top_logprobs": [None] + [{t: v} for t, v in zip(tokens[1:], values[1:])],
                                          "text_offset": [a for a, _ in offsets]}
                else:
                    choice["logprobs"] = None
                choices.append(choice)
            return {"id": "cmpl-test", "object": "text_completion", "model": state.name, "choices": choices,
                    "usage": {"prompt_tokens": total, "completion_tokens": 0, "total_tokens": total}}

        def _send(self, status: int, data: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if status == 429:
                self.send_header("Retry-After", "0")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):  # keep the test output quiet
            pass

    return Handler


@contextmanager
def serve(backend, name: str = "smollm2-test"):
    """Yield ``(base_url, state)`` of a server on a free loopback port, stopped afterwards."""
    state = _State(backend, name)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", state
    finally:
        httpd.shutdown()
        httpd.server_close()
