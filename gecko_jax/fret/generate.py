"""FRet step 1: one (task, query) per seed passage from the LLM, with copy diagnostics.

A small LLM tends to copy phrases from the passage; such queries teach lexical matching only, so
the word overlap and verbatim copies are measured, and an optional overlap filter drops them.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from operator import itemgetter
from typing import Any, TypeVar

import numpy as np
from tqdm.auto import tqdm

from gecko_jax.core.config_types import check_field_types
from gecko_jax.fret.passages import Passage
from gecko_jax.fret.prompts import (
    QG_STOP,
    TASK_TYPES,
    parse_generation,
    query_generation_messages,
)
from gecko_jax.llm.base import LLM, Generation

T = TypeVar("T")

_WORD = re.compile(r"\w+")
# Greedy decoding would repeat a malformed answer, so the retry samples.
RETRY_TEMPERATURE = 0.7
# The counts in the manifest's generate section.
DIAGNOSTIC_COUNTS = (
    # Passages whose LLM call failed (after the backend's retries, and the malformed retry).
    "llm_failed",
    "malformed",
    "retried",
    "cut_at_max_tokens",
    "verbatim_copy",
    "dropped_overlap",
    "dropped_duplicate",
)


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

    def __post_init__(self) -> None:
        check_field_types(self)


def word_overlap(query: str, passage: str) -> float:
    """Fraction of the query's words that occur in the passage (case-insensitive)."""
    words = _WORD.findall(query.lower())
    vocabulary = set(_WORD.findall(passage.lower()))
    return sum(w in vocabulary for w in words) / len(words) if words else 0.0


def parse_answer(text: str, requested: str | None) -> tuple[str, str] | None:
    """(task, query) of an answer to a prompt that asked for the ``requested`` task type (or
    let the LLM choose). The stop string was cut off; put it back (harmless if kept)."""
    task = TASK_TYPES[requested] if requested is not None else None
    return parse_generation(text + QG_STOP, task)


def task_type_name(task: str) -> str:
    """The ``TASK_TYPES`` name of a task description, or ``"other"``."""
    return next((name for name, text in TASK_TYPES.items() if text == task), "other")


def requested_type(index: int, config: GenerateConfig) -> str | None:
    """The task type asked of the ``index``-th passage (round-robin), or None (LLM's choice)."""
    names = list(TASK_TYPES)
    return names[index % len(names)] if config.balance_tasks else None


def generation_args(config: GenerateConfig, retry: bool) -> dict[str, Any]:
    """``LLM.generate`` keyword arguments of the first try or of the retry."""
    return {
        "max_tokens": config.max_tokens,
        "temperature": max(config.temperature, RETRY_TEMPERATURE) if retry else config.temperature,
        "stop": (QG_STOP,),
        "seed": config.seed + 1 if retry else config.seed,
    }


@dataclasses.dataclass(frozen=True)
class QueryCheck:
    """One parsed answer as a row, with its copy diagnostics and its deduplication key."""

    row: dict[str, Any]
    overlap: float
    verbatim_copy: bool
    too_much_overlap: bool
    dedup_key: str


def check_query(
    passage: Passage, requested: str | None, answer: tuple[str, str], config: GenerateConfig
) -> QueryCheck:
    """Diagnose one (task, query) answer for ``passage``; dropping and dedup are the caller's."""
    task, query = answer
    overlap = word_overlap(query, passage.text)
    return QueryCheck(
        row={"passage_id": passage.id, "requested_type": requested, "task": task, "query": query},
        overlap=overlap,
        verbatim_copy=query.lower() in passage.text.lower(),
        too_much_overlap=config.max_overlap is not None and overlap > config.max_overlap,
        dedup_key=" ".join(_WORD.findall(query.lower())),
    )


def diagnostics(
    passages: int,
    rows: int,
    counts: Mapping[str, int],
    mean_word_overlap: float | None,
    task_types: Mapping[str, int],
) -> dict[str, Any]:
    """The manifest's ``generate`` section (shared with the Beam pipeline, so both match)."""
    return {
        "passages": passages,
        "rows": rows,
        **{name: counts.get(name, 0) for name in DIAGNOSTIC_COUNTS},
        "mean_word_overlap": mean_word_overlap,
        "task_types": dict(task_types),
    }


