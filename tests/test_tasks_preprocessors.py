"""The unified format (paper Appendix B) applied inside tf.data, read back as strings."""

from __future__ import annotations

import pytest

from tasks.preprocessors import format_texts, unified_format
from tasks.records import Record, to_dataset


def formatted(records: list[Record], symmetric: bool) -> list[tuple[str, str, str, int]]:
    dataset = unified_format(to_dataset(records, "test"), symmetric=symmetric)
    rows = []
    for batch in dataset.batch(1024).as_numpy_iterator():
        columns = [batch[f"formatted_{k}"] for k in ("query", "positive", "negative")]
        for *texts, flag in zip(*columns, batch["has_negative"], strict=True):
            rows.append((*(t.decode() for t in texts), int(flag)))
    return rows


RECORD = Record(
    task="fact checking",
    query="Bats are blind.",
    positive_title="Bat",
    positive_text="Most bats have functional eyes.",
    negative_title="",
    negative_text="Moles live underground.",
)


def test_asymmetric_targets_get_title_and_text_and_untitled_get_none() -> None:
    assert formatted([RECORD], symmetric=False) == [
        (
            "task: fact checking | query: Bats are blind.",
            "title: Bat | text: Most bats have functional eyes.",
            "title: none | text: Moles live underground.",  # The negative takes the target format.
            1,
        )
    ]


def test_symmetric_targets_take_the_query_format() -> None:
    assert formatted([RECORD], symmetric=True) == [
        (
            "task: fact checking | query: Bats are blind.",
            "task: fact checking | query: Most bats have functional eyes.",
            "task: fact checking | query: Moles live underground.",
            1,
        )
    ]


def test_no_negative_gives_an_empty_negative_and_the_flag_off() -> None:
    record = Record(task="search result", query="eiffel tower", positive_text="A tower.")
    assert formatted([record], symmetric=False) == [
        ("task: search result | query: eiffel tower", "title: none | text: A tower.", "", 0)
    ]


def test_uid_is_appended_to_all_three_texts() -> None:
    record = Record(
        task="classification",
        query="I lost my card",
        positive_text="My card is gone",
        negative_text="What is my balance?",
        uid="00c0ffee",
    )
    assert formatted([record], symmetric=True)[0][:3] == (
        "task: classification | query: I lost my card [id 00c0ffee]",
        "task: classification | query: My card is gone [id 00c0ffee]",
        "task: classification | query: What is my balance? [id 00c0ffee]",
    )


def test_blank_queries_or_positives_are_dropped(caplog: pytest.LogCaptureFixture) -> None:
    records = [RECORD, Record("t", "  ", "text"), Record("t", "query", "")]
    assert len(formatted(records, symmetric=False)) == 1
    assert "test: dropped 2 records with an empty query or positive" in caplog.text


def test_many_records_keep_their_order_across_formatting_batches() -> None:
    records = [Record("search result", f"query {i}", f"passage {i}") for i in range(2500)]
    rows = formatted(records, symmetric=False)
    assert [row[0] for row in rows] == [
        f"task: search result | query: query {i}" for i in range(2500)
    ]
    assert (
        rows[-1][1]
        == format_texts(
            "search result", "query 2499", "", "passage 2499", "", "", "", False, False
        )[1]
    )
