"""``gecko-ablate``: the paper's ablations, rerun on a finished demo's FRet data.

    gecko-jax demo --out demo_out
    gecko-ablate --gin_file=gin_configs/ablations/all.gin --demo demo_out --out ablations_out

The gin files bind ``gecko.AblationPlan`` (cells and seeds) and one scoped
``gecko.AblationCell`` per setting (``gin_configs/ablations/cells.gin``). A rerun of the same
command resumes: finished (cell, seed) runs are read back, unfinished ones continue from their
checkpoints. Exit statuses: those of ``gecko-fret`` (:mod:`gecko_jax.core.stages`; 6 when a run in
``--out`` was made from another demo or plan, which ``--restart`` makes again).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

import gin

from gecko_jax.cli.gin_files import GinFileError, parse_gin
from gecko_jax.core.stages import RESTART_FLAG, StageError
from gecko_jax.recipes.ablations.cells import AblationCell, AblationPlan

_configurable_plan = gin.external_configurable(AblationPlan, module="gecko")
gin.external_configurable(AblationCell, module="gecko")


def load_plan(gin_files: Sequence[str], gin_params: Sequence[str] = ()) -> AblationPlan:
    """The plan the gin files and bindings describe. Gin is left unlocked, as it was, so a
    notebook or test that loads a plan can still import modules that register configurables."""
    gin.clear_config()
    with gin.unlock_config():
        parse_gin(gin_files, gin_params)
        return _configurable_plan()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gecko-ablate", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--gin_file", action="append", required=True, help="gin_configs/ablations/*.gin"
    )
    parser.add_argument(
        "--gin_param", action="append", default=[], help="e.g. gecko.AblationPlan.seeds=(0,)"
    )
    parser.add_argument("--demo", default="demo_out", help="a finished `gecko-jax demo` folder")
    parser.add_argument("--out", default="ablations_out", help="output folder; a rerun resumes")
    parser.add_argument(
        RESTART_FLAG,
        action="store_true",
        help="make again the runs in --out that were made from another demo or plan",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    from gecko_jax.recipes.ablations.runner import run_ablations

    try:
        plan = load_plan(args.gin_file, args.gin_param)
    except (GinFileError, TypeError, ValueError) as error:  # a bad file or value
        parser.error(str(error))
    try:
        run_ablations(plan, args.demo, args.out, restart=args.restart)
    except StageError as error:
        logging.getLogger("gecko-ablate").error("%s", error)
        return error.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
