"""The training loop: resume or initialise, step, log, evaluate, checkpoint, stop cleanly.

One readable function in the spirit of big_vision's trainers. Hooks (evaluation, the batch
source) are plain callables passed in; gin and the CLI live in ``gecko_jax.train_cli``.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import math
import signal
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from etils import epath
from jax.sharding import Mesh

from gecko_jax.features import validate_batch
from gecko_jax.models.config import DualEncoderConfig
from gecko_jax.partitioning import (
    batch_sharding,
    create_mesh,
    global_batch_from_host,
    mesh_context,
    num_batch_shards,
    replicated,
)
from gecko_jax.paths import PathLike, as_path, local_copy, make_dir
from gecko_jax.training import run_model
from gecko_jax.training.checkpoints import Checkpointer
from gecko_jax.training.config import TrainConfig
from gecko_jax.training.early_stopping import EarlyStopping
from gecko_jax.training.metrics import MetricsWriter, peak_flops, train_flops_per_step
from gecko_jax.training.optimizer import learning_rate_schedule, make_optimizer
from gecko_jax.training.state import abstract_state, init_state, state_shardings
from gecko_jax.training.step import TrainState, make_train_step

logger = logging.getLogger(__name__)

BatchFn = Callable[[int], dict[str, np.ndarray]]
EvalFn = Callable[[Any, int], dict[str, float]]


class TrainingDivergedError(RuntimeError):
    """Too many skipped steps (see ``TrainConfig``); the last good state was checkpointed."""


# The exit status of a command line whose training diverged (gecko-train, gecko-jax demo).
EXIT_DIVERGED = 3


@dataclasses.dataclass
class TrainResult:
    state: TrainState
    stopped_by_signal: bool
    workdir: epath.Path


def _load_init_params(path: str, config: TrainConfig) -> Any:
    """Params-only initialisation: our export, a HF/sentence-transformers folder, or a run
    (``WORKDIR``, ``WORKDIR@STEP``, ``WORKDIR@best``; see ``run_model``)."""
    from gecko_jax.encoder import read_model_folder

    folder = as_path(path)
    if run_model.run_reference(path) is not None:
        model_config, params, _ = run_model.read_run_params(path, default_model=config.model)
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


def _host_values(metrics: dict[str, jax.Array]) -> dict[str, float]:
    return {name: float(value) for name, value in jax.device_get(metrics).items()}


def _skip_cause(values: dict[str, float], max_param_norm: float) -> str:
    """Why the step's guard refused its update, read back from the step's metrics."""
    if not math.isfinite(values["loss"]):
        return f"the loss was {values['loss']}"
    if not math.isfinite(values["grad_norm"]):
        return f"the gradient norm was {values['grad_norm']}"
    return (
        f"the update would have taken the parameter norm to {values['proposed_param_norm']:.3g}"
        f" (max_param_norm {max_param_norm:.3g})"
    )


def _check_skipped_share(state: TrainState, config: TrainConfig, checkpoints: epath.Path) -> None:
    """A run that ends with many skipped steps has diverged even if few came in a row; one
    with a few says so, rather than ending as if nothing happened."""
    skipped, steps = int(state.skipped_steps), int(state.step)
    if not skipped:
        return
    summary = f"{skipped} of {steps} steps were skipped as non-finite or exploding"
    if skipped > config.max_skipped_fraction * steps:
        raise TrainingDivergedError(
            f"{summary}, more than max_skipped_fraction {config.max_skipped_fraction:g}; the "
            f"newest checkpoint in {checkpoints} holds the last good parameters"
        )
    logger.warning("%s (within max_skipped_fraction %g)", summary, config.max_skipped_fraction)


def _duration(seconds: float) -> str:
    return str(datetime.timedelta(seconds=round(seconds)))


def _non_embedding_params(params: Any) -> int:
    leaves = jax.tree_util.tree_leaves_with_path(params)
    return sum(
        int(np.prod(x.shape)) for path, x in leaves if "embedding" not in jax.tree_util.keystr(path)
    )


class _StopFlag:
    """Set by SIGTERM (TPU VM preemption), checked between steps."""

    def __init__(self) -> None:
        self.signalled = False
        self._previous: Any = None

    def __enter__(self) -> _StopFlag:
        try:
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not in the main thread: no signal handling
            self._previous = None
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        del frame
        logger.warning("received signal %d: checkpointing and stopping", signum)
        self.signalled = True

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def train(
    config: TrainConfig,
    batch_fn: BatchFn,
    workdir: PathLike,
    eval_fn: EvalFn | None = None,
    mesh: Mesh | None = None,
    early_stopping: EarlyStopping | None = None,
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
    """
    workdir = make_dir(workdir)
    mesh = mesh or create_mesh(config.mesh)
    optimizer, schedule = make_optimizer(config), learning_rate_schedule(config)
    checkpointer = Checkpointer(workdir, config.keep_checkpoints, config.async_checkpointing)
    is_chief = jax.process_index() == 0
    if is_chief:
        (workdir / "train_config.json").write_text(
            json.dumps(dataclasses.asdict(config), indent=2, default=str) + "\n"
        )
    with mesh_context(mesh), _StopFlag() as stop:
        state = restore_or_init(config, optimizer, mesh, checkpointer)
        run = run_model.record_run_model(workdir, config) if is_chief else None
        shardings = state_shardings(config, optimizer, mesh)
        step_fn = jax.jit(
            make_train_step(config, optimizer, schedule, num_batch_shards(mesh)),
            in_shardings=(shardings, batch_sharding(mesh)),
            out_shardings=(shardings, replicated(mesh)),
            donate_argnums=0,
        )
        start = int(state.step)
        if early_stopping is not None:
            early_stopping.attach(workdir, start)
        writer = MetricsWriter(workdir, start, enabled=is_chief)
        device_peak = config.peak_flops_per_device or peak_flops(jax.devices()[0].device_kind)
        non_embedding = _non_embedding_params(state.params)
        last_time, last_logged = time.perf_counter(), start

        def meta(reason: str) -> dict[str, Any]:
            return {"reason": reason, "data_step": int(state.step), "seed": config.seed}

        def export(step: int, selected_by: dict[str, Any] | None) -> None:
            params = run_model.host_params(state.params)
            if run is not None:
                run_model.export_run_model(workdir, run, params, step, selected_by)

        def evaluate(step: int) -> bool:
            """Evaluate, log, and export a new best; True when early stopping says stop."""
            eval_metrics = eval_fn(state.params, step)
            writer.write(step, {f"eval/{k}": v for k, v in eval_metrics.items()})
            if early_stopping is None:
                return False
            stop_now = early_stopping.update(step, eval_metrics, state.params)
            best = early_stopping.best
            if best is not None and best["step"] == step:
                export(step, early_stopping.selection())
            return stop_now

        try:
            end = config.total_steps
            if early_stopping is not None and eval_fn is not None:
                if start == 0 and not early_stopping.history:
                    # The starting point competes too: fine-tuning may only make it worse.
                    evaluate(0)
                end = start if early_stopping.stopped else end
            for step in range(start, end):
                host_batch = batch_fn(step)
                validate_batch(host_batch)
                batch = global_batch_from_host(host_batch, mesh)
                state, metrics = step_fn(state, batch)
                done = step + 1
                bad_in_a_row = int(state.consecutive_bad_steps)
                if bad_in_a_row:
                    cause = _skip_cause(_host_values(metrics), config.max_param_norm)
                    logger.warning(
                        "step %d skipped: %s (%d in a row, %d in all)",
                        done,
                        cause,
                        bad_in_a_row,
                        int(state.skipped_steps),
                    )
                    if bad_in_a_row >= config.max_consecutive_bad_steps:
                        checkpointer.save(done, state, meta("diverged"))
                        checkpointer.wait()
                        raise TrainingDivergedError(
                            f"{bad_in_a_row} steps in a row were skipped, the last (step {done}) "
                            f"because {cause}; the last good parameters are checkpointed at "
                            f"step {done} in {checkpointer.directory}"
                        )
                if done % config.log_every == 0 or done == config.total_steps:
                    values = _host_values(metrics)
                    now = time.perf_counter()
                    seconds_per_step = (now - last_time) / (done - last_logged)
                    last_time, last_logged = now, done
                    tokens = sum(
                        int(np.prod(batch[f"{f}_input_ids"].shape))
                        for f in ("query", "positive", "negative")
                    )
                    flops = train_flops_per_step(
                        non_embedding, tokens, config.gradcache_chunk_size is not None
                    )
                    values["examples_per_second"] = config.global_batch_size / seconds_per_step
                    if device_peak:
                        values["mfu"] = (
                            flops / seconds_per_step / (device_peak * jax.device_count())
                        )
                    values["skipped_steps"] = int(state.skipped_steps)
                    writer.write(done, values)
                    eta = (config.total_steps - done) * seconds_per_step
                    logger.info(
                        "step %d/%d loss %.4f acc %.3f lr %.2e %.1f ex/s eta %s",
                        done,
                        config.total_steps,
                        values["loss"],
                        values["accuracy"],
                        values["learning_rate"],
                        values["examples_per_second"],
                        _duration(eta),
                    )
                evaluating = eval_fn is not None and config.eval_every
                if evaluating and done % config.eval_every == 0 and evaluate(done):
                    checkpointer.save(done, state, meta("early_stopped"))
                    logger.info(
                        "early stop at step %d: best %s %.4f at step %d",
                        done,
                        early_stopping.metric,
                        early_stopping.best["value"],
                        early_stopping.best["step"],
                    )
                    break
                if stop.signalled:
                    checkpointer.save(done, state, meta("signal"))
                    break
                if done % config.checkpoint_every == 0 or done == config.total_steps:
                    checkpointer.save(done, state, meta("periodic"))
            if not stop.signalled:
                _check_skipped_share(state, config, checkpointer.directory)
                if early_stopping is None or early_stopping.best is None:
                    export(int(state.step), None)
        finally:
            writer.close()
            checkpointer.close()
    return TrainResult(state, stop.signalled, workdir)
