"""How hard each labelling rule's hard negatives are, read from mined FRet records.

    python benchmarks/negative_table.py FRET_JSONL [FRET_JSONL ...]

A hard negative teaches the student only what it does not already know. Its position in the
initial retriever's candidate list (1 = the retriever's first) says how close the student puts
it to the query: near the end of the list it is an easy one. For each rule of the quality plan
(``gin_configs/ablations/quality.gin``) this prints the negatives' mean and median retrieved
rank, the share in the retriever's top 3, and the records left without a negative (the
false-negative guard found no safe candidate). No LLM call: it relabels the stored scores
through mining's own rule (:func:`gecko_jax.fret.guards.choose_labels`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from gecko_jax.fret.guards import choose_labels

QL, RC, RETRIEVER = "query_likelihood", "relevance", "retriever"
GUARDED = {"fusion": (QL, RETRIEVER), "guard": "unanimous"}
# (name, choose_labels settings): the quality plan's cells.
RULES = (
    ("guarded (demo)", {**GUARDED, "false_negative_margin": 0.0}),
    (
        "guarded_ql_negative",
        {
            **GUARDED,
            "negative_fusion": (QL,),
            "false_negative_margin": 0.0,
            "false_negative_scorers": (QL,),
        },
    ),
    ("seed_nth", {"fusion": (QL, RC), "guard": "seed"}),
    ("baseline (paper)", {"fusion": (QL, RC), "guard": "none"}),
)


def negative_ranks(records: list[dict], settings: dict) -> tuple[list[int], int]:
    """The retrieved rank of each record's negative under ``settings``, and how many had none."""
    ranks, without = [], 0
    for record in records:
        choice = choose_labels(
            record["scores"], record["candidate_ids"], record["seed_id"], rrf_k=0.0, **settings
        )
        if choice.negative is None:
            without += 1
        else:
            ranks.append(choice.negative + 1)
    return ranks, without


def main(paths: list[str]) -> None:
    for path in paths:
        records = [json.loads(line) for line in Path(path).read_text().splitlines() if line]
        n = len(records[0]["candidate_ids"])
        print(f"\n{path}: {len(records)} records, {n} candidates each")
        print("| rule | mean rank | median rank | in top 3 | without negative |")
        print("|---|---|---|---|---|")
        for name, settings in RULES:
            ranks, without = negative_ranks(records, settings)
            top3 = np.mean(np.asarray(ranks) <= 3)
            print(
                f"| {name} | {np.mean(ranks):.2f} | {np.median(ranks):.0f} | {top3:.0%} | "
                f"{without} ({without / len(records):.0%}) |"
            )


if __name__ == "__main__":
    main(sys.argv[1:])
