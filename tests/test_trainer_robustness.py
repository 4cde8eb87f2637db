"""Runs that go wrong: damaged checkpoints fall back; divergence stops loudly, state usable."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest
from jax.sharding import Mesh

from gecko_jax.core.partitioning import MeshConfig, create_mesh
from gecko_jax.model_io.checkpoints import DAMAGED_DIR, Checkpointer, CheckpointRestoreError
from gecko_jax.models.named_configs import get_named_config
from gecko_jax.training.config import TrainConfig
from gecko_jax.training.hooks import TrainingDivergedError, _check_skipped_share
from gecko_jax.training.optimizer import learning_rate_schedule, make_optimizer
from gecko_jax.training.state import abstract_state, init_state
from gecko_jax.training.step import TrainState, make_train_step
from gecko_jax.training.trainer import restore_or_init
from tasks.array_input import random_token_features

REPO = Path(__file__).resolve().parents[1]
GECKO_TRAIN = Path(sys.executable).parent / "gecko-train"


def _config(**overrides) -> TrainConfig:
    return TrainConfig(
        model=get_named_config("tiny_bert"), total_steps=8, global_batch_size=8, **overrides
    )


def _one_device_mesh() -> Mesh:
    return create_mesh(MeshConfig(data=1), jax.devices()[:1])


def _filled_state(
    config: TrainConfig, optimizer: optax.GradientTransformation, value: float, step: int
) -> TrainState:
    """A state of the right structure with every leaf ``value``: no model init to compile."""
    abstract = abstract_state(config, optimizer, _one_device_mesh())
    filled = jax.tree_util.tree_map(lambda a: np.full(a.shape, value, a.dtype), abstract)
    return filled.replace(step=np.int32(step))


def _two_checkpoints(workdir: Path) -> tuple[TrainConfig, optax.GradientTransformation]:
    """Steps 4 and 8, whose params are all 4.0 and all 8.0."""
    config = _config()
    optimizer = make_optimizer(config)
    checkpointer = Checkpointer(workdir, async_save=False)
    for step in (4, 8):
        checkpointer.save(
            step, _filled_state(config, optimizer, step, step), {"reason": "periodic"}
        )
    checkpointer.close()
    return config, optimizer


def _truncate_the_data_files(step_dir: Path) -> None:
    """Each array data file cut to half its length."""
    for data in (step_dir / "state").rglob("d/*"):
        data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])


def _delete_metadata(step_dir: Path) -> None:
    (step_dir / "state" / "_METADATA").unlink()


# A failed tensorstore read leaves an orbax callback that fires on a closed event loop.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("damage", [_truncate_the_data_files, _delete_metadata])
def test_damaged_newest_checkpoint_falls_back_to_the_older_step(tmp_path, caplog, damage):
    config, optimizer = _two_checkpoints(tmp_path)
    damage(tmp_path / "checkpoints" / "8")
    checkpointer = Checkpointer(tmp_path, async_save=False)
    with caplog.at_level(logging.INFO, logger="gecko_jax"):
        state = restore_or_init(config, optimizer, _one_device_mesh(), checkpointer)
    assert int(state.step) == 4
    assert all((np.asarray(x) == 4).all() for x in jax.tree_util.tree_leaves(state.params))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings[0].startswith("checkpoint at step 8 does not restore (")
    assert "\n" not in warnings[0] and len(warnings[0]) < 400, warnings[0]
    assert "resumed from step 4 (periodic checkpoint)" in caplog.messages
    # The damaged step is kept aside, out of the way of the run saving step 8 again.
    assert [p.name.split("-")[0] for p in (tmp_path / DAMAGED_DIR).iterdir()] == ["8"]
    checkpointer.save(8, state.replace(step=np.int32(8)), {"reason": "periodic"})
    checkpointer.close()
    assert sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir()) == [4, 8]


def test_no_restorable_checkpoint_is_one_clear_error(tmp_path):
    config, optimizer = _two_checkpoints(tmp_path)
    for step in (4, 8):
        _delete_metadata(tmp_path / "checkpoints" / str(step))
    checkpointer = Checkpointer(tmp_path, async_save=False)
    with pytest.raises(CheckpointRestoreError, match=r"restores: step 8: .*; step 4: "):
        restore_or_init(config, optimizer, _one_device_mesh(), checkpointer)
    checkpointer.close()
    assert not (tmp_path / DAMAGED_DIR).exists()  # nothing to fall back to, nothing moved


def test_guard_refuses_an_update_that_explodes_the_parameters():
    config = _config(learning_rate=1e5)  # loss and gradients stay finite; the update does not
    optimizer, mesh = make_optimizer(config), _one_device_mesh()
    rng = np.random.default_rng(0)
    params = jax.tree_util.tree_map(
        lambda a: rng.normal(0, 0.05, a.shape).astype(a.dtype),
        abstract_state(config, optimizer, mesh).params,
    )
    state = init_state(config, optimizer, mesh, jax.random.key(0), params=params)
    step = jax.jit(make_train_step(config, optimizer, learning_rate_schedule(config)))
    new, metrics = step(state, random_token_features(8, 8, 8, 128))
    assert np.isfinite(float(metrics["loss"])) and np.isfinite(float(metrics["grad_norm"]))
    assert config.max_param_norm < float(metrics["proposed_param_norm"]) < np.inf
    assert not bool(metrics["finite"])
    assert int(new.consecutive_bad_steps) == 1 and int(new.skipped_steps) == 1
    for got, want in zip(
        jax.tree_util.tree_leaves(new.params), jax.tree_util.tree_leaves(params), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(got), want)


def test_a_run_ending_with_many_skipped_steps_has_diverged(tmp_path, caplog):
    config = _config(max_skipped_fraction=0.1)
    state = _filled_state(config, make_optimizer(config), 0.0, 0)
    with pytest.raises(TrainingDivergedError, match="3 of 6 steps were skipped"):
        _check_skipped_share(state.replace(step=6, skipped_steps=3), config, tmp_path)
    with caplog.at_level(logging.WARNING, logger="gecko_jax"):
        _check_skipped_share(state.replace(step=20, skipped_steps=2), config, tmp_path)
    assert caplog.messages == [
        "2 of 20 steps were skipped as non-finite or exploding (within max_skipped_fraction 0.1)"
    ]


@pytest.mark.slow
def test_divergent_run_exits_3_and_keeps_a_finite_checkpoint(tmp_path):
    """lr 1e30: every update after the zero-lr warmup step explodes and is refused."""
    result = subprocess.run(
        [
            str(GECKO_TRAIN),
            "--gin_file=gin_configs/runs/synthetic_smoke.gin",
            f"--workdir={tmp_path}",
            "--gin_param=TOTAL_STEPS=8",
            "--gin_param=gecko.TrainConfig.learning_rate=1e30",
            "--gin_param=gecko.TrainConfig.max_consecutive_bad_steps=3",
        ],
        cwd=REPO,
        env={**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": ""},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 3, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert "step 2 skipped: the update would have taken the parameter norm to" in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "ERROR training diverged: 3 steps in a row were skipped, the last (step 4)" in last
    step_dir = tmp_path / "checkpoints" / "4"
    assert json.loads((step_dir / "meta" / "metadata").read_text())["reason"] == "diverged"
    kept = ocp.StandardCheckpointer().restore(step_dir / "state")
    params = jax.tree_util.tree_leaves(kept["params"])
    assert all(np.isfinite(x).all() for x in params)
    assert float(optax.tree.norm(params)) < _config().max_param_norm
