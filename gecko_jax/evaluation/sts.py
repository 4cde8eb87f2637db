"""Semantic textual similarity: how well embedding cosines rank human similarity scores.

Scores are returned as scipy gives them, in [-1, 1]; MTEB and the paper's tables print them
multiplied by 100.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from scipy import stats

from gecko_jax.evaluation.hub import load_hf_split
from gecko_jax.evaluation.instructions import STS_TASK
from gecko_jax.paths import PathLike, as_path

if TYPE_CHECKING:
    from gecko_jax.encoder import Encoder

HF_STSB = "mteb/stsbenchmark-sts"
# The official release's folder name; the data folder holds it (sts-{split}.csv inside).
STSB_FOLDER = "stsbenchmark"


class STSPairs(NamedTuple):
    pairs: list[tuple[str, str]]
    scores: list[float]


def evaluate_sts(
    encoder: Encoder,
    pairs: Sequence[tuple[str, str]],
    scores: Sequence[float],
    task: str = STS_TASK,
    batch_size: int = 64,
) -> dict[str, float]:
    """Spearman (the MTEB main score) and Pearson correlation of pair cosines with ``scores``.

    Both sentences get ``task: {task} | query: ...``, since the task is symmetric (Table 9).
    """
    if len(pairs) != len(scores) or len(pairs) < 2:
        raise ValueError(f"need >= 2 pairs with one score each, got {len(pairs)}, {len(scores)}")
    sentences = list(dict.fromkeys(s for pair in pairs for s in pair))
    row = {s: i for i, s in enumerate(sentences)}
    embeddings = encoder.encode_queries(sentences, task=task, batch_size=batch_size)
    left = embeddings[[row[a] for a, _ in pairs]]
    right = embeddings[[row[b] for _, b in pairs]]
    cosines = np.sum(left * right, axis=1)
    return {
        "spearman": float(stats.spearmanr(cosines, scores).statistic),
        "pearson": float(stats.pearsonr(cosines, scores).statistic),
    }


def load_stsb(path_or_dir: PathLike, split: str = "test") -> STSPairs:
    """STS Benchmark from the official files: a folder holding ``sts-{split}.csv``, or one file.

    The files are tab separated without quoting; some rows carry extra trailing fields, so only
    columns 4-6 (score, sentence 1, sentence 2) are read. The folder may be a URL (``gs://``),
    as ``GECKO_DATA_DIR`` is for the seqio tasks.
    """
    path = as_path(path_or_dir)
    if path.suffix != ".csv":
        path = path / f"sts-{split}.csv"
    if not path.is_file():
        raise FileNotFoundError(f"STS Benchmark file not found: {path}")
    pairs, scores = [], []
    with path.open("r", encoding="utf-8") as handle:
        for row in csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE):
            scores.append(float(row[4]))
            pairs.append((row[5], row[6]))
    return STSPairs(pairs, scores)


def load_stsb_hf(split: str = "test", name: str = HF_STSB) -> STSPairs:
    """STS Benchmark from the Hugging Face hub (MTEB's copy; ``dev`` means ``validation``)."""
    rows = load_hf_split(name, "validation" if split == "dev" else split)
    return STSPairs(
        list(zip(rows["sentence1"], rows["sentence2"], strict=True)),
        [float(s) for s in rows["score"]],
    )
