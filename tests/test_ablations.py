"""The ablation runner: relabelling on known scores, text formats, and a miniature end to end."""

import dataclasses
import json
from pathlib import Path

import gin
import numpy as np
import pytest
from conftest import TINY_DEMO_EVAL_LIMIT

from gecko_jax import Encoder
from gecko_jax.cli.ablate import load_plan, main
from gecko_jax.core.stages import EXIT_STAGE_CHANGED
from gecko_jax.evaluation.suite import evaluate_task, load_task
from gecko_jax.fret.passages import Passage
from gecko_jax.fret.records import read_jsonl
from gecko_jax.models.config import DualEncoderConfig
from gecko_jax.recipes.ablations import AblationCell, AblationPlan, Labels, relabel
from gecko_jax.recipes.ablations.labels import changed_share, choose
from gecko_jax.recipes.ablations.report import format_table, summarize
from gecko_jax.recipes.ablations.runner import TruncatedEncoder
from gecko_jax.recipes.finetune import FinetuneConfig
from gecko_jax.text.formats import format_document, format_query
from tasks.preprocessors import format_texts

REPO = Path(__file__).resolve().parents[1]
PASSAGES = {i: Passage(i, f"title {i}", f"text {i}") for i in "abcd"}
# Query likelihood ranks c, a, b, d; relevance ranks a, b, d, c; their RRF (k = 0) is
# a = 1/2 + 1, b = 1/3 + 1/2, c = 1 + 1/4, d = 1/4 + 1/3: a, c, b, d. So the three rerankers
# label (c, d), (a, c) and (a, d). The seed passage is b.
RECORD = {
    "task": "search result",
    "query": "q",
    "seed_id": "b",
    "candidate_ids": ["a", "b", "c", "d"],
    "scores": {"query_likelihood": [-2.0, -3.0, -1.0, -4.0], "relevance": [-1.0, -2.0, -4.0, -3.0]},
}


def _labels(positive="llm", negative="nth", reranker=("query_likelihood", "relevance"), seed=0):
    (out,) = relabel([RECORD], PASSAGES, Labels(positive, negative, reranker), seed, 0.0)
    return out["positive"]["id"], out["negative"] and out["negative"]["id"]


@pytest.mark.parametrize(
    "positive, negative, reranker, expected",
    [
        ("llm", "nth", ("query_likelihood", "relevance"), ("a", "d")),  # p_1, p_N of the RRF
        ("llm", "nth", ("query_likelihood",), ("c", "d")),
        ("llm", "nth", ("relevance",), ("a", "c")),
        ("seed", "nth", ("query_likelihood", "relevance"), ("b", "d")),
        ("seed", "nth", ("relevance",), ("b", "c")),
        ("seed", "none", ("query_likelihood", "relevance"), ("b", None)),
        ("llm", "none", ("query_likelihood",), ("c", None)),
    ],
)
def test_relabel_picks_known_labels(positive, negative, reranker, expected):
    assert _labels(positive, negative, reranker) == expected


@pytest.mark.parametrize(
    "seed_id, guard, expected",
    [
        ("b", "unanimous", ("a", "d")),  # QL and the retriever both rank a above the seed b
        ("c", "unanimous", ("c", "d")),  # QL ranks the seed c first: the move is blocked
        ("c", "none", ("a", "d")),
    ],
)
def test_relabel_applies_the_mining_guard(seed_id, guard, expected):
    """RRF(QL, retriever): a = 1/2 + 1, c = 1 + 1/3, b = 1/3 + 1/2, d = 1/4 + 1/4."""
    labels = Labels("llm", "nth", ("query_likelihood", "retriever"), guard)
    (out,) = relabel([{**RECORD, "seed_id": seed_id}], PASSAGES, labels, 0, 0.0)
    assert (out["positive"]["id"], out["negative"]["id"]) == expected


def test_relabel_fuses_with_the_mining_configs_rrf_k():
    """RRF over the members' ranks (QL: a 2, b 3, c 1, d 4; RC: 1, 2, 4, 3) with the k given."""
    for k in (0.0, 60.0):
        expected = [1 / (k + q) + 1 / (k + r) for q, r in [(2, 1), (3, 2), (1, 4), (4, 3)]]
        rng = np.random.default_rng(0)
        np.testing.assert_allclose(choose(RECORD, Labels(), k, rng).fused, expected)


