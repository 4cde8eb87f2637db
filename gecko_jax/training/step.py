"""The train step: embed with the shared tower, Gecko loss over the global batch, update.

Under ``jax.jit`` with the batch sharded over the mesh, ``q @ p.T`` inside the loss is computed
over the *global* batch (XLA inserts the all-gathers), so every device sees every in-batch
negative. GradCache keeps that property for batches larger than memory: it embeds in chunks
without gradients, takes the loss gradient w.r.t. the embeddings, then re-runs each chunk
with those cotangents. Microbatch gradient accumulation is deliberately absent: it would
shrink the set of negatives to the microbatch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from gecko_jax.models.dual_encoder import DualEncoder
from gecko_jax.training.config import TrainConfig
from gecko_jax.training.losses import gecko_logits, gecko_loss, positive_accuracy

Batch = dict[str, jax.Array]
Embeddings = tuple[jax.Array, jax.Array, jax.Array | None]


@struct.dataclass
class TrainState:
    """Everything that changes during training; ``step`` is also the data position."""

    step: jax.Array
    params: Any
    opt_state: Any
    consecutive_bad_steps: jax.Array
    skipped_steps: jax.Array


def embed_batch(params: Any, batch: Batch, config: TrainConfig) -> Embeddings:
    """Query, positive and (optionally) hard-negative embeddings from the shared tower.

    Towers of the same sequence length share one forward pass (positive and negative always,
    the query too when its length matches): fewer, larger kernels on accelerators. Rows are
    interleaved per example, ``[B, towers, L] -> [B * towers, L]``, so a batch-sharded input
    stays on its devices.
    """
    model = DualEncoder(config.model)
    towers = (
        ("query", "positive", "negative") if config.use_hard_negatives else ("query", "positive")
    )
    by_length: dict[int, list[str]] = {}
    for tower in towers:
        by_length.setdefault(batch[f"{tower}_input_ids"].shape[1], []).append(tower)
    embeddings: dict[str, jax.Array] = {}
    for group in by_length.values():
        ids, mask = (
            jnp.stack([batch[f"{tower}_{name}"] for tower in group], axis=1)
            for name in ("input_ids", "attention_mask")
        )
        rows, count, length = ids.shape
        out = model.apply(
            {"params": params},
            ids.reshape(rows * count, length),
            mask.reshape(rows * count, length),
        )
        out = out.reshape(rows, count, -1)
        embeddings.update({tower: out[:, i] for i, tower in enumerate(group)})
    return embeddings["query"], embeddings["positive"], embeddings.get("negative")


def loss_from_embeddings(
    query: jax.Array,
    positive: jax.Array,
    negative: jax.Array | None,
    batch: Batch,
    config: TrainConfig,
) -> tuple[jax.Array, jax.Array]:
    """The Gecko loss (summed over Matryoshka dims) and positive-in-candidates accuracy."""
    kwargs = dict(
        temperature=config.temperature,
        same_tower=config.same_tower,
        negative_mask=batch["has_negative"] > 0,
        positive_ids=batch["positive_text_hash"],
        query_ids=batch["query_text_hash"],
        example_mask=batch["example_mask"] > 0,
    )
    loss = gecko_loss(
        query,
        positive,
        negative,
        mrl_dims=config.mrl_dims,
        mrl_weights=config.mrl_weights,
        **kwargs,
    )
    logits = gecko_logits(query, positive, negative, **kwargs)
    return loss, positive_accuracy(logits, batch["example_mask"])


def plain_loss_and_grads(
    params: Any, batch: Batch, config: TrainConfig
) -> tuple[jax.Array, jax.Array, Any]:
    def loss_fn(p: Any) -> tuple[jax.Array, jax.Array]:
        return loss_from_embeddings(*embed_batch(p, batch, config), batch, config)

    (loss, accuracy), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    return loss, accuracy, grads


def _to_chunks(x: jax.Array, num_chunks: int, num_shards: int) -> jax.Array:
    """[B, ...] -> [num_chunks, B / num_chunks, ...], each chunk a slice of every batch shard.

    Taking every chunk from all shards keeps each device's rows on that device, so chunking
    moves no data between devices.
    """
    per_shard = x.shape[0] // num_shards
    rest = x.shape[1:]
    x = x.reshape(num_shards, num_chunks, per_shard // num_chunks, *rest)
    return jnp.swapaxes(x, 0, 1).reshape(num_chunks, x.shape[0] * x.shape[2], *rest)


def gradcache_loss_and_grads(
    params: Any, batch: Batch, config: TrainConfig, num_shards: int
) -> tuple[jax.Array, jax.Array, Any]:
    """Same loss and gradients as the plain step, with activations for one chunk at a time."""
    size = batch["query_input_ids"].shape[0]
    chunk = config.gradcache_chunk_size or size
    num_chunks = size // chunk
    if size % (num_chunks * num_shards):
        raise ValueError(
            f"batch {size} must split into {num_chunks} chunks on each of {num_shards} shards"
        )
    chunks = {name: _to_chunks(x, num_chunks, num_shards) for name, x in batch.items()}

    def embed_chunk(p: Any, chunk_batch: Batch) -> Embeddings:
        return embed_batch(p, chunk_batch, config)

    frozen = jax.lax.stop_gradient(params)
    embeddings = jax.lax.map(lambda c: embed_chunk(frozen, c), chunks)
    flat = jax.tree_util.tree_map(lambda e: e.reshape(size, *e.shape[2:]), embeddings)
    flat_batch = {name: x.reshape(size, *x.shape[2:]) for name, x in chunks.items()}

    def loss_of_embeddings(emb: Embeddings) -> tuple[jax.Array, jax.Array]:
        return loss_from_embeddings(*emb, flat_batch, config)

    (loss, accuracy), emb_grads = jax.value_and_grad(loss_of_embeddings, has_aux=True)(flat)
    cotangents = jax.tree_util.tree_map(
        lambda g: g.reshape(num_chunks, size // num_chunks, *g.shape[1:]), emb_grads
    )

    def accumulate(acc: Any, xs: tuple[Batch, Embeddings]) -> tuple[Any, None]:
        chunk_batch, chunk_cotangent = xs
        _, vjp = jax.vjp(lambda p: embed_chunk(p, chunk_batch), params)
        (grads,) = vjp(chunk_cotangent)
        return jax.tree_util.tree_map(jnp.add, acc, grads), None

    zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
    grads, _ = jax.lax.scan(accumulate, zeros, (chunks, cotangents))
    return loss, accuracy, grads


def make_train_step(
    config: TrainConfig,
    optimizer: optax.GradientTransformation,
    schedule: optax.Schedule,
    num_shards: int = 1,
) -> Callable[[TrainState, Batch], tuple[TrainState, dict[str, jax.Array]]]:
    """A pure (state, batch) -> (state, metrics) function, ready for ``jax.jit``.

    A step whose loss or gradients are not finite, or whose update would make the parameters
    non-finite or push their norm past ``config.max_param_norm``, leaves params and optimiser
    state untouched (the batch is still consumed) and counts as bad, so the state a skipped
    step keeps, and checkpoints, is always usable. The trainer stops after too many bad steps.
    """

    def train_step(state: TrainState, batch: Batch) -> tuple[TrainState, dict[str, jax.Array]]:
        if config.gradcache_chunk_size:
            loss, accuracy, grads = gradcache_loss_and_grads(
                state.params, batch, config, num_shards
            )
        else:
            loss, accuracy, grads = plain_loss_and_grads(state.params, batch, config)
        grad_norm = optax.tree.norm(grads)
        updates, new_opt_state = optimizer.update(grads, state.opt_state, state.params)
        new_params = optax.apply_updates(state.params, updates)
        proposed_norm = optax.tree.norm(new_params)
        # A NaN or infinite norm fails the comparison too.
        good = (
            jnp.isfinite(loss) & jnp.isfinite(grad_norm) & (proposed_norm <= config.max_param_norm)
        )

        def keep_if_good(new: Any, old: Any) -> Any:
            return jax.tree_util.tree_map(lambda a, b: jnp.where(good, a, b), new, old)

        bad = 1 - good.astype(jnp.int32)
        new_state = TrainState(
            step=state.step + 1,
            params=keep_if_good(new_params, state.params),
            opt_state=keep_if_good(new_opt_state, state.opt_state),
            consecutive_bad_steps=(state.consecutive_bad_steps + 1) * bad,
            skipped_steps=state.skipped_steps + bad,
        )
        metrics = {
            "loss": loss,
            "accuracy": accuracy,
            "grad_norm": grad_norm,
            "param_norm": optax.tree.norm(new_state.params),
            "proposed_param_norm": proposed_norm,
            "learning_rate": schedule(state.step),
            "finite": good,  # the step was applied (name kept for metrics.jsonl readers)
        }
        return new_state, metrics

    return train_step
