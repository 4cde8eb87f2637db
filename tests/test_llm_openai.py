"""The OpenAI-compatible backend against a local HTTP server that speaks the used protocol.

The server answers ``/v1/chat/completions`` and ``/v1/completions`` (with ``echo`` + ``logprobs``:
one token per whitespace-led word, log-probability ``-(i + 1) / 10`` for token ``i``), and fails
on demand: queued actions ``"500"``, ``"400"``, ``"401"``, ``"echo_auth"`` (a 502 quoting the
Authorization header), ``"sleep"`` (longer than the client's timeout) or ``"nologprobs"`` are
applied to the next requests, one each.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from gecko_jax.llm import CachedLLM, LLMError, OpenAICompatibleLLM, load_llm

KEY_ENV = "GECKO_TEST_OPENAI_KEY"
SECRET = "sk-test-secret-0123456789"


class FakeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.actions: list[str] = []
        self.requests: list[tuple[str, dict, str | None]] = []
        self.in_flight = self.max_in_flight = 0
        self.delay = 0.0
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


def echo_logprobs(prompt: str) -> dict:
    pieces = list(re.finditer(r"\s*\S+", prompt))
    return {
        "tokens": [m.group() for m in pieces] + [" X"],
        "token_logprobs": [None] + [-(i + 1) / 10 for i in range(1, len(pieces))] + [-0.5],
        "text_offset": [m.start() for m in pieces] + [len(prompt)],
    }


class Handler(BaseHTTPRequestHandler):
    server: FakeServer

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        server = self.server
        with server.lock:
            server.requests.append((self.path, body, self.headers.get("Authorization")))
            action = server.actions.pop(0) if server.actions else ""
            server.in_flight += 1
            server.max_in_flight = max(server.max_in_flight, server.in_flight)
        self.counted = True
        try:
            time.sleep(server.delay)
            if action == "sleep":
                time.sleep(1.0)
            if action in ("500", "400", "401"):
                self.reply(int(action), {"error": {"message": f"injected {action}"}})
            elif action == "echo_auth":  # a proxy that echoes request headers in its error
                auth = self.headers.get("Authorization")
                self.reply(502, {"error": {"message": f"bad gateway for {auth}"}})
            elif self.path == "/v1/chat/completions":
                text = "echo: " + body["messages"][-1]["content"]
                self.reply(200, self.completion({"message": {"content": text}}, body))
            elif self.path == "/v1/completions" and body.get("echo"):
                logprobs = None if action == "nologprobs" else echo_logprobs(body["prompt"])
                self.reply(
                    200,
                    self.completion({"text": body["prompt"] + " X", "logprobs": logprobs}, body),
                )
            elif self.path == "/v1/completions":
                self.reply(200, self.completion({"text": " done"}, body))
            else:
                self.reply(404, {"error": "no such route"})
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client timed out and left
        finally:
            self.leave()

    def leave(self) -> None:
        """Count this request out of the in-flight ones, once: before its reply's body is sent,
        since the client may send its next request as soon as it has read it."""
        if self.counted:
            with self.server.lock:
                self.server.in_flight -= 1
            self.counted = False

    @staticmethod
    def completion(choice: dict, body: dict) -> dict:
        finish = "length" if body["max_tokens"] < 3 else "stop"
        return {"choices": [{**choice, "finish_reason": finish}], "usage": {"completion_tokens": 2}}

    def reply(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.leave()
        self.wfile.write(data)


@pytest.fixture
def server():
    server = FakeServer()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def llm(server, monkeypatch) -> OpenAICompatibleLLM:
    monkeypatch.setenv(KEY_ENV, SECRET)
    return OpenAICompatibleLLM(
        "test-model", server.url, api_key_env=KEY_ENV, timeout=0.3, max_retries=2, backoff=0.01
    )


def test_chat_for_messages_and_completions_for_strings(llm, server):
    chat, raw = llm.generate([[{"role": "user", "content": "hi"}], "Once upon"], max_tokens=8)
    assert (chat.text, chat.finish_reason, chat.num_tokens) == ("echo: hi", "stop", 2)
    assert (raw.text, raw.finish_reason) == (" done", "stop")
    assert llm.generate(["x"], max_tokens=1)[0].finish_reason == "length"
    routes = {path: body for path, body, _ in server.requests}
    assert set(routes) == {"/v1/chat/completions", "/v1/completions"}
    assert routes["/v1/chat/completions"]["messages"] == [{"role": "user", "content": "hi"}]
    assert routes["/v1/completions"]["model"] == "test-model"


def test_score_reads_the_continuation_tokens_by_offset(llm):
    context, continuation = "Passage: whales are big\nQuery:", " how big are whales"
    (score,) = llm.score([context], [continuation])
    # Prompt words: Passage:, whales, are, big, \nQuery:, how, big, are, whales -> 5..8.
    assert score.token_logprobs == pytest.approx((-0.6, -0.7, -0.8, -0.9))
    assert score.total == pytest.approx(-3.0)
    # A continuation that starts inside a word counts the token that straddles the boundary.
    (straddle,) = llm.score(["Answer: Y"], ["es"])
    assert straddle.token_logprobs == pytest.approx((-0.2,))


def test_server_errors_are_retried_and_counted(llm, server):
    server.actions = ["500", "500"]
    (generation,) = llm.generate(["hello"], max_tokens=8)
    assert generation.finish_reason == "stop"
    assert (llm.stats.retries, llm.stats.failures, llm.stats.requests) == (2, 0, 3)


def test_timeouts_are_retried_then_counted_as_failures(llm, server):
    server.actions = ["sleep"] * 3
    started = time.perf_counter()
    (generation,) = llm.generate(["hello"], max_tokens=8)
    assert time.perf_counter() - started < 2.0
    assert generation == generation.__class__("", "error", 0)
    assert (llm.stats.retries, llm.stats.failures) == (2, 1)
    server.actions = ["sleep"] * 3
    (score,) = llm.score(["a b"], [" c"])
    assert score.total != score.total  # NaN marks a failed pair
    assert llm.stats.failures == 2


def test_failures_past_max_failed_wait_are_not_sent(llm, server):
    llm.retry.max_failed_wait = 0.0
    llm.max_concurrency = 1  # one request at a time, so the count below is exact
    server.actions = ["500"] * 3
    results = llm.generate(["a", "b", "c"], max_tokens=8)
    assert [r.finish_reason for r in results] == ["error"] * 3
    # The first failed request used up the budget: no retry and no other item is sent.
    assert len(server.requests) == 1 and llm.stats.failures == 3
    assert llm.call_stats()["failed_wait_s"] > 0


def test_client_errors_are_not_retried(llm, server):
    server.actions = ["400"]
    assert llm.generate(["too long"], max_tokens=8)[0].finish_reason == "error"
    assert (llm.stats.retries, llm.stats.failures) == (0, 1)
    server.actions = ["401"]
    with pytest.raises(LLMError, match="HTTP 401"):
        llm.generate(["hello"], max_tokens=8)


def test_missing_prompt_logprobs_is_a_clear_error(llm, server):
    server.actions = ["nologprobs"]
    with pytest.raises(LLMError, match="no prompt log-probabilities"):
        llm.score(["context"], [" continuation"])


def test_concurrency_is_limited(server, monkeypatch):
    server.delay = 0.05
    llm = OpenAICompatibleLLM("m", server.url, max_concurrency=3, api_key_env=KEY_ENV)
    results = llm.generate([f"prompt {i}" for i in range(12)], max_tokens=8)
    assert [r.text for r in results] == [" done"] * 12
    assert 1 < server.max_in_flight <= 3


def test_api_key_is_sent_but_never_logged_or_stored(llm, server, tmp_path, caplog):
    server.actions = ["echo_auth", "400"]
    cached = CachedLLM(llm, tmp_path / "calls.jsonl")
    with caplog.at_level(logging.DEBUG):
        cached.generate(["hello", "world"], max_tokens=8)
        cached.score(["a b"], [" c"])
    assert {auth for _, _, auth in server.requests} == {f"Bearer {SECRET}"}
    assert "HTTP 502: " in caplog.text  # the retry was logged ...
    assert SECRET not in caplog.text  # ... without the key
    assert SECRET not in repr(llm)
    assert SECRET not in json.dumps(llm.cache_identity())
    assert SECRET not in (tmp_path / "calls.jsonl").read_text()


def test_load_llm_builds_the_http_backend(server):
    llm = load_llm(f"openai:test-model@{server.url}", timeout=5.0)
    assert isinstance(llm, OpenAICompatibleLLM)
    assert llm.cache_identity() == {
        "backend": "openai",
        "model": "test-model",
        "base_url": server.url,
    }
    with pytest.raises(ValueError, match="unknown LLM backend"):
        load_llm("nope:model")


def test_url_credentials_are_sent_as_basic_auth_but_never_recorded(
    server, tmp_path, caplog, monkeypatch
):
    monkeypatch.setenv(KEY_ENV, SECRET)
    password = "pw-in-the-url-0123"
    url = server.url.replace("http://", f"http://alice:{password}@")
    cache = tmp_path / "calls.jsonl"
    llm = load_llm(
        f"openai:test-model@{url}", cache=cache, api_key_env=KEY_ENV, max_retries=1, backoff=0.01
    )
    server.actions = ["echo_auth"]  # the proxy error quotes the header, then the retry succeeds
    with caplog.at_level(logging.DEBUG):
        (generation,) = llm.generate(["hello"], max_tokens=8)
    assert generation.finish_reason == "stop"
    header = "Basic " + base64.b64encode(f"alice:{password}".encode()).decode()
    assert {auth for _, _, auth in server.requests} == {header}
    assert llm.cache_identity() == {
        "backend": "openai",
        "model": "test-model",
        "base_url": server.url,
    }
    assert "HTTP 502: " in caplog.text
    recorded = [json.dumps(llm.cache_identity()), repr(llm.inner), caplog.text, cache.read_text()]
    for secret in (password, SECRET, header.split()[1]):
        assert not any(secret in text for text in recorded), secret
