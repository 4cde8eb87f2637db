"""What a sentence-transformers folder adds to its Hugging Face model: modules, pooling, Dense.

We reproduce the pipeline Transformer -> Pooling -> Dense -> Normalize, each at most once and in
that order; anything else is refused by name rather than embedded differently. The readers
follow what the installed sentence-transformers (6.x) writes and what older releases wrote.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from gecko_jax.models.config import POOLING_MODES

MODULE_ORDER = ("Transformer", "Pooling", "Dense", "Normalize")
# Our projection activation -> the torch class sentence-transformers saves it as (full name).
DENSE_ACTIVATIONS = {
    "identity": "torch.nn.modules.linear.Identity",
    "tanh": "torch.nn.modules.activation.Tanh",
}
# Before sentence-transformers 6 a Pooling config held one flag per mode instead of
# ``pooling_mode``; with no flag set it pools by the mean.
_LEGACY_POOLING_FLAGS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
_SENTENCE_EMBEDDING = "sentence_embedding"

logger = logging.getLogger(__name__)


def read_modules(path: Path) -> dict[str, Path]:
    """Module kind -> its folder, from ``modules.json``; empty for a plain Hugging Face folder."""
    modules_file = path / "modules.json"
    if not modules_file.exists():
        return {}
    entries = json.loads(modules_file.read_text())
    kinds = [entry.get("type", "").rsplit(".", 1)[-1] for entry in entries]
    for kind in kinds:
        if kind not in MODULE_ORDER:
            raise ValueError(f"{modules_file}: unsupported sentence-transformers module {kind!r}")
    positions = [MODULE_ORDER.index(kind) for kind in kinds]
    if positions != sorted(set(positions)):
        raise ValueError(
            f"{modules_file}: unsupported module sequence {kinds}; expected Transformer, "
            "Pooling, at most one Dense, then Normalize, each at most once and in that order"
        )
    return {kind: path / entry.get("path", "") for kind, entry in zip(kinds, entries, strict=True)}


def read_pooling(folder: Path) -> str:
    """``mean`` or ``cls``, from ``pooling_mode`` or the legacy per-mode flags."""
    config_file = folder / "config.json"
    config = json.loads(config_file.read_text())
    mode = config.get("pooling_mode")
    if mode is None:
        flagged = [name for flag, name in _LEGACY_POOLING_FLAGS.items() if config.get(flag)]
        mode = flagged or "mean"
    modes = [mode] if isinstance(mode, str) else list(mode)
    if len(modes) != 1 or modes[0] not in POOLING_MODES:
        raise ValueError(f"{config_file}: pooling {modes} is not supported; only mean or CLS")
    if config.get("include_prompt") is False and modes[0] == "mean":
        # Not an error: it changes nothing for text without a prompt, as we encode it.
        logger.warning(
            "%s: include_prompt is false, so sentence-transformers leaves its prompt's tokens "
            "out of the mean; here every token is pooled, so text with a prompt in front "
            "embeds differently",
            config_file,
        )
    return modes[0]


def read_max_length(path: Path, default: int) -> int:
    """``max_seq_length`` of ``sentence_bert_config.json`` (before sentence-transformers 6),
    else the tokenizer's ``model_max_length`` (where 6.x keeps it), else ``default``."""
    for name, key in (
        ("sentence_bert_config.json", "max_seq_length"),
        ("tokenizer_config.json", "model_max_length"),
    ):
        config_file = path / name
        if config_file.exists():
            value = json.loads(config_file.read_text()).get(key)
            if value is not None:
                return int(value)
    return default


def read_dense(folder: Path, width: int) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """A Dense module as ``DualEncoderConfig`` projection fields and ``projection`` params."""
    config_file = folder / "config.json"
    config = json.loads(config_file.read_text())
    if config.get("in_features") != width:
        raise ValueError(
            f"{config_file}: Dense in_features {config.get('in_features')} does not match the "
            f"pooled embedding width {width}"
        )
    names = (config.get("module_input_name"), config.get("module_output_name"))
    if config.get("use_residual") or any(n not in (None, _SENTENCE_EMBEDDING) for n in names):
        raise ValueError(
            f"{config_file}: only a Dense module from sentence embedding to sentence embedding, "
            "without a residual, is supported"
        )
    # A config without the key gets the Dense constructor's defaults: bias and Tanh.
    activation = _activation(
        config.get("activation_function", DENSE_ACTIVATIONS["tanh"]), config_file
    )
    bias = bool(config.get("bias", True))
    out_features = int(config["out_features"])
    fields = {
        "projection_dim": out_features,
        "projection_bias": bias,
        "projection_activation": activation,
    }
    return fields, _dense_params(folder, width, out_features, bias)


def _dense_params(folder: Path, width: int, out_features: int, bias: bool) -> dict[str, np.ndarray]:
    """``projection`` params from the module's torch ``linear`` tensors, shapes checked."""
    weights_file, tensors = _read_weights(folder)
    expected = {"linear.weight": (out_features, width)}
    if bias:
        expected["linear.bias"] = (out_features,)
    found = {key: tuple(value.shape) for key, value in tensors.items()}
    if found != expected:
        raise ValueError(f"{weights_file}: expected tensors {expected}, found {found}")
    params = {"kernel": tensors["linear.weight"].T}
    if bias:
        params["bias"] = tensors["linear.bias"]
    return params


def _activation(name: str, config_file: Path) -> str:
    """Ours for a torch class named by full path (as saved) or by ``torch.nn.<Class>``."""
    for ours, torch_name in DENSE_ACTIVATIONS.items():
        if name in (torch_name, f"torch.nn.{torch_name.rsplit('.', 1)[-1]}"):
            return ours
    raise ValueError(
        f"{config_file}: Dense activation_function {name!r} is not supported; "
        f"expected one of {sorted(DENSE_ACTIVATIONS.values())}"
    )


def _read_weights(folder: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """float32 tensors of ``model.safetensors``, else of the older ``pytorch_model.bin``."""
    safetensors_file = folder / "model.safetensors"
    if safetensors_file.exists():
        from gecko_jax.models.weights import read_safetensors

        tensors = read_safetensors(safetensors_file)
        return safetensors_file, {k: np.asarray(v, np.float32) for k, v in tensors.items()}
    torch_file = folder / "pytorch_model.bin"
    if torch_file.exists():
        return torch_file, _read_torch_file(torch_file)
    raise FileNotFoundError(
        f"{folder}: the Dense module has neither model.safetensors nor pytorch_model.bin"
    )


def _read_torch_file(path: Path) -> dict[str, np.ndarray]:
    try:
        import torch
    except ImportError as err:
        raise ImportError(
            f"reading {path} needs torch (pip install torch), or save the module as "
            "model.safetensors"
        ) from err
    state = torch.load(path, map_location="cpu", weights_only=True)
    return {key: value.float().numpy() for key, value in state.items()}