def _generate(
    llm: LLM,
    passages: list[Passage],
    types: list[str | None],
    config: GenerateConfig,
    retry: bool,
    progress: bool,
) -> list[Generation]:
    """LLM generations for ``passages`` in batches, with a progress bar if ``progress``."""
    out = []
    desc = "FRet queries" + (" (retry)" if retry else "")
    with tqdm(total=len(passages), desc=desc, disable=not progress) as bar:
        for start in range(0, len(passages), config.batch_size):
            end = start + config.batch_size
            prompts = [
                query_generation_messages(p.text, t)
                for p, t in zip(passages[start:end], types[start:end], strict=True)
            ]
            out.extend(llm.generate(prompts, **generation_args(config, retry)))
            bar.update(len(prompts))
    return out


@dataclasses.dataclass(frozen=True)
class Answer:
    """The LLM's final answer for one passage: its generation (the retry's when the first
    answer was malformed), the parsed (task, query) or None, and whether it was retried."""

    generation: Generation
    parsed: tuple[str, str] | None
    retried: bool


def answer_passages(
    llm: LLM,
    passages: Sequence[Passage],
    types: Sequence[str | None],
    config: GenerateConfig,
    progress: bool = True,
) -> list[Answer]:
    """Each passage's answer to the prompt asking for its type; malformed first answers are
    asked once more, sampled (``generation_args(retry=True)``), as one batch."""
    passages, types = list(passages), list(types)
    generations = _generate(llm, passages, types, config, False, progress)
    parsed = [parse_answer(g.text, t) for g, t in zip(generations, types, strict=True)]
    bad = [i for i, p in enumerate(parsed) if p is None]
    if bad:
        again = _generate(
            llm, [passages[i] for i in bad], [types[i] for i in bad], config, True, progress
        )
        for i, generation in zip(bad, again, strict=True):
            parsed[i] = parse_answer(generation.text, types[i])
            generations[i] = generation
    retried = set(bad)
    return [
        Answer(g, p, i in retried) for i, (g, p) in enumerate(zip(generations, parsed, strict=True))
    ]


def check_answer(
    passage: Passage, requested: str | None, answer: Answer, config: GenerateConfig
) -> tuple[QueryCheck | None, Counter[str]]:
    """The answer's check (None for a malformed one) and what it adds to the diagnostic counts
    (``DIAGNOSTIC_COUNTS`` but ``dropped_duplicate``). The row is kept unless the check is
    None or ``too_much_overlap``."""
    counts = Counter(
        retried=int(answer.retried),
        cut_at_max_tokens=int(answer.generation.finish_reason == "length"),
        llm_failed=int(answer.generation.finish_reason == "error"),
        malformed=int(answer.parsed is None),
    )
    if answer.parsed is None:
        return None, counts
    check = check_query(passage, requested, answer.parsed, config)
    counts.update(
        verbatim_copy=int(check.verbatim_copy), dropped_overlap=int(check.too_much_overlap)
    )
    return check, counts


def first_of_duplicates(rows: Iterable[tuple[int, T]]) -> tuple[tuple[int, T], int]:
    """The earliest passage's row among rows with the same query (keyed by passage index), and
    how many were dropped as its duplicates."""
    ordered = sorted(rows, key=itemgetter(0))
    return ordered[0], len(ordered) - 1


def generate_queries(
    llm: LLM, passages: Sequence[Passage], config: GenerateConfig = GenerateConfig()
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows ``{passage_id, requested_type, task, query}`` and their diagnostics."""
    passages = list(passages)
    types = [requested_type(i, config) for i in range(len(passages))]
    answers = answer_passages(llm, passages, types, config)
    counts: Counter[str] = Counter()
    overlaps = []
    same_query: dict[Any, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
    for index, (passage, requested, answer) in enumerate(
        zip(passages, types, answers, strict=True)
    ):
        check, answer_counts = check_answer(passage, requested, answer, config)
        counts.update(answer_counts)
        if check is None:
            continue
        overlaps.append(check.overlap)
        if not check.too_much_overlap:
            same_query[check.dedup_key if config.dedup else index].append((index, check.row))
    kept = []
    for group in same_query.values():
        first, dropped = first_of_duplicates(group)
        kept.append(first)
        counts["dropped_duplicate"] += dropped
    rows = [row for _, row in sorted(kept, key=itemgetter(0))]
    return rows, diagnostics(
        len(passages),
        len(rows),
        counts,
        float(np.mean(overlaps)) if overlaps else None,
        Counter(task_type_name(r["task"]) for r in rows),
    )
