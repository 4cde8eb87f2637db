"""The FRet task: formatting, malformed lines, thresholds, missing fields and files."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest
import seqio

import tasks
from gecko_jax.core.assets import minilm_path
from tasks.input_pipeline import materialise
from tasks.sources import MalformedDataError, MissingFieldError

MINILM = minilm_path()

FRET = Path(__file__).resolve().parent / "fixtures" / "tasks" / "fret" / "run1" / "fret.jsonl"


def read(task_name: str) -> list[dict]:
    columns = materialise(seqio.get_mixture_or_task(task_name), "train")
    return [dict(zip(columns, row, strict=True)) for row in zip(*columns.values(), strict=True)]


def with_lines(tmp_path: Path, extra: dict[int, str]) -> Path:
    """The fixture with ``extra`` lines inserted before the given 1-based line numbers."""
    lines = FRET.read_text().splitlines()
    for number in sorted(extra):
        lines.insert(number - 1, extra[number])
    path = tmp_path / "run2" / "fret.jsonl"
    path.parent.mkdir()
    path.write_text("\n".join(lines) + "\n")
    return path


def test_fret_task_formats_query_positive_and_negative() -> None:
    examples = read(tasks.register_fret("test_fret", str(FRET)))
    assert len(examples) == 24
    first = examples[0]
    assert first["formatted_query"] == (
        "task: question answering | query: when was the eiffel tower built"
    )
    assert first["formatted_positive"] == (
        "title: Eiffel Tower | text: The Eiffel Tower was constructed from 1887 to 1889 as the "
        "centerpiece of the 1889 World's Fair in Paris."
    )
    assert first["formatted_negative"] == (
        "title: Season | text: Seasons result from the tilt of Earth's rotational axis relative "
        "to its orbital plane."
    )
    assert examples[3]["has_negative"] == 0 and examples[3]["formatted_negative"] == ""
    # Untitled sentence-similarity passages get the documented placeholder title.
    assert examples[-1]["formatted_positive"] == (
        "title: none | text: Share prices dropped steeply during today's trading session."
    )


def test_glob_reads_every_matching_file(tmp_path: Path) -> None:
    for run in ("a", "b"):
        (tmp_path / run).mkdir()
        shutil.copy(FRET, tmp_path / run / "fret.jsonl")
    assert (
        len(read(tasks.register_fret("test_fret_glob", str(tmp_path / "*" / "fret.jsonl")))) == 48
    )


def test_malformed_lines_are_skipped_and_reported_with_file_and_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = with_lines(tmp_path, {3: '{"task": "question answering", "query": "trunc', 10: "[1, 2]"})
    name = tasks.register_fret("test_fret_malformed", str(path), max_malformed_fraction=0.1)
    assert len(read(name)) == 24
    assert f"{path}:3: skipped malformed line (invalid JSON" in caplog.text
    assert f"{path}:10: skipped malformed line (expected a JSON object, got list)" in caplog.text
    assert "skipped 2 malformed of 26 lines" in caplog.text


def test_too_many_malformed_lines_fail_the_task(tmp_path: Path) -> None:
    path = with_lines(tmp_path, {5: "not json"})  # 1 of 25 lines: above the default 1%.
    name = tasks.register_fret("test_fret_strict", str(path))
    with pytest.raises(MalformedDataError, match=r"skipped 1 malformed of 25 lines .*:5"):
        read(name)


def test_a_missing_required_field_names_the_field(tmp_path: Path) -> None:
    path = with_lines(tmp_path, {2: '{"task": "search result", "positive": {"text": "x"}}'})
    with pytest.raises(MissingFieldError, match=rf"{path}:2: missing required field 'query'"):
        read(tasks.register_fret("test_fret_no_query", str(path)))
    path.write_text('{"task": "search result", "query": "q", "positive": {"title": "t"}}\n')
    with pytest.raises(MissingFieldError, match=r"missing required field 'positive\.text'"):
        read(tasks.register_fret("test_fret_no_text", str(path)))


def test_missing_files_fail_when_used_not_when_registered(tmp_path: Path) -> None:
    pattern = str(tmp_path / "nowhere" / "*.jsonl")
    name = tasks.register_fret("test_fret_missing", pattern)  # No error yet.
    with pytest.raises(FileNotFoundError, match=r"no files match .*nowhere.*GECKO_FRET_FILES"):
        tasks.MixtureBatcher(name, seed=0, global_batch_size=4, tokenizer=MINILM)


TASK_TYPES = ("question answering", "search result", "fact checking", "sentence similarity")


@pytest.mark.parametrize(("uniform", "expected"), [(False, [120, 60, 40, 20]), (True, [60] * 4)])
def test_uniform_task_sampling_balances_task_types(uniform: bool, expected: list[int]) -> None:
    """240 draws: 10 epochs of the 24 examples (12/6/4/2 per type), or 60 of each type."""
    name = tasks.register_fret(
        f"test_fret_uniform_{uniform}", str(FRET), uniform_task_sampling=uniform
    )
    batcher = tasks.MixtureBatcher(name, seed=3, global_batch_size=8, tokenizer=MINILM)
    drawn = Counter(example["task"] for step in range(30) for example in batcher.examples(step))
    assert [drawn[task_type] for task_type in TASK_TYPES] == expected
