"""Retrieval evaluation: embed queries and documents, search exactly, and score the ranking
with trec_eval's metrics (``search.metrics``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, NamedTuple

from gecko_jax.search.exact import exact_top_k
from gecko_jax.search.metrics import CUTOFF, Qrels, retrieval_metrics, run_from_top_k

if TYPE_CHECKING:
    from gecko_jax.encoder import Encoder


class RetrievalSet(NamedTuple):
    """Queries by id, documents by id as ``(title, text)``, and graded judgements."""

    queries: dict[str, str]
    corpus: dict[str, tuple[str | None, str]]
    qrels: dict[str, dict[str, int]]


def evaluate_retrieval(
    encoder: Encoder,
    queries: Mapping[str, str],
    corpus: Mapping[str, tuple[str | None, str]],
    qrels: Qrels,
    task: str,
    k_values: Sequence[int] = (1, 10, 100),
    symmetric: bool = False,
    batch_size: int = 64,
) -> dict[str, float]:
    """Embed, search the whole corpus exactly, and score the ranking against ``qrels``.

    ``corpus`` maps doc ids to ``(title, text)``. Queries get ``task: {task} | query: ...``;
    documents get ``title: ... | text: ...``, or for a symmetric task (Table 9 ✓) the query
    format too, with the title (if any) joined before the text.
    """
    if not queries or not corpus:
        raise ValueError(f"need queries and documents, got {len(queries)} and {len(corpus)}")
    query_ids, doc_ids = list(queries), list(corpus)
    query_emb = encoder.encode_queries(
        [queries[q] for q in query_ids], task=task, batch_size=batch_size
    )
    documents = [corpus[d] for d in doc_ids]
    if symmetric:
        joined = [f"{title} {text}" if title else text for title, text in documents]
        doc_emb = encoder.encode_queries(joined, task=task, batch_size=batch_size)
    else:
        doc_emb = encoder.encode_documents(
            [text for _, text in documents],
            [title for title, _ in documents],
            batch_size=batch_size,
        )
    indices, scores = exact_top_k(query_emb, doc_emb, max(*k_values, CUTOFF))
    return retrieval_metrics(run_from_top_k(query_ids, doc_ids, indices, scores), qrels, k_values)