def test_relabel_applies_the_false_negative_guard():
    # p_N is d, 2 below the positive a under both scorers; b and c are closer still.
    def negative(margin):
        (out,) = relabel([RECORD], PASSAGES, Labels(false_negative_margin=margin), 0, 0.0)
        return out["negative"] and out["negative"]["id"]

    assert negative(None) == negative(0.0) == negative(1.5) == "d"
    assert negative(2.0) is None  # every other candidate scores within 2 of the positive
    assert Labels(false_negative_margin=0.0) != Labels()


@pytest.mark.parametrize("positive, excluded", [("llm", "a"), ("seed", "b")])
def test_random_negatives_are_seeded_draws_from_the_other_candidates(positive, excluded):
    draws = [_labels(positive, "random", seed=seed) for seed in range(40)]
    assert {pos for pos, _ in draws} == {excluded}
    assert {neg for _, neg in draws} == set("abcd") - {excluded}
    assert draws == [_labels(positive, "random", seed=seed) for seed in range(40)]


def test_relabel_keeps_what_training_reads():
    (out,) = relabel([RECORD], PASSAGES, Labels("seed", "none"), 0, 0.0)
    assert out == {
        "task": "search result",
        "query": "q",
        "seed_id": "b",
        "positive": {"id": "b", "title": "title b", "text": "text b"},
        "negative": None,
    }
    with pytest.raises(ValueError, match="not among"):
        relabel([{**RECORD, "seed_id": "z"}], PASSAGES, Labels("seed"), 0, 0.0)
    with pytest.raises(ValueError, match="negative"):
        Labels(negative="kth")


def test_plain_and_gecko_formats():
    assert format_query("q", "t") == "task: t | query: q"
    assert format_document("x", "  ") == "title: none | text: x"
    assert format_query("q", "t", "plain") == "t q"
    assert format_document("x", "T", "plain") == "T x"
    assert format_document("x", " ", "plain") == "x"
    with pytest.raises(ValueError, match="text format"):
        format_query("q", "t", "fancy")
    fields = ("t", "q", "T", "pos", "", "neg", "", True)
    assert format_texts(*fields, symmetric=False) == (
        "task: t | query: q",
        "title: T | text: pos",
        "title: none | text: neg",
    )
    assert format_texts(*fields, symmetric=False, text_format="plain") == ("t q", "T pos", "neg")
    assert format_texts(*fields, symmetric=True, text_format="plain") == ("t q", "t pos", "t neg")


def test_encoder_reads_and_saves_its_text_format(minilm_encoder, tmp_path):
    config = dataclasses.replace(minilm_encoder.config, text_format="plain")
    assert DualEncoderConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="text format"):
        dataclasses.replace(config, text_format="fancy")
    plain = Encoder(
        config, minilm_encoder.params, minilm_encoder.tokenizer, minilm_encoder.tokenizer_file
    )
    np.testing.assert_allclose(
        plain.encode_queries(["who wrote hamlet"], task="question answering"),
        minilm_encoder.encode(["question answering who wrote hamlet"]),
        atol=1e-6,
    )
    np.testing.assert_allclose(
        plain.encode_documents(["Hamlet is a play."], ["Hamlet"]),
        minilm_encoder.encode(["Hamlet Hamlet is a play."]),
        atol=1e-6,
    )
    assert (
        Encoder.from_pretrained(plain.save_pretrained(tmp_path / "m")).config.text_format == "plain"
    )
    truncated = TruncatedEncoder(minilm_encoder, 128).encode_documents(["x"], ["t"])
    np.testing.assert_allclose(truncated, minilm_encoder.encode_documents(["x"], ["t"], dims=128))


