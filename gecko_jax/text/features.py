"""The trainer's input contract: names, dtypes and shapes of one global batch.

Input pipelines (in-memory numpy, the seqio tasks) produce dicts with these keys; the trainer
consumes them. Kept TensorFlow-free so the train step runs where TF is not installed.

Shapes: token fields are ``[batch, length]`` int32 (0/1 masks); per-example fields ``[batch]``.
``has_negative`` is 0 where an example has no hard negative (its negative tokens are padding).
``*_text_hash`` are int32 hashes of the normalised texts, so in-batch duplicates are not
treated as negatives. ``task_id`` indexes the mixture's task list. ``example_mask`` is 0 for
padding rows added to fill the last global batch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import numpy as np

TOKEN_FIELDS = (
    "query_input_ids",
    "query_attention_mask",
    "positive_input_ids",
    "positive_attention_mask",
    "negative_input_ids",
    "negative_attention_mask",
)
EXAMPLE_FIELDS = (
    "has_negative",
    "task_id",
    "query_text_hash",
    "positive_text_hash",
    "example_mask",
)
FIELDS = TOKEN_FIELDS + EXAMPLE_FIELDS


def text_hash(text: str) -> int:
    """Stable int32 hash of lowercased, whitespace-folded text (same across processes)."""
    normalised = " ".join(text.lower().split())
    digest = hashlib.blake2b(normalised.encode("utf-8"), digest_size=4).digest()
    return int.from_bytes(digest, "little", signed=True)


def validate_batch(batch: Mapping[str, np.ndarray]) -> int:
    """Check keys, dtypes and shapes; return the batch size. Errors name the field."""
    missing = [name for name in FIELDS if name not in batch]
    if missing:
        raise KeyError(f"batch lacks fields {missing}; expected {list(FIELDS)}")
    size = int(np.shape(batch["query_input_ids"])[0])
    for name in TOKEN_FIELDS:
        shape = np.shape(batch[name])
        if len(shape) != 2 or shape[0] != size:
            raise ValueError(f"{name} has shape {shape}; expected [{size}, length]")
    for name in EXAMPLE_FIELDS:
        shape = np.shape(batch[name])
        if shape != (size,):
            raise ValueError(f"{name} has shape {shape}; expected [{size}]")
    return size
