"""The STS Benchmark in its official layout: ``stsbenchmark/sts-{train,dev,test}.csv``.

The official files are tab separated without quoting: genre, file, year, id, score (0-5),
sentence 1, sentence 2, and on some rows trailing source fields.
"""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from gecko_jax.core.hub import HubCopy
from gecko_jax.core.paths import PathLike, as_path

# The official release's folder name; a data folder holds it.
STSB_FOLDER = "stsbenchmark"


class STSPairs(NamedTuple):
    pairs: list[tuple[str, str]]
    scores: list[float]


def load_stsb(path_or_dir: PathLike, split: str = "test") -> STSPairs:
    """STS Benchmark from the official files: a folder holding ``sts-{split}.csv``, or one file.

    Only columns 4-6 (score, sentence 1, sentence 2) are read, since some rows carry extra
    trailing fields. The folder may be a URL (``gs://``), as ``GECKO_DATA_DIR`` is for the
    seqio tasks.
    """
    path = as_path(path_or_dir)
    if path.suffix != ".csv":
        path = path / f"sts-{split}.csv"
    if not path.is_file():
        raise FileNotFoundError(f"STS Benchmark file not found: {path}")
    pairs, scores = [], []
    with path.open("r", encoding="utf-8") as handle:
        for row in csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE):
            scores.append(float(row[4]))
            pairs.append((row[5], row[6]))
    return STSPairs(pairs, scores)


# MTEB's copy of the official files (the commit MTEB's STSBenchmark task pins), one gzipped
# JSON line per row: split, genre, dataset, year, sid, score (a float), sentence1, sentence2.
# Its test split matches the official one in size, characters per column, unique sentences and
# mean score; that its rows come in the official files' order is assumed.
_HUB_FILES = {"train": "train.jsonl.gz", "dev": "validation.jsonl.gz", "test": "test.jsonl.gz"}
_HUB_COLUMNS = ("genre", "dataset", "year", "sid", "score", "sentence1", "sentence2")


def _write_from_hub(files: Mapping[str, Path], folder: Path) -> None:
    """The official ``sts-{split}.csv`` files, less the trailing source fields (never read).

    Scores are written as Python prints them, so they read back to the same floats.
    """
    for split, name in _HUB_FILES.items():
        with (
            gzip.open(files[name], "rt", encoding="utf-8") as rows,
            open(folder / f"sts-{split}.csv", "w", encoding="utf-8", newline="") as out,
        ):
            for line in filter(str.strip, rows):
                row = json.loads(line)
                row["score"] = float(row["score"])
                fields = [str(row[column]) for column in _HUB_COLUMNS]
                if any("\t" in field or "\n" in field for field in fields):
                    raise ValueError(f"{name}: a field holds a tab or newline: {fields}")
                out.write("\t".join(fields) + "\n")


STSB_HUB_COPY = HubCopy(
    "mteb/stsbenchmark-sts",
    "b0fddb56ed78048fa8b90373c8a3cfc37b684831",
    tuple(_HUB_FILES.values()),
    _write_from_hub,
)
