"""The user-facing encoder: texts in, unit-norm float32 numpy embeddings out.

Texts are tokenised once and packed several to a row (see ``gecko_jax.text.packing``), so almost
no compute goes to padding and jit compiles one shape per row length, not one per batch.
"""

from __future__ import annotations

import collections
import functools
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from etils import epath
from tqdm.auto import tqdm

from gecko_jax.core.paths import PathLike, as_path, local_copy
from gecko_jax.model_io.atomic import write_folder
from gecko_jax.model_io.folders import (
    NOT_A_MODEL,
    is_model_folder,
    read_model_folder,
    write_gecko_folder,
)
from gecko_jax.model_io.workdir import read_run_model, run_reference
from gecko_jax.models.config import DualEncoderConfig
from gecko_jax.models.dual_encoder import DualEncoder
from gecko_jax.text import formats
from gecko_jax.text.packing import PackedCall, max_segments, plan_calls
from gecko_jax.text.tokenizers import Tokenizer, check_texts, load_tokenizer

logger = logging.getLogger(__name__)

_PROGRESS_MIN_CALLS = 8
# Calls queued ahead of the one being collected: enough to keep the device busy while the
# host packs and collects, few enough that the bar trails the work by little.
_IN_FLIGHT = 2


# Token slots per forward call for each text of ``batch_size``: packed rows hold about this
# many tokens per text on sentence-length inputs, so a call covers ~batch_size such texts.
TOKENS_PER_TEXT_SLOT = 16


@functools.lru_cache(maxsize=16)
def _compiled_apply(config: DualEncoderConfig) -> Any:
    """One jitted forward per model config, shared by every Encoder built from it, so
    evaluating several checkpoints of one model (seeds, early-stopping candidates) compiles
    each row length once."""
    return jax.jit(DualEncoder(config).apply, static_argnums=5)


