"""A registry of named evaluation tasks, a runner over them, and a before/after table.

Each task pairs a Table-9 task string with its data and evaluator. Data that is not there (no
data folder, a missing file, an uninstalled offline package) skips the task with the reason,
so a partial setup still yields the rest of the table.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gecko_jax.data.banking77 import BANKING77_FOLDER, load_banking77
from gecko_jax.data.stsb import STSB_FOLDER, load_stsb
from gecko_jax.data.wiki_extracts import load_wiki_extracts
from gecko_jax.evaluation.classification import evaluate_classification
from gecko_jax.evaluation.clustering import evaluate_clustering
from gecko_jax.evaluation.retrieval import evaluate_retrieval
from gecko_jax.evaluation.sts import evaluate_sts
from gecko_jax.evaluation.wiki_sets import wiki_description_retrieval, wiki_topic_clustering
from gecko_jax.text.instructions import (
    CLASSIFICATION_TASK,
    CLUSTERING_TASK,
    RETRIEVAL_TASK,
    STS_TASK,
)

if TYPE_CHECKING:
    from gecko_jax.encoder import Encoder

# Full-size wiki sets: 1000 queries against all 10,033 articles; 100 articles per topic.
WIKI_QUERIES = 1000
WIKI_PER_TOPIC = 100
# A limited retrieval run searches a corpus this many times its number of queries.
CORPUS_PER_QUERY = 5

# Evaluator keyword arguments (all but encoder, task and batch_size) from (data_dir, limit, seed).
Loader = Callable[[Path | None, int | None, int], dict[str, Any]]


@dataclasses.dataclass(frozen=True)
class EvalTask:
    """A named task: its Table-9 task string, where its data comes from, and how to score it."""

    name: str
    task: str
    source: str
    load: Loader
    evaluate: Callable[..., dict[str, float]]


def _subsample(n: int, limit: int | None, seed: int) -> list[int]:
    """Sorted seeded indices of at most ``limit`` of ``n`` items (all of them for ``None``)."""
    if limit is None or limit >= n:
        return list(range(n))
    return sorted(np.random.default_rng(seed).choice(n, limit, replace=False).tolist())


def _data_folder(data_dir: Path | None, name: str) -> Path:
    if data_dir is None:
        raise FileNotFoundError(f"no data folder given (it should hold {name}/)")
    return Path(data_dir) / name


def _load_stsb(data_dir: Path | None, limit: int | None, seed: int) -> dict[str, Any]:
    pairs, scores = load_stsb(_data_folder(data_dir, STSB_FOLDER), "test")
    keep = _subsample(len(pairs), limit, seed)
    return {"pairs": [pairs[i] for i in keep], "scores": [scores[i] for i in keep]}


def _load_banking77(data_dir: Path | None, limit: int | None, seed: int) -> dict[str, Any]:
    folder = _data_folder(data_dir, BANKING77_FOLDER)
    train, test = load_banking77(folder, "train"), load_banking77(folder, "test")
    keep = _subsample(len(test.texts), limit, seed)
    # A limited run trains on about as many texts as it tests, spread evenly over the labels;
    # at least two per label, or scikit-learn takes the labels for regression targets.
    per_label = None if limit is None else max(2, limit // len(set(train.labels)))
    return {
        "train_texts": train.texts,
        "train_labels": train.labels,
        "test_texts": [test.texts[i] for i in keep],
        "test_labels": [test.labels[i] for i in keep],
        "seed": seed,
        "max_train_per_label": per_label,
    }


def _load_wiki_retrieval(data_dir: Path | None, limit: int | None, seed: int) -> dict[str, Any]:
    del data_dir  # the extracts come from their offline package
    n_queries = limit or WIKI_QUERIES
    corpus_size = None if limit is None else CORPUS_PER_QUERY * limit
    dataset = wiki_description_retrieval(load_wiki_extracts(), n_queries, corpus_size, seed)
    return dataset._asdict()


def _load_wiki_clustering(data_dir: Path | None, limit: int | None, seed: int) -> dict[str, Any]:
    del data_dir  # the extracts come from their offline package
    texts, labels = wiki_topic_clustering(load_wiki_extracts(), WIKI_PER_TOPIC, seed)
    keep = _subsample(len(texts), limit, seed)
    return {"texts": [texts[i] for i in keep], "labels": [labels[i] for i in keep], "seed": seed}


TASKS: dict[str, EvalTask] = {
    task.name: task
    for task in [
        EvalTask(
            "stsb",
            STS_TASK,
            "STS Benchmark test split, DATA_DIR/stsbenchmark/sts-test.csv",
            _load_stsb,
            evaluate_sts,
        ),
        EvalTask(
            "banking77",
            CLASSIFICATION_TASK,
            "Banking77 train/test, DATA_DIR/banking77/{train,test}.csv",
            _load_banking77,
            evaluate_classification,
        ),
        EvalTask(
            "wiki_retrieval",
            RETRIEVAL_TASK,
            "offline Wikipedia extracts: unique short description -> its article",
            _load_wiki_retrieval,
            evaluate_retrieval,
        ),
        EvalTask(
            "wiki_clustering",
            CLUSTERING_TASK,
            "offline Wikipedia extracts: lead extracts clustered by topic",
            _load_wiki_clustering,
            evaluate_clustering,
        ),
    ]
}


def load_task(
    name: str, data_dir: str | Path | None = None, limit: int | None = None, seed: int = 0
) -> dict[str, Any]:
    """A task's evaluator arguments, or ``{"skipped": reason}`` where its data is unavailable."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known: {sorted(TASKS)}")
    if limit is not None and limit < 2:
        raise ValueError(f"limit must be >= 2, got {limit}")
    try:
        return TASKS[name].load(Path(data_dir) if data_dir is not None else None, limit, seed)
    except (FileNotFoundError, ImportError) as error:
        return {"skipped": str(error)}


