"""In-memory, step-indexed input: the batch for (seed, step) is a pure function.

Each epoch is a seeded permutation of the examples; step k takes the k-th slice of the
concatenated epochs. A resumed run asks for step k again and gets the same rows, and each
host takes its own contiguous share of every global batch.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from gecko_jax.features import validate_batch


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

    def _epoch_order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.num_examples)

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
