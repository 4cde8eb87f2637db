"""The Gecko contrastive loss (paper Eq. 2 and Eq. 3) with Matryoshka prefixes.

For query i the softmax denominator holds every in-batch positive p_j+, the other in-batch
queries q_j (j != i, "same-tower" negatives) and only its own hard negative p_i-. Other
examples' hard negatives are deliberately *not* candidates: that is what Eq. 3 says, and a
loss that concatenates every p- into the candidate set is a different loss.

Similarities are cosines divided by the temperature. The paper does not report tau; the default
0.05 is the common choice for cosine-similarity contrastive training (E5, sentence-transformers'
MultipleNegativesRankingLoss with scale 20).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

DEFAULT_TEMPERATURE = 0.05
_MASKED = -1e9


def _normalize(x: jax.Array) -> jax.Array:
    x = jnp.asarray(x, jnp.float32)
    return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, axis=-1, keepdims=True), 1e-12))


def _same_id_off_diagonal(ids: jax.Array | None, size: int) -> jax.Array:
    """[B, B] True where j != i but the ids say the two items are the same text."""
    if ids is None:
        return jnp.zeros((size, size), bool)
    same = ids[:, None] == ids[None, :]
    return same & ~jnp.eye(size, dtype=bool)


def gecko_logits(
    query: jax.Array,
    positive: jax.Array,
    negative: jax.Array | None = None,
    *,
    temperature: float = DEFAULT_TEMPERATURE,
    same_tower: bool = True,
    negative_mask: jax.Array | None = None,
    positive_ids: jax.Array | None = None,
    query_ids: jax.Array | None = None,
    example_mask: jax.Array | None = None,
) -> jax.Array:
    """Candidate logits ``[B, 2B + 1]``: positives, same-tower queries, own hard negative.

    The target for row i is column i. Masked candidates get a large negative logit, so they
    drop out of the softmax. Columns that do not apply (no same-tower negatives, no hard
    negative) are present but masked, which keeps one shape for every setting.
    """
    batch = query.shape[0]
    q, p = _normalize(query), _normalize(positive)
    valid = jnp.ones((batch,), bool) if example_mask is None else jnp.asarray(example_mask, bool)
    valid_columns = valid[None, :]

    qp = q @ p.T
    qp_masked = _same_id_off_diagonal(positive_ids, batch) | ~valid_columns
    qp = jnp.where(qp_masked, _MASKED * temperature, qp)

    qq = q @ q.T
    qq_masked = jnp.eye(batch, dtype=bool) | _same_id_off_diagonal(query_ids, batch)
    qq_masked = qq_masked | ~valid_columns | (not same_tower)
    qq = jnp.where(qq_masked, _MASKED * temperature, qq)

    if negative is None:
        qn = jnp.full((batch, 1), _MASKED * temperature)
    else:
        qn = jnp.sum(q * _normalize(negative), axis=-1, keepdims=True)
        if negative_mask is not None:
            qn = jnp.where(jnp.asarray(negative_mask, bool)[:, None], qn, _MASKED * temperature)
    return jnp.concatenate([qp, qq, qn], axis=1) / temperature


def _single_dim_loss(logits: jax.Array, example_mask: jax.Array | None) -> jax.Array:
    batch = logits.shape[0]
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    per_example = -log_probs[jnp.arange(batch), jnp.arange(batch)]
    if example_mask is None:
        return jnp.mean(per_example)
    weights = jnp.asarray(example_mask, jnp.float32)
    return jnp.sum(per_example * weights) / jnp.maximum(jnp.sum(weights), 1.0)


def gecko_loss(
    query: jax.Array,
    positive: jax.Array,
    negative: jax.Array | None = None,
    *,
    temperature: float = DEFAULT_TEMPERATURE,
    same_tower: bool = True,
    mrl_dims: Sequence[int] | None = None,
    mrl_weights: Sequence[float] | None = None,
    negative_mask: jax.Array | None = None,
    positive_ids: jax.Array | None = None,
    query_ids: jax.Array | None = None,
    example_mask: jax.Array | None = None,
) -> jax.Array:
    """Mean Gecko loss over the batch, summed over Matryoshka prefix sizes.

    Args:
      query, positive, negative: ``[B, D]`` embeddings (any scale; cosine is taken here).
      temperature: tau in Eq. 3.
      same_tower: include the other queries q_j (j != i) as negatives. ``negative=None,
        same_tower=False`` is Eq. 2, the pre-finetuning loss.
      mrl_dims: prefix sizes; each prefix is re-normalised before the cosine. ``None`` is the
        full dimension only.
      mrl_weights: one weight per prefix size (default 1 each, as in the MRL paper).
      negative_mask: ``[B]``, False where an example has no hard negative.
      positive_ids, query_ids: ``[B]`` integer text ids (e.g. hashes); another in-batch item with
        the same id is not a negative (it is the same text).
      example_mask: ``[B]``, False for padding rows, which are neither queries nor candidates.
    """
    dims = list(mrl_dims) if mrl_dims else [query.shape[-1]]
    weights = list(mrl_weights) if mrl_weights is not None else [1.0] * len(dims)
    if len(weights) != len(dims):
        raise ValueError(f"got {len(weights)} mrl_weights for {len(dims)} mrl_dims")
    for dim in dims:
        if not 0 < dim <= query.shape[-1]:
            raise ValueError(f"Matryoshka dim {dim} is outside 1..{query.shape[-1]}")
    total = jnp.zeros((), jnp.float32)
    for dim, weight in zip(dims, weights, strict=True):
        logits = gecko_logits(
            query[..., :dim],
            positive[..., :dim],
            None if negative is None else negative[..., :dim],
            temperature=temperature,
            same_tower=same_tower,
            negative_mask=negative_mask,
            positive_ids=positive_ids,
            query_ids=query_ids,
            example_mask=example_mask,
        )
        total = total + weight * _single_dim_loss(logits, example_mask)
    return total


def positive_accuracy(logits: jax.Array, example_mask: jax.Array | None = None) -> jax.Array:
    """Fraction of queries whose own positive has the highest logit among all candidates."""
    hits = jnp.asarray(jnp.argmax(logits, axis=-1) == jnp.arange(logits.shape[0]), jnp.float32)
    if example_mask is None:
        return jnp.mean(hits)
    weights = jnp.asarray(example_mask, jnp.float32)
    return jnp.sum(hits * weights) / jnp.maximum(jnp.sum(weights), 1.0)
