"""FRet on Beam (DirectRunner) against ``run_fret`` on the same passages: same rows and records.

Two setups. The real SmolLM2 (JAX, greedy) and MiniLM on four Wikipedia extracts with two
retrieval shards, each model loaded once for all its steps. And a local OpenAI-compatible server
whose greedy answers are all malformed, so every query goes through the retry, run with the
``gecko-fret-beam`` CLI over three shards and the models shared across processes (called through
Beam's proxy). Plus: duplicate ids fail before any model loads; the shard merge is exact search;
the label guards (round trip, relabel, false negative) act alike and count alike in both runners.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
from fake_openai import FakeOpenAI, PromptScoredOpenAI, serve
from test_fret_format import manifest_field_names
from test_tasks_fret import read as read_task

import tasks
from gecko_jax.cli.fret_beam import beam_config, build_parser, main
from gecko_jax.core.assets import smollm2_gguf_path
from gecko_jax.data.wiki_extracts import load_wiki_extracts
from gecko_jax.fret.beam import handlers as beam_handlers
from gecko_jax.fret.beam.handlers import LLMGenerateHandler
from gecko_jax.fret.beam.pipeline import GUARDS, BeamFretConfig, _mine_section, run
from gecko_jax.fret.generate import GenerateConfig
from gecko_jax.fret.mine import MineConfig
from gecko_jax.fret.pipeline import run_fret
from gecko_jax.fret.records import FRET, GENERATED, LLM_CACHE, LLM_CACHE_PARTS, MANIFEST_FIELDS
from gecko_jax.search.candidates import merge_top_k
from gecko_jax.search.exact import exact_top_k
from tasks.defaults import FRET_TASK

SPEC = "jax:" + str(smollm2_gguf_path())
LLM_KWARGS = {"max_context": 1024, "batch_size": 8, "length_bucket": 128}
MAX_CHARS, MAX_TOKENS = 300, 64


def write_passages(path: Path, articles, extra_lines: tuple[str, ...] = ()) -> Path:
    lines = [json.dumps({"id": a.id, "title": a.title, "text": a.text}) for a in articles]
    path.write_text("\n".join([*lines, *extra_lines]) + "\n")
    return path


def count_loads(patch: pytest.MonkeyPatch) -> list[str]:
    """The handler classes whose model loads from now on, one entry per load."""
    # Models that an earlier pipeline in this process loaded stay shared until garbage
    # collection frees them; a fresh table makes this run load its own, whenever gc runs.
    patch.setattr(beam_handlers, "_HANDLES", {})
    loads: list[str] = []
    for handler in (beam_handlers._LLMHandler, beam_handlers.EncoderHandler):

        def counted(self, load=handler._load):
            loads.append(type(self).__name__)
            return load(self)

        patch.setattr(handler, "_load", counted)
    return loads


def read_records(path: Path) -> dict[str, dict]:
    return {r["seed_id"]: r for r in map(json.loads, path.read_text().splitlines())}


def assert_same_output(beam_dir: Path, fret_dir: Path, beam: dict, fret: dict) -> None:
    """Rows and records equal (LLM scores to float noise), manifests equal where they overlap."""
    rows = [(beam_dir / GENERATED).read_text(), (fret_dir / GENERATED).read_text()]
    assert sorted(rows[0].splitlines()) == sorted(rows[1].splitlines())
    expected, got = read_records(fret_dir / FRET), read_records(beam_dir / FRET)
    assert expected and got.keys() == expected.keys()
    for key, record in expected.items():
        record, other = dict(record), dict(got[key])
        scores, other_scores = record.pop("scores"), other.pop("scores")
        assert other == record
        for name, values in scores.items():
            np.testing.assert_allclose(other_scores[name], values, rtol=1e-5)

    assert beam["passages"] == fret["passages"]
    schema = {f.name for f in MANIFEST_FIELDS}
    assert manifest_field_names(beam) <= schema and manifest_field_names(fret) <= schema
    generate, fret_generate = dict(beam["generate"]), dict(fret["generate"])
    overlap = generate.pop("mean_word_overlap")
    assert overlap == pytest.approx(fret_generate.pop("mean_word_overlap"))
    assert generate == fret_generate
    histograms = beam["mine"]["histograms"]
    for name, histogram in fret["mine"]["histograms"].items():
        assert histograms[name]["counts"] == histogram["counts"]
        np.testing.assert_allclose(histograms[name]["edges"], histogram["edges"], rtol=1e-5)
    assert {k: beam["mine"][k] for k in fret["mine"] if k != "histograms"} == {
        k: v for k, v in fret["mine"].items() if k != "histograms"
    }


@pytest.fixture(scope="module")
def smollm2_runs(tmp_path_factory, minilm_dir, minilm_encoder):
    """``run_fret`` and the Beam pipeline on the same passages, counting model loads."""
    articles = load_wiki_extracts()[::2500][:4]
    data = tmp_path_factory.mktemp("data")
    empty = json.dumps({"id": "empty", "title": "Nothing", "text": "  "})
    passages = write_passages(data / "passages.jsonl", articles, ("[1, 2]", empty))
    with pytest.MonkeyPatch.context() as patch:
        loads = count_loads(patch)
        # The instance the Beam handlers get too (one per process): loaded once, run apart.
        llm = LLMGenerateHandler(SPEC, LLM_KWARGS).load_model()
        generate_config = GenerateConfig(max_tokens=MAX_TOKENS)
        mine_config = MineConfig(num_candidates=2)
        fret_dir = tmp_path_factory.mktemp("fret")
        fret = run_fret(
            passages,
            fret_dir,
            llm,
            encoder=minilm_encoder,
            max_chars=MAX_CHARS,
            generate_config=generate_config,
            mine_config=mine_config,
        )
        beam_dir = tmp_path_factory.mktemp("beam")
        config = BeamFretConfig(
            passages=str(passages),
            out_dir=str(beam_dir),
            llm=SPEC,
            encoder=str(minilm_dir),
            llm_kwargs=LLM_KWARGS,
            max_chars=MAX_CHARS,
            generate=generate_config,
            mine=mine_config,
            retrieval_shards=2,
        )
        beam = run(config, ["--runner", "DirectRunner"])
    return beam_dir, fret_dir, beam, fret, loads


@pytest.mark.slow
def test_smollm2_beam_equals_run_fret(smollm2_runs):
    beam_dir, fret_dir, beam, fret, _ = smollm2_runs
    assert_same_output(beam_dir, fret_dir, beam, fret)
    assert beam["passages"]["malformed_lines"] == 1 and beam["passages"]["empty"] == 1
    assert beam["generate"]["rows"] == 4 and beam["mine"]["num_candidates"] == 2
    assert [s["size"] for s in beam["mine"]["shards"]] == [2, 2]
    assert beam["llm"] == fret["llm"] and beam["beam"]["runner"] == "DirectRunner"
    print(json.dumps({k: beam[k] for k in ("generate", "timings_s")}))


@pytest.mark.slow
def test_each_model_loads_once(smollm2_runs):
    """Four LLM steps (generate, retry, QL, RC) and two encoder steps, one load per model."""
    assert sorted(smollm2_runs[4]) == ["EncoderHandler", "LLMGenerateHandler"]


@pytest.fixture
def openai_spec():
    yield from serve(FakeOpenAI)


@pytest.fixture
def prompt_scored_spec():
    yield from serve(PromptScoredOpenAI)


def test_cli_with_retries_equals_run_fret(
    tmp_path, openai_spec, minilm_dir, minilm_encoder, monkeypatch
):
    spec, _ = openai_spec
    passages = write_passages(tmp_path / "passages.jsonl", load_wiki_extracts()[::1000][:7])
    fret = run_fret(
        passages,
        tmp_path / "fret",
        spec,
        encoder=minilm_encoder,
        max_passages=6,
        max_chars=MAX_CHARS,
        generate_config=GenerateConfig(max_overlap=0.5),
        mine_config=MineConfig(num_candidates=3),
    )
    args = ["--passages", str(passages), "--out", str(tmp_path / "beam"), "--llm", spec]
    args += ["--encoder", str(minilm_dir), "--max_passages", "6", "--max_chars", str(MAX_CHARS)]
    args += ["--max_overlap", "0.5", "--llm_arg", "max_concurrency=2"]
    args += ["--num_candidates", "3", "--retrieval_shards", "3", "--share_models"]
    # Address files that an earlier run on this machine left behind would make Beam reconnect
    # to a dead model server and load the model elsewhere, out of the count.
    for stale in Path(tempfile.gettempdir()).glob("gecko-*"):
        if stale.suffix in (".address", ".lock"):
            stale.unlink()
    loads = count_loads(monkeypatch)
    assert main([*args, "--runner", "DirectRunner"]) == 0
    assert sorted(loads) == ["EncoderHandler", "LLMGenerateHandler"]
    beam = json.loads((tmp_path / "beam" / "manifest.json").read_text())
    assert_same_output(tmp_path / "beam", tmp_path / "fret", beam, fret)
    generate = beam["generate"]
    assert generate["retried"] == 6 and generate["malformed"] == 0
    assert generate["dropped_overlap"] + generate["dropped_duplicate"] > 0
    assert len(beam["mine"]["shards"]) == 3 and beam["llm"]["backend"] == "openai"
    assert beam["llm_kwargs"] == {"max_concurrency": 2} and fret["llm_kwargs"] == {}


def test_cli_reads_llm_args_as_gecko_fret_does():
    args = ["--passages", "p.jsonl", "--out", "out", "--llm_arg", "max_context=1024"]
    args += ["--llm_arg", "batch_size=8", "--runner", "DirectRunner"]
    parsed, pipeline_args = build_parser().parse_known_args(args)
    assert dict(parsed.llm_arg) == {"max_context": 1024, "batch_size": 8}
    assert pipeline_args == ["--runner", "DirectRunner"]


def test_cli_refuses_an_unknown_llm_setting_before_the_pipeline(tmp_path, capsys):
    args = ["--passages", str(tmp_path / "p.jsonl"), "--out", str(tmp_path / "out")]
    args += ["--llm", "openai:m", "--llm_arg", "timeuot=2"]
    with pytest.raises(SystemExit) as stop:
        main(args)
    assert stop.value.code == 2
    assert re.search(r"error: unknown setting\(s\) \['timeuot'\]", capsys.readouterr().err)
    assert not (tmp_path / "out").exists()


def two_shard_config(
    passages: Path, out: Path, spec: str, encoder: Path, mine_config: MineConfig
) -> BeamFretConfig:
    """The Beam run compared with ``run_fret``: two retrieval shards, the test passage cut."""
    return BeamFretConfig(
        passages=str(passages),
        out_dir=str(out),
        llm=spec,
        encoder=str(encoder),
        max_chars=MAX_CHARS,
        mine=mine_config,
        retrieval_shards=2,
    )


def test_joint_scoring_equals_run_fret(
    tmp_path, openai_spec, minilm_dir, minilm_encoder, monkeypatch
):
    """``scoring="joint"``: one score-parts step gives both scores, as in ``mine``."""
    spec, _ = openai_spec
    passages = write_passages(tmp_path / "passages.jsonl", load_wiki_extracts()[::1000][:4])
    mine_config = MineConfig(num_candidates=3, scoring="joint")
    fret = run_fret(
        passages,
        tmp_path / "fret",
        spec,
        encoder=minilm_encoder,
        max_chars=MAX_CHARS,
        mine_config=mine_config,
    )
    rows: dict[str, int] = {"LLMScoreHandler": 0, "LLMScorePartsHandler": 0}
    for handler in (beam_handlers.LLMScoreHandler, beam_handlers.LLMScorePartsHandler):

        def counted(self, batch, *args, infer=handler.run_inference, **kwargs):
            rows[type(self).__name__] += len(batch)
            return infer(self, batch, *args, **kwargs)

        monkeypatch.setattr(handler, "run_inference", counted)
    config = two_shard_config(passages, tmp_path / "beam", spec, minilm_dir, mine_config)
    beam = run(config, ["--runner", "DirectRunner"])
    assert_same_output(tmp_path / "beam", tmp_path / "fret", beam, fret)
    assert beam["mine"]["config"]["scoring"] == "joint"
    assert rows == {"LLMScoreHandler": 0, "LLMScorePartsHandler": 3 * beam["mine"]["rows"]}


def test_guards_equal_run_fret(
    tmp_path, prompt_scored_spec, minilm_dir, minilm_encoder, monkeypatch
):
    """Every guard on: the same queries dropped before scoring, the same labels, the same counts."""
    spec, _ = prompt_scored_spec
    passages = write_passages(tmp_path / "passages.jsonl", load_wiki_extracts()[::150][:12])
    # The 2nd of 3 as negative, so the false-negative guard can replace it as well as drop it.
    mine_config = MineConfig(
        num_candidates=3,
        negative="kth",
        k_th=2,
        scoring="joint",
        round_trip_k=2,
        relabel_guard="unanimous",
        false_negative_margin=0.0,
    )
    fret = run_fret(
        passages,
        tmp_path / "fret",
        spec,
        encoder=minilm_encoder,
        max_chars=MAX_CHARS,
        mine_config=mine_config,
    )
    config = two_shard_config(passages, tmp_path / "beam", spec, minilm_dir, mine_config)
    scored: list[int] = []
    infer = beam_handlers.LLMScorePartsHandler.run_inference

    def counted(self, batch, *args, **kwargs):
        scored.append(len(batch))
        return infer(self, batch, *args, **kwargs)

    monkeypatch.setattr(beam_handlers.LLMScorePartsHandler, "run_inference", counted)
    beam = run(config, ["--runner", "DirectRunner"])
    assert_same_output(tmp_path / "beam", tmp_path / "fret", beam, fret)
    assert sum(scored) == 3 * beam["mine"]["rows"]  # the dropped queries were never scored
    guards = beam["mine"]["guards"]
    assert guards == fret["mine"]["guards"] and set(guards) == set(GUARDS)
    assert all(guards.values()), guards  # each guard acted on these passages
    assert beam["mine"]["rows"] + guards["round_trip_dropped"] == beam["generate"]["rows"]


def test_cli_reads_guard_flags_and_refuses_a_bad_one(capsys):
    args = ["--passages", "p.jsonl", "--out", "out", "--llm", "openai:m", "--num_candidates", "3"]
    guards = ["--fusion", "relevance,retriever", "--round_trip_k", "2"]
    guards += ["--relabel_guard", "margin", "--relabel_margin", "0.5"]
    guards += ["--false_negative_margin", "1"]
    parser = build_parser()
    config = beam_config(parser, parser.parse_args(args + guards)).mine
    assert config == MineConfig(
        num_candidates=3,
        fusion=("relevance", "retriever"),
        round_trip_k=2,
        relabel_guard="margin",
        relabel_margin=0.5,
        false_negative_margin=1.0,
    )
    assert beam_config(parser, parser.parse_args(args)).mine == MineConfig(num_candidates=3)
    with pytest.raises(SystemExit) as stop:
        beam_config(parser, parser.parse_args([*args, "--round_trip_k", "3"]))
    assert stop.value.code == 2 and "round_trip_k must be in [0, num_candidates=3)" in (
        capsys.readouterr().err
    )


def test_mine_section_when_the_round_trip_drops_every_query():
    """Queries but no records: ``mine``'s full section with zero rows, not the no-query stub."""
    config = BeamFretConfig("p.jsonl", "out", "openai:m", "encoder", mine=MineConfig(3))
    shards = [{"shard": 0, "size": 4, "backend": "exact", "recall": {"found": 6, "sampled": 6}}]
    stats = {"shards": shards, "histograms": dict.fromkeys(("query_likelihood", "relevance"))}
    section = _mine_section(config, {"mine/round_trip_dropped": 2}, stats, kept=4)
    assert section["rows"] == 0 and section["positive_not_seed"] == 0.0
    assert section["guards"] == {**dict.fromkeys(GUARDS, 0), "round_trip_dropped": 2}
    assert section["num_candidates"] == 3 and section["shards"] == shards
    assert _mine_section(config, {}, {"shards": shards}, kept=4) == {"rows": 0, "shards": shards}


