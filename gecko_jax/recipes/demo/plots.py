"""The demo's PNG plots: training curves, LLM rank changes, and positive-changed examples.

Figures are built as ``matplotlib.figure.Figure`` objects, never through pyplot, so writing
PNGs needs no display and leaves a notebook's own plotting backend alone.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure


def _read_metrics(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def plot_training(workdirs: Mapping[int, Path], out: Path) -> Path:
    """Loss per step and held-out MRR@10 per evaluation, one line per seed."""
    figure = Figure(figsize=(11, 4))
    loss_axis, eval_axis = figure.subplots(1, 2)
    for seed, workdir in workdirs.items():
        records = _read_metrics(workdir / "metrics.jsonl")
        losses = [(r["step"], r["loss"]) for r in records if "loss" in r]
        evals = [(r["step"], r["eval/mrr@10"]) for r in records if "eval/mrr@10" in r]
        if losses:
            loss_axis.plot(*zip(*losses, strict=True), label=f"seed {seed}")
        if evals:
            eval_axis.plot(*zip(*evals, strict=True), marker="o", label=f"seed {seed}")
    loss_axis.set(title="training loss", xlabel="step", ylabel="Gecko loss")
    eval_axis.set(title="held-out FRet MRR@10", xlabel="step", ylabel="MRR@10")
    for axis in (loss_axis, eval_axis):
        axis.legend()
        axis.grid(alpha=0.3)
    return _save(figure, out)


def plot_rank_changes(records: Sequence[Mapping[str, Any]], out: Path) -> Path:
    """Where the LLM put the seed passage, and where the retriever had put the LLM's positive."""
    seed_fused_rank, positive_retrieval_rank = [], []
    for record in records:
        ids = record["candidate_ids"]
        seed_fused_rank.append(record["ranks"]["fused"][ids.index(record["seed_id"])])
        positive_retrieval_rank.append(ids.index(record["positive"]["id"]) + 1)
    bins = np.arange(1, max(len(r["candidate_ids"]) for r in records) + 2) - 0.5
    figure = Figure(figsize=(11, 4))
    left, right = figure.subplots(1, 2)
    left.hist(seed_fused_rank, bins=bins, color="tab:blue")
    left.set(title="LLM fused rank of the seed passage", xlabel="rank (1 = LLM agrees)")
    right.hist(positive_retrieval_rank, bins=bins, color="tab:orange")
    right.set(title="retriever rank of the LLM positive", xlabel="rank among candidates")
    for axis in (left, right):
        axis.set_ylabel("queries")
    changed = sum(r["positive"]["id"] != r["seed_id"] for r in records)
    figure.suptitle(f"positive differs from the seed for {changed} of {len(records)} queries")
    return _save(figure, out)


def _ranks(record: Mapping[str, Any], passage_id: str) -> str:
    """Each scorer's rank of one candidate: retriever, QL, RC and the fusion."""
    i = record["candidate_ids"].index(passage_id)
    ranks = record["ranks"]
    return (
        f"retriever {i + 1}, QL {ranks['query_likelihood'][i]}, RC {ranks['relevance'][i]}, "
        f"fused {ranks['fused'][i]}"
    )


def _example(record: Mapping[str, Any], titles: Mapping[str, str]) -> str:
    seed, positive = record["seed_id"], record["positive"]
    lines = [
        _wrap(f"query: {record['query']}  [task: {record['task']}]"),
        _wrap(f"seed: {titles.get(seed, seed)}  ({_ranks(record, seed)})"),
    ]
    if positive["id"] != seed:
        lines.append(
            _wrap(
                f"LLM positive: {positive['title']}  ({_ranks(record, positive['id'])}): "
                f"{positive['text'][:140]}"
            )
        )
    elif record.get("guards", {}).get("relabel_blocked"):
        top = record["candidate_ids"][record["ranks"]["fused"].index(1)]
        lines.append(
            _wrap(f"guard kept the seed over {titles.get(top, top)} ({_ranks(record, top)})")
        )
    return "\n".join(lines)


def plot_changed_examples(
    records: Sequence[Mapping[str, Any]], titles: Mapping[str, str], out: Path, limit: int = 3
) -> Path:
    """Text panels: up to ``limit`` queries whose positive changed from the seed and as many
    whose seed was kept, each with every scorer's rank of the passages involved, so a reader
    can judge the teacher's relabels against its agreements.

    ``titles`` maps passage ids to titles (records keep only the seed's id).
    """
    changed = [r for r in records if r["positive"]["id"] != r["seed_id"]][:limit]
    kept = [r for r in records if r["positive"]["id"] == r["seed_id"]][:limit]
    sections = [
        (f"positive changed ({len(changed)} shown)", changed),
        (f"seed kept ({len(kept)} shown)", kept),
    ]
    text = "\n\n".join(
        f"== {title}\n\n" + ("\n\n".join(_example(r, titles) for r in group) or "(none)")
        for title, group in sections
    )
    figure = Figure(figsize=(11, 1.0 + 0.16 * (text.count("\n") + 1)))
    axis = figure.subplots()
    axis.axis("off")
    axis.text(0, 1, text, va="top", ha="left", family="monospace", fontsize=8)
    n_changed = sum(r["positive"]["id"] != r["seed_id"] for r in records)
    axis.set_title(
        f"positive differs from the seed for {n_changed} of {len(records)} queries", loc="left"
    )
    return _save(figure, out)


def _wrap(text: str) -> str:
    return textwrap.fill(text, width=120, subsequent_indent="    ")


def _save(figure: Figure, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(out, dpi=110)
    return out
