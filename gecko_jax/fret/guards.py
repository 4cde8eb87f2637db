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
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from gecko_jax.fret.fusion import LLM_SCORERS, ranks_from_scores

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
) -> int | None:
    """``negative``, or the nearest candidate in fused order that no LLM scorer rates within
    ``margin`` of the positive: lower-ranked ones first (they are the safer), then higher-ranked
    ones nearest first (so the last, ``"nth"``, negative has somewhere to go); None when no
    candidate is safe. ``margin=None``: no check. A NaN score (a failed LLM call) says nothing
    against a candidate.
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
            for name in LLM_SCORERS
            if name in scores
        )
        if not close:
            return candidate
    return None
