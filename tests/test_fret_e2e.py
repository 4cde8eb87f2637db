"""FRet end to end on 4 Wikipedia extracts with the real SmolLM2 (JAX) and MiniLM.

One run through ``run_fret`` with a shared JaxLLM, then a rerun through ``gecko-fret all`` with
both stage outputs deleted: it must answer every LLM call from the cache and write the same file.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from gecko_jax.cli import fret as cli
from gecko_jax.core.assets import smollm2_gguf_path
from gecko_jax.data.wiki_extracts import load_wiki_extracts
from gecko_jax.fret.fusion import reciprocal_rank_fusion
from gecko_jax.fret.generate import GenerateConfig
from gecko_jax.fret.mine import MineConfig
from gecko_jax.fret.pipeline import run_fret
from gecko_jax.fret.records import FRET, GENERATED, MANIFEST
from gecko_jax.llm import JaxLLM

MAX_CHARS, MAX_TOKENS, CANDIDATES = 300, 64, 20


@pytest.fixture(scope="module")
def run(tmp_path_factory, minilm_encoder):
    articles = load_wiki_extracts()[::2500][:4]
    passages = tmp_path_factory.mktemp("data") / "passages.jsonl"
    passages.write_text(
        "".join(json.dumps({"id": a.id, "title": a.title, "text": a.text}) + "\n" for a in articles)
    )
    out = tmp_path_factory.mktemp("fret")
    llm = JaxLLM.from_gguf(smollm2_gguf_path(), max_context=1024, batch_size=8, length_bucket=128)
    manifest = run_fret(
        passages,
        out,
        llm,
        encoder=minilm_encoder,
        max_chars=MAX_CHARS,
        generate_config=GenerateConfig(max_tokens=MAX_TOKENS),
        mine_config=MineConfig(num_candidates=CANDIDATES),
    )
    return passages, out, manifest


def test_fret_records_are_consistent(run):
    _, out, manifest = run
    records = [json.loads(line) for line in (out / FRET).read_text().splitlines()]
    generated = (out / GENERATED).read_text().splitlines()
    assert records and len(records) == len(generated) == manifest["generate"]["rows"]
    n = manifest["mine"]["num_candidates"]
    assert n == 4  # the corpus is smaller than N
    for record in records:
        assert record["task"] and record["query"] and record["seed_id"] in record["candidate_ids"]
        for label in ("positive", "negative"):
            assert set(record[label]) == {"id", "title", "text"} and record[label]["text"]
        ranks, scores = record["ranks"], record["scores"]
        for name in ("query_likelihood", "relevance", "fused"):
            assert sorted(ranks[name]) == list(range(1, n + 1))
        for name in ("query_likelihood", "relevance"):
            order = np.argsort(ranks[name])
            assert np.all(np.diff(np.asarray(scores[name])[order]) <= 0)
        fused = reciprocal_rank_fusion([ranks["query_likelihood"], ranks["relevance"]])
        np.testing.assert_allclose(scores["fused"], fused)
        ids = record["candidate_ids"]
        assert record["positive"]["id"] == ids[int(np.argmax(fused))]
        assert record["positive_rank"] == 1 and record["negative_rank"] == n
        assert record["negative"]["id"] == ids[ranks["fused"].index(n)]


def test_manifest(run):
    _, out, manifest = run
    assert json.loads((out / MANIFEST).read_text()) == manifest
    assert manifest["llm"]["backend"] == "jax" and manifest["prompt_version"]
    assert manifest["passages"]["kept"] == 4 and manifest["passages"]["truncated"] >= 1
    assert manifest["mine"]["config"]["rrf_k"] == 0.0
    assert 0.0 <= manifest["mine"]["positive_not_seed"] <= 1.0
    assert manifest["mine"]["recall_vs_exact"] == 1.0
    assert set(manifest["timings_s"]) == {"generate", "mine"}
    assert "key" not in json.dumps(manifest["llm"]).lower()
    print(json.dumps({k: manifest[k] for k in ("generate", "mine")}, indent=1))


def test_rerun_through_cli_is_all_cache_hits(run):
    passages, out, _ = run
    before = (out / FRET).read_bytes()
    (out / FRET).unlink()
    (out / GENERATED).unlink()
    args = ["all", "--passages", str(passages), "--out", str(out)]
    args += ["--llm", "jax:" + str(smollm2_gguf_path()), "--max_chars", str(MAX_CHARS)]
    args += ["--max_tokens", str(MAX_TOKENS), "--num_candidates", str(CANDIDATES)]
    assert cli.main(args) == 0
    rerun = json.loads((out / MANIFEST).read_text())
    assert rerun["llm_cache"]["misses"] == 0 and rerun["llm_cache"]["hits"] > 0
    assert (out / FRET).read_bytes() == before
