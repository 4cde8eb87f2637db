"""STS Benchmark train pairs as symmetric records: similar pairs only, each once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import seqio

from gecko_jax.data.stsb import STSPairs, load_stsb
from tasks.input_pipeline import materialise
from tasks.sts import StsPairSet, register_sts_pairs, similar_pair_records

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PREFIX = "task: semantic similarity | query: "


def test_only_similar_pairs_are_kept_once_without_blanks() -> None:
    pairs = STSPairs(
        [
            ("a cat sits", "a cat is sitting"),
            ("a cat sits", "a dog runs"),
            (" ", "x"),
            ("a cat sits", "a cat is sitting"),
            ("two men talk", "two men are talking"),
        ],
        [4.8, 0.4, 5.0, 4.8, 4.0],
    )
    records = list(similar_pair_records(pairs, 4.0, "semantic similarity"))
    assert [(r.query, r.positive_text) for r in records] == [
        ("a cat sits", "a cat is sitting"),
        ("two men talk", "two men are talking"),
    ]
    assert all(r.negative_text is None and r.task == "semantic similarity" for r in records)


@pytest.mark.skipif(not (SHARED_DATA / "stsbenchmark").is_dir(), reason="../shared/data absent")
def test_stsb_train_pairs_from_the_official_file_are_symmetric() -> None:
    name = register_sts_pairs(StsPairSet(min_score=4.0), str(SHARED_DATA))
    columns = materialise(seqio.get_mixture_or_task(name), "train")
    official = load_stsb(SHARED_DATA / "stsbenchmark", "train")
    expected = {
        (a.strip(), b.strip())
        for (a, b), score in zip(official.pairs, official.scores, strict=True)
        if score >= 4.0
    }
    assert len(expected) > 1000
    got = set(zip(columns["query"], columns["positive_text"], strict=True))
    assert got == expected and len(columns["query"]) == len(expected)
    # Symmetric: both sides in the query format, and no hard negative.
    assert all(t.startswith(PREFIX) for t in columns["formatted_query"])
    assert all(t.startswith(PREFIX) for t in columns["formatted_positive"])
    assert not np.any(columns["has_negative"])
