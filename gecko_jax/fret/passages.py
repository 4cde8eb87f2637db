"""Seed passages for FRet: read from JSONL and validated before any LLM call."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Passage:
    id: str
    title: str
    text: str

    def to_json(self) -> dict[str, str]:
        return dataclasses.asdict(self)


def read_passages_jsonl(path: str | os.PathLike) -> tuple[list[dict[str, Any]], int]:
    """Objects from a JSONL file, and how many lines were skipped (bad UTF-8, not an object).

    One bad line in a large crawl should not stop a run, so each is warned about (with its line
    number) and counted instead.
    """
    records, skipped = [], 0
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw.decode("utf-8"))
                if not isinstance(record, dict):
                    raise ValueError(f"expected an object, got {type(record).__name__}")
            except (UnicodeDecodeError, ValueError) as error:
                logger.warning("%s:%d: skipping malformed line: %s", path, number, error)
                skipped += 1
                continue
            records.append(record)
    return records, skipped


def prepare_passages(
    records: Iterable[Mapping[str, Any]], max_chars: int
) -> tuple[list[Passage], dict[str, int]]:
    """Passages with ids checked, empty texts dropped and long texts cut to ``max_chars``.

    Duplicate ids raise, since positives and negatives are looked up by id. The counts go into
    the manifest, so silent data loss shows up there.
    """
    passages, seen = [], set()
    counts = {"input": 0, "empty": 0, "truncated": 0}
    for record in records:
        counts["input"] += 1
        pid = str(record["id"])
        if pid in seen:
            raise ValueError(f"duplicate passage id {pid!r}")
        seen.add(pid)
        text = (record.get("text") or "").strip()
        if not text:
            counts["empty"] += 1
            continue
        if len(text) > max_chars:
            text = text[:max_chars]
            counts["truncated"] += 1
        passages.append(Passage(pid, str(record.get("title") or ""), text))
    counts["kept"] = len(passages)
    return passages, counts
