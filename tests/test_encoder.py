"""The user-facing Encoder: formats, Matryoshka dims, bucketing, bad input, save/load."""

import logging

import numpy as np
import pytest

from gecko_jax import Encoder
from gecko_jax.text.formats import format_document, format_query


def test_empty_list_gives_empty_matrix(minilm_encoder):
    out = minilm_encoder.encode([])
    assert out.shape == (0, 384) and out.dtype == np.float32
    assert minilm_encoder.encode([], dims=128).shape == (0, 128)


def test_empty_strings_give_finite_unit_vectors(minilm_encoder):
    out = minilm_encoder.encode(["", "   ", "a real sentence"])
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("bad", [["ok", 3], ["ok", None], ["ok", b"bytes"]])
def test_non_strings_raise_type_error_naming_index(minilm_encoder, bad):
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        minilm_encoder.encode(bad)
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        minilm_encoder.encode_queries(bad)


def test_bare_string_is_rejected(minilm_encoder):
    with pytest.raises(TypeError, match="got str"):
        minilm_encoder.encode("not a list")


def test_long_texts_are_truncated_and_counted(minilm_encoder, caplog):
    minilm_encoder.tokenizer.truncation.reset()
    long_text = "word " * 5000
    with caplog.at_level(logging.WARNING):
        out = minilm_encoder.encode([long_text, "short"])
    assert out.shape == (2, 384) and np.all(np.isfinite(out))
    stats = minilm_encoder.tokenizer.truncation
    assert stats.texts_truncated == 1 and stats.tokens_dropped > 4000
    assert "truncat" in caplog.text.lower()


def test_order_and_batch_size_do_not_change_embeddings(minilm_encoder, real_sentences):
    texts = real_sentences[:70]
    reference = minilm_encoder.encode(texts, batch_size=64)
    permutation = np.random.default_rng(0).permutation(len(texts))
    shuffled = minilm_encoder.encode([texts[i] for i in permutation], batch_size=7)
    np.testing.assert_allclose(shuffled, reference[permutation], atol=2e-5)


def test_queries_and_documents_use_the_unified_format(minilm_encoder):
    queries = minilm_encoder.encode_queries(["who wrote hamlet"], task="question answering")
    expected = minilm_encoder.encode(["task: question answering | query: who wrote hamlet"])
    np.testing.assert_allclose(queries, expected, atol=1e-6)
    docs = minilm_encoder.encode_documents(["Hamlet is a play.", "No title."], ["Hamlet", None])
    expected = minilm_encoder.encode(
        ["title: Hamlet | text: Hamlet is a play.", "title: none | text: No title."]
    )
    np.testing.assert_allclose(docs, expected, atol=1e-6)
    assert format_query("q", "t") == "task: t | query: q"
    assert format_document("x", "  ") == "title: none | text: x"
    with pytest.raises(ValueError, match="titles"):
        minilm_encoder.encode_documents(["a", "b"], ["only one"])


def test_matryoshka_dims_are_renormalised_prefixes(minilm_encoder, real_sentences):
    full = minilm_encoder.encode(real_sentences[:10])
    small = minilm_encoder.encode(real_sentences[:10], dims=128)
    expected = full[:, :128] / np.linalg.norm(full[:, :128], axis=1, keepdims=True)
    np.testing.assert_allclose(small, expected, atol=1e-5)
    with pytest.raises(ValueError, match="dims"):
        minilm_encoder.encode(["x"], dims=1000)


def test_packing_compiles_a_handful_of_shapes(minilm_dir, real_sentences):
    encoder = Encoder.from_pretrained(minilm_dir)
    # The compiled forward is shared by every encoder of this config: count new shapes only.
    before = encoder._apply._cache_size()
    encoder.encode(real_sentences[:600], batch_size=16)
    encoder.encode(real_sentences[600:900], batch_size=16)
    assert encoder._apply._cache_size() - before <= 4


def test_save_and_load_round_trip(minilm_encoder, real_sentences, tmp_path):
    minilm_encoder.save_pretrained(tmp_path / "export")
    loaded = Encoder.from_pretrained(tmp_path / "export")
    assert loaded.config == minilm_encoder.config
    texts = real_sentences[:20]
    np.testing.assert_allclose(loaded.encode(texts), minilm_encoder.encode(texts), atol=1e-6)


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        Encoder.from_pretrained(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        Encoder.from_pretrained(tmp_path / "empty")
