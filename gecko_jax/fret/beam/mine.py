"""FRet on Beam, step 2: embed, retrieve from a sharded corpus, score with the LLM, label.

Retrieval splits the corpus embeddings into shards (passage index modulo the shard count). Each
shard builds its own :class:`~gecko_jax.search.scann_index.VectorIndex` and answers every query; the
per-query merge of the shards' top-N is the global top-N (exact when the shards are exact), and
the seed passage is put in as ``top_n_with_seed`` does. Scoring and labelling call the same
per-item functions as ``mine`` (:func:`~gecko_jax.fret.guards.round_trip_ok` before any pair is
scored, :func:`~gecko_jax.fret.mine.score_request` or, with ``scoring="joint"``,
:func:`~gecko_jax.fret.mine.joint_request`, and :func:`~gecko_jax.fret.mine.label_query`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from operator import itemgetter
from typing import Any, NamedTuple

import apache_beam as beam
import numpy as np

from gecko_jax.fret import histograms
from gecko_jax.fret.beam.handlers import EncoderHandler, LLMScoreHandler, LLMScorePartsHandler
from gecko_jax.fret.beam.stages import counter
from gecko_jax.fret.guards import round_trip_ok
from gecko_jax.fret.mine import (
    JOINT_PARTS,
    SCORERS,
    MineConfig,
    guard_counts,
    joint_request,
    label_query,
    score_request,
)
from gecko_jax.fret.passages import Passage
from gecko_jax.search.candidates import insert_seed, merge_top_k
from gecko_jax.search.scann_index import IndexConfig, VectorIndex

# Queries searched per call within a shard: bounds memory however many queries there are.
QUERY_CHUNK = 4096


def _inference(element: tuple[Any, Any]) -> tuple[Any, Any]:
    key, result = element
    return key, result.inference


class _SearchShard(beam.DoFn):
    """Every query's top-N within one shard, by that shard's own index, plus the shard's stats."""

    def __init__(self, config: MineConfig):
        self.config = config

    def process(self, element: tuple[int, dict[str, Iterable[Any]]]) -> Iterator[Any]:
        shard, grouped = element
        corpus = sorted(grouped["corpus"], key=itemgetter(0))
        if not corpus:
            return
        ids = np.array([i for i, _ in corpus], np.int64)
        index = VectorIndex.build(
            np.stack([e for _, e in corpus]), IndexConfig(seed=self.config.seed)
        )
        n, recall = self.config.num_candidates, None
        queries = iter(grouped["queries"])
        while chunk := list(itertools.islice(queries, QUERY_CHUNK)):
            embeddings = np.stack([e for _, e in chunk])
            if recall is None:  # estimated on the first chunk, as counts to pool over shards
                sampled = min(self.config.recall_sample, len(chunk)) * min(n, index.size)
                share = index.recall_against_exact(
                    embeddings, n, self.config.recall_sample, self.config.seed
                )
                recall = {"found": round(share * sampled), "sampled": sampled}
            found, scores = index.search(embeddings, n)
            for (key, _), row, row_scores in zip(chunk, found, scores, strict=True):
                yield key, (ids[row], row_scores)
        stats = {"shard": shard, "size": index.size, "backend": index.backend, "recall": recall}
        yield beam.pvalue.TaggedOutput("stats", stats)


def _merge(element: tuple[int, Iterable[tuple[np.ndarray, np.ndarray]]], n: int) -> Any:
    """The global top-N of one query (keyed by its seed passage's index), seed included."""
    seed, parts = element
    ids, _ = merge_top_k(parts, n)
    return seed, insert_seed(ids[None], np.array([seed]))[0]


