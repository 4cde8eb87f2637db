"""The FRet task: the FRet pipeline's ``fret.jsonl`` files as training records.

Each line holds ``task``, ``query``, ``positive`` {id, title, text} and optionally
``negative`` {id, title, text} (null or absent: no hard negative), plus provenance (seed id,
ranks, scores) that training ignores. ``uniform_task_sampling`` draws task types in turn, so
each gets the same share of the draws whatever its size: the paper's Table 4 ablation, where
it beat natural sampling (60.87 vs 60.70 MTEB). Records are asymmetric by default: FRet targets
are titled web passages; the paper does not say whether its sentence-similarity examples used
the symmetric format.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from gecko_jax.fret.records import TRAINING_FIELDS
from gecko_jax.text.formats import DEFAULT_TEXT_FORMAT
from tasks.records import Record
from tasks.registry import add_task
from tasks.sources import (
    DEFAULT_MAX_MALFORMED_FRACTION,
    MissingFieldError,
    list_files,
    read_jsonl,
)


def fret_records(
    rows: Iterator[dict[str, Any]], group_field: str | None, where: str
) -> Iterator[Record]:
    """Records; ``group_field`` names the field whose values the sampler balances (or None)."""
    for number, row in enumerate(rows):
        positive, negative = row["positive"], row.get("negative")
        if negative is not None and not (isinstance(negative, dict) and negative.get("text")):
            raise MissingFieldError(
                f"{where}: record {number} (query {row['query']!r}): 'negative' is neither "
                "null nor an object with a 'text' field"
            )
        yield Record(
            task=row["task"],
            query=row["query"],
            positive_title=positive.get("title") or "",
            positive_text=positive["text"],
            negative_title=(negative or {}).get("title") or "",
            negative_text=negative["text"] if negative else None,
            group=str(row[group_field]) if group_field else "",
        )


def register_fret(
    name: str,
    file_pattern: str,
    *,
    uniform_task_sampling: bool = False,
    task_type_field: str = "task",
    symmetric: bool = False,
    max_malformed_fraction: float = DEFAULT_MAX_MALFORMED_FRACTION,
    text_format: str = DEFAULT_TEXT_FORMAT,
) -> str:
    """Registers a FRet task over every file matching ``file_pattern`` (a glob; gs:// works).

    Files are read when the task's data is first requested, so a pattern matching nothing
    fails then, with an error naming it, and not at registration. ``uniform_task_sampling``
    balances the values of ``task_type_field``: the task description by default, which works
    when the pipeline writes one description per task type; name another field otherwise.
    ``text_format`` names the :mod:`gecko_jax.text.formats` template (Table 7's ablation).
    """
    group_field = task_type_field if uniform_task_sampling else None
    required = (*TRAINING_FIELDS, *([group_field] if group_field else []))

    def read(split: str) -> Iterator[Record]:
        del split  # FRet runs have one split.
        try:
            list_files(file_pattern)
        except FileNotFoundError as error:
            raise FileNotFoundError(
                f"FRet task {name!r}: {error}. Run the FRet pipeline, or point the task at its "
                "output with GECKO_FRET_FILES or tasks.register_fret(name, pattern)"
            ) from None
        rows = read_jsonl(file_pattern, required, max_malformed_fraction)
        return fret_records(rows, group_field, file_pattern)

    return add_task(name, read, symmetric=symmetric, text_format=text_format)
