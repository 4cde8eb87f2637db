"""The ablation table: each cell's mean and spread over seeds, and its difference from a reference.

At this scale seeds move the metrics by about as much as many of the paper's effects, so a
table that called every difference a gain would mislead. Two readings are kept per row:
- ``reading``: a difference no larger than the seed spread (the larger sample standard
  deviation of the two cells) is ``none``;
- ``paired_reading``: the cells share their data order per seed, so the per-seed differences
  are paired; a difference whose 95% interval (Student's t over the seeds) holds zero is
  ``none``. The table shows this one: it sees a small difference the same at every seed, and
  it does not call a large mean difference that the seeds disagree on.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats

from gecko_jax.recipes.ablations.cells import AblationPlan, dim_key

Runs = Mapping[str, Sequence[Mapping[str, Any]]]  # cell name -> its run results, seed order
# The metric of each evaluator that the Markdown table shows; results.json keeps them all.
HEADLINE_METRICS = ("spearman", "accuracy", "ndcg@10", "v_measure")
# Each run's held-out retrieval (its FRet held-out queries against their seeds), as a task row.
HELDOUT_TASK, HELDOUT_METRIC, HELDOUT_KEY = "heldout", "mrr@10", "best_heldout_mrr@10"
PACKAGES = ("jax", "jaxlib", "flax", "optax", "numpy", "tensorflow", "seqio", "scikit-learn")


def _evals(runs: Sequence[Mapping[str, Any]], key: str) -> list[Mapping[str, Any]]:
    """The per-seed suite results at embedding size ``key`` (each size has its own runs), with
    the held-out retrieval of the full-size runs as one more task."""
    sized = [run for run in runs if key in run["evals"]]
    evals = [dict(run["evals"][key]) for run in sized]
    if key == dim_key(None) and sized and all(HELDOUT_KEY in run for run in sized):
        for run, suite in zip(sized, evals, strict=True):
            suite[HELDOUT_TASK] = {HELDOUT_METRIC: run[HELDOUT_KEY]}
    return evals


def _seeds(runs: Sequence[Mapping[str, Any]], key: str) -> list[Any]:
    return [run.get("seed") for run in runs if key in run["evals"]]


def reading(delta: float, spread: float, seeds: int) -> str:
    if seeds < 2:
        return "one seed"
    if abs(delta) <= spread:
        return "none"
    return "gain" if delta > 0 else "loss"


def paired(differences: np.ndarray) -> dict[str, Any]:
    """The mean per-seed difference, its 95% interval's half-width (Student's t) and reading."""
    n = len(differences)
    mean = float(differences.mean())
    if n < 2:
        return {"paired_delta": mean, "paired_ci95": None, "paired_reading": "one seed"}
    half = float(stats.t.ppf(0.975, n - 1) * differences.std(ddof=1) / np.sqrt(n))
    called = "gain" if mean > 0 else "loss"
    return {
        "paired_delta": mean,
        "paired_ci95": half,
        "paired_reading": "none" if abs(mean) <= half else called,
    }


def summarize(plan: AblationPlan, runs: Runs) -> list[dict[str, Any]]:
    """One row per (cell, embedding size, task, metric), with the delta to its reference."""
    rows = []
    for cell in plan.cells:
        for dims in cell.dims:
            key = dim_key(dims)
            evals = _evals(runs[cell.name], key)
            reference = [] if cell.reference == cell.name else _evals(runs[cell.reference], key)
            same_seeds = reference and _seeds(runs[cell.name], key) == _seeds(
                runs[cell.reference], key
            )
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
                        if same_seeds:
                            row.update(paired(values - ref))
                    rows.append(row)
    return rows


def _cell_text(row: Mapping[str, Any]) -> str:
    text = f"{row['mean']:.4f} ± {row['std']:.4f}"
    if "reading" not in row:
        return text
    if row.get("paired_ci95") is not None:
        delta = f"{row['paired_delta']:+.4f} ± {row['paired_ci95']:.4f}"
        return f"{text} (Δ {'none, ' if row['paired_reading'] == 'none' else ''}{delta})"
    delta = "none" if row["reading"] == "none" else f"{row['delta']:+.4f}"
    seeds = ", one seed" if row["reading"] == "one seed" else ""
    return f"{text} (Δ {delta}{seeds})"


def _headline(task: str, metric: str) -> bool:
    return metric in HEADLINE_METRICS or (task, metric) == (HELDOUT_TASK, HELDOUT_METRIC)


def format_table(
    rows: Sequence[Mapping[str, Any]],
    plan: AblationPlan,
    runs: Runs,
    label_changes: Mapping[str, float],
) -> str:
    """Markdown: a line per (cell, size), a column per headline metric, and seconds per run."""
    columns = list(
        dict.fromkeys((r["task"], r["metric"]) for r in rows if _headline(r["task"], r["metric"]))
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
        f"Mean ± sample std over seeds {list(plan.seeds)}; Δ is the mean difference from the `vs` "
        "cell at the same seed and embedding size, ± the half-width of its 95% interval "
        "(Student's t over the seeds), `none` where that interval holds zero (without paired "
        "seeds: the plain difference, `none` within the larger spread). heldout mrr@10: each "
        "run's FRet held-out queries against their seed passages. Labels changed: the share of "
        "training examples whose positive or hard negative differs from the `vs` cell's. "
        "s/run: fine-tuning plus evaluation, per seed."
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
