"""Classification data sets as contrastive triples (the paper's section 3.3).

For an input x with label y the positive is another input with label y and the hard negative
a random input with any other label. One id is appended to all three texts, so every other row
of a batch carries a different id and becomes a trivial negative: without it, same-label rows
would be false in-batch negatives. The paper leaves the id format open: we use 8 hex digits
(``[id 1f0c9a2b]``), unique within a set (triples of two sets in one mixed batch of 512 share
an id with probability ~3e-5). Triples are symmetric (``task: classification | query: ...`` on
every side) and seeded.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from gecko_jax.data.banking77 import BANKING77_FOLDER, SPLIT_FILE
from gecko_jax.data.sources import HUB_COPIES, resolve_set
from gecko_jax.text.formats import DEFAULT_TEXT_FORMAT
from tasks import rng
from tasks.records import Record
from tasks.registry import add_task
from tasks.sources import Table, local_dir

_UID_MULTIPLIER = np.uint64(0x9E3779B1)  # Odd, so multiplying permutes the 32-bit ids.


@dataclasses.dataclass(frozen=True)
class ClassificationSet:
    """A labelled text set; its rows come from ``hf_path`` or ``{data_dir}/{name}/{local_file}``.

    ``task`` is the task description; the paper's evaluation uses "classification" for every
    classification set (its Table 9), so that is the default.
    """

    name: str
    hf_path: str
    hf_name: str | None = None
    local_file: str = "{split}.jsonl"
    text_field: str = "text"
    label_field: str = "label"
    rename: Mapping[str, str] = dataclasses.field(default_factory=dict)
    task: str = "classification"

    @property
    def table(self) -> Table:
        required = (self.text_field, self.label_field)
        return Table(
            self.hf_path, self.local_file, self.hf_name, required=required, rename=self.rename
        )

    @property
    def task_name(self) -> str:
        return f"gecko_ft_cls_{self.name}"


# MTEB's English classification sets with train splits (the paper's "several classification
# datasets from Huggingface" are not listed; its 81.0 MTEB classification average suggests
# in-domain train sets like these). Banking77's local file is PolyAI's CSV (text,category).
DEFAULT_CLASSIFICATION_SETS = (
    ClassificationSet(
        BANKING77_FOLDER, "mteb/banking77", local_file=SPLIT_FILE, rename={"category": "label"}
    ),
    ClassificationSet("amazon_counterfactual", "mteb/amazon_counterfactual", "en"),
    ClassificationSet("amazon_polarity", "mteb/amazon_polarity"),
    ClassificationSet("amazon_reviews", "mteb/amazon_reviews_multi", "en"),
    ClassificationSet("emotion", "mteb/emotion"),
    ClassificationSet("imdb", "mteb/imdb"),
    ClassificationSet("massive_intent", "mteb/amazon_massive_intent", "en"),
    ClassificationSet("massive_scenario", "mteb/amazon_massive_scenario", "en"),
    ClassificationSet("mtop_domain", "mteb/mtop_domain", "en"),
    ClassificationSet("mtop_intent", "mteb/mtop_intent", "en"),
    ClassificationSet("toxic_conversations", "mteb/toxic_conversations_50k"),
    ClassificationSet("tweet_sentiment", "mteb/tweet_sentiment_extraction"),
)


def make_triples(labels: Sequence[str], key: rng.Key) -> np.ndarray:
    """``[n, 3]`` rows (anchor, positive, negative) of indices into ``labels``.

    Anchors whose label has no other member, or no other label exists, are left out.
    """
    _, label_ids, counts = np.unique(
        np.asarray(labels, dtype=object), return_inverse=True, return_counts=True
    )
    n = len(label_ids)
    order = np.argsort(label_ids, kind="stable")  # Indices grouped by label.
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n)
    size = counts[label_ids]
    start = (np.cumsum(counts) - counts)[label_ids]
    anchors = np.flatnonzero((size > 1) & (size < n))
    size, start = size[anchors], start[anchors]
    # Positive: one of the label's other members (skip over the anchor's own slot).
    r = (rng.uniform((*key, "positive"), anchors) * (size - 1)).astype(np.int64)
    r += r >= rank[anchors] - start
    # Negative: one of the n - size members of other labels (skip over the label's block).
    s = (rng.uniform((*key, "negative"), anchors) * (n - size)).astype(np.int64)
    s += np.where(s >= start, size, 0)
    return np.stack([anchors, order[start + r], order[s]], axis=1)


def triple_records(spec: ClassificationSet, rows: Iterator[dict], seed: int) -> Iterator[Record]:
    """Records for every usable anchor; blank texts are skipped, repeated ones kept once."""
    by_text: dict[str, str] = {}  # Text -> label; the first label of a repeated text wins.
    for row in rows:
        text = str(row[spec.text_field]).strip()
        if text:
            by_text.setdefault(text, str(row[spec.label_field]))
    texts = list(by_text)
    triples = make_triples(list(by_text.values()), (seed, spec.name))
    # (anchor + offset) * odd constant mod 2**32 is one-to-one: ids are unique within the set.
    offset = int(rng.bits((seed, spec.name, "uid"), [0])[0])
    uids = ((triples[:, 0].astype(np.uint64) + np.uint64(offset)) * _UID_MULTIPLIER) % 2**32
    for (anchor, positive, negative), uid in zip(triples, uids, strict=True):
        yield Record(
            task=spec.task,
            query=texts[anchor],
            positive_text=texts[positive],
            negative_text=texts[negative],
            uid=f"{int(uid):08x}",
        )


def register_classification_set(
    spec: ClassificationSet,
    data_dir: str | None = None,
    seed: int = 0,
    text_format: str = DEFAULT_TEXT_FORMAT,
) -> str:
    """Registers ``gecko_ft_cls_{name}``: hub rows, or local files under ``data_dir/name``."""

    def read(split: str) -> Iterator[Record]:
        return triple_records(spec, spec.table.rows(split, _folder(spec.name, data_dir)), seed)

    return add_task(spec.task_name, read, symmetric=True, text_format=text_format)


def _folder(name: str, data_dir: str | None) -> str | None:
    """The set's local folder: under ``data_dir``, else, for a set with a pinned hub copy, that
    copy in the cache; None reads the set's ``hf_path`` through ``datasets``."""
    if name in HUB_COPIES:
        return str(resolve_set(name, data_dir))
    return local_dir(data_dir, name)


def classification_set(name: str) -> ClassificationSet:
    """The default set called ``name``."""
    for spec in DEFAULT_CLASSIFICATION_SETS:
        if spec.name == name:
            return spec
    known = [spec.name for spec in DEFAULT_CLASSIFICATION_SETS]
    raise ValueError(f"no classification set {name!r}; known: {known}")
