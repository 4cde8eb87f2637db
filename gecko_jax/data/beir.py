"""A BEIR-layout retrieval folder: ``corpus.jsonl``, ``queries.jsonl``, ``qrels/{split}.tsv``.

The layout BEIR and MTEB retrieval sets ship in, so a user's own judged data works unchanged.
Every malformed line is an error that names its file and line: judged data is small and a
silently dropped judgement changes every metric.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple


class BeirSet(NamedTuple):
    corpus: dict[str, tuple[str, str]]  # id -> (title, text)
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


class BeirFormatError(ValueError):
    """A BEIR file is missing or a line of it is malformed."""


def _objects(path: Path, fields: tuple[str, ...]) -> Iterator[dict[str, Any]]:
    if not path.is_file():
        raise BeirFormatError(
            f"{path} is missing (a BEIR folder holds corpus.jsonl, "
            "queries.jsonl and qrels/SPLIT.tsv)"
        )
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise BeirFormatError(f"{path}:{number}: not JSON: {error}") from None
            missing = [f for f in fields if not isinstance(row, dict) or f not in row]
            if missing:
                raise BeirFormatError(f"{path}:{number}: missing field(s) {missing}")
            yield row


def _qrels(path: Path) -> dict[str, dict[str, int]]:
    if not path.is_file():
        raise BeirFormatError(f"{path} is missing")
    qrels: dict[str, dict[str, int]] = {}
    with open(path, encoding="utf-8", newline="") as handle:
        rows = csv.reader(handle, delimiter="\t")
        for number, row in enumerate(rows, start=1):
            if number == 1 and row[:2] == ["query-id", "corpus-id"]:
                continue
            try:
                query_id, doc_id, grade = row[0], row[1], int(float(row[2]))
            except (IndexError, ValueError):
                raise BeirFormatError(
                    f"{path}:{number}: expected query-id<TAB>corpus-id<TAB>score, got {row}"
                ) from None
            qrels.setdefault(query_id, {})[doc_id] = grade
    return qrels


def read_beir(folder: str | Path, split: str = "test") -> BeirSet:
    """The corpus, the queries that have judgements, and the judgements of ``split``."""
    folder = Path(folder)
    qrels = _qrels(folder / "qrels" / f"{split}.tsv")
    corpus = {
        str(row["_id"]): (str(row.get("title") or ""), str(row["text"]))
        for row in _objects(folder / "corpus.jsonl", ("_id", "text"))
    }
    queries = {
        str(row["_id"]): str(row["text"])
        for row in _objects(folder / "queries.jsonl", ("_id", "text"))
        if str(row["_id"]) in qrels
    }
    if not queries:
        raise BeirFormatError(f"{folder}: no query in queries.jsonl has a judgement in {split}")
    return BeirSet(corpus, queries, qrels)
