"""A training workdir as a model: ``WORKDIR``, ``WORKDIR@STEP`` and ``WORKDIR@best``.

Checkpoints hold parameters only; what makes them an encoder is recorded when the run starts
(``training.run_model``), in ``WORKDIR/run_model.json`` with a copy of the tokenizer in
``WORKDIR/tokenizer/``: the model config for inference (float32, XLA attention, the inference
``max_length``) and the tokenizer, with the file it was copied from and its SHA-256. The run
also writes an export (``WORKDIR/export``, our safetensors + JSON folder): the best evaluated
step when an evaluation selects one, else the last step; ``run_model.json`` says which step it
holds and why.

References resolve as: ``WORKDIR``, the newest checkpoint that restores; ``WORKDIR@STEP``,
that step's checkpoint (or the export, if it holds that step and keep-N has deleted the
checkpoint); ``WORKDIR@best``, the export of the selected step. ``Encoder.from_pretrained``
(so ``gecko-eval --model`` and ``gecko-export --model``) and ``init_from`` read them here.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from etils import epath

from gecko_jax.core.paths import PathLike, as_path, local_copy
from gecko_jax.model_io.checkpoints import CHECKPOINT_DIR, Checkpointer, describe_failure
from gecko_jax.model_io.folders import read_model_folder
from gecko_jax.models.config import DualEncoderConfig
from gecko_jax.models.dual_encoder import DualEncoder

RUN_MODEL_FILE = "run_model.json"
TOKENIZER_DIR = "tokenizer"
EXPORT_DIR = "export"
BEST = "best"
FORMAT, VERSION = "gecko_jax_run", 1
NO_TOKENIZER = (
    "the run records no tokenizer (it trained from scratch on token ids): set "
    "gecko.TrainConfig.tokenizer to the tokenizer its inputs were made with"
)


@dataclasses.dataclass(frozen=True)
class RunModel:
    """The inference model config and tokenizer file that turn a run's parameters into an
    encoder (``tokenizer_file`` is None for runs on synthetic tokens)."""

    config: DualEncoderConfig
    tokenizer_file: Path | None


def read_recorded(workdir: PathLike) -> RunModel | None:
    """The run model a workdir recorded, or None (no run, or one from before runs did)."""
    folder = as_path(workdir)
    meta = read_meta(folder)
    return None if meta is None else recorded_run_model(folder, meta)


def read_meta(folder: epath.Path) -> dict[str, Any] | None:
    """``run_model.json`` of ``folder``, or None where there is none."""
    file = folder / RUN_MODEL_FILE
    if not file.exists():
        return None
    meta = json.loads(file.read_text())
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise ValueError(
            f"{file}: unsupported format {meta.get('format')!r} version {meta.get('version')!r}"
        )
    return meta


def write_meta(folder: epath.Path, meta: dict[str, Any]) -> None:
    """Replace ``run_model.json`` in one rename, so a reader never sees half of it."""
    tmp = folder / f"{RUN_MODEL_FILE}.tmp"
    tmp.write_text(json.dumps(meta, indent=2) + "\n")
    tmp.replace(folder / RUN_MODEL_FILE)


def recorded_run_model(folder: epath.Path, meta: dict[str, Any]) -> RunModel:
    """The run model ``meta`` (a ``run_model.json``) records, its tokenizer from ``folder``."""
    config = DualEncoderConfig.from_dict(meta["model"])
    if meta["tokenizer"] is None:
        return RunModel(config, None)
    return RunModel(config, local_copy(folder / TOKENIZER_DIR) / meta["tokenizer"])


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
    meta = read_meta(folder) or {}
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
        raise ValueError(f"{reference}: {NO_TOKENIZER}")
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
