"""Classification by a logistic-regression probe on frozen embeddings, as MTEB scores it.

MTEB averages ten probes, each on 8 seeded examples per label; one probe on a seeded subset
(or the whole training set) is steadier per second of compute and enough for before/after
comparisons, but numbers with ``max_train_per_label=None`` run above MTEB's.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score

from gecko_jax.text.instructions import CLASSIFICATION_TASK

if TYPE_CHECKING:
    from gecko_jax.encoder import Encoder

# lbfgs on a few thousand 768-d unit vectors needs more than sklearn's default 100 steps.
MAX_ITER = 1000


def per_label_sample(labels: Sequence[str], per_label: int, seed: int) -> list[int]:
    """Indices of at most ``per_label`` seeded examples of each label, in their original order."""
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        by_label[label].append(i)
    rng = np.random.default_rng(seed)
    chosen = [
        i
        for label in sorted(by_label)
        for i in rng.permutation(by_label[label])[:per_label].tolist()
    ]
    return sorted(chosen)


def evaluate_classification(
    encoder: Encoder,
    train_texts: Sequence[str],
    train_labels: Sequence[str],
    test_texts: Sequence[str],
    test_labels: Sequence[str],
    task: str = CLASSIFICATION_TASK,
    seed: int = 0,
    max_train_per_label: int | None = None,
    batch_size: int = 64,
) -> dict[str, float]:
    """Accuracy and macro F1 of a logistic regression trained on the train embeddings.

    Texts get ``task: {task} | query: ...`` (Table 9); ``max_train_per_label`` keeps a seeded
    subset of the training set per label.
    """
    if max_train_per_label is not None:
        keep = per_label_sample(train_labels, max_train_per_label, seed)
        train_texts = [train_texts[i] for i in keep]
        train_labels = [train_labels[i] for i in keep]
    train = encoder.encode_queries(train_texts, task=task, batch_size=batch_size)
    test = encoder.encode_queries(test_texts, task=task, batch_size=batch_size)
    probe = LogisticRegression(max_iter=MAX_ITER, random_state=seed)
    predicted = probe.fit(train, list(train_labels)).predict(test)
    return {
        "accuracy": float(accuracy_score(test_labels, predicted)),
        "f1_macro": float(f1_score(test_labels, predicted, average="macro")),
    }
