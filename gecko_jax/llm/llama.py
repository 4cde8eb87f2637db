"""A Llama-architecture decoder in Flax linen, with an explicit KV cache.

RMSNorm, rotary position embeddings (Hugging Face's rotate-half layout), grouped-query attention
and a SwiGLU MLP. Layers are unrolled (``layers_0`` ...), not ``nn.scan``-ed: on CPU a scanned
decode step ran 3-4x slower, as XLA copies each layer's slice of the stacked weights and cache
every step. Every parameter and the main activations carry logical axis names (``vocab``,
``embed``, ``mlp``, ``heads``, ``kv_heads``, ``kv``), which :mod:`gecko_jax.core.partitioning` maps
onto a device mesh.

One call signature serves prefill, decoding and scoring: ``tokens`` ``[B, T]`` are written into the
cache at slot ``index`` and attend to every earlier valid slot. Scoring passes a fresh cache of
length ``T``; generation a cache of prompt plus new tokens.

With a static ``index`` (prefill, scoring), queries attend in chunks of at least 64, each over the
slots up to its last query only: on CPU this ran prefill attention about 4x faster than one
product over every slot, from the skipped causal half and from logits small enough to stay in
cache. A decode step (a traced ``index``) attends over the whole cache at once.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gecko_jax.models.layers import DenseGeneral, RMSNorm, constrain
from gecko_jax.models.weights import TensorSource, WeightImportError


@dataclasses.dataclass(frozen=True)
class LlamaConfig:
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-5
    tie_embeddings: bool = False
    max_position_embeddings: int = 2048

    @classmethod
    def from_hf(cls, config: Mapping[str, Any]) -> LlamaConfig:
        """From a Hugging Face ``config.json`` of ``model_type`` llama."""
        if config.get("model_type") != "llama":
            raise ValueError(
                f"expected a llama config, got model_type={config.get('model_type')!r}"
            )
        rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
        if rope.get("rope_type", rope.get("type", "default")) not in ("default", None):
            raise NotImplementedError(f"RoPE scaling {rope} is not supported")
        heads = config["num_attention_heads"]
        return cls(
            vocab_size=config["vocab_size"],
            hidden_size=config["hidden_size"],
            intermediate_size=config["intermediate_size"],
            num_layers=config["num_hidden_layers"],
            num_heads=heads,
            num_kv_heads=config.get("num_key_value_heads") or heads,
            head_dim=config.get("head_dim") or config["hidden_size"] // heads,
            rope_theta=float(rope.get("rope_theta", config.get("rope_theta", 10000.0))),
            rms_norm_eps=float(config.get("rms_norm_eps", 1e-5)),
            tie_embeddings=bool(config.get("tie_word_embeddings", False)),
            max_position_embeddings=int(config.get("max_position_embeddings", 2048)),
        )


class KVCache(NamedTuple):
    """Keys and values per layer, each ``[batch, kv_heads, slots, head_dim]``."""

    k: tuple[jax.Array, ...]
    v: tuple[jax.Array, ...]

    @classmethod
    def zeros(cls, config: LlamaConfig, batch: int, slots: int, dtype: Any) -> KVCache:
        shape = (batch, config.num_kv_heads, slots, config.head_dim)
        layers = range(config.num_layers)
        return cls(
            tuple(jnp.zeros(shape, dtype) for _ in layers),
            tuple(jnp.zeros(shape, dtype) for _ in layers),
        )


def rotary_tables(positions: jax.Array, head_dim: int, theta: float) -> tuple[jax.Array, jax.Array]:
    """cos and sin ``[B, T, 1, D]`` for ``positions`` ``[B, T]``, computed once per forward."""
    half = head_dim // 2
    inv_freq = 1.0 / theta ** (jnp.arange(0, half, dtype=jnp.float32) * 2 / head_dim)
    angles = positions.astype(jnp.float32)[..., None] * inv_freq  # [B, T, D/2]
    angles = jnp.concatenate([angles, angles], axis=-1)[:, :, None, :]
    return jnp.cos(angles), jnp.sin(angles)


def rotary(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
    """Rotate ``x`` ``[B, T, heads, D]`` in Hugging Face's rotate-half layout."""
    half = x.shape[-1] // 2
    x32 = x.astype(jnp.float32)
    rotated = jnp.concatenate([-x32[..., half:], x32[..., :half]], axis=-1)
    return (x32 * cos + rotated * sin).astype(x.dtype)


# Query chunks: at least this long, and at most MAX_CHUNKS of them (compile time grows with each).
QUERY_CHUNK, MAX_CHUNKS = 64, 8


class Span(NamedTuple):
    """Queries ``start:stop`` of a forward pass attend to cache slots ``0:slots``."""

    start: int
    stop: int
    slots: int


