"""The evaluation sets a recipe scores its models on, and every text they read."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gecko_jax.evaluation.suite import load_task


def eval_sets(
    tasks: Sequence[str], data_dir: str | None, limit: int | None, seed: int
) -> dict[str, dict[str, Any]]:
    """Each evaluation task's data (or the reason it is skipped), loaded once."""
    return {name: load_task(name, data_dir, limit, seed) for name in tasks}


def eval_texts_of(eval_data: Mapping[str, Mapping[str, Any]]) -> set[str]:
    """Every text an evaluation reads, for excluding seeds and decontaminating training."""
    texts: set[str] = set()
    for data in eval_data.values():
        texts.update(data.get("queries", {}).values())
        texts.update(text for _, text in data.get("corpus", {}).values())
        texts.update(data.get("texts", ()))
        texts.update(text for pair in data.get("pairs", ()) for text in pair)
        texts.update(data.get("test_texts", ()))
    return texts
