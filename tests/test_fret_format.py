"""``docs/fret_format.md`` lists exactly the fields ``gecko_jax/fret/records.py`` defines."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from gecko_jax.fret.records import (
    FRET,
    GENERATED,
    GENERATED_FIELDS,
    MANIFEST,
    MANIFEST_FIELDS,
    RECORD_FIELDS,
)

DOC = Path(__file__).resolve().parents[1] / "docs" / "fret_format.md"
# The manifest sections whose keys the schema names one by one (others are single fields).
NESTED_SECTIONS = ("passages", "generate", "mine", "llm_cache")


def documented(heading: str) -> list[tuple[str, str]]:
    """(name, type) of each table row in the section under ``## heading``."""
    text = DOC.read_text()
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return [
        (name, kind.replace("\\|", "|"))
        for name, kind in re.findall(r"^\| `([^`]+)` \| ((?:[^|\\]|\\\|)+?) \|", section, re.M)
    ]


def manifest_field_names(manifest: Mapping[str, Any]) -> set[str]:
    """A manifest's fields as the schema names them (dotted within the nested sections)."""
    names = set()
    for key, value in manifest.items():
        if key in NESTED_SECTIONS and isinstance(value, Mapping):
            names.update(f"{key}.{inner}" for inner in value)
        else:
            names.add(key)
    return names


@pytest.mark.parametrize(
    ("heading", "fields"),
    [
        (f"`{GENERATED}` rows", GENERATED_FIELDS),
        (f"`{FRET}` records", RECORD_FIELDS),
        (f"`{MANIFEST}`", MANIFEST_FIELDS),
    ],
)
def test_the_doc_lists_exactly_the_schema_fields(heading, fields):
    assert documented(heading) == [(f.name, f.type) for f in fields]


def test_the_manifest_schema_names_its_nested_sections_only_by_their_fields():
    names = {f.name for f in MANIFEST_FIELDS}
    assert not names & set(NESTED_SECTIONS)
    assert {n.split(".")[0] for n in names if "." in n} == set(NESTED_SECTIONS)
