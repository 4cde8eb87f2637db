"""``gecko-fret generate|mine|all --passages FILE.jsonl --out DIR``: build a FRet data set.

``--passages wiki:N`` takes the first N bundled Wikipedia extracts (by id) instead of a file.
Settings come from gin and flags as for ``gecko-fret-beam`` (:mod:`gecko_jax.cli.fret_flags`).

Exit statuses (:mod:`gecko_jax.core.stages`): 0 done; 2 usage error or no usable input; 5 more LLM
calls failed than ``--max_failed_share`` (rerun to retry them); 6 an output in ``--out`` was made
from other inputs (``--restart`` makes it again); 7 another run writes into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence

from gecko_jax.cli.fret_flags import add_fret_flags, fret_settings
from gecko_jax.core.paths import PathError, staged_folder
from gecko_jax.core.stages import LOCK_NAME, StageError
from gecko_jax.fret.pipeline import STAGES, run_fret

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gecko-fret", description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=(*STAGES, "all"))
    add_fret_flags(
        parser,
        passages_arg,
        "JSONL of {id, title, text}, or wiki:N for N bundled Wikipedia extracts",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    run, generate_config, mine_config = fret_settings(parser, args)
    try:
        # A bucket --out is worked on locally (the LLM cache is appended to, line by line) and
        # mirrored back after each stage: a run on another machine resumes from those stages.
        with staged_folder(args.out, skip=frozenset({LOCK_NAME})) as (out, sync):
            manifest = run_fret(
                args.passages,
                out,
                run.llm,
                encoder=run.encoder,
                stages=STAGES if args.stage == "all" else (args.stage,),
                max_passages=run.max_passages,
                max_chars=run.max_chars,
                generate_config=generate_config,
                mine_config=mine_config,
                llm_kwargs=run.llm_kwargs,
                restart=args.restart,
                max_failed_share=run.max_failed_share,
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
