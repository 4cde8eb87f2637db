"""Gemini through ``google-genai`` (the optional ``gemini`` extra): generation, label scoring.

Gemini returns no log-probabilities of prompt text, so general continuation scoring (query
likelihood) is impossible here. What it does return is the top candidates of each generated
token, which is enough for relevance classification: ``score`` works when every continuation is a
single-token label (``"Yes"``, ``"2"``), reading its log-probability from the first generated
step's top candidates (``-inf`` if it is not among them; spellings that differ only in
surrounding spaces are added up).

Calls are retried and budgeted as the OpenAI-compatible backend's (:mod:`gecko_jax.llm.retry`):
an SDK error with an HTTP status is classified by it (a wrong key or model stops the run, 5xx,
408 and 429 are retried, other 4xx fail the item), any other SDK error (a dropped connection,
a timeout) is retried; an item that still fails comes back as ``finish_reason="error"`` or a
NaN score, and ``max_failed_wait`` seconds of failures take the service for dead.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

from gecko_jax.llm.base import ContinuationScore, Generation, LLMError, Prompt
from gecko_jax.llm.retry import RemoteLLM, Retryable, RetryPolicy, status_failure

# The API's cap on returned top candidates per step.
_MAX_TOP_CANDIDATES = 20


def _contents(prompt: Prompt) -> tuple[list[dict[str, Any]], str | None]:
    """Gemini ``contents`` and system instruction for a raw or chat prompt."""
    if isinstance(prompt, str):
        return [{"role": "user", "parts": [{"text": prompt}]}], None
    system = "\n\n".join(m["content"] for m in prompt if m["role"] == "system") or None
    contents = [
        {"role": "model" if m["role"] == "assistant" else "user", "parts": [{"text": m["content"]}]}
        for m in prompt
        if m["role"] != "system"
    ]
    return contents, system


class GeminiLLM(RemoteLLM):
    """Calls ``client.models.generate_content``; ``client`` defaults to ``genai.Client``."""

    def __init__(
        self,
        model: str,
        api_key_env: str = "GEMINI_API_KEY",
        client: Any = None,
        max_retries: int = 3,
        backoff: float = 1.0,
        max_failed_wait: float = 300.0,
    ):
        if client is None:
            try:
                from google import genai
            except ImportError as error:
                raise ImportError(
                    "GeminiLLM needs the google-genai package: pip install 'gecko_jax[gemini]'"
                ) from error
            client = genai.Client(api_key=os.environ.get(api_key_env))
        self.model = model
        self.client = client
        self.retry = RetryPolicy(f"Gemini ({model})", max_retries, backoff, max_failed_wait)

    def __repr__(self) -> str:
        return f"GeminiLLM(model={self.model!r})"

    @property
    def backend(self) -> str:
        return "gemini"

    def _call(self, prompt: Prompt, config: dict[str, Any]) -> Any:
        """One ``generate_content`` request, retried; raises :class:`ItemFailed` when the item
        has failed and :class:`LLMError` when no call can succeed."""
        contents, system = _contents(prompt)
        if system:
            config = {**config, "system_instruction": system}

        def send() -> Any:
            try:
                return self.client.models.generate_content(
                    model=self.model, contents=contents, config=config
                )
            except Exception as error:  # the SDK's and its HTTP client's errors share no base
                code = getattr(error, "code", None)
                if not isinstance(code, int):
                    raise Retryable(f"{type(error).__name__}: {error}") from error
                failure = status_failure(code, str(error)[:300])
                if isinstance(failure, LLMError):
                    raise LLMError(f"{self.model}: {failure}") from error
                raise failure from error

        return self.retry.attempt(send, "generate_content")

    def generate(
        self,
        prompts: Sequence[Prompt],
        max_tokens: int,
        temperature: float = 0.0,
        stop: Sequence[str] = (),
        seed: int = 0,
    ) -> list[Generation]:
        config: dict[str, Any] = {
            "max_output_tokens": max_tokens,
            "temperature": temperature,
            "seed": seed,
        }
        if stop:
            config["stop_sequences"] = list(stop)

        def one(prompt: Prompt) -> Generation:
            response = self._call(prompt, config)
            reason = str(getattr(response.candidates[0], "finish_reason", "") or "")
            usage = getattr(response, "usage_metadata", None)
            return Generation(
                response.text or "",
                "length" if "MAX_TOKENS" in reason else "stop",
                int(getattr(usage, "candidates_token_count", 0) or 0),
            )

        return self.retry.map(one, prompts, Generation("", "error", 0))

    def score(
        self, contexts: Sequence[str], continuations: Sequence[str]
    ) -> list[ContinuationScore]:
        """log p(label | context) for single-token labels, from the first step's top candidates."""
        labels = [c.strip() for c in continuations]
        if any(not label or any(ch.isspace() for ch in label) for label in labels):
            raise NotImplementedError(
                "Gemini gives no prompt log-probabilities: it can only score single-token "
                "relevance labels (e.g. 'Yes'/'No'), not free text such as queries"
            )
        config = {
            "max_output_tokens": 1,
            "temperature": 0.0,
            "response_logprobs": True,
            "logprobs": _MAX_TOP_CANDIDATES,
        }

        def one(pair: tuple[str, str]) -> ContinuationScore:
            context, label = pair
            result = getattr(self._call(context, config).candidates[0], "logprobs_result", None)
            if result is None or not result.top_candidates:
                raise LLMError(f"{self.model} returned no logprobs; it cannot score labels")
            # "Yes" and " Yes" are the same label: add their probabilities.
            probability = sum(
                math.exp(c.log_probability)
                for c in result.top_candidates[0].candidates
                if c.token.strip() == label
            )
            value = math.log(probability) if probability > 0 else -math.inf
            return ContinuationScore(value, (value,))

        pairs = list(zip(contexts, labels, strict=True))
        return self.retry.map(one, pairs, ContinuationScore(math.nan, ()))
