"""Deterministic, resumable training batches from a seqio mixture.

Each task is read once through ``Task.get_dataset`` (unshuffled, so in a fixed order) into
an in-memory store of its formatted texts. The batch at step k is then a pure function of
(seed, k) (:mod:`tasks.sampling`): resuming at step k, a second process, or another host all
compute the same global batch, with no tf.data iterator state to checkpoint. Each host takes
its ``seqio.ShardInfo`` slice of the global batch and tokenizes only that.

Memory: the stores hold every example's texts (~1.5 KB each; FRet's 6.6M would be ~10 GB
per host). Beyond that, write each task once to an indexed format (ArrayRecord) and read the
selected rows by index: the selection code stays the same.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator

import numpy as np
import seqio

from gecko_jax.text.tokenizers import Tokenizer
from tasks import rng
from tasks.decontamination import decontaminate
from tasks.feature_converter import DEFAULT_LENGTHS, FeatureConverter, FeatureLengths
from tasks.sampling import DrawOrder, Schedule

logger = logging.getLogger(__name__)

_TEXT_COLUMNS = (
    "formatted_query",
    "formatted_positive",
    "formatted_negative",
    "query",
    "positive_text",
    "task",
    "group",
)


def materialise(task: seqio.Task, split: str) -> dict[str, np.ndarray]:
    """A task's examples as columns: texts (object arrays of str) and ``has_negative``."""
    dataset = task.get_dataset(sequence_length=None, split=split, shuffle=False)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in (*_TEXT_COLUMNS, "has_negative")}
    for batch in dataset.batch(4096).as_numpy_iterator():
        for name in _TEXT_COLUMNS:
            parts[name].append(np.array([v.decode("utf-8") for v in batch[name]], dtype=object))
        parts["has_negative"].append(batch["has_negative"].astype(np.int32))
    if not parts["query"]:
        raise ValueError(f"task {task.name!r} has no {split!r} examples")
    return {name: np.concatenate(values) for name, values in parts.items()}


class MixtureBatcher:
    """Batches of trainer features for a seqio mixture (or a single task), by step.

    ``batch(step)`` returns this host's ``global_batch_size / shard_info.num_shards`` rows as
    :data:`gecko_jax.text.features.FIELDS`; ``task_id`` indexes ``task_names`` (the mixture's
    tasks, sorted). ``single_task_batches`` draws each batch from one task, since in-batch
    negatives from unrelated tasks teach nothing (Gemini Embedding does the same).
    ``eval_texts`` (evaluation queries and corpus) are removed from the training examples;
    ``decontamination_counts`` says how many per task.
    """

    def __init__(
        self,
        mixture_or_task: str,
        *,
        seed: int,
        global_batch_size: int,
        shard_info: seqio.ShardInfo | None = None,
        single_task_batches: bool = True,
        tokenizer: Tokenizer | str | os.PathLike[str],
        lengths: FeatureLengths = DEFAULT_LENGTHS,
        split: str = "train",
        eval_texts: Iterable[str] = (),
    ) -> None:
        shard_info = shard_info or seqio.ShardInfo(index=0, num_shards=1)
        if global_batch_size % shard_info.num_shards:
            raise ValueError(
                f"global_batch_size {global_batch_size} is not divisible by "
                f"{shard_info.num_shards} shards"
            )
        provider = seqio.get_mixture_or_task(mixture_or_task)
        subtasks = seqio.get_subtasks(provider)  # Sorted by name.
        is_mixture = isinstance(provider, seqio.Mixture)
        rates = [provider.get_rate(t) if is_mixture else 1.0 for t in subtasks]
        self.task_names = tuple(t.name for t in subtasks)
        self.rates = np.asarray(rates, np.float64) / sum(rates)
        self.global_batch_size = global_batch_size
        self.shard_info = shard_info
        self._seed = seed
        self._schedule = Schedule(rates, global_batch_size, seed, single_task_batches)
        self._converter = FeatureConverter(tokenizer, lengths)
        stores = {
            task.name: materialise(task, split)
            for task, rate in zip(subtasks, rates, strict=True)
            if rate > 0
        }
        self._stores, self.decontamination_counts = decontaminate(stores, eval_texts)
        self._orders = {name: self._draw_order(name) for name in self._stores}

    def _draw_order(self, name: str) -> DrawOrder:
        """How the task's draws map to examples, one sampling group per distinct ``group``."""
        group = self._stores[name]["group"]
        if not len(group):
            raise ValueError(f"decontamination removed every example of task {name!r}")
        return DrawOrder([np.flatnonzero(group == g) for g in np.unique(group)], (self._seed, name))

    def select(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """(task index, example index) of each row of the global batch at ``step``.

        Rows are shuffled, so each host's slice of a mixed batch mixes tasks too.
        """
        before = self._schedule.draws_before(step)
        counts = self._schedule.counts(np.array([step]))[0]
        task_ids, example_ids = [], []
        for task_id in np.flatnonzero(counts):
            draws = before[task_id] + np.arange(counts[task_id])
            task_ids.append(np.full(counts[task_id], task_id))
            example_ids.append(self._orders[self.task_names[task_id]](draws))
        order = rng.permutation((self._seed, "rows", step), self.global_batch_size)
        return np.concatenate(task_ids)[order], np.concatenate(example_ids)[order]

    def _host_rows(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        task_ids, example_ids = self.select(step)
        size = self.global_batch_size // self.shard_info.num_shards
        rows = slice(self.shard_info.index * size, (self.shard_info.index + 1) * size)
        return task_ids[rows], example_ids[rows]

    def examples(self, step: int) -> list[dict[str, str]]:
        """This host's rows at ``step`` as texts, with their task names (for inspection)."""
        return [
            {
                "task_name": self.task_names[t],
                **{name: self._stores[self.task_names[t]][name][e] for name in _TEXT_COLUMNS},
            }
            for t, e in zip(*self._host_rows(step), strict=True)
        ]

    def batch(self, step: int) -> dict[str, np.ndarray]:
        """This host's features at ``step``."""
        task_ids, example_ids = self._host_rows(step)

        def column(name: str) -> list:
            return [
                self._stores[self.task_names[t]][name][e]
                for t, e in zip(task_ids, example_ids, strict=True)
            ]

        return self._converter(
            column("formatted_query"),
            column("formatted_positive"),
            column("formatted_negative"),
            np.array(column("has_negative"), np.int32),
            task_ids,
        )

    def from_step(self, step: int = 0) -> Iterator[dict[str, np.ndarray]]:
        """Batches ``step, step + 1, ...``: what an uninterrupted run sees from there."""
        while True:
            yield self.batch(step)
            step += 1
