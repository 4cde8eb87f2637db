"""Tokenizers: parity with transformers, visible truncation, input checks, SentencePiece."""

from __future__ import annotations

import csv
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sentencepiece
from conftest import FALLBACK_SENTENCES, train_tiny_sentencepiece

from gecko_jax.text.tokenizers import (
    HFTokenizer,
    SentencePieceTokenizer,
    TruncationStats,
    load_tokenizer,
)

STS_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "stsbenchmark"
CLS, SEP, PAD = 101, 102, 0
LONG_TEXT = " ".join(["word"] * 2000)  # "word" is one WordPiece token: 2002 ids with [CLS]/[SEP].


@pytest.fixture(scope="module")
def sts_sentences() -> list[str]:
    path = STS_DIR / "sts-test.csv"
    if not path.is_file():
        pytest.skip(f"STS-B test split not found at {path}")
    with path.open(encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [row[5] for row in rows] + [row[6] for row in rows]


@pytest.fixture(scope="module")
def minilm(minilm_dir: Path) -> HFTokenizer:
    tokenizer = load_tokenizer(minilm_dir)
    assert isinstance(tokenizer, HFTokenizer)
    return tokenizer


@pytest.fixture(scope="module")
def sp_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny T5-style model (pad 0, eos 1, unk 2, no bos) trained on STS-B or built-ins."""
    path = STS_DIR / "sts-test.csv"
    if path.is_file():
        with path.open(encoding="utf-8") as f:
            sentences = [row[5] for row in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)]
    else:
        sentences = FALLBACK_SENTENCES
    return train_tiny_sentencepiece(sentences, tmp_path_factory.mktemp("sp") / "tiny.model")


def test_imports_without_tensorflow_or_seqio() -> None:
    code = (
        "import sys, gecko_jax.text.tokenizers; "
        "print(sorted({'tensorflow', 'seqio', 'sentencepiece'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_minilm_special_tokens(minilm: HFTokenizer, minilm_dir: Path) -> None:
    assert minilm.path == minilm_dir / "tokenizer.json"
    assert (minilm.special_prefix, minilm.special_suffix) == ((CLS,), (SEP,))
    assert (minilm.pad_id, minilm.unk_id, minilm.vocab_size) == (PAD, 100, 30522)
    assert minilm.encode(["Hello World"], 256) == [[CLS, 7592, 2088, SEP]]


def test_parity_with_transformers(minilm: HFTokenizer, minilm_dir: Path, sts_sentences) -> None:
    from transformers import AutoTokenizer

    texts = [*sts_sentences[:300], LONG_TEXT, ""]
    reference = AutoTokenizer.from_pretrained(str(minilm_dir))(
        texts, padding=True, truncation=True, max_length=256, return_tensors="np"
    )
    batch = minilm.encode_batch(texts, max_length=256)
    assert batch.input_ids.shape == (len(texts), 256)
    np.testing.assert_array_equal(batch.input_ids, reference["input_ids"])
    np.testing.assert_array_equal(batch.attention_mask, reference["attention_mask"])
    np.testing.assert_array_equal(batch.lengths, reference["attention_mask"].sum(axis=1))
    assert batch.num_truncated == 1


def test_ignores_settings_baked_into_tokenizer_json(minilm: HFTokenizer) -> None:
    """MiniLM's tokenizer.json says truncate and pad to 128; the model's limit is 256."""
    batch = minilm.encode_batch([" ".join(["word"] * 200), "short"], max_length=256)
    assert batch.input_ids.shape == (2, 202)
    assert batch.lengths.tolist() == [202, 3]
    assert minilm.encode(["short"], 256) == [[CLS, 2460, SEP]]


def test_truncation_keeps_sep_counts_and_warns(minilm: HFTokenizer, caplog) -> None:
    minilm.truncation.reset()
    with caplog.at_level(logging.WARNING, logger="gecko_jax.text.tokenizers"):
        batch = minilm.encode_batch([LONG_TEXT, "a short one"], max_length=256)
        minilm.encode_batch([LONG_TEXT], max_length=256)  # counted, not warned again
    assert batch.lengths.tolist() == [256, 5]
    assert batch.input_ids[0].tolist() == [CLS, *[2773] * 254, SEP]
    assert batch.num_truncated == 1
    assert [r.getMessage() for r in caplog.records] == [
        "truncated 1 of 2 texts to max_length=256 (1746 tokens dropped); later truncations to "
        "this length are counted in Tokenizer.truncation"
    ]
    stats = minilm.truncation
    assert (stats.texts_seen, stats.texts_truncated, stats.tokens_dropped) == (3, 2, 3492)
    assert stats.report() == "truncated 2 of 3 texts to 256 tokens (3492 tokens dropped)"
    minilm.truncation.reset()
    assert minilm.truncation.report() == "truncated 0 of 0 texts to ? tokens (0 tokens dropped)"


def test_no_warning_without_truncation(minilm: HFTokenizer, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="gecko_jax.text.tokenizers"):
        batch = minilm.encode_batch(["a short one"], max_length=5)
    assert batch.num_truncated == 0
    assert caplog.records == []


def test_truncation_stats_accumulate_across_lengths() -> None:
    stats = TruncationStats()
    stats.update(texts=10, truncated=2, dropped=7, max_length=256)
    stats.update(texts=5, truncated=1, dropped=1, max_length=128)
    assert stats.report() == "truncated 3 of 15 texts to 128 or 256 tokens (8 tokens dropped)"


def test_padding_options(minilm: HFTokenizer) -> None:
    texts = ["one two three four five", "six"]  # 7 and 3 ids
    batch = minilm.encode_batch(texts, max_length=64, pad_to_multiple_of=8)
    assert batch.input_ids.shape == (2, 8)
    assert batch.input_ids[1].tolist() == [CLS, 2416, SEP, *[PAD] * 5]
    assert batch.attention_mask[1].tolist() == [1, 1, 1, 0, 0, 0, 0, 0]
    assert batch.input_ids.dtype == batch.attention_mask.dtype == batch.lengths.dtype == np.int32
    assert minilm.encode_batch(texts, max_length=64, pad_to_length=20).input_ids.shape == (2, 20)
    with pytest.raises(ValueError, match="shorter than the longest"):
        minilm.encode_batch(texts, max_length=64, pad_to_length=5)
    with pytest.raises(ValueError, match="not both"):
        minilm.encode_batch(texts, max_length=64, pad_to_multiple_of=8, pad_to_length=64)


def test_empty_inputs(minilm: HFTokenizer) -> None:
    assert minilm.encode([], 16) == []
    batch = minilm.encode_batch([], max_length=16)
    assert (batch.input_ids.shape, batch.attention_mask.shape) == ((0, 0), (0, 0))
    assert (batch.lengths.shape, batch.num_truncated) == ((0,), 0)
    assert minilm.encode_batch((), max_length=16, pad_to_length=16).input_ids.shape == (0, 16)
    assert minilm.encode([""], 16) == [[CLS, SEP]]
    assert minilm.decode([CLS, SEP]) == ""


def test_bad_inputs(minilm: HFTokenizer) -> None:
    with pytest.raises(TypeError, match="expected a sequence of strings, got str"):
        minilm.encode("a bare string", 16)
    with pytest.raises(TypeError, match=r"texts\[1\] is int, expected str"):
        minilm.encode(["fine", 3], 16)
    with pytest.raises(TypeError, match=r"texts\[0\] is NoneType, expected str"):
        minilm.encode_batch([None], 16)
    with pytest.raises(ValueError, match="max_length must be >= 2"):
        minilm.encode(["fine"], 1)


def test_decode_and_add_special_tokens(minilm: HFTokenizer) -> None:
    ids = minilm.encode(["Hello, World!"], 16)[0]
    assert minilm.decode([*ids, PAD, PAD]) == "hello, world!"
    raw = minilm.encode_raw(["Hello, World!"])[0]
    assert raw == ids[1:-1]
    assert minilm.add_special_tokens(raw) == ids


def test_load_tokenizer_rejects_unknown_paths(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"no tokenizer at .*tokenizer\.json or spiece\.model"):
        load_tokenizer(tmp_path)
    (tmp_path / "vocab.txt").write_text("[PAD]\n")
    with pytest.raises(ValueError, match=r"vocab\.txt"):
        load_tokenizer(tmp_path / "vocab.txt")


def test_sentencepiece_t5_conventions(sp_model_path: Path) -> None:
    tokenizer = load_tokenizer(sp_model_path.parent)
    assert isinstance(tokenizer, SentencePieceTokenizer)
    assert (tokenizer.pad_id, tokenizer.eos_id, tokenizer.path) == (0, 1, sp_model_path)
    reference = sentencepiece.SentencePieceProcessor(model_file=str(sp_model_path))
    text = "A girl is styling her hair."
    assert tokenizer.encode([text, ""], 64) == [[*reference.encode(text), 1], [1]]
    batch = tokenizer.encode_batch([text, ""], 64)
    assert batch.input_ids[1].tolist() == [1] + [0] * (batch.input_ids.shape[1] - 1)


def test_sentencepiece_truncation_keeps_eos(sp_model_path: Path, caplog) -> None:
    tokenizer = SentencePieceTokenizer.from_file(sp_model_path)
    raw = tokenizer.encode_raw([LONG_TEXT])[0]
    with caplog.at_level(logging.WARNING, logger="gecko_jax.text.tokenizers"):
        ids = tokenizer.encode([LONG_TEXT], 10)[0]
    assert ids == [*raw[:9], 1]
    assert tokenizer.truncation.tokens_dropped == len(raw) + 1 - 10
    assert len(caplog.records) == 1


def test_sentencepiece_decode_round_trips(sp_model_path: Path) -> None:
    tokenizer = SentencePieceTokenizer(sp_model_path.read_bytes())
    assert tokenizer.path is None
    texts = ["A girl is styling her hair.", "A group of men play soccer on the beach."]
    batch = tokenizer.encode_batch(texts, 128)
    assert [tokenizer.decode(row) for row in batch.input_ids] == texts
