"""The interface every LLM backend implements: batched generation and continuation scoring.

The FRet pipeline needs exactly two things from an LLM: write text for a prompt (query
generation), and the log-probability of a given continuation after a given context (query
likelihood, relevance-label likelihood). Backends: a local Flax decoder, an OpenAI-compatible
HTTP server, Gemini. ``score_parts`` (several continuations in a row, each scored) has a default
built on ``score``; a local backend overrides it to score all parts in one forward pass.
"""

from __future__ import annotations

import abc
import dataclasses
import re
from collections.abc import Sequence
from typing import Any

# A raw text prompt (completion), or chat messages [{"role": ..., "content": ...}] that the
# backend formats with the model's chat template (local) or sends to a chat endpoint (HTTP).
Prompt = str | Sequence[dict[str, str]]


@dataclasses.dataclass(frozen=True)
class Generation:
    text: str
    # "stop" (a stop string or end of sequence), "length" (hit max_tokens), or "error" (the
    # backend failed on this prompt after its retries, and counted it; never cached).
    finish_reason: str
    num_tokens: int


# The user-info part of a URL (scheme://user:password@host): never written to a manifest.
_URL_USERINFO = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")


def redact_credentials(text: str) -> str:
    """``text`` with the ``user:password@`` part of every URL in it removed."""
    return _URL_USERINFO.sub(r"\1", text)


class LLMError(RuntimeError):
    """A backend cannot do what was asked (a misconfiguration, not a transient failure)."""


@dataclasses.dataclass(frozen=True)
class ContinuationScore:
    """log p(continuation | context): the sum and the per-token terms (natural log).

    ``total`` is NaN when the backend failed on this pair after its retries (and counted it).
    """

    total: float
    token_logprobs: tuple[float, ...]


class LLM(abc.ABC):
    """A language model reachable for batched generation and scoring."""

    @property
    @abc.abstractmethod
    def backend(self) -> str:
        """Short backend name, e.g. ``"jax"``, ``"openai"``, ``"gemini"``."""

    @property
    @abc.abstractmethod
    def model_id(self) -> str:
        """What model answers: a file hash, a served model name. Goes into cache keys."""

    @abc.abstractmethod
    def generate(
        self,
        prompts: Sequence[Prompt],
        max_tokens: int,
        temperature: float = 0.0,
        stop: Sequence[str] = (),
        seed: int = 0,
    ) -> list[Generation]:
        """Continue each prompt; ``temperature=0`` is greedy, otherwise sampled with ``seed``."""

    @abc.abstractmethod
    def score(
        self, contexts: Sequence[str], continuations: Sequence[str]
    ) -> list[ContinuationScore]:
        """log p(continuation_i | context_i) for each pair."""

    def score_parts(
        self, contexts: Sequence[str], parts: Sequence[Sequence[str]]
    ) -> list[tuple[float, ...]]:
        """Per row, log p(part_k | context, part_0 .. part_k-1) for each part k (the totals; NaN
        where the backend failed on that part).

        This default asks ``score`` once per part index, for all rows that have that part, with
        the context followed by the earlier parts as text: exact, and enough for API backends.
        A backend that runs the model itself overrides it to get every part from one pass.
        """
        if len(contexts) != len(parts):
            raise ValueError(f"{len(contexts)} contexts but {len(parts)} part lists")
        totals: list[list[float]] = [[] for _ in parts]
        for k in range(max(map(len, parts), default=0)):
            rows = [i for i, row in enumerate(parts) if len(row) > k]
            scores = self.score(
                [contexts[i] + "".join(parts[i][:k]) for i in rows], [parts[i][k] for i in rows]
            )
            for i, score in zip(rows, scores, strict=True):
                totals[i].append(score.total)
        return [tuple(row) for row in totals]

    def call_stats(self) -> dict[str, Any]:
        """Counts of requests, retries and failures, for a backend that makes remote calls
        (the manifest records them; a failed stage reports the time lost to failures)."""
        return {}

    def cache_identity(self) -> dict[str, Any]:
        """What distinguishes this model's outputs, for the on-disk call cache (no secrets)."""
        return {"backend": self.backend, "model": self.model_id}

    def generate_cache_extras(
        self, prompts: Sequence[Prompt], max_tokens: int
    ) -> list[dict[str, Any]]:
        """Per prompt, what else changes its answer (for the cache key): by default nothing.

        A backend that cuts long inputs names the window here only for the inputs it cuts, so
        uncut ones stay shared between settings that answer them identically.
        """
        return [{} for _ in prompts]

    def score_cache_extras(
        self, contexts: Sequence[str], continuations: Sequence[str]
    ) -> list[dict[str, Any]]:
        """Per pair, what else changes its score (for the cache key); see generate's."""
        return [{} for _ in contexts]

    def score_parts_cache_extras(
        self, contexts: Sequence[str], parts: Sequence[Sequence[str]]
    ) -> list[dict[str, Any]]:
        """Per row, what else changes its part scores (for the cache key); see generate's."""
        return [{} for _ in contexts]
