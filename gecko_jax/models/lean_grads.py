"""Normalisation and GELU with hand-written backward passes that save only their bf16 input.

Autodiff keeps whatever the forward pass computed on the way: for a float32 LayerNorm on bf16
activations that is a float32 copy of ``x - mean`` (twice the activation's bytes), and for the
exact GELU it is ``erfc``'s output beside the input. On a GPU train step these writes, and the
reads that come back in the backward pass, are memory-bound element-wise work (see the kernel
table in ``benchmarks/RESULTS.md``). Here the forward values are computed exactly as before,
but the backward pass keeps only the input and per-row float32 statistics, and recomputes the
rest in float32 inside its own fused element-wise pass.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

_SQRT_HALF = float(np.sqrt(0.5))
_INV_SQRT_2PI = float(1.0 / np.sqrt(2.0 * np.pi))
_SQRT_2_OVER_PI = float(np.sqrt(2.0 / np.pi))
_TANH_CUBIC = 0.044715


def _statistics(x32: jax.Array, epsilon: float, center: bool) -> tuple[jax.Array | None, jax.Array]:
    """Per-row mean (None without centring) and reciprocal standard deviation, float32."""
    mean = jnp.mean(x32, axis=-1, keepdims=True) if center else None
    centered = x32 if mean is None else x32 - mean
    return mean, jax.lax.rsqrt(jnp.mean(jnp.square(centered), axis=-1, keepdims=True) + epsilon)


def _normalized(x: jax.Array, mean: jax.Array | None, rstd: jax.Array) -> jax.Array:
    x32 = jnp.asarray(x, jnp.float32)
    return (x32 if mean is None else x32 - mean) * rstd


def _scaled_norm_fwd(
    x: jax.Array, scale: jax.Array, epsilon: float, center: bool
) -> tuple[jax.Array, tuple[jax.Array, ...]]:
    x32 = jnp.asarray(x, jnp.float32)
    mean, rstd = _statistics(x32, epsilon, center)
    return _normalized(x32, mean, rstd) * scale, (x, mean, rstd, scale)


@partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def scaled_norm(x: jax.Array, scale: jax.Array, epsilon: float, center: bool) -> jax.Array:
    """float32 ``normalise(x) * scale`` over the last axis: LayerNorm without its bias when
    ``center``, RMSNorm (T5) otherwise. Add a bias and cast outside; neither saves anything."""
    return _scaled_norm_fwd(x, scale, epsilon, center)[0]


def _scaled_norm_bwd(
    epsilon: float, center: bool, saved: tuple[jax.Array, ...], dy: jax.Array
) -> tuple[jax.Array, jax.Array]:
    del epsilon, center  # the saved mean is None without centring
    x, mean, rstd, scale = saved
    x_hat = _normalized(x, mean, rstd)
    dy32 = jnp.asarray(dy, jnp.float32)
    g = dy32 * scale
    projection = jnp.mean(g * x_hat, axis=-1, keepdims=True)
    dx = g - x_hat * projection
    if mean is not None:
        dx = dx - jnp.mean(g, axis=-1, keepdims=True)
    leading = tuple(range(dy.ndim - 1))
    dscale = jnp.sum(dy32 * x_hat, axis=leading)
    return jnp.asarray(dx * rstd, x.dtype), jnp.asarray(dscale, scale.dtype)


scaled_norm.defvjp(_scaled_norm_fwd, _scaled_norm_bwd)


def _gelu_derivative(x32: jax.Array, approximate: bool) -> jax.Array:
    if approximate:
        inner = _SQRT_2_OVER_PI * (x32 + _TANH_CUBIC * x32**3)
        t = jnp.tanh(inner)
        d_inner = _SQRT_2_OVER_PI * (1.0 + 3.0 * _TANH_CUBIC * jnp.square(x32))
        return 0.5 * (1.0 + t) + 0.5 * x32 * (1.0 - jnp.square(t)) * d_inner
    cdf = 0.5 * jax.lax.erfc(-x32 * _SQRT_HALF)
    return cdf + x32 * _INV_SQRT_2PI * jnp.exp(-0.5 * jnp.square(x32))


@partial(jax.custom_vjp, nondiff_argnums=(1,))
def gelu(x: jax.Array, approximate: bool) -> jax.Array:
    """``jax.nn.gelu`` with the same values; its backward pass keeps only ``x``."""
    return jax.nn.gelu(x, approximate=approximate)


def _gelu_fwd(x: jax.Array, approximate: bool) -> tuple[jax.Array, jax.Array]:
    return jax.nn.gelu(x, approximate=approximate), x


def _gelu_bwd(approximate: bool, x: jax.Array, dy: jax.Array) -> tuple[jax.Array]:
    x32 = jnp.asarray(x, jnp.float32)
    dx = jnp.asarray(dy, jnp.float32) * _gelu_derivative(x32, approximate)
    return (jnp.asarray(dx, x.dtype),)


gelu.defvjp(_gelu_fwd, _gelu_bwd)
