"""Rank fusion for FRet step 2: R(q, p) = sum over scorers of 1 / (k + rank), k = 0 in the paper.

Pure functions over one query's candidate list, so the arithmetic is testable on known scores.
The fusion's members are the LLM scorers (query likelihood, relevance classification) and,
optionally, the initial retriever's own rank, which the candidate list holds by its order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

NEGATIVE_CHOICES = ("nth", "kth", "random")
# The LLM scorers, in fusion order (their scores are stored in each FRet record).
LLM_SCORERS = ("query_likelihood", "relevance")
# The retriever's rank of a candidate: its position in the candidate list (retrieval order).
RETRIEVER = "retriever"
FUSION_MEMBERS = (*LLM_SCORERS, RETRIEVER)


def ranks_from_scores(scores: Sequence[float]) -> np.ndarray:
    """1-based ranks, higher score = rank 1.

    Ties keep candidate order (a stable sort): the earlier candidate, i.e. the one the initial
    retriever ranked higher, gets the better rank, so ties fall back on the retriever. NaN (a
    failed LLM call) ranks last.
    """
    values = np.asarray(scores, dtype=np.float64)
    keys = np.where(np.isnan(values), np.inf, -values)
    order = np.argsort(keys, kind="stable")
    ranks = np.empty(len(values), dtype=np.int64)
    ranks[order] = np.arange(1, len(values) + 1)
    return ranks


def reciprocal_rank_fusion(rank_lists: Sequence[Sequence[int]], k: float = 0.0) -> np.ndarray:
    """sum_i 1 / (k + r_i) per candidate; ``k=0`` is the paper's formula (Appendix A)."""
    ranks = np.asarray(rank_lists, dtype=np.float64)
    if ranks.ndim != 2 or ranks.shape[1] == 0:
        raise ValueError(
            f"rank_lists must be a non-empty [scorers, candidates] array: {ranks.shape}"
        )
    if (k + ranks <= 0).any():
        raise ValueError(f"k + rank must be positive; got k={k} and min rank {ranks.min()}")
    return (1.0 / (k + ranks)).sum(axis=0)


def check_members(members: Sequence[str]) -> None:
    """Raise on an empty, repeated or unknown fusion member list."""
    unknown = [m for m in members if m not in FUSION_MEMBERS]
    if not members or unknown or len(set(members)) != len(members):
        raise ValueError(
            f"fusion members must be distinct names from {FUSION_MEMBERS}, got {tuple(members)}"
        )


def member_ranks(
    scores: Mapping[str, Sequence[float]], members: Sequence[str], n: int
) -> dict[str, np.ndarray]:
    """Each member's 1-based ranks of the ``n`` candidates (the retriever's: list order)."""
    check_members(members)
    return {
        m: np.arange(1, n + 1) if m == RETRIEVER else ranks_from_scores(scores[m]) for m in members
    }


def fuse(
    scores: Mapping[str, Sequence[float]], members: Sequence[str], n: int, k: float = 0.0
) -> np.ndarray:
    """RRF over ``members``' ranks of the ``n`` candidates; one member keeps its own order."""
    return reciprocal_rank_fusion(list(member_ranks(scores, members, n).values()), k)


def select(
    candidate_ids: Sequence[str],
    fused: Sequence[float],
    negative: str = "nth",
    k_th: int = 20,
    rng: np.random.Generator | None = None,
) -> tuple[int, int]:
    """(positive index, negative index) into ``candidate_ids``.

    The positive is the top fused candidate (p_1). The negative is the last in fused order
    (``"nth"``, p_N), the ``k_th`` in fused order (``"kth"``, clipped to N; Table 3's p_20), or a
    uniform draw from the others (``"random"``). Fused order is :func:`ranks_from_scores`.
    """
    if len(candidate_ids) != len(fused) or len(fused) < 2:
        raise ValueError(f"need >= 2 candidates with one score each, got {len(candidate_ids)}")
    if negative not in NEGATIVE_CHOICES:
        raise ValueError(f"negative must be one of {NEGATIVE_CHOICES}, got {negative!r}")
    order = np.argsort(ranks_from_scores(fused))
    positive = int(order[0])
    if negative == "nth":
        return positive, int(order[-1])
    if negative == "kth":
        if k_th < 2:
            raise ValueError(f"k_th must be >= 2 (1 is the positive), got {k_th}")
        return positive, int(order[min(k_th, len(order)) - 1])
    if rng is None:
        raise ValueError("negative='random' needs an rng")
    return positive, int(rng.choice(order[1:]))
