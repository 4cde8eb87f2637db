"""Model folders on disk: ours (``gecko_config.json`` + safetensors) and Hugging Face /
sentence-transformers ones. Readers return ``(config, params, tokenizer_file)``, so the
:class:`~gecko_jax.encoder.Encoder`, training's ``init_from`` and the exports share them."""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import traverse_util

from gecko_jax.core.paths import PathLike, as_path
from gecko_jax.model_io import st_modules
from gecko_jax.model_io.params_file import load_params, save_params
from gecko_jax.models.architectures import backbone_params_from_hf, encoder_config_from_hf
from gecko_jax.models.config import DualEncoderConfig, EncoderConfig
from gecko_jax.models.dual_encoder import DualEncoder
from gecko_jax.models.weights import WeightImportError

GECKO_CONFIG = "gecko_config.json"
GECKO_PARAMS = "params.safetensors"
FORMAT_VERSION = 1

NOT_A_MODEL = (
    f" {GECKO_CONFIG} (a gecko_jax export) nor config.json (a Hugging Face / "
    "sentence-transformers folder), nor is it a training workdir (WORKDIR, WORKDIR@STEP)"
)


def write_gecko_folder(
    path: Path, config: DualEncoderConfig, params: dict[str, Any], tokenizer_file: Path
) -> None:
    """Our folder: float32 parameters, the tokenizer file and the config, into ``path``."""
    save_params(path / GECKO_PARAMS, jax.device_get(params))
    shutil.copyfile(tokenizer_file, path / tokenizer_file.name)
    meta = {
        "format": "gecko_jax",
        "version": FORMAT_VERSION,
        "model": config.to_dict(),
        "tokenizer": tokenizer_file.name,
    }
    (path / GECKO_CONFIG).write_text(json.dumps(meta, indent=2) + "\n")


def is_model_folder(path: PathLike) -> bool:
    folder = as_path(path)
    return (folder / GECKO_CONFIG).exists() or (folder / "config.json").exists()


def read_model_folder(path: str | Path) -> tuple[DualEncoderConfig, dict[str, Any], Path]:
    """Config, parameters and tokenizer file of our export or a sentence-transformers folder."""
    path = Path(path)
    if (path / GECKO_CONFIG).exists():
        return _read_gecko_folder(path)
    if (path / "config.json").exists():
        return _read_hf_folder(path)
    raise FileNotFoundError(f"{path} has neither{NOT_A_MODEL}")


def _read_gecko_folder(path: Path) -> tuple[DualEncoderConfig, dict[str, Any], Path]:
    meta = json.loads((path / GECKO_CONFIG).read_text())
    if meta.get("format") != "gecko_jax" or meta.get("version") != FORMAT_VERSION:
        raise ValueError(
            f"{path / GECKO_CONFIG}: unsupported format {meta.get('format')!r} "
            f"version {meta.get('version')!r}"
        )
    config = DualEncoderConfig.from_dict(meta["model"])
    params = load_params(path / GECKO_PARAMS)
    _check_params(config, params, path / GECKO_PARAMS)
    return config, params, path / meta["tokenizer"]


def _check_params(config: DualEncoderConfig, params: dict[str, Any], path: Path) -> None:
    """Every tensor the config needs, at its shape, and no other: a file saved for another
    config fails here, naming the tensors, rather than inside the first forward call."""
    ones = jnp.ones((1, 8), jnp.int32)
    init = functools.partial(DualEncoder(config).init, jax.random.key(0), ones, ones)
    expected = _shapes(nn.unbox(jax.eval_shape(init))["params"])
    found = _shapes(params)
    problems = [
        f"{name}: file has {found[name]}, config needs {shape}"
        for name, shape in expected.items()
        if name in found and found[name] != shape
    ]
    problems += [f"{name}: missing" for name in expected if name not in found]
    problems += [f"{name}: not in the model" for name in found if name not in expected]
    if problems:
        raise WeightImportError(
            f"{path} does not fit {path.parent / GECKO_CONFIG} ({len(problems)} tensors): "
            + "; ".join(problems[:5])
        )


def _shapes(tree: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    return {
        "/".join(key): tuple(value.shape) for key, value in traverse_util.flatten_dict(tree).items()
    }


def _read_hf_folder(path: Path) -> tuple[DualEncoderConfig, dict[str, Any], Path]:
    """A Hugging Face model folder, with its sentence-transformers modules if present."""
    encoder_config = encoder_config_from_hf(
        json.loads((path / "config.json").read_text()), str(path / "config.json")
    )
    modules = st_modules.read_modules(path)
    pooling = st_modules.read_pooling(modules["Pooling"]) if "Pooling" in modules else "mean"
    params: dict[str, Any] = {
        "backbone": backbone_params_from_hf(str(path / "model.safetensors"), encoder_config)
    }
    projection: dict[str, Any] = {}
    if "Dense" in modules:
        projection, params["projection"] = st_modules.read_dense(
            modules["Dense"], encoder_config.hidden_size
        )
    config = DualEncoderConfig(
        encoder_config,
        pooling=pooling,
        max_length=_hf_max_length(path, encoder_config),
        **projection,
    )
    return config, params, _hf_tokenizer_file(path)


def _hf_max_length(path: Path, encoder_config: EncoderConfig) -> int:
    positions = encoder_config.max_position_embeddings
    return min(st_modules.read_max_length(path, positions), positions)


def _hf_tokenizer_file(path: Path) -> Path:
    tokenizer_file = path / "tokenizer.json"
    return tokenizer_file if tokenizer_file.exists() else path / "spiece.model"


def read_inference_settings(path: str | Path) -> tuple[int, Path]:
    """The max_length and tokenizer file a model folder is used with, without its weights:
    what a run initialised from it records as its own (``training.run_model``)."""
    path = Path(path)
    if (path / GECKO_CONFIG).exists():
        meta = json.loads((path / GECKO_CONFIG).read_text())
        return int(meta["model"]["max_length"]), path / meta["tokenizer"]
    encoder_config = encoder_config_from_hf(
        json.loads((path / "config.json").read_text()), str(path / "config.json")
    )
    return _hf_max_length(path, encoder_config), _hf_tokenizer_file(path)
