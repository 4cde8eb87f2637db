"""The training loop: resume or initialise, then step, with hooks around each step.

Logging, evaluation, checkpointing, divergence and SIGTERM are hooks
(``gecko_jax.training.hooks``), so the loop itself is a few lines in the spirit of big_vision's
trainers; the batch source and the evaluation are plain callables passed in. Gin and the CLI
live in ``gecko_jax.cli.train``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from etils import epath
from jax.sharding import Mesh

from gecko_jax.core.partitioning import (
    batch_sharding,
    create_mesh,
    global_batch_from_host,
    mesh_context,
    num_batch_shards,
    replicated,
)
from gecko_jax.core.paths import PathLike, as_path, local_copy, make_dir
from gecko_jax.model_io.checkpoints import Checkpointer
from gecko_jax.model_io.workdir import read_run_params, run_reference
from gecko_jax.models.config import DualEncoderConfig
from gecko_jax.text.features import validate_batch
from gecko_jax.training import run_model
from gecko_jax.training.config import TrainConfig
from gecko_jax.training.early_stopping import EarlyStopping
from gecko_jax.training.hooks import (
    Batch,
    CheckpointHook,
    DivergenceHook,
    EvalFn,
    EvalHook,
    Hook,
    LogHook,
    Metrics,
    RunExport,
    SignalHook,
)
from gecko_jax.training.metrics import MetricsWriter
from gecko_jax.training.optimizer import learning_rate_schedule, make_optimizer
from gecko_jax.training.state import abstract_state, init_state, state_shardings
from gecko_jax.training.step import TrainState, make_train_step

logger = logging.getLogger(__name__)

BatchFn = Callable[[int], dict[str, np.ndarray]]
# One train step: (state, step index) -> (new state, its metrics, the global batch it used).
Advance = Callable[[TrainState, int], tuple[TrainState, Metrics, Batch]]


@dataclasses.dataclass
class TrainResult:
    state: TrainState
    stopped_by_signal: bool
    workdir: epath.Path


def _load_init_params(path: str, config: TrainConfig) -> Any:
    """Params-only initialisation: our export, a HF/sentence-transformers folder, or a run
    (``WORKDIR``, ``WORKDIR@STEP``, ``WORKDIR@best``; see ``run_model``)."""
    from gecko_jax.model_io.folders import read_model_folder

    folder = as_path(path)
    if run_reference(path) is not None:
        model_config, params, _ = read_run_params(path, default_model=config.model)
    else:
        model_config, params, _ = read_model_folder(local_copy(folder))
    if model_config.encoder != config.model.encoder:
        raise ValueError(
            f"init_from {folder}: its backbone {model_config.encoder} differs from the configured "
            f"{config.model.encoder}"
        )
    ours, theirs = _projection(config.model), _projection(model_config)
    if ours != theirs:
        raise ValueError(
            f"init_from {folder}: its projection (dim, bias, activation) {theirs} differs from "
            f"the configured {ours}; match the model config to it, or initialise fresh instead"
        )
    return params


def _projection(model: DualEncoderConfig) -> tuple[int | None, bool, str]:
    """What the loaded and the configured model must agree on: params do not carry activation."""
    return model.projection_dim, model.projection_bias, model.projection_activation


def restore_or_init(
    config: TrainConfig, optimizer: Any, mesh: Mesh, checkpointer: Checkpointer
) -> TrainState:
    """The resume contract: the newest checkpoint that restores (damaged newer ones are set
    aside), else params from ``init_from``, else fresh."""
    restored = checkpointer.restore_newest_intact(abstract_state(config, optimizer, mesh))
    if restored is not None:
        checkpointer.set_aside(restored.damaged)
        reason = restored.meta.get("reason")
        logger.info("resumed from step %d (%s checkpoint)", restored.step, reason)
        return restored.state
    rng = jax.random.key(config.seed)
    if config.init_from:
        params = _load_init_params(config.init_from, config)
        logger.info("initialised from %s", config.init_from)
        return init_state(config, optimizer, mesh, rng, params)
    logger.info("initialised fresh from seed %d", config.seed)
    return init_state(config, optimizer, mesh, rng)


def _compiled_step(config: TrainConfig, optimizer: Any, mesh: Mesh, batch_fn: BatchFn) -> Advance:
    """The jitted train step, fed by ``batch_fn`` and donating the old state."""
    shardings = state_shardings(config, optimizer, mesh)
    step_fn = jax.jit(
        make_train_step(config, optimizer, learning_rate_schedule(config), num_batch_shards(mesh)),
        in_shardings=(shardings, batch_sharding(mesh)),
        out_shardings=(shardings, replicated(mesh)),
        donate_argnums=0,
    )

    def advance(state: TrainState, step: int) -> tuple[TrainState, Metrics, Batch]:
        host_batch = batch_fn(step)
        validate_batch(host_batch)
        batch = global_batch_from_host(host_batch, mesh)
        state, metrics = step_fn(state, batch)
        return state, metrics, batch

    return advance


def _loop(
    state: TrainState,
    total_steps: int,
    advance: Advance,
    hooks: Sequence[Hook],
) -> tuple[TrainState, str | None]:
    """Step until ``total_steps`` or a hook's stop (see ``hooks``); the final state and the
    stop reason (None when the run went to the end)."""
    stop = next((hook.stop_reason for hook in hooks if hook.on_start(state)), None)
    step = int(state.step)
    while stop is None and step < total_steps:
        state, metrics, batch = advance(state, step)
        step += 1
        stopped = (hook for hook in hooks if hook.after_step(step, state, metrics, batch))
        stop = next((hook.stop_reason for hook in stopped), None)
    for hook in hooks:
        hook.on_end(state, stop)
    return state, stop


def train(
    config: TrainConfig,
    batch_fn: BatchFn,
    workdir: PathLike,
    eval_fn: EvalFn | None = None,
    mesh: Mesh | None = None,
    early_stopping: EarlyStopping | None = None,
    hooks: Sequence[Hook] = (),
) -> TrainResult:
    """Train until ``config.total_steps``, resuming from ``workdir`` if it holds a checkpoint.

    ``batch_fn(step)`` returns this host's rows of the global batch for ``step``. With
    ``early_stopping``, every ``eval_fn`` result goes to it, and the run stops (with a
    checkpoint) once it says so; a rerun of a stopped run returns at once.

    The run is a model (``run_model``): it records its inference settings at the start and
    exports ``WORKDIR/export`` at each new best of ``early_stopping``'s metric, or, without
    one, at the end.

    Every skipped step is logged with its cause. :class:`TrainingDivergedError` ends a run
    with ``max_consecutive_bad_steps`` skipped in a row (after checkpointing the last good
    state) or one that finishes with more than ``max_skipped_fraction`` of its steps skipped.

    ``hooks`` run after the built-in logging, before evaluation and checkpointing (see
    ``gecko_jax.training.hooks``).
    """
    workdir = make_dir(workdir)
    mesh = mesh or create_mesh(config.mesh)
    optimizer = make_optimizer(config)
    checkpointer = Checkpointer(workdir, config.keep_checkpoints, config.async_checkpointing)
    is_chief = jax.process_index() == 0
    if is_chief:
        (workdir / "train_config.json").write_text(
            json.dumps(dataclasses.asdict(config), indent=2, default=str) + "\n"
        )
    with mesh_context(mesh), SignalHook() as on_signal:
        state = restore_or_init(config, optimizer, mesh, checkpointer)
        run = run_model.record_run_model(workdir, config) if is_chief else None
        export = RunExport(workdir, run)
        writer = MetricsWriter(workdir, int(state.step), enabled=is_chief)
        evaluation = (
            [] if eval_fn is None else [EvalHook(config, eval_fn, writer, early_stopping, export)]
        )
        all_hooks = [
            DivergenceHook(config, checkpointer),
            LogHook(config, writer),
            *hooks,
            *evaluation,
            on_signal,
            CheckpointHook(config, checkpointer, export, early_stopping),
        ]
        advance = _compiled_step(config, optimizer, mesh, batch_fn)
        try:
            state, stop = _loop(state, config.total_steps, advance, all_hooks)
        finally:
            writer.close()
            checkpointer.close()
    return TrainResult(state, stop == SignalHook.stop_reason, workdir)
