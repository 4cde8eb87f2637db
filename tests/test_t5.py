"""T5 encoder: parity with Hugging Face, weight import errors, parameter counts, bf16, remat."""

from __future__ import annotations

import math
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from safetensors.numpy import load_file, save_file
from transformers import T5Config, T5EncoderModel, T5Model
from transformers.models.t5.modeling_t5 import T5Attention

from gecko_jax.models.config import EncoderConfig
from gecko_jax.models.named_configs import get_named_config
from gecko_jax.models.t5 import (
    T5Encoder,
    relative_position_bucket,
    t5_config_from_hf,
    t5_params_from_hf,
)
from gecko_jax.models.weights import TensorSource, WeightImportError

HF_KWARGS = dict(
    vocab_size=128,
    d_model=32,
    d_kv=8,
    num_heads=4,
    d_ff=64,
    num_layers=2,
    feed_forward_proj="gated-gelu",
    relative_attention_num_buckets=8,
    relative_attention_max_distance=16,
    dropout_rate=0.0,
    layer_norm_epsilon=1e-6,
    pad_token_id=0,
)
Q_KEY = "encoder.block.1.layer.0.SelfAttention.q.weight"


@pytest.fixture(scope="module")
def hf_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[T5EncoderModel, Path]:
    """A tiny random HF encoder saved as safetensors, with non-trivial norm scales."""
    torch.manual_seed(0)
    model = T5EncoderModel(T5Config(**HF_KWARGS)).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            # HF initialises norm scales to 1; randomise them so their mapping is tested.
            if "layer_norm" in name:
                param.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("t5")
    model.save_pretrained(path, safe_serialization=True)
    return model, path / "model.safetensors"


def _inputs(batch: int, length: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, HF_KWARGS["vocab_size"], size=(batch, length)).astype(np.int32)
    mask = np.ones((batch, length), np.int32)
    mask[1, length - 3 :] = 0
    mask[2, length // 2 :] = 0
    ids[mask == 0] = HF_KWARGS["pad_token_id"]
    return ids, mask


def _tiny_config() -> EncoderConfig:
    return t5_config_from_hf(HF_KWARGS)


def _load(path: Path) -> dict:
    return t5_params_from_hf(TensorSource.from_file(path), _tiny_config())


@pytest.mark.parametrize("length", [12, 40])  # 40 > max_distance: log and saturated buckets
def test_matches_hf(hf_checkpoint: tuple[T5EncoderModel, Path], length: int) -> None:
    hf_model, path = hf_checkpoint
    source = TensorSource.from_file(path)
    params = t5_params_from_hf(source, _tiny_config())
    assert source.unused() == [] or source.unused() == ["encoder.embed_tokens.weight"]

    ids, mask = _inputs(3, length)
    ours = np.asarray(jax.jit(T5Encoder(_tiny_config()).apply)({"params": params}, ids, mask))
    with torch.no_grad():
        theirs = hf_model(
            input_ids=torch.from_numpy(ids).long(), attention_mask=torch.from_numpy(mask).long()
        ).last_hidden_state.numpy()
    diff = np.abs(ours - theirs)[mask > 0].max()
    assert diff < 1e-4, diff


def test_full_t5model_checkpoint(tmp_path: Path) -> None:
    """A T5Model file (shared embedding plus decoder) loads; decoder keys are ignored."""
    torch.manual_seed(1)
    hf_model = T5Model(T5Config(**HF_KWARGS)).eval()
    hf_model.save_pretrained(tmp_path, safe_serialization=True)
    source = TensorSource.from_file(tmp_path / "model.safetensors")
    params = t5_params_from_hf(source, _tiny_config())
    assert all(key.startswith("decoder.") for key in source.unused())

    ids, mask = _inputs(3, 12)
    ours = np.asarray(jax.jit(T5Encoder(_tiny_config()).apply)({"params": params}, ids, mask))
    with torch.no_grad():
        theirs = hf_model.encoder(
            input_ids=torch.from_numpy(ids).long(), attention_mask=torch.from_numpy(mask).long()
        ).last_hidden_state.numpy()
    assert np.abs(ours - theirs)[mask > 0].max() < 1e-4


def test_param_tree_matches_init(hf_checkpoint: tuple[T5EncoderModel, Path]) -> None:
    _, path = hf_checkpoint
    ids, mask = _inputs(3, 12)
    init = nn.unbox(jax.eval_shape(T5Encoder(_tiny_config()).init, jax.random.key(0), ids, mask))
    init = init["params"]
    loaded = _load(path)
    assert jax.tree.structure(loaded) == jax.tree.structure(init)
    for got, want in zip(jax.tree.leaves(loaded), jax.tree.leaves(init), strict=True):
        assert isinstance(got, np.ndarray) and got.dtype == np.float32
        assert got.shape == want.shape


def test_embedding_under_encoder_key(hf_checkpoint: tuple[T5EncoderModel, Path], tmp_path: Path):
    _, path = hf_checkpoint
    tensors = load_file(str(path))
    reference = _load(path)
    tensors["encoder.embed_tokens.weight"] = tensors.pop("shared.weight")
    renamed = tmp_path / "renamed.safetensors"
    save_file(tensors, str(renamed))
    np.testing.assert_array_equal(_load(renamed)["embedding"], reference["embedding"])


@pytest.mark.parametrize("num_buckets,max_distance", [(8, 16), (32, 128)])
def test_buckets_match_hf(num_buckets: int, max_distance: int) -> None:
    relative = np.arange(-300, 301)
    ours = relative_position_bucket(jnp.asarray(relative), num_buckets, max_distance)
    theirs = T5Attention._relative_position_bucket(
        torch.from_numpy(relative), True, num_buckets, max_distance
    )
    np.testing.assert_array_equal(np.asarray(ours), theirs.numpy())


def test_missing_key(hf_checkpoint: tuple[T5EncoderModel, Path], tmp_path: Path) -> None:
    _, path = hf_checkpoint
    tensors = load_file(str(path))
    key = "encoder.block.1.layer.1.DenseReluDense.wi_1.weight"
    del tensors[key]
    broken = tmp_path / "missing.safetensors"
    save_file(tensors, str(broken))
    with pytest.raises(WeightImportError) as err:
        _load(broken)
    assert key in str(err.value) and str(broken) in str(err.value)


def test_shape_mismatch(hf_checkpoint: tuple[T5EncoderModel, Path], tmp_path: Path) -> None:
    _, path = hf_checkpoint
    tensors = load_file(str(path))
    tensors[Q_KEY] = np.zeros((16, 32), np.float32)
    broken = tmp_path / "shape.safetensors"
    save_file(tensors, str(broken))
    with pytest.raises(WeightImportError) as err:
        _load(broken)
    message = str(err.value)
    assert Q_KEY in message and str(broken) in message
    assert "(16, 32)" in message and "(32, 32)" in message


def test_config_rejects_relu() -> None:
    with pytest.raises(ValueError, match="relu"):
        t5_config_from_hf({**HF_KWARGS, "feed_forward_proj": "relu"})


def test_config_from_hf_fields() -> None:
    config = _tiny_config()
    assert (config.hidden_size, config.head_dim, config.intermediate_size) == (32, 8, 64)
    assert config.relative_attention_num_buckets == 8
    assert config.relative_attention_max_distance == 16
    assert config.hidden_act == "gelu_new" and config.architecture == "t5"


def _abstract_param_count(config: EncoderConfig) -> int:
    ids = jnp.zeros((1, 8), jnp.int32)
    shapes = jax.eval_shape(T5Encoder(config).init, jax.random.key(0), ids, ids)
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(shapes["params"]))


