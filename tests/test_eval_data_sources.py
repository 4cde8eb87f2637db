"""Where STS-B and Banking77 come from: the data folder, else their hub copies (served here by a
local stand-in of the hub's resolve URLs, in the hub's file formats), else skipped with why."""

from __future__ import annotations

import csv
import gzip
import json
import logging
import subprocess
import time
from pathlib import Path

import pytest
from conftest import SHARED_DATA
from hub_standin import run_against_hub

from gecko_jax.data import sources
from gecko_jax.data.banking77 import BANKING77_FOLDER, BANKING77_HUB_COPY, load_banking77
from gecko_jax.data.sources import SetUnavailable, resolve_set
from gecko_jax.data.stsb import STSB_FOLDER, STSB_HUB_COPY, load_stsb

needs_shared_data = pytest.mark.skipif(
    not (SHARED_DATA / STSB_FOLDER).is_dir() or not (SHARED_DATA / BANKING77_FOLDER).is_dir(),
    reason=f"shared evaluation data not found under {SHARED_DATA}",
)

# Rows as the hub's files hold them, with what the official layout makes hard: quotes, trailing
# spaces, scores printed with 14 decimals, commas and newlines inside a CSV field.
STS_HUB_ROWS = {
    "train": [
        ("main-captions", "MSRvid", "2012test", "0001", 5.0, "A plane flies.", "A jet flies."),
        ("main-news", "headlines", "2016", "0012", 3.66666666666667, 'He said "no". ', "No."),
    ],
    "dev": [("main-forums", "answers-forums", "2015", "0004", 0.0, "Hi there", "Bye")],
    "test": [
        ("main-captions", "MSRvid", "2012test", "0024", 2.5, "A girl sings.", "A girl hums."),
        ("main-news", "MSRpar", "2012test", "0100", 3.8, "Shares fell 3%, it said.", "Down."),
    ],
}
BANKING_HUB_ROWS = {
    "train": [
        ("I am still waiting on my card?", 11, "card_arrival"),
        ('\nI can\'t seem to use my card, "it" fails\n\n', 15, "card_not_working"),
        (" Refund, please ", 51, "Refund_not_showing_up"),
    ],
    "test": [("How do I locate my card?", 11, "card_arrival")],
}


def sts_hub_files(rows: dict[str, list[tuple]]) -> dict[str, bytes]:
    """MTEB's gzipped JSON lines, one file per split (``validation`` for dev)."""
    columns = ("genre", "dataset", "year", "sid", "score", "sentence1", "sentence2")
    names = {"train": "train.jsonl.gz", "dev": "validation.jsonl.gz", "test": "test.jsonl.gz"}
    files = {}
    for split, split_rows in rows.items():
        lines = [
            json.dumps({"split": split, **dict(zip(columns, row, strict=True))})
            for row in split_rows
        ]
        files[names[split]] = gzip.compress("\n".join(lines).encode() + b"\n")
    return files


def banking_hub_files(rows: dict[str, list[tuple]]) -> dict[str, bytes]:
    return {
        f"{split}.jsonl": "".join(
            json.dumps({"text": text, "label": label, "label_text": label_text}) + "\n"
            for text, label, label_text in split_rows
        ).encode()
        for split, split_rows in rows.items()
    }


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def resolve_online(endpoint: str, cache: Path, *names: str) -> subprocess.CompletedProcess:
    """``resolve_set(name)`` for each name in a fresh process that reads the hub at ``endpoint``
    (huggingface_hub reads ``HF_ENDPOINT`` once, at import)."""
    script = "import sys\nfrom gecko_jax.data.sources import resolve_set\n"
    script += "for name in sys.argv[1:]:\n    print(resolve_set(name))\n"
    return run_against_hub(endpoint, cache, script, *names)


