"""Formatted texts -> the trainer's features (:mod:`gecko_jax.text.features`).

Token fields are padded to fixed per-field lengths, so every batch has one shape and the
train step compiles once. Truncation is counted by the tokenizer (``tokenizer.truncation``)
and logged. Rows without a hard negative get all-padding negative tokens and
``has_negative = 0``. Text hashes are of the formatted texts: two rows are duplicates for the
loss exactly when the model reads the same string.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

import numpy as np

from gecko_jax.text.features import text_hash, validate_batch
from gecko_jax.text.tokenizers import Tokenizer, load_tokenizer


@dataclasses.dataclass(frozen=True)
class FeatureLengths:
    """Max tokens per field, special tokens included (not reported by the paper).

    The defaults fit all-MiniLM-L6-v2's 256-token limit: queries are short, passages long.
    """

    query: int = 64
    positive: int = 256
    negative: int = 256


DEFAULT_LENGTHS = FeatureLengths()


class FeatureConverter:
    """Tokenizes (query, positive, negative) texts into one batch of trainer features."""

    def __init__(
        self,
        tokenizer: Tokenizer | str | os.PathLike[str],
        lengths: FeatureLengths = DEFAULT_LENGTHS,
    ) -> None:
        """``tokenizer``: a Tokenizer, or a tokenizer file / model folder."""
        if not isinstance(tokenizer, Tokenizer):
            tokenizer = load_tokenizer(tokenizer)
        self.tokenizer = tokenizer
        self.lengths = lengths

    def _tokens(self, texts: Sequence[str], length: int) -> tuple[np.ndarray, np.ndarray]:
        encoded = self.tokenizer.encode_batch(list(texts), length, pad_to_length=length)
        return encoded.input_ids, encoded.attention_mask

    def __call__(
        self,
        queries: Sequence[str],
        positives: Sequence[str],
        negatives: Sequence[str],
        has_negative: np.ndarray,
        task_ids: np.ndarray,
    ) -> dict[str, np.ndarray]:
        """One row per query; ``negatives[i]`` is unused where ``has_negative[i]`` is 0."""
        size = len(queries)
        has_negative = np.asarray(has_negative, np.int32)
        query_ids, query_mask = self._tokens(queries, self.lengths.query)
        positive_ids, positive_mask = self._tokens(positives, self.lengths.positive)
        negative_ids = np.full((size, self.lengths.negative), self.tokenizer.pad_id, np.int32)
        negative_mask = np.zeros((size, self.lengths.negative), np.int32)
        rows = np.flatnonzero(has_negative)
        if len(rows):
            negative_ids[rows], negative_mask[rows] = self._tokens(
                [negatives[i] for i in rows], self.lengths.negative
            )
        batch = {
            "query_input_ids": query_ids,
            "query_attention_mask": query_mask,
            "positive_input_ids": positive_ids,
            "positive_attention_mask": positive_mask,
            "negative_input_ids": negative_ids,
            "negative_attention_mask": negative_mask,
            "has_negative": has_negative,
            "task_id": np.asarray(task_ids, np.int32),
            "query_text_hash": np.array([text_hash(t) for t in queries], np.int32),
            "positive_text_hash": np.array([text_hash(t) for t in positives], np.int32),
            "example_mask": np.ones(size, np.int32),
        }
        validate_batch(batch)
        return batch
