"""Retries and a failure budget for LLM backends that call a remote service.

A call that fails transiently (:class:`Retryable`: a timeout, a dropped connection, a 5xx, a
rate limit) is tried again after an exponential backoff; an item that still fails, or that the
service rejects (:class:`ItemFailed`), is counted and comes back as the caller's failed value
(``finish_reason="error"``, a NaN score), so one bad item never stops a long run and the cache
never stores it. The time spent on failed attempts and their backoff is summed over all
threads; past ``max_failed_wait`` seconds the service is taken for dead and every further item
fails at once, so a dead server costs minutes, not hours. An error that every call would meet
(a wrong key, model or URL) is an :class:`~gecko_jax.llm.base.LLMError` and stops the run.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from gecko_jax.llm.base import LLM, LLMError

logger = logging.getLogger(__name__)

T = TypeVar("T")
_RETRYABLE_STATUS = frozenset({408, 429})
# A wrong key, model or URL: every call would fail the same way, so stop at once.
_CONFIG_STATUS = frozenset({401, 403, 404})


class Retryable(Exception):
    """A transient failure of one attempt: worth another."""


class ItemFailed(Exception):
    """One item failed for good (its attempts spent, or rejected by the service)."""


def status_failure(code: int, message: str) -> Exception:
    """What an HTTP error status means for the run: :class:`LLMError` (a wrong key, model or
    URL), :class:`Retryable` (5xx, 408, 429) or :class:`ItemFailed` (any other 4xx, e.g. a
    prompt longer than the context)."""
    text = f"HTTP {code}: {message}"
    if code in _CONFIG_STATUS:
        return LLMError(text)
    if code < 500 and code not in _RETRYABLE_STATUS:
        return ItemFailed(text)
    return Retryable(text)


@dataclasses.dataclass
class CallStats:
    """What the backend did: requests sent, retries, and items that failed after retries."""

    requests: int = 0
    retries: int = 0
    failures: int = 0
    failed_wait_s: float = 0.0
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: float) -> None:
        with self._lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "retries": self.retries,
            "failures": self.failures,
            "failed_wait_s": round(self.failed_wait_s, 3),
        }


@dataclasses.dataclass
class RetryPolicy:
    """The settings (``--llm_arg``) and the counts of one backend's calls to ``service``."""

    service: str
    max_retries: int = 3
    backoff: float = 1.0
    max_failed_wait: float = 300.0
    stats: CallStats = dataclasses.field(default_factory=CallStats)

    def attempt(self, call: Callable[[], T], what: str) -> T:
        """``call()``, tried again on :class:`Retryable`; raises :class:`ItemFailed` once its
        attempts are spent or the failure budget is."""
        for attempt in range(self.max_retries + 1):
            self._check_budget(what)
            started = time.perf_counter()
            if attempt:
                self.stats.add(retries=1)
                time.sleep(self.backoff * 2 ** (attempt - 1))
            self.stats.add(requests=1)
            try:
                return call()
            except Retryable as error:
                problem = str(error)
            self.stats.add(failed_wait_s=time.perf_counter() - started)
            logger.warning(
                "%s attempt %d/%d failed: %s", what, attempt + 1, self.max_retries + 1, problem
            )
        raise ItemFailed(f"{what}: {self.max_retries + 1} attempts failed; last: {problem}")

    def _check_budget(self, what: str) -> None:
        """Fail at once, without a request, once failures have cost ``max_failed_wait``."""
        if self.stats.failed_wait_s > self.max_failed_wait:
            raise ItemFailed(
                f"{what}: not sent: failed requests to {self.service} already took "
                f"{self.stats.failed_wait_s:.0f} s (max_failed_wait {self.max_failed_wait:.0f} s)"
            )

    def map(
        self, fn: Callable[[Any], T], items: Sequence[Any], failed: T, concurrency: int = 1
    ) -> list[T]:
        """``fn`` over items, ``concurrency`` at a time; an item that fails becomes ``failed``."""

        def one(item: Any) -> T:
            try:
                return fn(item)
            except ItemFailed as error:
                self.stats.add(failures=1)
                logger.error("LLM call failed (%d failures so far): %s", self.stats.failures, error)
                return failed

        if concurrency <= 1:
            return [one(item) for item in items]
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            return list(pool.map(one, items))


class RemoteLLM(LLM):
    """What the hosted backends share: a model name, and a retry policy whose statistics are
    their call statistics (in the manifest)."""

    model: str
    retry: RetryPolicy

    @property
    def model_id(self) -> str:
        return self.model

    @property
    def stats(self) -> CallStats:
        return self.retry.stats

    def call_stats(self) -> dict[str, Any]:
        return self.stats.as_dict()
