"""seqio vocabularies over the tokenizers in :mod:`gecko_jax.text.tokenizers`.

seqio vocabularies return ids *without* special tokens and seqio appends EOS itself (output
feature ``add_eos``). For a ``tokenizer.json`` model we therefore expose the model's
post-processor tokens as seqio ids: ``eos_id`` is the token it appends (BERT: ``[SEP]``) and
``bos_id`` the token it prepends (BERT: ``[CLS]``). seqio has no notion of a leading token, so the
task layer adds it: either wrap raw ids with ``vocabulary.tokenizer.add_special_tokens`` (and
use ``add_eos=False``), or prepend ``bos_id`` and let ``add_eos=True`` append ``[SEP]``.
SentencePiece (T5) models use ``seqio.SentencePieceVocabulary`` unchanged.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import seqio
import tensorflow as tf

from gecko_jax.text.tokenizers import HFTokenizer, Tokenizer, resolve_tokenizer_file

logger = logging.getLogger(__name__)


class HFTokenizerVocabulary(seqio.Vocabulary):
    """A seqio vocabulary over a Hugging Face ``tokenizer.json``.

    Only the path is stored (the tokenizer loads lazily), so the vocabulary pickles and
    survives gin's deep copies. TF ops run the Rust tokenizer through ``tf.numpy_function``:
    they work inside ``tf.data`` maps but not in graphs exported without Python.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(extra_ids=0)
        self._path = str(Path(path).resolve())
        self._tokenizer: HFTokenizer | None = None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_tokenizer"] = None
        return state

    @property
    def path(self) -> str:
        return self._path

    @property
    def tokenizer(self) -> HFTokenizer:
        """The plain tokenizer, e.g. for ``add_special_tokens`` or batched encoding."""
        if self._tokenizer is None:
            self._tokenizer = HFTokenizer.from_file(self._path)
            if self._tokenizer.pad_id != seqio.vocabularies.PAD_ID:
                logger.warning(
                    "%s pads with id %d but seqio feature converters pad with %d",
                    self._path,
                    self._tokenizer.pad_id,
                    seqio.vocabularies.PAD_ID,
                )
        return self._tokenizer

    @property
    def bos_id(self) -> int | None:
        prefix = self.tokenizer.special_prefix
        return prefix[0] if prefix else None

    @property
    def eos_id(self) -> int | None:
        suffix = self.tokenizer.special_suffix
        return suffix[-1] if suffix else None

    @property
    def unk_id(self) -> int | None:
        return self.tokenizer.unk_id

    @property
    def pad_id(self) -> int:
        return self.tokenizer.pad_id

    @property
    def _base_vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    def _encode(self, s: str) -> Sequence[int]:
        return self.tokenizer.encode_raw([s])[0]

    def _decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(ids)

    def _encode_np(self, strings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Flat ids and per-string lengths for a numpy array of UTF-8 byte strings."""
        texts = [s.decode("utf-8") for s in np.asarray(strings, dtype=object).reshape(-1)]
        encoded = self.tokenizer.encode_raw(texts)
        flat = np.array([i for ids in encoded for i in ids], dtype=np.int32)
        return flat, np.array([len(ids) for ids in encoded], dtype=np.int64)

    def _encode_tf(self, s: tf.Tensor) -> tf.Tensor | tf.RaggedTensor:
        """A scalar string gives a 1-D int32 tensor; a 1-D batch gives a ragged [B, None]."""
        s = tf.convert_to_tensor(s, dtype=tf.string)
        rank = s.shape.rank
        if rank not in (0, 1):
            raise ValueError(f"expected a scalar or 1-D string tensor, got shape {s.shape}")
        flat, lengths = tf.numpy_function(
            self._encode_np, [s], [tf.int32, tf.int64], stateful=False
        )
        flat.set_shape([None])
        if rank == 0:
            return flat
        lengths.set_shape(s.shape)
        return tf.RaggedTensor.from_row_lengths(flat, lengths)

    def _decode_np(self, ids: np.ndarray) -> np.ndarray:
        rows = ids.reshape(-1, ids.shape[-1])
        texts = [self._decode(row.tolist()).encode("utf-8") for row in rows]
        return np.array(texts, dtype=object).reshape(ids.shape[:-1])

    def _decode_tf(self, ids: tf.Tensor) -> tf.Tensor:
        """int ids [..., L] -> strings [...]."""
        ids = tf.convert_to_tensor(ids)
        texts = tf.numpy_function(self._decode_np, [ids], tf.string, stateful=False)
        texts.set_shape(ids.shape[:-1])
        return texts

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HFTokenizerVocabulary) and self._path == other._path

    def __str__(self) -> str:
        return f"HFTokenizerVocabulary(path={self._path})"


def as_seqio_vocabulary(path_or_tokenizer: str | os.PathLike[str] | Tokenizer) -> seqio.Vocabulary:
    """The seqio vocabulary for a tokenizer file, model folder or file-backed ``Tokenizer``."""
    if isinstance(path_or_tokenizer, Tokenizer):
        if path_or_tokenizer.path is None:
            raise ValueError(
                f"{type(path_or_tokenizer).__name__} was built in memory; seqio vocabularies "
                "load from a file, so pass the tokenizer's file or folder instead"
            )
        path_or_tokenizer = path_or_tokenizer.path
    file = resolve_tokenizer_file(path_or_tokenizer)
    if file.suffix == ".json":
        return HFTokenizerVocabulary(file)
    return seqio.SentencePieceVocabulary(str(file))
