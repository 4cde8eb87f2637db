"""Teacher evaluation (``gecko-rerank-eval``): metrics against pytrec_eval, the paired
comparison, the BEIR reader's errors, and the console script on real data with SmolLM2."""

from __future__ import annotations

import json

import numpy as np
import pytest
import pytrec_eval

from gecko_jax.cli import rerank_eval as teacher_cli
from gecko_jax.data.beir import BeirFormatError, read_beir
from gecko_jax.data.wiki_extracts import load_wiki_extracts
from gecko_jax.fret.teacher import METHODS, paired, per_query, rankings, summarize, verdict


def _random_case(seed: int, queries: int = 30, n: int = 8):
    """Candidate lists, random LLM scores and graded qrels (some relevant docs never retrieved)."""
    rng = np.random.default_rng(seed)
    qids = [f"q{i}" for i in range(queries)]
    candidates = [[f"d{i}_{j}" for j in range(n)] for i in range(queries)]
    scores = [
        {"query_likelihood": rng.normal(size=n), "relevance": rng.normal(size=n)}
        for _ in range(queries)
    ]
    qrels = {}
    for qid, ids in zip(qids, candidates, strict=True):
        picked = rng.choice(n, 2, replace=False)
        qrels[qid] = {ids[picked[0]]: int(rng.integers(1, 3)), f"missing_{qid}": 1}
        if rng.random() < 0.5:
            qrels[qid][ids[picked[1]]] = 0  # judged non-relevant
    return qids, candidates, scores, qrels


@pytest.mark.parametrize("seed", [0, 1])
def test_metrics_match_pytrec_eval(seed):
    qids, candidates, scores, qrels = _random_case(seed)
    ranks = [rankings(s, len(c)) for s, c in zip(scores, candidates, strict=True)]
    ours = per_query(qids, candidates, ranks, qrels)
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut_10", "recip_rank", "P_1"})
    for method in METHODS:
        run = {
            q: {d: float(-r) for d, r in zip(ids, rk[method], strict=True)}
            for q, ids, rk in zip(qids, candidates, ranks, strict=True)
        }
        reference = evaluator.evaluate(run)
        for q in qids:
            assert ours[method][q]["ndcg@10"] == pytest.approx(reference[q]["ndcg_cut_10"])
            # 8 candidates: the run is shorter than 10, so MRR@10 is the reciprocal rank.
            assert ours[method][q]["mrr@10"] == pytest.approx(reference[q]["recip_rank"])
            assert ours[method][q]["p@1"] == pytest.approx(reference[q]["P_1"])


def test_rankings_follow_members():
    scores = {"query_likelihood": np.array([0.0, 2.0, 1.0]), "relevance": np.array([3.0, 1.0, 2.0])}
    ranks = rankings(scores, 3)
    assert ranks["retriever"].tolist() == [1, 2, 3]
    assert ranks["ql"].tolist() == [3, 1, 2]
    assert ranks["rc"].tolist() == [1, 3, 2]
    # RRF(QL, RC): 1/3 + 1, 1 + 1/3, 1/2 + 1/2; the tie of the first two keeps list order.
    assert ranks["rrf"].tolist() == [1, 2, 3]
    # With the retriever's ranks: 1/3 + 1 + 1, 1 + 1/3 + 1/2, 1/2 + 1/2 + 1/3.
    assert ranks["rrf_retriever"].tolist() == [1, 2, 3]
    # QL and the retriever: 1/3 + 1, 1 + 1/2, 1/2 + 1/3.
    assert ranks["ql_retriever"].tolist() == [2, 1, 3]


def test_paired_counts_and_interval():
    base = {f"q{i}": {"p@1": 0.0} for i in range(10)}
    better = {f"q{i}": {"p@1": 1.0 if i < 6 else 0.0} for i in range(10)}
    result = paired(better, base, "p@1")
    assert (result["wins"], result["losses"], result["ties"]) == (6, 0, 4)
    assert result["mean_diff"] == pytest.approx(0.6)
    assert 0 < result["ci95"][0] < 0.6 < result["ci95"][1] <= 1.0
    assert paired(base, base, "p@1")["ci95"] == [0.0, 0.0]


