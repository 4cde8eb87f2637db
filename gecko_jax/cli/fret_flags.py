"""The settings of a FRet run, from gin and the command line alike for ``gecko-fret`` and
``gecko-fret-beam``.

Gin (``--gin_file gin_configs/fret/...``, ``--gin_param``) binds ``gecko.fret_run`` (the run
settings), ``gecko.GenerateConfig`` and ``gecko.MineConfig``; a flag given on the command line
overrides its binding. ``--seed`` sets both configs' seed. ``--llm_arg KEY=VALUE`` (repeatable)
sets one argument of the LLM backend's constructor on top of ``gecko.fret_run.llm_kwargs``.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import gin

from gecko_jax.cli.gin_files import GinFileError, parse_gin
from gecko_jax.cli.llm_flags import add_llm_arg, check_llm_args, share
from gecko_jax.core.assets import smollm2_llm_spec
from gecko_jax.core.stages import MAX_FAILED_SHARE, RESTART_FLAG
from gecko_jax.fret.fusion import FUSION_MEMBERS, LLM_SCORERS, NEGATIVE_CHOICES
from gecko_jax.fret.generate import GenerateConfig
from gecko_jax.fret.guards import RELABEL_GUARDS
from gecko_jax.fret.mine import SCORING, MineConfig
from gecko_jax.fret.run_settings import RunSettings

# The gin-configured versions: calling these, not the plain classes, applies the bindings.
_gin_run_settings = gin.external_configurable(RunSettings, name="fret_run", module="gecko")
_gin_generate_config = gin.external_configurable(GenerateConfig, module="gecko")
_gin_mine_config = gin.external_configurable(MineConfig, module="gecko")


class FretSettings(NamedTuple):
    """Everything a run is set up with; ``run.llm`` is a spec, never None."""

    run: RunSettings
    generate: GenerateConfig
    mine: MineConfig


def positive_int(value: str) -> int:
    """A count flag: a whole number >= 1 (``--max_passages -2`` once kept one passage)."""
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value!r}")
    return number


def fusion_members(value: str) -> tuple[str, ...]:
    return tuple(member.strip() for member in value.split(","))


# Each flag's setting, by the config it belongs to (the flag is ``--`` and the field's name).
RUN_FLAGS: dict[str, dict[str, Any]] = {
    "llm": {"help": "LLM spec (default: jax:<SmolLM2 GGUF>)"},
    "encoder": {"help": "encoder folder (default: MiniLM)"},
    "max_passages": {"type": positive_int},
    "max_chars": {"type": int},
    "max_failed_share": {
        "type": share,
        "help": f"share of a stage's LLM calls that may fail (default {MAX_FAILED_SHARE})",
    },
}
GENERATE_FLAGS: dict[str, dict[str, Any]] = {
    "max_tokens": {"type": int},
    "temperature": {"type": float},
    "max_overlap": {"type": float},
}
MINE_FLAGS: dict[str, dict[str, Any]] = {
    "num_candidates": {"type": int},
    "rrf_k": {"type": float},
    "negative": {"choices": NEGATIVE_CHOICES},
    "k_th": {"type": int},
    "scoring": {"choices": SCORING},
    "fusion": {
        "type": fusion_members,
        "help": f"comma-separated RRF members from {','.join(FUSION_MEMBERS)}",
    },
    "round_trip_k": {"type": int},
    "relabel_guard": {"choices": RELABEL_GUARDS},
    "relabel_margin": {"type": float},
    "negative_fusion": {
        "type": fusion_members,
        "help": "comma-separated RRF members ordering the hard negatives (default: --fusion's)",
    },
    "false_negative_margin": {"type": float},
    "false_negative_scorers": {
        "type": fusion_members,
        "help": "comma-separated LLM scorers of the false-negative guard, from "
        + ",".join(LLM_SCORERS),
    },
}


def add_fret_flags(
    parser: argparse.ArgumentParser,
    passages: Callable[[str], Any] = str,
    passages_help: str = "JSONL of {id, title, text}",
) -> None:
    """The flags both runners take; ``passages`` reads ``--passages``."""
    parser.add_argument("--passages", required=True, type=passages, help=passages_help)
    parser.add_argument("--out", required=True, help="output folder (or a URL: gs://...)")
    add_llm_arg(parser)
    for name, options in (RUN_FLAGS | GENERATE_FLAGS | MINE_FLAGS).items():
        parser.add_argument("--" + name, **options)
    parser.add_argument("--seed", type=int, help="the seed of generation and mining")
    parser.add_argument(
        RESTART_FLAG,
        action="store_true",
        help="make again the outputs in --out that were made from other inputs",
    )
    parser.add_argument("--gin_file", action="append", default=[], help="gin file(s)")
    parser.add_argument("--gin_param", action="append", default=[], help="gin binding(s)")


def _flag_bindings(args: argparse.Namespace) -> list[str]:
    """Each flag given on the command line as a gin binding, parsed after the files' (so
    ``--llm`` also fills a ``%gin.REQUIRED`` LLM)."""
    sections = {
        "fret_run": list(RUN_FLAGS),
        "GenerateConfig": [*GENERATE_FLAGS, "seed"],
        "MineConfig": [*MINE_FLAGS, "seed"],
    }
    return [
        f"gecko.{configurable}.{name} = {getattr(args, name)!r}"
        for configurable, names in sections.items()
        for name in names
        if getattr(args, name) is not None
    ]


def fret_settings(parser: argparse.ArgumentParser, args: argparse.Namespace) -> FretSettings:
    """The gin bindings with the given flags on top. A bad gin file or value, a config that
    refuses its values or an LLM setting its backend does not take is a usage error (exit 2)
    before any work."""
    gin.clear_config()  # a process may build settings twice (a resumed run, tests)
    with gin.unlock_config():
        try:
            parse_gin(args.gin_file, [*args.gin_param, *_flag_bindings(args)])
            run = _gin_run_settings()
            generate, mine = _gin_generate_config(), _gin_mine_config()
        except (GinFileError, TypeError, ValueError) as error:
            parser.error(str(error))
    llm = run.llm or smollm2_llm_spec()
    llm_kwargs = dict(run.llm_kwargs) | dict(args.llm_arg)
    check_llm_args(parser, llm, llm_kwargs)
    return FretSettings(dataclasses.replace(run, llm=llm, llm_kwargs=llm_kwargs), generate, mine)
