"""``gecko-train``: gin-configured training, t5x style.

    gecko-train --gin_file=gin_configs/runs/tiny.gin --workdir=/tmp/run \
        --gin_param="TrainConfig.total_steps = 20"

Gin lives here and in ``gin_configs/``; the library underneath takes plain dataclasses.
Gin files may ``import`` other modules (e.g. the seqio tasks) to reach their configurables.
The operative config is written to ``WORKDIR/operative_config.gin``. Progress goes to the
console; a run that diverges exits with status 3, one whose checkpoints all fail to restore
with status 4, each after a one-line error; a path no filesystem can reach (the workdir,
``init_from``) is a usage error (status 2). Paths may be URLs (``--workdir=gs://bucket/run``): see
``gecko_jax.core.paths``.
"""

from __future__ import annotations

import argparse
import functools
import logging
from collections.abc import Callable
from typing import Any

import gin
import jax

from gecko_jax.cli.gin_files import GinFileError, parse_gin
from gecko_jax.core.assets import minilm_path
from gecko_jax.core.partitioning import MeshConfig, initialize_distributed
from gecko_jax.core.paths import PathError, make_dir
from gecko_jax.evaluation.during_training import TrainingEvaluation
from gecko_jax.model_io.checkpoints import CheckpointRestoreError
from gecko_jax.models.config import DualEncoderConfig
from gecko_jax.models.named_configs import get_named_config
from gecko_jax.training import run_model
from gecko_jax.training.config import TrainConfig
from gecko_jax.training.early_stopping import EarlyStopping
from gecko_jax.training.hooks import EXIT_DIVERGED, TrainingDivergedError
from gecko_jax.training.trainer import BatchFn, train
from tasks.array_input import ArrayBatcher, random_token_features

logger = logging.getLogger("gecko_jax.train")

EXIT_NO_RESTORABLE_CHECKPOINT = 4

gin.external_configurable(TrainConfig, module="gecko")
gin.external_configurable(minilm_path, module="gecko")
gin.external_configurable(MeshConfig, module="gecko")
gin.external_configurable(TrainingEvaluation, module="gecko")


@gin.configurable(module="gecko")
def model_config(name: str = gin.REQUIRED, **overrides: Any) -> DualEncoderConfig:
    """A named model config (``minilm_l6``, ``gecko_1b``, ...) with field overrides."""
    base = get_named_config(name).to_dict()
    return DualEncoderConfig.from_dict({**base, **overrides})


@gin.configurable(module="gecko")
def synthetic_batcher(
    global_batch_size: int,
    seed: int,
    process_index: int,
    process_count: int,
    vocab_size: int = 1000,
    query_length: int = 16,
    passage_length: int = 32,
    num_examples: int = 512,
) -> BatchFn:
    """Random token triples: for smoke runs of the machinery, not for learning anything."""
    features = random_token_features(
        num_examples, query_length, passage_length, vocab_size, seed=seed
    )
    return ArrayBatcher(features, global_batch_size, seed, process_index, process_count)


@gin.configurable(module="gecko")
def run(
    workdir: str,
    config: TrainConfig = gin.REQUIRED,
    batcher: Callable[..., BatchFn] = gin.REQUIRED,
    evaluation: TrainingEvaluation | None = None,
) -> None:
    """Train; with ``evaluation`` (``@gecko.TrainingEvaluation()``), run its suite tasks every
    ``gecko.TrainConfig.eval_every`` steps and, with its ``select_metric``, export the best."""
    eval_fn, selection = None, None
    if evaluation is not None:
        if not config.eval_every:
            raise ValueError("gecko.TrainingEvaluation needs gecko.TrainConfig.eval_every > 0")
        run = run_model.run_model_for(workdir, config)
        eval_fn = evaluation.hook(functools.partial(run_model.run_encoder, run))
        if evaluation.select_metric is not None:
            selection = EarlyStopping(
                evaluation.select_metric, evaluation.patience, mode=evaluation.select_mode
            )
    batch_fn = batcher(
        global_batch_size=config.global_batch_size,
        seed=config.seed,
        process_index=jax.process_index(),
        process_count=jax.process_count(),
    )
    if jax.process_index() == 0:
        (make_dir(workdir) / "operative_config.gin").write_text(gin.operative_config_str())
    result = train(config, batch_fn, workdir, eval_fn=eval_fn, early_stopping=selection)
    if result.stopped_by_signal:
        logger.warning(
            "stopped by signal at step %d; rerun the same command to resume", int(result.state.step)
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gecko-train", description=__doc__.splitlines()[0])
    parser.add_argument("--gin_file", action="append", default=[], required=True)
    parser.add_argument("--gin_param", action="append", default=[])
    parser.add_argument("--gin_search_path", action="append", default=[])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--coordinator_address", help="multi-host: host:port of process 0")
    parser.add_argument("--num_processes", type=int)
    parser.add_argument("--process_id", type=int)
    parser.add_argument("--cpu_collectives", help='e.g. "gloo" for multi-process CPU runs')
    return parser


def configure_logging() -> None:
    """Our INFO lines on the console, other libraries' from WARNING up.

    Importing orbax already gave the root logger a handler, which makes a plain
    ``basicConfig`` a no-op, and left it at WARNING, which hid every progress line.
    """
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s", force=True
    )
    logging.getLogger("gecko_jax").setLevel(logging.INFO)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging()
    if args.coordinator_address or args.num_processes:
        initialize_distributed(
            args.coordinator_address, args.num_processes, args.process_id, args.cpu_collectives
        )
    try:
        parse_gin(args.gin_file, args.gin_param, args.gin_search_path)
        _build_train_config()
        make_dir(args.workdir)  # an unreachable workdir stops the run before any work
    except (GinFileError, PathError) as error:
        parser.error(str(error))
    except (TypeError, ValueError) as error:  # a setting TrainConfig refuses
        parser.error(_first_line(error))
    try:
        run(workdir=args.workdir)
    except TrainingDivergedError as error:
        logger.error("training diverged: %s", _first_line(error))
        return EXIT_DIVERGED
    except CheckpointRestoreError as error:
        logger.error("cannot start: %s", _first_line(error))
        return EXIT_NO_RESTORABLE_CHECKPOINT
    except PathError as error:  # e.g. an init_from the filesystem cannot reach
        parser.error(f"cannot start: {_first_line(error)}")
    return 0


def _build_train_config() -> None:
    """Build the run's TrainConfig as gin will for ``gecko.run`` (scopes included), so a value
    of the wrong type or range is a usage error before any model loads."""
    try:
        reference = gin.query_parameter("gecko.run.config")
    except ValueError:  # not bound: run() names what is missing
        return
    if isinstance(reference, gin.config.ConfigurableReference) and reference.evaluate:
        reference.scoped_configurable_fn()


def _first_line(error: Exception) -> str:
    """The message without the "In call to configurable ..." line gin appends to it."""
    return str(error).partition("\n")[0]


if __name__ == "__main__":
    raise SystemExit(main())
