"""The train step: global batch on 1 vs 8 devices, GradCache == plain, the NaN guard."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gecko_jax.core.partitioning import (
    MeshConfig,
    batch_sharding,
    create_mesh,
    mesh_context,
    num_batch_shards,
)
from gecko_jax.models.named_configs import get_named_config
from gecko_jax.text.features import FIELDS, validate_batch
from gecko_jax.training.config import TrainConfig
from gecko_jax.training.optimizer import learning_rate_schedule, make_optimizer
from gecko_jax.training.state import init_state
from gecko_jax.training.step import gradcache_loss_and_grads, make_train_step, plain_loss_and_grads

BATCH, QLEN, PLEN = 16, 12, 20


def random_batch(seed: int = 0, batch: int = BATCH) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)

    def tokens(length):
        ids = rng.integers(1, 120, size=(batch, length)).astype(np.int32)
        lengths = rng.integers(3, length + 1, size=batch)
        mask = (np.arange(length)[None] < lengths[:, None]).astype(np.int32)
        return ids * mask, mask

    out = {}
    for field, length in (("query", QLEN), ("positive", PLEN), ("negative", PLEN)):
        out[f"{field}_input_ids"], out[f"{field}_attention_mask"] = tokens(length)
    out["has_negative"] = (rng.random(batch) > 0.25).astype(np.int32)
    out["task_id"] = rng.integers(0, 3, size=batch).astype(np.int32)
    out["query_text_hash"] = np.arange(batch, dtype=np.int32)
    positive_hash = np.arange(batch, dtype=np.int32) + 1000
    positive_hash[3] = positive_hash[5]  # an in-batch duplicate positive
    out["positive_text_hash"] = positive_hash
    out["example_mask"] = np.ones(batch, np.int32)
    out["example_mask"][-1] = 0
    assert validate_batch(out) == batch and set(out) == set(FIELDS)
    return out


def config(**overrides) -> TrainConfig:
    return TrainConfig(
        model=get_named_config("tiny_bert"),
        total_steps=10,
        global_batch_size=BATCH,
        learning_rate=1e-3,
        **overrides,
    )


@pytest.fixture(scope="module")
def reference():
    """Loss and gradients on one device."""
    cfg = config()
    mesh = create_mesh(MeshConfig(data=1), jax.devices()[:1])
    state = init_state(cfg, make_optimizer(cfg), mesh, jax.random.key(0))
    params = jax.device_get(state.params)
    loss, _, grads = jax.jit(plain_loss_and_grads, static_argnums=2)(params, random_batch(), cfg)
    return params, float(loss), jax.device_get(grads)


def _sharded_loss_and_grads(mesh_config, params, cfg, gradcache=False):
    devices = jax.devices()
    if -1 not in (mesh_config.data, mesh_config.fsdp, mesh_config.tensor):
        devices = devices[: mesh_config.data * mesh_config.fsdp * mesh_config.tensor]
    mesh = create_mesh(mesh_config, devices)
    optimizer = make_optimizer(cfg)
    with mesh_context(mesh):
        state = init_state(cfg, optimizer, mesh, jax.random.key(0), params=params)
        batch = jax.device_put(random_batch(), batch_sharding(mesh))
        if gradcache:
            fn = lambda p, b: gradcache_loss_and_grads(p, b, cfg, num_batch_shards(mesh))
        else:
            fn = lambda p, b: plain_loss_and_grads(p, b, cfg)
        loss, _, grads = jax.jit(fn)(state.params, batch)
    return float(loss), jax.device_get(grads), state


def _assert_trees_close(a, b, atol):
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol, rtol=1e-4)


@pytest.mark.parametrize(
    "mesh_config",
    [MeshConfig(data=8), MeshConfig(data=1, fsdp=8), MeshConfig(data=2, fsdp=2, tensor=2)],
)
def test_eight_devices_equal_one(reference, mesh_config):
    params, loss, grads = reference
    assert len(jax.devices()) == 8
    got_loss, got_grads, state = _sharded_loss_and_grads(mesh_config, params, config())
    assert got_loss == pytest.approx(loss, rel=1e-5)
    _assert_trees_close(got_grads, grads, atol=1e-5)
    if mesh_config.fsdp > 1:
        kernel = state.params["backbone"]["layers_0"]["mlp_in"]["kernel"]
        assert "fsdp" in str(kernel.sharding.spec), kernel.sharding


def test_gradcache_equals_plain(reference):
    params, loss, grads = reference
    got_loss, got_grads, _ = _sharded_loss_and_grads(
        MeshConfig(data=1), params, config(gradcache_chunk_size=4), gradcache=True
    )
    assert got_loss == pytest.approx(loss, rel=1e-5)
    _assert_trees_close(got_grads, grads, atol=1e-5)
    on_8, grads_8, _ = _sharded_loss_and_grads(
        MeshConfig(data=4, fsdp=2), params, config(gradcache_chunk_size=8), gradcache=True
    )
    assert on_8 == pytest.approx(loss, rel=1e-5)
    _assert_trees_close(grads_8, grads, atol=1e-5)


def test_non_finite_step_is_skipped_and_counted(reference):
    params, _, _ = reference
    cfg = config()
    mesh = create_mesh(MeshConfig(data=1), jax.devices()[:1])
    optimizer = make_optimizer(cfg)
    state = init_state(cfg, optimizer, mesh, jax.random.key(0), params=params)
    step = jax.jit(make_train_step(cfg, optimizer, learning_rate_schedule(cfg)))
    good, metrics = step(state, random_batch())
    assert bool(metrics["finite"]) and int(good.step) == 1
    assert not np.allclose(
        good.params["backbone"]["embeddings"]["word"]["embedding"],
        state.params["backbone"]["embeddings"]["word"]["embedding"],
    )
    poisoned = jax.tree_util.tree_map(lambda x: x, good)
    poisoned = poisoned.replace(
        params={
            **good.params,
            "backbone": jax.tree_util.tree_map(
                lambda x: x.at[(0,) * x.ndim].set(jnp.nan) if x.ndim == 1 else x,
                good.params["backbone"],
            ),
        }
    )
    bad, metrics = step(poisoned, random_batch(1))
    assert not bool(metrics["finite"])
    assert (
        int(bad.step) == 2 and int(bad.consecutive_bad_steps) == 1 and int(bad.skipped_steps) == 1
    )
    _assert_trees_close(bad.params, poisoned.params, atol=0)  # nothing applied
    bad2, _ = step(bad, random_batch(2))
    assert int(bad2.consecutive_bad_steps) == 2


def test_schedule_warms_up_then_decays():
    cfg = config(warmup_steps=4, schedule="linear")
    schedule = learning_rate_schedule(cfg)
    values = [float(schedule(s)) for s in range(11)]
    assert values[0] == 0.0 and values[4] == pytest.approx(1e-3)
    assert values[2] == pytest.approx(5e-4) and values[10] == pytest.approx(0.0, abs=1e-9)
    cosine = learning_rate_schedule(config(warmup_steps=0, schedule="cosine"))
    assert float(cosine(5)) == pytest.approx(5e-4, rel=1e-5)
