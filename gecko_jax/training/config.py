"""Everything a training run needs to know, as one plain dataclass (gin fills it at the edge)."""

from __future__ import annotations

import dataclasses
import os

from gecko_jax.core.config_types import check_field_types
from gecko_jax.core.partitioning import MeshConfig
from gecko_jax.models.config import DualEncoderConfig
from gecko_jax.training.losses import DEFAULT_TEMPERATURE


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    model: DualEncoderConfig
    total_steps: int
    global_batch_size: int
    # Optimiser: AdamW, warmup then linear/cosine decay, global-norm clipping.
    learning_rate: float = 2e-5
    warmup_steps: int = 0
    schedule: str = "linear"  # "linear", "cosine" or "constant" after warmup
    end_learning_rate_fraction: float = 0.0
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    adam_b1: float = 0.9
    adam_b2: float = 0.999
    adam_eps: float = 1e-6
    # Loss (paper Eq. 2/3).
    temperature: float = DEFAULT_TEMPERATURE
    same_tower: bool = True
    use_hard_negatives: bool = True
    mrl_weights: tuple[float, ...] | None = None
    # Memory: GradCache chunk size in examples (None: embed the whole batch at once).
    gradcache_chunk_size: int | None = None
    mesh: MeshConfig = dataclasses.field(default_factory=MeshConfig)
    seed: int = 0
    # Robustness and bookkeeping. A step is skipped (params and optimiser state kept) when its
    # loss or gradients are not finite, or when its update would take the parameter norm past
    # ``max_param_norm``. The run has diverged, and stops with TrainingDivergedError, after
    # ``max_consecutive_bad_steps`` skipped steps in a row, or when it ends with more than
    # ``max_skipped_fraction`` of its steps skipped.
    max_consecutive_bad_steps: int = 5
    max_skipped_fraction: float = 0.1
    max_param_norm: float = 1e6  # MiniLM-L6 has ~280; exploding runs pass 1e9 within a step
    checkpoint_every: int = 100
    keep_checkpoints: int = 3
    async_checkpointing: bool = True
    log_every: int = 1
    eval_every: int = 0
    init_from: str | os.PathLike | None = None
    # What the run records to be loadable as a model (``training.run_model``): the tokenizer
    # file (or model folder) its inputs were made with, and the max_length to encode with.
    # Both default to the init_from model's; the max_length then to ``model.max_length``.
    tokenizer: str | os.PathLike | None = None
    inference_max_length: int | None = None
    peak_flops_per_device: float | None = None

    def __post_init__(self) -> None:
        check_field_types(self)
        if self.schedule not in ("linear", "cosine", "constant"):
            raise ValueError(f"schedule must be linear, cosine or constant, got {self.schedule!r}")
        if self.total_steps < 1 or self.global_batch_size < 1:
            raise ValueError("total_steps and global_batch_size must be >= 1")
        chunk = self.gradcache_chunk_size
        if chunk is not None and (chunk < 1 or self.global_batch_size % chunk):
            raise ValueError(
                f"gradcache_chunk_size {chunk} must divide global_batch_size "
                f"{self.global_batch_size}"
            )
        if self.max_consecutive_bad_steps < 1 or not 0.0 <= self.max_skipped_fraction <= 1.0:
            raise ValueError(
                "max_consecutive_bad_steps must be >= 1, max_skipped_fraction in [0, 1]"
            )
        if not self.max_param_norm > 0:
            raise ValueError(f"max_param_norm must be > 0, got {self.max_param_norm}")
        if self.mrl_weights is not None and len(self.mrl_weights) != len(self.mrl_dims):
            raise ValueError(f"{len(self.mrl_weights)} mrl_weights for mrl_dims {self.mrl_dims}")

    @property
    def mrl_dims(self) -> tuple[int, ...]:
        return self.model.mrl_dims or (self.model.output_dim,)
