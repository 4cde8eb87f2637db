"""Orbax checkpoints of the train state plus a JSON record of the run (async, keep-N).

Resume contract (``gecko_jax.training.trainer.restore_or_init``):
1. the newest checkpoint in ``WORKDIR/checkpoints`` that restores, straight into its
   shardings. A newer one that fails (a truncated file, deleted metadata) is reported by step
   and cause, then moved to ``WORKDIR/checkpoints_damaged`` so the run can save that step anew;
2. else params-only initialisation from ``init_from`` (our export, a Hugging Face /
   sentence-transformers folder, or another run's workdir);
3. else a fresh initialisation from the seed.
The data position is the state's ``step``: inputs are a pure function of (seed, step).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

import jax
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils

from gecko_jax.core.paths import PathLike, as_path

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
DAMAGED_DIR = "checkpoints_damaged"
_MAX_CAUSE_CHARS = 300


class CheckpointRestoreError(RuntimeError):
    """Checkpoints exist, but none of them restores."""


@dataclasses.dataclass(frozen=True)
class Restored:
    step: int
    state: Any
    meta: dict[str, Any]
    damaged: tuple[int, ...]  # newer steps that failed to restore, newest first


def describe_failure(error: BaseException) -> str:
    """One short line for a log, from the root of the exception chain: orbax wraps a
    tensorstore error ("byte range not valid" in a named file) in one that prints its spec."""
    seen = {id(error)}
    while (inner := error.__cause__ or error.__context__) is not None and id(inner) not in seen:
        seen.add(id(inner))
        error = inner
    lines = str(error).strip().splitlines()
    text = f"{type(error).__name__}: {lines[0] if lines else ''}"
    return text if len(text) <= _MAX_CAUSE_CHARS else text[: _MAX_CAUSE_CHARS - 3] + "..."


class Checkpointer:
    def __init__(self, workdir: PathLike, keep: int = 3, async_save: bool = True):
        self.directory = as_path(workdir) / CHECKPOINT_DIR
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=True, enable_async_checkpointing=async_save
        )
        self._manager = ocp.CheckpointManager(
            self.directory, options=options, item_names=("state", "meta")
        )

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def save(self, step: int, state: Any, meta: dict[str, Any]) -> None:
        """Start saving (returns before the write finishes when async)."""
        if step in self._manager.all_steps():
            return
        args = ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))
        self._manager.save(step, args=args, force=True)
        logger.info("checkpoint for step %d started in %s", step, self.directory)

    def restore(self, step: int, abstract_state: Any) -> tuple[Any, dict[str, Any]]:
        restored = self._manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()
            ),
        )
        return restored.state, restored.meta

    def restore_params(self, step: int, abstract_params: Any) -> tuple[Any, dict[str, Any]]:
        """Only the state's ``params`` (a partial restore): a model loaded from a run reads
        neither the optimiser state nor the training config that shapes it."""
        target = {"params": abstract_params}
        restored = self._manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.PyTreeRestore(
                    item=target,
                    restore_args=ocp.checkpoint_utils.construct_restore_args(target),
                    partial_restore=True,
                ),
                meta=ocp.args.JsonRestore(),
            ),
        )
        return restored.state["params"], restored.meta

    def restore_newest_intact(
        self, abstract_state: Any, *, params_only: bool = False
    ) -> Restored | None:
        """The newest checkpoint that restores, trying older ones after each failure.

        None when there is no checkpoint; :class:`CheckpointRestoreError` when none restores.
        A damaged file surfaces as any of several orbax, tensorstore or JSON errors, so every
        exception counts as "this step does not restore". With ``params_only``,
        ``abstract_state`` is the params tree and only the params are restored.
        """
        restore = self.restore_params if params_only else self.restore
        failures: dict[int, str] = {}
        for step in sorted(self._manager.all_steps(), reverse=True):
            try:
                state, meta = restore(step, abstract_state)
            except Exception as error:  # reported, then the next older step is tried
                failures[step] = describe_failure(error)
                logger.warning("checkpoint at step %d does not restore (%s)", step, failures[step])
                continue
            return Restored(step, state, meta, tuple(failures))
        if failures:
            causes = "; ".join(f"step {step}: {cause}" for step, cause in failures.items())
            raise CheckpointRestoreError(f"no checkpoint in {self.directory} restores: {causes}")
        return None

    def set_aside(self, steps: tuple[int, ...]) -> None:
        """Move damaged steps out of the manager's sight, kept for inspection.

        Left in place, a damaged step would block saving that step again and would be tried
        first on every restart. Every process must call this; process 0 moves the files.
        """
        if not steps:
            return
        _sync_processes("gecko_jax_set_aside_start")
        if jax.process_index() == 0:
            target = self.directory.with_name(DAMAGED_DIR)
            target.mkdir(exist_ok=True)
            stamp = time.strftime("%Y%m%dT%H%M%S")
            for step in steps:
                destination = target / f"{step}-{stamp}"
                (self.directory / str(step)).rename(destination)
                logger.warning("moved the damaged checkpoint of step %d to %s", step, destination)
        _sync_processes("gecko_jax_set_aside_done")
        self._manager.reload()

    def wait(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()


def _sync_processes(name: str) -> None:
    """A barrier across hosts, so no host reads a step while process 0 moves it."""
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)
