"""FRet label guards: each rule on known scores (pure numpy), then in ``mine`` on real data.

The real-data part mines five Wikipedia extracts with the real SmolLM2 (JAX) and MiniLM under
three configs that share one cached LLM, so each (query, candidate) pair is scored once: two of
the five queries were written for another passage than their seed, as a bad generation would.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from gecko_jax.core.assets import smollm2_gguf_path
from gecko_jax.data.wiki_extracts import load_wiki_extracts
from gecko_jax.fret.fusion import fuse, member_ranks
from gecko_jax.fret.guards import (
    choose_labels,
    guarded_fusion,
    relabel_allowed,
    round_trip_ok,
    safe_negative,
)
from gecko_jax.fret.mine import MineConfig, label_query, mine
from gecko_jax.fret.passages import Passage
from gecko_jax.fret.prompts import TASK_TYPES
from gecko_jax.llm import CachedLLM, JaxLLM

QL, RC = "query_likelihood", "relevance"


@pytest.mark.parametrize(
    ("k", "ok"), [(0, True), (1, False), (2, True), (3, True)], ids=["off", "out", "in", "all"]
)
def test_round_trip_keeps_a_query_whose_seed_is_in_the_top_k(k, ok):
    assert round_trip_ok(["a", "seed", "b"], "seed", k) is ok
    assert round_trip_ok(["seed", "a", "b"], "seed", k)


# Three members, candidate 0 fused first, the seed (1) second by 0.5: QL and the retriever put
# 0 above the seed, RC puts the seed above 0.
RANKS = {QL: np.array([1, 2, 3]), RC: np.array([2, 1, 3]), "retriever": np.array([1, 2, 3])}
FUSED = np.array([2.5, 2.0, 1.0])
AGREED = {**RANKS, RC: np.array([1, 2, 3])}


@pytest.mark.parametrize(
    ("guard", "margin", "ranks", "allowed"),
    [
        ("none", 0.0, RANKS, True),
        ("seed", 0.0, RANKS, False),
        ("unanimous", 0.0, RANKS, False),  # RC ranks the seed higher
        ("unanimous", 0.0, AGREED, True),
        ("margin", 0.6, RANKS, False),
        ("margin", 0.5, RANKS, True),  # the fused gap itself suffices
    ],
)
def test_relabel_guards_block_and_allow(guard, margin, ranks, allowed):
    assert relabel_allowed(FUSED, ranks, 0, 1, guard, margin) is allowed
    guarded, blocked = guarded_fusion(FUSED, ranks, 1, guard, margin)
    assert blocked is not allowed
    if allowed:
        np.testing.assert_array_equal(guarded, FUSED)
    else:  # the seed first, the others in fused order
        assert list(np.argsort(-guarded)) == [1, 0, 2]
    assert FUSED.tolist() == [2.5, 2.0, 1.0]  # not changed in place


def test_no_guard_blocks_a_seed_that_is_already_first_or_absent():
    for guard in ("none", "seed", "unanimous", "margin"):
        assert relabel_allowed(FUSED, RANKS, 0, 0, guard, 1.0)
        guarded, blocked = guarded_fusion(FUSED, RANKS, None, guard, 1.0)
        np.testing.assert_array_equal(guarded, FUSED)
        assert not blocked


# Fused order 0, 1, 2, 3; the positive 0 scores -1 (QL) and -0.5 (RC).
SCORES = {QL: [-1.0, -1.2, -3.0, -5.0], RC: [-0.5, -2.0, -0.6, -4.0]}
ORDER = np.array([4.0, 3.0, 2.0, 1.0])


@pytest.mark.parametrize(
    ("negative", "margin", "expected"),
    [
        (1, None, 1),  # off
        (1, 0.1, 1),  # kept: both scores far enough below the positive's
        (1, 0.5, 3),  # QL puts 1 close, RC puts 2 close: the next safe one is 3
        (2, 0.5, 3),
        (3, 4.5, None),  # nothing lower is safe: dropped
        (2, 5.0, None),
    ],
)
def test_safe_negative(negative, margin, expected):
    assert safe_negative(SCORES, ORDER, 0, negative, margin) == expected


def test_safe_negative_moves_up_from_the_last_candidate():
    """The "nth" negative has nothing below it: the nearest safe candidate above is used."""
    scores = {QL: [-1.0, -4.0, -3.0, -1.2], RC: [-0.5, -3.0, -0.6, -4.0]}
    assert safe_negative(scores, ORDER, 0, 3, 0.5) == 1  # 3: QL close; 2: RC close


def test_safe_negative_does_not_count_a_failed_score_as_close():
    """NaN (a failed LLM call) compares as not close, the candidate's or the positive's."""
    failed = {QL: [-1.0, math.nan, -3.0], RC: [-0.5, math.nan, -0.6]}
    assert safe_negative(failed, ORDER[:3], 0, 1, 10.0) == 1
    failed_positive = {QL: [math.nan, -1.0, -3.0], RC: [math.nan, -2.0, -0.6]}
    assert safe_negative(failed_positive, ORDER[:3], 0, 1, 10.0) == 1


def test_fusion_members_include_the_retriever_in_list_order():
    scores = {QL: [-3.0, -1.0, -2.0], RC: [-1.0, -2.0, -3.0]}
    ranks = member_ranks(scores, ("retriever", QL), 3)
    assert list(ranks) == ["retriever", QL]
    assert ranks["retriever"].tolist() == [1, 2, 3] and ranks[QL].tolist() == [3, 1, 2]
    np.testing.assert_allclose(fuse(scores, ("retriever",), 3), [1, 1 / 2, 1 / 3])
    np.testing.assert_allclose(
        fuse(scores, (QL, "retriever"), 3), [1 / 3 + 1, 1 + 1 / 2, 1 / 2 + 1 / 3]
    )
    np.testing.assert_allclose(
        fuse(scores, (QL, RC), 3, k=1.0), [1 / 4 + 1 / 2, 1 / 2 + 1 / 3, 1 / 3 + 1 / 4]
    )


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"round_trip_k": 3}, r"round_trip_k must be in \[0, num_candidates=3\)"),
        ({"round_trip_k": -1}, "round_trip_k must be in"),
        ({"relabel_guard": "never"}, "relabel_guard must be one of"),
        ({"relabel_margin": -0.1}, "relabel_margin must be a finite number >= 0"),
        ({"relabel_margin": math.nan}, "relabel_margin must be a finite number >= 0"),
        ({"fusion": ("query_likelihood", "bm25")}, "fusion members must be distinct names"),
        ({"fusion": (RC, RC)}, "fusion members must be distinct names"),
        ({"fusion": ()}, "fusion members must be distinct names"),
        ({"false_negative_margin": -1.0}, "false_negative_margin must be None or >= 0"),
        ({"false_negative_margin": math.nan}, "false_negative_margin must be None or >= 0"),
        ({"negative_fusion": (QL, "bm25")}, "fusion members must be distinct names"),
        ({"negative_fusion": ()}, "fusion members must be distinct names"),
        ({"false_negative_scorers": ("retriever",)}, "false_negative_scorers must be distinct"),
        ({"false_negative_scorers": ()}, "false_negative_scorers must be distinct"),
    ],
)
def test_mine_config_refuses_bad_guards(settings, message):
    with pytest.raises(ValueError, match=message):
        MineConfig(num_candidates=3, **settings)


def test_mine_config_takes_a_fusion_list_as_a_tuple():
    assert MineConfig(num_candidates=3, fusion=[RC]).fusion == (RC,)


def test_a_blocked_relabel_keeps_the_seed_and_draws_the_negative_from_the_others():
    candidates = [Passage(i, i.upper(), f"text {i}") for i in ("a", "b", "seed")]
    row = {"task": "t", "query": "q", "passage_id": "seed", "requested_type": "definition"}
    # Fused: a first, b second, the seed last (RRF ties go to candidate order).
    scores = {QL: np.array([-1.0, -2.0, -3.0]), RC: np.array([-1.0, -3.0, -2.0])}
    rng = np.random.default_rng(0)
    free = label_query(row, candidates, scores, MineConfig(num_candidates=3), rng)
    assert (free["positive"]["id"], free["negative"]["id"]) == ("a", "seed")
    assert free["guards"] == {"relabel_blocked": False, "negative": "kept"}
    config = MineConfig(num_candidates=3, relabel_guard="seed")
    record = label_query(row, candidates, scores, config, rng)
    assert (record["positive"]["id"], record["negative"]["id"]) == ("seed", "b")
    assert record["guards"] == {"relabel_blocked": True, "negative": "kept"}
    # The ranks and scores stay the unguarded fusion's.
    assert (record["positive_rank"], record["negative_rank"]) == (3, 2)
    assert record["ranks"] == free["ranks"] and record["scores"] == free["scores"]


# QL ranks c, a, b, d; RC ranks a, b, d, c; the retriever a, b, c, d. RRF(QL, retriever):
# a = 1/2 + 1, c = 1 + 1/3, b = 1/3 + 1/2, d = 1/4 + 1/4, so a is p_1 and d p_N.
FOUR = {QL: [-2.0, -3.0, -1.0, -4.0], RC: [-1.0, -2.0, -4.0, -3.0]}


def _choose(seed_id="b", **settings):
    settings = {"fusion": (QL, "retriever"), "rrf_k": 0.0, "guard": "unanimous", **settings}
    return choose_labels(FOUR, ["a", "b", "c", "d"], seed_id, **settings)


def test_the_negative_comes_from_its_own_ranking():
    assert (_choose().positive, _choose().drawn_negative) == (0, 3)
    # RC ranks c last among the others; QL and RC's RRF, d (a 1/2 + 1, b 1/3 + 1/2, c 1 + 1/4,
    # d 1/4 + 1/3).
    assert _choose(negative_fusion=(RC,)).negative == 2
    assert _choose(negative_fusion=(QL, RC)).negative == 3
    # The positive is never the negative, even where the negative's ranking puts it last.
    choice = _choose(seed_id="c", negative_fusion=("retriever",))
    assert (choice.positive, choice.relabel_blocked, choice.negative) == (2, True, 3)
    assert _choose(seed_id="d", guard="seed", negative_fusion=("retriever",)).negative == 2


def test_the_false_negative_guard_asks_only_its_scorers():
    """c (drawn by RC's ranking) is within 1.5 of the positive a under QL, not under RC."""
    rc_negative = {"negative_fusion": (RC,), "false_negative_margin": 1.5}
    assert _choose(**rc_negative, false_negative_scorers=(RC,)).negative == 2
    choice = _choose(**rc_negative)  # both scorers: the next safe one up RC's order is d
    assert (choice.drawn_negative, choice.negative) == (2, 3)


def test_mined_records_follow_the_negative_ranking():
    candidates = [Passage(i, i.upper(), f"text {i}") for i in "abcd"]
    row = {"task": "t", "query": "q", "passage_id": "b", "requested_type": "definition"}
    scores = {name: np.array(values) for name, values in FOUR.items()}
    config = MineConfig(num_candidates=4, fusion=(QL, "retriever"), negative_fusion=(RC,))
    record = label_query(row, candidates, scores, config, np.random.default_rng(0))
    assert (record["positive"]["id"], record["negative"]["id"]) == ("a", "c")
    assert record["negative_rank"] == 2  # ranks stay the positive's fusion's


# Real data: the first 120 characters of five extracts, and a query for each seed; the last two
# were written for another extract (Zhuge Liang's and radiation therapy's, swapped).
ROWS = [
    {
        "task": TASK_TYPES["search result"],
        "query": query,
        "passage_id": seed,
        "requested_type": "search result",
    }
    for seed, query in [
        ("Dorothy Hodgkin", "chemist who used X-ray crystallography on biomolecules"),
        ("Khorasan", "historical region of the Iranian Plateau"),
        ("0", "the number that leaves any number unchanged when added"),
        ("Radiation therapy", "Chinese statesman and strategist of the late Han dynasty"),
        ("Zhuge Liang", "cancer treatment with ionizing radiation"),
    ]
]
REAL = {
    "none": {},
    "seed": {"relabel_guard": "seed", "false_negative_margin": 2.0},
    "round_trip": {"round_trip_k": 1},
    "ql_negative": {
        "negative_fusion": (QL,),
        "false_negative_margin": 0.0,
        "false_negative_scorers": (QL,),
    },
}


@pytest.fixture(scope="module")
def mined(tmp_path_factory, minilm_encoder):
    """Each of ``REAL``'s configs mined in turn: (records, stats, LLM cache hits, misses)."""
    # One batch of 16 holds every pair: one compiled shape.
    llm = JaxLLM.from_gguf(smollm2_gguf_path(), max_context=1024, batch_size=16, length_bucket=32)
    cached = CachedLLM(llm, tmp_path_factory.mktemp("llm") / "cache.jsonl")
    passages = [Passage(a.id, a.title, a.text[:120]) for a in load_wiki_extracts()[::2500][:5]]
    runs = {}
    for name, settings in REAL.items():
        hits, misses = cached.hits, cached.misses
        config = MineConfig(num_candidates=3, scoring="joint", score_batch_size=16, **settings)
        records, stats = mine(cached, minilm_encoder, passages, ROWS, config)
        runs[name] = records, stats, cached.hits - hits, cached.misses - misses
    return runs


@pytest.mark.slow
def test_seed_guard_keeps_every_seed_and_counts_what_it_blocked(mined):
    free, _, _, misses = mined["none"]
    records, stats, hits, new = mined["seed"]
    assert misses == 3 * len(ROWS) and (hits, new) == (misses, 0)
    moved = [r["seed_id"] for r in free if r["positive"]["id"] != r["seed_id"]]
    assert moved  # the swapped queries at least
    assert all(r["positive"]["id"] == r["seed_id"] for r in records)
    assert [r["seed_id"] for r in records if r["guards"]["relabel_blocked"]] == moved
    assert stats["guards"]["relabel_blocked"] == len(moved) and stats["positive_not_seed"] == 0
    assert [r["scores"] for r in records] == [r["scores"] for r in free]


@pytest.mark.slow
def test_round_trip_keeps_the_rows_whose_seed_is_retrieved_first(mined):
    free = mined["none"][0]
    records, stats, hits, misses = mined["round_trip"]
    kept = [r for r in free if r["candidate_ids"][0] == r["seed_id"]]
    assert 0 < len(kept) < len(ROWS)
    assert records == kept
    assert stats["guards"]["round_trip_dropped"] == len(ROWS) - len(kept)
    # The dropped queries were not scored: only the kept ones' pairs reached the LLM.
    assert (hits, misses) == (3 * len(kept), 0)


@pytest.mark.slow
def test_manifest_counts_match_the_records(mined):
    for name, (records, stats, _, _) in mined.items():
        guards = [r["guards"] for r in records]
        assert stats["rows"] == len(records), name
        assert stats["guards"] == {
            "round_trip_dropped": len(ROWS) - len(records),
            "relabel_blocked": sum(g["relabel_blocked"] for g in guards),
            "negative_replaced": sum(g["negative"] == "replaced" for g in guards),
            "negative_dropped": sum(r["negative"] is None for r in records),
        }, name
    # A kept negative scores more than the margin below the positive with both scorers.
    margin = REAL["seed"]["false_negative_margin"]
    for record in mined["seed"][0]:
        if record["negative"] is not None:
            ids, scores = record["candidate_ids"], record["scores"]
            pos, neg = ids.index(record["positive"]["id"]), ids.index(record["negative"]["id"])
            assert all(scores[s][neg] < scores[s][pos] - margin for s in (QL, RC))


@pytest.mark.slow
def test_a_negative_from_query_likelihood_is_its_lowest_safe_candidate(mined):
    records, _, hits, misses = mined["ql_negative"]
    assert misses == 0 and hits > 0  # relabelled from the cached scores
    for record in records:
        ql = record["scores"][QL]
        pos = record["candidate_ids"].index(record["positive"]["id"])
        others = [i for i in range(len(ql)) if i != pos and ql[i] < ql[pos]]
        expected = min(others, key=lambda i: ql[i]) if others else None
        negative = record["negative"] and record["candidate_ids"].index(record["negative"]["id"])
        assert negative == expected
