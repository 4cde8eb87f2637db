"""FRet step 2: retrieve top-N candidates per query, rank them with the LLM, pick labels.

Each candidate gets QL = log p(query | passage) and RC = log p(" Yes" | query, passage); the
ranks of the fusion's members (``MineConfig.fusion``: QL, RC and optionally the retriever's own
rank) are fused with RRF and the top fused candidate becomes the positive, which need not be
the seed passage (paper: it differs in about 15% of FRet). QL and RC come from two prompts
(``scoring="separate"``) or from one sequence, passage then query then label (``"joint"``: one
forward pass per pair instead of two, with its own prompt, so its scores differ).

The guards of :mod:`gecko_jax.fret.guards` (round trip, relabel, false negative) decide which
queries are kept, whether the positive may leave the seed, and which negatives are safe.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np
from tqdm.auto import tqdm

from gecko_jax.core.config_types import check_field_types
from gecko_jax.encoder import Encoder
from gecko_jax.fret.fusion import LLM_SCORERS, check_members, ranks_from_scores
from gecko_jax.fret.guards import (
    check_false_negative_guard,
    check_guard,
    check_negative_fusion,
    choose_labels,
    round_trip_ok,
)
from gecko_jax.fret.histograms import score_histograms
from gecko_jax.fret.passages import Passage
from gecko_jax.fret.prompts import RC_LABEL, joint_context, joint_parts, ql_context, rc_context
from gecko_jax.llm.base import LLM
from gecko_jax.search.candidates import top_n_with_seed
from gecko_jax.search.scann_index import IndexConfig, VectorIndex

T = TypeVar("T")
# The LLM scorers, in fusion order, with their progress-bar labels.
SCORERS = dict(zip(LLM_SCORERS, ("FRet query likelihood", "FRet relevance"), strict=True))
SCORING = ("separate", "joint")
# Joint scoring: each scorer's part in ``joint_parts`` (the one between is not a score).
JOINT_PARTS = {"query_likelihood": 0, "relevance": 2}
JOINT_DESC = "FRet joint QL+RC"


@dataclasses.dataclass(frozen=True)
class MineConfig:
    num_candidates: int = 20
    rrf_k: float = 0.0
    negative: str = "nth"
    k_th: int = 20
    seed: int = 0
    score_batch_size: int = 32
    recall_sample: int = 1000
    # "separate": QL and RC from their own prompts; "joint": both from one pass (see above).
    scoring: str = "separate"
    # RRF members: "query_likelihood", "relevance", "retriever" (the paper fuses the first two).
    fusion: tuple[str, ...] = LLM_SCORERS
    # Keep a query only if the retriever ranks its seed within the top k (0: keep all).
    round_trip_k: int = 0
    # When the positive may leave the seed: "none" (always, the paper's rule), "unanimous",
    # "margin" (fused score above the seed's by relabel_margin) or "seed" (never).
    relabel_guard: str = "none"
    relabel_margin: float = 0.0
    # RRF members whose order the hard negative is drawn from (None: ``fusion``'s, after the
    # relabel guard); the positive always comes from ``fusion``.
    negative_fusion: tuple[str, ...] | None = None
    # Skip a hard negative one of ``false_negative_scorers`` rates within this many nats of the
    # positive (None: off).
    false_negative_margin: float | None = None
    false_negative_scorers: tuple[str, ...] = LLM_SCORERS

    def __post_init__(self) -> None:
        check_field_types(self)
        if self.scoring not in SCORING:
            raise ValueError(f"scoring must be one of {SCORING}, got {self.scoring!r}")
        for name in ("fusion", "negative_fusion", "false_negative_scorers"):
            value = getattr(self, name)
            object.__setattr__(self, name, value if value is None else tuple(value))
        check_members(self.fusion)
        check_guard(self.relabel_guard, self.relabel_margin)
        if not 0 <= self.round_trip_k < self.num_candidates:
            raise ValueError(
                f"round_trip_k must be in [0, num_candidates={self.num_candidates}) (the seed "
                f"always fills the last slot), got {self.round_trip_k}"
            )
        check_negative_fusion(self.negative_fusion)
        check_false_negative_guard(self.false_negative_margin, self.false_negative_scorers)


def embed_queries(encoder: Encoder, rows: Sequence[dict[str, Any]]) -> np.ndarray:
    """``task: {task} | query: {query}`` embeddings; grouped by task, as the encoder takes one.

    Only encoder methods are called, so a proxy to an encoder in another process (Beam's
    cross-process model sharing) works as well.
    """
    if not rows:
        return np.zeros((0, encoder.embedding_dim), np.float32)
    by_task: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        by_task[row["task"]].append(i)
    parts = [
        encoder.encode_queries([rows[i]["query"] for i in indices], task=task)
        for task, indices in by_task.items()
    ]
    order = np.argsort([i for indices in by_task.values() for i in indices])
    return np.concatenate(parts)[order]


def score_request(scorer: str, query: str, passage: str) -> tuple[str, str]:
    """(context, continuation) whose log-probability is ``scorer``'s score of the pair."""
    if scorer == "query_likelihood":
        return ql_context(passage), " " + query
    if scorer == "relevance":
        return rc_context(query, passage), RC_LABEL
    raise ValueError(f"unknown scorer {scorer!r}; known: {list(SCORERS)}")


