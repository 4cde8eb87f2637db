"""RunInference model handlers for FRet on Beam: the LLM (generate, score, score parts) and the
text encoder.

Each handler names its model with a tag, and every RunInference step on that model passes the tag
as ``model_identifier``. With ``share_across_processes`` the runner then keeps one copy per
machine for all those steps (a GPU or TPU holds one model, not one per SDK process); otherwise
each process keeps one copy, shared between steps through ``apache_beam.utils.shared``. The
handlers call only methods on the model, never attributes, so they also work through the proxy
that cross-process sharing hands out.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from apache_beam.ml.inference.base import (
    KeyedModelHandler,
    ModelHandler,
    PredictionResult,
    RunInference,
)
from apache_beam.utils import shared

from gecko_jax.encoder import Encoder
from gecko_jax.fret.mine import embed_queries
from gecko_jax.fret.passages import Passage
from gecko_jax.llm import load_llm
from gecko_jax.llm.base import LLM, Prompt

ExampleT = TypeVar("ExampleT")
ModelT = TypeVar("ModelT")

# What an EncoderHandler embeds.
ROLES = ("query", "document")

_HANDLES: dict[str, shared.Shared] = {}
_HANDLES_LOCK = threading.Lock()


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
        with _HANDLES_LOCK:
            handle = _HANDLES.setdefault(self.model_tag, shared.Shared())
        return handle.acquire(self._load)

    def inference(self, inference_args: Mapping[str, Any] | None = None) -> RunInference:
        """A RunInference step on ``(key, example)`` pairs, giving ``(key, PredictionResult)``."""
        return RunInference(
            KeyedModelHandler(self),
            inference_args=dict(inference_args) if inference_args else None,
            model_identifier=self.model_tag,
        )


class _LLMHandler(_SharedModelHandler[ExampleT, LLM]):
    """An LLM from a ``load_llm`` spec; ``llm_kwargs`` go to the backend's constructor."""

    def __init__(
        self,
        spec: str,
        llm_kwargs: Mapping[str, Any] | None = None,
        batch_size: int = 16,
        share_across_processes: bool = False,
    ):
        self.spec = spec
        self.llm_kwargs = dict(llm_kwargs or {})
        self.batch_size = batch_size
        self.share_across_processes = share_across_processes
        tag = _tag("llm", spec, self.llm_kwargs)
        super().__init__(tag, batch_size, share_across_processes)

    def _load(self) -> LLM:
        return load_llm(self.spec, **self.llm_kwargs)

    @staticmethod
    def _identity(model: LLM) -> str:
        """The backend's cache identity (never a key), as the results' ``model_id``."""
        return json.dumps(model.cache_identity(), sort_keys=True)


class LLMGenerateHandler(_LLMHandler[Prompt]):
    """Prompts -> :class:`~gecko_jax.llm.base.Generation`; ``inference_args`` are
    ``LLM.generate``'s keyword arguments (max_tokens, temperature, stop, seed)."""

    def run_inference(
        self,
        batch: Sequence[Prompt],
        model: LLM,
        inference_args: dict[str, Any] | None = None,
    ) -> Iterable[PredictionResult]:
        generations = model.generate(list(batch), **(inference_args or {}))
        identity = self._identity(model)
        return [PredictionResult(p, g, identity) for p, g in zip(batch, generations, strict=True)]


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
        return cls(other.spec, other.llm_kwargs, other.batch_size, other.share_across_processes)

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