def test_duplicate_ids_fail_before_any_model_loads(tmp_path, openai_spec, minilm_dir, monkeypatch):
    spec, server = openai_spec
    loads = count_loads(monkeypatch)
    article = load_wiki_extracts()[0]
    passages = write_passages(tmp_path / "passages.jsonl", [article, article])
    config = BeamFretConfig(str(passages), str(tmp_path / "out"), spec, str(minilm_dir))
    with pytest.raises(Exception, match="duplicate passage id"):
        run(config)
    assert server.requests == 0 and loads == []


def test_merged_shards_equal_exact_search():
    rng = np.random.default_rng(0)
    corpus = rng.normal(size=(50, 8)).astype(np.float32)
    corpus /= np.linalg.norm(corpus, axis=1, keepdims=True)
    queries = corpus[:5] + 0.3 * rng.normal(size=(5, 8)).astype(np.float32)
    shards = [np.arange(s, 50, 3) for s in range(3)]
    parts = []
    for ids in shards:
        found, scores = exact_top_k(queries, corpus[ids], 7)
        parts.append((ids[found], scores))
    expected, expected_scores = exact_top_k(queries, corpus, 7)
    for q in range(len(queries)):
        ids, scores = merge_top_k([(i[q], s[q]) for i, s in parts], 7)
        np.testing.assert_array_equal(ids, expected[q])
        np.testing.assert_allclose(scores, expected_scores[q], rtol=1e-6)


