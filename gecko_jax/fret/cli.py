"""``gecko-fret generate|mine|all --passages FILE.jsonl --out DIR``: build a FRet data set.

``--passages wiki:N`` takes the first N bundled Wikipedia extracts (by id) instead of a file.

Settings come from gin (``--gin_file gin_configs/fret/...``, ``--gin_param``) bound to
``gecko.GenerateConfig``, ``gecko.MineConfig`` and ``gecko.fret_run``; flags given on the
command line override them. ``--llm_arg KEY=VALUE`` (repeatable) sets one argument of the LLM
backend's constructor, e.g. ``--llm_arg batch_size=8`` for ``jax:``.

Exit statuses (:mod:`gecko_jax.stages`): 0 done; 2 usage error or no usable input; 5 more LLM
calls failed than ``--max-failed-share`` (rerun to retry them); 6 an output in ``--out`` was made
from other inputs (``--restart`` makes it again); 7 another run writes into ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import gin

from gecko_jax.assets import smollm2_llm_spec
from gecko_jax.fret.fusion import NEGATIVE_CHOICES
from gecko_jax.fret.generate import GenerateConfig
from gecko_jax.fret.llm_flags import add_llm_arg, check_llm_args, share
from gecko_jax.fret.mine import MineConfig
from gecko_jax.fret.pipeline import STAGES, run_fret
from gecko_jax.gin_files import GinFileError, parse_gin
from gecko_jax.paths import PathError, staged_folder
from gecko_jax.stages import LOCK_NAME, MAX_FAILED_SHARE, RESTART_FLAG, StageError

# The gin-configured versions: calling these, not the plain classes, applies the bindings.
_gin_generate_config = gin.external_configurable(GenerateConfig, module="gecko")
_gin_mine_config = gin.external_configurable(MineConfig, module="gecko")


@gin.configurable(module="gecko")
def fret_run(
    llm: str | None = None,
    encoder: str | None = None,
    max_passages: int | None = None,
    max_chars: int = 2000,
    llm_kwargs: Mapping[str, Any] | None = None,
    max_failed_share: float = MAX_FAILED_SHARE,
) -> dict[str, Any]:
    """Run-level settings (``None`` LLM: the offline SmolLM2; ``None`` encoder: MiniLM;
    ``llm_kwargs``: the LLM backend's constructor arguments, which ``--llm_arg`` extends;
    ``max_failed_share``: the share of a stage's LLM calls that may fail)."""
    return {
        "llm": llm,
        "encoder": encoder,
        "max_passages": max_passages,
        "max_chars": max_chars,
        "llm_kwargs": dict(llm_kwargs or {}),
        "max_failed_share": max_failed_share,
    }


WIKI_PREFIX = "wiki:"


def passages_arg(value: str) -> str | list[dict[str, str]]:
    """A JSONL path, or ``wiki:N``: the first N bundled Wikipedia extracts as passages."""
    if not value.startswith(WIKI_PREFIX):
        return value
    from gecko_jax.data.wiki_extracts import load_wiki_extracts

    count = value.removeprefix(WIKI_PREFIX)
    if not count.isdigit() or int(count) < 1:
        raise argparse.ArgumentTypeError(f"expected wiki:N with N >= 1, got {value!r}")
    articles = sorted(load_wiki_extracts(), key=lambda a: a.id)[: int(count)]
    return [{"id": a.id, "title": a.title, "text": a.text} for a in articles]


def positive_int(value: str) -> int:
    """A count flag: a whole number >= 1 (``--max-passages -2`` once kept one passage)."""
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value!r}")
    return number


def _override(config: Any, **flags: Any) -> Any:
    """``config`` with the flags that were given on the command line."""
    return dataclasses.replace(config, **{k: v for k, v in flags.items() if v is not None})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gecko-fret", description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=(*STAGES, "all"))
    parser.add_argument(
        "--passages",
        required=True,
        type=passages_arg,
        help="JSONL of {id, title, text}, or wiki:N for N bundled Wikipedia extracts",
    )
    parser.add_argument("--out", required=True, help="output folder (or a URL: gs://...)")
    parser.add_argument("--llm", help="LLM spec (default: jax:<SmolLM2 GGUF>)")
    add_llm_arg(parser)
    parser.add_argument("--encoder", help="encoder folder (default: MiniLM)")
    parser.add_argument("--max-passages", type=positive_int)
    parser.add_argument("--max-chars", type=int)
    parser.add_argument("--num-candidates", type=int)
    parser.add_argument("--max-tokens", type=int)
    parser.add_argument("--temperature", type=float)
    parser.add_argument("--max-overlap", type=float)
    parser.add_argument("--negative", choices=NEGATIVE_CHOICES)
    parser.add_argument("--seed", type=int)
    parser.add_argument(
        "--max-failed-share",
        type=share,
        help=f"share of a stage's LLM calls that may fail (default {MAX_FAILED_SHARE})",
    )
    parser.add_argument(
        RESTART_FLAG,
        action="store_true",
        help="make again the outputs in --out that were made from other inputs",
    )
    parser.add_argument("--gin_file", action="append", default=[], help="gin file(s)")
    parser.add_argument("--gin_param", action="append", default=[], help="gin binding(s)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    gin.clear_config()  # main may run twice in one process (a resumed run)
    with gin.unlock_config():
        try:
            parse_gin(args.gin_file, args.gin_param)
            run = fret_run()
            generate_config, mine_config = _gin_generate_config(), _gin_mine_config()
        except (GinFileError, TypeError, ValueError) as error:  # a bad file or value
            parser.error(str(error))
    run.update(
        {k: v for k, v in vars(args).items() if k in run and v is not None},
    )
    generate_config = _override(
        generate_config,
        max_tokens=args.max_tokens,
        temperature=args.temperature,
        max_overlap=args.max_overlap,
        seed=args.seed,
    )
    mine_config = _override(
        mine_config, num_candidates=args.num_candidates, negative=args.negative, seed=args.seed
    )
    llm = run["llm"] or smollm2_llm_spec()
    llm_kwargs = run["llm_kwargs"] | dict(args.llm_arg)
    check_llm_args(parser, llm, llm_kwargs)
    try:
        # A bucket --out is worked on locally (the LLM cache is appended to, line by line) and
        # mirrored back after each stage: a run on another machine resumes from those stages.
        with staged_folder(args.out, skip=frozenset({LOCK_NAME})) as (out, sync):
            manifest = run_fret(
                args.passages,
                out,
                llm,
                encoder=run["encoder"],
                stages=STAGES if args.stage == "all" else (args.stage,),
                max_passages=run["max_passages"],
                max_chars=run["max_chars"],
                generate_config=generate_config,
                mine_config=mine_config,
                llm_kwargs=llm_kwargs,
                restart=args.restart,
                max_failed_share=run["max_failed_share"],
                after_stage=sync,
            )
    except PathError as error:
        parser.error(str(error))
    except StageError as error:
        logging.getLogger("gecko-fret").error("%s", error)
        return error.exit_code
    print(json.dumps({k: manifest.get(k) for k in ("passages", "generate", "mine")}, indent=2))
    check = manifest.get("mine", {}).get("teacher_check", {})
    if "verdict" in check:
        print(
            f"teacher check ({check['queries']} queries, P@1 against the seed): " + check["verdict"]
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
