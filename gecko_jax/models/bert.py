"""BERT-family encoder (BERT, MiniLM, BGE, E5): post-LayerNorm blocks, learned positions.

Weights map one-to-one from Hugging Face ``BertModel`` safetensors; the mapping is here, next
to the module it fills, so a renamed parameter breaks loudly in one place.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gecko_jax.models.config import EncoderConfig
from gecko_jax.models.layers import (
    DenseGeneral,
    LayerNorm,
    MultiHeadAttention,
    activation,
    constrain,
    key_visibility,
    kv_lengths,
)
from gecko_jax.models.weights import TensorSource

_INIT = nn.initializers.normal(0.02)


class Embed(nn.Module):
    """A lookup table annotated with logical axes."""

    num_embeddings: int
    features: int
    axes: tuple[str, str]
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, ids: jax.Array) -> jax.Array:
        table = self.param(
            "embedding",
            nn.with_logical_partitioning(_INIT, self.axes),
            (self.num_embeddings, self.features),
            jnp.float32,
        )
        return jnp.take(jnp.asarray(table, self.dtype), ids, axis=0)


class BertEmbeddings(nn.Module):
    config: EncoderConfig
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, input_ids: jax.Array, position_ids: jax.Array | None = None) -> jax.Array:
        cfg = self.config
        length = input_ids.shape[1]
        if length > cfg.max_position_embeddings:
            raise ValueError(
                f"sequence length {length} exceeds max_position_embeddings "
                f"{cfg.max_position_embeddings}"
            )
        words = Embed(cfg.vocab_size, cfg.hidden_size, ("vocab", "embed"), self.dtype, name="word")
        positions = Embed(
            cfg.max_position_embeddings,
            cfg.hidden_size,
            ("position", "embed"),
            self.dtype,
            name="position",
        )
        token_types = Embed(
            cfg.type_vocab_size, cfg.hidden_size, (None, "embed"), self.dtype, name="token_type"
        )
        if position_ids is None:
            position_ids = jnp.arange(length)[None]
        x = words(input_ids) + positions(position_ids) + token_types(jnp.zeros((1, 1), jnp.int32))
        return LayerNorm(cfg.layer_norm_eps, self.dtype, name="layer_norm")(x)


class BertLayer(nn.Module):
    config: EncoderConfig
    dtype: jnp.dtype = jnp.float32
    attention_impl: str = "xla"

    @nn.compact
    def __call__(self, x: jax.Array, visible: jax.Array, lengths: jax.Array | None) -> jax.Array:
        cfg = self.config
        attended = MultiHeadAttention(
            cfg.num_heads,
            cfg.attention_head_dim,
            use_bias=True,
            dtype=self.dtype,
            kernel_init=_INIT,
            implementation=self.attention_impl,
            name="attention",
        )(x, visible, lengths)
        x = LayerNorm(cfg.layer_norm_eps, self.dtype, name="attention_norm")(x + attended)
        hidden = DenseGeneral(
            cfg.intermediate_size,
            ("embed", "mlp"),
            dtype=self.dtype,
            kernel_init=_INIT,
            name="mlp_in",
        )(x)
        hidden = constrain(activation(cfg.hidden_act)(hidden), ("batch", "length", "mlp"))
        out = DenseGeneral(
            cfg.hidden_size, ("mlp", "embed"), dtype=self.dtype, kernel_init=_INIT, name="mlp_out"
        )(hidden)
        x = LayerNorm(cfg.layer_norm_eps, self.dtype, name="mlp_norm")(x + out)
        return constrain(x, ("batch", "length", "embed"))


class BertEncoder(nn.Module):
    """Token ids and a padding mask in, contextual token vectors ``[batch, length, hidden]`` out.

    Packed rows (several texts per row) pass ``segment_ids`` (1, 2, ... per text, 0 for pad)
    and ``position_ids`` that restart at 0 for each text.
    """

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
        x = BertEmbeddings(self.config, self.dtype, name="embeddings")(input_ids, position_ids)
        x = constrain(x, ("batch", "length", "embed"))
        visible = key_visibility(attention_mask, segment_ids)
        lengths = kv_lengths(attention_mask, segment_ids)
        layer_cls = nn.remat(BertLayer) if self.remat else BertLayer
        for i in range(self.config.num_layers):
            x = layer_cls(self.config, self.dtype, self.attention_impl, name=f"layers_{i}")(
                x, visible, lengths
            )
        return x


def bert_config_from_hf(hf_config: dict[str, Any]) -> EncoderConfig:
    """EncoderConfig from a Hugging Face BERT ``config.json``."""
    model_type = hf_config.get("model_type", "bert")
    if model_type != "bert":
        raise ValueError(f"expected a BERT config (model_type 'bert'), got {model_type!r}")
    position_type = hf_config.get("position_embedding_type", "absolute")
    if position_type != "absolute":
        raise ValueError(f"only absolute position embeddings are supported, got {position_type!r}")
    return EncoderConfig(
        architecture="bert",
        vocab_size=hf_config["vocab_size"],
        hidden_size=hf_config["hidden_size"],
        num_layers=hf_config["num_hidden_layers"],
        num_heads=hf_config["num_attention_heads"],
        intermediate_size=hf_config["intermediate_size"],
        max_position_embeddings=hf_config.get("max_position_embeddings", 512),
        type_vocab_size=hf_config.get("type_vocab_size", 2),
        layer_norm_eps=hf_config.get("layer_norm_eps", 1e-12),
        hidden_act=hf_config.get("hidden_act", "gelu"),
        pad_token_id=hf_config.get("pad_token_id", 0),
    )


def bert_config_to_hf(config: EncoderConfig) -> dict[str, Any]:
    """A Hugging Face ``BertModel`` ``config.json`` that ``bert_config_from_hf`` reads back."""
    if config.architecture != "bert":
        raise ValueError(f"expected a BERT config, got architecture {config.architecture!r}")
    if config.attention_head_dim * config.num_heads != config.hidden_size:
        raise ValueError(
            f"Hugging Face BERT needs num_heads * head_dim == hidden_size, got "
            f"{config.num_heads} * {config.attention_head_dim} != {config.hidden_size}"
        )
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": config.vocab_size,
        "hidden_size": config.hidden_size,
        "num_hidden_layers": config.num_layers,
        "num_attention_heads": config.num_heads,
        "intermediate_size": config.intermediate_size,
        "max_position_embeddings": config.max_position_embeddings,
        "type_vocab_size": config.type_vocab_size,
        "layer_norm_eps": config.layer_norm_eps,
        "hidden_act": config.hidden_act,
        "pad_token_id": config.pad_token_id,
        "position_embedding_type": "absolute",
    }


BERT_KEY_PREFIXES = ("bert.", "model.", "0.auto_model.")


def _layer_norm(source: TensorSource, prefix: str, size: int) -> dict[str, np.ndarray]:
    # Old BERT checkpoints call the LayerNorm parameters gamma/beta.
    scale_key = f"{prefix}.weight" if f"{prefix}.weight" in source else f"{prefix}.gamma"
    bias_key = f"{prefix}.bias" if f"{prefix}.bias" in source else f"{prefix}.beta"
    return {"scale": source.get(scale_key, (size,)), "bias": source.get(bias_key, (size,))}


def bert_params_from_hf(source: TensorSource, config: EncoderConfig) -> dict[str, Any]:
    """Flax parameters of :class:`BertEncoder` from a Hugging Face ``BertModel`` checkpoint."""
    hidden, heads, head_dim = config.hidden_size, config.num_heads, config.attention_head_dim
    ff = config.intermediate_size

    def dense(key: str, n_in: int, n_out: int) -> dict[str, np.ndarray]:
        return {
            "kernel": source.get(f"{key}.weight", (n_in, n_out), transpose=True),
            "bias": source.get(f"{key}.bias", (n_out,)),
        }

    def qkv(key: str) -> dict[str, np.ndarray]:
        param = dense(key, hidden, heads * head_dim)
        return {
            "kernel": param["kernel"].reshape(hidden, heads, head_dim),
            "bias": param["bias"].reshape(heads, head_dim),
        }

    params: dict[str, Any] = {
        "embeddings": {
            "word": {
                "embedding": source.get(
                    "embeddings.word_embeddings.weight", (config.vocab_size, hidden)
                )
            },
            "position": {
                "embedding": source.get(
                    "embeddings.position_embeddings.weight",
                    (config.max_position_embeddings, hidden),
                )
            },
            "token_type": {
                "embedding": source.get(
                    "embeddings.token_type_embeddings.weight", (config.type_vocab_size, hidden)
                )
            },
            "layer_norm": _layer_norm(source, "embeddings.LayerNorm", hidden),
        }
    }
    for i in range(config.num_layers):
        layer = f"encoder.layer.{i}"
        out = dense(f"{layer}.attention.output.dense", heads * head_dim, hidden)
        params[f"layers_{i}"] = {
            "attention": {
                "query": qkv(f"{layer}.attention.self.query"),
                "key": qkv(f"{layer}.attention.self.key"),
                "value": qkv(f"{layer}.attention.self.value"),
                "out": {
                    "kernel": out["kernel"].reshape(heads, head_dim, hidden),
                    "bias": out["bias"],
                },
            },
            "attention_norm": _layer_norm(source, f"{layer}.attention.output.LayerNorm", hidden),
            "mlp_in": dense(f"{layer}.intermediate.dense", hidden, ff),
            "mlp_out": dense(f"{layer}.output.dense", ff, hidden),
            "mlp_norm": _layer_norm(source, f"{layer}.output.LayerNorm", hidden),
        }
    return params
