"""The demo's seed passages and their split into training and held-out passages.

Built-in seeds are Wikipedia extracts that appear in no evaluation set, so the after-column
measures transfer and not memorised evaluation articles.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np

from gecko_jax.data.wiki_extracts import load_wiki_extracts
from gecko_jax.fret.passages import (
    Passage,
    check_enough_passages,
    prepare_passages,
    read_passages_jsonl,
)

# Seed passages are cut to this many characters (about 100 MiniLM tokens) before prompting: the
# demo's student reads 96 passage tokens, so a query about text past that would label a positive
# whose answer it never sees, and every extra character is LLM prefill in generation and scoring.
MAX_PASSAGE_CHARS = 450


def wiki_seed_passages(
    count: int, exclude_texts: Collection[str], seed: int, max_chars: int = MAX_PASSAGE_CHARS
) -> list[Passage]:
    """``count`` seeded Wikipedia extracts whose texts are not in ``exclude_texts``."""
    articles = sorted(
        (a for a in load_wiki_extracts() if a.text not in exclude_texts), key=lambda a: a.id
    )
    if count > len(articles):
        raise ValueError(f"asked for {count} seed passages, only {len(articles)} are available")
    chosen = np.random.default_rng(seed).permutation(len(articles))[:count]
    records = [
        {"id": articles[i].id, "title": articles[i].title, "text": articles[i].text}
        for i in sorted(chosen.tolist())
    ]
    return prepare_passages(records, max_chars)[0]


def file_seed_passages(
    path: str, limit: int, max_chars: int = MAX_PASSAGE_CHARS
) -> tuple[list[Passage], dict[str, int]]:
    """The user's JSONL passages (at most ``limit``), with counts of what was skipped."""
    records, malformed = read_passages_jsonl(path)
    passages, counts = prepare_passages(records[:limit], max_chars)
    counts["malformed_lines"] = malformed
    check_enough_passages(passages, counts, path)
    return passages, counts


def split_heldout(
    passages: Sequence[Passage], fraction: float, seed: int
) -> tuple[list[str], list[str]]:
    """(training ids, held-out ids): a seeded ``fraction`` of the passages, at least one each."""
    ids = sorted(p.id for p in passages)
    order = np.random.default_rng([seed, 1]).permutation(len(ids))
    n_heldout = min(max(1, round(fraction * len(ids))), len(ids) - 1)
    heldout = sorted(ids[i] for i in order[:n_heldout])
    heldout_set = set(heldout)
    return [i for i in ids if i not in heldout_set], heldout
