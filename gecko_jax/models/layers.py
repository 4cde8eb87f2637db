"""Building blocks shared by the encoder backbones, with logical axis names on every weight.

Parameters are created in float32 (``param_dtype``) and cast to the compute ``dtype`` inside
each layer, so bf16 training keeps fp32 master weights.
"""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from gecko_jax.models import lean_grads

Initializer = Callable[..., jax.Array]
# The score of a key a query must not see: exp() of it minus any real score is exactly 0.
MASKED_SCORE = jnp.finfo(jnp.float32).min / 2

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "gelu": lambda x: lean_grads.gelu(x, False),
    "gelu_new": lambda x: lean_grads.gelu(x, True),
    "gelu_pytorch_tanh": lambda x: lean_grads.gelu(x, True),
    "relu": jax.nn.relu,
    "silu": jax.nn.silu,
}


def activation(name: str) -> Callable[[jax.Array], jax.Array]:
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; known: {sorted(ACTIVATIONS)}") from None


def constrain(x: jax.Array, axes: tuple[str | None, ...]) -> jax.Array:
    """Name an activation's axes so the partitioner can shard it (no-op without a mesh)."""
    return nn.with_logical_constraint(x, axes)


class DenseGeneral(nn.Module):
    """``x @ kernel (+ bias)`` over the last ``contract_dims`` axes, kernel with logical axes."""

    features: int | tuple[int, ...]
    kernel_axes: tuple[str, ...]
    use_bias: bool = True
    contract_dims: int = 1
    dtype: jnp.dtype = jnp.float32
    kernel_init: Initializer = nn.initializers.normal(0.02)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        features = (self.features,) if isinstance(self.features, int) else tuple(self.features)
        kernel = self.param(
            "kernel",
            nn.with_logical_partitioning(self.kernel_init, self.kernel_axes),
            (*x.shape[x.ndim - self.contract_dims :], *features),
            jnp.float32,
        )
        kernel = jnp.asarray(kernel, self.dtype)
        x_axes = tuple(range(x.ndim - self.contract_dims, x.ndim))
        kernel_axes = tuple(range(self.contract_dims))
        y = jax.lax.dot_general(
            jnp.asarray(x, self.dtype), kernel, ((x_axes, kernel_axes), ((), ()))
        )
        if self.use_bias:
            bias = self.param(
                "bias",
                nn.with_logical_partitioning(
                    nn.initializers.zeros, self.kernel_axes[self.contract_dims :]
                ),
                features,
                jnp.float32,
            )
            y = y + jnp.asarray(bias, self.dtype)
        return y


class LayerNorm(nn.Module):
    """LayerNorm computed in float32 (numerically safe under bf16), result in ``dtype``; its
    backward pass keeps the input, not float32 intermediates (``lean_grads``)."""

    epsilon: float = 1e-12
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        features = x.shape[-1]
        scale = self.param(
            "scale", nn.with_logical_partitioning(nn.initializers.ones, ("embed",)), (features,)
        )
        bias = self.param(
            "bias", nn.with_logical_partitioning(nn.initializers.zeros, ("embed",)), (features,)
        )
        y = lean_grads.scaled_norm(x, scale, self.epsilon, True) + bias
        return jnp.asarray(y, self.dtype)


class RMSNorm(nn.Module):
    """T5 LayerNorm: scale only, no mean subtraction, computed in float32."""

    epsilon: float = 1e-6
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        scale = self.param(
            "scale", nn.with_logical_partitioning(nn.initializers.ones, ("embed",)), (x.shape[-1],)
        )
        y = lean_grads.scaled_norm(x, scale, self.epsilon, False)
        return jnp.asarray(y, self.dtype)


