"""Counter-based randomness: every draw is a pure function of a key and a counter.

Resumable input needs "the batch at step k" without replaying steps 0..k-1, and the same
answer in every process and on every host. numpy Generators are sequential, and their streams
may change between numpy versions, so the input pipeline draws from SplitMix64 applied to
``(key, counter)`` instead: stable everywhere, and vectorised over counters.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence

import numpy as np

Key = Sequence[int | str]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MUL1 = np.uint64(0xBF58476D1CE4E5B9)
_MUL2 = np.uint64(0x94D049BB133111EB)


def _mix(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser; uint64 array arithmetic wraps, as intended."""
    z = (z ^ (z >> np.uint64(30))) * _MUL1
    z = (z ^ (z >> np.uint64(27))) * _MUL2
    return z ^ (z >> np.uint64(31))


def _part(part: int | str) -> np.uint64:
    if isinstance(part, str):
        digest = hashlib.blake2b(part.encode("utf-8"), digest_size=8).digest()
        return np.uint64(int.from_bytes(digest, "little"))
    if not 0 <= part < 2**64:
        raise ValueError(f"key parts must be strings or integers in [0, 2**64), got {part}")
    return np.uint64(part)


@functools.lru_cache(maxsize=4096)
def _key_state(key: tuple[int | str, ...]) -> np.ndarray:
    state = np.zeros(1, np.uint64)
    for part in key:
        state = _mix(state + _GOLDEN + _part(part))
    return state


def bits(key: Key, counters: np.ndarray | Sequence[int]) -> np.ndarray:
    """64 random bits per counter (uint64, the counters' shape) for this key."""
    counters = np.asarray(counters).astype(np.uint64)
    return _mix(_key_state(tuple(key)) + (counters + np.uint64(1)) * _GOLDEN)


def uniform(key: Key, counters: np.ndarray | Sequence[int]) -> np.ndarray:
    """Floats in [0, 1), one per counter."""
    return (bits(key, counters) >> np.uint64(11)).astype(np.float64) * 2.0**-53


def permutation(key: Key, n: int) -> np.ndarray:
    """A random permutation of ``range(n)`` (int64), fixed by the key."""
    return np.argsort(bits(key, np.arange(n)), kind="stable")


def index(key: Key, counter: int, n: int) -> int:
    """One index in ``range(n)``, e.g. to pick a hard negative for one row."""
    return int(uniform(key, [counter])[0] * n)
