"""Which examples the batch at step k holds, as a pure function of (seed, k).

Two pieces, both stateless:

- :class:`Schedule` says how many rows of each task a step draws. With single-task batches a
  step's task is drawn with the mixture rates; otherwise rows are split by systematic
  sampling, so every task gets ``floor`` or ``ceil`` of ``rate * batch`` rows. How many rows
  a task drew before step k is a cumulative sum over steps, vectorised (~10 ms per million
  steps) and cached for sequential reads.
- :class:`DrawOrder` maps a task's n-th draw to an example: exact epochs, each a fresh
  seeded permutation, so every example is seen once per epoch. With sampling groups (FRet
  task types), draws visit the groups in turn and each group runs its own epochs.

So the batch at step k needs no replay of earlier steps: a resumed run, a second process and
every host compute the same global batch.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from tasks import rng

_CHUNK = 1 << 16  # Steps per vectorised block when summing the schedule.


class Schedule:
    """Rows per task for each step of a mixture."""

    def __init__(
        self, rates: Sequence[float], batch_size: int, seed: int, single_task: bool
    ) -> None:
        rates = np.asarray(rates, np.float64)
        if rates.ndim != 1 or not len(rates) or (rates < 0).any() or rates.sum() <= 0:
            raise ValueError(f"rates must be non-negative with a positive sum, got {rates}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.batch_size = batch_size
        self.single_task = single_task
        self._seed = seed
        self._edges = np.concatenate([[0.0], np.cumsum(rates) / rates.sum()])
        self._edges[-1] = 1.0
        self._cached_step = 0
        self._cached_before = np.zeros(len(rates), np.int64)

    def counts(self, steps: np.ndarray) -> np.ndarray:
        """``[len(steps), tasks]`` row counts; every row sums to the batch size."""
        u = rng.uniform((self._seed, "schedule"), steps)[:, None]
        if self.single_task:
            # The task whose rate interval holds u takes the whole batch.
            chosen = (u >= self._edges[None, :-1]) & (u < self._edges[None, 1:])
            return chosen.astype(np.int64) * self.batch_size
        # Systematic sampling: points (i + u) / B, i < B, counted per rate interval.
        cuts = np.ceil(self.batch_size * self._edges[None, :] - u).astype(np.int64)
        return np.diff(cuts, axis=1)

    def draws_before(self, step: int) -> np.ndarray:
        """Rows each task drew in steps ``0 .. step - 1``."""
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        if step < self._cached_step:
            self._cached_step, self._cached_before[:] = 0, 0
        for start in range(self._cached_step, step, _CHUNK):
            steps = np.arange(start, min(start + _CHUNK, step))
            self._cached_before += self.counts(steps).sum(axis=0)
        self._cached_step = step
        return self._cached_before.copy()


class DrawOrder:
    """A task's n-th draw -> example index: epochs of seeded permutations, groups in turn."""

    def __init__(self, groups: Sequence[np.ndarray], key: rng.Key) -> None:
        if not groups or any(len(group) == 0 for group in groups):
            raise ValueError("every sampling group needs at least one example")
        self._groups = [np.asarray(group, np.int64) for group in groups]
        self._key = tuple(key)
        self._permutation = functools.lru_cache(maxsize=2 * len(groups))(self._new_permutation)

    def _new_permutation(self, group: int, epoch: int) -> np.ndarray:
        members = self._groups[group]
        return members[rng.permutation((*self._key, group, epoch), len(members))]

    def __call__(self, draws: np.ndarray) -> np.ndarray:
        draws = np.asarray(draws, np.int64)
        group_of, within = draws % len(self._groups), draws // len(self._groups)
        sizes = np.array([len(group) for group in self._groups])[group_of]
        epochs, positions = within // sizes, within % sizes
        out = np.empty(len(draws), np.int64)
        for group, epoch in set(zip(group_of.tolist(), epochs.tolist(), strict=True)):
            rows = (group_of == group) & (epochs == epoch)
            out[rows] = self._permutation(group, epoch)[positions[rows]]
        return out
