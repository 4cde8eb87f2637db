"""Decontamination: evaluation texts leave the training data, counted per task."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from tasks.decontamination import decontaminate


def test_matches_after_lowercasing_and_folding_whitespace(caplog: pytest.LogCaptureFixture) -> None:
    examples = {
        "nq": {
            "query": ["who wrote hamlet", "capital of france", "boiling point of water"],
            "positive_text": ["Shakespeare wrote it.", "Paris.", "100 degrees Celsius."],
            "has_negative": np.array([1, 0, 1]),
        },
        "fret": {"query": ["an unrelated query"], "positive_text": ["An unrelated passage."]},
    }
    eval_texts = ["Who  wrote\tHAMLET", "paris."]  # An eval query, and a corpus passage.
    with caplog.at_level(logging.INFO, logger="tasks.decontamination"):
        filtered, dropped = decontaminate(examples, eval_texts)
    assert dropped == {"nq": 2, "fret": 0}
    assert list(filtered["nq"]["query"]) == ["boiling point of water"]
    assert list(filtered["nq"]["has_negative"]) == [1]  # Every column is filtered alike.
    assert list(filtered["fret"]["query"]) == ["an unrelated query"]
    assert "nq dropped 2 of 3 examples" in caplog.text
    assert "fret dropped 0 of 1 examples" in caplog.text


def test_near_matches_are_kept() -> None:
    examples = {"nq": {"query": ["who wrote hamlet?"], "positive_text": ["Shakespeare"]}}
    _, dropped = decontaminate(examples, ["who wrote hamlet"])
    assert dropped == {"nq": 0}