def evaluate_task(
    encoder: Encoder, name: str, data: Mapping[str, Any], batch_size: int = 64
) -> dict[str, Any]:
    """Metrics of ``encoder`` on data from :func:`load_task` (skips pass through)."""
    if "skipped" in data:
        return dict(data)
    spec = TASKS[name]
    return spec.evaluate(encoder, task=spec.task, batch_size=batch_size, **data)


def run_suite(
    encoder: Encoder,
    task_names: Iterable[str] = tuple(TASKS),
    data_dir: str | Path | None = None,
    limit: int | None = None,
    seed: int = 0,
    batch_size: int = 64,
) -> dict[str, dict[str, Any]]:
    """Metrics per task, or ``{"skipped": reason}`` where its data is unavailable.

    ``limit`` caps each task at that many evaluated examples (STS pairs, test texts, queries,
    clustered texts), seeded, for quick runs; ``None`` runs the full sets.
    """
    task_names = list(task_names)
    unknown = sorted(set(task_names) - set(TASKS))
    if unknown:
        raise ValueError(f"unknown tasks {unknown}; known: {sorted(TASKS)}")
    return {
        name: evaluate_task(encoder, name, load_task(name, data_dir, limit, seed), batch_size)
        for name in task_names
    }


def format_table(results: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> str:
    """A task/metric x run table of ``{run: run_suite result}``, skip reasons listed below it."""
    runs = list(results)
    rows: dict[str, list[str]] = {}  # task -> metric names, in first-seen order
    notes: list[str] = []
    for run, by_task in results.items():
        for task, metrics in by_task.items():
            names = rows.setdefault(task, [])
            names.extend(m for m in metrics if m != "skipped" and m not in names)
            if "skipped" in metrics:
                notes.append(f"{task} skipped for {run}: {metrics['skipped']}")

    def cell(run: str, task: str, metric: str) -> str:
        metrics = results[run].get(task, {})
        if "skipped" in metrics:
            return "skipped"
        return f"{metrics[metric]:.4f}" if metric in metrics else "-"

    header = ["task", "metric", *runs]
    lines = [header, ["-" * len(text) for text in header]]
    for task, names in rows.items():
        lines.extend([task, metric, *(cell(r, task, metric) for r in runs)] for metric in names)
        if not names:
            lines.append([task, "-", *(cell(r, task, "") for r in runs)])
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    table = [
        "  ".join(
            text.ljust(width) if i < 2 else text.rjust(width)
            for i, (text, width) in enumerate(zip(line, widths, strict=True))
        ).rstrip()
        for line in lines
    ]
    return "\n".join([*table, *notes])
