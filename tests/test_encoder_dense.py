"""sentence-transformers folders with a Dense module (LaBSE, GTR) embed as sentence-transformers.

The folders are real: the offline MiniLM with a seeded Dense module appended, saved by the
installed sentence-transformers.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jax
import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from sentence_transformers import SentenceTransformer
from sentence_transformers.models import Dense

from gecko_jax import Encoder
from gecko_jax.model_io.sentence_transformers import export_sentence_transformers
from gecko_jax.model_io.st_modules import read_pooling
from gecko_jax.models.config import DualEncoderConfig
from gecko_jax.training.config import TrainConfig
from gecko_jax.training.trainer import _load_init_params

MAX_ABS_DIFF = 1e-5
WIDTH = 384
TEXTS = [
    "A man is playing a guitar on stage.",
    "",
    "Überraschung! 東京は日本の首都です。",
    "3.14159 is pi; e = 2.71828, and 1e-5 is small.",
    "What is the capital of France?",
    "long " * 400,  # past MiniLM's 256 tokens: the max length must be read as ST reads it
]


def _dense(
    in_features: int, out_features: int, bias: bool, activation: torch.nn.Module | None
) -> Dense:
    torch.manual_seed(0)
    return Dense(in_features, out_features, bias=bias, activation_function=activation)


def _save(base: SentenceTransformer, denses: list[Dense], out: Path) -> Path:
    """MiniLM's Transformer and Pooling, then ``denses``, then its Normalize, saved by ST."""
    transformer, pooling, normalize = base
    modules = [transformer, pooling, *denses, normalize]
    SentenceTransformer(modules=modules, device="cpu").save(str(out))
    return out


@pytest.fixture(scope="module")
def minilm_st(minilm_dir) -> SentenceTransformer:
    return SentenceTransformer(str(minilm_dir), device="cpu")


@pytest.fixture(scope="module")
def tanh_dir(minilm_st, tmp_path_factory) -> Path:
    """LaBSE's Dense: bias and Tanh, width kept."""
    dense = _dense(WIDTH, WIDTH, True, torch.nn.Tanh())
    return _save(minilm_st, [dense], tmp_path_factory.mktemp("tanh"))


@pytest.fixture(scope="module")
def linear_dir(minilm_st, tmp_path_factory) -> Path:
    """GTR's Dense: no bias, identity, here to a narrower width."""
    dense = _dense(WIDTH, 128, False, torch.nn.Identity())
    return _save(minilm_st, [dense], tmp_path_factory.mktemp("linear"))


@pytest.fixture(scope="module")
def tanh_encoder(tanh_dir) -> Encoder:
    return Encoder.from_pretrained(tanh_dir)


def _max_diff(st_dir: Path, encoder: Encoder) -> float:
    model = SentenceTransformer(str(st_dir), device="cpu")
    expected = model.encode(TEXTS, normalize_embeddings=True)
    return float(np.abs(encoder.encode(TEXTS) - expected).max())


def _same_params(a: Encoder, b: Encoder) -> bool:
    return all(
        jax.tree_util.tree_leaves(jax.tree_util.tree_map(np.array_equal, a.params, b.params))
    )


@pytest.mark.parametrize(
    ("folder", "dim", "bias", "activation"),
    [("tanh_dir", WIDTH, True, "tanh"), ("linear_dir", 128, False, "identity")],
)
def test_dense_folder_embeds_as_sentence_transformers(request, folder, dim, bias, activation):
    st_dir = request.getfixturevalue(folder)
    encoder = Encoder.from_pretrained(st_dir)
    config = encoder.config
    assert (config.projection_dim, config.projection_bias) == (dim, bias)
    assert config.projection_activation == activation
    assert config.max_length == 256 and encoder.embedding_dim == dim
    assert _max_diff(st_dir, encoder) <= MAX_ABS_DIFF


def test_save_pretrained_keeps_the_dense_module(tanh_encoder, tmp_path):
    loaded = Encoder.from_pretrained(tanh_encoder.save_pretrained(tmp_path / "gecko"))
    assert loaded.config == tanh_encoder.config
    np.testing.assert_array_equal(loaded.encode(TEXTS), tanh_encoder.encode(TEXTS))


def test_export_writes_the_dense_module_faithfully(tanh_encoder, tmp_path):
    out = export_sentence_transformers(tanh_encoder, tmp_path / "st")
    dense_config = json.loads((out / "2_Dense" / "config.json").read_text())
    assert dense_config["bias"] is True
    assert dense_config["activation_function"] == "torch.nn.modules.activation.Tanh"
    assert _max_diff(out, tanh_encoder) <= MAX_ABS_DIFF
    back = Encoder.from_pretrained(out)
    assert back.config == tanh_encoder.config and _same_params(back, tanh_encoder)