class MultiHeadAttention(nn.Module):
    """Self-attention under a boolean visibility mask, with an optional position bias.

    Masked scores are selected away rather than biased, and non-finite values are zeroed
    before the weighted sum: an additive mask keeps a NaN score, and a zero weight times a
    NaN value is NaN, so either would let one packed text's NaN reach its neighbours. A
    non-finite text still comes out non-finite through its own scores and residual stream.

    ``implementation="cudnn"`` runs fused attention through ``jax.nn.dot_product_attention``
    (GPU, bf16) when the batch is right-padded (``kv_lengths`` given); packed rows always take
    the XLA path, whose einsums work everywhere.
    """

    num_heads: int
    head_dim: int
    use_bias: bool
    scale: float | None = None  # None: 1/sqrt(head_dim); T5 uses 1.0
    dtype: jnp.dtype = jnp.float32
    kernel_init: Initializer = nn.initializers.normal(0.02)
    implementation: str = "xla"

    @nn.compact
    def __call__(
        self,
        x: jax.Array,
        visible: jax.Array,
        kv_lengths: jax.Array | None = None,
        position_bias: jax.Array | None = None,
    ) -> jax.Array:
        """x: [batch, length, embed]; ``visible`` (bool) and ``position_bias`` broadcast to
        [batch, heads, q_len, k_len]; ``kv_lengths`` [batch]: real tokens per row when rows
        are right-padded."""

        def project(name: str) -> jax.Array:
            y = DenseGeneral(
                (self.num_heads, self.head_dim),
                ("embed", "heads", "kv"),
                use_bias=self.use_bias,
                dtype=self.dtype,
                kernel_init=self.kernel_init,
                name=name,
            )(x)
            return constrain(y, ("batch", "length", "heads", "kv"))

        query, key, value = project("query"), project("key"), project("value")
        scale = self.scale if self.scale is not None else self.head_dim**-0.5
        if self.implementation != "xla" and kv_lengths is not None:
            out = jax.nn.dot_product_attention(
                query,
                key,
                value,
                bias=None if position_bias is None else position_bias.astype(self.dtype),
                scale=scale,
                query_seq_lengths=kv_lengths,
                key_value_seq_lengths=kv_lengths,
                implementation=self.implementation,
            )
        else:
            # Heads ahead of positions ([b, h, q, d]) before the products, the scale on the
            # queries and the softmax's division on the output: on CPU the products ran about
            # 2x faster in this layout, and the [b, h, q, k] scores are passed over once less.
            query, key, value = (jnp.swapaxes(t, 1, 2) for t in (query * scale, key, value))
            logits = jnp.einsum("bhqd,bhkd->bhqk", query, key)
            logits = jnp.asarray(logits, jnp.float32)
            if position_bias is not None:
                logits = logits + position_bias
            logits = jnp.where(visible, logits, MASKED_SCORE)
            shifted = jnp.exp(logits - jnp.max(logits, axis=-1, keepdims=True))
            total = jnp.sum(shifted, axis=-1, keepdims=True)  # >= 1: the maximum's own term
            value = jnp.where(jnp.isfinite(value), value, 0)
            out = jnp.einsum("bhqk,bhkd->bhqd", jnp.asarray(shifted, self.dtype), value)
            out = jnp.swapaxes(out / jnp.asarray(total, out.dtype), 1, 2)
        out = constrain(out, ("batch", "length", "heads", "kv"))
        out = DenseGeneral(
            x.shape[-1],
            ("heads", "kv", "embed"),
            use_bias=self.use_bias,
            contract_dims=2,
            dtype=self.dtype,
            kernel_init=self.kernel_init,
            name="out",
        )(out)
        return constrain(out, ("batch", "length", "embed"))


def segment_visibility(segment_ids: jax.Array) -> jax.Array:
    """Packed rows: [batch, length] segment ids (0 = pad) -> [batch, 1, length, length] bool.

    A token sees only tokens of its own segment, so several texts share one row without
    seeing each other.
    """
    same = (segment_ids[:, :, None] == segment_ids[:, None, :]) & (segment_ids[:, None, :] > 0)
    return same[:, None]


def key_visibility(attention_mask: jax.Array, segment_ids: jax.Array | None) -> jax.Array:
    """Which keys each query sees: padding (plain batches) or segments (packed rows)."""
    if segment_ids is None:
        return padding_visibility(attention_mask)
    return segment_visibility(segment_ids)


def kv_lengths(attention_mask: jax.Array, segment_ids: jax.Array | None) -> jax.Array | None:
    """Tokens per right-padded row (fused attention needs them); None for packed rows."""
    if segment_ids is not None:
        return None
    return jnp.sum(attention_mask > 0, axis=-1).astype(jnp.int32)


def padding_visibility(attention_mask: jax.Array) -> jax.Array:
    """[batch, length] 0/1 mask -> [batch, 1, 1, length] bool: every query sees real tokens."""
    return attention_mask[:, None, None, :] > 0