def joint_request(query: str, passage: str) -> tuple[str, tuple[str, ...]]:
    """(context, parts) whose part totals hold both scores of the pair (see ``JOINT_PARTS``)."""
    return joint_context(passage), joint_parts(query)


def _batched(
    call: Callable[[list[str], list[Any]], Sequence[T]],
    contexts: list[str],
    rest: list[Any],
    batch_size: int,
    desc: str,
) -> list[T]:
    """``call(contexts, rest)`` in batches, with a progress bar; results in the given order.

    Pairs go out sorted by context: mining meets each passage in the candidate lists of about
    N queries, and a backend that runs a repeated context once (JaxLLM) needs the repeats in
    one batch. In query order they were spread over the whole run.
    """
    order = sorted(range(len(contexts)), key=contexts.__getitem__)
    out: list[Any] = [None] * len(contexts)
    for start in tqdm(range(0, len(order), batch_size), desc=desc):
        chunk = order[start : start + batch_size]
        answers = call([contexts[i] for i in chunk], [rest[i] for i in chunk])
        for index, answer in zip(chunk, answers, strict=True):
            out[index] = answer
    return out


def score_pairs(
    llm: LLM, contexts: list[str], continuations: list[str], batch_size: int, desc: str
) -> np.ndarray:
    """``llm.score`` totals in batches, with a progress bar (NaN where the backend failed)."""
    scores = _batched(llm.score, contexts, continuations, batch_size, desc)
    return np.asarray([s.total for s in scores], dtype=np.float64)


def score_jointly(
    llm: LLM, pairs: Sequence[tuple[str, Passage]], batch_size: int
) -> dict[str, np.ndarray]:
    """Each scorer's score of every (query, passage) pair, from one ``score_parts`` row each."""
    requests = [joint_request(query, p.text) for query, p in pairs]
    contexts, parts = [c for c, _ in requests], [p for _, p in requests]
    totals = _batched(llm.score_parts, contexts, parts, batch_size, JOINT_DESC)
    # Parts per row fixed, not -1: no pairs (the round trip dropped every query) is no error.
    array = np.asarray(totals, dtype=np.float64).reshape(len(pairs), len(joint_parts("")))
    return {name: array[:, part] for name, part in JOINT_PARTS.items()}


def score_separately(
    llm: LLM, pairs: Sequence[tuple[str, Passage]], batch_size: int
) -> dict[str, np.ndarray]:
    """Each scorer's score of every (query, passage) pair, one ``score`` pass per scorer."""
    scores = {}
    for name, desc in SCORERS.items():
        requests = [score_request(name, query, p.text) for query, p in pairs]
        contexts, continuations = [c for c, _ in requests], [c for _, c in requests]
        scores[name] = score_pairs(llm, contexts, continuations, batch_size, desc)
    return scores


