"""``gecko-fret-beam``: FRet as an Apache Beam pipeline (:mod:`gecko_jax.fret.beam.pipeline`).

It takes ``gecko-fret``'s gin and flags (:mod:`gecko_jax.cli.fret_flags`) plus the Beam
runner's own options; options it does not know go to Beam (``--runner``, ``--project``, ...).
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence

from gecko_jax.cli.fret_flags import add_fret_flags, fret_settings, positive_int
from gecko_jax.core.assets import minilm_path
from gecko_jax.core.stages import StageError
from gecko_jax.fret.beam.pipeline import BeamFretConfig, run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gecko-fret-beam",
        description="Build a FRet data set with Apache Beam. Options not listed here go to Beam "
        "(--runner: DirectRunner by default; DataflowRunner, FlinkRunner, SparkRunner, ...).",
    )
    add_fret_flags(parser)
    parser.add_argument(
        "--retrieval_shards", type=positive_int, default=BeamFretConfig.retrieval_shards
    )
    parser.add_argument("--output_shards", type=positive_int, default=BeamFretConfig.output_shards)
    parser.add_argument(
        "--share_models",
        action="store_true",
        help="one copy of each model per worker machine, not per SDK process (GPU/TPU workers)",
    )
    return parser


def beam_config(parser: argparse.ArgumentParser, args: argparse.Namespace) -> BeamFretConfig:
    """The run's config: the FRet settings both runners build, and the Beam options."""
    run, generate, mine = fret_settings(parser, args)
    return BeamFretConfig(
        passages=args.passages,
        out_dir=args.out,
        llm=run.llm,
        encoder=run.encoder or str(minilm_path()),
        llm_kwargs=run.llm_kwargs,
        max_passages=run.max_passages,
        max_chars=run.max_chars,
        generate=generate,
        mine=mine,
        retrieval_shards=args.retrieval_shards,
        share_models=args.share_models,
        output_shards=args.output_shards,
        max_failed_share=run.max_failed_share,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, pipeline_args = parser.parse_known_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config = beam_config(parser, args)
    try:
        out = run(config, pipeline_args, restart=args.restart)
    except StageError as error:
        logging.getLogger("gecko-fret-beam").error("%s", error)
        return error.exit_code
    print(json.dumps({k: out.get(k) for k in ("passages", "generate", "mine")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
