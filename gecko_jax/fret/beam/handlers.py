"""RunInference model handlers for FRet on Beam: the LLM (generate, score, score parts) and the
text encoder.

Each handler names its model with a tag, and every RunInference step on that model passes the tag
as ``model_identifier``. With ``share_across_processes`` the runner then keeps one copy per
machine for all those steps (a GPU or TPU holds one model, not one per SDK process); otherwise
each process keeps one copy, shared between steps through ``apache_beam.utils.shared``. The
handlers call only methods on the model, never attributes, so they also work through the proxy
that cross-process sharing hands out.

With a ``cache_dir`` (a folder every worker reaches as a file system), the LLM answers from the
cache ``gecko-fret`` keeps (:data:`~gecko_jax.fret.records.LLM_CACHE` in that folder) and each
loaded model appends its new answers to a file of its own under
:data:`~gecko_jax.fret.records.LLM_CACHE_PARTS`, which the driver merges into the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

from apache_beam.ml.inference.base import (
    KeyedModelHandler,
    ModelHandler,
    PredictionResult,
    RunInference,
)
from apache_beam.utils import shared

from gecko_jax.encoder import Encoder
from gecko_jax.fret.generate import GenerateConfig, answer_passages
from gecko_jax.fret.mine import embed_queries
from gecko_jax.fret.passages import Passage
from gecko_jax.fret.records import LLM_CACHE, LLM_CACHE_PARTS
from gecko_jax.llm import CachedLLM, load_llm
from gecko_jax.llm.base import LLM
from gecko_jax.llm.cache import complete_records

ExampleT = TypeVar("ExampleT")
ModelT = TypeVar("ModelT")

# What an EncoderHandler embeds.
ROLES = ("query", "document")

_HANDLES: dict[str, shared.Shared] = {}
_HANDLES_LOCK = threading.Lock()


def _acquire(tag: str, load: Callable[[], ModelT]) -> ModelT:
    """The process's one ``load()`` result for ``tag``, loaded on first use."""
    with _HANDLES_LOCK:
        handle = _HANDLES.setdefault(tag, shared.Shared())
    return handle.acquire(load)


def _tag(kind: str, *parts: Any) -> str:
    """A short tag (also a file name for cross-process sharing) that names one model setup."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True).encode("utf-8")).hexdigest()
    return f"gecko-{kind}-{digest[:16]}"


class _SharedModelHandler(
    ModelHandler[ExampleT, PredictionResult, ModelT], Generic[ExampleT, ModelT]
):
    """Fixed-size batches, and one loaded model per process (or machine) per tag."""

    def __init__(self, model_tag: str, batch_size: int, share_across_processes: bool):
        super().__init__(
            min_batch_size=batch_size,
            max_batch_size=batch_size,
            large_model=share_across_processes,
        )
        self.model_tag = model_tag

    def _load(self) -> ModelT:
        raise NotImplementedError

    def load_model(self) -> ModelT:
        return _acquire(self.model_tag, self._load)

    def inference(self, inference_args: Mapping[str, Any] | None = None) -> RunInference:
        """A RunInference step on ``(key, example)`` pairs, giving ``(key, PredictionResult)``."""
        return RunInference(
            KeyedModelHandler(self),
            inference_args=dict(inference_args) if inference_args else None,
            model_identifier=self.model_tag,
        )


class _LLMHandler(_SharedModelHandler[ExampleT, LLM]):
    """An LLM from a ``load_llm`` spec; ``llm_kwargs`` go to the backend's constructor. With a
    ``cache_dir``, behind that folder's LLM cache (one cache per process, shared by the steps
    on this model)."""

    def __init__(
        self,
        spec: str,
        llm_kwargs: Mapping[str, Any] | None = None,
        batch_size: int = 16,
        share_across_processes: bool = False,
        cache_dir: str | None = None,
    ):
        self.spec = spec
        self.llm_kwargs = dict(llm_kwargs or {})
        self.batch_size = batch_size
        self.share_across_processes = share_across_processes
        self.cache_dir = cache_dir
        tag = _tag("llm", spec, self.llm_kwargs)
        super().__init__(tag, batch_size, share_across_processes)

    def _load(self) -> LLM:
        return load_llm(self.spec, **self.llm_kwargs)

    def load_model(self) -> LLM:
        model = super().load_model()
        if self.cache_dir is None:
            return model
        folder = Path(self.cache_dir)
        return _acquire(
            f"{self.model_tag}:{folder}",
            lambda: CachedLLM(
                model, folder / LLM_CACHE_PARTS / f"{uuid.uuid4().hex}.jsonl", [folder / LLM_CACHE]
            ),
        )

    @staticmethod
    def _identity(model: LLM) -> str:
        """The backend's cache identity (never a key), as the results' ``model_id``."""
        return json.dumps(model.cache_identity(), sort_keys=True)


class LLMGenerateHandler(_LLMHandler[Any]):
    """Seeds (``passage``, ``requested_type``) -> :class:`~gecko_jax.fret.generate.Answer`, as
    ``generate_queries`` asks (malformed answers retried within the batch); ``inference_args``
    hold the ``GenerateConfig`` as ``config``."""

    def run_inference(
        self,
        batch: Sequence[Any],
        model: LLM,
        inference_args: dict[str, Any] | None = None,
    ) -> Iterable[PredictionResult]:
        config: GenerateConfig = (inference_args or {}).get("config", GenerateConfig())
        passages, types = [s.passage for s in batch], [s.requested_type for s in batch]
        answers = answer_passages(model, passages, types, config, progress=False)
        identity = self._identity(model)
        return [PredictionResult(s, a, identity) for s, a in zip(batch, answers, strict=True)]


class LLMScoreHandler(_LLMHandler[tuple[str, str]]):
    """(context, continuation) pairs -> log p(continuation | context), NaN where it failed."""

    def run_inference(
        self,
        batch: Sequence[tuple[str, str]],
        model: LLM,
        inference_args: dict[str, Any] | None = None,
    ) -> Iterable[PredictionResult]:
        scores = model.score([c for c, _ in batch], [c for _, c in batch])
        identity = self._identity(model)
        return [PredictionResult(p, s.total, identity) for p, s in zip(batch, scores, strict=True)]


class LLMScorePartsHandler(_LLMHandler[tuple[str, Sequence[str]]]):
    """(context, parts) -> ``LLM.score_parts`` totals of each part, NaN where it failed."""

    @classmethod
    def like(cls, other: _LLMHandler) -> LLMScorePartsHandler:
        """On ``other``'s model, batch size and sharing (the same tag: one loaded model)."""
        return cls(
            other.spec,
            other.llm_kwargs,
            other.batch_size,
            other.share_across_processes,
            other.cache_dir,
        )

    def run_inference(
        self,
        batch: Sequence[tuple[str, Sequence[str]]],
        model: LLM,
        inference_args: dict[str, Any] | None = None,
    ) -> Iterable[PredictionResult]:
        totals = model.score_parts([c for c, _ in batch], [p for _, p in batch])
        identity = self._identity(model)
        return [PredictionResult(p, t, identity) for p, t in zip(batch, totals, strict=True)]