def attention_spans(index: int | jax.Array, length: int, slots: int) -> tuple[Span, ...]:
    """Query chunks and the slots each can see: every slot for a traced ``index``."""
    if not isinstance(index, int):
        return (Span(0, length, slots),)
    chunk = max(QUERY_CHUNK, -(-length // MAX_CHUNKS // QUERY_CHUNK) * QUERY_CHUNK)
    return tuple(
        Span(start, min(start + chunk, length), index + min(start + chunk, length))
        for start in range(0, length, chunk)
    )


def attention_bias(key_mask: jax.Array, index: int | jax.Array, length: int) -> jax.Array:
    """Additive ``[B, 1, 1, T, S]`` bias: query ``t`` (at slot ``index + t``) sees valid slots
    up to its own."""
    slots = jnp.arange(key_mask.shape[1])
    causal = slots[None, :] <= (index + jnp.arange(length))[:, None]  # [T, S]
    visible = causal[None] & (key_mask[:, None, :] > 0)  # [B, T, S]
    return jnp.where(visible, 0.0, jnp.finfo(jnp.float32).min)[:, None, None]


def attend(
    q: jax.Array,
    keys: jax.Array,
    values: jax.Array,
    bias: jax.Array,
    shared: tuple[jax.Array, jax.Array] | None = None,
) -> jax.Array:
    """Softmax attention of ``q`` ``[B, T, kv_heads, groups, D]`` over ``[B, kv_heads, S, D]``.

    A kv head's queries form one ``[groups * T, D]`` matrix, so both products are plain batched
    matmuls; rows are normalised after the value product, on D columns instead of S.
    ``shared``: keys and values ``[1, kv_heads, C, D]`` of a prefix every row sees whole, in
    one softmax with the row's own slots (two blocks under one running maximum, never joined).
    They are read once for the batch, not once per row: in a decode step after a long few-shot
    prefix, copies per row would outweigh the weights.
    """
    batch, length, kv_heads, groups, dim = q.shape
    q = q.transpose(0, 2, 3, 1, 4).reshape(batch, kv_heads, groups * length, dim)

    def logits(spec: str, k: jax.Array) -> jax.Array:
        out = jnp.einsum(spec, q, k.astype(q.dtype))
        out = out.reshape(batch, kv_heads, groups, length, k.shape[-2]).astype(jnp.float32)
        return out * dim**-0.5

    def weighted(spec: str, weights: jax.Array, v: jax.Array) -> jax.Array:
        flat = weights.reshape(batch, kv_heads, groups * length, -1).astype(q.dtype)
        return jnp.einsum(spec, flat, v.astype(q.dtype))

    own = logits("bkqd,bksd->bkqs", keys) + bias
    top = own.max(axis=-1, keepdims=True)
    if shared is not None:
        common = logits("bkqd,ksd->bkqs", shared[0][0])
        top = jnp.maximum(top, common.max(axis=-1, keepdims=True))
    weights = jnp.exp(own - top)
    total, out = weights.sum(-1), weighted("bkqs,bksd->bkqd", weights, values)
    if shared is not None:
        common_weights = jnp.exp(common - top)
        total += common_weights.sum(-1)
        out += weighted("bkqs,ksd->bkqd", common_weights, shared[1][0])
    out = out.reshape(batch, kv_heads, groups, length, dim) / total[..., None]
    return out.transpose(0, 3, 1, 2, 4).astype(q.dtype)


class Attention(nn.Module):
    """Grouped-query attention over a cache laid out ``[B, kv_heads, slots, D]``."""

    config: LlamaConfig
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(
        self,
        x: jax.Array,
        rope: tuple[jax.Array, jax.Array],
        spans: tuple[tuple[Span, jax.Array], ...],
        index: int | jax.Array,
        cache_k: jax.Array,
        cache_v: jax.Array,
        shared: tuple[jax.Array, jax.Array] | None = None,
    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        """``spans``: the query chunks with their attention biases; ``shared``: the keys and
        values of a prefix before every row (see :func:`attend`)."""
        c = self.config

        def project(heads: int, axis: str, name: str) -> jax.Array:
            y = DenseGeneral(
                (heads, c.head_dim), ("embed", axis, "kv"), False, dtype=self.dtype, name=name
            )(x)
            return constrain(y, ("batch", "length", axis, "kv"))

        def write(cache: jax.Array, new: jax.Array) -> jax.Array:
            zero = jnp.zeros((), jnp.int32)
            new = jnp.swapaxes(new, 1, 2).astype(cache.dtype)  # [B, kv_heads, T, D]
            cache = jax.lax.dynamic_update_slice(cache, new, (zero, zero, index, zero))
            return constrain(cache, ("batch", "kv_heads", "length", "kv"))

        q = rotary(project(c.num_heads, "heads", "q_proj"), *rope)
        cache_k = write(cache_k, rotary(project(c.num_kv_heads, "kv_heads", "k_proj"), *rope))
        cache_v = write(cache_v, project(c.num_kv_heads, "kv_heads", "v_proj"))

        batch, length = x.shape[:2]
        q = q.reshape(batch, length, c.num_kv_heads, c.num_heads // c.num_kv_heads, c.head_dim)
        out = jnp.concatenate(
            [
                attend(q[:, a:b], cache_k[:, :, :s], cache_v[:, :, :s], bias, shared)
                for (a, b, s), bias in spans
            ],
            axis=1,
        )
        out = out.reshape(batch, length, c.num_heads, c.head_dim)
        out = constrain(out, ("batch", "length", "heads", "kv"))
        out = DenseGeneral(
            c.hidden_size, ("heads", "kv", "embed"), False, 2, dtype=self.dtype, name="o_proj"
        )(out)
        return out, cache_k, cache_v


class MLP(nn.Module):
    config: LlamaConfig
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c = self.config

        def dense(features: int, axes: tuple[str, str], name: str) -> DenseGeneral:
            return DenseGeneral(features, axes, False, dtype=self.dtype, name=name)

        gate = dense(c.intermediate_size, ("embed", "mlp"), "gate_proj")(x)
        up = dense(c.intermediate_size, ("embed", "mlp"), "up_proj")(x)
        hidden = constrain(jax.nn.silu(gate) * up, ("batch", "length", "mlp"))
        return dense(c.hidden_size, ("mlp", "embed"), "down_proj")(hidden)


class DecoderLayer(nn.Module):
    config: LlamaConfig
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(
        self,
        x: jax.Array,
        rope: tuple[jax.Array, jax.Array],
        spans: tuple[tuple[Span, jax.Array], ...],
        index: int | jax.Array,
        cache_k: jax.Array,
        cache_v: jax.Array,
        shared: tuple[jax.Array, jax.Array] | None = None,
    ) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
        eps = self.config.rms_norm_eps
        attended, cache_k, cache_v = Attention(self.config, self.dtype, name="self_attn")(
            RMSNorm(eps, self.dtype, name="input_layernorm")(x),
            rope,
            spans,
            index,
            cache_k,
            cache_v,
            shared,
        )
        x = x + attended
        x = x + MLP(self.config, self.dtype, name="mlp")(
            RMSNorm(eps, self.dtype, name="post_attention_layernorm")(x)
        )
        return constrain(x, ("batch", "length", "embed")), (cache_k, cache_v)


class Llama(nn.Module):
    """The decoder: ``__call__`` gives final hidden states and the cache, ``logits`` the head."""

    config: LlamaConfig
    dtype: Any = jnp.float32

    def setup(self) -> None:
        c = self.config
        self.embed_tokens = nn.Embed(
            c.vocab_size,
            c.hidden_size,
            embedding_init=nn.with_logical_partitioning(
                nn.initializers.normal(0.02), ("vocab", "embed")
            ),
            name="embed_tokens",
        )
        self.layers = [DecoderLayer(c, self.dtype, name=f"layers_{i}") for i in range(c.num_layers)]
        self.norm = RMSNorm(c.rms_norm_eps, self.dtype, name="norm")
        if not c.tie_embeddings:
            self.lm_head = DenseGeneral(
                c.vocab_size, ("embed", "vocab"), False, dtype=self.dtype, name="lm_head"
            )

    def __call__(
        self,
        tokens: jax.Array,
        positions: jax.Array,
        key_mask: jax.Array,
        cache: KVCache,
        index: int | jax.Array,
        prefix: KVCache | None = None,
    ) -> tuple[jax.Array, KVCache]:
        """tokens, positions: ``[B, T]``; key_mask: ``[B, S]`` (0 = padding slot); index: the
        first slot written (an ``int`` where it is static, which lets attention skip slots);
        prefix: a cache ``[1, kv_heads, C, D]`` every row attends to in full before its own
        slots (a prefix shared by the batch, computed once)."""
        x = jnp.asarray(self.embed_tokens(tokens), self.dtype)
        x = constrain(x, ("batch", "length", "embed"))
        index = index if isinstance(index, int) else jnp.asarray(index, jnp.int32)
        rope = rotary_tables(positions, self.config.head_dim, self.config.rope_theta)
        spans = tuple(
            (s, attention_bias(key_mask[:, : s.slots], index + s.start, s.stop - s.start))
            for s in attention_spans(index, tokens.shape[1], key_mask.shape[1])
        )
        keys, values = [], []
        shared = zip(*prefix, strict=True) if prefix is not None else [None] * len(self.layers)
        for layer, cache_k, cache_v, common in zip(self.layers, *cache, shared, strict=True):
            x, (cache_k, cache_v) = layer(x, rope, spans, index, cache_k, cache_v, common)
            keys.append(cache_k)
            values.append(cache_v)
        return self.norm(x), KVCache(tuple(keys), tuple(values))

    def logits(self, hidden: jax.Array) -> jax.Array:
        """Next-token logits (float32) from final hidden states."""
        if self.config.tie_embeddings:
            out = self.embed_tokens.attend(jnp.asarray(hidden, self.dtype))
        else:
            out = self.lm_head(hidden)
        return constrain(out.astype(jnp.float32), ("batch", "length", "vocab"))


def abstract_params(config: LlamaConfig) -> Any:
    """Parameter shapes boxed with their logical axis names (``nn.Partitioned``); no memory."""

    def forward(model: Llama, *args: Any) -> jax.Array:
        return model.logits(model(*args)[0])  # both methods, or an untied head is missed

    def init() -> Any:
        one = jnp.zeros((1, 1), jnp.int32)
        cache = KVCache.zeros(config, 1, 1, jnp.float32)
        args = (one, one, one + 1, cache, 0)
        return Llama(config).init(jax.random.key(0), *args, method=forward)["params"]

    return jax.eval_shape(init)


def params_from_hf(tensors: TensorSource, config: LlamaConfig) -> dict[str, Any]:
    """Hugging Face ``LlamaForCausalLM`` tensors (``[out, in]`` Linear weights) -> Flax params."""
    c = config
    e, h, kv, d = c.hidden_size, c.num_heads, c.num_kv_heads, c.head_dim

    def layer(i: int) -> dict[str, Any]:
        p = f"model.layers.{i}."

        def kernel(key: str, fan_in: int, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
            fan_out = int(np.prod(shape)) // fan_in
            return {
                "kernel": tensors.get(p + key, (fan_in, fan_out), transpose=True).reshape(shape)
            }

        return {
            "input_layernorm": {"scale": tensors.get(p + "input_layernorm.weight", (e,))},
            "post_attention_layernorm": {
                "scale": tensors.get(p + "post_attention_layernorm.weight", (e,))
            },
            "self_attn": {
                "q_proj": kernel("self_attn.q_proj.weight", e, (e, h, d)),
                "k_proj": kernel("self_attn.k_proj.weight", e, (e, kv, d)),
                "v_proj": kernel("self_attn.v_proj.weight", e, (e, kv, d)),
                "o_proj": kernel("self_attn.o_proj.weight", h * d, (h, d, e)),
            },
            "mlp": {
                "gate_proj": kernel("mlp.gate_proj.weight", e, (e, c.intermediate_size)),
                "up_proj": kernel("mlp.up_proj.weight", e, (e, c.intermediate_size)),
                "down_proj": kernel(
                    "mlp.down_proj.weight", c.intermediate_size, (c.intermediate_size, e)
                ),
            },
        }

    params: dict[str, Any] = {f"layers_{i}": layer(i) for i in range(c.num_layers)}
    params |= {
        "embed_tokens": {"embedding": tensors.get("model.embed_tokens.weight", (c.vocab_size, e))},
        "norm": {"scale": tensors.get("model.norm.weight", (e,))},
    }
    if not c.tie_embeddings:
        params["lm_head"] = {
            "kernel": tensors.get("lm_head.weight", (c.vocab_size, e), transpose=True)
        }
    unused = [k for k in tensors.unused() if not k.endswith("rotary_emb.inv_freq")]
    if unused and not (c.tie_embeddings and unused == ["lm_head.weight"]):
        raise WeightImportError(f"unused tensors in {tensors.path}: {unused[:8]}")
    return params


def load_hf_checkpoint(folder: str | Path) -> tuple[LlamaConfig, dict[str, Any]]:
    """``config.json`` + ``model.safetensors`` (or a sharded index) from a Hugging Face folder."""
    from safetensors.numpy import load_file

    folder = Path(folder)
    config = LlamaConfig.from_hf(json.loads((folder / "config.json").read_text("utf-8")))
    index = folder / "model.safetensors.index.json"
    files = (
        sorted(set(json.loads(index.read_text("utf-8"))["weight_map"].values()))
        if index.exists()
        else ["model.safetensors"]
    )
    tensors: dict[str, np.ndarray] = {}
    for name in files:
        tensors.update(load_file(str(folder / name)))
    return config, params_from_hf(TensorSource(tensors, str(folder)), config)
