"""Named model configurations, so gin files and users can say ``minilm_l6`` instead of shapes."""

from __future__ import annotations

from gecko_jax.models.config import DualEncoderConfig, EncoderConfig

_BERT_VOCAB = 30522
_T5_VOCAB = 32128


def _bert(hidden: int, layers: int, heads: int, ff: int, vocab: int = _BERT_VOCAB) -> EncoderConfig:
    return EncoderConfig(
        architecture="bert",
        vocab_size=vocab,
        hidden_size=hidden,
        num_layers=layers,
        num_heads=heads,
        intermediate_size=ff,
    )


def _t5(
    hidden: int, layers: int, heads: int, ff: int, vocab: int = _T5_VOCAB, head_dim: int = 64
) -> EncoderConfig:
    return EncoderConfig(
        architecture="t5",
        vocab_size=vocab,
        hidden_size=hidden,
        num_layers=layers,
        num_heads=heads,
        intermediate_size=ff,
        head_dim=head_dim,
        layer_norm_eps=1e-6,
        hidden_act="gelu_new",
    )


NAMED_CONFIGS: dict[str, DualEncoderConfig] = {
    # all-MiniLM-L6-v2: 384-d, so Matryoshka prefixes are 384 and 128.
    "minilm_l6": DualEncoderConfig(_bert(384, 6, 12, 1536), mrl_dims=(384, 128), max_length=256),
    "bert_base": DualEncoderConfig(_bert(768, 12, 12, 3072), mrl_dims=(768, 256)),
    "t5_base_encoder": DualEncoderConfig(_t5(768, 12, 12, 2048), mrl_dims=(768, 256)),
    # The paper's 1.2B model: a T5-XL encoder (GTR-XL layout) projected to 768, MRL 768/256.
    "gecko_1b": DualEncoderConfig(
        _t5(2048, 24, 32, 5120), projection_dim=768, mrl_dims=(768, 256), dtype="bfloat16"
    ),
    # Tiny shapes for tests and CPU smoke runs.
    "tiny_bert": DualEncoderConfig(
        _bert(32, 2, 4, 64, vocab=128), mrl_dims=(32, 16), max_length=64
    ),
    "tiny_t5": DualEncoderConfig(
        _t5(32, 2, 4, 64, vocab=128, head_dim=8), mrl_dims=(32, 16), max_length=64
    ),
}


def get_named_config(name: str) -> DualEncoderConfig:
    """Return the named config, or raise listing the known names."""
    try:
        return NAMED_CONFIGS[name]
    except KeyError:
        raise KeyError(f"unknown model config {name!r}; known: {sorted(NAMED_CONFIGS)}") from None