def test_verdict_says_when_the_teacher_is_worse():
    qids = [f"q{i}" for i in range(20)]
    student = {q: {"ndcg@10": 1.0, "mrr@10": 1.0, "p@1": 1.0} for q in qids}
    worse = {q: {"ndcg@10": 0.5, "mrr@10": 0.5, "p@1": 0.0} for q in qids}
    summary = summarize({m: (student if m == "retriever" else worse) for m in METHODS})
    assert "WORSE" in verdict(summary)
    summary = summarize({m: (worse if m == "retriever" else student) for m in METHODS})
    assert verdict(summary).startswith("the teacher (rrf) ranks better")


def _beir_folder(path, articles, queries):
    path.mkdir()
    (path / "qrels").mkdir()
    with open(path / "corpus.jsonl", "w") as handle:
        for a in articles:
            handle.write(json.dumps({"_id": a.id, "title": a.title, "text": a.text[:300]}) + "\n")
    with open(path / "queries.jsonl", "w") as handle:
        for a in queries:
            handle.write(json.dumps({"_id": "q_" + a.id, "text": a.description}) + "\n")
        handle.write(json.dumps({"_id": "unjudged", "text": "no judgement"}) + "\n")
    lines = ["query-id\tcorpus-id\tscore"] + [f"q_{a.id}\t{a.id}\t1" for a in queries]
    (path / "qrels" / "test.tsv").write_text("\n".join(lines) + "\n")
    return path


def test_read_beir_and_its_errors(tmp_path):
    articles = load_wiki_extracts()[:5]
    folder = _beir_folder(tmp_path / "set", articles, articles[:2])
    data = read_beir(folder)
    assert len(data.corpus) == 5 and set(data.queries) == {f"q_{a.id}" for a in articles[:2]}
    assert data.qrels[f"q_{articles[0].id}"] == {articles[0].id: 1}

    with open(folder / "corpus.jsonl", "a") as handle:
        handle.write('{"title": "no id"}\n')
    with pytest.raises(BeirFormatError, match=r"corpus.jsonl:6: missing field\(s\) \['_id'"):
        read_beir(folder)
    (folder / "qrels" / "test.tsv").write_text("q1\td1\n")
    with pytest.raises(BeirFormatError, match=r"test.tsv:1: expected query-id"):
        read_beir(folder)
    with pytest.raises(BeirFormatError, match=r"dev.tsv is missing"):
        read_beir(folder, split="dev")


@pytest.mark.slow
def test_console_script_on_real_data(tmp_path, capsys):
    """SmolLM2 reranks MiniLM's top 3 for 3 queries; a rerun pays for no LLM call."""
    articles = [a for a in load_wiki_extracts()[::1000] if a.description][:6]
    folder = _beir_folder(tmp_path / "set", articles, articles[:3])
    out = tmp_path / "out"
    argv = ["--data", str(folder), "--out", str(out), "--num_candidates", "3"]
    argv += ["--max_chars", "200", "--llm_arg", "max_context=512", "--llm_arg", "batch_size=4"]
    assert teacher_cli.main(argv) == 0
    table = capsys.readouterr().out
    assert "rrf_retriever" in table and "verdict:" in table

    results = json.loads((out / "results.json").read_text())
    for method in METHODS:
        assert set(results[method]) == {"ndcg@10", "mrr@10", "p@1"}
        assert all(0.0 <= v <= 1.0 for v in results[method].values())
    assert set(results["paired"]) == set(METHODS) - {"retriever"}
    assert results["queries"] == 3 and results["failed_scores"] == 0
    rows = [json.loads(line) for line in (out / "per_query.jsonl").read_text().splitlines()]
    assert [len(r["candidates"]) for r in rows] == [3, 3, 3]
    assert np.mean([r["retriever"]["p@1"] for r in rows]) == results["retriever"]["p@1"]

    cache = out / "llm_cache.jsonl"
    calls = len(cache.read_text().splitlines())
    rerun = [*argv, "--out", str(tmp_path / "again"), "--llm_cache", str(cache)]
    assert teacher_cli.main(rerun) == 0
    again = json.loads((tmp_path / "again" / "results.json").read_text())
    assert len(cache.read_text().splitlines()) == calls  # every score came from the cache
    assert again["rrf"] == results["rrf"]


def test_bad_data_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        teacher_cli.main(["--data", str(tmp_path), "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert "expected 'wiki', a BEIR folder" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
