"""Banking77 in PolyAI's layout: ``banking77/{train,test}.csv`` with a ``text,category`` header."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from pathlib import Path

from gecko_jax.core.hub import HubCopy
from gecko_jax.data.labelled_texts import LabelledTexts

BANKING77_FOLDER = "banking77"
SPLIT_FILE = "{split}.csv"


def load_banking77(data_dir: str | Path, split: str = "test") -> LabelledTexts:
    """The texts and categories of ``{data_dir}/{split}.csv``."""
    path = Path(data_dir) / SPLIT_FILE.format(split=split)
    if not path.is_file():
        raise FileNotFoundError(f"Banking77 file not found: {path}")
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return LabelledTexts([r["text"] for r in rows], [r["category"] for r in rows])


# MTEB's first copy (the commit MTEB's Banking77Classification task pins; later commits
# correct labels, so their rows differ from PolyAI's): one JSON line per row, text, label (an
# id) and label_text (the category). Its splits match PolyAI's in size, characters, unique texts
# and examples per category; that its rows come in the CSV files' order is assumed.
_HUB_FILES = {"train": "train.jsonl", "test": "test.jsonl"}


def _write_from_hub(files: Mapping[str, Path], folder: Path) -> None:
    """PolyAI's CSV files, written as csv writes them by default (as PolyAI's were)."""
    for split, name in _HUB_FILES.items():
        with open(files[name], encoding="utf-8") as lines:
            rows = [json.loads(line) for line in lines if line.strip()]
        path = folder / SPLIT_FILE.format(split=split)
        with open(path, "w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["text", "category"])
            writer.writerows([row["text"], row["label_text"]] for row in rows)


BANKING77_HUB_COPY = HubCopy(
    "mteb/banking77",
    "0fd18e25b25c072e09e0d92ab615fda904d66300",
    tuple(_HUB_FILES.values()),
    _write_from_hub,
)
