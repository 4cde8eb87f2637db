"""An on-disk cache in front of any LLM, so a killed run resumes without repeating calls.

Each result is one JSON line ``{"key": sha256, "value": ...}`` appended to a file and fsync'd
after every batch. The key hashes the backend's :meth:`~gecko_jax.llm.base.LLM.cache_identity`,
the operation, the prompt (or context and continuation, or context and parts), every parameter
that changes the answer, and the backend's per-input extras (its context window, for the inputs
it cuts). A SIGKILL can only tear the last line: it is ignored on read and cut off before the
next append. Failed items (``finish_reason="error"``, NaN scores) are not stored, so a rerun
retries them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from gecko_jax.llm.base import LLM, ContinuationScore, Generation, Prompt

logger = logging.getLogger(__name__)

T = TypeVar("T")


def cache_key(
    identity: dict[str, Any], operation: str, payload: Any, params: dict[str, Any]
) -> str:
    text = json.dumps([identity, operation, payload, params], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def complete_records(path: Path) -> bytes:
    """A cache file's whole lines: a torn last one (a killed writer's) is left out."""
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    if len(complete) < len(data):
        logger.warning(
            "%s: ignoring a torn last record (%d bytes)", path, len(data) - len(complete)
        )
    return complete


class CachedLLM(LLM):
    """Answers from ``path`` (and the read-only ``read_also`` files) when it can; sends only the
    misses, as one batch, to ``inner``, and appends their answers to ``path``.

    Threads may share one instance: appends are serialized.
    """

    def __init__(
        self, inner: LLM, path: str | os.PathLike, read_also: Sequence[str | os.PathLike] = ()
    ):
        self.inner = inner
        self.path = Path(path)
        self.hits = 0
        self.misses = 0
        self._store: dict[str, Any] = {}
        self._append_lock = threading.Lock()
        for other in map(Path, read_also):
            if other.exists():
                self._read(complete_records(other))
        if self.path.exists():
            complete = complete_records(self.path)
            # Cut a torn record off now, or the next append would glue a good record onto it.
            with open(self.path, "r+b") as handle:
                handle.truncate(len(complete))
            self._read(complete)

    def _read(self, complete: bytes) -> None:
        for line in complete.splitlines():
            record = json.loads(line)
            self._store[record["key"]] = record["value"]

    def __len__(self) -> int:
        return len(self._store)

    @property
    def backend(self) -> str:
        return self.inner.backend

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    def cache_identity(self) -> dict[str, Any]:
        return self.inner.cache_identity()

    def call_stats(self) -> dict[str, Any]:
        return self.inner.call_stats()

    def generate_cache_extras(
        self, prompts: Sequence[Prompt], max_tokens: int
    ) -> list[dict[str, Any]]:
        return self.inner.generate_cache_extras(prompts, max_tokens)

    def score_cache_extras(
        self, contexts: Sequence[str], continuations: Sequence[str]
    ) -> list[dict[str, Any]]:
        return self.inner.score_cache_extras(contexts, continuations)

    def score_parts_cache_extras(
        self, contexts: Sequence[str], parts: Sequence[Sequence[str]]
    ) -> list[dict[str, Any]]:
        return self.inner.score_parts_cache_extras(contexts, parts)

    def _append(self, records: dict[str, Any]) -> None:
        if not records:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lines = "".join(
            json.dumps({"key": k, "value": v}, ensure_ascii=False) + "\n"
            for k, v in records.items()
        )
        with self._append_lock, open(self.path, "a", encoding="utf-8") as handle:
            handle.write(lines)
            handle.flush()
            os.fsync(handle.fileno())
            self._store.update(records)

    def _split(self, keys: list[str]) -> list[int]:
        """Indices of the keys not in the cache (first occurrence of each); counts hits."""
        missing, seen = [], set()
        for i, key in enumerate(keys):
            if key in self._store:
                self.hits += 1
            else:
                self.misses += 1
                if key not in seen:
                    seen.add(key)
                    missing.append(i)
        return missing

    def _through(
        self,
        keys: list[str],
        compute: Callable[[list[int]], Sequence[T]],
        encode: Callable[[T], Any],
        decode: Callable[[Any], T],
        keep: Callable[[T], bool],
    ) -> list[T]:
        """Cached values for hits, ``compute(miss indices)`` for the rest (stored if ``keep``)."""
        missing = self._split(keys)
        fresh = compute(missing) if missing else []
        results = dict(zip([keys[i] for i in missing], fresh, strict=True))
        self._append({k: encode(v) for k, v in results.items() if keep(v)})
        return [results[k] if k in results else decode(self._store[k]) for k in keys]

    def generate(
        self,
        prompts: Sequence[Prompt],
        max_tokens: int,
        temperature: float = 0.0,
        stop: Sequence[str] = (),
        seed: int = 0,
    ) -> list[Generation]:
        params = {
            "max_tokens": max_tokens,
            "temperature": temperature,
            "stop": list(stop),
            "seed": seed,
        }
        identity = self.cache_identity()
        extras = self.generate_cache_extras(prompts, max_tokens)
        keys = [
            cache_key(
                identity,
                "generate",
                p if isinstance(p, str) else [dict(m) for m in p],
                params | extra,
            )
            for p, extra in zip(prompts, extras, strict=True)
        ]
        return self._through(
            keys,
            lambda missing: self.inner.generate(
                [prompts[i] for i in missing], max_tokens, temperature, stop, seed
            ),
            dataclasses.asdict,
            lambda stored: Generation(**stored),
            lambda g: g.finish_reason != "error",
        )

    def score(
        self, contexts: Sequence[str], continuations: Sequence[str]
    ) -> list[ContinuationScore]:
        pairs = list(zip(contexts, continuations, strict=True))
        identity = self.cache_identity()
        extras = self.score_cache_extras(contexts, continuations)
        keys = [
            cache_key(identity, "score", list(pair), extra)
            for pair, extra in zip(pairs, extras, strict=True)
        ]
        return self._through(
            keys,
            lambda missing: self.inner.score(
                [pairs[i][0] for i in missing], [pairs[i][1] for i in missing]
            ),
            lambda s: [s.total, list(s.token_logprobs)],
            lambda stored: ContinuationScore(stored[0], tuple(stored[1])),
            lambda s: not math.isnan(s.total),
        )

    def score_parts(
        self, contexts: Sequence[str], parts: Sequence[Sequence[str]]
    ) -> list[tuple[float, ...]]:
        rows = list(zip(contexts, parts, strict=True))
        identity = self.cache_identity()
        extras = self.score_parts_cache_extras(contexts, parts)
        keys = [
            cache_key(identity, "score_parts", [context, list(row)], extra)
            for (context, row), extra in zip(rows, extras, strict=True)
        ]
        return self._through(
            keys,
            lambda missing: self.inner.score_parts(
                [rows[i][0] for i in missing], [rows[i][1] for i in missing]
            ),
            list,
            tuple,
            lambda totals: not any(math.isnan(t) for t in totals),
        )
