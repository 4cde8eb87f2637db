"""The architecture table: for each backbone, its Flax module and its Hugging Face import and
export (config and weights). Every reader and writer of model folders goes through it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import numpy as np

from gecko_jax.models import bert, t5
from gecko_jax.models.config import EncoderConfig
from gecko_jax.models.weights import TensorSource, params_to_hf


@dataclasses.dataclass(frozen=True)
class Architecture:
    """One backbone family. ``config_to_hf`` is None where no Hugging Face export exists."""

    name: str
    module: type[nn.Module]
    hf_model_types: tuple[str, ...]
    config_from_hf: Callable[[dict[str, Any]], EncoderConfig]
    params_from_hf: Callable[[TensorSource, EncoderConfig], dict[str, Any]]
    hf_key_prefixes: tuple[str, ...] = ()
    config_to_hf: Callable[[EncoderConfig], dict[str, Any]] | None = None

    def hf_config_writer(self) -> Callable[[EncoderConfig], dict[str, Any]]:
        """``config_to_hf``, or an error saying what to use instead where there is none."""
        if self.config_to_hf is None:
            exportable = [name for name, row in TABLE.items() if row.config_to_hf is not None]
            raise ValueError(
                f"no Hugging Face export for the {self.name!r} backbone (exportable: "
                f"{exportable}); use encoder.save_pretrained(out_dir) (gecko-export --format "
                "gecko), the safetensors + JSON folder that Encoder.from_pretrained reads"
            )
        return self.config_to_hf


TABLE: dict[str, Architecture] = {
    "bert": Architecture(
        name="bert",
        module=bert.BertEncoder,
        hf_model_types=("bert",),
        config_from_hf=bert.bert_config_from_hf,
        params_from_hf=bert.bert_params_from_hf,
        hf_key_prefixes=bert.BERT_KEY_PREFIXES,
        config_to_hf=bert.bert_config_to_hf,
    ),
    "t5": Architecture(
        name="t5",
        module=t5.T5Encoder,
        hf_model_types=("t5",),
        config_from_hf=t5.t5_config_from_hf,
        params_from_hf=t5.t5_params_from_hf,
    ),
}


def architecture(name: str) -> Architecture:
    """The table's row for ``name``, or an error listing the known ones."""
    if name not in TABLE:
        raise ValueError(f"unknown architecture {name!r}; expected one of {tuple(TABLE)}")
    return TABLE[name]


def _by_hf_model_type(hf_config: dict[str, Any], source: str) -> Architecture:
    model_type = hf_config.get("model_type")
    for row in TABLE.values():
        if model_type in row.hf_model_types:
            return row
    known = sorted(t for row in TABLE.values() for t in row.hf_model_types)
    raise ValueError(
        f"unknown architecture: model_type {model_type!r} in {source}; supported: {known}"
    )


def encoder_config_from_hf(hf_config: dict[str, Any], source: str = "config.json") -> EncoderConfig:
    """Our backbone config from a Hugging Face ``config.json``'s contents."""
    return _by_hf_model_type(hf_config, source).config_from_hf(hf_config)


def backbone_params_from_hf(path: str, config: EncoderConfig) -> dict[str, Any]:
    """Backbone parameters from a Hugging Face safetensors file."""
    row = architecture(config.architecture)
    return row.params_from_hf(TensorSource.from_file(path, row.hf_key_prefixes), config)


def hf_export(
    config: EncoderConfig, backbone: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """A Hugging Face ``config.json`` and tensors that import back as ``config``/``backbone``."""
    row = architecture(config.architecture)
    return row.hf_config_writer()(config), params_to_hf(row.params_from_hf, config, backbone)