def test_older_pytorch_model_bin_weights_load(tanh_dir, tanh_encoder, tmp_path):
    folder = Path(shutil.copytree(tanh_dir, tmp_path / "bin"))
    weights = folder / "2_Dense" / "model.safetensors"
    torch.save(load_file(str(weights)), folder / "2_Dense" / "pytorch_model.bin")
    weights.unlink()
    assert _same_params(Encoder.from_pretrained(folder), tanh_encoder)


def test_missing_dense_weights_are_a_clear_error(tanh_dir, tmp_path):
    folder = Path(shutil.copytree(tanh_dir, tmp_path / "none"))
    (folder / "2_Dense" / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"2_Dense.*model\.safetensors.*pytorch_model"):
        Encoder.from_pretrained(folder)


def test_unsupported_activation_is_refused_naming_the_module(minilm_st, tmp_path):
    folder = _save(minilm_st, [_dense(WIDTH, WIDTH, True, torch.nn.ReLU())], tmp_path / "relu")
    with pytest.raises(ValueError, match=r"2_Dense.*activation_function.*ReLU"):
        Encoder.from_pretrained(folder)


def test_in_features_must_match_the_pooled_width(minilm_st, tmp_path):
    folder = _save(minilm_st, [_dense(256, 64, True, torch.nn.Tanh())], tmp_path / "wide")
    with pytest.raises(ValueError, match=r"2_Dense.config\.json.*in_features 256.*384"):
        Encoder.from_pretrained(folder)


def test_two_dense_modules_are_refused(minilm_st, tmp_path):
    denses = [_dense(WIDTH, WIDTH, True, torch.nn.Tanh()), _dense(WIDTH, 64, False, None)]
    folder = _save(minilm_st, denses, tmp_path / "two")
    with pytest.raises(ValueError, match=r"modules\.json.*at most one Dense"):
        Encoder.from_pretrained(folder)


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"pooling_mode": "cls"}, "cls"),
        ({"pooling_mode": ["mean"]}, "mean"),
        ({"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False}, "cls"),
        ({"pooling_mode_mean_tokens": False}, "mean"),  # no flag set: sentence-transformers' mean
        ({"pooling_mode": "max"}, None),
        ({"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": True}, None),
    ],
)
def test_pooling_configs_old_and_new(tmp_path, config, expected):
    (tmp_path / "config.json").write_text(json.dumps(config))
    if expected is None:
        with pytest.raises(ValueError, match="only mean or CLS"):
            read_pooling(tmp_path)
    else:
        assert read_pooling(tmp_path) == expected


@pytest.mark.parametrize(
    ("config", "warns"),
    [
        ({"pooling_mode": "mean", "include_prompt": False}, True),
        ({"pooling_mode": "mean", "include_prompt": True}, False),
        ({"pooling_mode": "mean"}, False),
        ({"pooling_mode": "cls", "include_prompt": False}, False),  # CLS is never a prompt token
    ],
)
def test_pooling_without_prompt_tokens_is_loaded_with_a_warning(tmp_path, caplog, config, warns):
    (tmp_path / "config.json").write_text(json.dumps(config))
    with caplog.at_level("WARNING", logger="gecko_jax.model_io.st_modules"):
        assert read_pooling(tmp_path) == config["pooling_mode"]
    assert ("include_prompt is false" in caplog.text) == warns


def test_projection_config_fields(minilm_encoder):
    saved_before = minilm_encoder.config.to_dict()
    del saved_before["projection_bias"], saved_before["projection_activation"]
    old = DualEncoderConfig.from_dict({**saved_before, "projection_dim": 64})
    assert (old.projection_bias, old.projection_activation) == (False, "identity")
    new = DualEncoderConfig.from_dict(
        {**saved_before, "projection_dim": 64, "projection_activation": "tanh"}
    )
    assert DualEncoderConfig.from_dict(json.loads(json.dumps(new.to_dict()))) == new
    with pytest.raises(ValueError, match="projection_activation must be one of"):
        DualEncoderConfig.from_dict(
            {**saved_before, "projection_dim": 64, "projection_activation": "relu"}
        )
    with pytest.raises(ValueError, match="need a projection_dim"):
        DualEncoderConfig.from_dict({**saved_before, "projection_bias": True})


def test_init_from_needs_the_same_projection(tanh_dir, tanh_encoder, minilm_encoder):
    def train_config(model: DualEncoderConfig) -> TrainConfig:
        return TrainConfig(model, total_steps=1, global_batch_size=1, init_from=str(tanh_dir))

    params = _load_init_params(str(tanh_dir), train_config(tanh_encoder.config))
    assert set(params["projection"]) == {"kernel", "bias"}
    with pytest.raises(ValueError, match=r"projection.*\(384, True, 'tanh'\).*\(None, False"):
        _load_init_params(str(tanh_dir), train_config(minilm_encoder.config))