def test_every_shipped_plan_parses():
    files = sorted((REPO / "gin_configs" / "ablations").glob("*.gin"))
    plans = {f.stem: load_plan([str(f)]) for f in files if f.stem != "cells"}
    assert set(plans) == {
        "all",
        "table3_labels",
        "table6_reranker",
        "table7_format",
        "matryoshka",
        "same_tower",
        "quality",
    }
    # The quality run's plan compares labels (seed, guarded and unguarded LLM positives) and a
    # control without FRet, each against the guarded labels, with Banking77 and STS-B mixed in.
    quality_plan = plans.pop("quality")
    quality = {c.name: c for c in quality_plan.cells}
    assert set(quality) == {"baseline", "seed_nth", "guarded", "guarded_ql_negative", "no_fret"}
    assert {c.reference for c in quality.values()} == {"guarded"}
    assert quality["guarded"].labels.guard == "unanimous"
    assert quality["guarded"].labels.reranker == ("query_likelihood", "retriever")
    # The demo's quality run labels with the false-negative guard on: so does its cell.
    assert quality["guarded"].labels.false_negative_margin == 0.0
    ql_negative = quality["guarded_ql_negative"].labels
    assert ql_negative == dataclasses.replace(
        quality["guarded"].labels,
        negative_fusion=("query_likelihood",),
        false_negative_scorers=("query_likelihood",),
    )
    (training,) = quality["guarded_ql_negative"].trainings()
    assert training.key == (
        "llm-nth-query_likelihood+retriever+guard_unanimous+negative_query_likelihood"
        "+false_negative_0_query_likelihood_gecko_same_tower_full"
    )
    assert quality_plan.symmetric_sets == ("banking77", "stsb")
    (control,) = quality["no_fret"].trainings()
    assert not control.fret and control.key == "no_fret_gecko_same_tower_full"
    everything = plans["all"]
    assert everything.seeds == (0, 1, 2)
    assert {c.name for p in plans.values() for c in p.cells} == {c.name for c in everything.cells}
    cells = {c.name: c for c in everything.cells}
    assert cells["baseline"] == AblationCell()
    assert cells["plain_format"].text_format == "plain"
    assert cells["mrl_one_model"].trainings()[0].dims == (None, 128)
    # The separately trained full-size model is the baseline's: trained once.
    assert cells["mrl_separate"].trainings()[0] == cells["baseline"].trainings()[0]
    trainings = {t for c in everything.cells for t in c.trainings()}
    assert len(trainings) == 12


def test_loading_a_plan_leaves_gin_unlocked():
    # Locked, gin refuses new configurables: importing gecko_jax.cli.fret afterwards failed.
    load_plan(["gin_configs/ablations/all.gin"])
    assert not gin.config_is_locked()


def test_plan_wide_settings_are_checked_when_the_plan_is_built():
    assert AblationPlan((AblationCell(),)).symmetric_sets == ()  # FRet alone by default
    with pytest.raises(ValueError, match="symmetric_sets"):
        AblationPlan((AblationCell(),), symmetric_sets=("nli",))
    with pytest.raises(ValueError, match="model_selection"):
        AblationPlan((AblationCell(),), model_selection="best")


def test_a_control_without_fret_trains_on_the_symmetric_sets_alone():
    control = AblationCell("no_fret", fret=False)
    with pytest.raises(ValueError, match="symmetric_sets"):
        AblationPlan((AblationCell(), control))
    AblationPlan((AblationCell(), control), symmetric_sets=("stsb",))
    demo = FinetuneConfig(symmetric_sets=("stsb",))
    (training,) = control.trainings()
    assert training.finetune_config(demo, 384).fret_share == 0.0
    (with_fret,) = AblationCell().trainings()
    assert with_fret.finetune_config(demo, 384) == demo
    assert training.key != with_fret.key


def test_changed_share_counts_examples_with_other_labels():
    records = relabel([RECORD] * 4, PASSAGES, Labels(), 0, 0.0)
    assert changed_share(records, records) == 0.0
    assert changed_share(records, relabel([RECORD] * 4, PASSAGES, Labels("seed"), 0, 0.0)) == 1.0
    random = relabel([RECORD] * 4, PASSAGES, Labels("llm", "random"), 0, 0.0)
    assert changed_share(records, random) == np.mean([r["negative"]["id"] != "d" for r in random])


def _run(evals, seconds=1.0):
    return {"evals": evals, "train_seconds": seconds, "eval_seconds": 0.0}