class ShardedRetrieval(beam.PTransform):
    """``{"corpus", "queries"}`` embeddings keyed by passage index -> ``(seed, candidate ids)``.

    Queries are keyed by their seed passage's index. Also returns each shard's stats.
    """

    def __init__(self, shards: int, config: MineConfig):
        super().__init__()
        if shards < 1:
            raise ValueError(f"retrieval shards must be >= 1, got {shards}")
        self.shards = shards
        self.config = config

    def expand(self, inputs: dict[str, beam.PCollection]) -> tuple[beam.PCollection, ...]:
        shards = self.shards
        searched = (
            {
                "corpus": inputs["corpus"] | "ToShard" >> beam.Map(lambda kv: (kv[0] % shards, kv)),
                "queries": inputs["queries"]
                | "ToEveryShard" >> beam.FlatMap(lambda kv: ((s, kv) for s in range(shards))),
            }
            | "ShardGroups" >> beam.CoGroupByKey()
            | "Search" >> beam.ParDo(_SearchShard(self.config)).with_outputs("stats", main="hits")
        )
        candidates = (
            searched.hits
            | "PerQuery" >> beam.GroupByKey()
            | "Merge" >> beam.Map(_merge, self.config.num_candidates)
        )
        return candidates, searched.stats


class _Pair(NamedTuple):
    seed: int
    slot: int
    query: str
    passage: Passage


def _explode(
    element: tuple[int, dict[str, list[Any]]], round_trip_k: int
) -> Iterator[tuple[int, Any]]:
    """``(candidate index, (seed, slot, query))`` for each candidate of one query; none when the
    query fails the round trip (as in ``mine``, before any of its pairs is scored).

    Candidates are passage indices and the key is the seed's, so ``round_trip_ok`` compares
    indices where ``mine`` compares ids (the same test: ids are unique).
    """
    seed, grouped = element
    (row,) = grouped["row"]
    (candidates,) = grouped["candidates"]
    if not round_trip_ok(candidates, seed, round_trip_k):
        counter("mine", "round_trip_dropped").inc()
        return
    for slot, index in enumerate(candidates):
        yield int(index), (seed, slot, row["query"])


def _fill(element: tuple[int, dict[str, list[Any]]]) -> Iterator[_Pair]:
    """Each (query, candidate slot) that wants this passage, with the passage."""
    _, grouped = element
    (passage,) = grouped["passage"]
    for seed, slot, query in grouped["pairs"]:
        yield _Pair(seed, slot, query, passage)


def _request(pair: _Pair, scorer: str) -> tuple[tuple[int, int], tuple[str, str]]:
    return (pair.seed, pair.slot), score_request(scorer, pair.query, pair.passage.text)


def _joint_request(pair: _Pair) -> tuple[tuple[int, int], tuple[str, tuple[str, ...]]]:
    return (pair.seed, pair.slot), joint_request(pair.query, pair.passage.text)


def _scored(
    element: tuple[tuple[int, int], Any], part: int | None = None
) -> tuple[int, tuple[int, float]]:
    """``(seed, (slot, score))``; ``part``: the score is that part's of a joint result."""
    (seed, slot), result = element
    return seed, (slot, result.inference if part is None else result.inference[part])


def _label(
    element: tuple[int, dict[str, list[Any]]], config: MineConfig
) -> Iterator[dict[str, Any]]:
    """``label_query`` on one query; the ``random`` negative draws from a per-query generator.

    A row without candidates failed the round trip: it was never scored and gives no record.
    """
    seed, grouped = element
    candidates = [p for _, p in sorted(grouped["candidates"], key=itemgetter(0))]
    if not candidates:
        return
    (row,) = grouped["row"]
    scores = {
        name: np.array([s for _, s in sorted(grouped[name], key=itemgetter(0))], np.float64)
        for name in SCORERS
    }
    rng = np.random.default_rng([config.seed, seed])
    record = label_query(row, candidates, scores, config, rng)
    counter("mine", "rows").inc()
    counter("mine", "positive_not_seed").inc(int(record["positive"]["id"] != record["seed_id"]))
    counter("mine", "failed_scores").inc(int(sum(np.isnan(s).sum() for s in scores.values())))
    for name, count in guard_counts([record]).items():
        counter("mine", name).inc(count)
    yield record


