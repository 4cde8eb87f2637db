"""FRet on Beam, step 1: read and check the passages, then one (task, query) per passage.

Each transform calls the same per-item functions as ``run_fret`` (:mod:`~gecko_jax.fret.passages`,
:mod:`~gecko_jax.fret.generate`), so both paths make the same rows; counts become Beam metrics
counters in :data:`NAMESPACE`, named ``stage/count``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import PredictionResult

from gecko_jax.fret.beam.handlers import LLMGenerateHandler
from gecko_jax.fret.generate import (
    GenerateConfig,
    check_answer,
    first_of_duplicates,
    requested_type,
    task_type_name,
)
from gecko_jax.fret.passages import Passage, iter_passage_records, passage_from_record

NAMESPACE = "gecko_fret"
# How many duplicate ids the error names.
SHOWN_DUPLICATES = 5


def counter(stage: str, name: str) -> Metrics.DelegatingCounter:
    """The ``stage/name`` counter, which the manifest reads back after the run."""
    return Metrics.counter(NAMESPACE, f"{stage}/{name}")


class _ReadFile(beam.DoFn):
    """One pass over the file, in order: ``max_passages`` and each passage's index (which sets
    its requested task type) are defined by file order. Everything downstream is parallel."""

    def __init__(self, max_passages: int | None, max_chars: int):
        self.max_passages = max_passages
        self.max_chars = max_chars

    def process(self, path: str) -> Iterator[Any]:
        records, kept = 0, 0
        with FileSystems.open(path) as handle:
            for record in iter_passage_records(iter(handle.readline, b""), path):
                if records == self.max_passages:
                    break
                if record is None:
                    counter("passages", "malformed_lines").inc()
                    continue
                records += 1
                counter("passages", "input").inc()
                passage, truncated = passage_from_record(record, self.max_chars)
                yield beam.pvalue.TaggedOutput("ids", passage.id)
                if not passage.text:
                    counter("passages", "empty").inc()
                    continue
                counter("passages", "truncated").inc(int(truncated))
                counter("passages", "kept").inc()
                yield kept, passage
                kept += 1


def _unique(element: Any, duplicates: list[str]) -> Any:
    if duplicates:
        raise ValueError(f"duplicate passage id {duplicates[0]!r} (first duplicates: {duplicates})")
    return element


class ReadPassages(beam.PTransform):
    """``(index, Passage)`` from a JSONL file, as ``prepare_passages`` keeps them.

    Duplicate ids fail the pipeline. The check is a side input of a step that a reshuffle
    separates from the model stages, so it fails before any model is loaded or called.
    """

    def __init__(self, path: str, max_passages: int | None, max_chars: int):
        super().__init__()
        self.path = path
        self.max_passages = max_passages
        self.max_chars = max_chars

    def expand(self, begin: beam.pvalue.PBegin) -> beam.PCollection:
        read = (
            begin
            | "Path" >> beam.Create([self.path])
            | "Read"
            >> beam.ParDo(_ReadFile(self.max_passages, self.max_chars)).with_outputs(
                "ids", main="passages"
            )
        )
        duplicates = (
            read.ids
            | "CountIds" >> beam.combiners.Count.PerElement()
            | "Repeated" >> beam.Filter(lambda kv: kv[1] > 1)
            | "Ids" >> beam.Keys()
            | "FirstFew" >> beam.combiners.Top.Smallest(SHOWN_DUPLICATES)
        )
        return (
            read.passages
            | "CheckIds" >> beam.Map(_unique, beam.pvalue.AsSingleton(duplicates))
            | "Spread" >> beam.Reshuffle()
        )


class Seed(NamedTuple):
    """A passage with its index and the task type asked of it: the key of its LLM request."""

    index: int
    passage: Passage
    requested_type: str | None


def _seed(element: tuple[int, Passage], config: GenerateConfig) -> tuple[int, Seed]:
    index, passage = element
    return index, Seed(index, passage, requested_type(index, config))


class _Check(beam.DoFn):
    """``check_answer`` on each answer: counters, word overlaps, ``(dedup key, (index, row))``."""

    def __init__(self, config: GenerateConfig):
        self.config = config

    def process(self, element: PredictionResult) -> Iterator[Any]:
        seed, answer = element.example, element.inference
        check, counts = check_answer(seed.passage, seed.requested_type, answer, self.config)
        for name, count in counts.items():
            counter("generate", name).inc(count)
        if check is None:
            return
        yield beam.pvalue.TaggedOutput("overlap", check.overlap)
        if not check.too_much_overlap:
            key = check.dedup_key if self.config.dedup else seed.index
            yield key, (seed.index, check.row)


def _first(element: tuple[Any, Iterable[tuple[int, dict]]]) -> tuple[int, dict]:
    first, dropped = first_of_duplicates(element[1])
    counter("generate", "dropped_duplicate").inc(dropped)
    return first


def _count_row(element: tuple[int, dict]) -> tuple[int, dict]:
    counter("generate", "rows").inc()
    counter("generate", "task_type/" + task_type_name(element[1]["task"])).inc()
    return element


class GenerateQueries(beam.PTransform):
    """``(index, Passage)`` -> ``(index, row)`` rows as ``generate_queries`` writes them, by the
    same functions (``answer_passages``, ``check_answer``, ``first_of_duplicates``). Also
    returns the word overlaps (for their mean) and the LLM's identities."""

    def __init__(self, llm: LLMGenerateHandler, config: GenerateConfig):
        super().__init__()
        self.llm = llm
        self.config = config

    def expand(self, passages: beam.PCollection) -> tuple[beam.PCollection, ...]:
        results = (
            passages
            | "Seed" >> beam.Map(_seed, self.config)
            | "Generate" >> self.llm.inference({"config": self.config})
            | "Results" >> beam.Values()
        )
        checked = results | "Check" >> beam.ParDo(_Check(self.config)).with_outputs(
            "overlap", main="rows"
        )
        rows = checked.rows | "SameQuery" >> beam.GroupByKey() | "Dedup" >> beam.Map(_first)
        identities = (
            results
            | "ModelId" >> beam.Map(lambda result: result.model_id)
            | "DistinctModels" >> beam.Distinct()
        )
        return rows | "CountRows" >> beam.Map(_count_row), checked.overlap, identities