def label_query(
    row: dict[str, Any],
    candidates: Sequence[Passage],
    scores: dict[str, np.ndarray],
    config: MineConfig,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """The FRet record of one query: its candidates (retrieval order), ranked by each scorer,
    labelled under the relabel and false-negative guards (``guards`` says what they did)."""
    candidate_ids = [p.id for p in candidates]
    ranks = {name: ranks_from_scores(scores[name]) for name in SCORERS}
    choice = choose_labels(
        scores,
        candidate_ids,
        row["passage_id"],
        fusion=config.fusion,
        rrf_k=config.rrf_k,
        guard=config.relabel_guard,
        relabel_margin=config.relabel_margin,
        negative=config.negative,
        k_th=config.k_th,
        rng=rng,
        negative_fusion=config.negative_fusion,
        false_negative_margin=config.false_negative_margin,
        false_negative_scorers=config.false_negative_scorers,
    )
    pos, neg, safe = choice.positive, choice.drawn_negative, choice.negative
    fused = choice.fused
    fused_ranks = ranks_from_scores(fused)
    return {
        "task": row["task"],
        "query": row["query"],
        "positive": candidates[pos].to_json(),
        "negative": None if safe is None else candidates[safe].to_json(),
        "seed_id": row["passage_id"],
        "requested_type": row["requested_type"],
        "positive_rank": int(fused_ranks[pos]),
        "negative_rank": None if safe is None else int(fused_ranks[safe]),
        "candidate_ids": candidate_ids,
        "ranks": {**{k: v.tolist() for k, v in ranks.items()}, "fused": fused_ranks.tolist()},
        "scores": {**{k: scores[k].tolist() for k in SCORERS}, "fused": fused.tolist()},
        "guards": {
            "relabel_blocked": choice.relabel_blocked,
            "negative": "kept" if safe == neg else ("dropped" if safe is None else "replaced"),
        },
    }


def guard_counts(records: Sequence[dict[str, Any]]) -> dict[str, int]:
    """How often each guard acted, for the manifest (both runners)."""
    guards = [r["guards"] for r in records]
    return {
        "relabel_blocked": sum(g["relabel_blocked"] for g in guards),
        "negative_replaced": sum(g["negative"] == "replaced" for g in guards),
        "negative_dropped": sum(g["negative"] == "dropped" for g in guards),
    }


def mine(
    llm: LLM,
    encoder: Encoder,
    passages: Sequence[Passage],
    rows: Sequence[dict[str, Any]],
    config: MineConfig = MineConfig(),
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """FRet records (task, query, positive, negative, seed_id, candidates, ranks, scores)."""
    if not rows:
        return [], {"rows": 0}
    position = {p.id: i for i, p in enumerate(passages)}
    unknown = {r["passage_id"] for r in rows} - position.keys()
    if unknown:
        raise ValueError(
            f"queries generated from passages not in the corpus: {sorted(unknown)[:5]}"
        )
    documents = encoder.encode_documents([p.text for p in passages], [p.title for p in passages])
    queries = embed_queries(encoder, rows)
    index = VectorIndex.build(documents, IndexConfig(seed=config.seed))
    seeds = np.array([position[r["passage_id"]] for r in rows], dtype=np.int64)
    candidates = top_n_with_seed(index, queries, seeds, config.num_candidates)
    recall = index.recall_against_exact(
        queries, candidates.shape[1], config.recall_sample, config.seed
    )
    kept = [
        n
        for n, (row, ids) in enumerate(zip(rows, candidates, strict=True))
        if round_trip_ok([passages[i].id for i in ids], row["passage_id"], config.round_trip_k)
    ]
    round_trip_dropped = len(rows) - len(kept)
    rows, candidates = [rows[n] for n in kept], candidates[kept]

    pairs = [
        (row["query"], passages[c]) for row, ids in zip(rows, candidates, strict=True) for c in ids
    ]
    score = score_jointly if config.scoring == "joint" else score_separately
    flat = score(llm, pairs, config.score_batch_size)
    scores = {name: flat[name].reshape(candidates.shape) for name in SCORERS}

    rng = np.random.default_rng(config.seed)
    records = []
    for n, (row, ids) in enumerate(zip(rows, candidates, strict=True)):
        row_scores = {name: totals[n] for name, totals in scores.items()}
        records.append(label_query(row, [passages[i] for i in ids], row_scores, config, rng))
    changed = sum(r["positive"]["id"] != r["seed_id"] for r in records)
    return records, mine_stats(
        rows=len(records),
        num_candidates=int(candidates.shape[1]),
        index_backend=index.backend,
        recall_vs_exact=recall,
        positive_not_seed=changed,
        failed_scores=int(sum(np.isnan(v).sum() for v in scores.values())),
        histograms=score_histograms(scores),
        guards={"round_trip_dropped": round_trip_dropped, **guard_counts(records)},
    )


def mine_stats(
    *,
    rows: int,
    num_candidates: int,
    index_backend: str,
    recall_vs_exact: float,
    positive_not_seed: int,
    failed_scores: int,
    histograms: dict[str, Any],
    guards: dict[str, int],
) -> dict[str, Any]:
    """The manifest's ``mine`` section (shared with the Beam pipeline, so both match)."""
    return {
        "guards": guards,
        "rows": rows,
        "num_candidates": num_candidates,
        "index_backend": index_backend,
        "recall_vs_exact": recall_vs_exact,
        "positive_not_seed": positive_not_seed / rows if rows else 0.0,
        "failed_scores": failed_scores,
        "histograms": histograms,
    }