class EncoderHandler(_SharedModelHandler[Any, Encoder]):
    """Query rows (``task``, ``query``) or passages -> unit-norm float32 embeddings.

    Embedded as ``mine`` embeds them (``embed_queries``, ``Encoder.encode_documents``), so in the
    model's own text format. Both roles of one model folder share one loaded model.
    """

    def __init__(
        self,
        model_dir: str,
        role: str,
        batch_size: int = 256,
        share_across_processes: bool = False,
    ):
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {role!r}")
        self.model_dir = str(model_dir)
        self.role = role
        super().__init__(_tag("encoder", self.model_dir), batch_size, share_across_processes)

    def _load(self) -> Encoder:
        return Encoder.from_pretrained(self.model_dir)

    def run_inference(
        self,
        batch: Sequence[Any],
        model: Encoder,
        inference_args: dict[str, Any] | None = None,
    ) -> Iterable[PredictionResult]:
        if self.role == "query":
            embeddings = embed_queries(model, batch)
        else:
            passages: Sequence[Passage] = batch
            embeddings = model.encode_documents(
                [p.text for p in passages], [p.title for p in passages]
            )
        return [
            PredictionResult(x, e, self.model_dir) for x, e in zip(batch, embeddings, strict=True)
        ]


def merge_cache_parts(folder: str | os.PathLike) -> int:
    """Move the workers' new cache entries (:data:`LLM_CACHE_PARTS`) into ``folder``'s
    :data:`LLM_CACHE` and return how many moved; a killed worker's torn last line is dropped.

    Run by the driver while it holds the folder's lock, before and after each pipeline.
    """
    folder = Path(folder)
    parts = folder / LLM_CACHE_PARTS
    if not parts.is_dir():
        return 0
    cache = folder / LLM_CACHE
    if cache.exists():  # a merge killed midway may have torn it: append after whole lines only
        with open(cache, "r+b") as handle:
            handle.truncate(len(complete_records(cache)))
    moved = 0
    with open(cache, "ab") as handle:
        for part in sorted(parts.glob("*.jsonl")):
            records = complete_records(part)
            handle.write(records)
            handle.flush()
            os.fsync(handle.fileno())
            moved += records.count(b"\n")
            part.unlink()
    parts.rmdir()
    return moved
