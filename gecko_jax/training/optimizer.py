"""AdamW with warmup + decay and clipping; no weight decay on norms, biases or embeddings' LN."""

from __future__ import annotations

from typing import Any

import jax
import optax

from gecko_jax.training.config import TrainConfig


def learning_rate_schedule(config: TrainConfig) -> optax.Schedule:
    peak = config.learning_rate
    warmup = optax.linear_schedule(0.0, peak, max(config.warmup_steps, 1))
    decay_steps = max(config.total_steps - config.warmup_steps, 1)
    end = peak * config.end_learning_rate_fraction
    if config.schedule == "cosine":
        decay = optax.cosine_decay_schedule(
            peak, decay_steps, alpha=config.end_learning_rate_fraction
        )
    elif config.schedule == "linear":
        decay = optax.linear_schedule(peak, end, decay_steps)
    else:
        decay = optax.constant_schedule(peak)
    if config.warmup_steps <= 0:
        return decay
    return optax.join_schedules([warmup, decay], [config.warmup_steps])


def decay_mask(params: Any) -> Any:
    """True for matrices (kernels, embedding tables); False for vectors (norm scales, biases)."""
    return jax.tree_util.tree_map(lambda x: x.ndim > 1, params)


def make_optimizer(config: TrainConfig) -> optax.GradientTransformation:
    return optax.chain(
        optax.clip_by_global_norm(config.max_grad_norm),
        optax.adamw(
            learning_rate_schedule(config),
            b1=config.adam_b1,
            b2=config.adam_b2,
            eps=config.adam_eps,
            weight_decay=config.weight_decay,
            mask=decay_mask,
        ),
    )
