"""What a training run records about itself as a model, and its export.

When a run starts it records (``model_io.workdir``) the model config for inference, with
float32, XLA attention and the inference ``max_length`` (``TrainConfig.inference_max_length``,
else the ``init_from`` model's own, else the training one), not the length the training batches
were cut to; and the tokenizer (``TrainConfig.tokenizer``, else the ``init_from`` model's).
The export (``WORKDIR/export``) holds the best evaluated step when an evaluation selects one
(rewritten at each new best, so a killed run keeps it), else the last step.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from pathlib import Path
from typing import Any

import jax
from etils import epath
from jax.experimental import multihost_utils

from gecko_jax.core.paths import PathLike, as_path, copy_tree, is_remote, local_copy
from gecko_jax.encoder import Encoder
from gecko_jax.model_io.folders import read_inference_settings
from gecko_jax.model_io.workdir import (
    EXPORT_DIR,
    FORMAT,
    NO_TOKENIZER,
    TOKENIZER_DIR,
    VERSION,
    RunModel,
    read_meta,
    read_recorded,
    recorded_run_model,
    run_reference,
    write_meta,
)
from gecko_jax.models.config import DualEncoderConfig
from gecko_jax.text.tokenizers import load_tokenizer, resolve_tokenizer_file
from gecko_jax.training.config import TrainConfig

logger = logging.getLogger(__name__)


def run_encoder(run: RunModel, params: Any) -> Encoder:
    """The :class:`Encoder` of a run's parameters."""
    if run.tokenizer_file is None:
        raise ValueError(NO_TOKENIZER)
    tokenizer = load_tokenizer(run.tokenizer_file)
    return Encoder(run.config, params, tokenizer, run.tokenizer_file)


def inference_model(config: TrainConfig) -> RunModel:
    """The run model a training config implies (see the module docstring)."""
    tokenizer = Path(config.tokenizer) if config.tokenizer else None
    base_length = None
    if config.init_from:
        base_length, base_tokenizer = _base_settings(config.init_from)
        tokenizer = tokenizer or base_tokenizer
    max_length = config.inference_max_length or base_length or config.model.max_length
    model = {**config.model.to_dict(), "max_length": max_length}
    model.update(dtype="float32", remat=False, attention_impl="xla")
    tokenizer_file = resolve_tokenizer_file(tokenizer) if tokenizer else None
    return RunModel(DualEncoderConfig.from_dict(model), tokenizer_file)


def _base_settings(init_from: str) -> tuple[int | None, Path | None]:
    """The inference max_length and tokenizer of the model a run starts from."""
    run = run_reference(init_from)
    if run is None:
        return read_inference_settings(local_copy(init_from))
    recorded = read_recorded(run[0])
    if recorded is None:
        return None, None
    return recorded.config.max_length, recorded.tokenizer_file


def run_model_for(workdir: PathLike, config: TrainConfig) -> RunModel:
    """What a run in ``workdir`` encodes with: its record when resumed, else the config's."""
    return read_recorded(workdir) or inference_model(config)


def record_run_model(workdir: PathLike, config: TrainConfig) -> RunModel:
    """Write ``run_model.json`` and the tokenizer copy, unless the run recorded them already
    (a resumed run keeps what it started with); returns the recorded run model."""
    recorded = read_recorded(workdir)
    if recorded is not None:
        return recorded
    run = inference_model(config)
    folder = as_path(workdir)
    meta: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "model": run.config.to_dict(),
        "tokenizer": None,
    }
    if run.tokenizer_file is not None:
        data = run.tokenizer_file.read_bytes()
        (folder / TOKENIZER_DIR).mkdir(parents=True, exist_ok=True)
        (folder / TOKENIZER_DIR / run.tokenizer_file.name).write_bytes(data)
        meta["tokenizer"] = run.tokenizer_file.name
        meta["tokenizer_source"] = str(run.tokenizer_file)
        meta["tokenizer_sha256"] = hashlib.sha256(data).hexdigest()
    write_meta(folder, meta)
    return recorded_run_model(folder, meta)


def host_params(params: Any) -> Any:
    """Parameters as host numpy arrays; every process must call this on a multi-host run."""
    if jax.process_count() > 1:
        return multihost_utils.process_allgather(params, tiled=True)
    return jax.device_get(params)


def export_run_model(
    workdir: PathLike, run: RunModel, params: Any, step: int, selected_by: dict[str, Any] | None
) -> epath.Path | None:
    """Write ``params`` (host arrays) as ``WORKDIR/export`` and record its step and why it
    was chosen (``selected_by``: the metric, its mode and value; None for the last step)."""
    folder = as_path(workdir)
    if run.tokenizer_file is None:
        logger.info("no export: %s", NO_TOKENIZER)
        return None
    encoder = run_encoder(run, params)
    target = folder / EXPORT_DIR
    if is_remote(target):
        with tempfile.TemporaryDirectory() as local:
            copy_tree(encoder.save_pretrained(Path(local) / EXPORT_DIR), target)
    else:
        encoder.save_pretrained(Path(target), overwrite=True)
    meta = read_meta(folder) or {}
    meta["export"] = {"folder": EXPORT_DIR, "step": step, "selected_by": selected_by}
    write_meta(folder, meta)
    logger.info("exported step %d to %s", step, target)
    return target
