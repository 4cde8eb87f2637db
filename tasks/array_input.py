"""In-memory, step-indexed input (the batch for (seed, step) is a pure function), and random
token triples to feed it in smoke runs and throughput benchmarks.

Each epoch is a permutation of the examples drawn from :mod:`tasks.rng`, as the seqio
pipeline's randomness is; step k takes the k-th slice of the concatenated epochs. A resumed
run asks for step k again and gets the same rows, and each host takes its own contiguous
share of every global batch.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import numpy as np

from gecko_jax.text.features import validate_batch
from tasks import rng


class ArrayBatcher:
    def __init__(
        self,
        features: Mapping[str, np.ndarray],
        global_batch_size: int,
        seed: int = 0,
        process_index: int = 0,
        process_count: int = 1,
    ):
        self.num_examples = validate_batch(features)
        if global_batch_size % process_count:
            raise ValueError(
                f"global batch {global_batch_size} does not split over {process_count} hosts"
            )
        if self.num_examples < global_batch_size:
            raise ValueError(
                f"{self.num_examples} examples are fewer than one global batch "
                f"({global_batch_size})"
            )
        self.features = {name: np.asarray(value) for name, value in features.items()}
        self.global_batch_size = global_batch_size
        self.seed = seed
        self.process_index = process_index
        self.process_count = process_count
        # Consecutive steps share an epoch: draw its order once, not once per step.
        self._epoch_order = functools.lru_cache(maxsize=2)(self._draw_epoch_order)

    def _draw_epoch_order(self, epoch: int) -> np.ndarray:
        return rng.permutation((self.seed, "array_epoch", epoch), self.num_examples)

    def global_indices(self, step: int) -> np.ndarray:
        # Batches never straddle epochs: the tail of an epoch that cannot fill one is skipped.
        per_epoch = self.num_examples // self.global_batch_size
        epoch, slot = divmod(step, per_epoch)
        start = slot * self.global_batch_size
        return self._epoch_order(epoch)[start : start + self.global_batch_size]

    def __call__(self, step: int) -> dict[str, np.ndarray]:
        """This host's rows of the global batch for ``step``."""
        indices = self.global_indices(step)
        share = self.global_batch_size // self.process_count
        mine = indices[self.process_index * share : (self.process_index + 1) * share]
        return {name: value[mine] for name, value in self.features.items()}


def random_token_features(
    num_examples: int,
    query_length: int,
    passage_length: int,
    vocab_size: int,
    seed: int = 0,
    full_length: bool = False,
) -> dict[str, np.ndarray]:
    """Random token triples in the trainer's format: for smoke runs and throughput benchmarks.

    Rows are right-padded to random lengths, or use every position with ``full_length``.
    """
    rng = np.random.default_rng(seed)
    features: dict[str, np.ndarray] = {}
    for field, length in (
        ("query", query_length),
        ("positive", passage_length),
        ("negative", passage_length),
    ):
        ids = rng.integers(1, vocab_size, size=(num_examples, length)).astype(np.int32)
        if full_length:
            mask = np.ones_like(ids)
        else:
            lengths = rng.integers(2, length + 1, size=num_examples)
            mask = (np.arange(length)[None] < lengths[:, None]).astype(np.int32)
        features[f"{field}_input_ids"] = ids * mask
        features[f"{field}_attention_mask"] = mask
    features.update(
        has_negative=np.ones(num_examples, np.int32),
        task_id=np.zeros(num_examples, np.int32),
        query_text_hash=np.arange(num_examples, dtype=np.int32),
        positive_text_hash=np.arange(num_examples, dtype=np.int32) + num_examples,
        example_mask=np.ones(num_examples, np.int32),
    )
    return features
