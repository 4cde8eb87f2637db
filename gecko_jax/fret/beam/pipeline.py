"""The FRet stages of ``run_fret`` as an Apache Beam pipeline (``gecko-fret-beam``).

The same passages, prompts, LLM calls, retrieval and labels as ``run_fret``, spread by the runner
(``--runner``: DirectRunner by default; Dataflow, Flink or Spark through the standard pipeline
options) over workers, with retrieval over corpus shards. Writes ``generated.jsonl`` and
``fret.jsonl`` (``run_fret``'s rows and records, in no particular order; sharded as
``fret-SSSSS-of-NNNNN.jsonl`` with ``--output_shards``) and ``manifest.json``, as
``docs/fret_format.md`` describes. The command line is :mod:`gecko_jax.cli.fret_beam`.

As for ``gecko-fret``, a local ``--out`` is locked while the pipeline runs, every LLM call goes
through the LLM cache in it (so a rerun asks the LLM only what no run answered), a finished run
is reused only when its fingerprint (``manifest.json``'s, beside it) matches, and more failed
LLM calls than ``--max_failed_share`` exit 5 (:mod:`gecko_jax.core.stages`). A bucket ``--out``
keeps no LLM cache: workers cannot append to a bucket file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from operator import itemgetter
from pathlib import Path
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.runners.runner import PipelineResult, PipelineState

from gecko_jax.core.paths import is_remote
from gecko_jax.core.stages import (
    MAX_FAILED_SHARE,
    begin_stage,
    check_failures,
    finish_stage,
    folder_lock,
    model_digest,
    stream_digest,
)
from gecko_jax.fret.beam.handlers import (
    EncoderHandler,
    LLMGenerateHandler,
    LLMScoreHandler,
    merge_cache_parts,
)
from gecko_jax.fret.beam.mine import ScoreAndLabel, ScoreHistograms, ShardedRetrieval, embed
from gecko_jax.fret.beam.stages import NAMESPACE, GenerateQueries, ReadPassages
from gecko_jax.fret.generate import GenerateConfig, diagnostics
from gecko_jax.fret.manifest import (
    failure_note,
    generate_section,
    llm_fingerprint,
    mine_section,
    run_sections,
)
from gecko_jax.fret.mine import SCORERS, MineConfig, mine_stats
from gecko_jax.fret.prompts import prompt_hashes
from gecko_jax.fret.records import FRET, FRET_FILES, GENERATED, LLM_CACHE, MANIFEST, record_line
from gecko_jax.fret.teacher import TEACHER_CHECK_LIMIT
from gecko_jax.llm.base import redact_credentials

# The statistics that are not counts (means, histograms, shard stats); merged into the manifest.
STATS = "_beam_stats.json"
# The ``mine/`` counters of the label guards: the manifest's ``mine.guards`` (as ``mine``'s).
GUARDS = ("round_trip_dropped", "relabel_blocked", "negative_replaced", "negative_dropped")


@dataclasses.dataclass(frozen=True)
class BeamFretConfig:
    """What to read, which models, the stage configs, and how to spread the work.

    ``llm`` is a ``load_llm`` spec and ``encoder`` a model folder; both must be reachable from
    every worker. ``share_models`` keeps one copy of each model per worker machine rather than
    per SDK process (``share_model_across_processes``): use it on GPU and TPU workers.
    """

    passages: str
    out_dir: str
    llm: str
    encoder: str
    llm_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    max_passages: int | None = None
    max_chars: int = 2000
    generate: GenerateConfig = dataclasses.field(default_factory=GenerateConfig)
    mine: MineConfig = dataclasses.field(default_factory=MineConfig)
    retrieval_shards: int = 4
    share_models: bool = False
    encoder_batch_size: int = 256
    output_shards: int = 1
    max_failed_share: float = MAX_FAILED_SHARE

    @property
    def cache_dir(self) -> str | None:
        """Where the LLM cache is: the output folder, unless it is a bucket."""
        return None if is_remote(self.out_dir) else self.out_dir


def _write(pcoll: beam.PCollection, out_dir: str, name: str, shards: int) -> None:
    """``name`` itself with one shard, else ``stem-SSSSS-of-NNNNN.suffix``."""
    stem, _, suffix = name.rpartition(".")
    _ = pcoll | f"Write {name}" >> beam.io.WriteToText(
        FileSystems.join(out_dir, stem),
        file_name_suffix="." + suffix,
        num_shards=shards,
        shard_name_template="" if shards == 1 else None,
    )


def _stat(name: str) -> beam.Map:
    return beam.Map(lambda value: (name, value))


def build(pipeline: beam.Pipeline, config: BeamFretConfig) -> None:
    """Add the FRet stages and their outputs to ``pipeline``."""
    llm = (config.llm, config.llm_kwargs)
    sharing = (config.share_models, config.cache_dir)
    generator = LLMGenerateHandler(*llm, config.generate.batch_size, *sharing)
    scorer = LLMScoreHandler(*llm, config.mine.score_batch_size, *sharing)
    queries, documents = (
        EncoderHandler(config.encoder, role, config.encoder_batch_size, config.share_models)
        for role in ("query", "document")
    )

    passages = pipeline | "Passages" >> ReadPassages(
        config.passages, config.max_passages, config.max_chars
    )
    rows, overlaps, identities = passages | "Generate" >> GenerateQueries(
        generator, config.generate
    )
    candidates, shard_stats = embed(
        passages, rows, documents, queries
    ) | "Retrieve" >> ShardedRetrieval(config.retrieval_shards, config.mine)
    records = {
        "rows": rows,
        "candidates": candidates,
        "passages": passages,
    } | "ScoreAndLabel" >> ScoreAndLabel(scorer, config.mine)

    _write(
        rows | "Rows" >> beam.Values() | "RowJson" >> beam.Map(record_line),
        config.out_dir,
        GENERATED,
        config.output_shards,
    )
    _write(
        records | "RecordJson" >> beam.Map(record_line), config.out_dir, FRET, config.output_shards
    )
    stats = (
        overlaps
        | "MeanOverlap" >> beam.combiners.Mean.Globally()
        | "Overlap" >> _stat("mean_word_overlap"),
        identities | "Models" >> beam.combiners.ToList() | "Llm" >> _stat("llm"),
        shard_stats | "AllShards" >> beam.combiners.ToList() | "Shards" >> _stat("shards"),
        records | "ScoreHistograms" >> ScoreHistograms() | "Histograms" >> _stat("histograms"),
    )
    _write(
        stats
        | "Stats" >> beam.Flatten()
        | "StatsDict" >> beam.combiners.ToDict()
        | "StatsJson" >> beam.Map(json.dumps),
        config.out_dir,
        STATS,
        1,
    )


def _counters(result: PipelineResult) -> dict[str, int]:
    """Counter totals by name (committed where the runner has them, else attempted)."""
    totals: dict[str, int] = defaultdict(int)
    for counter in result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]:
        value = counter.committed if counter.committed is not None else counter.attempted
        totals[counter.key.metric.name] += value
    return totals


def _section(counts: Mapping[str, int], stage: str) -> dict[str, int]:
    prefix = stage + "/"
    return {k.removeprefix(prefix): v for k, v in counts.items() if k.startswith(prefix)}


def _mine_section(
    config: BeamFretConfig, counts: Mapping[str, int], stats: dict[str, Any], kept: int
) -> dict[str, Any]:
    """``mine_stats`` from the counters; the index stats are each shard's, the recall pooled
    over the shards (found over sampled neighbours).

    No queries at all: ``{"rows": 0}`` as ``mine`` gives; queries that the round trip all dropped
    still get the full section, as in ``mine``.
    """
    mine = _section(counts, "mine")
    shards = sorted(stats.get("shards", []), key=itemgetter("shard"))
    guards = {name: mine.get(name, 0) for name in GUARDS}
    if not mine.get("rows") and not guards["round_trip_dropped"]:
        return {"rows": 0, "shards": shards}
    recalls = [s["recall"] for s in shards if s["recall"] is not None]
    sampled = sum(r["sampled"] for r in recalls)
    return {
        **mine_stats(
            rows=mine.get("rows", 0),
            num_candidates=min(config.mine.num_candidates, kept),
            index_backend="+".join(sorted({s["backend"] for s in shards})),
            recall_vs_exact=sum(r["found"] for r in recalls) / sampled if sampled else None,
            positive_not_seed=mine.get("positive_not_seed", 0),
            failed_scores=mine.get("failed_scores", 0),
            histograms=stats["histograms"],
            guards=guards,
        ),
        "shards": shards,
    }


def manifest(
    config: BeamFretConfig,
    counts: Mapping[str, int],
    stats: dict[str, Any],
    records: Sequence[Mapping[str, Any]],
    runner: str,
) -> dict[str, Any]:
    """``run_fret``'s manifest sections, from the counters, the pipeline's statistics and
    (for the teacher check) the written ``records``."""
    passages = _section(counts, "passages")
    generate = _section(counts, "generate")
    task_types = {
        k.removeprefix("task_type/"): v for k, v in generate.items() if k.startswith("task_type/")
    }
    kept = passages.get("kept", 0)
    overlap = stats.get("mean_word_overlap")
    identities = [json.loads(i) for i in sorted(stats.get("llm", []))]
    llm = identities[0] if len(identities) == 1 else identities
    return {
        "passages_file": config.passages,
        **run_sections(llm, config.llm_kwargs, passages, config.max_chars),
        "generate": generate_section(
            config.generate,
            diagnostics(
                kept,
                generate.get("rows", 0),
                generate,
                None if overlap is None or math.isnan(overlap) else overlap,
                task_types,
            ),
        ),
        "mine": mine_section(config.mine, _mine_section(config, counts, stats, kept), records),
        "beam": {
            "runner": runner,
            "llm_spec": redact_credentials(config.llm),
            "encoder": config.encoder,
            "retrieval_shards": config.retrieval_shards,
            "share_models": config.share_models,
            "output_shards": config.output_shards,
        },
    }


def _read_stats(out_dir: str) -> dict[str, Any]:
    path = FileSystems.join(out_dir, STATS)
    with FileSystems.open(path) as handle:
        stats = json.loads(handle.read())
    FileSystems.delete([path])
    return stats


def _checked_records(config: BeamFretConfig) -> list[dict[str, Any]]:
    """The written records the teacher check reads: the first ``TEACHER_CHECK_LIMIT``, so a
    paper-scale run is not read back whole."""
    pattern = FileSystems.join(config.out_dir, FRET_FILES)
    records: list[dict[str, Any]] = []
    for match in sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list):
        with FileSystems.open(match) as handle:
            for line in handle:
                if line.strip() and len(records) < TEACHER_CHECK_LIMIT:
                    records.append(json.loads(line))
    return records


def fingerprint(config: BeamFretConfig) -> dict[str, Any]:
    """What the outputs are made from: the passages and models by content, and settings."""
    with FileSystems.open(config.passages) as handle:
        passages = stream_digest(handle)
    by_content = ("passages", "encoder", "llm", "llm_kwargs")
    return {
        "passages": passages,
        "encoder": model_digest(config.encoder),
        "llm": llm_fingerprint(config.llm, config.llm_kwargs),
        "prompt_hashes": prompt_hashes(),
        **{
            name: value
            for name, value in dataclasses.asdict(config).items()
            if name not in (*by_content, "out_dir", "share_models", "encoder_batch_size")
        },
    }


def run(
    config: BeamFretConfig, pipeline_args: Sequence[str] | None = None, restart: bool = False
) -> dict[str, Any]:
    """Build and run the pipeline, wait for it, and write and return the manifest.

    A local output folder is locked, and a finished run with the same fingerprint is returned
    as it is (another fingerprint: :class:`~gecko_jax.core.stages.StageChanged` unless
    ``restart``). Raises :class:`~gecko_jax.core.stages.LLMCallsFailed`, after writing every
    output, when more than ``config.max_failed_share`` of the LLM calls failed.
    """
    local = config.cache_dir is not None
    with folder_lock(config.out_dir) if local else contextlib.nullcontext():
        manifest_path, inputs = Path(config.out_dir) / MANIFEST, fingerprint(config)
        if local and begin_stage(manifest_path, inputs, restart):
            return json.loads(manifest_path.read_text())
        if local:
            merge_cache_parts(config.out_dir)  # a killed run's new answers
        try:
            out = _run_pipeline(config, pipeline_args)
        finally:
            added = merge_cache_parts(config.out_dir) if local else 0
        if local:
            out["llm_cache"] = {"file": LLM_CACHE, "added": added}
        _write_manifest(config, out)
        _check_failures(config, out)
        if local:
            finish_stage(manifest_path, inputs)
    return out


def _check_failures(config: BeamFretConfig, out: Mapping[str, Any]) -> None:
    if config.cache_dir is None:
        rerun = "a bucket --out keeps no LLM cache, so a rerun makes every call again"
    else:
        rerun = f"the outputs are in {config.out_dir}" + failure_note()
    generate, mine = out["generate"], out["mine"]
    share = config.max_failed_share
    check_failures("generate", generate["llm_failed"], generate["passages"], share, rerun)
    scores = len(SCORERS) * mine.get("rows", 0) * mine.get("num_candidates", 0)
    check_failures("mine", mine.get("failed_scores", 0), scores, share, rerun)


def _write_manifest(config: BeamFretConfig, out: Mapping[str, Any]) -> None:
    with FileSystems.create(FileSystems.join(config.out_dir, MANIFEST)) as handle:
        handle.write((json.dumps(out, indent=2) + "\n").encode("utf-8"))


def _run_pipeline(config: BeamFretConfig, pipeline_args: Sequence[str] | None) -> dict[str, Any]:
    options = PipelineOptions(list(pipeline_args or []))
    runner = options.view_as(StandardOptions).runner or "DirectRunner"
    start = time.perf_counter()
    pipeline = beam.Pipeline(options=options)
    build(pipeline, config)
    result = pipeline.run()
    state = result.wait_until_finish()
    if state != PipelineState.DONE:
        raise RuntimeError(f"the FRet pipeline ended in state {state}")
    stats = _read_stats(config.out_dir)
    out = manifest(config, _counters(result), stats, _checked_records(config), runner)
    out["timings_s"] = {"pipeline": time.perf_counter() - start}
    return out
