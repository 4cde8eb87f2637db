"""The Gecko dual encoder: one shared tower, mean pooling, optional projection, L2 norm.

Mean pooling covers every non-pad token, task-prefix tokens included (paper Eq. 1), so the
same module encodes queries (with their ``task: ... | query: ...`` prefix) and documents.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from gecko_jax.models.architectures import architecture
from gecko_jax.models.config import DualEncoderConfig
from gecko_jax.models.layers import DenseGeneral


def mean_pool(hidden: jax.Array, attention_mask: jax.Array) -> jax.Array:
    """Average of token vectors over non-pad positions, in float32."""
    mask = jnp.asarray(attention_mask, jnp.float32)[..., None]
    summed = jnp.sum(jnp.asarray(hidden, jnp.float32) * mask, axis=-2)
    return summed / jnp.maximum(jnp.sum(mask, axis=-2), 1.0)


def segment_pool(
    hidden: jax.Array, segment_ids: jax.Array, max_segments: int, first_token_only: bool = False
) -> jax.Array:
    """Per-text pooling of packed rows: [rows, length, D] -> [rows, max_segments, D] float32.

    Segment s of a row averages the tokens whose segment id is s + 1 (or takes its first
    token for CLS pooling). Unused segment slots come out as zeros. A text with a non-finite
    token comes out NaN, its neighbours untouched: a 0/1-weighted sum over the whole row
    would carry the NaN into every text (0 * NaN is NaN).
    """
    member = segment_ids[..., None] == jnp.arange(1, max_segments + 1)
    if first_token_only:
        first = jnp.cumsum(member, axis=1) == 1
        member = member & first
    weights = jnp.asarray(member, jnp.float32)
    hidden = jnp.asarray(hidden, jnp.float32)
    finite = jnp.isfinite(hidden)
    summed = jnp.einsum("rls,rld->rsd", weights, jnp.where(finite, hidden, 0.0))
    broken = jnp.einsum("rls,rl->rs", weights, jnp.any(~finite, axis=-1).astype(jnp.float32))
    summed = jnp.where(broken[..., None] > 0, jnp.nan, summed)
    return summed / jnp.maximum(jnp.sum(weights, axis=1)[..., None], 1.0)


def l2_normalize(x: jax.Array) -> jax.Array:
    x = jnp.asarray(x, jnp.float32)
    return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, axis=-1, keepdims=True), 1e-24))


def matryoshka(embeddings: jax.Array, dim: int) -> jax.Array:
    """The first ``dim`` coordinates, re-normalised: a Matryoshka embedding of that size."""
    if not 0 < dim <= embeddings.shape[-1]:
        raise ValueError(f"Matryoshka dim {dim} is outside 1..{embeddings.shape[-1]}")
    return l2_normalize(embeddings[..., :dim])


class DualEncoder(nn.Module):
    """Token ids + mask -> unit-norm float32 embeddings ``[batch, output_dim]``.

    With ``segment_ids`` (packed rows, several texts per row) the output is
    ``[rows, max_segments, output_dim]``, one embedding per text slot.
    """

    config: DualEncoderConfig

    @nn.compact
    def __call__(
        self,
        input_ids: jax.Array,
        attention_mask: jax.Array,
        segment_ids: jax.Array | None = None,
        position_ids: jax.Array | None = None,
        max_segments: int = 0,
    ) -> jax.Array:
        cfg = self.config
        dtype = jnp.dtype(cfg.dtype)
        backbone = architecture(cfg.encoder.architecture).module(
            cfg.encoder,
            dtype=dtype,
            remat=cfg.remat,
            attention_impl=cfg.attention_impl,
            name="backbone",
        )
        hidden = backbone(input_ids, attention_mask, segment_ids, position_ids)
        if segment_ids is not None:
            if max_segments < 1:
                raise ValueError("packed input needs max_segments >= 1")
            pooled = segment_pool(hidden, segment_ids, max_segments, cfg.pooling == "cls")
        elif cfg.pooling == "cls":
            pooled = jnp.asarray(hidden[:, 0], jnp.float32)
        else:
            pooled = mean_pool(hidden, attention_mask)
        if cfg.projection_dim:
            pooled = DenseGeneral(
                cfg.projection_dim,
                ("embed", "proj"),
                use_bias=cfg.projection_bias,
                dtype=jnp.float32,
                name="projection",
            )(pooled)
            if cfg.projection_activation == "tanh":
                pooled = jnp.tanh(pooled)
        return l2_normalize(pooled)
