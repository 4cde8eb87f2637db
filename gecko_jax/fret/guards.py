"""Label guards for FRet: which queries to keep, when the positive may leave its seed, and which
hard negatives are safe to train on.

A weak teacher relabels wrongly (``gecko-rerank-eval`` measures it), so each rule here keeps the
LLM from overruling what is already known: the seed passage the query was written from, and
the initial retriever. All are pure functions of one query's candidates and scores, so the
pipeline, the Beam runner and offline relabelling (ablations) apply the same rules.

- round trip (Promptagator): keep a query only if the initial retriever ranks its seed within
  the top ``k``; a query its own passage does not answer is noise, whoever labels it.
- relabel guard: the positive moves from the seed to the fused top candidate only on evidence:
  ``"unanimous"`` (every fusion member ranks it above the seed), ``"margin"`` (its fused score
  beats the seed's by a margin), ``"none"`` (always, the paper's rule) or ``"seed"`` (never).
- false-negative guard: a hard negative that an LLM scorer rates within a margin of the positive
  may be another right answer; the nearest safe candidate is used, or none.

:func:`choose_labels` applies the relabel and false-negative guards to one query; the hard
negative may come from another ranking than the positive (``negative_fusion``), so a retriever
trusted to keep the positive on its seed need not also make the negatives easy.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

from gecko_jax.fret.fusion import (
    LLM_SCORERS,
    check_members,
    member_ranks,
    ranks_from_scores,
    reciprocal_rank_fusion,
    select,
)

RELABEL_GUARDS = ("none", "unanimous", "margin", "seed")


def round_trip_ok(candidate_ids: Sequence[str], seed_id: str, k: int) -> bool:
    """Whether the query passes round-trip consistency at ``k`` (0: the filter is off).

    The candidates are in retrieval order and always hold the seed (put into the last slot when
    the retriever missed it), so ``k`` must be below their number for the test to mean anything
    (``MineConfig`` checks it).
    """
    return k == 0 or seed_id in list(candidate_ids)[:k]


def check_guard(guard: str, margin: float) -> None:
    if guard not in RELABEL_GUARDS:
        raise ValueError(f"relabel_guard must be one of {RELABEL_GUARDS}, got {guard!r}")
    if not np.isfinite(margin) or margin < 0:
        raise ValueError(f"relabel_margin must be a finite number >= 0, got {margin}")


def relabel_allowed(
    fused: np.ndarray,
    ranks: Mapping[str, np.ndarray],
    top: int,
    seed: int,
    guard: str,
    margin: float = 0.0,
) -> bool:
    """Whether the positive may move from candidate ``seed`` to the fused top ``top``."""
    check_guard(guard, margin)
    if guard == "none" or top == seed:
        return True
    if guard == "seed":
        return False
    if guard == "unanimous":
        return all(r[top] < r[seed] for r in ranks.values())
    return bool(fused[top] - fused[seed] >= margin)


def guarded_fusion(
    fused: np.ndarray,
    ranks: Mapping[str, np.ndarray],
    seed: int | None,
    guard: str,
    margin: float = 0.0,
) -> tuple[np.ndarray, bool]:
    """``fused`` with the seed put first when the guard blocks a move (so selection keeps it as
    the positive and draws the negative from the others in fused order), and whether it did."""
    if seed is None:
        return fused, False
    top = int(np.argmin(ranks_from_scores(fused)))
    if relabel_allowed(fused, ranks, top, seed, guard, margin):
        return fused, False
    guarded = np.array(fused, dtype=np.float64)
    guarded[seed] = np.inf
    return guarded, True


def safe_negative(
    scores: Mapping[str, Sequence[float]],
    fused: np.ndarray,
    positive: int,
    negative: int,
    margin: float | None,
    scorers: Sequence[str] = LLM_SCORERS,
) -> int | None:
    """``negative``, or the nearest candidate in fused order that none of the LLM ``scorers``
    rates within ``margin`` of the positive: lower-ranked ones first (they are the safer), then
    higher-ranked ones nearest first (so the last, ``"nth"``, negative has somewhere to go);
    None when no candidate is safe. ``margin=None``: no check. A NaN score (a failed LLM call)
    says nothing against a candidate.
    """
    if margin is None:
        return negative
    order = [int(i) for i in np.argsort(ranks_from_scores(fused), kind="stable")]
    at = order.index(negative)
    for candidate in order[at:] + order[:at][::-1]:
        if candidate == positive:
            continue
        close = any(
            float(scores[name][candidate]) >= float(scores[name][positive]) - margin
            for name in scorers
            if name in scores
        )
        if not close:
            return candidate
    return None


def check_false_negative_guard(margin: float | None, scorers: Sequence[str]) -> None:
    if margin is not None and not margin >= 0:
        raise ValueError(f"false_negative_margin must be None or >= 0, got {margin}")
    if not scorers or len(set(scorers)) != len(scorers) or set(scorers) - set(LLM_SCORERS):
        raise ValueError(
            f"false_negative_scorers must be distinct names from {LLM_SCORERS}, got {scorers}"
        )


def check_negative_fusion(members: Sequence[str] | None) -> None:
    if members is not None:
        check_members(members)


@dataclasses.dataclass(frozen=True)
class LabelChoice:
    """One query's labels as candidate indices, and what the guards did to them."""

    positive: int
    # The hard negative the rule drew, and the one kept after the false-negative guard (None:
    # no candidate was safe).
    drawn_negative: int
    negative: int | None
    relabel_blocked: bool
    # The positive's fusion before the relabel guard (its ranks go into the FRet record).
    fused: np.ndarray


def choose_labels(
    scores: Mapping[str, Sequence[float]],
    candidate_ids: Sequence[str],
    seed_id: str | None,
    *,
    fusion: Sequence[str],
    rrf_k: float,
    guard: str,
    relabel_margin: float = 0.0,
    negative: str = "nth",
    k_th: int = 20,
    rng: np.random.Generator | None = None,
    negative_fusion: Sequence[str] | None = None,
    false_negative_margin: float | None = None,
    false_negative_scorers: Sequence[str] = LLM_SCORERS,
) -> LabelChoice:
    """The positive (top of ``fusion``'s RRF, kept on the seed where ``guard`` blocks a move)
    and the hard negative (``negative`` of the others, in the order of ``negative_fusion``'s RRF;
    None: ``fusion``'s), checked by the false-negative guard. Mining and offline relabelling
    (ablations) both label through here."""
    n = len(candidate_ids)
    members = member_ranks(scores, fusion, n)
    fused = reciprocal_rank_fusion(list(members.values()), rrf_k)
    seed = list(candidate_ids).index(seed_id) if seed_id in candidate_ids else None
    guarded, blocked = guarded_fusion(fused, members, seed, guard, relabel_margin)
    positive = select(candidate_ids, guarded)[0]
    order = guarded
    if negative_fusion is not None:
        order = reciprocal_rank_fusion(
            list(member_ranks(scores, negative_fusion, n).values()), rrf_k
        )
        order[positive] = np.inf  # first, so select draws the negative from the others
    drawn = select(candidate_ids, order, negative, k_th, rng)[1]
    safe = safe_negative(
        scores, order, positive, drawn, false_negative_margin, false_negative_scorers
    )
    return LabelChoice(positive, drawn, safe, blocked, fused)