def test_summary_calls_differences_within_the_spread_none():
    plan = AblationPlan((AblationCell(), AblationCell("small", negative="none")), seeds=(0, 1, 2))
    base = [_run({"full": {"t": {"m": v}}}) for v in (0.50, 0.52, 0.54)]
    small = [_run({"full": {"t": {"m": v}}}) for v in (0.53, 0.55, 0.57)]
    big = [_run({"full": {"t": {"m": v}}}) for v in (0.60, 0.61, 0.62)]
    (_, row) = summarize(plan, {"baseline": base, "small": small})
    assert row["delta"] == pytest.approx(0.03) and row["spread"] == pytest.approx(0.02)
    assert row["reading"] == "gain"
    # The reference's spread counts too: 0.01 is within the baseline's 0.02.
    (_, row) = summarize(
        plan, {"baseline": base, "small": [_run({"full": {"t": {"m": 0.53}}})] * 3}
    )
    assert row["reading"] == "none"
    (_, row) = summarize(plan, {"baseline": big, "small": small})
    assert row["reading"] == "loss"
    (_, row) = summarize(plan, {"baseline": base, "small": base[::-1]})
    assert row["reading"] == "none"


def _seeded(values, heldout=None):
    runs = [{**_run({"full": {"t": {"m": v}}}), "seed": seed} for seed, v in enumerate(values)]
    if heldout is not None:
        for run, value in zip(runs, heldout, strict=True):
            run["best_heldout_mrr@10"] = value
    return runs


def test_paired_differences_get_a_t_interval():
    plan = AblationPlan((AblationCell(), AblationCell("small", negative="none")), seeds=(0, 1, 2))
    base = _seeded((0.50, 0.52, 0.54))
    # Differences +0.01, +0.02, +0.03: mean 0.02, sd 0.01, 95% half-width t(0.975, 2) * 0.01 /
    # sqrt(3) = 4.3027 * 0.005774 = 0.02484, which holds zero.
    (_, row) = summarize(plan, {"baseline": base, "small": _seeded((0.51, 0.54, 0.57))})
    assert row["paired_delta"] == pytest.approx(0.02)
    assert row["paired_ci95"] == pytest.approx(4.302653 * 0.01 / np.sqrt(3), rel=1e-5)
    assert row["paired_reading"] == "none" and row["reading"] == "none"
    # The same shift at every seed is called, though the cells' spreads are wider than it.
    (_, row) = summarize(plan, {"baseline": base, "small": _seeded((0.495, 0.515, 0.535))})
    assert row["paired_ci95"] == pytest.approx(0.0, abs=1e-12)
    assert (row["paired_reading"], row["reading"]) == ("loss", "none")
    # Runs of other seeds are not paired.
    other = [{**run, "seed": run["seed"] + 3} for run in _seeded((0.6, 0.6, 0.6))]
    (_, row) = summarize(plan, {"baseline": base, "small": other})
    assert "paired_delta" not in row and row["reading"] == "gain"


def test_heldout_retrieval_is_a_row_of_the_full_size():
    plan = AblationPlan((AblationCell(), AblationCell("small", negative="none")), seeds=(0, 1))
    runs = {
        "baseline": _seeded((0.5, 0.6), heldout=(0.70, 0.72)),
        "small": _seeded((0.5, 0.6), heldout=(0.75, 0.76)),
    }
    rows = {(r["cell"], r["task"]): r for r in summarize(plan, runs)}
    assert rows["small", "heldout"]["per_seed"] == [0.75, 0.76]
    assert rows["small", "heldout"]["paired_delta"] == pytest.approx(0.045)
    table = format_table(list(rows.values()), plan, runs, {})
    assert "heldout mrr@10" in table.splitlines()[0]


# ------------------------------------------------------------------ miniature end to end
TWO_CELLS = (
    "gecko.AblationPlan.cells = (@baseline/gecko.AblationCell(), @seed_none/gecko.AblationCell())"
)
RUNS = {
    "baseline": "llm-nth-query_likelihood+relevance_gecko_same_tower_full",
    "seed_none": "seed-none-query_likelihood+relevance_gecko_same_tower_full",
}


@pytest.fixture(scope="module")
def ablation_run(tiny_demo, tmp_path_factory):
    demo, _ = tiny_demo
    out = tmp_path_factory.mktemp("ablations")
    argv = ["--gin_file", str(REPO / "gin_configs/ablations/table3_labels.gin")]
    argv += ["--gin_param", TWO_CELLS, "--gin_param", "gecko.AblationPlan.seeds = (0,)"]
    argv += ["--demo", str(demo), "--out", str(out)]
    assert main(argv) == 0
    return demo, out, argv


