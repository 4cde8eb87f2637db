"""The files a FRet run writes and the fields they hold: one schema for ``gecko-fret``,
``gecko-fret-beam`` and the FRet training task (``tasks/fret.py``), documented field by field
in ``docs/fret_format.md``.

Plain Python, no model imports: the seqio task reads records through it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

GENERATED = "generated.jsonl"
FRET = "fret.jsonl"
MANIFEST = "manifest.json"
LLM_CACHE = "llm_cache.jsonl"
# Where Beam workers append their new LLM cache entries while a pipeline runs, one file each;
# the driver moves them into LLM_CACHE afterwards.
LLM_CACHE_PARTS = "llm_cache.parts"
# FRET itself, or Beam's shards of it (``fret-00000-of-00004.jsonl``).
FRET_FILES = "fret*.jsonl"


class Field(NamedTuple):
    name: str
    type: str
    meaning: str


# One line of GENERATED: a query the LLM wrote for a seed passage.
GENERATED_FIELDS = (
    Field("passage_id", "str", "id of the seed passage the query was written from"),
    Field("requested_type", "str | null", "TASK_TYPES name the prompt asked for (null: any)"),
    Field("task", "str", "task description: a prompts.TASK_TYPES text, or the LLM's own"),
    Field("query", "str", "the query"),
)

# One line of FRET: a mined training example with its provenance. Passages are objects
# ``{"id", "title", "text"}``; per-candidate lists are in ``candidate_ids`` order.
RECORD_FIELDS = (
    Field("task", "str", "task description, from the generated row"),
    Field("query", "str", "the query, from the generated row"),
    Field("positive", "passage", "the top fused candidate (need not be the seed)"),
    Field("negative", "passage | null", "the hard negative (null: none was safe)"),
    Field("seed_id", "str", "id of the passage the query was written from"),
    Field("requested_type", "str | null", "task type the prompt asked for"),
    Field("positive_rank", "int", "the positive's fused rank (1 = best)"),
    Field("negative_rank", "int | null", "the negative's fused rank"),
    Field("candidate_ids", "list[str]", "retrieved candidates, retrieval order, seed included"),
    Field("ranks", "object", "per-candidate ranks: query_likelihood, relevance, fused"),
    Field("scores", "object", "per-candidate scores: query_likelihood, relevance, fused"),
    Field("guards", "object", "relabel_blocked (bool) and negative (kept, replaced, dropped)"),
)
# The fields the training task needs (dotted: nested); the others are provenance.
TRAINING_FIELDS = ("task", "query", "positive.text")

# MANIFEST, by dotted name. Sections a runner does not write are absent.
MANIFEST_FIELDS = (
    Field("passages_file", "str", "the passages file (absent when passages came from Python)"),
    Field("llm", "object", "the LLM's cache identity (backend, model, ...), never a key"),
    Field("llm_kwargs", "object", "the LLM backend's settings, URL credentials removed"),
    Field("prompt_version", "str", "version of the FRet prompts"),
    Field("prompt_hashes", "object", "sha256 of each prompt template"),
    Field("passages.input", "int", "passage records read"),
    Field("passages.empty", "int", "records whose text was empty"),
    Field("passages.truncated", "int", "passages cut to max_chars"),
    Field("passages.kept", "int", "passages used (seeds and corpus)"),
    Field("passages.malformed_lines", "int", "lines skipped as malformed"),
    Field("passages.max_chars", "int", "the cut length"),
    Field("generate.config", "object", "the GenerateConfig"),
    Field("generate.passages", "int", "passages asked for a query"),
    Field("generate.rows", "int", "rows written to generated.jsonl"),
    Field("generate.llm_failed", "int", "passages whose LLM call failed"),
    Field("generate.malformed", "int", "answers malformed after the retry"),
    Field("generate.retried", "int", "malformed first answers asked again"),
    Field("generate.cut_at_max_tokens", "int", "answers cut at max_tokens"),
    Field("generate.verbatim_copy", "int", "queries found verbatim in their passage"),
    Field("generate.dropped_overlap", "int", "queries dropped by max_overlap"),
    Field("generate.dropped_duplicate", "int", "queries dropped as duplicates of an earlier one"),
    Field("generate.mean_word_overlap", "float | null", "mean share of query words in the passage"),
    Field("generate.task_types", "object", "rows per task type"),
    Field("mine.config", "object", "the MineConfig"),
    Field("mine.guards", "object", "how often each label guard acted"),
    Field("mine.rows", "int", "records written to fret.jsonl"),
    Field("mine.num_candidates", "int", "candidates per query"),
    Field("mine.index_backend", "str", "vector index backend ('+'-joined over Beam's shards)"),
    Field(
        "mine.recall_vs_exact",
        "float",
        "index recall against exact search on a query sample; Beam: pooled over its retrieval "
        "shards, each shard against its own exact top-N",
    ),
    Field("mine.positive_not_seed", "float", "share of records whose positive is not the seed"),
    Field("mine.failed_scores", "int", "LLM scores that failed (NaN)"),
    Field("mine.histograms", "object", "per scorer: counts and edges of 10 bins, or null"),
    Field("mine.teacher_check", "object", "P@1 of each ranking against the seed, and a verdict"),
    Field(
        "mine.negatives",
        "object",
        "the hard negatives' mean and median rank in the retrieved list, and records without "
        "one (Beam: on the teacher check's records)",
    ),
    Field("mine.mined_passages", "int", "gecko-fret only: passages mined when mine_only is set"),
    Field("mine.shards", "list", "gecko-fret-beam only: each retrieval shard's size and recall"),
    Field("llm_cache.file", "str", "the LLM cache file, in the output folder"),
    Field("llm_cache.hits", "int", "gecko-fret only: calls answered from the cache"),
    Field("llm_cache.misses", "int", "gecko-fret only: calls sent to the LLM"),
    Field("llm_cache.added", "int", "gecko-fret-beam only: cache entries this run added"),
    Field("llm_calls", "object", "gecko-fret only: the backend's call statistics"),
    Field("timings_s", "object", "seconds per stage (gecko-fret) or for the pipeline (Beam)"),
    Field("beam", "object", "gecko-fret-beam only: runner, shards, model paths"),
)


def record_line(row: Mapping[str, Any]) -> str:
    """One JSONL line (without its newline), as both runners write rows and records."""
    return json.dumps(row, ensure_ascii=False)


def write_jsonl(path: str | os.PathLike, rows: Sequence[Mapping[str, Any]]) -> None:
    """Written to a temporary name first, so a killed run never leaves a partial stage output."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.writelines(record_line(row) + "\n" for row in rows)
    os.replace(tmp, path)


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
