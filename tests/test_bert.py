"""BERT-family backbone: exact parity with sentence-transformers, loading errors, shapes."""

import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from gecko_jax import Encoder
from gecko_jax.models.config import DualEncoderConfig
from gecko_jax.models.dual_encoder import DualEncoder
from gecko_jax.models.named_configs import NAMED_CONFIGS, get_named_config
from gecko_jax.models.weights import WeightImportError


def test_minilm_matches_sentence_transformers(minilm_dir, minilm_encoder, real_sentences):
    from sentence_transformers import SentenceTransformer

    texts = real_sentences[:256]
    reference = SentenceTransformer(str(minilm_dir), device="cpu").encode(
        texts, batch_size=32, convert_to_numpy=True, normalize_embeddings=True
    )
    ours = minilm_encoder.encode(texts, batch_size=32)
    cosines = np.sum(ours * reference, axis=1)
    assert ours.shape == (256, 384)
    assert cosines.min() >= 0.9999, f"worst cosine {cosines.min():.6f}"


def test_minilm_loads_into_named_config_shapes(minilm_encoder):
    backbone = minilm_encoder.config.encoder
    assert backbone == get_named_config("minilm_l6").encoder
    assert minilm_encoder.config.pooling == "mean"
    assert minilm_encoder.config.max_length == 256


def _copy_model(src, dst):
    shutil.copytree(src, dst)
    return dst


def test_missing_key_names_key_and_file(minilm_dir, tmp_path):
    folder = _copy_model(minilm_dir, tmp_path / "m")
    weights = folder / "model.safetensors"
    tensors = load_file(str(weights))
    victim = next(k for k in tensors if k.endswith("encoder.layer.3.intermediate.dense.weight"))
    del tensors[victim]
    save_file(tensors, str(weights))
    with pytest.raises(WeightImportError) as err:
        Encoder.from_pretrained(folder)
    assert "encoder.layer.3.intermediate.dense.weight" in str(err.value)
    assert str(weights) in str(err.value)


def test_shape_mismatch_names_key_file_and_shapes(minilm_dir, tmp_path):
    folder = _copy_model(minilm_dir, tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    config["intermediate_size"] = 1024
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(WeightImportError) as err:
        Encoder.from_pretrained(folder)
    message = str(err.value)
    assert "encoder.layer.0.intermediate.dense.weight" in message
    assert "model.safetensors" in message
    assert "(384, 1536)" in message and "(384, 1024)" in message


def test_unknown_architecture_is_a_clear_error(minilm_dir, tmp_path):
    folder = _copy_model(minilm_dir, tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = "gpt2"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"unknown architecture.*gpt2.*config\.json"):
        Encoder.from_pretrained(folder)


def _param_count(config: DualEncoderConfig) -> int:
    ids = jnp.zeros((1, 8), jnp.int32)
    shapes = jax.eval_shape(lambda: DualEncoder(config).init(jax.random.key(0), ids, ids))
    return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(shapes))


def test_named_config_parameter_counts():
    assert set(NAMED_CONFIGS) >= {"minilm_l6", "bert_base", "t5_base_encoder", "gecko_1b"}
    # The published counts less their pooler layers, which embeddings never use.
    assert _param_count(get_named_config("minilm_l6")) == 22_565_376
    assert _param_count(get_named_config("bert_base")) == 108_891_648
    gecko = get_named_config("gecko_1b")
    assert gecko.output_dim == 768 and gecko.mrl_dims == (768, 256)
    count = _param_count(gecko)
    # T5-XL encoder (~1.22B) plus the 2048 -> 768 projection.
    assert 1.2e9 < count < 1.25e9
    assert count - _param_count(DualEncoderConfig(gecko.encoder)) == 2048 * 768


def test_bf16_compute_keeps_fp32_params_and_tracks_fp32(minilm_dir, real_sentences):
    fp32 = Encoder.from_pretrained(minilm_dir)
    bf16 = Encoder.from_pretrained(minilm_dir, dtype="bfloat16")
    leaves = jax.tree_util.tree_leaves(bf16.params)
    assert all(x.dtype == jnp.float32 for x in leaves)
    texts = real_sentences[:32]
    a, b = fp32.encode(texts), bf16.encode(texts)
    assert b.dtype == np.float32
    assert np.sum(a * b, axis=1).min() > 0.99


def test_a_bf16_checkpoint_loads_as_its_float32_values(minilm_dir, minilm_encoder, tmp_path):
    """A folder whose weights were saved in bf16 (as hub checkpoints often are) loads, every
    parameter equal to the float32 original rounded to bf16."""
    import ml_dtypes
    import torch
    from safetensors.torch import save_file as save_torch_file

    folder = tmp_path / "minilm_bf16"
    shutil.copytree(minilm_dir, folder)
    tensors = load_file(str(minilm_dir / "model.safetensors"))
    save_torch_file(
        {k: torch.from_numpy(v).to(torch.bfloat16) for k, v in tensors.items()},
        str(folder / "model.safetensors"),
    )
    loaded = jax.tree_util.tree_leaves(Encoder.from_pretrained(folder).params)
    original = jax.tree_util.tree_leaves(minilm_encoder.params)
    for value, reference in zip(loaded, original, strict=True):
        rounded = np.asarray(reference).astype(ml_dtypes.bfloat16).astype(np.float32)
        assert value.dtype == jnp.float32
        np.testing.assert_array_equal(np.asarray(value), rounded)


def test_remat_gives_same_outputs_and_gradients():
    config = get_named_config("tiny_bert")
    ids = jnp.array(np.random.default_rng(0).integers(1, 100, (4, 12)), jnp.int32)
    mask = jnp.ones_like(ids).at[1, 8:].set(0)
    params = jax.jit(DualEncoder(config).init)(jax.random.key(1), ids, mask)["params"]
    remat = DualEncoderConfig.from_dict({**config.to_dict(), "remat": True})

    def loss(p, cfg):
        return jnp.sum(DualEncoder(cfg).apply({"params": p}, ids, mask) ** 3)

    np.testing.assert_allclose(
        DualEncoder(config).apply({"params": params}, ids, mask),
        DualEncoder(remat).apply({"params": params}, ids, mask),
        atol=1e-6,
    )
    grad = jax.jit(jax.grad(loss), static_argnums=1)
    g1, g2 = grad(params, config), grad(params, remat)
    for x, y in zip(jax.tree_util.tree_leaves(g1), jax.tree_util.tree_leaves(g2), strict=True):
        np.testing.assert_allclose(x, y, atol=1e-6)


def test_every_parameter_has_logical_axes():
    for name in ("tiny_bert", "tiny_t5"):
        config = DualEncoderConfig.from_dict(
            {**get_named_config(name).to_dict(), "projection_dim": 16, "mrl_dims": [16]}
        )
        ids = jnp.ones((2, 8), jnp.int32)
        model = DualEncoder(config)
        boxed = jax.eval_shape(model.init, jax.random.key(0), ids, ids)
        leaves = jax.tree_util.tree_leaves(boxed["params"], is_leaf=lambda x: hasattr(x, "names"))
        assert leaves and all(hasattr(x, "names") for x in leaves), name
        for leaf in leaves:
            assert len(leaf.names) == len(leaf.value.shape)
