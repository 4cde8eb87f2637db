"""T5 v1.1 / GTR encoder (the Gecko backbone) in Flax linen, and import of Hugging Face weights.

Layout follows Hugging Face ``T5EncoderModel`` with ``feed_forward_proj="gated-gelu"``: unscaled
shared embedding, pre-RMSNorm blocks, relative position bias computed once in the first layer and
reused by every layer, gated-GELU feed-forward, final RMSNorm. There is no dropout.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gecko_jax.models.config import EncoderConfig
from gecko_jax.models.layers import (
    DenseGeneral,
    MultiHeadAttention,
    RMSNorm,
    activation,
    constrain,
    key_visibility,
    kv_lengths,
)
from gecko_jax.models.weights import TensorSource

_DEFAULT_INIT = nn.initializers.normal(0.02)


def relative_position_bucket(
    relative_position: jax.Array, num_buckets: int, max_distance: int
) -> jax.Array:
    """Bidirectional T5 bucket of ``key_pos - query_pos``, bit-for-bit as Mesh TF / HF.

    Half the buckets are for positive offsets; in each half, small distances get one bucket
    each and larger ones share logarithmically wider buckets, saturating at ``max_distance``.
    The float32 arithmetic mirrors HF so bucket boundaries land on the same integers.
    """
    half = num_buckets // 2
    buckets = jnp.where(relative_position > 0, half, 0)
    distance = jnp.abs(relative_position)
    max_exact = half // 2
    # Clamp at 1 so log() stays finite where the small-distance branch is selected anyway.
    safe = jnp.maximum(distance, 1).astype(jnp.float32)
    log_ratio = jnp.log(safe / max_exact) / jnp.float32(math.log(max_distance / max_exact))
    large = max_exact + (log_ratio * (half - max_exact)).astype(jnp.int32)
    large = jnp.minimum(large, half - 1)
    return buckets + jnp.where(distance < max_exact, distance, large)


class T5MLP(nn.Module):
    """Gated feed-forward: ``wo(act(wi_0 x) * wi_1 x)``, no biases."""

    intermediate_size: int
    hidden_act: str
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        dense = functools.partial(
            DenseGeneral, use_bias=False, dtype=self.dtype, kernel_init=_DEFAULT_INIT
        )
        up_axes = ("embed", "mlp")
        gate = dense(self.intermediate_size, up_axes, name="wi_0")(x)
        linear = dense(self.intermediate_size, up_axes, name="wi_1")(x)
        hidden = constrain(activation(self.hidden_act)(gate) * linear, ("batch", "length", "mlp"))
        return dense(x.shape[-1], ("mlp", "embed"), name="wo")(hidden)


class T5Block(nn.Module):
    """One pre-norm encoder block; the first one also owns the relative position bias table.

    Returns the position bias so later blocks reuse it (as HF does) instead of owning copies.
    The visibility mask is kept separate from the [1, heads, L, L] position bias so no
    [batch, heads, L, L] tensor lives across layers; the two meet only in the logits.
    """

    config: EncoderConfig
    has_relative_bias: bool
    dtype: jnp.dtype = jnp.float32
    attention_impl: str = "xla"

    @nn.compact
    def __call__(
        self,
        x: jax.Array,
        visible: jax.Array,
        lengths: jax.Array | None,
        position_ids: jax.Array,
        position_bias: jax.Array | None = None,
    ) -> tuple[jax.Array, jax.Array]:
        cfg = self.config
        if self.has_relative_bias:
            position_bias = self._position_bias(position_ids)
        elif position_bias is None:
            raise ValueError("blocks after the first need the first block's position bias")

        norm_eps = cfg.layer_norm_eps
        h = RMSNorm(norm_eps, self.dtype, name="attention_norm")(x)
        h = MultiHeadAttention(
            cfg.num_heads,
            cfg.attention_head_dim,
            use_bias=False,
            scale=1.0,
            dtype=self.dtype,
            kernel_init=_DEFAULT_INIT,
            implementation=self.attention_impl,
            name="attention",
        )(h, visible, lengths, position_bias)
        x = constrain(x + h, ("batch", "length", "embed"))

        h = RMSNorm(norm_eps, self.dtype, name="mlp_norm")(x)
        h = T5MLP(cfg.intermediate_size, cfg.hidden_act, self.dtype, name="mlp")(h)
        x = constrain(x + h, ("batch", "length", "embed"))
        return x, position_bias

    def _position_bias(self, position_ids: jax.Array) -> jax.Array:
        """[rows, heads, length, length] float32 bias from the learned per-bucket table.

        ``position_ids`` is [rows, length]: one row ``arange(length)`` for plain batches, or
        per-row positions that restart for each text in a packed row.
        """
        cfg = self.config
        table = self.param(
            "relative_attention_bias",
            nn.with_logical_partitioning(_DEFAULT_INIT, ("relpos_buckets", "heads")),
            (cfg.relative_attention_num_buckets, cfg.num_heads),
            jnp.float32,
        )
        buckets = relative_position_bucket(
            position_ids[:, None, :] - position_ids[:, :, None],
            cfg.relative_attention_num_buckets,
            cfg.relative_attention_max_distance,
        )
        return jnp.transpose(table[buckets], (0, 3, 1, 2))


class T5Encoder(nn.Module):
    """T5 v1.1 / GTR encoder: token ids and 0/1 mask -> final hidden states [B, L, hidden]."""

    config: EncoderConfig
    dtype: jnp.dtype = jnp.float32
    remat: bool = False
    attention_impl: str = "xla"

    @nn.compact
    def __call__(
        self,
        input_ids: jax.Array,
        attention_mask: jax.Array,
        segment_ids: jax.Array | None = None,
        position_ids: jax.Array | None = None,
    ) -> jax.Array:
        """Packed rows pass ``segment_ids`` and per-text ``position_ids`` (see BertEncoder)."""
        cfg = self.config
        # T5 does not scale embeddings, so unit-variance init matches the pretrained residual scale.
        embedding = self.param(
            "embedding",
            nn.with_logical_partitioning(nn.initializers.normal(1.0), ("vocab", "embed")),
            (cfg.vocab_size, cfg.hidden_size),
            jnp.float32,
        )
        x = jnp.asarray(jnp.take(embedding, input_ids, axis=0), self.dtype)
        x = constrain(x, ("batch", "length", "embed"))

        block_cls = nn.remat(T5Block) if self.remat else T5Block
        visible = key_visibility(attention_mask, segment_ids)
        lengths = kv_lengths(attention_mask, segment_ids)
        if position_ids is None:
            position_ids = jnp.arange(input_ids.shape[1])[None]
        position_bias = None
        for i in range(cfg.num_layers):
            block = block_cls(cfg, i == 0, self.dtype, self.attention_impl, name=f"layers_{i}")
            x, position_bias = block(x, visible, lengths, position_ids, position_bias)
        x = RMSNorm(cfg.layer_norm_eps, self.dtype, name="final_norm")(x)
        return constrain(x, ("batch", "length", "embed"))


def t5_params_from_hf(source: TensorSource, config: EncoderConfig) -> dict[str, Any]:
    """Map a HF ``T5EncoderModel`` / ``T5Model`` checkpoint onto ``T5Encoder``'s param tree.

    Shapes are requested in the file's torch layout ([out, in] for Linear) so a mismatch error
    shows the shapes as they are stored; transposes and head reshapes happen afterwards.
    """
    d, heads, kv = config.hidden_size, config.num_heads, config.attention_head_dim
    inner, ff = heads * kv, config.intermediate_size

    def linear(key: str, out_features: int, in_features: int) -> np.ndarray:
        return source.get(key, (out_features, in_features)).T

    def scale(key: str) -> dict[str, np.ndarray]:
        return {"scale": source.get(key, (d,))}

    # T5Model ties encoder.embed_tokens to shared; either may be the one saved.
    embed_key = "shared.weight"
    if embed_key not in source and "encoder.embed_tokens.weight" in source:
        embed_key = "encoder.embed_tokens.weight"
    params: dict[str, Any] = {"embedding": source.get(embed_key, (config.vocab_size, d))}

    for i in range(config.num_layers):
        prefix = f"encoder.block.{i}.layer"
        attn = f"{prefix}.0.SelfAttention"
        mlp = f"{prefix}.1.DenseReluDense"
        layer: dict[str, Any] = {
            "attention_norm": scale(f"{prefix}.0.layer_norm.weight"),
            "attention": {
                name: {"kernel": linear(f"{attn}.{hf}.weight", inner, d).reshape(d, heads, kv)}
                for name, hf in (("query", "q"), ("key", "k"), ("value", "v"))
            },
            "mlp_norm": scale(f"{prefix}.1.layer_norm.weight"),
            "mlp": {
                "wi_0": {"kernel": linear(f"{mlp}.wi_0.weight", ff, d)},
                "wi_1": {"kernel": linear(f"{mlp}.wi_1.weight", ff, d)},
                "wo": {"kernel": linear(f"{mlp}.wo.weight", d, ff)},
            },
        }
        layer["attention"]["out"] = {
            "kernel": linear(f"{attn}.o.weight", d, inner).reshape(heads, kv, d)
        }
        if i == 0:
            layer["relative_attention_bias"] = source.get(
                f"{attn}.relative_attention_bias.weight",
                (config.relative_attention_num_buckets, heads),
            )
        params[f"layers_{i}"] = layer

    params["final_norm"] = scale("encoder.final_layer_norm.weight")
    return params


_REQUIRED_HF_KEYS = ("vocab_size", "d_model", "d_kv", "d_ff", "num_layers", "num_heads")


def t5_config_from_hf(hf_config: dict[str, Any]) -> EncoderConfig:
    """``EncoderConfig`` from a HF T5 ``config.json``; only the gated-GELU (v1.1/GTR) layout."""
    ff_proj = hf_config.get("feed_forward_proj", "relu")  # HF's default when the key is absent
    if ff_proj != "gated-gelu":
        raise ValueError(
            f"unsupported T5 feed_forward_proj {ff_proj!r}: only 'gated-gelu' "
            "(T5 v1.1 / GTR wi_0, wi_1, wo layout) is supported"
        )
    missing = [key for key in _REQUIRED_HF_KEYS if key not in hf_config]
    if missing:
        raise ValueError(f"T5 config lacks required keys {missing}")
    return EncoderConfig(
        architecture="t5",
        vocab_size=hf_config["vocab_size"],
        hidden_size=hf_config["d_model"],
        num_layers=hf_config["num_layers"],
        num_heads=hf_config["num_heads"],
        intermediate_size=hf_config["d_ff"],
        head_dim=hf_config["d_kv"],
        layer_norm_eps=hf_config.get("layer_norm_epsilon", 1e-6),
        hidden_act="gelu_new",
        relative_attention_num_buckets=hf_config.get("relative_attention_num_buckets", 32),
        relative_attention_max_distance=hf_config.get("relative_attention_max_distance", 128),
        pad_token_id=hf_config.get("pad_token_id", 0),
    )