def test_hub_copies_are_written_in_the_local_layout_once(hub, tmp_path, monkeypatch):
    serve, endpoint, requests = hub
    serve(STSB_HUB_COPY, sts_hub_files(STS_HUB_ROWS))
    serve(BANKING77_HUB_COPY, banking_hub_files(BANKING_HUB_ROWS))
    cache = tmp_path / "cache"
    run = resolve_online(endpoint, cache, STSB_FOLDER, BANKING77_FOLDER)
    assert run.returncode == 0, run.stderr
    data = cache / "data"
    assert run.stdout.split() == [str(data / STSB_FOLDER), str(data / BANKING77_FOLDER)]
    for copy in (STSB_HUB_COPY, BANKING77_HUB_COPY):
        assert {p.rsplit("/", 1)[1] for p in requests if copy.repo_id in p} == set(copy.files)
    assert all(f"/resolve/{STSB_HUB_COPY.revision}/" in p for p in requests if "sts" in p)
    assert all(f"/resolve/{BANKING77_HUB_COPY.revision}/" in p for p in requests if "bank" in p)
    assert sorted(p.name for p in data.iterdir()) == [BANKING77_FOLDER, STSB_FOLDER]  # No staging.

    for split, rows in STS_HUB_ROWS.items():
        pairs, scores = load_stsb(data / STSB_FOLDER, split)
        assert pairs == [(row[5], row[6]) for row in rows] and scores == [row[4] for row in rows]
    for split, rows in BANKING_HUB_ROWS.items():
        texts, labels = load_banking77(data / BANKING77_FOLDER, split)
        assert texts == [row[0] for row in rows] and labels == [row[2] for row in rows]

    # Later calls read the cache: no request, even with the hub switched off.
    monkeypatch.setenv("GECKO_CACHE_DIR", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    seen = len(requests)
    assert resolve_set(STSB_FOLDER) == data / STSB_FOLDER
    assert resolve_set(BANKING77_FOLDER, tmp_path / "empty") == data / BANKING77_FOLDER
    assert len(requests) == seen


@needs_shared_data
def test_hub_copies_of_the_official_rows_read_as_the_official_files(hub, tmp_path):
    """Rows in the hub's formats made from the local files come back as the local files read:
    Banking77 byte for byte, STS-B with the same pairs and scores (its trailing source fields
    are not written)."""
    serve, endpoint, _ = hub
    sts_rows = {}
    for split in ("train", "dev", "test"):
        with open(SHARED_DATA / STSB_FOLDER / f"sts-{split}.csv", encoding="utf-8") as handle:
            official = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
            sts_rows[split] = [(*row[:4], float(row[4]), *row[5:7]) for row in official]
    banking_rows = {}
    for split in ("train", "test"):
        path = SHARED_DATA / BANKING77_FOLDER / f"{split}.csv"
        with open(path, encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
        ids = {c: i for i, c in enumerate(sorted({r["category"] for r in rows}, key=str.lower))}
        banking_rows[split] = [(r["text"], ids[r["category"]], r["category"]) for r in rows]
    serve(STSB_HUB_COPY, sts_hub_files(sts_rows))
    serve(BANKING77_HUB_COPY, banking_hub_files(banking_rows))
    run = resolve_online(endpoint, tmp_path / "cache", STSB_FOLDER, BANKING77_FOLDER)
    assert run.returncode == 0, run.stderr
    stsb, banking77 = (Path(line) for line in run.stdout.split())
    for split in ("train", "dev", "test"):
        assert load_stsb(stsb, split) == load_stsb(SHARED_DATA / STSB_FOLDER, split)
    for split in ("train", "test"):
        local = (SHARED_DATA / BANKING77_FOLDER / f"{split}.csv").read_bytes()
        assert (banking77 / f"{split}.csv").read_bytes() == local


def test_the_data_folder_wins_over_the_hub_copy(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    (cache / "data" / STSB_FOLDER).mkdir(parents=True)
    (tmp_path / "data" / STSB_FOLDER).mkdir(parents=True)
    monkeypatch.setenv("GECKO_CACHE_DIR", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve_set(STSB_FOLDER, tmp_path / "data") == tmp_path / "data" / STSB_FOLDER
    assert resolve_set(STSB_FOLDER, str(tmp_path / "other")) == cache / "data" / STSB_FOLDER


def test_offline_the_set_is_unavailable_with_the_reason(tmp_path, monkeypatch):
    monkeypatch.setenv("GECKO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SetUnavailable) as error:
        resolve_set(BANKING77_FOLDER, tmp_path)
    assert str(error.value) == (
        f"banking77: not in {tmp_path}, and its hub copy mteb/banking77 is unavailable: "
        "offline (HF_HUB_OFFLINE is set)"
    )
    assert not (tmp_path / "cache").exists()


def test_an_unreachable_hub_fails_fast_with_the_reason(tmp_path):
    refused = "http://127.0.0.1:9"  # discard port: nothing listens there
    start = time.monotonic()
    run = resolve_online(refused, tmp_path / "cache", STSB_FOLDER)
    assert time.monotonic() - start < 15  # hf_hub_download alone retries for ~25 s
    (last,) = run.stderr.strip().splitlines()[-1:]
    assert last.startswith(
        "gecko_jax.data.sources.SetUnavailable: stsbenchmark: no data folder, and its hub copy "
        "mteb/stsbenchmark-sts is unavailable: ConnectError"
    )
    assert not list((tmp_path / "cache" / "data").iterdir())  # Nothing half-written is left.


def test_default_data_dir_falls_through_to_the_hub_copies(tmp_path, monkeypatch, caplog):
    monkeypatch.delenv(sources.DATA_DIR_ENV, raising=False)
    # An installed package: no shared/data beside it.
    monkeypatch.setattr(sources, "_CHECKOUT", tmp_path / "site-packages")
    monkeypatch.setenv("GECKO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with caplog.at_level(logging.WARNING):
        assert sources.default_data_dir() is None
    assert "stsbenchmark: no data folder, and its hub copy" in caplog.text
    (tmp_path / "cache" / "data" / STSB_FOLDER).mkdir(parents=True)  # fetched earlier
    assert sources.default_data_dir() == str(tmp_path / "cache" / "data")
    monkeypatch.setenv(sources.DATA_DIR_ENV, str(tmp_path / "mine"))
    assert sources.default_data_dir() == str(tmp_path / "mine")


def test_the_sts_task_reads_the_cached_hub_copy(tmp_path, monkeypatch):
    import seqio

    from tasks.input_pipeline import materialise
    from tasks.sts import StsPairSet, register_sts_pairs

    folder = tmp_path / "cache" / "data" / STSB_FOLDER
    folder.mkdir(parents=True)
    STSB_HUB_COPY.write(
        {name: write(tmp_path / name, data) for name, data in sts_hub_files(STS_HUB_ROWS).items()},
        folder,
    )
    monkeypatch.setenv("GECKO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    name = register_sts_pairs(StsPairSet(min_score=3.5, name="hub_copy"), str(tmp_path))
    columns = materialise(seqio.get_mixture_or_task(name), "train")
    assert list(zip(columns["query"], columns["positive_text"], strict=True)) == [
        ("A plane flies.", "A jet flies."),
        ('He said "no".', "No."),
    ]
