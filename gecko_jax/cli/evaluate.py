"""``gecko-eval``: run the evaluation suite on one or more models and print a comparison table.

Example: ``gecko-eval --model base/ --model tuned/ --data_dir ../shared/data --out results.json``
(a model is a model folder or a training run: ``WORKDIR``, ``WORKDIR@STEP``, ``WORKDIR@best``)
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from gecko_jax.data.sources import DATA_DIR_ENV, default_data_dir
from gecko_jax.evaluation.suite import TASKS, format_table, run_suite


def _run_name(model: str, taken: Mapping[str, object]) -> str:
    """The model folder and its parent (``run3/export``), numbered if already taken."""
    name = "/".join(Path(model).resolve().parts[-2:])
    return name if name not in taken else f"{name}#{len(taken) + 1}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gecko-eval", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model",
        action="append",
        required=True,
        help="model folder, WORKDIR, WORKDIR@STEP or WORKDIR@best; repeat to compare",
    )
    parser.add_argument(
        "--tasks", default=",".join(TASKS), help=f"comma separated, from {', '.join(TASKS)}"
    )
    parser.add_argument(
        "--data_dir",
        help=f"folder holding stsbenchmark/ and banking77/ (default ${DATA_DIR_ENV}, else a "
        "shared/data folder beside the checkout, else their Hugging Face copies; a task "
        "without its set is skipped)",
    )
    parser.add_argument("--out", help="write the results here as JSON")
    parser.add_argument("--limit", type=int, help="at most N examples per task (quick runs)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch_size", type=int, default=64)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    unknown = sorted(set(tasks) - set(TASKS))
    if unknown or not tasks:
        parser.error(f"--tasks: choose from {', '.join(TASKS)} (unknown: {unknown or 'none'})")

    from gecko_jax import Encoder

    data_dir = args.data_dir or default_data_dir()
    runs: dict[str, dict] = {}
    for model in args.model:
        started = time.perf_counter()
        try:
            encoder = Encoder.from_pretrained(model)
        except (OSError, ValueError) as error:
            print(f"gecko-eval: cannot load --model {model}: {error}", file=sys.stderr)
            return 1
        results = run_suite(
            encoder,
            tasks,
            data_dir=data_dir,
            limit=args.limit,
            seed=args.seed,
            batch_size=args.batch_size,
        )
        seconds = round(time.perf_counter() - started, 2)
        runs[_run_name(model, runs)] = {"model": model, "seconds": seconds, "results": results}
    print(format_table({name: run["results"] for name, run in runs.items()}))
    if args.out:
        report = {
            "tasks": {
                name: {"task": TASKS[name].task, "source": TASKS[name].source} for name in tasks
            },
            "data_dir": data_dir,
            "limit": args.limit,
            "seed": args.seed,
            "runs": runs,
        }
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
