"""Training hooks: what the loop does around each step, one concern per hook.

The loop (``trainer.train``) calls every hook in order at three events: ``on_start`` before
the first step, ``after_step`` after each step, and ``on_end`` once the loop is over. A hook
that returns True from ``on_start`` or ``after_step`` stops the run: the hooks after it skip
that event, the run checkpoints its state with the hook's ``stop_reason``, and every hook's
``on_end`` then sees that reason. ``on_end`` is not called when the run raises.

The built-in hooks, in the order ``train`` runs them (user hooks go after logging, so they see
every step that runs): :class:`DivergenceHook`, :class:`LogHook`, user hooks,
:class:`EvalHook`, :class:`SignalHook`, :class:`CheckpointHook`.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import math
import signal
import time
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np
from etils import epath

from gecko_jax.model_io.checkpoints import Checkpointer
from gecko_jax.model_io.workdir import RunModel
from gecko_jax.training import run_model
from gecko_jax.training.config import TrainConfig
from gecko_jax.training.early_stopping import EarlyStopping
from gecko_jax.training.metrics import MetricsWriter, peak_flops, train_flops_per_step
from gecko_jax.training.step import TrainState

logger = logging.getLogger(__name__)

Metrics = Mapping[str, jax.Array]  # the step's scalars, on device: float() what you read
Batch = Mapping[str, jax.Array]  # the step's global batch (gecko_jax.text.features.FIELDS)
EvalFn = Callable[[Any, int], dict[str, float]]

# The exit status of a command line whose training diverged (gecko-train, gecko-jax demo).
EXIT_DIVERGED = 3


class TrainingDivergedError(RuntimeError):
    """Too many skipped steps (see ``TrainConfig``); the last good state was checkpointed."""


class Hook:
    """One concern of the training loop; override the events it needs (all do nothing)."""

    stop_reason = "stopped"  # recorded in the checkpoint saved when this hook stops the run

    def on_start(self, state: TrainState) -> bool:
        """Before the first step (``state`` is the restored or fresh one); True: train no more."""
        return False

    def after_step(self, step: int, state: TrainState, metrics: Metrics, batch: Batch) -> bool:
        """After each step; ``step`` counts the steps done (the state's step). True: stop."""
        return False

    def on_end(self, state: TrainState, stop_reason: str | None) -> None:
        """Once the loop is over; ``stop_reason`` is None when it ran to ``total_steps``."""


def _save(checkpointer: Checkpointer, state: TrainState, reason: str, seed: int) -> None:
    step = int(state.step)
    checkpointer.save(step, state, {"reason": reason, "data_step": step, "seed": seed})


def _host_values(metrics: Metrics) -> dict[str, float]:
    return {name: float(value) for name, value in jax.device_get(dict(metrics)).items()}


@dataclasses.dataclass(frozen=True)
class RunExport:
    """Writes ``WORKDIR/export`` from a state's params: every host gathers, the chief writes
    (``run`` is None on the other hosts)."""

    workdir: epath.Path
    run: RunModel | None

    def __call__(self, state: TrainState, selected_by: dict[str, Any] | None) -> None:
        params = run_model.host_params(state.params)
        if self.run is not None:
            run_model.export_run_model(self.workdir, self.run, params, int(state.step), selected_by)


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


class DivergenceHook(Hook):
    """Logs every skipped step with its cause; ``max_consecutive_bad_steps`` in a row
    checkpoint the last good state and raise :class:`TrainingDivergedError`."""

    def __init__(self, config: TrainConfig, checkpointer: Checkpointer) -> None:
        self.config, self.checkpointer = config, checkpointer

    def after_step(self, step: int, state: TrainState, metrics: Metrics, batch: Batch) -> bool:
        bad_in_a_row = int(state.consecutive_bad_steps)
        if not bad_in_a_row:
            return False
        cause = _skip_cause(_host_values(metrics), self.config.max_param_norm)
        logger.warning(
            "step %d skipped: %s (%d in a row, %d in all)",
            step,
            cause,
            bad_in_a_row,
            int(state.skipped_steps),
        )
        if bad_in_a_row >= self.config.max_consecutive_bad_steps:
            _save(self.checkpointer, state, "diverged", self.config.seed)
            self.checkpointer.wait()
            raise TrainingDivergedError(
                f"{bad_in_a_row} steps in a row were skipped, the last (step {step}) because "
                f"{cause}; the last good parameters are checkpointed at step {step} in "
                f"{self.checkpointer.directory}"
            )
        return False


def _duration(seconds: float) -> str:
    return str(datetime.timedelta(seconds=round(seconds)))


def _non_embedding_params(params: Any) -> int:
    leaves = jax.tree_util.tree_leaves_with_path(params)
    return sum(
        int(np.prod(x.shape)) for path, x in leaves if "embedding" not in jax.tree_util.keystr(path)
    )


class LogHook(Hook):
    """Every ``log_every`` steps and at the last: the step's metrics with throughput, MFU and
    the skipped-step count to ``writer``, and one progress line to the console."""

    def __init__(self, config: TrainConfig, writer: MetricsWriter) -> None:
        self.config, self.writer = config, writer

    def on_start(self, state: TrainState) -> bool:
        self._device_peak = self.config.peak_flops_per_device or peak_flops(
            jax.devices()[0].device_kind
        )
        self._non_embedding = _non_embedding_params(state.params)
        self._last_time, self._last_step = time.perf_counter(), int(state.step)
        return False

    def after_step(self, step: int, state: TrainState, metrics: Metrics, batch: Batch) -> bool:
        config = self.config
        if step % config.log_every and step != config.total_steps:
            return False
        values = _host_values(metrics)
        now = time.perf_counter()
        seconds_per_step = (now - self._last_time) / (step - self._last_step)
        self._last_time, self._last_step = now, step
        tokens = sum(
            int(np.prod(batch[f"{f}_input_ids"].shape)) for f in ("query", "positive", "negative")
        )
        flops = train_flops_per_step(
            self._non_embedding, tokens, config.gradcache_chunk_size is not None
        )
        values["examples_per_second"] = config.global_batch_size / seconds_per_step
        if self._device_peak:
            values["mfu"] = flops / seconds_per_step / (self._device_peak * jax.device_count())
        values["skipped_steps"] = int(state.skipped_steps)
        self.writer.write(step, values)
        eta = (config.total_steps - step) * seconds_per_step
        logger.info(
            "step %d/%d loss %.4f acc %.3f lr %.2e %.1f ex/s eta %s",
            step,
            config.total_steps,
            values["loss"],
            values["accuracy"],
            values["learning_rate"],
            values["examples_per_second"],
            _duration(eta),
        )
        return False


class EvalHook(Hook):
    """``eval_fn`` every ``eval_every`` steps, its metrics to ``writer`` as ``eval/...``.

    With ``early_stopping``, every result goes to it: each new best is exported, the starting
    point of a fresh run is evaluated too (fine-tuning may only make it worse), and the run
    stops once it says so; a rerun of a stopped run trains no further.
    """

    stop_reason = "early_stopped"

    def __init__(
        self,
        config: TrainConfig,
        eval_fn: EvalFn,
        writer: MetricsWriter,
        early_stopping: EarlyStopping | None,
        export: RunExport,
    ) -> None:
        self.config, self.eval_fn, self.writer = config, eval_fn, writer
        self.early_stopping, self.export = early_stopping, export

    def on_start(self, state: TrainState) -> bool:
        if self.early_stopping is None:
            return False
        start = int(state.step)
        self.early_stopping.attach(self.export.workdir, start)
        if start == 0 and not self.early_stopping.history:
            self._evaluate(state, 0)
        return self.early_stopping.stopped

    def after_step(self, step: int, state: TrainState, metrics: Metrics, batch: Batch) -> bool:
        if not self.config.eval_every or step % self.config.eval_every:
            return False
        return self._evaluate(state, step)

    def _evaluate(self, state: TrainState, step: int) -> bool:
        """Evaluate, log, and export a new best; True when early stopping says stop."""
        eval_metrics = self.eval_fn(state.params, step)
        self.writer.write(step, {f"eval/{k}": v for k, v in eval_metrics.items()})
        stopper = self.early_stopping
        if stopper is None:
            return False
        stop = stopper.update(step, eval_metrics, state.params)
        best = stopper.best
        if best is not None and best["step"] == step:
            self.export(state, stopper.selection())
        if stop and best is not None:
            logger.info(
                "early stop at step %d: best %s %.4f at step %d",
                step,
                stopper.metric,
                best["value"],
                best["step"],
            )
        return stop


class SignalHook(Hook):
    """Stops the run at the next step after SIGTERM (TPU VM preemption); a context manager
    that holds the handler (outside the main thread it handles nothing)."""

    stop_reason = "signal"

    def __init__(self) -> None:
        self.signalled = False
        self._previous: Any = None

    def __enter__(self) -> SignalHook:
        try:
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not in the main thread
            self._previous = None
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        del frame
        logger.warning("received signal %d: checkpointing and stopping", signum)
        self.signalled = True

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)

    def after_step(self, step: int, state: TrainState, metrics: Metrics, batch: Batch) -> bool:
        return self.signalled


class CheckpointHook(Hook):
    """Saves every ``checkpoint_every`` steps and at the last, and where a hook stops the run.

    A run that ends other than by a signal is then checked for its share of skipped steps,
    and, unless ``early_stopping`` exported a best step, its last step is exported.
    """

    def __init__(
        self,
        config: TrainConfig,
        checkpointer: Checkpointer,
        export: RunExport,
        early_stopping: EarlyStopping | None,
    ) -> None:
        self.config, self.checkpointer = config, checkpointer
        self.export, self.early_stopping = export, early_stopping

    def after_step(self, step: int, state: TrainState, metrics: Metrics, batch: Batch) -> bool:
        if step % self.config.checkpoint_every == 0 or step == self.config.total_steps:
            _save(self.checkpointer, state, "periodic", self.config.seed)
        return False

    def on_end(self, state: TrainState, stop_reason: str | None) -> None:
        if stop_reason is not None:
            _save(self.checkpointer, state, stop_reason, self.config.seed)
        if stop_reason == SignalHook.stop_reason:
            return
        _check_skipped_share(state, self.config, self.checkpointer.directory)
        if self.early_stopping is None or self.early_stopping.best is None:
            self.export(state, None)
