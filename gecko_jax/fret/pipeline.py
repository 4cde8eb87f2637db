"""``run_fret``: passages -> ``generated.jsonl`` -> ``fret.jsonl``, resumable, with a manifest.

A stage whose output was made from the same inputs (its fingerprint, :mod:`gecko_jax.core.stages`)
is skipped, and every LLM call goes through the on-disk cache in the output folder, so a killed
or failed run resumes where it stopped and a rerun pays no LLM call twice.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from gecko_jax.core.stages import (
    MAX_FAILED_SHARE,
    EmptyInput,
    begin_stage,
    check_failures,
    file_digest,
    finish_stage,
    folder_lock,
    json_digest,
    model_digest,
)
from gecko_jax.fret.generate import GenerateConfig, generate_queries
from gecko_jax.fret.manifest import (
    cache_sections,
    config_record,
    failure_note,
    generate_section,
    llm_fingerprint,
    mine_section,
    run_sections,
)
from gecko_jax.fret.mine import SCORERS, MineConfig, mine
from gecko_jax.fret.passages import (
    Passage,
    check_enough_passages,
    prepare_passages,
    read_passages_jsonl,
)
from gecko_jax.fret.prompts import PROMPT_VERSION, prompt_hashes
from gecko_jax.fret.records import FRET, GENERATED, LLM_CACHE, MANIFEST, read_jsonl, write_jsonl
from gecko_jax.llm import LLM, CachedLLM, load_llm

STAGES = ("generate", "mine")


def _llm(llm: str | LLM, out: Path, llm_kwargs: Mapping[str, Any] | None) -> CachedLLM:
    if isinstance(llm, str):
        loaded = load_llm(llm, cache=out / LLM_CACHE, **(llm_kwargs or {}))
        assert isinstance(loaded, CachedLLM)
        return loaded
    return llm if isinstance(llm, CachedLLM) else CachedLLM(llm, out / LLM_CACHE)


def _encoder_fingerprint(encoder: Any) -> Any:
    """A model folder by its content, an :class:`~gecko_jax.encoder.Encoder` by its config."""
    if encoder is None or isinstance(encoder, str | os.PathLike):
        return None if encoder is None else model_digest(encoder)
    return {"config": encoder.config.to_dict()}


def run_fret(
    passages: str | os.PathLike | Sequence[Mapping[str, Any]],
    out_dir: str | os.PathLike,
    llm: str | LLM,
    encoder: Any = None,
    stages: Sequence[str] = STAGES,
    max_passages: int | None = None,
    max_chars: int = 2000,
    generate_config: GenerateConfig | None = None,
    mine_config: MineConfig | None = None,
    mine_only: Collection[str] | None = None,
    llm_kwargs: Mapping[str, Any] | None = None,
    restart: bool = False,
    max_failed_share: float = MAX_FAILED_SHARE,
    after_stage: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    """Run the FRet ``stages`` into ``out_dir`` and return the manifest.

    ``mine_only`` (passage ids): mine only the queries generated from these passages. The
    others keep just their generated query, for example held-out queries whose target is their
    own passage, which need no LLM reranking. Every passage stays in the retrieval corpus.

    ``llm`` is a ``load_llm`` spec (``llm_kwargs`` go to its backend's constructor, e.g.
    ``batch_size``) or a backend (wrapped in the output folder's cache unless already cached);
    ``encoder`` an :class:`~gecko_jax.encoder.Encoder` or a model folder (default: MiniLM). The
    manifest holds only ``cache_identity()`` of the LLM, never a key.

    A stage output is reused only when its fingerprint (:mod:`gecko_jax.core.stages`) matches; one
    made from other inputs raises :class:`~gecko_jax.core.stages.StageChanged` unless ``restart``.
    A stage whose LLM calls failed for more than ``max_failed_share`` keeps its good rows and
    raises :class:`~gecko_jax.core.stages.LLMCallsFailed`; a rerun retries only the failed calls.
    ``after_stage`` runs after each stage that finished (``gecko-fret`` mirrors a bucket
    ``--out`` then).
    """
    unknown = set(stages) - set(STAGES)
    if unknown:
        raise ValueError(f"unknown stages {sorted(unknown)}; known: {STAGES}")
    if llm_kwargs and not isinstance(llm, str):
        raise ValueError(
            f"llm_kwargs {sorted(llm_kwargs)} configure an LLM loaded from a spec, but "
            f"{type(llm).__name__} is already built"
        )
    generate_config = generate_config or GenerateConfig()
    mine_config = mine_config or MineConfig()

    skipped_lines, source = 0, "the passages given"
    if isinstance(passages, str | os.PathLike):
        source = str(passages)
        records, skipped_lines = read_passages_jsonl(passages)
    else:
        records = list(passages)
    prepared, counts = prepare_passages(records[:max_passages], max_chars)
    counts["malformed_lines"] = skipped_lines
    check_enough_passages(prepared, counts, source)  # before the output folder is touched
    shared_inputs = {
        "passages": json_digest([p.to_json() for p in prepared]),
        "llm": llm_fingerprint(llm, llm_kwargs),
        "prompt_version": PROMPT_VERSION,
        "prompt_hashes": prompt_hashes(),
    }
    with folder_lock(out_dir) as out:
        manifest_path = out / MANIFEST
        manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
        if isinstance(passages, str | os.PathLike):
            manifest["passages_file"] = source
        timings = manifest.setdefault("timings_s", {})
        loaded: list[CachedLLM] = []

        def cached_llm() -> CachedLLM:
            """Loaded at the first stage that runs: a finished run loads no LLM at all."""
            if not loaded:
                loaded.append(_llm(llm, out, llm_kwargs))
                identity = loaded[0].cache_identity()
                manifest.update(run_sections(identity, llm_kwargs, counts, max_chars))
            return loaded[0]

        def save() -> None:
            """After each stage, so a crash in a later one keeps the earlier diagnostics."""
            if loaded:
                manifest.update(cache_sections(loaded[0]))
            manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")

        generate_inputs = {**shared_inputs, "generate": config_record(generate_config)}
        if "generate" in stages and not begin_stage(out / GENERATED, generate_inputs, restart):
            start = time.perf_counter()
            rows, diagnostics = generate_queries(cached_llm(), prepared, generate_config)
            if rows:
                write_jsonl(out / GENERATED, rows)
            timings["generate"] = time.perf_counter() - start
            manifest["generate"] = generate_section(generate_config, diagnostics)
            save()
            check_failures(
                "generate",
                diagnostics["llm_failed"],
                len(prepared),
                max_failed_share,
                f"its {len(rows)} good rows are in {out / GENERATED}" + failure_note(loaded[0]),
            )
            finish_stage(out / GENERATED, generate_inputs)
            after_stage()

        if "mine" in stages:
            if not (out / GENERATED).exists():
                raise FileNotFoundError(
                    f"{out / GENERATED} is missing: run the generate stage first"
                )
            mine_inputs = {
                **shared_inputs,
                "generated": file_digest(out / GENERATED),
                "mine": config_record(mine_config),
                "mine_only": None if mine_only is None else sorted(mine_only),
                "encoder": _encoder_fingerprint(encoder),
            }
            if not begin_stage(out / FRET, mine_inputs, restart):
                _mine_stage(
                    out,
                    cached_llm(),
                    encoder,
                    prepared,
                    mine_config,
                    mine_only,
                    max_failed_share,
                    manifest,
                    save,
                )
                finish_stage(out / FRET, mine_inputs)
        save()
        after_stage()
    return manifest


def _mine_stage(
    out: Path,
    cached: CachedLLM,
    encoder: Any,
    prepared: Sequence[Passage],
    mine_config: MineConfig,
    mine_only: Collection[str] | None,
    max_failed_share: float,
    manifest: dict[str, Any],
    save: Callable[[], None],
) -> None:
    """Mine ``generated.jsonl`` into ``fret.jsonl``; records with a failed score are left out
    (and the stage fails) when more than ``max_failed_share`` of the scores failed."""
    start = time.perf_counter()
    generated = read_jsonl(out / GENERATED)
    if mine_only is not None:
        keep = set(mine_only)
        generated = [row for row in generated if row["passage_id"] in keep]
    if not generated:
        raise EmptyInput(f"{out / GENERATED} holds no queries to mine")
    records_out, stats = mine(cached, _encoder(encoder), prepared, generated, mine_config)
    scores = len(SCORERS) * sum(len(r["candidate_ids"]) for r in records_out)
    if scores and stats["failed_scores"] / scores > max_failed_share:
        records_out = [r for r in records_out if _all_scored(r)]
    write_jsonl(out / FRET, records_out)
    manifest["timings_s"]["mine"] = time.perf_counter() - start
    manifest["mine"] = mine_section(mine_config, stats, records_out)
    if mine_only is not None:
        manifest["mine"]["mined_passages"] = len(set(mine_only))
    save()
    check_failures(
        "mine",
        stats["failed_scores"],
        scores,
        max_failed_share,
        f"the {len(records_out)} records whose scores all came back are in {out / FRET}"
        + failure_note(cached),
    )


def _all_scored(record: Mapping[str, Any]) -> bool:
    return all(math.isfinite(s) for name in SCORERS for s in record["scores"][name])


def _encoder(encoder: Any) -> Any:
    from gecko_jax.encoder import Encoder

    if isinstance(encoder, Encoder):
        return encoder
    if encoder is None:
        from gecko_jax.core.assets import minilm_path

        encoder = minilm_path()
    return Encoder.from_pretrained(encoder)
