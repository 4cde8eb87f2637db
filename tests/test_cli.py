"""The README's main command, on a tiny corpus: it runs end to end and its numbers are real."""

import json

import numpy as np

from gecko_jax.cli import main


def test_demo_writes_measured_metrics(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--passages", "60", "--queries", "15", "--out", str(out)]) == 0
    result = json.loads((out / "results.json").read_text())
    assert result["passages"] == 60 and result["queries"] == 15
    metrics = result["metrics"]
    assert set(metrics) == {"recall@1", "recall@10", "mrr@10"}
    assert 0.0 <= metrics["recall@1"] <= metrics["mrr@10"] <= metrics["recall@10"] <= 1.0
    # recall@10 is a fraction of 15 queries, and MiniLM finds most articles among 60.
    assert np.isclose(metrics["recall@10"] * 15, round(metrics["recall@10"] * 15))
    assert metrics["recall@10"] >= 0.6
    printed = capsys.readouterr().out
    assert f"{metrics['mrr@10']:.4f}" in printed
    assert "[3/3]" in printed
