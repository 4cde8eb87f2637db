"""FRet step 1: one (task, query) per seed passage from the LLM, with copy diagnostics.

A small LLM tends to copy phrases from the passage; such queries teach lexical matching only, so
the word overlap and verbatim copies are measured, and an optional overlap filter drops them.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from gecko_jax.fret.passages import Passage
from gecko_jax.fret.prompts import (
    QG_STOP,
    TASK_TYPES,
    parse_generation,
    query_generation_messages,
)
from gecko_jax.llm.base import LLM

_WORD = re.compile(r"\w+")
# Greedy decoding would repeat a malformed answer, so the retry samples.
RETRY_TEMPERATURE = 0.7


@dataclasses.dataclass(frozen=True)
class GenerateConfig:
    max_tokens: int = 96
    temperature: float = 0.0
    seed: int = 0
    batch_size: int = 16
    # Request task types round-robin, so the types stay balanced whatever the LLM prefers.
    balance_tasks: bool = True
    dedup: bool = True
    # Drop queries with a larger fraction of their words in the passage; None keeps all.
    max_overlap: float | None = None


def word_overlap(query: str, passage: str) -> float:
    """Fraction of the query's words that occur in the passage (case-insensitive)."""
    words = _WORD.findall(query.lower())
    vocabulary = set(_WORD.findall(passage.lower()))
    return sum(w in vocabulary for w in words) / len(words) if words else 0.0


def _parse(text: str) -> tuple[str, str] | None:
    """The stop string was cut off; put it back (harmless if the backend kept it)."""
    return parse_generation(text + QG_STOP)


def _task_type(task: str) -> str:
    return next((name for name, text in TASK_TYPES.items() if text == task), "other")


def _generate(
    llm: LLM, passages: list[Passage], types: list[str | None], config: GenerateConfig, retry: bool
) -> list[Any]:
    """LLM generations for ``passages`` in batches, with a progress bar."""
    temperature = max(config.temperature, RETRY_TEMPERATURE) if retry else config.temperature
    seed = config.seed + 1 if retry else config.seed
    out = []
    with tqdm(total=len(passages), desc="FRet queries" + (" (retry)" if retry else "")) as bar:
        for start in range(0, len(passages), config.batch_size):
            end = start + config.batch_size
            prompts = [
                query_generation_messages(p.text, t)
                for p, t in zip(passages[start:end], types[start:end], strict=True)
            ]
            out.extend(llm.generate(prompts, config.max_tokens, temperature, (QG_STOP,), seed))
            bar.update(len(prompts))
    return out


def generate_queries(
    llm: LLM, passages: Sequence[Passage], config: GenerateConfig = GenerateConfig()
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows ``{passage_id, requested_type, task, query}`` and their diagnostics."""
    passages = list(passages)
    names = list(TASK_TYPES)
    types = [names[i % len(names)] if config.balance_tasks else None for i in range(len(passages))]
    generations = _generate(llm, passages, types, config, retry=False)
    parsed = [_parse(g.text) for g in generations]
    bad = [i for i, p in enumerate(parsed) if p is None]
    if bad:
        again = _generate(llm, [passages[i] for i in bad], [types[i] for i in bad], config, True)
        for i, generation in zip(bad, again, strict=True):
            parsed[i] = _parse(generation.text)
            generations[i] = generation

    rows, overlaps, seen = [], [], set()
    counts = Counter(
        malformed=sum(p is None for p in parsed),
        cut_at_max_tokens=sum(g.finish_reason == "length" for g in generations),
        retried=len(bad),
    )
    for passage, requested, answer in zip(passages, types, parsed, strict=True):
        if answer is None:
            continue
        task, query = answer
        overlap = word_overlap(query, passage.text)
        overlaps.append(overlap)
        counts["verbatim_copy"] += query.lower() in passage.text.lower()
        if config.max_overlap is not None and overlap > config.max_overlap:
            counts["dropped_overlap"] += 1
            continue
        key = " ".join(_WORD.findall(query.lower()))
        if config.dedup and key in seen:
            counts["dropped_duplicate"] += 1
            continue
        seen.add(key)
        rows.append(
            {"passage_id": passage.id, "requested_type": requested, "task": task, "query": query}
        )
    diagnostics = {
        "passages": len(passages),
        "rows": len(rows),
        **{
            k: counts[k]
            for k in (
                "malformed",
                "retried",
                "cut_at_max_tokens",
                "verbatim_copy",
                "dropped_overlap",
                "dropped_duplicate",
            )
        },
        "mean_word_overlap": float(np.mean(overlaps)) if overlaps else None,
        "task_types": dict(Counter(_task_type(r["task"]) for r in rows)),
    }
    return rows, diagnostics
