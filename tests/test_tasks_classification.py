"""Classification sets as triples: same-label positive, other-label negative, one shared id."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import seqio

from tasks.classification import (
    DEFAULT_CLASSIFICATION_SETS,
    ClassificationSet,
    make_triples,
    register_classification_set,
)
from tasks.input_pipeline import materialise

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "tasks" / "data"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PREFIX = "task: classification | query: "


def check_label_rules(labels: list[str], triples: np.ndarray) -> None:
    for anchor, positive, negative in triples:
        assert anchor != positive and labels[positive] == labels[anchor]
        assert labels[negative] != labels[anchor]


def test_triples_obey_the_label_rules_and_skip_singletons() -> None:
    labels = [f"label{i % 7}" for i in range(300)] + ["alone"]
    triples = make_triples(labels, (0, "unit"))
    check_label_rules(labels, triples)
    assert sorted(triples[:, 0]) == list(range(300))  # The singleton is no anchor.
    # Random, not degenerate: positives and negatives spread over many examples.
    assert len(set(triples[:, 1])) > 150 and len(set(triples[:, 2])) > 150
    assert np.array_equal(make_triples(labels, (0, "unit")), triples)  # Seeded.
    assert not np.array_equal(make_triples(labels, (1, "unit")), triples)
    assert len(make_triples(["only"] * 5, (0, "unit"))) == 0  # No other label: no negative.


def read_triples(task_name: str) -> list[tuple[str, str, str, str]]:
    """(query, positive, negative, id) with the format and the id suffix checked and removed."""
    columns = materialise(seqio.get_mixture_or_task(task_name), "train")
    out = []
    for texts in zip(
        *(columns[f"formatted_{k}"] for k in ("query", "positive", "negative")), strict=True
    ):
        uid = texts[0].rsplit(" [id ", 1)[1].rstrip("]")
        suffix = f" [id {uid}]"
        assert all(t.startswith(PREFIX) and t.endswith(suffix) for t in texts)
        out.append((*(t[len(PREFIX) : -len(suffix)] for t in texts), uid))
    return out


def test_fixture_set_triples_carry_one_unique_id_per_triple() -> None:
    rows = [json.loads(line) for line in (FIXTURES / "tiny_intents" / "train.jsonl").open()]
    label = {row["text"]: row["label"] for row in rows}
    spec = ClassificationSet("tiny_intents", "example/tiny_intents")
    triples = read_triples(register_classification_set(spec, str(FIXTURES)))
    # 12 distinct texts; the single "change_pin" text has no positive, so 11 anchors.
    assert sorted(q for q, *_ in triples) == sorted(t for t in label if label[t] != "change_pin")
    for query, positive, negative, _ in triples:
        assert query != positive and label[positive] == label[query]
        assert label[negative] != label[query]
    assert len({uid for *_, uid in triples}) == len(triples)
    assert all(len(uid) == 8 and int(uid, 16) >= 0 for *_, uid in triples)
    again = read_triples(register_classification_set(spec, str(FIXTURES)))
    assert again == triples
    other_seed = read_triples(register_classification_set(spec, str(FIXTURES), seed=1))
    assert other_seed != triples


@pytest.mark.skipif(not (SHARED_DATA / "banking77").is_dir(), reason="../shared/data absent")
def test_banking77_from_its_local_csv() -> None:
    (spec,) = [s for s in DEFAULT_CLASSIFICATION_SETS if s.name == "banking77"]
    triples = read_triples(register_classification_set(spec, str(SHARED_DATA)))
    with (SHARED_DATA / "banking77" / "train.csv").open(encoding="utf-8") as handle:
        label = {}
        for row in csv.DictReader(handle):
            label.setdefault(row["text"].strip(), row["category"])
    assert len(triples) == len(label)  # Every label has several examples.
    for query, positive, negative, _ in triples:
        assert query != positive and label[positive] == label[query]
        assert label[negative] != label[query]
    assert len({uid for *_, uid in triples}) == len(triples)
