"""Hugging Face safetensors into Flax parameter trees, with errors naming the key and file."""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np


class WeightImportError(ValueError):
    """A checkpoint does not fit the model: the message names the key and the file."""


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
        from safetensors.numpy import load_file

        if not os.path.exists(path):
            raise FileNotFoundError(f"weights file not found: {path}")
        return cls(load_file(str(path)), str(path), prefixes)

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
