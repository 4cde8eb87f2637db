"""Hugging Face safetensors into Flax parameter trees (errors name the key and file), and back."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import jax
import numpy as np

ConfigT = TypeVar("ConfigT")


class WeightImportError(ValueError):
    """A checkpoint does not fit the model: the message names the key and the file."""


def read_safetensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every tensor of a safetensors file. safetensors' own errors ("incomplete metadata")
    name neither the file nor the likely cause, so a file that cannot be read is reported
    with both."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    if not os.path.exists(path):
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        return load_file(str(path))
    except SafetensorError as error:
        raise WeightImportError(
            f"cannot read weights file {path} ({os.path.getsize(path):,} bytes): {error}; "
            "it is truncated (an interrupted download or copy?) or not a safetensors file"
        ) from None
    except TypeError as error:  # a tensor type numpy lacks, e.g. bfloat16
        raise WeightImportError(
            f"cannot read weights file {path}: {error}; save it in float32 or float16"
        ) from None


class TensorSource:
    """Tensors from one checkpoint file; every lookup checks presence and shape.

    Keys are looked up with any of the given ``prefixes`` stripped, because the same weights
    are saved as ``bert.encoder...`` by ``BertModel`` heads and ``encoder...`` by the base model.
    """

    def __init__(
        self, tensors: Mapping[str, np.ndarray], path: str, prefixes: tuple[str, ...] = ()
    ):
        self.path = str(path)
        self._tensors: dict[str, np.ndarray] = {}
        for key, value in tensors.items():
            for prefix in prefixes:
                if key.startswith(prefix):
                    key = key[len(prefix) :]
                    break
            self._tensors[key] = value
        self.used: set[str] = set()

    @classmethod
    def from_file(cls, path: str | os.PathLike, prefixes: tuple[str, ...] = ()) -> TensorSource:
        return cls(read_safetensors(path), str(path), prefixes)

    def __contains__(self, key: str) -> bool:
        return key in self._tensors

    def get(self, key: str, shape: tuple[int, ...], transpose: bool = False) -> np.ndarray:
        """The tensor stored under ``key`` as float32, transposed first when asked."""
        if key not in self._tensors:
            raise WeightImportError(f"missing key {key!r} in {self.path}")
        value = np.asarray(self._tensors[key], dtype=np.float32)
        if transpose:
            value = value.T
        if value.shape != tuple(shape):
            raise WeightImportError(
                f"shape mismatch for key {key!r} in {self.path}: "
                f"checkpoint has {value.shape}, model expects {tuple(shape)}"
            )
        self.used.add(key)
        return value

    def unused(self) -> list[str]:
        return sorted(set(self._tensors) - self.used)


class _PositionSource(TensorSource):
    """Answers each lookup with the positions its elements take in one flat export buffer.

    Running an import mapper on it yields a parameter tree of int64 positions: where every
    parameter element came from. Only transposes and reshapes happen in between, so the tree
    is the mapper's exact inverse. Membership tests answer yes, so the first name a mapper
    tries (the current one, e.g. ``LayerNorm.weight`` before ``gamma``) is the one written.
    """

    def __init__(self) -> None:
        super().__init__({}, "<export>")
        self.layout: dict[str, tuple[int, tuple[int, ...]]] = {}
        self.size = 0

    def __contains__(self, key: str) -> bool:
        return True

    def get(self, key: str, shape: tuple[int, ...], transpose: bool = False) -> np.ndarray:
        stored = tuple(reversed(shape)) if transpose else tuple(shape)
        if key not in self.layout:
            self.layout[key] = (self.size, stored)
            self.size += int(np.prod(stored, dtype=np.int64))
        start, stored_shape = self.layout[key]
        if stored_shape != stored:
            raise WeightImportError(f"key {key!r} is read with shapes {stored_shape} and {stored}")
        positions = np.arange(start, start + int(np.prod(stored, dtype=np.int64)))
        positions = positions.reshape(stored)
        return positions.T if transpose else positions


def params_to_hf(
    mapper: Callable[[TensorSource, ConfigT], dict[str, Any]],
    config: ConfigT,
    params: Mapping[str, Any],
) -> dict[str, np.ndarray]:
    """The Hugging Face tensors that ``mapper`` (an import such as ``bert_params_from_hf``)
    would read back as ``params``: the exact inverse of the import, from the import itself."""
    source = _PositionSource()
    positions = mapper(source, config)
    flat = np.empty(source.size, np.float32)
    written = np.zeros(source.size, np.int64)

    def place(where: np.ndarray, value: Any) -> None:
        value = np.asarray(value, np.float32)
        if value.shape != where.shape:
            raise ValueError(f"parameter shape {value.shape} != expected {where.shape}")
        flat[where.ravel()] = value.ravel()
        np.add.at(written, where.ravel(), 1)

    try:
        jax.tree_util.tree_map(place, positions, dict(params))
    except ValueError as error:
        raise ValueError(f"parameters do not fit the checkpoint layout: {error}") from error
    if not np.all(written == 1):
        raise ValueError("the import mapping is not one-to-one, so it cannot be inverted")
    return {
        key: flat[start : start + int(np.prod(shape, dtype=np.int64))].reshape(shape)
        for key, (start, shape) in source.layout.items()
    }
