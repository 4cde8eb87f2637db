"""The README's main command at a tiny scale: real LLM, real training, measured table."""

import json

import numpy as np
import pytest
from conftest import DEMO_SEED_PASSAGES, SHARED_DATA, TINY_DEMO_EVAL_LIMIT

from gecko_jax import Encoder
from gecko_jax.cli.demo import main
from gecko_jax.evaluation.suite import evaluate_task, load_task


def _lines(path):
    return path.read_text(encoding="utf-8").splitlines()


def test_demo_table_comes_from_the_evaluators(tiny_demo):
    out, _ = tiny_demo
    result = json.loads((out / "results.json").read_text())
    # The gin bindings and flags reached the run.
    assert result["config"]["seeds"] == [0, 1] and result["config"]["mine"]["num_candidates"] == 3
    assert len(_lines(out / "passages.jsonl")) == len(DEMO_SEED_PASSAGES)
    table = {(row["task"], row["metric"]): row for row in result["table"]}
    assert ("wiki_retrieval", "ndcg@10") in table
    # Recompute one cell of each column with the evaluators, from the saved models.
    data = load_task("wiki_retrieval", None, TINY_DEMO_EVAL_LIMIT, 0)
    max_length = result["config"]["eval_max_length"]
    base_model = Encoder.from_pretrained(result["base_model"], max_length=max_length)
    base = evaluate_task(base_model, "wiki_retrieval", data)
    seed_1_model = Encoder.from_pretrained(
        out / "train" / "seed_1" / "best_model", max_length=max_length
    )
    seed_1 = evaluate_task(seed_1_model, "wiki_retrieval", data)
    row = table[("wiki_retrieval", "ndcg@10")]
    assert row["base"] == pytest.approx(base["ndcg@10"], abs=1e-6)
    assert row["per_seed"][1] == pytest.approx(seed_1["ndcg@10"], abs=1e-6)
    assert row["mean"] == pytest.approx(np.mean(row["per_seed"]))
    # The FRet data is real: every record's positive is one of its candidates.
    records = [json.loads(line) for line in _lines(out / "fret" / "fret.jsonl")]
    assert records and all(r["positive"]["id"] in r["candidate_ids"] for r in records)
    # Only training passages' queries were reranked; held-out ones score their own passage.
    splits = json.loads((out / "splits.json").read_text())
    assert {r["seed_id"] for r in records} <= set(splits["train"])
    assert result["fret"]["mine"]["mined_passages"] == len(splits["train"])
    # The teacher check: P@1 against the seed of the retriever and of the configured fusion.
    check = result["fret"]["mine"]["teacher_check"]
    assert check["queries"] == len(records) and "verdict" in check
    seed_first = [r["ranks"]["fused"][r["candidate_ids"].index(r["seed_id"])] == 1 for r in records]
    assert check["p@1"]["ql_retriever"] == pytest.approx(np.mean(seed_first))
    retriever_first = [r["candidate_ids"][0] == r["seed_id"] for r in records]
    assert check["p@1"]["retriever"] == pytest.approx(np.mean(retriever_first))
    # Where the hard negatives sit in the retrieved lists.
    ranks = [r["candidate_ids"].index(r["negative"]["id"]) + 1 for r in records if r["negative"]]
    assert result["fret"]["mine"]["negatives"] == {
        "mean_retriever_rank": pytest.approx(np.mean(ranks)),
        "median_retriever_rank": pytest.approx(np.median(ranks)),
        "without_negative": len(records) - len(ranks),
    }
    # With the evaluation's data folder there, the symmetric sets join FRet, and the table
    # marks the task they are in-domain for.
    if (SHARED_DATA / "stsbenchmark").is_dir() and (SHARED_DATA / "banking77").is_dir():
        assert result["training_mixture"] == {"fret_share": 0.5, "sets": ["banking77", "stsb"]}
        assert any(line.startswith("stsb* ") for line in _lines(out / "table.txt"))
    # A fixed budget by default: every seed keeps its last step.
    steps = result["config"]["finetune"]["total_steps"]
    assert {r["best_step"] for r in result["fine_tune"].values()} == {steps}
    assert 0.0 <= result["heldout_base_mrr@10"] <= 1.0
    for name in ("training", "rank_changes", "positive_changed"):
        assert (out / "plots" / f"{name}.png").stat().st_size > 5000
    exported = Encoder.from_pretrained(out / "model")
    assert exported.encode(["a sentence"]).shape == (1, 384)


def test_demo_rerun_resumes_without_redoing_work(tiny_demo, capsys):
    out, argv = tiny_demo
    before = json.loads((out / "results.json").read_text())
    cache_lines = len(_lines(out / "fret" / "llm_cache.jsonl"))
    checkpoints = sorted(p.name for p in (out / "train").rglob("checkpoints/*"))
    assert main(argv) == 0
    after = json.loads((out / "results.json").read_text())
    assert after["table"] == before["table"]
    assert len(_lines(out / "fret" / "llm_cache.jsonl")) == cache_lines
    assert sorted(p.name for p in (out / "train").rglob("checkpoints/*")) == checkpoints
    assert "[5/5]" in capsys.readouterr().out


def test_demo_llm_kwargs_from_gin_reach_fret(tmp_path, monkeypatch):
    """``gecko.fret_run.llm_kwargs`` goes to ``run_fret`` (stopped there: no LLM runs)."""
    from gecko_jax.cli.demo import _demo_config, build_parser
    from gecko_jax.recipes.demo import run as demo_run

    class Stop(Exception):
        pass

    def fret(*args, **kwargs):
        raise Stop(kwargs["llm_kwargs"])

    monkeypatch.setattr(demo_run, "run_fret", fret)
    passages = tmp_path / "seeds.jsonl"
    passages.write_text(
        "".join(json.dumps({"id": t, "title": t, "text": x}) + "\n" for t, x in DEMO_SEED_PASSAGES)
    )
    argv = ["demo", "--out", str(tmp_path / "out"), "--passages", str(passages)]
    argv += ["--gin_param", "gecko.fret_run.llm_kwargs = {'batch_size': 8}"]
    argv += ["--gin_param", "gecko.DemoConfig.eval_tasks = ()"]
    config = _demo_config(build_parser().parse_args(argv))
    with pytest.raises(Stop) as stopped:
        demo_run.run_demo(config, tmp_path / "out", say=lambda line: None)
    assert stopped.value.args == ({"batch_size": 8},)


def test_demo_divergence_is_one_line_and_exit_3(monkeypatch, caplog, tmp_path):
    """A fine-tune that diverges ends the demo as it ends gecko-train: status 3, no traceback."""
    import gecko_jax.cli.demo as cli
    from gecko_jax.training.hooks import TrainingDivergedError

    def diverge(args):
        raise TrainingDivergedError("5 consecutive steps skipped (non-finite loss)")

    monkeypatch.setattr(cli, "_demo", diverge)
    assert cli.main(["demo", "--out", str(tmp_path / "out")]) == 3
    assert "fine-tuning diverged: 5 consecutive steps skipped" in caplog.text