class ScoreAndLabel(beam.PTransform):
    """``{"rows", "candidates", "passages"}`` keyed by index -> FRet records (``mine``'s); a
    query that fails the round trip is dropped before its pairs are scored.

    ``config.scoring="joint"`` scores each pair once, with ``llm``'s model in score-parts form.
    """

    def __init__(self, llm: LLMScoreHandler, config: MineConfig):
        super().__init__()
        self.llm = llm
        self.config = config

    def expand(self, inputs: dict[str, beam.PCollection]) -> beam.PCollection:
        rows = inputs["rows"]
        pairs = (
            {"row": rows, "candidates": inputs["candidates"]}
            | "JoinCandidates" >> beam.CoGroupByKey()
            | "Explode" >> beam.FlatMap(_explode, self.config.round_trip_k)
        )
        filled = (
            {"pairs": pairs, "passage": inputs["passages"]}
            | "JoinPassages" >> beam.CoGroupByKey()
            | "Fill" >> beam.FlatMap(_fill)
        )
        score = self._joint if self.config.scoring == "joint" else self._separate
        scores = score(filled)
        slots = filled | "Slots" >> beam.Map(lambda p: (p.seed, (p.slot, p.passage)))
        return (
            {"row": rows, "candidates": slots, **scores}
            | "JoinScores" >> beam.CoGroupByKey()
            | "Label" >> beam.FlatMap(_label, self.config)
        )

    def _separate(self, pairs: beam.PCollection) -> dict[str, beam.PCollection]:
        """Each scorer's ``(seed, (slot, score))``, from a RunInference step per scorer."""
        return {
            name: pairs
            | f"Request {name}" >> beam.Map(_request, name)
            | f"Score {name}" >> self.llm.inference()
            | f"Scored {name}" >> beam.Map(_scored)
            for name in SCORERS
        }

    def _joint(self, pairs: beam.PCollection) -> dict[str, beam.PCollection]:
        """Each scorer's ``(seed, (slot, score))``, from one RunInference step for both."""
        totals = (
            pairs
            | "Request joint" >> beam.Map(_joint_request)
            | "Score joint" >> LLMScorePartsHandler.like(self.llm).inference()
        )
        return {
            name: totals | f"Scored {name}" >> beam.Map(_scored, part)
            for name, part in JOINT_PARTS.items()
        }


def _finite(record: dict[str, Any]) -> dict[str, np.ndarray]:
    return histograms.finite({name: record["scores"][name] for name in SCORERS})


def _merge_spans(parts: Iterable[dict[str, Any]]) -> dict[str, Any]:
    return histograms.merge_spans(parts, SCORERS)


class ScoreHistograms(beam.PTransform):
    """Records -> ``{scorer: {"counts", "edges"} or None}`` over all finite scores, by
    :mod:`~gecko_jax.fret.histograms`' two passes (range, then counts), so no worker holds
    every score."""

    def expand(self, records: beam.PCollection) -> beam.PCollection:
        finite = records | "Finite" >> beam.Map(_finite)
        ranges = beam.pvalue.AsSingleton(
            finite
            | "Range" >> beam.Map(histograms.spans)
            | "Ranges" >> beam.CombineGlobally(_merge_spans)
        )
        return (
            finite
            | "Bin" >> beam.Map(histograms.bin_counts, ranges)
            | "Counts" >> beam.CombineGlobally(histograms.add_counts)
            | "Histograms" >> beam.Map(histograms.histograms, ranges)
        )


def embed(
    passages: beam.PCollection,
    rows: beam.PCollection,
    documents: EncoderHandler,
    queries: EncoderHandler,
) -> dict[str, beam.PCollection]:
    """Corpus and query embeddings keyed by passage index."""
    return {
        "corpus": passages
        | "EmbedPassages" >> documents.inference()
        | "PassageEmbeddings" >> beam.Map(_inference),
        "queries": rows
        | "EmbedQueries" >> queries.inference()
        | "QueryEmbeddings" >> beam.Map(_inference),
    }