class Encoder:
    """A Gecko dual encoder with its tokenizer, ready to embed queries and documents."""

    def __init__(
        self,
        config: DualEncoderConfig,
        params: dict[str, Any],
        tokenizer: Tokenizer,
        tokenizer_file: str | Path | None = None,
        source: str | Path | None = None,
    ):
        self.config = config
        self.tokenizer = tokenizer
        self.tokenizer_file = Path(tokenizer_file) if tokenizer_file else None
        # The folder this encoder was loaded from, which its exports never write into.
        self.source = as_path(source) if source else None
        self.params = jax.tree_util.tree_map(jnp.asarray, params)
        self._apply = _compiled_apply(config)

    @property
    def embedding_dim(self) -> int:
        return self.config.output_dim

    # ----------------------------------------------------------------- loading and saving
    @classmethod
    def from_pretrained(
        cls, path: str | Path, *, max_length: int | None = None, dtype: str = "float32"
    ) -> Encoder:
        """Load our own export (``gecko_config.json``) or a sentence-transformers folder,
        local or remote (``gs://...``), or a training run: ``WORKDIR`` (its newest intact
        checkpoint), ``WORKDIR@STEP`` or ``WORKDIR@best``, at the run's inference max_length.
        """
        source: PathLike = path
        if is_model_folder(path):
            config, params, tokenizer_file = read_model_folder(local_copy(path))
        else:
            run = run_reference(path)
            if run is None:
                if as_path(path).is_dir():
                    raise FileNotFoundError(f"{path} has neither{NOT_A_MODEL}")
                raise FileNotFoundError(f"model folder not found: {path}")
            config, params, tokenizer_file = read_run_model(path)
            source = run[0]
        overrides: dict[str, Any] = {"dtype": dtype}
        if max_length is not None:
            overrides["max_length"] = max_length
        config = DualEncoderConfig.from_dict({**config.to_dict(), **overrides})
        return cls(config, params, load_tokenizer(tokenizer_file), tokenizer_file, source)

    def save_pretrained(self, path: PathLike, *, overwrite: bool = True) -> Path | epath.Path:
        """Write config, float32 parameters and the tokenizer file; loadable by from_pretrained.

        As in Hugging Face, saving into a folder again replaces the files; ``overwrite=False``
        refuses a non-empty folder instead. Written atomically (``export.folders``), never
        into the folder this encoder was loaded from.
        """
        tokenizer_file = self.tokenizer_file
        if tokenizer_file is None:
            raise ValueError("this encoder has no tokenizer file to save alongside the weights")

        def write(folder: Path) -> None:
            write_gecko_folder(folder, self.config, self.params, tokenizer_file)

        return write_folder(path, write, overwrite=overwrite, source=self.source)

    # ----------------------------------------------------------------------- encoding
    def encode(
        self,
        texts: Sequence[str],
        batch_size: int = 64,
        *,
        dims: int | None = None,
        show_progress: bool | None = None,
    ) -> np.ndarray:
        """Embed raw texts (no format applied). Returns ``[len(texts), dims or D]`` float32."""
        check_texts(texts)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        out_dim = dims or self.embedding_dim
        if dims is not None and not 0 < dims <= self.embedding_dim:
            raise ValueError(f"dims must be in 1..{self.embedding_dim}, got {dims}")
        if not texts:
            return np.zeros((0, out_dim), np.float32)

        max_length = self.config.max_length
        ids = self.tokenizer.encode(list(texts), max_length)
        calls = plan_calls(
            ids, max_length, batch_size * TOKENS_PER_TEXT_SLOT, self.tokenizer.pad_id
        )
        if show_progress is None:
            show_progress = len(calls) >= _PROGRESS_MIN_CALLS
        embeddings = np.empty((len(texts), self.embedding_dim), np.float32)
        # Dispatch is asynchronous: a few calls are queued while the oldest one runs, and each
        # is collected as soon as the window is full, so the bar moves with the computation.
        pending: collections.deque[tuple[PackedCall, jax.Array]] = collections.deque()
        with _progress(len(texts), show_progress) as progress:
            for call in calls:
                pending.append((call, self._dispatch(call)))
                if len(pending) > _IN_FLIGHT:
                    _collect(*pending.popleft(), embeddings, progress)
            while pending:
                _collect(*pending.popleft(), embeddings, progress)
        if dims is not None and dims < self.embedding_dim:
            embeddings = embeddings[:, :dims]
            embeddings /= np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
        return embeddings

    def _dispatch(self, call: PackedCall) -> jax.Array:
        """Start one packed forward call; returns before it has finished."""
        return self._apply(
            {"params": self.params},
            call.input_ids,
            call.attention_mask,
            call.segment_ids,
            call.position_ids,
            max_segments(call.input_ids.shape[1]),
        )

    def encode_queries(
        self, texts: Sequence[str], task: str = formats.DEFAULT_QUERY_TASK, **kwargs: Any
    ) -> np.ndarray:
        """Embed queries as ``task: {task} | query: {text}`` (paper Appendix B).

        A model trained in another format (``config.text_format``) reads that format instead.
        """
        check_texts(texts)
        text_format = self.config.text_format
        return self.encode([formats.format_query(t, task, text_format) for t in texts], **kwargs)

    def encode_documents(
        self, texts: Sequence[str], titles: Sequence[str | None] | None = None, **kwargs: Any
    ) -> np.ndarray:
        """Embed passages as ``title: {title} | text: {text}``; a missing title is ``none``."""
        check_texts(texts)
        if titles is None:
            titles = [None] * len(texts)
        elif len(titles) != len(texts):
            raise ValueError(f"got {len(titles)} titles for {len(texts)} texts")
        documents = [
            formats.format_document(t, title, self.config.text_format)
            for t, title in zip(texts, titles, strict=True)
        ]
        return self.encode(documents, **kwargs)


def _collect(call: PackedCall, result: jax.Array, out: np.ndarray, progress: tqdm) -> None:
    """Wait for one call's embeddings, place them by text index and advance the bar."""
    rows, segments, indices = (np.array(x) for x in zip(*call.slots, strict=True))
    out[indices] = np.asarray(result)[rows, segments]
    progress.update(len(call.slots))


def _progress(total: int, show: bool) -> tqdm:
    """A bar over texts; tqdm's default format shows the rate and the time left."""
    return tqdm(total=total, desc="encode", unit="text", disable=not show)