def _formula_param_count(c: EncoderConfig) -> int:
    """Embedding + per layer (q, k, v, o; wi_0, wi_1, wo; two norms) + bias table + final norm."""
    inner = c.num_heads * c.attention_head_dim
    per_layer = 4 * c.hidden_size * inner + 3 * c.hidden_size * c.intermediate_size
    per_layer += 2 * c.hidden_size
    table = c.relative_attention_num_buckets * c.num_heads
    return c.vocab_size * c.hidden_size + c.num_layers * per_layer + table + c.hidden_size


def test_param_counts() -> None:
    base = get_named_config("t5_base_encoder").encoder
    gecko = get_named_config("gecko_1b").encoder
    base_count, gecko_count = _abstract_param_count(base), _abstract_param_count(gecko)
    assert base_count == _formula_param_count(base) == 109_628_544
    assert gecko_count == _formula_param_count(gecko) == 1_223_527_424
    assert 1.15e9 < gecko_count < 1.3e9


def test_bfloat16_close_to_float32(hf_checkpoint: tuple[T5EncoderModel, Path]) -> None:
    _, path = hf_checkpoint
    ids, mask = _inputs(3, 40)
    model_bf16 = T5Encoder(_tiny_config(), dtype=jnp.bfloat16)
    # Abstract init: same dtypes as a real one, without compiling the random initialisers.
    init = nn.unbox(jax.eval_shape(model_bf16.init, jax.random.key(0), ids, mask))["params"]
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(init))

    params = {"params": _load(path)}
    out16 = jax.jit(model_bf16.apply)(params, ids, mask)
    out32 = jax.jit(T5Encoder(_tiny_config()).apply)(params, ids, mask)
    assert out16.dtype == jnp.bfloat16 and out32.dtype == jnp.float32
    a, b = np.asarray(out16, np.float32)[mask > 0], np.asarray(out32)[mask > 0]
    cosine = np.sum(a * b, -1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    assert cosine.min() > 0.99, cosine.min()


def test_remat_same_outputs_and_grads(hf_checkpoint: tuple[T5EncoderModel, Path]) -> None:
    _, path = hf_checkpoint
    params = jax.tree.map(jnp.asarray, _load(path))
    ids, mask = _inputs(3, 20)

    def loss(params: dict, remat: bool) -> jax.Array:
        return jnp.sum(T5Encoder(_tiny_config(), remat=remat).apply({"params": params}, ids, mask))

    grad_fn = jax.jit(jax.value_and_grad(loss), static_argnums=1)
    plain_value, plain_grads = grad_fn(params, False)
    remat_value, remat_grads = grad_fn(params, True)
    # remat must really be in the graph (one per block), not just give equal numbers.
    for remat, expected in ((True, HF_KWARGS["num_layers"]), (False, 0)):
        jaxpr = jax.make_jaxpr(loss, static_argnums=1)(params, remat).jaxpr
        assert sum(eqn.primitive.name == "remat2" for eqn in jaxpr.eqns) == expected
    np.testing.assert_allclose(remat_value, plain_value, rtol=1e-6)
    # Float32 rounding differs where the recomputed forward is fused differently: the bound
    # scales with each gradient's magnitude (up to ~25 here).
    for got, want in zip(jax.tree.leaves(remat_grads), jax.tree.leaves(plain_grads), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6 * max(1.0, np.abs(want).max()))
