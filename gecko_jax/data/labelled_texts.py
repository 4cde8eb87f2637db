"""Texts with one label each: what classification and clustering sets read into."""

from __future__ import annotations

from typing import NamedTuple


class LabelledTexts(NamedTuple):
    texts: list[str]
    labels: list[str]
