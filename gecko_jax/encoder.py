"""The user-facing encoder: texts in, unit-norm float32 numpy embeddings out.

Texts are tokenised once and packed several to a row (see ``gecko_jax.packing``), so almost
no compute goes to padding and jit compiles one shape per row length, not one per batch.
"""

from __future__ import annotations

import collections
import functools
import json
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from etils import epath
from flax import traverse_util
from tqdm.auto import tqdm

from gecko_jax import formats, st_folder
from gecko_jax.export.folders import write_folder
from gecko_jax.models.config import DualEncoderConfig, EncoderConfig
from gecko_jax.models.dual_encoder import DualEncoder
from gecko_jax.models.registry import backbone_params_from_hf, encoder_config_from_hf
from gecko_jax.models.weights import WeightImportError
from gecko_jax.packing import PackedCall, max_segments, plan_calls
from gecko_jax.paths import PathLike, as_path, local_copy
from gecko_jax.serialization import load_params, save_params
from gecko_jax.tokenizers import Tokenizer, check_texts, load_tokenizer

logger = logging.getLogger(__name__)

GECKO_CONFIG = "gecko_config.json"
GECKO_PARAMS = "params.safetensors"
FORMAT_VERSION = 1
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
        if _is_model_folder(path):
            config, params, tokenizer_file = read_model_folder(local_copy(path))
        else:
            from gecko_jax.training import run_model  # training sits above the encoder

            run = run_model.run_reference(path)
            if run is None:
                if as_path(path).is_dir():
                    raise FileNotFoundError(f"{path} has neither{_NOT_A_MODEL}")
                raise FileNotFoundError(f"model folder not found: {path}")
            config, params, tokenizer_file = run_model.read_run_model(path)
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
            self._write_gecko_folder(folder, tokenizer_file)

        return write_folder(path, write, overwrite=overwrite, source=self.source)

    def _write_gecko_folder(self, path: Path, tokenizer_file: Path) -> None:
        save_params(path / GECKO_PARAMS, jax.device_get(self.params))
        shutil.copyfile(tokenizer_file, path / tokenizer_file.name)
        meta = {
            "format": "gecko_jax",
            "version": FORMAT_VERSION,
            "model": self.config.to_dict(),
            "tokenizer": tokenizer_file.name,
        }
        (path / GECKO_CONFIG).write_text(json.dumps(meta, indent=2) + "\n")

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


_NOT_A_MODEL = (
    f" {GECKO_CONFIG} (a gecko_jax export) nor config.json (a Hugging Face / "
    "sentence-transformers folder), nor is it a training workdir (WORKDIR, WORKDIR@STEP)"
)


def _is_model_folder(path: PathLike) -> bool:
    folder = as_path(path)
    return (folder / GECKO_CONFIG).exists() or (folder / "config.json").exists()


def read_model_folder(path: str | Path) -> tuple[DualEncoderConfig, dict[str, Any], Path]:
    """Config, parameters and tokenizer file of our export or a sentence-transformers folder."""
    path = Path(path)
    if (path / GECKO_CONFIG).exists():
        return _read_gecko_folder(path)
    if (path / "config.json").exists():
        return _read_hf_folder(path)
    raise FileNotFoundError(f"{path} has neither{_NOT_A_MODEL}")


def _read_gecko_folder(path: Path) -> tuple[DualEncoderConfig, dict[str, Any], Path]:
    meta = json.loads((path / GECKO_CONFIG).read_text())
    if meta.get("format") != "gecko_jax" or meta.get("version") != FORMAT_VERSION:
        raise ValueError(
            f"{path / GECKO_CONFIG}: unsupported format {meta.get('format')!r} "
            f"version {meta.get('version')!r}"
        )
    config = DualEncoderConfig.from_dict(meta["model"])
    params = load_params(path / GECKO_PARAMS)
    _check_params(config, params, path / GECKO_PARAMS)
    return config, params, path / meta["tokenizer"]


def _check_params(config: DualEncoderConfig, params: dict[str, Any], path: Path) -> None:
    """Every tensor the config needs, at its shape, and no other: a file saved for another
    config fails here, naming the tensors, rather than inside the first forward call."""
    ones = jnp.ones((1, 8), jnp.int32)
    init = functools.partial(DualEncoder(config).init, jax.random.key(0), ones, ones)
    expected = _shapes(nn.unbox(jax.eval_shape(init))["params"])
    found = _shapes(params)
    problems = [
        f"{name}: file has {found[name]}, config needs {shape}"
        for name, shape in expected.items()
        if name in found and found[name] != shape
    ]
    problems += [f"{name}: missing" for name in expected if name not in found]
    problems += [f"{name}: not in the model" for name in found if name not in expected]
    if problems:
        raise WeightImportError(
            f"{path} does not fit {path.parent / GECKO_CONFIG} ({len(problems)} tensors): "
            + "; ".join(problems[:5])
        )


def _shapes(tree: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    return {
        "/".join(key): tuple(value.shape) for key, value in traverse_util.flatten_dict(tree).items()
    }


def _read_hf_folder(path: Path) -> tuple[DualEncoderConfig, dict[str, Any], Path]:
    """A Hugging Face model folder, with its sentence-transformers modules if present."""
    encoder_config = encoder_config_from_hf(
        json.loads((path / "config.json").read_text()), str(path / "config.json")
    )
    modules = st_folder.read_modules(path)
    pooling = st_folder.read_pooling(modules["Pooling"]) if "Pooling" in modules else "mean"
    params: dict[str, Any] = {
        "backbone": backbone_params_from_hf(str(path / "model.safetensors"), encoder_config)
    }
    projection: dict[str, Any] = {}
    if "Dense" in modules:
        projection, params["projection"] = st_folder.read_dense(
            modules["Dense"], encoder_config.hidden_size
        )
    config = DualEncoderConfig(
        encoder_config,
        pooling=pooling,
        max_length=_hf_max_length(path, encoder_config),
        **projection,
    )
    return config, params, _hf_tokenizer_file(path)


def _hf_max_length(path: Path, encoder_config: EncoderConfig) -> int:
    positions = encoder_config.max_position_embeddings
    return min(st_folder.read_max_length(path, positions), positions)


def _hf_tokenizer_file(path: Path) -> Path:
    tokenizer_file = path / "tokenizer.json"
    return tokenizer_file if tokenizer_file.exists() else path / "spiece.model"


def read_inference_settings(path: str | Path) -> tuple[int, Path]:
    """The max_length and tokenizer file a model folder is used with, without its weights:
    what a run initialised from it records as its own (``training.run_model``)."""
    path = Path(path)
    if (path / GECKO_CONFIG).exists():
        meta = json.loads((path / GECKO_CONFIG).read_text())
        return int(meta["model"]["max_length"]), path / meta["tokenizer"]
    encoder_config = encoder_config_from_hf(
        json.loads((path / "config.json").read_text()), str(path / "config.json")
    )
    return _hf_max_length(path, encoder_config), _hf_tokenizer_file(path)
