"""Model configurations: plain dataclasses, serialisable to JSON, no gin.

Logical axis names used on every parameter and activation (the trainer maps them to mesh axes):
``vocab``, ``embed`` (model width), ``mlp`` (feed-forward width), ``heads``, ``kv`` (head dim),
``position``, ``relpos_buckets``, ``batch``, ``length``, ``proj`` (output projection).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from gecko_jax.text.formats import DEFAULT_TEXT_FORMAT, check_text_format

ARCHITECTURES = ("bert", "t5")
# Gecko pools with the mean over all non-pad tokens (Eq. 1); "cls" exists only so
# CLS-pooled checkpoints such as BGE can be loaded and compared faithfully.
POOLING_MODES = ("mean", "cls")
# Applied after the projection; "tanh" exists so checkpoints with a sentence-transformers Dense
# module (LaBSE) embed as their authors intended.
PROJECTION_ACTIVATIONS = ("identity", "tanh")


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
    """Shape and numerics of one transformer encoder backbone."""

    architecture: str
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    head_dim: int | None = None
    # BERT family: learned absolute positions, token types, post-LayerNorm.
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    hidden_act: str = "gelu"
    # T5 family: relative position buckets, RMSNorm, gated GELU.
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    pad_token_id: int = 0

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ValueError(
                f"unknown architecture {self.architecture!r}; expected one of {ARCHITECTURES}"
            )
        if self.head_dim is None and self.hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}"
            )

    @property
    def attention_head_dim(self) -> int:
        return self.head_dim or self.hidden_size // self.num_heads

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EncoderConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown EncoderConfig fields: {sorted(unknown)}")
        return cls(**data)


@dataclasses.dataclass(frozen=True)
class DualEncoderConfig:
    """One shared tower, pooling, optional projection, L2 norm, Matryoshka prefixes.

    The projection is linear, optionally with a bias and then ``projection_activation``: the
    Gecko paper's is a plain linear map; the options load sentence-transformers Dense modules.

    ``dtype`` is the compute dtype (``bfloat16`` for training on accelerators); parameters
    are always kept in float32. ``mrl_dims`` are the prefix sizes the loss trains and the
    encoder may truncate to; the full output size is always included. ``text_format`` names
    the :mod:`gecko_jax.text.formats` template the model reads queries and documents in, so a model
    trained on one format is also evaluated in it.
    """

    encoder: EncoderConfig
    pooling: str = "mean"
    projection_dim: int | None = None
    projection_bias: bool = False
    projection_activation: str = "identity"
    mrl_dims: tuple[int, ...] = ()
    dtype: str = "float32"
    remat: bool = False
    # "xla" (einsum, runs everywhere) or "cudnn" (fused attention on NVIDIA GPUs, bf16).
    attention_impl: str = "xla"
    max_length: int = 512
    text_format: str = DEFAULT_TEXT_FORMAT

    def __post_init__(self) -> None:
        check_text_format(self.text_format)
        if self.pooling not in POOLING_MODES:
            raise ValueError(f"pooling must be one of {POOLING_MODES}, got {self.pooling!r}")
        if self.attention_impl not in ("xla", "cudnn"):
            raise ValueError(f"attention_impl must be xla or cudnn, got {self.attention_impl!r}")
        if self.dtype not in ("float32", "bfloat16"):
            raise ValueError(f"dtype must be float32 or bfloat16, got {self.dtype!r}")
        if self.projection_activation not in PROJECTION_ACTIVATIONS:
            raise ValueError(
                f"projection_activation must be one of {PROJECTION_ACTIVATIONS}, "
                f"got {self.projection_activation!r}"
            )
        if not self.projection_dim and (
            self.projection_bias or self.projection_activation != "identity"
        ):
            raise ValueError("projection_bias and projection_activation need a projection_dim")
        for dim in self.mrl_dims:
            if not 0 < dim <= self.output_dim:
                raise ValueError(
                    f"Matryoshka dim {dim} is outside 1..{self.output_dim} (the embedding size)"
                )

    @property
    def output_dim(self) -> int:
        return self.projection_dim or self.encoder.hidden_size

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["mrl_dims"] = list(self.mrl_dims)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DualEncoderConfig:
        data = dict(data)
        data["encoder"] = EncoderConfig.from_dict(data["encoder"])
        data["mrl_dims"] = tuple(data.get("mrl_dims", ()))
        return cls(**data)
