"""``gecko-fret generate|mine|all --passages FILE.jsonl --out DIR``: build a FRet data set."""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence

from gecko_jax.fret.fusion import NEGATIVE_CHOICES
from gecko_jax.fret.generate import GenerateConfig
from gecko_jax.fret.mine import MineConfig
from gecko_jax.fret.pipeline import STAGES, run_fret


def _default_llm() -> str:
    from gecko_jax.assets import smollm2_gguf_path

    return "jax:" + str(smollm2_gguf_path())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gecko-fret", description=__doc__)
    parser.add_argument("stage", choices=(*STAGES, "all"))
    parser.add_argument("--passages", required=True, help="JSONL of {id, title, text}")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--llm", default=None, help="LLM spec (default: jax:<SmolLM2 GGUF>)")
    parser.add_argument("--encoder", default=None, help="encoder folder (default: MiniLM)")
    parser.add_argument("--num-candidates", type=int, default=MineConfig.num_candidates)
    parser.add_argument("--max-passages", type=int, default=None)
    parser.add_argument("--max-chars", type=int, default=2000)
    parser.add_argument("--max-tokens", type=int, default=GenerateConfig.max_tokens)
    parser.add_argument("--max-overlap", type=float, default=None)
    parser.add_argument("--negative", choices=NEGATIVE_CHOICES, default=MineConfig.negative)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    manifest = run_fret(
        args.passages,
        args.out,
        args.llm or _default_llm(),
        encoder=args.encoder,
        stages=STAGES if args.stage == "all" else (args.stage,),
        max_passages=args.max_passages,
        max_chars=args.max_chars,
        generate_config=GenerateConfig(
            max_tokens=args.max_tokens, seed=args.seed, max_overlap=args.max_overlap
        ),
        mine_config=MineConfig(
            num_candidates=args.num_candidates, negative=args.negative, seed=args.seed
        ),
    )
    print(json.dumps({k: manifest.get(k) for k in ("passages", "generate", "mine")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
