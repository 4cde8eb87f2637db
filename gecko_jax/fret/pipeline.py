"""``run_fret``: passages -> ``generated.jsonl`` -> ``fret.jsonl``, resumable, with a manifest.

A stage whose output exists is skipped, and every LLM call goes through the on-disk cache in the
output folder, so a killed run resumes where it stopped and a rerun costs no LLM calls.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from gecko_jax.fret.generate import GenerateConfig, generate_queries
from gecko_jax.fret.mine import MineConfig, mine
from gecko_jax.fret.passages import check_enough_passages, prepare_passages, read_passages_jsonl
from gecko_jax.fret.prompts import PROMPT_VERSION, prompt_hashes
from gecko_jax.fret.teacher import seed_agreement
from gecko_jax.llm import LLM, CachedLLM, load_llm
from gecko_jax.llm.base import redact_credentials

GENERATED = "generated.jsonl"
FRET = "fret.jsonl"
MANIFEST = "manifest.json"
LLM_CACHE = "llm_cache.jsonl"
STAGES = ("generate", "mine")


def write_jsonl(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """Written to a temporary name first, so a killed run never leaves a partial stage output."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    os.replace(tmp, path)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


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


def _llm(llm: str | LLM, out: Path, llm_kwargs: Mapping[str, Any] | None) -> CachedLLM:
    if isinstance(llm, str):
        loaded = load_llm(llm, cache=out / LLM_CACHE, **(llm_kwargs or {}))
        assert isinstance(loaded, CachedLLM)
        return loaded
    return llm if isinstance(llm, CachedLLM) else CachedLLM(llm, out / LLM_CACHE)


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
) -> dict[str, Any]:
    """Run the FRet ``stages`` into ``out_dir`` and return the manifest.

    ``mine_only`` (passage ids): mine only the queries generated from these passages. The
    others keep just their generated query, for example held-out queries whose target is their
    own passage, which need no LLM reranking. Every passage stays in the retrieval corpus.

    ``llm`` is a ``load_llm`` spec (``llm_kwargs`` go to its backend's constructor, e.g.
    ``batch_size``) or a backend (wrapped in the output folder's cache unless already cached);
    ``encoder`` an :class:`~gecko_jax.encoder.Encoder` or a model folder (default: MiniLM). The
    manifest holds only ``cache_identity()`` of the LLM, never a key.
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
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}

    skipped_lines, source = 0, "the passages given"
    if isinstance(passages, str | os.PathLike):
        manifest["passages_file"] = source = str(passages)
        records, skipped_lines = read_passages_jsonl(passages)
    else:
        records = list(passages)
    prepared, counts = prepare_passages(records[:max_passages], max_chars)
    counts["malformed_lines"] = skipped_lines
    check_enough_passages(prepared, counts, source)
    outputs = {"generate": out / GENERATED, "mine": out / FRET}
    if all(outputs[stage].exists() for stage in stages):
        return manifest  # nothing to do: the LLM is not even loaded
    cached = _llm(llm, out, llm_kwargs)
    manifest.update(
        {
            "llm": cached.cache_identity(),
            "llm_kwargs": llm_kwargs_record(llm_kwargs),
            "prompt_version": PROMPT_VERSION,
            "prompt_hashes": prompt_hashes(),
            "passages": {**counts, "max_chars": max_chars},
        }
    )
    timings = manifest.setdefault("timings_s", {})

    def save() -> None:
        """After each stage, so a crash in a later one keeps the earlier diagnostics."""
        manifest["llm_cache"] = {
            "path": str(cached.path),
            "hits": cached.hits,
            "misses": cached.misses,
        }
        manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")

    if "generate" in stages and not (out / GENERATED).exists():
        start = time.perf_counter()
        rows, diagnostics = generate_queries(cached, prepared, generate_config)
        write_jsonl(out / GENERATED, rows)
        timings["generate"] = time.perf_counter() - start
        manifest["generate"] = {"config": config_record(generate_config), **diagnostics}
        save()

    if "mine" in stages and not (out / FRET).exists():
        if not (out / GENERATED).exists():
            raise FileNotFoundError(f"{out / GENERATED} is missing: run the generate stage first")
        start = time.perf_counter()
        generated = read_jsonl(out / GENERATED)
        if mine_only is not None:
            keep = set(mine_only)
            generated = [row for row in generated if row["passage_id"] in keep]
        records_out, stats = mine(cached, _encoder(encoder), prepared, generated, mine_config)
        write_jsonl(out / FRET, records_out)
        timings["mine"] = time.perf_counter() - start
        manifest["mine"] = {
            "config": config_record(mine_config),
            **stats,
            "teacher_check": seed_agreement(records_out, mine_config.fusion, mine_config.rrf_k),
        }
        if mine_only is not None:
            manifest["mine"]["mined_passages"] = len(set(mine_only))

    save()
    return manifest


def _encoder(encoder: Any) -> Any:
    from gecko_jax.encoder import Encoder

    if isinstance(encoder, Encoder):
        return encoder
    if encoder is None:
        from gecko_jax.assets import minilm_path

        encoder = minilm_path()
    return Encoder.from_pretrained(encoder)
