"""Hand-written backward passes: same values and gradients as autodiff, fewer saved bytes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gecko_jax.models import lean_grads

EPS = 1e-12


def plain_norm(x: jax.Array, scale: jax.Array, center: bool) -> jax.Array:
    """The formula the layers used before: float32 throughout, autodiff for the gradient."""
    x32 = jnp.asarray(x, jnp.float32)
    if center:
        mean = jnp.mean(x32, axis=-1, keepdims=True)
        var = jnp.mean(jnp.square(x32 - mean), axis=-1, keepdims=True)
        return (x32 - mean) * jax.lax.rsqrt(var + EPS) * scale
    return x32 * jax.lax.rsqrt(jnp.mean(jnp.square(x32), axis=-1, keepdims=True) + EPS) * scale


def lean_norm(x: jax.Array, scale: jax.Array, center: bool) -> jax.Array:
    return lean_grads.scaled_norm(x, scale, EPS, center)


def inputs(dtype: jnp.dtype, seed: int = 0) -> tuple[jax.Array, jax.Array, jax.Array]:
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.normal(0.5, 2.0, (3, 7, 48)), dtype)
    scale = jnp.asarray(rng.normal(1.0, 0.3, (48,)), jnp.float32)
    cotangent = jnp.asarray(rng.normal(size=(3, 7, 48)), jnp.float32)
    return x, scale, cotangent


def gradients(fn, x, scale, cotangent, center):
    _, vjp = jax.vjp(lambda a, b: fn(a, b, center), x, scale)
    return vjp(cotangent)


def saved_bytes(fn, *args) -> int:
    """Bytes autodiff keeps for the backward pass (the arrays its vjp closes over)."""
    _, vjp = jax.vjp(fn, *args)
    return sum(leaf.nbytes for leaf in jax.tree_util.tree_leaves(vjp) if hasattr(leaf, "nbytes"))


@pytest.mark.parametrize("center", [True, False], ids=["layernorm", "rmsnorm"])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_norm_forward_is_bitwise_the_plain_formula(center, dtype):
    x, scale, _ = inputs(dtype)
    np.testing.assert_array_equal(
        np.asarray(lean_norm(x, scale, center)), np.asarray(plain_norm(x, scale, center))
    )


@pytest.mark.parametrize("center", [True, False], ids=["layernorm", "rmsnorm"])
def test_norm_gradients_match_autodiff_float32(center):
    x, scale, cotangent = inputs(jnp.float32)
    ours = gradients(lean_norm, x, scale, cotangent, center)
    reference = gradients(plain_norm, x, scale, cotangent, center)
    for got, want in zip(ours, reference, strict=True):
        assert got.dtype == want.dtype
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("center", [True, False], ids=["layernorm", "rmsnorm"])
def test_norm_gradients_bf16_input_match_a_float32_reference(center):
    """bf16 in, bf16 input gradient out; accurate to bf16 rounding of the exact gradient."""
    x, scale, cotangent = inputs(jnp.bfloat16, seed=1)
    dx, dscale = gradients(lean_norm, x, scale, cotangent, center)
    want_dx, want_dscale = gradients(plain_norm, x.astype(jnp.float32), scale, cotangent, center)
    assert dx.dtype == jnp.bfloat16 and dscale.dtype == jnp.float32
    np.testing.assert_allclose(
        np.asarray(dx, np.float32), np.asarray(want_dx), rtol=1e-2, atol=1e-2
    )
    np.testing.assert_allclose(np.asarray(dscale), np.asarray(want_dscale), rtol=1e-5, atol=1e-5)


def test_norm_saves_only_the_bf16_input_and_row_statistics():
    x, scale, _ = inputs(jnp.bfloat16)
    rows = x.size // x.shape[-1]
    statistics = 2 * rows * 4 + scale.nbytes  # mean and 1/std per row, float32, and the scale
    assert saved_bytes(lambda a, b: lean_norm(a, b, True), x, scale) == x.nbytes + statistics
    # What autodiff of the plain formula keeps: float32 copies several times the input's size.
    assert saved_bytes(lambda a, b: plain_norm(a, b, True), x, scale) >= 4 * x.nbytes


@pytest.mark.parametrize("approximate", [False, True], ids=["erf", "tanh"])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_gelu_values_are_jax_nn_gelu(approximate, dtype):
    x, _, _ = inputs(dtype)
    np.testing.assert_array_equal(
        np.asarray(lean_grads.gelu(x, approximate)),
        np.asarray(jax.nn.gelu(x, approximate=approximate)),
    )


@pytest.mark.parametrize("approximate", [False, True], ids=["erf", "tanh"])
def test_gelu_gradient_matches_autodiff(approximate):
    x, _, cotangent = inputs(jnp.float32, seed=2)
    x = x * 2.0  # reach the tails, where the derivative dips below 0 and goes to 0 and 1
    (ours,) = jax.vjp(lambda a: lean_grads.gelu(a, approximate), x)[1](cotangent)
    (want,) = jax.vjp(lambda a: jax.nn.gelu(a, approximate=approximate), x)[1](cotangent)
    np.testing.assert_allclose(np.asarray(ours), np.asarray(want), rtol=1e-5, atol=1e-5)


def test_gelu_gradient_bf16_and_saved_bytes():
    x, _, cotangent = inputs(jnp.bfloat16, seed=3)
    (dx,) = jax.vjp(lambda a: lean_grads.gelu(a, False), x)[1](cotangent.astype(jnp.bfloat16))
    (want,) = jax.vjp(lambda a: jax.nn.gelu(a, approximate=False), x.astype(jnp.float32))[1](
        cotangent
    )
    assert dx.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(dx, np.float32), np.asarray(want), rtol=2e-2, atol=2e-2)
    assert saved_bytes(lambda a: lean_grads.gelu(a, False), x) == x.nbytes
    assert saved_bytes(lambda a: jax.nn.gelu(a, approximate=False), x) >= 3 * x.nbytes


def test_gradients_under_jit_and_sharding():
    """The custom rules compose with jit and a sharded batch (the trainer's setting)."""
    mesh = jax.make_mesh((len(jax.devices()),), ("data",))
    x, scale, _ = inputs(jnp.float32)
    x = jnp.tile(x, (len(jax.devices()), 1, 1)).reshape(-1, 7, 48)
    sharded = jax.device_put(
        x, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
    )

    def loss(a, b):
        return jnp.sum(lean_grads.gelu(lean_norm(a, b, True), False) ** 2)

    def reference(a, b):
        return jnp.sum(jax.nn.gelu(plain_norm(a, b, True), approximate=False) ** 2)

    got = jax.jit(jax.grad(loss, argnums=(0, 1)))(sharded, scale)
    want = jax.grad(reference, argnums=(0, 1))(x, scale)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-4)
