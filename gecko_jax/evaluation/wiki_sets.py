"""Evaluation sets built from the offline Wikipedia extracts, for tasks with no other data.

Both builders sort the articles by id first, so a seed gives the same set whatever order the
articles arrive in.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np

from gecko_jax.data.labelled_texts import LabelledTexts
from gecko_jax.data.wiki_extracts import WikiArticle
from gecko_jax.evaluation.retrieval import RetrievalSet

# The catch-all topic says nothing about an article's content.
UNLABELLED_TOPIC = "Uncategorized"


def wiki_topic_clustering(
    articles: Sequence[WikiArticle], per_topic: int = 100, seed: int = 0
) -> LabelledTexts:
    """Lead extracts labelled by topic: up to ``per_topic`` seeded articles of each topic.

    Equal counts per topic keep v-measure from rewarding a model for the large topics alone.
    """
    by_topic: dict[str, list[WikiArticle]] = defaultdict(list)
    for article in sorted(articles, key=lambda a: a.id):
        if article.topic != UNLABELLED_TOPIC:
            by_topic[article.topic].append(article)
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for topic in sorted(by_topic):
        members = by_topic[topic]
        for i in sorted(rng.permutation(len(members))[:per_topic].tolist()):
            texts.append(members[i].text)
            labels.append(topic)
    return LabelledTexts(texts, labels)


def wiki_description_retrieval(
    articles: Sequence[WikiArticle],
    n_queries: int = 1000,
    corpus_size: int | None = None,
    seed: int = 0,
) -> RetrievalSet:
    """Short description -> its article, over a seeded corpus holding every target article.

    Only descriptions that occur once among all articles become queries ("American actor" has
    hundreds of right answers); the corpus (``None``: all articles) is the query articles plus a
    seeded sample of the rest. Queries and their articles share ids.
    """
    articles = sorted(articles, key=lambda a: a.id)
    counts = Counter(a.description.lower() for a in articles)
    candidates = [
        i for i, a in enumerate(articles) if a.description and counts[a.description.lower()] == 1
    ]
    corpus_size = len(articles) if corpus_size is None else corpus_size
    if not 0 < n_queries <= min(len(candidates), corpus_size):
        raise ValueError(
            f"n_queries must be in 1..{min(len(candidates), corpus_size)} "
            f"({len(candidates)} unique descriptions, corpus_size {corpus_size}), got {n_queries}"
        )
    rng = np.random.default_rng(seed)
    targets = set(rng.choice(candidates, n_queries, replace=False).tolist())
    others = [i for i in range(len(articles)) if i not in targets]
    fill = rng.choice(others, min(corpus_size - n_queries, len(others)), replace=False)
    chosen = sorted(targets | set(fill.tolist()))
    return RetrievalSet(
        queries={articles[i].id: articles[i].description for i in sorted(targets)},
        corpus={articles[i].id: (articles[i].title, articles[i].text) for i in chosen},
        qrels={articles[i].id: {articles[i].id: 1} for i in sorted(targets)},
    )
