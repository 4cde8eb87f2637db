"""A local OpenAI-compatible LLM server for FRet tests (``gecko-fret``, ``gecko-fret-beam``).

Greedy chat answers are malformed and sampled ones a (task, query) that depends on the passage,
so every query goes through the retry; ``/completions`` echoes the prompt with a
log-probability per word. Subclasses change the scores (``logprob``) or the replies
(``reply_to``).
"""

from __future__ import annotations

import json
import re
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from gecko_jax.fret.prompts import TASK_TYPES


class FakeOpenAI(BaseHTTPRequestHandler):
    """Answers every request; ``server.requests`` counts them."""

    def log_message(self, *args) -> None:
        pass

    @staticmethod
    def logprob(word: str, prompt: str) -> float:
        """One word's log-probability: from its length alone, whatever the passage."""
        return -(len(word) % 7 + 1) / 10

    def reply_to(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """(HTTP status, JSON payload) for one request."""
        self.server.requests += 1
        if self.path.endswith("/chat/completions"):
            words = re.findall(r"\w+", body["messages"][-1]["content"])[1:]
            # Some copy the passage, some repeat each other: overlap and dedup both act.
            query = [" ".join(words[:4]), "alpha beta", "gamma delta"][len(words) % 3]
            answer = json.dumps({"task": TASK_TYPES["search result"], "query": query})
            choice = {"message": {"content": "no json" if body["temperature"] == 0 else answer}}
        else:
            prompt = body["prompt"]
            pieces = list(re.finditer(r"\s*\S+", prompt))
            logprobs = [None] + [self.logprob(m.group(), prompt) for m in pieces[1:]]
            offsets = [m.start() for m in pieces]
            choice = {"logprobs": {"token_logprobs": logprobs, "text_offset": offsets}}
        return 200, {"choices": [{**choice, "finish_reason": "stop"}], "usage": {}}

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        status, payload = self.reply_to(body)
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (or was killed)


class PromptScoredOpenAI(FakeOpenAI):
    """Log-probabilities hashed from the word and the whole prompt, so a query's candidates
    score apart and its two scores (different words) rank them independently."""

    @staticmethod
    def logprob(word: str, prompt: str) -> float:
        return -(zlib.crc32((prompt + word).encode()) % 20 + 1) / 10


def serve(handler: type[FakeOpenAI], port: int = 0) -> Iterator[tuple[str, ThreadingHTTPServer]]:
    """(``openai:`` LLM spec, server) while the server runs on 127.0.0.1 (``port`` 0: any)."""
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    server.requests = 0
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"openai:fake@http://127.0.0.1:{server.server_address[1]}/v1", server
    server.shutdown()
    server.server_close()
