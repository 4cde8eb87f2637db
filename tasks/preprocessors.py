"""The paper's unified text format (Appendix B) as a seqio preprocessor.

Asymmetric tasks: query ``task: {task} | query: {query}``, positive and negative
``title: {title} | text: {text}``. Symmetric tasks format the positive and the hard negative
like the query (``task: {task} | query: {text}``). Pre-finetuning uses the asymmetric form, so
the task feature is on the query only (Eq. 1). The templates live in :mod:`gecko_jax.text.formats`
(shared with the encoder, by name: ``text_format``, the paper's by default); this module only
decides which template each text gets.
"""

from __future__ import annotations

import numpy as np
import seqio
import tensorflow as tf

from gecko_jax.text.formats import DEFAULT_TEXT_FORMAT, format_document, format_query
from tasks.records import STRING_FIELDS, with_uid

FORMATTED_FIELDS = ("formatted_query", "formatted_positive", "formatted_negative")
# Texts stay strings: the feature converter tokenizes, so one task serves BERT and T5 towers.
_TEXT = seqio.Feature(seqio.PassThroughVocabulary(size=0), add_eos=False, dtype=tf.string, rank=0)
OUTPUT_FEATURES = {name: _TEXT for name in FORMATTED_FIELDS}
_BATCH = 1024  # Examples per Python call: per-example tf.numpy_function calls are ~50x slower.
# The record features format_texts reads, in its parameter order (all but the sampling group).
_INPUTS = tuple(name for name in STRING_FIELDS if name != "group")


def format_texts(
    task: str,
    query: str,
    positive_title: str,
    positive_text: str,
    negative_title: str,
    negative_text: str,
    uid: str,
    has_negative: bool,
    symmetric: bool,
    text_format: str = DEFAULT_TEXT_FORMAT,
) -> tuple[str, str, str]:
    """(query, positive, negative) as the model reads them; no negative gives ``""``."""

    def target(title: str, text: str) -> str:
        text = with_uid(text, uid)
        if symmetric:
            return format_query(text, task, text_format)
        return format_document(text, title, text_format)

    negative = target(negative_title, negative_text) if has_negative else ""
    query = format_query(with_uid(query, uid), task, text_format)
    return query, target(positive_title, positive_text), negative


def _format_batch(
    symmetric: bool, text_format: str, has_negative: np.ndarray, *columns: np.ndarray
):
    decoded = [[value.decode("utf-8") for value in column] for column in columns]
    texts = [
        format_texts(*fields, has_negative=bool(flag), symmetric=symmetric, text_format=text_format)
        for flag, fields in zip(has_negative, zip(*decoded, strict=True), strict=True)
    ]
    return tuple(
        np.array([row[i].encode("utf-8") for row in texts], dtype=object) for i in range(3)
    )


def unified_format(
    dataset: tf.data.Dataset, symmetric: bool, text_format: str = DEFAULT_TEXT_FORMAT
) -> tf.data.Dataset:
    """Adds ``formatted_query/positive/negative`` to record examples, keeping the raw fields."""

    def apply(batch: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        outputs = tf.numpy_function(
            lambda flags, *columns: _format_batch(symmetric, text_format, flags, *columns),
            [batch["has_negative"]] + [batch[f] for f in _INPUTS],
            [tf.string] * 3,
            stateful=False,
        )
        for output in outputs:
            output.set_shape(batch["query"].shape)
        return {**batch, **dict(zip(FORMATTED_FIELDS, outputs, strict=True))}

    return dataset.batch(_BATCH).map(apply).unbatch()
