"""User hooks: called after every step that runs, able to stop (and checkpoint) the run."""

import json

import pytest

from gecko_jax.models.named_configs import get_named_config
from gecko_jax.training.config import TrainConfig
from gecko_jax.training.hooks import Hook
from gecko_jax.training.trainer import train
from tasks.array_input import ArrayBatcher, random_token_features

STEPS = 6


class Recorder(Hook):
    """Records each event; asks to stop after step ``stop_after``."""

    stop_reason = "enough"

    def __init__(self, stop_after: int | None = None) -> None:
        self.stop_after = stop_after
        self.events: list[tuple] = []
        self.losses: dict[int, float] = {}

    def on_start(self, state) -> bool:
        self.events.append(("start", int(state.step)))
        return False

    def after_step(self, step, state, metrics, batch) -> bool:
        self.events.append(("step", step))
        self.losses[step] = float(metrics["loss"])
        return step == self.stop_after

    def on_end(self, state, stop_reason) -> None:
        self.events.append(("end", int(state.step), stop_reason))


def _train(workdir, hook: Recorder):
    config = TrainConfig(
        model=get_named_config("tiny_bert"),
        total_steps=STEPS,
        global_batch_size=8,
        learning_rate=1e-3,
        checkpoint_every=4,
        async_checkpointing=False,
    )
    features = random_token_features(32, 8, 8, 128)
    return train(config, ArrayBatcher(features, 8), workdir, hooks=[hook])


def _logged_losses(workdir) -> dict[int, float]:
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in records}


@pytest.mark.slow
def test_a_user_hook_sees_every_step_stops_the_run_and_the_rerun_resumes(tmp_path):
    stopper = Recorder(stop_after=3)
    result = _train(tmp_path / "stopped", stopper)
    assert stopper.events == [
        ("start", 0),
        ("step", 1),
        ("step", 2),
        ("step", 3),
        ("end", 3, "enough"),
    ]
    assert int(result.state.step) == 3 and not result.stopped_by_signal
    meta = tmp_path / "stopped" / "checkpoints" / "3" / "meta" / "metadata"
    assert json.loads(meta.read_text())["reason"] == "enough"
    assert _logged_losses(tmp_path / "stopped") == stopper.losses

    resumed = Recorder()
    _train(tmp_path / "stopped", resumed)
    assert resumed.events == [("start", 3), ("step", 4), ("step", 5), ("step", 6), ("end", 6, None)]

    uninterrupted = Recorder()
    _train(tmp_path / "uninterrupted", uninterrupted)
    assert {**stopper.losses, **resumed.losses} == uninterrupted.losses  # exact
