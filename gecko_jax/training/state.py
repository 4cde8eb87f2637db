"""Creating the train state directly in its shardings (never materialised on one device)."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from gecko_jax.core.partitioning import logical_sharding
from gecko_jax.models.dual_encoder import DualEncoder
from gecko_jax.training.config import TrainConfig
from gecko_jax.training.step import TrainState

_SAMPLE_LENGTH = 8


def _init_params(config: TrainConfig, rng: jax.Array) -> Any:
    ids = jnp.ones((1, _SAMPLE_LENGTH), jnp.int32)
    return DualEncoder(config.model).init(rng, ids, ids)["params"]


def _state_from_params(params: Any, optimizer: optax.GradientTransformation) -> TrainState:
    zero = jnp.zeros((), jnp.int32)
    return TrainState(
        step=zero,
        params=params,
        opt_state=optimizer.init(params),
        consecutive_bad_steps=zero,
        skipped_steps=zero,
    )


def state_shardings(
    config: TrainConfig, optimizer: optax.GradientTransformation, mesh: Mesh
) -> TrainState:
    """NamedShardings for every leaf: params and Adam moments follow the logical axis rules."""
    boxed = jax.eval_shape(
        lambda rng: _state_from_params(_init_params(config, rng), optimizer), jax.random.key(0)
    )
    return logical_sharding(boxed, mesh)


def init_state(
    config: TrainConfig,
    optimizer: optax.GradientTransformation,
    mesh: Mesh,
    rng: jax.Array,
    params: Any | None = None,
) -> TrainState:
    """A fresh state, or one around given (e.g. pretrained) params, laid out in its shardings."""
    shardings = state_shardings(config, optimizer, mesh)
    if params is None:
        create = lambda key: _state_from_params(nn.unbox(_init_params(config, key)), optimizer)
        return jax.jit(create, out_shardings=shardings)(rng)
    params = jax.device_put(params, shardings.params)
    return jax.jit(lambda p: _state_from_params(p, optimizer), out_shardings=shardings)(params)


def abstract_state(
    config: TrainConfig, optimizer: optax.GradientTransformation, mesh: Mesh
) -> TrainState:
    """Shapes, dtypes and shardings of the state, for restoring a checkpoint in place."""
    shardings = state_shardings(config, optimizer, mesh)
    shapes = jax.eval_shape(
        lambda rng: _state_from_params(nn.unbox(_init_params(config, rng)), optimizer),
        jax.random.key(0),
    )
    return jax.tree_util.tree_map(
        lambda s, sharding: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding),
        shapes,
        shardings,
    )
