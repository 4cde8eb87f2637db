"""The sections of a FRet run's ``manifest.json`` (:data:`~gecko_jax.fret.records.MANIFEST_FIELDS`),
built the same way by both runners from their counts and statistics."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from gecko_jax.core.stages import model_digest
from gecko_jax.fret.generate import GenerateConfig
from gecko_jax.fret.mine import MineConfig
from gecko_jax.fret.prompts import PROMPT_VERSION, prompt_hashes
from gecko_jax.fret.records import LLM_CACHE
from gecko_jax.fret.teacher import seed_agreement
from gecko_jax.llm import LLM, CachedLLM
from gecko_jax.llm.base import redact_credentials

PASSAGE_COUNTS = ("input", "empty", "truncated", "kept", "malformed_lines")


def llm_kwargs_record(llm_kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    """The LLM settings as the manifest records them: JSON values as they are, others (a mesh)
    by their repr, so a run says how its LLM was set up even where the cache key does not; URL
    credentials removed."""
    record = {}
    for key, value in sorted((llm_kwargs or {}).items()):
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            value = repr(value)
        record[key] = redact_credentials(value) if isinstance(value, str) else value
    return record


def config_record(config: Any) -> dict[str, Any]:
    """A config dataclass as the manifest file holds it (tuples as lists), so the manifest a
    run returns equals the one it wrote."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def llm_fingerprint(llm: str | LLM, llm_kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    """What identifies the LLM's answers without loading it: the spec (credentials removed; a
    local model by content, so a moved install resumes) or the backend's cache identity, and
    ``max_context``, the one setting that changes answers (those it cuts). Batch sizes,
    timeouts and retries are left out, so a rerun that retries failed calls with a longer
    timeout still resumes."""
    if isinstance(llm, str):
        kind, _, target = llm.partition(":")
        spec = f"{kind}:{model_digest(target)}" if kind == "jax" else redact_credentials(llm)
        identity = {"spec": spec}
    else:
        identity = llm.cache_identity()
    if llm_kwargs and "max_context" in llm_kwargs:
        identity["max_context"] = llm_kwargs["max_context"]
    return identity


def run_sections(
    llm_identity: Any,
    llm_kwargs: Mapping[str, Any] | None,
    passage_counts: Mapping[str, int],
    max_chars: int,
) -> dict[str, Any]:
    """``llm``, ``llm_kwargs``, the prompts' version and hashes, and the ``passages`` counts."""
    return {
        "llm": llm_identity,
        "llm_kwargs": llm_kwargs_record(llm_kwargs),
        "prompt_version": PROMPT_VERSION,
        "prompt_hashes": prompt_hashes(),
        "passages": {
            **{name: passage_counts.get(name, 0) for name in PASSAGE_COUNTS},
            "max_chars": max_chars,
        },
    }


def generate_section(config: GenerateConfig, diagnostics: Mapping[str, Any]) -> dict[str, Any]:
    """The ``generate`` section: the config and ``generate.diagnostics``."""
    return {"config": config_record(config), **diagnostics}


def negative_positions(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Where the hard negatives sit in their query's retrieved list (1 = the retriever's first
    candidate), and how many records have none: a negative near the end of the list is one
    the student already tells apart, so it teaches little (the quality run's measured reason
    for choosing the negative's ranking, ``MineConfig.negative_fusion``)."""
    ranks = [
        list(r["candidate_ids"]).index(r["negative"]["id"]) + 1 for r in records if r["negative"]
    ]
    return {
        "mean_retriever_rank": float(np.mean(ranks)) if ranks else None,
        "median_retriever_rank": float(np.median(ranks)) if ranks else None,
        "without_negative": len(records) - len(ranks),
    }


def mine_section(
    config: MineConfig, stats: Mapping[str, Any], records: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """The ``mine`` section: the config, ``mine.mine_stats``, the teacher check on ``records``
    and where their hard negatives sit."""
    return {
        "config": config_record(config),
        **stats,
        "teacher_check": seed_agreement(records, config.fusion, config.rrf_k),
        "negatives": negative_positions(records),
    }


def cache_sections(cached: CachedLLM) -> dict[str, Any]:
    """``llm_cache`` (the file, in the output folder wherever it is mounted, and this run's
    hits and misses) and ``llm_calls`` (the backend's call statistics)."""
    return {
        "llm_cache": {"file": LLM_CACHE, "hits": cached.hits, "misses": cached.misses},
        "llm_calls": cached.call_stats(),
    }


RERUN_NOTE = (
    "Run the same command again to retry only the failed calls (the others come from the LLM cache)"
)


def failure_note(cached: CachedLLM | None = None) -> str:
    """What a failed stage's message ends with: the time the backend lost to failed calls
    (when it counts them) and what a rerun does."""
    stats = cached.call_stats() if cached is not None else {}
    lost = f"; {stats['failed_wait_s']:.0f} s went to failed requests" if stats else ""
    return f"{lost}. {RERUN_NOTE}"
