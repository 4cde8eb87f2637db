"""Relabel guards measured on ``gecko-rerank-eval`` output: when may the teacher overrule?

    python benchmarks/guard_table.py RUN_DIR [RUN_DIR ...]

Mining keeps an anchor (the seed passage) unless a guard lets the teacher's top fused candidate
replace it. On judged data the same decision can be scored: anchor = the retriever's first
candidate (what the student already believes), move = the teacher's top pick under a fusion.
For each fusion and guard this prints P@1 of the guarded choice, and how many moves were right
(the anchor was wrong and the new pick is relevant) or wrong (the reverse). The last column is
mining's own setting: anchor = the relevant passage (the seed, for FRet queries), so it counts
the moves away from a right label. No LLM call: it
reads the per-query scores in ``per_query.jsonl`` (``relevant`` ids, or the query's own id for
the Wikipedia set, whose queries share their article's id).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from gecko_jax.fret.fusion import member_ranks, reciprocal_rank_fusion
from gecko_jax.fret.guards import relabel_allowed
from gecko_jax.fret.teacher import METHODS

# The rankings of gecko-rerank-eval that use QL (RC alone ranks far below the retriever).
FUSIONS = {m: METHODS[m] for m in ("rrf", "rrf_retriever", "ql", "ql_retriever")}
# (guard, margin): the margins are in fused-score units (1 / rank sums).
GUARDS = (("none", 0.0), ("unanimous", 0.0), ("margin", 0.25), ("margin", 0.5), ("seed", 0.0))


def _relevant(row: dict) -> set[str]:
    return set(row.get("relevant", [row["query_id"]]))


def guarded_choices(
    row: dict, fusion: str, guard: str, margin: float, anchor: int = 0
) -> tuple[int, int]:
    """(anchor index, chosen index) of one query. With the retriever's first candidate as the
    anchor, the guard's evidence is the LLM scorers' (the retriever always ranks its own
    anchor first); with any other anchor (the seed, as in mining) it is every member's."""
    n = len(row["candidates"])
    scores = {k: np.asarray(v, np.float64) for k, v in row["scores"].items()}
    ranks = member_ranks(scores, FUSIONS[fusion], n)
    fused = reciprocal_rank_fusion(list(ranks.values()))
    top = int(np.argmax(fused))  # ties: the earlier (better retrieved) candidate
    evidence = {m: r for m, r in ranks.items() if m != "retriever" or anchor != 0}
    allowed = relabel_allowed(fused, evidence, top, anchor, guard, margin)
    return anchor, top if allowed else anchor


def seed_moves(run: Path) -> list[dict]:
    """Mining's own setting on judged queries written from a seed: anchor = the seed (the
    relevant passage), so every move is away from it. Queries whose seed was not retrieved are
    left out (mining would insert it)."""
    rows = [json.loads(line) for line in (run / "per_query.jsonl").read_text().splitlines()]
    rows = [r for r in rows if set(r["candidates"]) & _relevant(r)]
    out = []
    for fusion in FUSIONS:
        for guard, margin in GUARDS:
            moves = 0
            for row in rows:
                seed = next(i for i, d in enumerate(row["candidates"]) if d in _relevant(row))
                anchor, chosen = guarded_choices(row, fusion, guard, margin, seed)
                moves += chosen != anchor
            name = guard if guard != "margin" else f"margin {margin}"
            out.append({"fusion": fusion, "guard": name, "moves": moves, "queries": len(rows)})
    return out


def table(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "per_query.jsonl").read_text().splitlines()]
    out = []
    for fusion in FUSIONS:
        for guard, margin in GUARDS:
            hits = right = wrong = moves = 0
            for row in rows:
                relevant = _relevant(row)
                anchor, chosen = guarded_choices(row, fusion, guard, margin)
                ids = row["candidates"]
                hits += ids[chosen] in relevant
                if chosen != anchor:
                    moves += 1
                    right += ids[chosen] in relevant and ids[anchor] not in relevant
                    wrong += ids[anchor] in relevant and ids[chosen] not in relevant
            name = guard if guard != "margin" else f"margin {margin}"
            out.append(
                {
                    "fusion": fusion,
                    "guard": name,
                    "p@1": hits / len(rows),
                    "moves": moves,
                    "right": right,
                    "wrong": wrong,
                    "queries": len(rows),
                }
            )
    return out


def main() -> None:
    for run in map(Path, sys.argv[1:]):
        moves = {(r["fusion"], r["guard"]): r for r in seed_moves(run)}
        print(f"== {run.name}: anchor = the retriever's first; last column: anchor = the seed")
        header = f"{'fusion':<14}{'guard':<12}{'P@1':>7}{'moves':>7}{'right':>7}{'wrong':>7}"
        print(header + f"{'off seed':>10}")
        for r in table(run):
            away = moves[(r["fusion"], r["guard"])]
            print(
                f"{r['fusion']:<14}{r['guard']:<12}{r['p@1']:>7.3f}{r['moves']:>7}"
                f"{r['right']:>7}{r['wrong']:>7}{away['moves']:>5}/{away['queries']}"
            )


if __name__ == "__main__":
    main()
