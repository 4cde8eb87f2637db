"""The in-memory batcher: batches are a pure function of (seed, step), drawn from tasks.rng."""

import numpy as np
import pytest

from tasks import rng
from tasks.array_input import ArrayBatcher, random_token_features

NUM_EXAMPLES, BATCH = 10, 4  # two batches an epoch; the last two examples wait a turn


def _batcher(**kwargs) -> ArrayBatcher:
    return ArrayBatcher(random_token_features(NUM_EXAMPLES, 4, 6, 50), BATCH, **kwargs)


def test_a_step_is_the_same_batch_in_any_batcher_and_any_order():
    first, second = _batcher(seed=3), _batcher(seed=3)
    forward = [first.global_indices(step) for step in range(6)]
    backward = [second.global_indices(step) for step in reversed(range(6))][::-1]
    np.testing.assert_array_equal(forward, backward)
    assert not np.array_equal(forward, [_batcher(seed=4).global_indices(s) for s in range(6)])


def test_each_epoch_is_a_permutation_from_tasks_rng():
    batcher = _batcher(seed=3)
    for epoch in range(3):
        order = rng.permutation((3, "array_epoch", epoch), NUM_EXAMPLES)
        steps = [batcher.global_indices(2 * epoch + slot) for slot in range(2)]
        np.testing.assert_array_equal(np.concatenate(steps), order[: 2 * BATCH])
    assert len({tuple(batcher.global_indices(2 * e)) for e in range(3)}) == 3  # epochs differ


def test_hosts_take_contiguous_shares_of_the_global_batch():
    single = _batcher(seed=1)
    hosts = [_batcher(seed=1, process_index=i, process_count=2) for i in range(2)]
    for step in range(5):
        whole = single(step)
        shares = [host(step) for host in hosts]
        for name, value in whole.items():
            np.testing.assert_array_equal(np.concatenate([s[name] for s in shares]), value)
        assert len(shares[0]["query_input_ids"]) == BATCH // 2


def test_a_batch_that_cannot_be_split_or_filled_is_refused():
    features = random_token_features(NUM_EXAMPLES, 4, 6, 50)
    with pytest.raises(ValueError, match="does not split over 3 hosts"):
        ArrayBatcher(features, BATCH, process_count=3)
    with pytest.raises(ValueError, match="fewer than one global batch"):
        ArrayBatcher(features, NUM_EXAMPLES + 1)
