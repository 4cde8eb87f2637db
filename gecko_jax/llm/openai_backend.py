"""An OpenAI-compatible HTTP server as the LLM: vLLM, llama.cpp server, Ollama, OpenAI.

Chat messages go to ``/chat/completions``, raw strings to ``/completions``. Scoring needs prompt
log-probabilities: ``/completions`` with ``echo=true, logprobs=1``, which vLLM and OpenAI's
completion models return; the continuation's tokens are found by their text offsets. Servers that
do not return them (llama.cpp server, Ollama) get a clear :class:`LLMError` instead of a score.

Transient failures (timeouts, connection errors, 5xx, 408, 429) are retried with exponential
backoff; an item that still fails, or that the server rejects (other 4xx, e.g. a prompt longer
than the context), is counted in ``stats`` and comes back as ``finish_reason="error"`` or a NaN
score; past ``max_failed_wait`` seconds of failures the server is taken for dead
(:mod:`gecko_jax.llm.retry`). ``timeout``, ``max_retries``, ``backoff`` and
``max_failed_wait`` are settings (``--llm_arg``).

The API key is read from the environment once, sent only in the ``Authorization`` header, and
never logged, repr'd or put in :meth:`cache_identity`. Credentials written into the URL
(``http://user:password@host/v1``) are treated alike: taken out of the URL, sent as HTTP Basic
authentication (instead of the key), and never recorded; the URL kept is the one without them.
"""

from __future__ import annotations

import base64
import http.client
import json
import math
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any

from gecko_jax.llm.base import ContinuationScore, Generation, LLMError, Prompt
from gecko_jax.llm.retry import ItemFailed, RemoteLLM, Retryable, RetryPolicy, status_failure


