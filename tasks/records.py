"""The unified record every source yields before formatting: (task, query, positive, negative).

Sources only say which texts play which role; one formatting step
(:mod:`tasks.preprocessors`) decides how each task's texts look, so the templates cannot drift
between data sets. Titles stay apart from text because symmetric tasks drop them.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable

import numpy as np
import seqio
import tensorflow as tf

logger = logging.getLogger(__name__)

# Features of the tf.data examples a record source yields (all scalar strings but one).
STRING_FIELDS = (
    "task",
    "query",
    "positive_title",
    "positive_text",
    "negative_title",
    "negative_text",
    "uid",
    "group",
)
INT_FIELDS = ("has_negative",)


@dataclasses.dataclass(frozen=True)
class Record:
    """One training example.

    ``uid`` is appended to the query, positive and negative texts: the paper's fix that makes
    other in-batch rows trivial negatives for classification triples. ``group`` names the
    stratum the sampler balances over (FRet task types); empty means no balancing.
    """

    task: str
    query: str
    positive_text: str
    positive_title: str = ""
    negative_text: str | None = None
    negative_title: str = ""
    uid: str = ""
    group: str = ""


def with_uid(text: str, uid: str) -> str:
    """The text with its triple's id appended (the paper leaves the id format open)."""
    return f"{text} [id {uid}]" if uid else text


def to_dataset(records: Iterable[Record], name: str) -> tf.data.Dataset:
    """Records as scalar tf.data examples; records with a blank query or positive are dropped.

    Records are read eagerly, so a bad file raises its own Python error from
    ``Task.get_dataset`` instead of a TensorFlow error wrapped around it.
    """
    columns: dict[str, list] = {field: [] for field in STRING_FIELDS + INT_FIELDS}
    dropped = 0
    for record in records:
        if not record.query.strip() or not record.positive_text.strip():
            dropped += 1
            continue
        for field in STRING_FIELDS:
            columns[field].append(getattr(record, field) or "")
        columns["has_negative"].append(int(bool(record.negative_text)))
    if dropped:
        logger.warning("%s: dropped %d records with an empty query or positive", name, dropped)
    tensors = {field: tf.constant(columns[field], dtype=tf.string) for field in STRING_FIELDS}
    tensors["has_negative"] = tf.constant(np.asarray(columns["has_negative"], np.int32))
    return tf.data.Dataset.from_tensor_slices(tensors)


def record_source(
    read: Callable[[str], Iterable[Record]], name: str, splits: Iterable[str] = ("train",)
) -> seqio.FunctionDataSource:
    """A seqio data source over ``read(split)``; files are read in sorted order, unshuffled."""

    def dataset_fn(split: str, shuffle_files: bool) -> tf.data.Dataset:
        del shuffle_files  # Order is fixed; seqio shuffles examples when asked to.
        return to_dataset(read(split), name)

    return seqio.FunctionDataSource(dataset_fn, splits=tuple(splits))
