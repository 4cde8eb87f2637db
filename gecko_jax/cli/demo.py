"""``gecko-jax``: the command-line entry point.

``gecko-jax demo`` runs the whole Gecko recipe at demo scale on CPU: FRet generation and
LLM reranking with SmolLM2 over Wikipedia seed passages (or ``--passages FILE.jsonl``),
fine-tuning all-MiniLM-L6-v2 on the result mixed with Banking77 and STS-B train data over
several seeds (scored on held-out queries), and a before/after table on STS-B, Banking77 and
Wikipedia retrieval and clustering.
Settings come from gin: the ``--gin_file`` given (by default ``gin_configs/demo/default.gin``,
which other demo gin files include), then ``--gin_param`` (``gecko.DemoConfig`` and the configs
it nests: ``gecko.GenerateConfig``, ``gecko.MineConfig``, ``gecko.FinetuneConfig``), overridden
by the flags given; a value of the wrong type is a usage error before any work. Exit statuses: those
of ``gecko-fret`` (:mod:`gecko_jax.core.stages`), and 3 when a fine-tune diverges.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import logging
from collections.abc import Sequence
from pathlib import Path

from gecko_jax.core.stages import RESTART_FLAG, StageError
from gecko_jax.data.sources import DATA_DIR_ENV, default_data_dir

DEFAULT_DEMO_GIN = "gin_configs/demo/default.gin"


@functools.cache
def _gin_demo_config():
    """``gecko.DemoConfig``, registered with gin once per process (main may run twice), with
    the configs it nests: ``gecko.FinetuneConfig`` here, ``gecko.GenerateConfig`` and
    ``gecko.MineConfig`` (and ``gecko.fret_run``, which the FRet gin files bind) by
    ``gecko_jax.cli.fret``."""
    import gin

    import gecko_jax.cli.fret  # noqa: F401  (registers the FRet configurables)
    from gecko_jax.recipes.demo import DemoConfig
    from gecko_jax.recipes.finetune import FinetuneConfig

    with gin.unlock_config():  # another gin user in this process may have locked it
        gin.external_configurable(FinetuneConfig, module="gecko")
        return gin.external_configurable(DemoConfig, module="gecko")


def _given(config, **flags):
    """``config`` with the flags that were given on the command line."""
    return dataclasses.replace(config, **{k: v for k, v in flags.items() if v is not None})


def load_demo_config(gin_files: Sequence[str] = (), gin_params: Sequence[str] = ()):
    """The ``DemoConfig`` of ``gin_files`` (none: ``gin_configs/demo/default.gin``) and
    ``gin_params``: the demo's settings for a script or notebook, as the command reads them."""
    import gin

    from gecko_jax.cli.gin_files import parse_gin

    configured = _gin_demo_config()
    gin.clear_config()
    with gin.unlock_config():
        parse_gin(gin_files or [DEFAULT_DEMO_GIN], gin_params)
        return configured()


def _demo_config(args: argparse.Namespace):
    config = load_demo_config(args.gin_file, args.gin_param)
    return _given(
        config,
        passages_file=args.passages,
        num_passages=args.num_passages,
        seeds=tuple(args.seeds) if args.seeds else None,
        finetune=_given(config.finetune, total_steps=args.steps),
        eval_limit=args.eval_limit,
        data_dir=args.data_dir or config.data_dir or default_data_dir(),
    )


def _use_compilation_cache(folder: Path) -> None:
    """Keep XLA executables on disk: each fine-tuning seed and each evaluated model builds the
    same programs again, and a resumed demo starts with them compiled."""
    import jax

    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


class _BadSetting(Exception):
    """A setting the demo's config refuses: a usage error, found before anything runs."""


def _demo(args: argparse.Namespace) -> int:
    from gecko_jax.recipes.demo import run_demo

    try:  # a bad gin file or value stops the run before anything is written
        config = _demo_config(args)
    except (TypeError, ValueError) as error:
        raise _BadSetting(str(error)) from error
    _use_compilation_cache(Path(args.out) / "jax_cache")
    run_demo(config, args.out, restart=args.restart)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gecko-jax", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="FRet + fine-tune + before/after evaluation on CPU (resumable)"
    )
    demo.add_argument("--out", default="demo_out", help="output folder; a rerun resumes it")
    demo.add_argument("--passages", help="seed passages JSONL ({id, title, text} per line)")
    demo.add_argument("--num_passages", type=int, help="how many seed passages to use")
    demo.add_argument("--seeds", type=int, nargs="+", help="fine-tuning seeds")
    demo.add_argument("--steps", type=int, help="fine-tuning steps per seed (total_steps)")
    demo.add_argument("--eval_limit", type=int, help="examples per evaluation task")
    demo.add_argument(
        "--data_dir", help=f"folder with stsbenchmark/ and banking77/ (default ${DATA_DIR_ENV})"
    )
    demo.add_argument(
        RESTART_FLAG,
        action="store_true",
        help="make again the outputs in --out that were made from other inputs or settings",
    )
    demo.add_argument(
        "--gin_file",
        action="append",
        default=[],
        help=f"gin file(s); default {DEFAULT_DEMO_GIN}, which a demo gin file includes",
    )
    demo.add_argument(
        "--gin_param", action="append", default=[], help="e.g. gecko.FinetuneConfig.total_steps=40"
    )
    demo.set_defaults(run=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # The fine-tuning progress lines (step, loss, held-out metric, early stop) are INFO.
    for name in ("gecko_jax.training.trainer", "gecko_jax.training.hooks", "gecko_jax.recipes"):
        logging.getLogger(name).setLevel(logging.INFO)
    parser = build_parser()
    args = parser.parse_args(argv)
    from gecko_jax.cli.gin_files import GinFileError
    from gecko_jax.training.hooks import EXIT_DIVERGED, TrainingDivergedError

    try:
        return args.run(args)
    except (GinFileError, _BadSetting) as error:
        parser.error(str(error))
    except StageError as error:  # one line and its exit status, no traceback
        logging.getLogger(__name__).error("%s", error)
        return error.exit_code
    except TrainingDivergedError as error:  # gecko-train's exit status and one line, no trace
        logging.getLogger(__name__).error("fine-tuning diverged: %s", error)
        return EXIT_DIVERGED


if __name__ == "__main__":
    raise SystemExit(main())
