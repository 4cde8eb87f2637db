"""A training run as a model: ``WORKDIR``, ``WORKDIR@STEP`` and ``WORKDIR@best``.

Checkpoints hold parameters only; what makes them an encoder is recorded when the run starts,
in ``WORKDIR/run_model.json`` with a copy of the tokenizer in ``WORKDIR/tokenizer/``:

- the model config for inference: float32, XLA attention, and the inference ``max_length``
  (``TrainConfig.inference_max_length``, else the ``init_from`` model's own, else the
  training one), not the length the training batches were cut to;
- the tokenizer (``TrainConfig.tokenizer``, else the ``init_from`` model's), with the file it
  was copied from and its SHA-256.

The run also writes an export (``WORKDIR/export``, our safetensors + JSON folder): the best
evaluated step when an evaluation selects one (rewritten at each new best, so a killed run
keeps it), else the last step. ``run_model.json`` says which step it holds and why.

References resolve as: ``WORKDIR``, the newest checkpoint that restores; ``WORKDIR@STEP``,
that step's checkpoint (or the export, if it holds that step and keep-N has deleted the
checkpoint); ``WORKDIR@best``, the export of the selected step. ``Encoder.from_pretrained``
(so ``gecko-eval --model`` and ``gecko-export --model``) and ``init_from`` read them here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from etils import epath
from jax.experimental import multihost_utils

from gecko_jax.encoder import Encoder, read_inference_settings, read_model_folder
from gecko_jax.models.config import DualEncoderConfig
from gecko_jax.models.dual_encoder import DualEncoder
from gecko_jax.paths import PathLike, as_path, copy_tree, is_remote, local_copy
from gecko_jax.tokenizers import load_tokenizer, resolve_tokenizer_file
from gecko_jax.training.checkpoints import CHECKPOINT_DIR, Checkpointer, describe_failure
from gecko_jax.training.config import TrainConfig

logger = logging.getLogger(__name__)

RUN_MODEL_FILE = "run_model.json"
TOKENIZER_DIR = "tokenizer"
EXPORT_DIR = "export"
BEST = "best"
_FORMAT, _VERSION = "gecko_jax_run", 1
_NO_TOKENIZER = (
    "the run records no tokenizer (it trained from scratch on token ids): set "
    "gecko.TrainConfig.tokenizer to the tokenizer its inputs were made with"
)


@dataclasses.dataclass(frozen=True)
class RunModel:
    """The inference model config and tokenizer file that turn a run's parameters into an
    :class:`Encoder` (``tokenizer_file`` is None for runs on synthetic tokens)."""

    config: DualEncoderConfig
    tokenizer_file: Path | None

    def encoder(self, params: Any) -> Encoder:
        if self.tokenizer_file is None:
            raise ValueError(_NO_TOKENIZER)
        tokenizer = load_tokenizer(self.tokenizer_file)
        return Encoder(self.config, params, tokenizer, self.tokenizer_file)


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
        "format": _FORMAT,
        "version": _VERSION,
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
    _write_meta(folder, meta)
    return _run_model(folder, meta)


def read_recorded(workdir: PathLike) -> RunModel | None:
    """The run model a workdir recorded, or None (no run, or one from before runs did)."""
    folder = as_path(workdir)
    meta = _read_meta(folder)
    return None if meta is None else _run_model(folder, meta)


def _read_meta(folder: epath.Path) -> dict[str, Any] | None:
    file = folder / RUN_MODEL_FILE
    if not file.exists():
        return None
    meta = json.loads(file.read_text())
    if meta.get("format") != _FORMAT or meta.get("version") != _VERSION:
        raise ValueError(
            f"{file}: unsupported format {meta.get('format')!r} version {meta.get('version')!r}"
        )
    return meta


def _write_meta(folder: epath.Path, meta: dict[str, Any]) -> None:
    tmp = folder / f"{RUN_MODEL_FILE}.tmp"
    tmp.write_text(json.dumps(meta, indent=2) + "\n")
    tmp.replace(folder / RUN_MODEL_FILE)


def _run_model(folder: epath.Path, meta: dict[str, Any]) -> RunModel:
    config = DualEncoderConfig.from_dict(meta["model"])
    if meta["tokenizer"] is None:
        return RunModel(config, None)
    return RunModel(config, local_copy(folder / TOKENIZER_DIR) / meta["tokenizer"])


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
        logger.info("no export: %s", _NO_TOKENIZER)
        return None
    encoder = run.encoder(params)
    target = folder / EXPORT_DIR
    if is_remote(target):
        with tempfile.TemporaryDirectory() as local:
            copy_tree(encoder.save_pretrained(Path(local) / EXPORT_DIR), target)
    else:
        encoder.save_pretrained(Path(target), overwrite=True)
    meta = _read_meta(folder) or {}
    meta["export"] = {"folder": EXPORT_DIR, "step": step, "selected_by": selected_by}
    _write_meta(folder, meta)
    logger.info("exported step %d to %s", step, target)
    return target


def run_reference(reference: PathLike) -> tuple[epath.Path, str | None] | None:
    """``(WORKDIR, selector)`` for ``WORKDIR``, ``WORKDIR@STEP`` or ``WORKDIR@best``, where
    WORKDIR holds checkpoints or a run record; None for anything else (a model folder)."""
    text = str(reference)
    folder, at, selector = text.rpartition("@")
    if at and (selector == BEST or selector.isdigit()) and _is_run(as_path(folder)):
        return as_path(folder), selector
    return (as_path(text), None) if _is_run(as_path(text)) else None


def _is_run(folder: epath.Path) -> bool:
    return (folder / CHECKPOINT_DIR).is_dir() or (folder / RUN_MODEL_FILE).exists()


def read_run_params(
    reference: PathLike, default_model: DualEncoderConfig | None = None
) -> tuple[DualEncoderConfig, Any, int]:
    """Model config, host parameters and step of a run reference.

    The model config is the run's record; ``default_model`` stands in for runs that have
    none (their checkpoints are read with its shapes). Errors name what the workdir holds.
    """
    run = run_reference(reference)
    if run is None:
        raise FileNotFoundError(f"{reference} is not a training workdir (no {CHECKPOINT_DIR}/)")
    folder, selector = run
    meta = _read_meta(folder) or {}
    export = meta.get("export")
    if selector == BEST:
        if not export or export.get("selected_by") is None:
            raise FileNotFoundError(
                f"{reference}: no evaluation selected a best step in {folder} (configure "
                f"gecko.TrainingEvaluation.select_metric); its steps: {_steps_text(folder, meta)}"
            )
        return _read_export(folder, export)
    step = None if selector is None else int(selector)
    steps = _checkpoint_steps(folder)
    if step is not None and step not in steps:
        if export and export["step"] == step:
            return _read_export(folder, export)
        raise FileNotFoundError(
            f"{reference}: no step {step} in {folder}; its steps: {_steps_text(folder, meta)}"
        )
    if not steps:
        raise FileNotFoundError(
            f"{folder} holds no checkpoint yet ({folder / CHECKPOINT_DIR} is missing or empty)"
            + (
                f"; its export {folder / export['folder']} holds step {export['step']}"
                if export
                else ""
            )
        )
    if "model" in meta:
        model = DualEncoderConfig.from_dict(meta["model"])
    elif default_model is not None:
        model = default_model
    else:
        raise FileNotFoundError(
            f"{folder} holds checkpoints but no {RUN_MODEL_FILE}: it was trained before runs "
            "recorded their model; load it with init_from in a run of the same model config"
        )
    restored_step, params = _restore_params(folder, step, model)
    return model, params, restored_step


def read_run_model(reference: PathLike) -> tuple[DualEncoderConfig, Any, Path]:
    """Config, parameters and tokenizer file of a run reference, as ``read_model_folder``
    returns them for a model folder."""
    model, params, _ = read_run_params(reference)
    run = run_reference(reference)
    recorded = read_recorded(run[0]) if run else None  # read_run_params needs one, so it is there
    if recorded is None or recorded.tokenizer_file is None:
        raise ValueError(f"{reference}: {_NO_TOKENIZER}")
    return model, params, recorded.tokenizer_file


def _read_export(folder: epath.Path, export: dict[str, Any]) -> tuple[DualEncoderConfig, Any, int]:
    model, params, _ = read_model_folder(local_copy(folder / export["folder"]))
    return model, params, int(export["step"])


def _checkpoint_steps(folder: epath.Path) -> list[int]:
    directory = folder / CHECKPOINT_DIR
    if not directory.is_dir():
        return []
    return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit())


def _steps_text(folder: epath.Path, meta: dict[str, Any]) -> str:
    steps = ", ".join(map(str, _checkpoint_steps(folder))) or "no checkpoints"
    export = meta.get("export")
    if export:
        why = "last step" if export.get("selected_by") is None else "best"
        steps += f" (the export holds step {export['step']}, the {why})"
    return steps


def _restore_params(
    folder: epath.Path, step: int | None, model: DualEncoderConfig
) -> tuple[int, Any]:
    """Only the parameters of ``step`` (None: the newest that restores), on one device."""
    checkpointer = Checkpointer(folder, async_save=False)
    target = _abstract_params(model)
    try:
        if step is None:
            restored = checkpointer.restore_newest_intact(target, params_only=True)
            assert restored is not None  # the caller checked that steps exist
            return restored.step, jax.device_get(restored.state)
        try:
            params, _ = checkpointer.restore_params(step, target)
        except Exception as error:  # orbax, tensorstore and JSON errors alike
            raise ValueError(
                f"checkpoint at step {step} in {folder} does not restore "
                f"({describe_failure(error)})"
            ) from error
        return step, jax.device_get(params)
    finally:
        checkpointer.close()


def _abstract_params(model: DualEncoderConfig) -> Any:
    ids = jnp.ones((1, 8), jnp.int32)
    init = lambda: DualEncoder(model).init(jax.random.key(0), ids, ids)["params"]
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    return jax.tree_util.tree_map(
        lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=device),
        nn.unbox(jax.eval_shape(init)),
    )