def test_a_rerun_asks_the_llm_nothing_and_the_fret_task_reads_the_shards(
    tmp_path, openai_spec, minilm_dir, monkeypatch
):
    """The LLM cache in ``--out``: a rerun into the folder, its outputs gone and no model left
    in memory, answers every call from the cache. The sharded records are what the default
    FRet task reads."""
    spec, server = openai_spec
    passages = write_passages(tmp_path / "passages.jsonl", load_wiki_extracts()[::1000][:4])
    home = tmp_path / "home"
    out = home / "gecko_data" / "fret" / "beam"
    config = BeamFretConfig(
        str(passages),
        str(out),
        spec,
        str(minilm_dir),
        max_chars=MAX_CHARS,
        mine=MineConfig(num_candidates=3),
        output_shards=2,
    )
    first = run(config, ["--runner", "DirectRunner"])
    asked = server.requests
    shards = sorted(out.glob("fret-*-of-00002.jsonl"))
    records = sorted(line for path in shards for line in path.read_text().splitlines())
    assert asked > 0 and len(shards) == 2 and len(records) == first["mine"]["rows"] > 0
    assert first["llm_cache"]["file"] == LLM_CACHE and first["llm_cache"]["added"] > 0
    assert not (out / LLM_CACHE_PARTS).exists()

    for path in out.iterdir():
        if path.name != LLM_CACHE:
            path.unlink()
    monkeypatch.setattr(beam_handlers, "_HANDLES", {})
    second = run(config, ["--runner", "DirectRunner"])
    assert server.requests == asked and second["llm_cache"]["added"] == 0
    assert sorted(line for path in shards for line in path.read_text().splitlines()) == records

    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("GECKO_FRET_FILES", raising=False)
    tasks.register_defaults()
    examples = read_task(FRET_TASK)
    assert sorted(e["query"] for e in examples) == sorted(json.loads(r)["query"] for r in records)
