"""The teacher table of benchmarks/RESULTS.md: ``gecko-rerank-eval`` over the settings it reports.

    python benchmarks/teacher_eval.py --out teacher_runs [--queries 60] [--heldout 64]

Runs, each into its own folder and skipped when its ``results.json`` exists (so a killed run
resumes; LLM calls are cached per data set and scoring, so N = 10 and 3 reuse N = 20's calls):

- ``wiki``: the demo's Wikipedia description -> article evaluation set, joint scoring, N = 10,
  3, 20; then separate scoring at N = 10;
- ``heldout``: FRet queries written by the demo's LLM and prompts for the demo's own seed
  passages (drawn as the demo draws them, all held out), each judged by its seed, joint
  scoring, N = 10, 3, 20.

Passages are cut to the demo's 450 characters. Prints each table; ``--table`` prints the
finished runs as one markdown table; ``guard_table.py`` reads the per-query files to compare
relabel guards.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from gecko_jax.cli import rerank_eval as teacher_cli
from gecko_jax.cli.demo import load_demo_config
from gecko_jax.core.assets import smollm2_llm_spec
from gecko_jax.fret.generate import GenerateConfig
from gecko_jax.fret.pipeline import run_fret
from gecko_jax.fret.records import write_jsonl
from gecko_jax.fret.teacher import METHODS
from gecko_jax.recipes.demo.corpus import MAX_PASSAGE_CHARS, wiki_seed_passages
from gecko_jax.recipes.eval_sets import eval_sets, eval_texts_of


def heldout_folder(out: Path, count: int, corpus_seed: int) -> Path:
    """A demo-layout folder whose every seed passage is held out, with generated queries."""
    folder = out / "heldout_data"
    if (folder / "fret" / "generated.jsonl").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    config = load_demo_config()
    exclude = eval_texts_of(
        eval_sets(config.eval_tasks, config.data_dir, config.eval_limit, config.eval_seed)
    )
    passages = wiki_seed_passages(count, exclude, corpus_seed, MAX_PASSAGE_CHARS)
    write_jsonl(folder / "passages.jsonl", [p.to_json() for p in passages])
    ids = [p.id for p in passages]
    (folder / "splits.json").write_text(json.dumps({"train": [], "heldout": ids}))
    run_fret(
        [p.to_json() for p in passages],
        folder / "fret",
        smollm2_llm_spec(),
        stages=("generate",),
        max_chars=MAX_PASSAGE_CHARS,
        generate_config=GenerateConfig(max_tokens=config.generate.max_tokens),
    )
    return folder


def evaluate(out: Path, name: str, data: str, n: int, scoring: str, queries: int) -> None:
    run = out / f"{name}_{scoring}_n{n}"
    if (run / "results.json").exists():
        print(f"{run.name}: done before")
        return
    print(f"== {run.name}", flush=True)
    argv = ["--data", data, "--out", str(run), "--num_candidates", str(n), "--scoring", scoring]
    argv += ["--max_queries", str(queries), "--max_chars", str(MAX_PASSAGE_CHARS)]
    argv += ["--llm_cache", str(out / f"llm_cache_{name}_{scoring}.jsonl")]
    teacher_cli.main(argv)


def markdown(out: Path) -> str:
    """One table row per (run, ranking): the teacher table of benchmarks/RESULTS.md."""
    lines = [
        "| data | N | ranking | nDCG@10 | MRR@10 | P@1 | P@1 vs retriever, 95% interval | W/L |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for path in sorted(out.glob("*/results.json")):
        result = json.loads(path.read_text())
        name = path.parent.name.rsplit("_n", 1)[0].replace("_", ", ")
        for method in METHODS:
            row = result[method]
            paired = result["paired"].get(method, {}).get("p@1")
            versus = (
                f"{paired['mean_diff']:+.3f} [{paired['ci95'][0]:+.3f}, {paired['ci95'][1]:+.3f}]"
                if paired
                else ""
            )
            wins = f"{paired['wins']}/{paired['losses']}" if paired else ""
            lines.append(
                f"| {name} | {result['num_candidates']} | {method} | {row['ndcg@10']:.3f} | "
                f"{row['mrr@10']:.3f} | {row['p@1']:.3f} | {versus} | {wins} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--queries", type=int, default=60)
    parser.add_argument("--heldout", type=int, default=64, help="held-out seed passages")
    parser.add_argument("--corpus_seed", type=int, default=0)
    parser.add_argument("--table", action="store_true", help="only print the finished runs")
    args = parser.parse_args()
    if args.table:
        print(markdown(args.out))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    heldout = str(heldout_folder(args.out, args.heldout, args.corpus_seed))
    # Cheapest first: N = 3 reuses N = 10's calls, and N = 20 costs as much again as both.
    for n in (10, 3):
        evaluate(args.out, "wiki", "wiki", n, "joint", args.queries)
        evaluate(args.out, "heldout", heldout, n, "joint", args.queries)
    evaluate(args.out, "wiki", "wiki", 20, "joint", args.queries)
    evaluate(args.out, "heldout", heldout, 20, "joint", args.queries)
    evaluate(args.out, "wiki", "wiki", 10, "separate", args.queries)


if __name__ == "__main__":
    main()
