"""Semantic textual similarity: how well embedding cosines rank human similarity scores.

Scores are returned as scipy gives them, in [-1, 1]; MTEB and the paper's tables print them
multiplied by 100.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from scipy import stats

from gecko_jax.text.instructions import STS_TASK

if TYPE_CHECKING:
    from gecko_jax.encoder import Encoder


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
