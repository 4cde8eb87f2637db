"""Run an ablation plan on a finished demo: relabel, fine-tune and evaluate each (cell, seed).

Every cell reuses the demo's FRet records (queries, candidates, LLM scores), its training and
held-out split, its fine-tuning settings and its evaluation sets, so cells differ only in what
they ablate. Each (training, seed) result is cached as JSON, with the fingerprint of what it
was made from (:mod:`gecko_jax.core.stages`: the demo's data by content, the training, the
settings), and the trainer resumes from its checkpoints, so a killed run started again redoes
nothing finished, and a run folder made from another demo or plan stops the run unless ``restart``.

    out/runs/KEY/seed_S/fret_train.jsonl   relabelled training examples (training split only)
    out/runs/KEY/seed_S/train/             trainer workdir; train/best_model is the model
    out/runs/KEY/seed_S/result.json        evaluator results per embedding size, timings
    out/results.json, out/table.md         the table, the plan, the machine and the versions
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gecko_jax.core.stages import (
    begin_stage,
    file_digest,
    finish_stage,
    folder_lock,
    model_digest,
)
from gecko_jax.encoder import Encoder
from gecko_jax.evaluation.suite import evaluate_task
from gecko_jax.fret.passages import Passage
from gecko_jax.fret.records import FRET, read_jsonl, write_jsonl
from gecko_jax.model_io.folders import read_model_folder
from gecko_jax.recipes.ablations.cells import AblationPlan, Training, dim_key
from gecko_jax.recipes.ablations.labels import changed_share, relabel
from gecko_jax.recipes.ablations.report import environment, format_table, summarize
from gecko_jax.recipes.demo.config import DemoConfig, demo_config_from_json
from gecko_jax.recipes.eval_sets import eval_sets, eval_texts_of
from gecko_jax.recipes.finetune import HeldoutRetrieval, fine_tune, heldout_queries
from gecko_jax.recipes.progress import Say, print_progress

RESULT = "result.json"


@dataclasses.dataclass(frozen=True)
class DemoRun:
    """What the ablations reuse from a finished ``gecko-jax demo`` output folder."""

    config: DemoConfig
    base_model: Path
    passages: list[Passage]
    train_records: list[dict[str, Any]]
    heldout_queries: list[dict[str, Any]]
    # Content hashes of the demo files read and of the base model, for the runs' fingerprints.
    digests: dict[str, str]
    base_model_digest: str


def load_demo(folder: str | Path) -> DemoRun:
    folder = Path(folder)
    summary = folder / "results.json"  # the demo writes it last
    if not summary.exists():
        raise FileNotFoundError(
            f"{summary} not found: run `gecko-jax demo --out {folder}` to the end first"
        )
    results = json.loads(summary.read_text())
    heldout = set(json.loads((folder / "splits.json").read_text())["heldout"])
    records = read_jsonl(folder / "fret" / FRET)
    return DemoRun(
        config=demo_config_from_json(results["config"]),
        base_model=Path(results["base_model"]),
        passages=[Passage(**row) for row in read_jsonl(folder / "passages.jsonl")],
        train_records=[r for r in records if r["seed_id"] not in heldout],
        heldout_queries=heldout_queries(folder / "fret", heldout),
        digests={
            name: file_digest(folder / name)
            for name in ("passages.jsonl", "splits.json", f"fret/{FRET}", "fret/generated.jsonl")
        },
        base_model_digest=model_digest(results["base_model"]),
    )


class TruncatedEncoder:
    """An encoder's first ``dims`` coordinates, re-normalised (a Matryoshka size).

    The evaluators call only ``encode_queries`` and ``encode_documents``, so this is all they
    need to score a truncated embedding exactly as they score a full one.
    """

    def __init__(self, encoder: Encoder, dims: int):
        self.encoder = encoder
        self.dims = dims

    def encode_queries(self, texts: Sequence[str], *args: Any, **kwargs: Any) -> np.ndarray:
        return self.encoder.encode_queries(texts, *args, dims=self.dims, **kwargs)

    def encode_documents(self, texts: Sequence[str], *args: Any, **kwargs: Any) -> np.ndarray:
        return self.encoder.encode_documents(texts, *args, dims=self.dims, **kwargs)


def evaluate(
    encoder: Encoder, eval_data: Mapping[str, Mapping[str, Any]], dims: int | None
) -> dict[str, Any]:
    """Suite results of ``encoder`` at embedding size ``dims`` (``None``: full)."""
    view = encoder if dims is None else TruncatedEncoder(encoder, dims)
    return {task: evaluate_task(view, task, data) for task, data in eval_data.items()}


@dataclasses.dataclass(frozen=True)
class Context:
    """Everything shared by the runs of one ablation: the demo, its data, the evaluation sets."""

    demo: DemoRun
    passages: dict[str, Passage]  # by id, for relabelling
    heldout: HeldoutRetrieval
    eval_data: dict[str, dict[str, Any]]
    eval_texts: set[str]
    full_dim: int


def plan_settings(config: DemoConfig) -> dict[str, Any]:
    """The plan-wide settings every run of the plan shares (recorded in each result)."""
    return {
        "model_selection": config.finetune.model_selection,
        "symmetric_sets": list(config.finetune.symmetric_sets),
    }


def run_training(
    training: Training, seed: int, folder: Path, context: Context, restart: bool = False
) -> dict[str, Any]:
    """Relabel, fine-tune and evaluate one (training, seed) in ``folder``; cached there."""
    demo = context.demo
    settings = plan_settings(demo.config)
    inputs = {
        "demo": demo.digests,
        "base_model": demo.base_model_digest,
        "training": dataclasses.asdict(training),
        "seed": seed,
        "config": dataclasses.asdict(demo.config),
    }
    if begin_stage(folder, inputs, restart):
        return json.loads((folder / RESULT).read_text())
    folder.mkdir(parents=True, exist_ok=True)
    train_file = folder / "fret_train.jsonl"
    records = relabel(
        demo.train_records, context.passages, training.labels, seed, demo.config.mine.rrf_k
    )
    write_jsonl(train_file, records)
    started = time.perf_counter()
    tuned = fine_tune(
        train_file,
        context.heldout,
        demo.base_model,
        folder / "train",
        seed,
        training.finetune_config(demo.config.finetune, context.full_dim),
        demo.config.data_dir,
        context.eval_texts,
    )
    trained = time.perf_counter()
    encoder = Encoder.from_pretrained(tuned.model_dir, max_length=demo.config.eval_max_length)
    evals = {dim_key(d): evaluate(encoder, context.eval_data, d) for d in training.dims}
    result = {
        "training": dataclasses.asdict(training),
        "seed": seed,
        **settings,
        "model_dir": str(tuned.model_dir),
        "best_step": tuned.best_step,
        "best_heldout_mrr@10": tuned.best_heldout,
        "train_seconds": trained - started,
        "eval_seconds": time.perf_counter() - trained,
        "evals": evals,
    }
    (folder / RESULT).write_text(json.dumps(result, indent=2) + "\n")
    finish_stage(folder, inputs)
    return result


def label_changes(plan: AblationPlan, context: Context) -> dict[str, float]:
    """Per compared cell, the share of training examples labelled unlike its reference's
    (mean over seeds): near zero, the two cells train on nearly the same data. Cells without
    FRet have no labels to compare."""
    cells = {cell.name: cell for cell in plan.cells}

    def labelled(cell_name: str, seed: int) -> list[dict[str, Any]]:
        demo = context.demo
        labels = cells[cell_name].labels
        return relabel(demo.train_records, context.passages, labels, seed, demo.config.mine.rrf_k)

    changes = {}
    for cell in plan.cells:
        if cell.reference != cell.name and cell.fret and cells[cell.reference].fret:
            shares = [
                changed_share(labelled(cell.name, seed), labelled(cell.reference, seed))
                for seed in plan.seeds
            ]
            changes[cell.name] = float(np.mean(shares))
    return changes


def run_ablations(
    plan: AblationPlan,
    demo_folder: str | Path,
    out: str | Path,
    say: Say = print_progress,
    restart: bool = False,
) -> dict[str, Any]:
    """Run (or resume) ``plan`` on the demo in ``demo_folder``; returns ``out/results.json``.

    ``restart``: runs in ``out`` made from another demo or plan are made again (without it,
    such a run raises :class:`~gecko_jax.core.stages.StageChanged`).
    """
    with folder_lock(out) as folder:
        return _run_ablations(plan, demo_folder, folder, say, restart)


def _run_ablations(
    plan: AblationPlan, demo_folder: str | Path, out: Path, say: Say, restart: bool
) -> dict[str, Any]:
    started = time.perf_counter()
    demo = load_demo(demo_folder)
    config = dataclasses.replace(demo.config, finetune=plan.finetune_config(demo.config.finetune))
    demo = dataclasses.replace(demo, config=config)
    eval_data = eval_sets(config.eval_tasks, config.data_dir, config.eval_limit, config.eval_seed)
    context = Context(
        demo=demo,
        passages={p.id: p for p in demo.passages},
        heldout=HeldoutRetrieval(demo.heldout_queries, demo.passages),
        eval_data=eval_data,
        eval_texts=eval_texts_of(eval_data),
        full_dim=read_model_folder(demo.base_model)[0].output_dim,
    )
    trainings = list(dict.fromkeys(t for cell in plan.cells for t in cell.trainings()))
    say(
        f"{len(plan.cells)} cells -> {len(trainings)} distinct trainings x {len(plan.seeds)} "
        f"seeds on {len(demo.train_records)} FRet examples from {demo_folder}"
    )
    runs: dict[tuple[Training, int], dict[str, Any]] = {}
    for number, training in enumerate(trainings, start=1):
        for seed in plan.seeds:
            folder = out / "runs" / training.key / f"seed_{seed}"
            say(f"[{number}/{len(trainings)}] {training.key} seed {seed}")
            runs[training, seed] = result = run_training(training, seed, folder, context, restart)
            say(
                f"      kept step {result['best_step']} (held-out MRR@10 "
                f"{result['best_heldout_mrr@10']:.4f}); {result['train_seconds']:.0f} s training, "
                f"{result['eval_seconds']:.0f} s evaluating"
            )
    cell_runs = {
        cell.name: [runs[t, seed] for t in cell.trainings() for seed in plan.seeds]
        for cell in plan.cells
    }
    rows = summarize(plan, cell_runs)
    changes = label_changes(plan, context)
    table = format_table(rows, plan, cell_runs, changes)
    summary = {
        "plan": dataclasses.asdict(plan),
        "demo": str(demo_folder),
        "demo_config": dataclasses.asdict(demo.config),
        "environment": environment(),
        "rows": rows,
        "label_changes": changes,
        "runs": {f"{t.key}/seed_{s}": r for (t, s), r in runs.items()},
        "total_seconds": time.perf_counter() - started,
    }
    (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "table.md").write_text(table + "\n")
    say("")
    say(table)
    say(f"\nresults: {out / 'results.json'}   table: {out / 'table.md'}")
    return summary
