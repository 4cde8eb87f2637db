"""Row readers: local JSONL/CSV and Hugging Face hub rows through the same checks."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from tasks.sources import MissingFieldError, Table, read_jsonl


def test_jsonl_ignores_blank_lines_and_checks_nested_fields(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": {"b": 1}}\n\n{"a": {"b": 2}}\n')
    assert [row["a"]["b"] for row in read_jsonl(str(path), ["a.b"])] == [1, 2]
    path.write_text('{"a": {"b": 1}}\n{"a": {"c": 2}}\n')
    with pytest.raises(MissingFieldError, match=rf"{path}:2: missing required field 'a.b'"):
        list(read_jsonl(str(path), ["a.b"]))


def test_local_csv_columns_are_renamed_to_the_hub_schema(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_text('text,category\n"Where is my card, please?",card_arrival\n')
    table = Table(
        "mteb/banking77", "{split}.csv", required=("text", "label"), rename={"category": "label"}
    )
    assert list(table.rows("train", str(tmp_path))) == [
        {"text": "Where is my card, please?", "label": "card_arrival"}
    ]
    with pytest.raises(FileNotFoundError, match=r"no files match .*test\.csv"):
        list(table.rows("test", str(tmp_path)))


def test_tsv_rows_name_file_and_line_when_a_field_is_missing(tmp_path: Path) -> None:
    (tmp_path / "qrels.tsv").write_text("query-id\tcorpus-id\n1\tdoc\n")
    table = Table("mteb/fever", "qrels.tsv", required=("query-id", "score"))
    with pytest.raises(MissingFieldError, match=r"qrels.tsv:2: missing required field 'score'"):
        list(table.rows("train", str(tmp_path)))


def test_hub_rows_go_through_datasets_with_name_and_split(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def load_dataset(path: str, name: str | None, split: str) -> list[dict]:
        calls.append((path, name, split))
        return [{"text": "hello", "label": 1}, {"text": "no label"}]

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    rows = Table("mteb/amazon_counterfactual", "{split}.jsonl", "en", required=("text", "label"))
    with pytest.raises(MissingFieldError, match=r"counterfactual\[train\] row 1: .*'label'"):
        list(rows.rows("train", None))
    assert calls == [("mteb/amazon_counterfactual", "en", "train")]


def test_hub_rows_without_datasets_say_how_to_fix_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)  # Import fails as if not installed.
    with pytest.raises(ImportError, match=r"pip install datasets.*GECKO_DATA_DIR"):
        list(Table("stanfordnlp/snli", "{split}.jsonl").rows("train", None))
