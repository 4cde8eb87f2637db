"""Early stopping: patience, best tracking, and resuming from the saved history."""

import json

import pytest

from gecko_jax.training.early_stopping import STATE_FILE, EarlyStopping


def _run(stopper, values, start_step=0):
    saved, stops = [], []
    stopper.on_improve = lambda params, step: saved.append((params, step))
    for i, value in enumerate(values, start=1):
        step = start_step + 10 * i
        stops.append(stopper.update(step, {"mrr@10": value}, f"params@{step}"))
    return saved, stops


def test_stops_after_patience_without_improvement(tmp_path):
    stopper = EarlyStopping("mrr@10", patience=2)
    stopper.attach(tmp_path, 0)
    saved, stops = _run(stopper, [0.5, 0.6, 0.6, 0.55, 0.7])
    # 0.6 at step 20 is the best; equal (no strict gain) and lower values count as no gain.
    assert stops == [False, False, False, True, False]
    assert saved == [("params@10", 10), ("params@20", 20), ("params@50", 50)]
    assert stopper.best == {"step": 50, "value": 0.7}


def test_min_mode_and_min_delta():
    stopper = EarlyStopping("loss", patience=1, mode="min", min_delta=0.05)
    assert not stopper.update(1, {"loss": 1.0}, None)
    assert stopper.update(2, {"loss": 0.97}, None)  # better, but by less than min_delta
    assert stopper.best == {"step": 1, "value": 1.0}


def test_resume_drops_evaluations_after_the_checkpoint(tmp_path):
    first = EarlyStopping("mrr@10", patience=2)
    first.attach(tmp_path, 0)
    _run(first, [0.5, 0.4, 0.45])
    assert first.stopped
    saved = json.loads((tmp_path / STATE_FILE).read_text())
    assert [h["step"] for h in saved["history"]] == [10, 20, 30]
    # Killed after the checkpoint at step 20: the evaluation at 30 will be redone.
    resumed = EarlyStopping("mrr@10", patience=2)
    resumed.attach(tmp_path, 20)
    assert [h["step"] for h in resumed.history] == [10, 20]
    assert not resumed.stopped and resumed.evaluations_without_improvement == 1
    # A rerun of a finished run knows it stopped.
    finished = EarlyStopping("mrr@10", patience=2)
    finished.attach(tmp_path, 30)
    assert finished.stopped


def test_bad_inputs():
    with pytest.raises(ValueError, match="mode"):
        EarlyStopping("x", 1, mode="up")
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping("x", 0)
    stopper = EarlyStopping("mrr@10", 1)
    with pytest.raises(KeyError, match="mrr@10"):
        stopper.update(1, {"ndcg@10": 0.3}, None)
    with pytest.raises(ValueError, match="nan"):
        stopper.update(1, {"mrr@10": float("nan")}, None)
