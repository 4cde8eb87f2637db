"""Seed passages for FRet: read from JSONL and validated before any LLM call."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from gecko_jax.core.paths import as_path
from gecko_jax.core.stages import EmptyInput

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Passage:
    id: str
    title: str
    text: str

    def to_json(self) -> dict[str, str]:
        return dataclasses.asdict(self)


def iter_passage_records(lines: Iterable[bytes], source: str) -> Iterator[dict[str, Any] | None]:
    """Each non-blank line's object, or None for a malformed one (bad UTF-8, not an object, no
    ``id``).

    One bad line in a large crawl should not stop a run, so each is warned about (with its line
    number) and left to the caller to count.
    """
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw.decode("utf-8"))
            if not isinstance(record, dict):
                raise ValueError(f"expected an object, got {type(record).__name__}")
            if record.get("id") in (None, ""):
                raise ValueError("no 'id' field: positives and negatives are looked up by id")
        except (UnicodeDecodeError, ValueError) as error:
            logger.warning("%s:%d: skipping malformed line: %s", source, number, error)
            yield None
            continue
        yield record


def read_passages_jsonl(path: str | os.PathLike) -> tuple[list[dict[str, Any]], int]:
    """Objects from a JSONL file, and how many lines were skipped as malformed."""
    with as_path(path).open("rb") as handle:  # a local file or a URL (gs://...)
        records = list(iter_passage_records(handle, str(path)))
    kept = [record for record in records if record is not None]
    return kept, len(records) - len(kept)


def passage_from_record(record: Mapping[str, Any], max_chars: int) -> tuple[Passage, bool]:
    """The record as a passage, text stripped and cut to ``max_chars``, and whether it was cut.

    The text may be empty: the id still counts for the duplicate check.
    """
    text = (record.get("text") or "").strip()
    passage = Passage(str(record["id"]), str(record.get("title") or ""), text[:max_chars])
    return passage, len(text) > max_chars


MIN_PASSAGES = 2


def check_enough_passages(passages: list[Passage], counts: dict[str, int], source: str) -> None:
    """Raise before any LLM work when fewer than ``MIN_PASSAGES`` are usable: mining needs a
    candidate besides the seed."""
    if len(passages) < MIN_PASSAGES:
        raise EmptyInput(
            f"{source}: {len(passages)} usable passages ({counts}); FRet needs at least "
            f"{MIN_PASSAGES}, so a query has a candidate besides its own passage"
        )


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
        passage, truncated = passage_from_record(record, max_chars)
        if passage.id in seen:
            raise ValueError(f"duplicate passage id {passage.id!r}")
        seen.add(passage.id)
        if not passage.text:
            counts["empty"] += 1
            continue
        counts["truncated"] += truncated
        passages.append(passage)
    counts["kept"] = len(passages)
    return passages, counts
