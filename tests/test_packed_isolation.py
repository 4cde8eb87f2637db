"""A non-finite text in a packed row changes nothing for the texts packed beside it.

Damaged weights or a bf16 overflow can make one text's hidden states NaN; the attention mask
and the per-text pooling must keep that NaN inside its own text (0 * NaN is NaN, so masks
that multiply would spread it to the whole row).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gecko_jax import Encoder
from gecko_jax.models.dual_encoder import DualEncoder
from gecko_jax.models.named_configs import get_named_config
from gecko_jax.text.packing import max_segments, plan_calls

POISON = 7  # the token whose embedding row is made NaN; only one text uses it
WORD_EMBEDDINGS = {"bert": ("embeddings", "word", "embedding"), "t5": ("embedding",)}


def _poisoned(params: dict, path: tuple[str, ...], row: int) -> dict:
    """``params`` with row ``row`` of the backbone table at ``path`` set to NaN."""
    params = jax.tree_util.tree_map(np.array, params)
    table = params["params"]["backbone"]
    for key in path[:-1]:
        table = table[key]
    table[path[-1]][row] = np.nan
    return params


@pytest.mark.parametrize("name", ["tiny_bert", "tiny_t5"])
def test_nan_text_leaves_its_row_neighbours_unchanged(name):
    config = get_named_config(name)
    model = DualEncoder(config)
    rng = np.random.default_rng(2)
    token_ids = [[int(t) for t in rng.integers(8, 120, size=n)] for n in (9, 5, 17, 3, 12, 6)]
    token_ids[2][4] = POISON
    ones = jnp.ones((1, 8), jnp.int32)
    shapes = jax.eval_shape(model.init, jax.random.key(0), ones, ones)
    params = jax.tree_util.tree_map(
        lambda s: rng.normal(0, 0.5, s.shape).astype(np.float32), nn.unbox(shapes)
    )
    params = _poisoned(params, WORD_EMBEDDINGS[config.encoder.architecture], POISON)
    apply = jax.jit(model.apply, static_argnums=5)

    calls = plan_calls(token_ids, max_length=64, tokens_per_call=64, pad_id=0)
    assert len(calls) == 1 and len(calls[0].slots) == len(token_ids), "all in one row"
    call = calls[0]
    out = np.asarray(
        apply(
            params,
            call.input_ids,
            call.attention_mask,
            call.segment_ids,
            call.position_ids,
            max_segments(call.input_ids.shape[1]),
        )
    )
    packed = {index: out[row, segment] for row, segment, index in call.slots}
    assert np.isnan(packed.pop(2)).all(), "the poisoned text itself shows the damage"
    # The clean texts alone: one right-padded batch, no packing.
    clean = sorted(packed)
    ids = np.zeros((len(clean), max(len(token_ids[i]) for i in clean)), np.int32)
    for row, index in enumerate(clean):
        ids[row, : len(token_ids[index])] = token_ids[index]
    alone = np.asarray(apply(params, ids, (ids > 0).astype(np.int32)))
    np.testing.assert_allclose(np.stack([packed[i] for i in clean]), alone, atol=2e-5)


def test_encoder_keeps_a_nan_text_to_itself(minilm_encoder):
    texts = [
        "A man is playing a guitar on the stage.",
        "The zebra grazes near the river at dawn.",
        "Two dogs run across a snowy field.",
        "She reads a book in the quiet library.",
    ]
    clean = [0, 2, 3]
    tokenizer, max_length = minilm_encoder.tokenizer, minilm_encoder.config.max_length
    ids = tokenizer.encode(texts, max_length)
    (call,) = plan_calls(ids, max_length, 64 * 16, tokenizer.pad_id)
    assert {row for row, _, _ in call.slots} == {0}, "all four texts share one row"
    only_poisoned = set(ids[1]) - {token for i in clean for token in ids[i]}
    params = {"params": minilm_encoder.params}
    params = _poisoned(params, WORD_EMBEDDINGS["bert"], min(only_poisoned))["params"]
    damaged = Encoder(minilm_encoder.config, params, tokenizer, minilm_encoder.tokenizer_file)

    together = damaged.encode(texts)
    assert np.isnan(together[1]).all()
    alone = np.concatenate([damaged.encode([texts[i]]) for i in clean])
    np.testing.assert_allclose(together[clean], alone, atol=1e-5)
    healthy = minilm_encoder.encode(texts)[clean]
    np.testing.assert_allclose(together[clean], healthy, atol=1e-5)
