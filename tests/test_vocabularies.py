"""seqio adapters: same ids as the plain tokenizers, in Python and inside tf.data maps."""

from __future__ import annotations

import csv
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import seqio
import tensorflow as tf
from conftest import FALLBACK_SENTENCES, train_tiny_sentencepiece

from gecko_jax.text.tokenizers import HFTokenizer, SentencePieceTokenizer
from tasks.vocabularies import HFTokenizerVocabulary, as_seqio_vocabulary

STS_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "stsbenchmark"
CLS, SEP = 101, 102


@pytest.fixture(scope="module")
def sentences() -> list[str]:
    """60 STS-B sentences, or built-ins when the data set is absent (no skip: nothing depends
    on the sentences being real here)."""
    path = STS_DIR / "sts-test.csv"
    if not path.is_file():
        return FALLBACK_SENTENCES
    with path.open(encoding="utf-8") as f:
        return [row[5] for row in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)][:60]


@pytest.fixture(scope="module")
def hf_vocab(minilm_dir: Path) -> HFTokenizerVocabulary:
    vocab = as_seqio_vocabulary(minilm_dir)
    assert isinstance(vocab, HFTokenizerVocabulary)
    return vocab


@pytest.fixture(scope="module")
def sp_model_path(tmp_path_factory: pytest.TempPathFactory, sentences: list[str]) -> Path:
    """A tiny T5-style SentencePiece model (pad 0, eos 1, unk 2)."""
    return train_tiny_sentencepiece(sentences, tmp_path_factory.mktemp("sp") / "spiece.model")


def _map_encode(vocab: seqio.Vocabulary, texts: list[str]) -> list[list[int]]:
    dataset = tf.data.Dataset.from_tensor_slices(texts).map(vocab.encode_tf)
    assert dataset.element_spec.dtype == tf.int32
    return [ids.tolist() for ids in dataset.as_numpy_iterator()]


def _map_decode(vocab: seqio.Vocabulary, ids: list[list[int]]) -> list[str]:
    width = max(len(row) for row in ids)
    padded = np.array([row + [vocab.pad_id] * (width - len(row)) for row in ids], np.int32)
    dataset = tf.data.Dataset.from_tensor_slices(padded).map(vocab.decode_tf)
    return [text.decode("utf-8") for text in dataset.as_numpy_iterator()]


def test_hf_vocabulary_special_ids(hf_vocab: HFTokenizerVocabulary) -> None:
    assert (hf_vocab.bos_id, hf_vocab.eos_id) == (CLS, SEP)
    assert (hf_vocab.pad_id, hf_vocab.unk_id) == (0, 100)
    assert hf_vocab.vocab_size == 30522


def test_hf_vocabulary_matches_tokenizer(hf_vocab: HFTokenizerVocabulary, sentences) -> None:
    tokenizer = HFTokenizer.from_file(Path(hf_vocab.path))
    with_special = tokenizer.encode(sentences, 256)
    expected = [ids[1:-1] for ids in with_special]  # seqio ids carry no special tokens.
    assert [list(hf_vocab.encode(s)) for s in sentences] == expected
    assert _map_encode(hf_vocab, sentences) == expected
    assert [tokenizer.add_special_tokens(ids) for ids in expected] == with_special
    texts = [tokenizer.decode(ids) for ids in expected]
    assert [hf_vocab.decode(ids) for ids in expected] == texts
    assert _map_decode(hf_vocab, expected) == texts


def test_hf_vocabulary_seqio_semantics(hf_vocab: HFTokenizerVocabulary) -> None:
    ids = list(hf_vocab.encode("Hello World"))
    assert ids == [7592, 2088]
    assert hf_vocab.decode([*ids, SEP, 2045]) == "hello world"  # Stops at EOS, like seqio.
    assert hf_vocab.decode([*ids, 99999, 2045]) == "hello world there"  # Out of range -> [UNK].
    batch = hf_vocab.decode_tf(tf.constant([[7592, SEP, 2045], [2088, 0, 0]]))
    assert batch.numpy().tolist() == [b"hello", b"world"]
    ragged = hf_vocab.encode_tf(tf.constant(["Hello World", ""]))
    assert ragged.to_list() == [[7592, 2088], []]


def test_hf_vocabulary_recipe_for_bert_inputs(hf_vocab: HFTokenizerVocabulary) -> None:
    """Prepend bos_id and let seqio append EOS: exactly the ids BERT expects."""
    features = {"text": seqio.Feature(hf_vocab, add_eos=True)}
    dataset = tf.data.Dataset.from_tensor_slices({"text": ["Hello World", "short"]})
    dataset = seqio.preprocessors.tokenize(dataset, features, copy_pretokenized=False)
    dataset = seqio.preprocessors.append_eos(dataset, features)
    dataset = dataset.map(lambda x: tf.concat([[hf_vocab.bos_id], x["text"]], axis=0))
    got = [ids.tolist() for ids in dataset.as_numpy_iterator()]
    assert got == hf_vocab.tokenizer.encode(["Hello World", "short"], 256)


def test_hf_vocabulary_pickles_and_compares_by_path(
    hf_vocab: HFTokenizerVocabulary, minilm_dir: Path, tmp_path: Path
) -> None:
    restored = pickle.loads(pickle.dumps(hf_vocab))
    assert restored == hf_vocab
    assert restored.encode("Hello World") == [7592, 2088]
    shutil.copy(minilm_dir / "tokenizer.json", tmp_path / "tokenizer.json")
    assert as_seqio_vocabulary(tmp_path) != hf_vocab
    assert as_seqio_vocabulary(hf_vocab.tokenizer) == hf_vocab


def test_sentencepiece_vocabulary_matches_tokenizer(sp_model_path: Path, sentences) -> None:
    tokenizer = SentencePieceTokenizer.from_file(sp_model_path)
    vocab = as_seqio_vocabulary(tokenizer)
    assert isinstance(vocab, seqio.SentencePieceVocabulary)
    assert (vocab.eos_id, vocab.pad_id) == (tokenizer.eos_id, tokenizer.pad_id) == (1, 0)
    with_eos = tokenizer.encode(sentences, 512)
    expected = [ids[:-1] for ids in with_eos]  # seqio appends EOS itself (add_eos).
    assert [list(vocab.encode(s)) for s in sentences] == expected
    assert _map_encode(vocab, sentences) == expected
    texts = [tokenizer.decode(ids) for ids in with_eos]  # Normalized: runs of spaces collapse.
    assert [vocab.decode(ids) for ids in with_eos] == texts
    assert _map_decode(vocab, with_eos) == texts
    shared = SentencePieceTokenizer(vocab.sp_model)
    assert shared.encode(sentences, 512) == with_eos


def test_as_seqio_vocabulary_needs_a_file(sp_model_path: Path) -> None:
    in_memory = SentencePieceTokenizer(sp_model_path.read_bytes())
    with pytest.raises(ValueError, match="built in memory"):
        as_seqio_vocabulary(in_memory)
    assert isinstance(as_seqio_vocabulary(sp_model_path.parent), seqio.SentencePieceVocabulary)
