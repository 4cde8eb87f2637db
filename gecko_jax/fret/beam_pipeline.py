"""``gecko-fret-beam``: the FRet stages of ``run_fret`` as an Apache Beam pipeline.

The same passages, prompts, LLM calls, retrieval and labels as ``run_fret``, spread by the runner
(``--runner``: DirectRunner by default; Dataflow, Flink or Spark through the standard pipeline
options) over workers, with retrieval over corpus shards. Writes ``generated.jsonl`` and
``fret.jsonl`` (``run_fret``'s rows and records, in no particular order) and ``manifest.json``.
Unlike ``run_fret`` there is no LLM call cache: the runner retries failed bundles, and a failed
run starts again from the passages. As for ``gecko-fret``, a local ``--out`` is locked while the
pipeline runs, a finished run is reused only when its fingerprint (``manifest.json``'s, beside
it) matches, and more failed LLM calls than ``--max-failed-share`` exit 5 (:mod:`gecko_jax.stages`).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
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

from gecko_jax.fret.beam_handlers import EncoderHandler, LLMGenerateHandler, LLMScoreHandler
from gecko_jax.fret.beam_mine import ScoreAndLabel, ScoreHistograms, ShardedRetrieval, embed
from gecko_jax.fret.beam_stages import NAMESPACE, GenerateQueries, ReadPassages
from gecko_jax.fret.fusion import FUSION_MEMBERS, NEGATIVE_CHOICES
from gecko_jax.fret.generate import GenerateConfig, diagnostics
from gecko_jax.fret.guards import RELABEL_GUARDS
from gecko_jax.fret.llm_flags import add_llm_arg, check_llm_args, share
from gecko_jax.fret.mine import SCORERS, MineConfig, mine_stats
from gecko_jax.fret.pipeline import (
    FRET,
    GENERATED,
    MANIFEST,
    config_record,
    llm_fingerprint,
    llm_kwargs_record,
)
from gecko_jax.fret.prompts import PROMPT_VERSION, prompt_hashes
from gecko_jax.fret.teacher import TEACHER_CHECK_LIMIT, seed_agreement
from gecko_jax.llm.base import redact_credentials
from gecko_jax.paths import is_remote
from gecko_jax.stages import (
    MAX_FAILED_SHARE,
    RESTART_FLAG,
    StageError,
    begin_stage,
    check_failures,
    finish_stage,
    folder_lock,
    stream_digest,
)

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


def _json(row: Mapping[str, Any]) -> str:
    return json.dumps(row, ensure_ascii=False)


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
    generator = LLMGenerateHandler(*llm, config.generate.batch_size, config.share_models)
    scorer = LLMScoreHandler(*llm, config.mine.score_batch_size, config.share_models)
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
        rows | "Rows" >> beam.Values() | "RowJson" >> beam.Map(_json),
        config.out_dir,
        GENERATED,
        config.output_shards,
    )
    _write(records | "RecordJson" >> beam.Map(_json), config.out_dir, FRET, config.output_shards)
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
    """``mine_stats`` from the counters; the index stats are each shard's, the recall their mean.

    No queries at all: ``{"rows": 0}`` as ``mine`` gives; queries that the round trip all dropped
    still get the full section, as in ``mine``.
    """
    mine = _section(counts, "mine")
    shards = sorted(stats.get("shards", []), key=itemgetter("shard"))
    guards = {name: mine.get(name, 0) for name in GUARDS}
    if not mine.get("rows") and not guards["round_trip_dropped"]:
        return {"rows": 0, "shards": shards}
    recalls = [s["recall"] for s in shards if s["recall"] is not None]
    return {
        **mine_stats(
            rows=mine.get("rows", 0),
            num_candidates=min(config.mine.num_candidates, kept),
            index_backend="+".join(sorted({s["backend"] for s in shards})),
            recall_vs_exact=sum(recalls) / len(recalls) if recalls else None,
            positive_not_seed=mine.get("positive_not_seed", 0),
            failed_scores=mine.get("failed_scores", 0),
            histograms=stats["histograms"],
            guards=guards,
        ),
        "shards": shards,
    }


def manifest(
    config: BeamFretConfig, counts: Mapping[str, int], stats: dict[str, Any], runner: str
) -> dict[str, Any]:
    """``run_fret``'s manifest sections, from the counters and the pipeline's statistics."""
    passages = _section(counts, "passages")
    generate = _section(counts, "generate")
    task_types = {
        k.removeprefix("task_type/"): v for k, v in generate.items() if k.startswith("task_type/")
    }
    kept = passages.get("kept", 0)
    overlap = stats.get("mean_word_overlap")
    identities = [json.loads(i) for i in sorted(stats.get("llm", []))]
    return {
        "passages_file": config.passages,
        "llm": identities[0] if len(identities) == 1 else identities,
        "llm_kwargs": llm_kwargs_record(config.llm_kwargs),
        "prompt_version": PROMPT_VERSION,
        "prompt_hashes": prompt_hashes(),
        "passages": {
            **{
                k: passages.get(k, 0)
                for k in ("input", "empty", "truncated", "kept", "malformed_lines")
            },
            "max_chars": config.max_chars,
        },
        "generate": {
            "config": config_record(config.generate),
            **diagnostics(
                kept,
                generate.get("rows", 0),
                generate,
                None if overlap is None or math.isnan(overlap) else overlap,
                task_types,
            ),
        },
        "mine": {
            "config": config_record(config.mine),
            **_mine_section(config, counts, stats, kept),
        },
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


def _teacher_check(config: BeamFretConfig) -> dict[str, Any]:
    """``run_fret``'s teacher check, from the written records (the first
    ``TEACHER_CHECK_LIMIT`` of them, so a paper-scale run is not read back whole)."""
    stem = FRET.rpartition(".")[0]
    pattern = FileSystems.join(config.out_dir, f"{stem}*")
    records: list[dict[str, Any]] = []
    for match in sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list):
        with FileSystems.open(match) as handle:
            for line in handle:
                if line.strip() and len(records) < TEACHER_CHECK_LIMIT:
                    records.append(json.loads(line))
    return seed_agreement(records, config.mine.fusion, config.mine.rrf_k)


def fingerprint(config: BeamFretConfig) -> dict[str, Any]:
    """What the outputs are made from: the passages by content, models and settings."""
    with FileSystems.open(config.passages) as handle:
        passages = stream_digest(handle)
    return {
        "passages": passages,
        "llm": llm_fingerprint(config.llm, config.llm_kwargs),
        "prompt_hashes": prompt_hashes(),
        **{
            name: value
            for name, value in dataclasses.asdict(config).items()
            if name not in ("llm", "llm_kwargs", "out_dir", "share_models", "encoder_batch_size")
        },
    }


def run(
    config: BeamFretConfig, pipeline_args: Sequence[str] | None = None, restart: bool = False
) -> dict[str, Any]:
    """Build and run the pipeline, wait for it, and write and return the manifest.

    A local output folder is locked, and a finished run with the same fingerprint is returned
    as it is (another fingerprint: :class:`~gecko_jax.stages.StageChanged` unless
    ``restart``). Raises :class:`~gecko_jax.stages.LLMCallsFailed`, after writing every
    output, when more than ``config.max_failed_share`` of the LLM calls failed.
    """
    local = not is_remote(config.out_dir)
    with folder_lock(config.out_dir) if local else contextlib.nullcontext():
        manifest_path, inputs = Path(config.out_dir) / MANIFEST, fingerprint(config)
        if local and begin_stage(manifest_path, inputs, restart):
            return json.loads(manifest_path.read_text())
        out = _run_pipeline(config, pipeline_args)
        _check_failures(config, out)
        if local:
            finish_stage(manifest_path, inputs)
    return out


def _check_failures(config: BeamFretConfig, out: Mapping[str, Any]) -> None:
    rerun = "; Beam keeps no LLM cache, so a rerun makes every call again"
    generate, mine = out["generate"], out["mine"]
    share = config.max_failed_share
    check_failures("generate", generate["llm_failed"], generate["passages"], share, rerun)
    scores = len(SCORERS) * mine.get("rows", 0) * mine.get("num_candidates", 0)
    check_failures("mine", mine.get("failed_scores", 0), scores, share, rerun)


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
    out = manifest(config, _counters(result), _read_stats(config.out_dir), runner)
    if out["mine"].get("rows"):
        out["mine"]["teacher_check"] = _teacher_check(config)
    out["timings_s"] = {"pipeline": time.perf_counter() - start}
    with FileSystems.create(FileSystems.join(config.out_dir, MANIFEST)) as handle:
        handle.write((json.dumps(out, indent=2) + "\n").encode("utf-8"))
    return out


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gecko-fret-beam",
        description="Build a FRet data set with Apache Beam. Options not listed here go to Beam "
        "(--runner: DirectRunner by default; DataflowRunner, FlinkRunner, SparkRunner, ...).",
    )
    parser.add_argument("--passages", required=True, help="JSONL of {id, title, text}")
    parser.add_argument("--out", required=True, help="output folder (or gs://..., s3://...)")
    parser.add_argument("--llm", help="LLM spec (default: jax:<SmolLM2 GGUF>)")
    add_llm_arg(parser)
    parser.add_argument("--encoder", help="encoder folder (default: MiniLM)")
    parser.add_argument("--max-passages", type=int)
    parser.add_argument("--max-chars", type=int, default=BeamFretConfig.max_chars)
    parser.add_argument("--num-candidates", type=int, default=MineConfig.num_candidates)
    parser.add_argument("--max-tokens", type=int, default=GenerateConfig.max_tokens)
    parser.add_argument("--temperature", type=float, default=GenerateConfig.temperature)
    parser.add_argument("--max-overlap", type=float)
    parser.add_argument("--negative", choices=NEGATIVE_CHOICES, default=MineConfig.negative)
    parser.add_argument(
        "--fusion",
        type=lambda text: tuple(m.strip() for m in text.split(",")),
        default=MineConfig.fusion,
        help=f"comma-separated RRF members from {','.join(FUSION_MEMBERS)}",
    )
    parser.add_argument("--round-trip-k", type=int, default=MineConfig.round_trip_k)
    parser.add_argument("--relabel-guard", choices=RELABEL_GUARDS, default=MineConfig.relabel_guard)
    parser.add_argument("--relabel-margin", type=float, default=MineConfig.relabel_margin)
    parser.add_argument("--false-negative-margin", type=float)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--max-failed-share",
        type=share,
        default=MAX_FAILED_SHARE,
        help="share of the LLM calls that may fail before the run exits 5",
    )
    parser.add_argument(
        RESTART_FLAG,
        action="store_true",
        help="run again into a local --out whose outputs were made from other inputs",
    )
    parser.add_argument("--retrieval-shards", type=int, default=BeamFretConfig.retrieval_shards)
    parser.add_argument("--output-shards", type=int, default=BeamFretConfig.output_shards)
    parser.add_argument(
        "--share-models",
        action="store_true",
        help="one copy of each model per worker machine, not per SDK process (GPU/TPU workers)",
    )
    return parser


def _mine_config(parser: argparse.ArgumentParser, args: argparse.Namespace) -> MineConfig:
    """The mine settings; one ``MineConfig`` refuses (say ``--round-trip-k`` not below
    ``--num-candidates``) is a usage error before the pipeline starts."""
    try:
        return MineConfig(
            num_candidates=args.num_candidates,
            negative=args.negative,
            seed=args.seed,
            fusion=args.fusion,
            round_trip_k=args.round_trip_k,
            relabel_guard=args.relabel_guard,
            relabel_margin=args.relabel_margin,
            false_negative_margin=args.false_negative_margin,
        )
    except ValueError as error:
        parser.error(str(error))


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args, pipeline_args = parser.parse_known_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from gecko_jax.assets import minilm_path, smollm2_gguf_path

    llm, llm_kwargs = args.llm or "jax:" + str(smollm2_gguf_path()), dict(args.llm_arg)
    check_llm_args(parser, llm, llm_kwargs)
    config = BeamFretConfig(
        passages=args.passages,
        out_dir=args.out,
        llm=llm,
        encoder=args.encoder or str(minilm_path()),
        llm_kwargs=llm_kwargs,
        max_passages=args.max_passages,
        max_chars=args.max_chars,
        generate=GenerateConfig(
            max_tokens=args.max_tokens,
            temperature=args.temperature,
            seed=args.seed,
            max_overlap=args.max_overlap,
        ),
        mine=_mine_config(parser, args),
        retrieval_shards=args.retrieval_shards,
        share_models=args.share_models,
        output_shards=args.output_shards,
        max_failed_share=args.max_failed_share,
    )
    try:
        out = run(config, pipeline_args, restart=args.restart)
    except StageError as error:
        logging.getLogger("gecko-fret-beam").error("%s", error)
        return error.exit_code
    print(json.dumps({k: out.get(k) for k in ("passages", "generate", "mine")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
