"""Drops training examples whose query or positive is an evaluation text.

Texts match after normalisation (lowercase, whitespace folded) through
:func:`gecko_jax.text.features.text_hash`, the project's one definition of "same text". That hash
is 32 bits, so a training text falsely matches with probability ~ (evaluation texts) / 2**32:
0.02% against a 1M-text evaluation corpus, ~1% against all of BEIR's corpora.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from gecko_jax.text.features import text_hash

logger = logging.getLogger(__name__)

CHECKED_FIELDS = ("query", "positive_text")


def decontaminate(
    examples: Mapping[str, Mapping[str, Sequence]],
    eval_texts: Iterable[str],
    fields: Sequence[str] = CHECKED_FIELDS,
) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, int]]:
    """Filters each task's columns; returns them and the number dropped per task.

    ``examples`` maps task -> column name -> values (one per example); ``fields`` name the raw
    (unformatted) text columns compared with ``eval_texts`` (evaluation queries and corpus).
    """
    banned = {text_hash(text) for text in eval_texts}
    filtered: dict[str, dict[str, np.ndarray]] = {}
    dropped: dict[str, int] = {}
    for task, columns in examples.items():
        hit = np.zeros(len(columns[fields[0]]), bool)
        for field in fields:
            hit |= np.array([text_hash(text) in banned for text in columns[field]], bool)
        filtered[task] = {name: np.asarray(values)[~hit] for name, values in columns.items()}
        dropped[task] = int(hit.sum())
        if banned:
            logger.info("decontamination: %s dropped %d of %d examples", task, hit.sum(), len(hit))
    return filtered, dropped
