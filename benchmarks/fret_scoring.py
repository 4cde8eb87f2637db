"""Joint vs separate FRet scoring (``MineConfig.scoring``) on a finished demo's FRet records.

Scores every (query, candidate) pair of ``DEMO/fret/fret.jsonl`` both ways with the offline
SmolLM2, each twice (cold: compiling included; warm: programs compiled), and prints the times,
their ratio, the Spearman correlation of each scorer's joint and separate scores, and how often
the two pick the same positive and hard negative (RRF, k = 0, the N-th as negative).

    .venv/bin/python benchmarks/fret_scoring.py --demo demo_out [--limit 10]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from gecko_jax.core.assets import smollm2_gguf_path
from gecko_jax.fret.fusion import ranks_from_scores, reciprocal_rank_fusion, select
from gecko_jax.fret.mine import SCORERS, MineConfig, score_jointly, score_separately
from gecko_jax.fret.passages import prepare_passages
from gecko_jax.fret.records import FRET, read_jsonl
from gecko_jax.llm.jax_backend import JaxLLM


def labels(records: list[dict], scores: dict[str, np.ndarray]) -> list[tuple[str, str]]:
    """(positive id, negative id) of each record under these scores."""
    out = []
    for i, record in enumerate(records):
        fused = reciprocal_rank_fusion([ranks_from_scores(scores[n][i]) for n in SCORERS], 0.0)
        positive, negative = select(record["candidate_ids"], fused, "nth")
        out.append((record["candidate_ids"][positive], record["candidate_ids"][negative]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", required=True, help="a finished gecko-jax demo folder")
    parser.add_argument("--limit", type=int, help="score only the first LIMIT records")
    args = parser.parse_args()
    demo = Path(args.demo)
    records = read_jsonl(demo / "fret" / FRET)[: args.limit]
    raw = read_jsonl(demo / "passages.jsonl")
    # Passages as the demo prepared them (cut to its longest text).
    passages = {p.id: p for p in prepare_passages(raw, max(len(p["text"]) for p in raw))[0]}
    pairs = [(r["query"], passages[c]) for r in records for c in r["candidate_ids"]]
    shape = (len(records), len(records[0]["candidate_ids"]))
    llm = JaxLLM.from_gguf(smollm2_gguf_path())
    batch = MineConfig().score_batch_size
    modes = {"separate": score_separately, "joint": score_jointly}
    times: dict[str, list[float]] = {mode: [] for mode in modes}
    scores = {}
    for _ in range(2):  # cold, then warm
        for mode, score in modes.items():
            started = time.perf_counter()
            flat = score(llm, pairs, batch)
            times[mode].append(time.perf_counter() - started)
            scores[mode] = {name: flat[name].reshape(shape) for name in SCORERS}
    pairs_of_labels = zip(
        labels(records, scores["joint"]), labels(records, scores["separate"]), strict=True
    )
    same = [(a[0] == b[0], a[1] == b[1]) for a, b in pairs_of_labels]
    report = {
        "pairs": len(pairs),
        "seconds_cold": {mode: t[0] for mode, t in times.items()},
        "seconds_warm": {mode: t[1] for mode, t in times.items()},
        "speedup_warm": times["separate"][1] / times["joint"][1],  # separate / joint
        "spearman": {
            name: float(
                spearmanr(scores["joint"][name].ravel(), scores["separate"][name].ravel())[0]
            )
            for name in SCORERS
        },
        "same_positive": float(np.mean([p for p, _ in same])),
        "same_negative": float(np.mean([n for _, n in same])),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