class OpenAICompatibleLLM(RemoteLLM):
    """Batched calls to an OpenAI-compatible ``/v1`` API, ``max_concurrency`` at a time."""

    def __init__(
        self,
        model: str,
        base_url: str = "http://localhost:8000/v1",
        api_key_env: str = "OPENAI_API_KEY",
        timeout: float = 60.0,
        max_retries: int = 3,
        backoff: float = 1.0,
        max_concurrency: int = 8,
        max_failed_wait: float = 300.0,
    ):
        self.model = model
        url, credentials = split_credentials(base_url)
        self.base_url = url.rstrip("/")
        self.timeout = timeout
        self.max_concurrency = max_concurrency
        self.retry = RetryPolicy(self.base_url, max_retries, backoff, max_failed_wait)
        self._api_key = os.environ.get(api_key_env)
        self._authorization = _authorization(credentials, self._api_key)
        # Longest first, so a secret is never left half replaced by a shorter one inside it.
        password = (credentials or "").partition(":")[2]
        candidates = {self._api_key, credentials, password, self._authorization}
        self._secrets = sorted(filter(None, candidates), key=len, reverse=True)

    def __repr__(self) -> str:
        return f"OpenAICompatibleLLM(model={self.model!r}, base_url={self.base_url!r})"

    @property
    def backend(self) -> str:
        return "openai"

    def cache_identity(self) -> dict[str, Any]:
        # The server matters (two servers may serve different weights under one name).
        return {**super().cache_identity(), "base_url": self.base_url}

    def _post(self, route: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST JSON with retries; raises :class:`ItemFailed` when the item has failed."""
        headers = {"Content-Type": "application/json"}
        if self._authorization:
            headers["Authorization"] = self._authorization
        data = json.dumps(body).encode("utf-8")

        def send() -> dict[str, Any]:
            request = urllib.request.Request(self.base_url + route, data, headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return json.loads(response.read().decode("utf-8"))
            except urllib.error.HTTPError as error:
                message = self._redact(error.read().decode("utf-8", "replace"))[:300]
                failure = status_failure(error.code, message)
                if isinstance(failure, Retryable):
                    raise failure from None  # logged with the route by the retry loop
                where = self.base_url + route if isinstance(failure, LLMError) else route
                raise type(failure)(f"{where}: {failure}") from None
            except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as error:
                raise Retryable(f"{type(error).__name__}: {error}") from None

        return self.retry.attempt(send, route)

    def _redact(self, text: str) -> str:
        """``text`` without the key or URL credentials (some proxies echo request headers in
        their errors)."""
        for secret in self._secrets:
            text = text.replace(secret, "<credentials>")
        return text

    def generate(
        self,
        prompts: Sequence[Prompt],
        max_tokens: int,
        temperature: float = 0.0,
        stop: Sequence[str] = (),
        seed: int = 0,
    ) -> list[Generation]:
        params: dict[str, Any] = {
            "model": self.model,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "seed": seed,
        }
        if stop:
            params["stop"] = list(stop)

        def one(prompt: Prompt) -> Generation:
            if isinstance(prompt, str):
                choice, usage = self._choice("/completions", {**params, "prompt": prompt})
                text = choice.get("text") or ""
            else:
                body = {**params, "messages": [dict(m) for m in prompt]}
                choice, usage = self._choice("/chat/completions", body)
                text = (choice.get("message") or {}).get("content") or ""
            finish = "length" if choice.get("finish_reason") == "length" else "stop"
            return Generation(text, finish, int(usage.get("completion_tokens") or 0))

        return self.retry.map(one, prompts, Generation("", "error", 0), self.max_concurrency)

    def _choice(self, route: str, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        response = self._post(route, body)
        choices = response.get("choices") or []
        if not choices:
            raise ItemFailed(f"{route}: response has no choices: {str(response)[:200]}")
        return choices[0], response.get("usage") or {}

    def score(
        self, contexts: Sequence[str], continuations: Sequence[str]
    ) -> list[ContinuationScore]:
        if len(contexts) != len(continuations):
            raise ValueError(f"{len(contexts)} contexts but {len(continuations)} continuations")

        def one(pair: tuple[str, str]) -> ContinuationScore:
            context, continuation = pair
            body = {
                "model": self.model,
                "prompt": context + continuation,
                "max_tokens": 1,
                "temperature": 0.0,
                "echo": True,
                "logprobs": 1,
            }
            choice, _ = self._choice("/completions", body)
            return continuation_score(choice.get("logprobs"), len(context), len(continuation))

        pairs = list(zip(contexts, continuations, strict=True))
        return self.retry.map(one, pairs, ContinuationScore(math.nan, ()), self.max_concurrency)


def split_credentials(url: str) -> tuple[str, str | None]:
    """``url`` without its user-info part, and that part decoded (``user:password``) or None."""
    parts = urllib.parse.urlsplit(url)
    userinfo, at, host = parts.netloc.rpartition("@")
    if not at:
        return url, None
    return urllib.parse.urlunsplit(parts._replace(netloc=host)), urllib.parse.unquote(userinfo)


def _authorization(credentials: str | None, api_key: str | None) -> str | None:
    """The ``Authorization`` header: the URL's credentials (they name this server), else the key."""
    if credentials:
        return f"Basic {base64.b64encode(credentials.encode()).decode()}"
    return f"Bearer {api_key}" if api_key else None


def continuation_score(logprobs: Any, start: int, length: int) -> ContinuationScore:
    """Sum the echoed prompt tokens that overlap characters ``[start, start + length)``.

    A token is in the continuation when its span (its offset up to the next token's offset)
    overlaps the continuation's characters, so a token straddling the boundary counts.
    """
    offsets = (logprobs or {}).get("text_offset")
    values = (logprobs or {}).get("token_logprobs")
    if not offsets or not values or all(v is None for v in values):
        raise LLMError(
            "the server returned no prompt log-probabilities; scoring needs /v1/completions "
            "with echo=true and logprobs (vLLM, OpenAI completion models). llama.cpp server "
            "and Ollama do not provide them: use the local JAX backend for scoring."
        )
    end = start + length
    terms = []
    for i, offset in enumerate(offsets):
        following = offsets[i + 1] if i + 1 < len(offsets) else math.inf
        if offset < end and (following > start or offset >= start):
            if values[i] is None:
                raise LLMError(
                    "no log-probability for the first continuation token: empty context?"
                )
            terms.append(float(values[i]))
    if not terms:
        raise LLMError(f"no echoed token covers characters [{start}, {end})")
    return ContinuationScore(sum(terms), tuple(terms))
