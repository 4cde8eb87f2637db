"""Packing several texts per row: the plan is complete and tight, and outputs are unchanged."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gecko_jax.models.dual_encoder import DualEncoder
from gecko_jax.models.named_configs import get_named_config
from gecko_jax.text.packing import max_segments, pack_rows, plan_calls, row_lengths


def test_row_lengths_double_up_to_max_length():
    assert row_lengths(256) == [64, 128, 256]
    assert row_lengths(300) == [64, 128, 256, 300]
    assert row_lengths(40) == [40]


def test_pack_rows_places_every_text_once_within_capacity():
    rng = np.random.default_rng(0)
    lengths = rng.integers(2, 200, size=500)
    rows = pack_rows(lengths, max_length=256)
    placed = sorted(i for _, members in rows for i in members)
    assert placed == list(range(500))
    for row_length, members in rows:
        assert row_length in row_lengths(256)
        assert sum(lengths[i] for i in members) <= row_length
        assert len(members) <= max_segments(row_length)
    slots = sum(row_length for row_length, _ in rows)
    assert lengths.sum() / slots > 0.9, "best-fit-decreasing should waste under 10%"


def test_pack_rows_rejects_overlong_text():
    with pytest.raises(ValueError, match="more than max_length"):
        pack_rows([10, 300], max_length=256)


def test_plan_calls_lays_out_tokens_segments_and_positions():
    token_ids = [[101, 5, 6, 102], [101, 7, 102], [101, *range(10, 80), 102]]
    calls = plan_calls(token_ids, max_length=128, tokens_per_call=128, pad_id=0)
    seen = {}
    for call in calls:
        assert call.input_ids.shape[1] in (64, 128)
        for row, segment, index in call.slots:
            where = call.segment_ids[row] == segment + 1
            seen[index] = call.input_ids[row][where].tolist()
            assert call.position_ids[row][where].tolist() == list(range(len(token_ids[index])))
            assert call.attention_mask[row][where].all()
    assert seen == {i: ids for i, ids in enumerate(token_ids)}


@pytest.mark.parametrize("name", ["tiny_bert", "tiny_t5"])
def test_packed_embeddings_equal_unpacked(name):
    config = get_named_config(name)
    model = DualEncoder(config)
    rng = np.random.default_rng(1)
    token_ids = [list(rng.integers(1, 120, size=n)) for n in (5, 17, 3, 30, 9, 12, 2)]
    params = jax.jit(model.init)(jax.random.key(0), jnp.ones((1, 8), jnp.int32), jnp.ones((1, 8)))
    apply = jax.jit(model.apply, static_argnums=5)
    unpacked = []
    for ids in token_ids:
        x = jnp.asarray([ids], jnp.int32)
        unpacked.append(np.asarray(apply(params, x, jnp.ones_like(x)))[0])
    packed = np.zeros_like(np.stack(unpacked))
    for call in plan_calls(token_ids, max_length=64, tokens_per_call=64, pad_id=0):
        out = apply(
            params,
            call.input_ids,
            call.attention_mask,
            call.segment_ids,
            call.position_ids,
            max_segments(call.input_ids.shape[1]),
        )
        for row, segment, index in call.slots:
            packed[index] = np.asarray(out)[row, segment]
    assert sum(len(c.slots) for c in plan_calls(token_ids, 64, 64, 0)) == len(token_ids)
    np.testing.assert_allclose(packed, np.stack(unpacked), atol=2e-5)
