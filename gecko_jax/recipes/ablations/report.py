"""The ablation table: each cell's mean and spread over seeds, and its difference from a reference.

A difference no larger than the seed spread (the larger sample standard deviation of the two
cells) is reported as ``none``: at this scale seeds move the metrics by about as much as many
of the paper's effects, and a table that called such differences gains would mislead.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from gecko_jax.recipes.ablations.cells import AblationPlan, dim_key

Runs = Mapping[str, Sequence[Mapping[str, Any]]]  # cell name -> its run results, seed order
# The metric of each evaluator that the Markdown table shows; results.json keeps them all.
HEADLINE_METRICS = ("spearman", "accuracy", "ndcg@10", "v_measure")
PACKAGES = ("jax", "jaxlib", "flax", "optax", "numpy", "tensorflow", "seqio", "scikit-learn")


def _evals(runs: Sequence[Mapping[str, Any]], key: str) -> list[Mapping[str, Any]]:
    """The per-seed suite results at embedding size ``key`` (each size has its own runs)."""
    return [run["evals"][key] for run in runs if key in run["evals"]]


def reading(delta: float, spread: float, seeds: int) -> str:
    if seeds < 2:
        return "one seed"
    if abs(delta) <= spread:
        return "none"
    return "gain" if delta > 0 else "loss"


def summarize(plan: AblationPlan, runs: Runs) -> list[dict[str, Any]]:
    """One row per (cell, embedding size, task, metric), with the delta to its reference."""
    rows = []
    for cell in plan.cells:
        for dims in cell.dims:
            key = dim_key(dims)
            evals = _evals(runs[cell.name], key)
            reference = [] if cell.reference == cell.name else _evals(runs[cell.reference], key)
            for task, metrics in evals[0].items():
                if "skipped" in metrics:
                    continue
                for metric in metrics:
                    values = np.array([e[task][metric] for e in evals], np.float64)
                    row: dict[str, Any] = {
                        "cell": cell.name,
                        "dims": key,
                        "task": task,
                        "metric": metric,
                        "per_seed": values.tolist(),
                        "mean": float(values.mean()),
                        "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                    }
                    if reference:
                        ref = np.array([e[task][metric] for e in reference], np.float64)
                        ref_std = float(ref.std(ddof=1)) if len(ref) > 1 else 0.0
                        delta = row["mean"] - float(ref.mean())
                        spread = max(row["std"], ref_std)
                        row.update(
                            reference=cell.reference,
                            delta=delta,
                            spread=spread,
                            reading=reading(delta, spread, min(len(values), len(ref))),
                        )
                    rows.append(row)
    return rows


def _cell_text(row: Mapping[str, Any]) -> str:
    text = f"{row['mean']:.4f} ± {row['std']:.4f}"
    if "reading" not in row:
        return text
    delta = "none" if row["reading"] == "none" else f"{row['delta']:+.4f}"
    seeds = ", one seed" if row["reading"] == "one seed" else ""
    return f"{text} (Δ {delta}{seeds})"


def format_table(
    rows: Sequence[Mapping[str, Any]],
    plan: AblationPlan,
    runs: Runs,
    label_changes: Mapping[str, float],
) -> str:
    """Markdown: a line per (cell, size), a column per headline metric, and seconds per run."""
    columns = list(
        dict.fromkeys((r["task"], r["metric"]) for r in rows if r["metric"] in HEADLINE_METRICS)
    )
    by_key = {(r["cell"], r["dims"], r["task"], r["metric"]): r for r in rows}
    metric_names = [f"{task} {metric}" for task, metric in columns]
    header = ["cell", "dims", "vs", "labels changed", *metric_names, "s/run"]
    lines = [header, ["---"] * len(header)]
    for cell in plan.cells:
        cell_runs = runs[cell.name]
        seconds = np.mean([r["train_seconds"] + r["eval_seconds"] for r in cell_runs])
        for dims in cell.dims:
            key = dim_key(dims)
            found = [by_key.get((cell.name, key, task, metric)) for task, metric in columns]
            texts = ["-" if row is None else _cell_text(row) for row in found]
            vs = cell.reference if cell.reference != cell.name else ""
            changed = f"{label_changes[cell.name]:.0%}" if cell.name in label_changes else ""
            lines.append([cell.name, key, vs, changed, *texts, f"{seconds:.0f}"])
    notes = (
        f"Mean ± sample std over seeds {list(plan.seeds)}; Δ is the difference from the `vs` cell "
        "at the same embedding size, `none` where it is no larger than the larger of the two "
        "spreads. Labels changed: the share of training examples whose positive or hard "
        "negative differs from the `vs` cell's. s/run: fine-tuning plus evaluation, per seed."
    )
    return "\n".join(["| " + " | ".join(line) + " |" for line in lines] + ["", notes])


def environment() -> dict[str, Any]:
    """Where and with what the results were produced, for the record."""
    import jax

    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "date": datetime.date.today().isoformat(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "jax_backend": jax.default_backend(),
        "python": platform.python_version(),
        "packages": versions,
    }