def test_miniature_table_rows_come_from_the_evaluators(ablation_run):
    demo, out, _ = ablation_run
    result = json.loads((out / "results.json").read_text())
    assert [c["name"] for c in result["plan"]["cells"]] == ["baseline", "seed_none"]
    assert result["environment"]["packages"]["jax"]
    rows = {(r["cell"], r["task"], r["metric"]): r for r in result["rows"]}
    steps = json.loads((demo / "results.json").read_text())["config"]["finetune"]["total_steps"]
    for cell, key in RUNS.items():
        saved = json.loads((out / "runs" / key / "seed_0" / "result.json").read_text())
        # A fixed budget: every run keeps its last step, never the unchanged base model.
        assert (saved["model_selection"], saved["best_step"]) == ("last", steps)
        metrics = saved["evals"]["full"]["wiki_retrieval"]
        assert {m: rows[cell, "wiki_retrieval", m]["per_seed"] for m in metrics} == {
            m: [value] for m, value in metrics.items()
        }
    row = rows["seed_none", "wiki_retrieval", "ndcg@10"]
    base = rows["baseline", "wiki_retrieval", "ndcg@10"]
    assert row["delta"] == pytest.approx(row["mean"] - base["mean"])
    assert row["reading"] == "one seed" and "reading" not in base
    table = (out / "table.md").read_text()
    assert "| seed_none | full | baseline |" in table and f"{row['mean']:.4f} ± 0.0000" in table
    # One number recomputed with the evaluator from the saved model.
    max_length = json.loads((demo / "results.json").read_text())["config"]["eval_max_length"]
    model = Encoder.from_pretrained(
        out / "runs" / RUNS["seed_none"] / "seed_0/train/best_model", max_length=max_length
    )
    data = load_task("wiki_retrieval", None, TINY_DEMO_EVAL_LIMIT, 0)
    recomputed = evaluate_task(model, "wiki_retrieval", data)["ndcg@10"]
    assert recomputed == pytest.approx(row["mean"], abs=1e-6)


def test_miniature_labels_come_from_the_stored_scores(ablation_run):
    demo, out, _ = ablation_run
    heldout = set(json.loads((demo / "splits.json").read_text())["heldout"])
    train = [r for r in read_jsonl(demo / "fret" / "fret.jsonl") if r["seed_id"] not in heldout]
    baseline, seed_none = (
        read_jsonl(out / "runs" / RUNS[cell] / "seed_0" / "fret_train.jsonl")
        for cell in ("baseline", "seed_none")
    )

    def labels(records):
        return [(r["positive"], r["negative"]) for r in records]

    # Relabelling under the demo's own label settings reproduces the pipeline's labels.
    config = json.loads((demo / "results.json").read_text())["config"]
    passages = {row["id"]: Passage(**row) for row in read_jsonl(demo / "passages.jsonl")}
    demo_labels = Labels(
        "llm",
        "nth",
        tuple(config["mine"]["fusion"]),
        config["mine"]["relabel_guard"],
        config["mine"]["false_negative_margin"],
    )
    rrf_k = config["mine"]["rrf_k"]
    assert labels(relabel(train, passages, demo_labels, 0, rrf_k)) == labels(train)
    # The baseline cell labels by the paper's rule: p_1 and p_N of RRF(QL, RC), unguarded.
    assert labels(baseline) == labels(relabel(train, passages, Labels(), 0, rrf_k))
    assert all(r["positive"]["id"] == r["seed_id"] and r["negative"] is None for r in seed_none)
    # Every seed_none example loses its negative, so all of its labels changed.
    result = json.loads((out / "results.json").read_text())
    assert result["label_changes"] == {"seed_none": 1.0}


def test_miniature_rerun_resumes_without_training(ablation_run):
    _, out, argv = ablation_run
    before = json.loads((out / "results.json").read_text())
    assert main(argv) == 0
    after = json.loads((out / "results.json").read_text())
    # Same timings too: every run was read back, none trained or evaluated again.
    assert after["rows"] == before["rows"] and after["runs"] == before["runs"]


def test_rerun_with_another_model_selection_is_refused(ablation_run, caplog):
    _, out, argv = ablation_run
    before = (out / "results.json").read_text()
    code = main([*argv, "--gin_param", "gecko.AblationPlan.model_selection = 'heldout'"])
    assert code == EXIT_STAGE_CHANGED
    assert 'config.finetune.model_selection ("last" -> "heldout")' in caplog.text
    assert "--restart" in caplog.text and (out / "results.json").read_text() == before
