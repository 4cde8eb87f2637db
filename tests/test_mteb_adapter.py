"""The mteb adapter: mteb scores a local retrieval task exactly as our own evaluator does."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import mteb
import numpy as np
import pytest
from datasets import Dataset
from mteb.abstasks.retrieval import AbsTaskRetrieval
from mteb.abstasks.retrieval_dataset_loaders import RetrievalSplitData
from mteb.abstasks.task_metadata import TaskMetadata
from mteb.types import PromptType

from gecko_jax.data.wiki_extracts import load_wiki_extracts
from gecko_jax.evaluation.mteb_adapter import MtebEncoder
from gecko_jax.evaluation.retrieval import RetrievalSet, evaluate_retrieval
from gecko_jax.evaluation.wiki_sets import wiki_description_retrieval
from gecko_jax.text.instructions import RETRIEVAL_TASK, Instruction

N_QUERIES = 100
CORPUS_SIZE = 200


class EmbeddingCache:
    """``Encoder.encode`` remembering each formatted text's embedding.

    The second pass over a set then costs nothing, and a text the adapter formatted differently
    from our evaluator would show up as a miss.
    """

    def __init__(self, encode: Callable[..., np.ndarray]) -> None:
        self._encode = encode
        self._table: dict[str, np.ndarray] = {}
        self.misses = 0

    def __call__(self, texts: list[str], **kwargs: Any) -> np.ndarray:
        missing = [text for text in dict.fromkeys(texts) if text not in self._table]
        self.misses += len(missing)
        if missing:
            self._table.update(zip(missing, self._encode(missing, **kwargs), strict=True))
        return np.stack([self._table[text] for text in texts])


class WikiDescriptionRetrieval(AbsTaskRetrieval):
    """Short Wikipedia description -> its article, from the offline extracts, held in memory."""

    metadata = TaskMetadata(
        name="GeckoWikiDescriptionRetrieval",
        description="Find the Wikipedia article that a one-line description describes.",
        reference=None,
        dataset={"path": "local/wiki-descriptions", "revision": "local"},
        type="Retrieval",
        category="t2t",
        modalities=["text"],
        eval_splits=["test"],
        eval_langs=["eng-Latn"],
        main_score="ndcg_at_10",
        date=None,
        domains=["Encyclopaedic", "Written"],
        task_subtypes=[],
        license="cc-by-sa-4.0",
        annotations_creators="derived",
        dialect=[],
        sample_creation="found",
        bibtex_citation="",
    )

    def __init__(self, data: RetrievalSet, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data = data

    def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
        queries = [{"id": qid, "text": text} for qid, text in self.data.queries.items()]
        corpus = [
            {"id": doc_id, "title": title, "text": text}
            for doc_id, (title, text) in self.data.corpus.items()
        ]
        split = RetrievalSplitData(
            queries=Dataset.from_list(queries),
            corpus=Dataset.from_list(corpus),
            relevant_docs=self.data.qrels,
            top_ranked=None,
        )
        self.dataset = {"default": {"test": split}}
        self.data_loaded = True


@pytest.fixture(scope="module")
def wiki_set() -> RetrievalSet:
    return wiki_description_retrieval(load_wiki_extracts(), N_QUERIES, CORPUS_SIZE, seed=0)


def test_mteb_scores_equal_our_evaluator(minilm_encoder, wiki_set, monkeypatch):
    cache = EmbeddingCache(minilm_encoder.encode)
    monkeypatch.setattr(minilm_encoder, "encode", cache)
    ours = evaluate_retrieval(minilm_encoder, *wiki_set, task=RETRIEVAL_TASK, k_values=(10,))
    assert cache.misses == N_QUERIES + CORPUS_SIZE
    cache.misses = 0
    result = mteb.evaluate(
        MtebEncoder(minilm_encoder),
        WikiDescriptionRetrieval(wiki_set),
        cache=None,
        show_progress_bar=False,
    )
    (scores,) = result.task_results[0].scores["test"]
    print(f"nDCG@10 ours {ours['ndcg@10']:.6f} mteb {scores['ndcg_at_10']:.6f}")
    assert cache.misses == 0, "mteb's texts, once formatted, should be exactly our evaluator's"
    assert 0.5 < ours["ndcg@10"] < 1.0
    assert scores["ndcg_at_10"] == pytest.approx(ours["ndcg@10"], abs=1e-4)
    assert scores["recall_at_10"] == pytest.approx(ours["recall@10"], abs=1e-4)


@pytest.mark.parametrize(
    ("task_name", "prompt_type", "expected_task"),
    [
        ("STSBenchmark", None, "semantic similarity"),
        ("SprintDuplicateQuestions", None, "semantic similarity"),
        ("Banking77Classification", None, "classification"),
        ("TwentyNewsgroupsClustering.v2", None, "search result"),
        ("NQ", PromptType.query, "search result"),
    ],
)
def test_task_types_get_their_table9_query_format(
    minilm_encoder, task_name, prompt_type, expected_task
):
    texts = ["A man is playing a guitar.", "How do I reset my card PIN?"]
    metadata = mteb.get_task(task_name).metadata
    embeddings = MtebEncoder(minilm_encoder).encode(
        [{"text": texts}],
        task_metadata=metadata,
        hf_split="test",
        hf_subset="default",
        prompt_type=prompt_type,
    )
    expected = minilm_encoder.encode_queries(texts, task=expected_task)
    np.testing.assert_allclose(embeddings, expected, atol=1e-6)


def test_documents_get_titles_and_overrides_win(minilm_encoder):
    metadata = mteb.get_task("NQ").metadata
    adapter = MtebEncoder(
        minilm_encoder, instructions={"NQ": Instruction("question answering", False)}
    )
    batch = {"text": ["Paris France is ...", "No title."], "body": ["France is ...", "No title."]}
    documents = adapter.encode(
        [{**batch, "title": ["Paris", ""]}],
        task_metadata=metadata,
        hf_split="test",
        hf_subset="default",
        prompt_type=PromptType.document,
    )
    expected = minilm_encoder.encode_documents(batch["body"], ["Paris", None])
    np.testing.assert_allclose(documents, expected, atol=1e-6)
    queries = adapter.encode(
        [{"text": ["who wrote hamlet"]}],
        task_metadata=metadata,
        hf_split="test",
        hf_subset="default",
        prompt_type=PromptType.query,
    )
    expected = minilm_encoder.encode_queries(["who wrote hamlet"], task="question answering")
    np.testing.assert_allclose(queries, expected, atol=1e-6)
