"""Export: sentence-transformers folders embed as the Encoder does; gecko folders round-trip."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np
import pytest
from safetensors.numpy import load_file
from sentence_transformers import SentenceTransformer

from gecko_jax import Encoder
from gecko_jax.cli.export import main
from gecko_jax.model_io.sentence_transformers import (
    export_sentence_transformers,
    sentence_transformers_prompts,
)
from gecko_jax.models.bert import bert_params_from_hf
from gecko_jax.models.config import DualEncoderConfig, EncoderConfig
from gecko_jax.models.weights import params_to_hf
from gecko_jax.text.formats import TEXT_FORMATS, format_document, format_query
from gecko_jax.text.instructions import TASK_STRINGS

MIN_COSINE = 0.9999
N_TEXTS = 32
PROJECTION_DIM = 128


def _perturb(params: dict, seed: int) -> dict:
    """Every parameter moved by 10% of its spread, so no test can pass on the original weights."""
    rng = np.random.default_rng(seed)

    def move(param: jax.Array) -> np.ndarray:
        param = np.asarray(param)
        return param + 0.1 * param.std() * rng.standard_normal(param.shape, np.float32)

    return jax.tree_util.tree_map(move, params)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return np.sum(a * b, axis=1)


def _assert_same(st_embeddings: np.ndarray, ours: np.ndarray) -> None:
    cosines = _cosines(st_embeddings, ours)
    assert cosines.min() >= MIN_COSINE, f"min cosine {cosines.min():.6f}"


@pytest.fixture(scope="module")
def texts(real_sentences) -> list[str]:
    return real_sentences[:N_TEXTS]


@pytest.fixture(scope="module")
def perturbed(minilm_encoder, texts) -> Encoder:
    encoder = Encoder(
        minilm_encoder.config,
        _perturb(minilm_encoder.params, seed=0),
        minilm_encoder.tokenizer,
        minilm_encoder.tokenizer_file,
    )
    moved = _cosines(encoder.encode(texts), minilm_encoder.encode(texts))
    assert moved.mean() < 0.99, "the perturbation should change the embeddings"
    return encoder


@pytest.fixture(scope="module")
def projected(minilm_encoder) -> Encoder:
    config = DualEncoderConfig.from_dict(
        {**minilm_encoder.config.to_dict(), "projection_dim": PROJECTION_DIM}
    )
    kernel = np.random.default_rng(1).standard_normal((384, PROJECTION_DIM)) / np.sqrt(384)
    params = {**_perturb(minilm_encoder.params, seed=2), "projection": {"kernel": kernel}}
    return Encoder(config, params, minilm_encoder.tokenizer, minilm_encoder.tokenizer_file)


@pytest.fixture(scope="module")
def st_dir(perturbed, tmp_path_factory) -> Path:
    return export_sentence_transformers(perturbed, tmp_path_factory.mktemp("st"))


@pytest.fixture(scope="module")
def st_model(st_dir) -> SentenceTransformer:
    return SentenceTransformer(str(st_dir), device="cpu")


@pytest.mark.parametrize("text_format", sorted(TEXT_FORMATS))
def test_prompts_are_exact_prefixes_of_the_text_format(text_format):
    prompts = sentence_transformers_prompts(text_format)
    for task in TASK_STRINGS:
        assert prompts[task] + "a b" == format_query("a b", task, text_format)
    assert prompts["query"] + "a b" == format_query("a b", text_format=text_format)
    assert prompts["document"] + "a b" == format_document("a b", None, text_format)
    assert prompts["Retrieval-document"] == prompts["document"]
    assert prompts["STS"] == prompts["semantic similarity"]


def test_plain_text_matches_encode(st_model, perturbed, texts):
    assert st_model.max_seq_length == perturbed.config.max_length
    _assert_same(st_model.encode(texts), perturbed.encode(texts))


@pytest.mark.parametrize("task", TASK_STRINGS)
def test_task_prompts_match_encode_queries(st_model, perturbed, texts, task):
    _assert_same(
        st_model.encode(texts, prompt_name=task), perturbed.encode_queries(texts, task=task)
    )


def test_query_and_document_prompts_match(st_model, perturbed, texts):
    _assert_same(st_model.encode_query(texts), perturbed.encode_queries(texts))
    _assert_same(st_model.encode_document(texts), perturbed.encode_documents(texts))
    # A title is not a prefix: titled documents are formatted by hand and get no prompt.
    titles = [text.split()[0] for text in texts]
    formatted = [format_document(t, title) for t, title in zip(texts, titles, strict=True)]
    _assert_same(st_model.encode(formatted), perturbed.encode_documents(texts, titles))


def test_weights_are_the_exact_inverse_of_the_import(st_dir, perturbed, minilm_encoder, minilm_dir):
    back = Encoder.from_pretrained(st_dir)
    assert back.config == perturbed.config
    same = jax.tree_util.tree_map(np.array_equal, back.params, perturbed.params)
    assert all(jax.tree_util.tree_leaves(same))
    # Inverting the unperturbed import gives back the original checkpoint's tensors, bit for bit.
    original = load_file(str(minilm_dir / "model.safetensors"))
    exported = params_to_hf(
        bert_params_from_hf, minilm_encoder.config.encoder, minilm_encoder.params["backbone"]
    )
    assert set(original) - set(exported) == {
        "embeddings.position_ids",
        "pooler.dense.weight",
        "pooler.dense.bias",
    }
    for key, value in exported.items():
        np.testing.assert_array_equal(value, original[key], err_msg=key)


def test_projection_becomes_a_dense_module(projected, texts, tmp_path):
    export_sentence_transformers(projected, tmp_path / "st")
    modules = json.loads((tmp_path / "st" / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[-1] for m in modules] == [
        "Transformer",
        "Pooling",
        "Dense",
        "Normalize",
    ]
    model = SentenceTransformer(str(tmp_path / "st"), device="cpu")
    ours = projected.encode_queries(texts, task="classification")
    assert ours.shape == (len(texts), PROJECTION_DIM)
    _assert_same(model.encode(texts, prompt_name="classification"), ours)


def test_gecko_format_round_trips_a_projection(projected, tmp_path):
    # tests/test_encoder.py compares embeddings for plain MiniLM; equal params imply them here.
    loaded = Encoder.from_pretrained(projected.save_pretrained(tmp_path / "gecko"))
    assert loaded.config == projected.config
    same = jax.tree_util.tree_map(np.array_equal, loaded.params, projected.params)
    assert all(jax.tree_util.tree_leaves(same))


def test_t5_backbone_is_refused_with_a_pointer_to_the_gecko_format(minilm_encoder, tmp_path):
    t5 = EncoderConfig(
        "t5", vocab_size=32, hidden_size=8, num_layers=1, num_heads=2, intermediate_size=16
    )
    encoder = Encoder(DualEncoderConfig(t5), {}, minilm_encoder.tokenizer)
    with pytest.raises(
        ValueError, match=r"no Hugging Face export for the .t5. backbone.*save_pretrained"
    ):
        export_sentence_transformers(encoder, tmp_path / "t5")
    assert not (tmp_path / "t5").exists()


def test_cli_writes_both_formats(minilm_dir, tmp_path, capsys):
    assert main(["--model", str(minilm_dir), "--out", str(tmp_path / "st")]) == 0
    assert (tmp_path / "st" / "modules.json").exists()
    assert (
        main(["--model", str(minilm_dir), "--out", str(tmp_path / "g"), "--format", "gecko"]) == 0
    )
    assert (tmp_path / "g" / "gecko_config.json").exists()
    assert "wrote" in capsys.readouterr().out
