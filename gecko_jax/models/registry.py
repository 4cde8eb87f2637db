"""Architecture name -> backbone module, HF config reader and HF weight mapper."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn

from gecko_jax.models import bert, t5
from gecko_jax.models.config import ARCHITECTURES, EncoderConfig
from gecko_jax.models.weights import TensorSource

_BACKBONES: dict[str, type[nn.Module]] = {"bert": bert.BertEncoder, "t5": t5.T5Encoder}
_HF_CONFIG_READERS: dict[str, Callable[[dict[str, Any]], EncoderConfig]] = {
    "bert": bert.bert_config_from_hf,
    "t5": t5.t5_config_from_hf,
}
_HF_WEIGHT_MAPPERS: dict[str, Callable[[TensorSource, EncoderConfig], dict[str, Any]]] = {
    "bert": bert.bert_params_from_hf,
    "t5": t5.t5_params_from_hf,
}
# Hugging Face ``model_type`` values we can read, and the architecture each one is.
HF_MODEL_TYPES = {"bert": "bert", "t5": "t5"}
HF_KEY_PREFIXES = {"bert": bert.BERT_KEY_PREFIXES, "t5": ()}


def _check(architecture: str) -> str:
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; expected one of {ARCHITECTURES}")
    return architecture


def backbone_class(architecture: str) -> type[nn.Module]:
    return _BACKBONES[_check(architecture)]


def encoder_config_from_hf(hf_config: dict[str, Any], source: str = "config.json") -> EncoderConfig:
    model_type = hf_config.get("model_type")
    if model_type not in HF_MODEL_TYPES:
        raise ValueError(
            f"unknown architecture: model_type {model_type!r} in {source}; "
            f"supported: {sorted(HF_MODEL_TYPES)}"
        )
    return _HF_CONFIG_READERS[HF_MODEL_TYPES[model_type]](hf_config)


def backbone_params_from_hf(path: str, config: EncoderConfig) -> dict[str, Any]:
    """Backbone parameters from a Hugging Face safetensors file."""
    architecture = _check(config.architecture)
    source = TensorSource.from_file(path, HF_KEY_PREFIXES[architecture])
    return _HF_WEIGHT_MAPPERS[architecture](source, config)
