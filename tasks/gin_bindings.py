"""Gin configurables for training on these tasks; gin files ``import tasks.gin_bindings``.

Kept apart from the library modules so that ``tasks`` itself stays gin-free.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import gin
import numpy as np
import seqio

from gecko_jax.core.assets import minilm_path
from tasks.classification import classification_set
from tasks.defaults import register_defaults
from tasks.feature_converter import FeatureLengths
from tasks.input_pipeline import MixtureBatcher


@gin.configurable(module="tasks")
def mixture_batcher(
    global_batch_size: int,
    seed: int,
    process_index: int,
    process_count: int,
    mixture: str = gin.REQUIRED,
    query_length: int = 64,
    passage_length: int = 256,
    tokenizer: str | None = None,
    single_task_batches: bool = True,
    classification_sets: Sequence[str] | None = None,
) -> Callable[[int], dict[str, np.ndarray]]:
    """``batch(step)`` over a registered mixture or task, this host's shard of each batch.

    ``tokenizer``: a tokenizer file or model folder; None reads the offline MiniLM's.

    ``classification_sets`` re-registers the default tasks with only these of
    ``tasks.classification.DEFAULT_CLASSIFICATION_SETS`` in the unified mixtures: a run on
    local data (``GECKO_DATA_DIR``) names the sets it has files for.
    """
    if classification_sets is not None:
        register_defaults(
            classification_sets=[classification_set(name) for name in classification_sets]
        )
    batcher = MixtureBatcher(
        mixture,
        seed=seed,
        global_batch_size=global_batch_size,
        shard_info=seqio.ShardInfo(index=process_index, num_shards=process_count),
        single_task_batches=single_task_batches,
        lengths=FeatureLengths(query_length, passage_length, passage_length),
        tokenizer=tokenizer or minilm_path(),
    )
    return batcher.batch
