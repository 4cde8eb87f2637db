"""Parameter trees <-> flat safetensors files (keys joined with ``/``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

SEPARATOR = "/"


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
    flat: dict[str, np.ndarray] = {}
    for key, value in params.items():
        name = f"{prefix}{SEPARATOR}{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, name))
        else:
            flat[name] = np.asarray(value, dtype=np.float32)
    return flat


def unflatten_params(flat: Mapping[str, np.ndarray]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for name, value in flat.items():
        node = tree
        *parents, leaf = name.split(SEPARATOR)
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def save_params(path: str | os.PathLike, params: Mapping[str, Any]) -> None:
    from safetensors.numpy import save_file

    save_file(flatten_params(params), str(path))


def load_params(path: str | os.PathLike) -> dict[str, Any]:
    from gecko_jax.models.weights import read_safetensors

    return unflatten_params(read_safetensors(path))
