"""Where rows come from: JSONL, CSV/TSV and Hugging Face datasets, with errors that say where.

Local files and the hub yield the same dicts, so each data set's mapping code is the same for
users (hub ids) and tests (small local files of the same schema). Malformed JSONL lines are
skipped, counted and reported with file and line, and too many of them fail the read. A row
that lacks a required field is an error naming the field: that is a schema mismatch (wrong
files, wrong reader), which skipping would hide. Paths go through ``tf.io.gfile``, so
``gs://`` buckets work as well as local disks.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import tensorflow as tf

logger = logging.getLogger(__name__)

DEFAULT_MAX_MALFORMED_FRACTION = 0.01
_MAX_WARNINGS = 20  # Malformed lines reported one by one; the summary counts them all.


class MissingFieldError(ValueError):
    """A row lacks a field its data set requires."""


class MalformedDataError(ValueError):
    """More lines failed to parse than the configured threshold allows."""


def check_row(
    row: Mapping[str, Any], required: Sequence[str], where: str, rename: Mapping[str, str]
) -> dict[str, Any]:
    """The row with columns renamed; raises ``MissingFieldError`` naming a missing field.

    A dotted name (``positive.text``) requires a nested object holding that key.
    """
    row = {rename.get(key, key): value for key, value in row.items()}
    for field in required:
        value: Any = row
        for part in field.split("."):
            if not isinstance(value, Mapping) or value.get(part) is None:
                raise MissingFieldError(
                    f"{where}: missing required field {field!r} (found fields {sorted(row)})"
                )
            value = value[part]
    return row


def list_files(pattern: str) -> list[str]:
    """Files matching a glob, sorted; an error naming the pattern when there are none."""
    files = sorted(tf.io.gfile.glob(os.path.expanduser(pattern)))
    if not files:
        raise FileNotFoundError(f"no files match {pattern!r}")
    return files


def read_jsonl(
    pattern: str,
    required: Sequence[str] = (),
    max_malformed_fraction: float = DEFAULT_MAX_MALFORMED_FRACTION,
    rename: Mapping[str, str] | None = None,
) -> Iterator[dict[str, Any]]:
    """JSON objects from every line of the files matching ``pattern`` (blank lines ignored).

    Lines that are not JSON objects are skipped with a warning naming file and line. Once all
    files are read, more than ``max_malformed_fraction`` of the lines being malformed raises
    ``MalformedDataError``.
    """
    lines = malformed = 0
    first_malformed = ""
    for path in list_files(pattern):
        with tf.io.gfile.GFile(path, "r") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                lines += 1
                try:
                    row = json.loads(line.rstrip("\r\n"))
                except json.JSONDecodeError as error:
                    reason = f"invalid JSON: {error}"
                else:
                    if isinstance(row, dict):
                        yield check_row(row, required, f"{path}:{number}", rename or {})
                        continue
                    reason = f"expected a JSON object, got {type(row).__name__}"
                malformed += 1
                first_malformed = first_malformed or f"{path}:{number}"
                if malformed <= _MAX_WARNINGS:
                    logger.warning("%s:%d: skipped malformed line (%s)", path, number, reason)
    if not malformed:
        return
    summary = (
        f"skipped {malformed} malformed of {lines} lines in {pattern!r} "
        f"(first at {first_malformed}; max_malformed_fraction={max_malformed_fraction})"
    )
    if malformed > max_malformed_fraction * lines:
        raise MalformedDataError(f"too many malformed lines: {summary}")
    logger.warning(summary)


def read_csv(
    path: str, required: Sequence[str] = (), rename: Mapping[str, str] | None = None
) -> Iterator[dict[str, Any]]:
    """Rows of CSV files with a header (TSV when the name ends in ``.tsv``)."""
    delimiter = "\t" if path.endswith(".tsv") else ","
    for file in list_files(path):
        with tf.io.gfile.GFile(file, "r") as handle:
            for number, row in enumerate(csv.DictReader(handle, delimiter=delimiter), 2):
                yield check_row(row, required, f"{file}:{number}", rename or {})


def read_hf(
    path: str, name: str | None, split: str, required: Sequence[str] = ()
) -> Iterator[dict[str, Any]]:
    """Rows of a Hugging Face hub data set (needs the ``datasets`` package and the network)."""
    try:
        import datasets  # Lazy and optional: local files need neither it nor the network.
    except ImportError as error:
        raise ImportError(
            f"reading {path!r} from the Hugging Face hub needs `pip install datasets`; "
            "or put local copies under GECKO_DATA_DIR (see tasks/defaults.py)"
        ) from error
    for number, row in enumerate(datasets.load_dataset(path, name, split=split)):
        yield check_row(row, required, f"{path}[{split}] row {number}", {})


def local_dir(data_dir: str | None, name: str) -> str | None:
    """A data set's local folder under ``data_dir``; None (read the hub) without one."""
    return os.path.join(data_dir, name) if data_dir else None


@dataclasses.dataclass(frozen=True)
class Table:
    """One table of a data set: its hub location and its local file name.

    ``local_file`` and ``hf_split`` may contain ``{split}``. ``rename`` maps local column
    names to the hub's, for local files whose header differs (Banking77's ``category``).
    """

    hf_path: str
    local_file: str
    hf_name: str | None = None
    hf_split: str = "{split}"
    required: tuple[str, ...] = ()
    rename: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def rows(self, split: str, folder: str | None) -> Iterator[dict[str, Any]]:
        """Rows from the local ``folder`` when given, else from the hub."""
        if folder is None:
            split = self.hf_split.format(split=split)
            return read_hf(self.hf_path, self.hf_name, split, self.required)
        path = os.path.join(folder, self.local_file.format(split=split))
        if path.endswith(".jsonl"):
            return read_jsonl(path, self.required, rename=self.rename)
        return read_csv(path, self.required, self.rename)
