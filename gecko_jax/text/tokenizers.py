"""Tokenizers behind one small interface: Hugging Face ``tokenizer.json`` and SentencePiece.

Kept free of TensorFlow and seqio so that inference and evaluation code can tokenize without
importing either; the seqio adapters live in :mod:`tasks.vocabularies`.

Every tokenizer adds the model's own special tokens (BERT: ``[CLS] ... [SEP]``, T5: ``... </s>``)
and truncates on the right *before* adding them, so the special tokens always survive
truncation. Truncation is never silent: it is logged and counted in ``Tokenizer.truncation``.
"""

from __future__ import annotations

import abc
import dataclasses
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tokenizers

logger = logging.getLogger(__name__)

# Folder entries load_tokenizer tries, in order, before falling back to any "*.model".
_FOLDER_CANDIDATES = ("tokenizer.json", "spiece.model")


@dataclasses.dataclass
class TokenizedBatch:
    """A padded batch, ready to feed an encoder."""

    input_ids: np.ndarray  # int32 [B, L], padded with the tokenizer's pad_id.
    attention_mask: np.ndarray  # int32 [B, L], 1 for real tokens (special tokens included).
    lengths: np.ndarray  # int32 [B], number of real tokens per row.
    num_truncated: int  # texts in this batch that were cut to max_length.


@dataclasses.dataclass
class TruncationStats:
    """Running truncation counts, so a whole evaluation can report what it lost."""

    texts_seen: int = 0
    texts_truncated: int = 0
    tokens_dropped: int = 0
    max_lengths: set[int] = dataclasses.field(default_factory=set)
    # The max_lengths some text was cut to: the first cut at each is a warning, later ones are
    # counted and logged at DEBUG (a training run would otherwise warn on every batch).
    cut_lengths: set[int] = dataclasses.field(default_factory=set)

    def update(self, texts: int, truncated: int, dropped: int, max_length: int) -> bool:
        """Counts one batch; True when it is the first truncation to ``max_length``."""
        self.texts_seen += texts
        self.texts_truncated += truncated
        self.tokens_dropped += dropped
        self.max_lengths.add(max_length)
        first = truncated > 0 and max_length not in self.cut_lengths
        if truncated:
            self.cut_lengths.add(max_length)
        return first

    def report(self) -> str:
        lengths = " or ".join(str(n) for n in sorted(self.max_lengths)) or "?"
        return (
            f"truncated {self.texts_truncated} of {self.texts_seen} texts to {lengths} tokens "
            f"({self.tokens_dropped} tokens dropped)"
        )

    def reset(self) -> None:
        self.texts_seen = self.texts_truncated = self.tokens_dropped = 0
        self.max_lengths.clear()
        self.cut_lengths.clear()


def check_texts(texts: Sequence[str]) -> list[str]:
    """Rejects a bare string (it would be tokenized character by character) and non-strings."""
    if isinstance(texts, str):
        raise TypeError("expected a sequence of strings, got str")
    if not isinstance(texts, (list, tuple)):
        raise TypeError(f"expected a list or tuple of strings, got {type(texts).__name__}")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{i}] is {type(text).__name__}, expected str")
    return list(texts)


class Tokenizer(abc.ABC):
    """Text -> ids with the model's special tokens, right truncation and padding.

    Subclasses only say how to split text into ids (``_encode_raw``), which special tokens
    wrap a sequence, and how to decode; truncation and padding are shared so they behave
    identically for every model family.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path  # The file it was loaded from; None when built in memory.
        self.truncation = TruncationStats()

    @property
    @abc.abstractmethod
    def pad_id(self) -> int: ...

    @property
    @abc.abstractmethod
    def vocab_size(self) -> int: ...

    @property
    @abc.abstractmethod
    def special_prefix(self) -> tuple[int, ...]:
        """Ids the model puts before every sequence (BERT: ``[CLS]``)."""

    @property
    @abc.abstractmethod
    def special_suffix(self) -> tuple[int, ...]:
        """Ids the model puts after every sequence (BERT: ``[SEP]``, T5: ``</s>``)."""

    @abc.abstractmethod
    def _encode_raw(self, texts: list[str]) -> list[list[int]]: ...

    @abc.abstractmethod
    def decode(self, ids: Sequence[int]) -> str:
        """Ids -> text, skipping special tokens and padding."""

    def encode_raw(self, texts: Sequence[str]) -> list[list[int]]:
        """Ids without special tokens and without truncation (what seqio vocabularies return)."""
        return self._encode_raw(check_texts(texts))

    def add_special_tokens(self, ids: Sequence[int]) -> list[int]:
        """Wraps raw ids the way the model expects, e.g. after seqio tokenized them."""
        return [*self.special_prefix, *ids, *self.special_suffix]

    def encode(self, texts: Sequence[str], max_length: int) -> list[list[int]]:
        """Ids with special tokens, each at most ``max_length`` long (special tokens kept)."""
        texts = check_texts(texts)
        if max_length < 2:
            raise ValueError(f"max_length must be >= 2, got {max_length}")
        num_special = len(self.special_prefix) + len(self.special_suffix)
        budget = max_length - num_special
        if budget < 0:
            raise ValueError(
                f"max_length {max_length} cannot hold the {num_special} special tokens"
            )
        raw = self._encode_raw(texts)
        truncated = [ids for ids in raw if len(ids) > budget]
        dropped = sum(len(ids) - budget for ids in truncated)
        first = self.truncation.update(len(texts), len(truncated), dropped, max_length)
        if truncated:
            logger.log(
                logging.WARNING if first else logging.DEBUG,
                "truncated %d of %d texts to max_length=%d (%d tokens dropped)%s",
                len(truncated),
                len(texts),
                max_length,
                dropped,
                "; later truncations to this length are counted in Tokenizer.truncation"
                if first
                else "",
            )
        return [self.add_special_tokens(ids[:budget]) for ids in raw]

    def encode_batch(
        self,
        texts: Sequence[str],
        max_length: int,
        pad_to_multiple_of: int = 1,
        pad_to_length: int | None = None,
    ) -> TokenizedBatch:
        """Encodes and pads to the longest row (rounded up to a multiple) or to a fixed length.

        An empty ``texts`` gives arrays of shape ``(0, 0)``, or ``(0, pad_to_length)``.
        """
        if pad_to_multiple_of < 1:
            raise ValueError(f"pad_to_multiple_of must be >= 1, got {pad_to_multiple_of}")
        if pad_to_length is not None and pad_to_multiple_of != 1:
            raise ValueError("give either pad_to_length or pad_to_multiple_of, not both")
        before = self.truncation.texts_truncated
        encoded = self.encode(texts, max_length)
        lengths = np.array([len(ids) for ids in encoded], dtype=np.int32)
        longest = int(lengths.max(initial=0))
        if pad_to_length is None:
            width = -(-longest // pad_to_multiple_of) * pad_to_multiple_of
        elif pad_to_length < longest:
            raise ValueError(
                f"pad_to_length {pad_to_length} is shorter than the longest sequence ({longest})"
            )
        else:
            width = pad_to_length
        input_ids = np.full((len(encoded), width), self.pad_id, dtype=np.int32)
        for row, ids in enumerate(encoded):
            input_ids[row, : len(ids)] = ids
        attention_mask = (np.arange(width)[None, :] < lengths[:, None]).astype(np.int32)
        return TokenizedBatch(
            input_ids=input_ids,
            attention_mask=attention_mask,
            lengths=lengths,
            num_truncated=self.truncation.texts_truncated - before,
        )


class HFTokenizer(Tokenizer):
    """A Hugging Face ``tokenizers.Tokenizer`` (``tokenizer.json``), e.g. BERT WordPiece.

    The wrapped tokenizer's own padding and truncation are switched off: ``tokenizer.json``
    files carry settings baked in at export time (all-MiniLM-L6-v2: truncate to 128, pad to a
    fixed 128) that differ from the model's real limit (256) and would truncate silently.
    """

    def __init__(self, tokenizer: tokenizers.Tokenizer, path: Path | None = None) -> None:
        """Takes ownership of ``tokenizer`` (its padding and truncation get disabled)."""
        super().__init__(path)
        padding = tokenizer.padding
        tokenizer.no_padding()
        tokenizer.no_truncation()
        self._tokenizer = tokenizer
        self._pad_id = padding["pad_id"] if padding else self._find_token("[PAD]", "<pad>")
        self._prefix, self._suffix = self._probe_special_tokens()

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> HFTokenizer:
        path = Path(path)
        return cls(tokenizers.Tokenizer.from_file(str(path)), path=path)

    def _find_token(self, *candidates: str) -> int:
        """First candidate token's id, else 0 (the BERT and T5 convention for padding)."""
        for token in candidates:
            token_id = self._tokenizer.token_to_id(token)
            if token_id is not None:
                return token_id
        return 0

    def _probe_special_tokens(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Reads which ids the post-processor puts around a single sequence.

        Probing one encoding works for any post-processor (template, BERT, RoBERTa) and lets
        truncation happen before the special tokens are added, exactly as transformers does.
        """
        encoding = self._tokenizer.encode("a", add_special_tokens=True)
        content = [i for i, seq in enumerate(encoding.sequence_ids) if seq is not None]
        if not content or content != list(range(content[0], content[-1] + 1)):
            raise ValueError(
                f"cannot find where special tokens go in {encoding.tokens}: the post-processor "
                "must only add tokens before and after a single sequence"
            )
        ids = encoding.ids
        return tuple(ids[: content[0]]), tuple(ids[content[-1] + 1 :])

    @property
    def pad_id(self) -> int:
        return self._pad_id

    @property
    def vocab_size(self) -> int:
        return self._tokenizer.get_vocab_size(with_added_tokens=True)

    @property
    def unk_id(self) -> int | None:
        unk = getattr(self._tokenizer.model, "unk_token", None)
        return self._tokenizer.token_to_id(unk) if unk else None

    @property
    def special_prefix(self) -> tuple[int, ...]:
        return self._prefix

    @property
    def special_suffix(self) -> tuple[int, ...]:
        return self._suffix

    def _encode_raw(self, texts: list[str]) -> list[list[int]]:
        # encode_batch_fast is the multi-threaded path that skips computing character offsets.
        encodings = self._tokenizer.encode_batch_fast(texts, add_special_tokens=False)
        return [encoding.ids for encoding in encodings]

    def decode(self, ids: Sequence[int]) -> str:
        return self._tokenizer.decode([int(i) for i in ids], skip_special_tokens=True)


class SentencePieceTokenizer(Tokenizer):
    """A SentencePiece model with the T5 convention: ``</s>`` appended, padding with id 0."""

    def __init__(self, model_proto: bytes, path: Path | None = None) -> None:
        """Builds from serialized model bytes, e.g. ``seqio.SentencePieceVocabulary.sp_model``."""
        import sentencepiece  # Lazy: only T5-family models need it.

        super().__init__(path)
        self._sp = sentencepiece.SentencePieceProcessor(model_proto=model_proto)
        self._pad_id = self._sp.pad_id() if self._sp.pad_id() >= 0 else 0
        self._eos_id = self._sp.eos_id() if self._sp.eos_id() >= 0 else 1
        size = self._sp.get_piece_size()
        self._skip = {i for i in range(size) if self._sp.is_control(i)}
        self._skip |= {self._pad_id, self._eos_id}

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> SentencePieceTokenizer:
        path = Path(path)
        return cls(path.read_bytes(), path=path)

    @property
    def pad_id(self) -> int:
        return self._pad_id

    @property
    def eos_id(self) -> int:
        return self._eos_id

    @property
    def vocab_size(self) -> int:
        return self._sp.get_piece_size()

    @property
    def special_prefix(self) -> tuple[int, ...]:
        return ()

    @property
    def special_suffix(self) -> tuple[int, ...]:
        return (self._eos_id,)

    def _encode_raw(self, texts: list[str]) -> list[list[int]]:
        return self._sp.encode(texts)

    def decode(self, ids: Sequence[int]) -> str:
        size = self.vocab_size
        kept = [int(i) for i in ids if 0 <= i < size and int(i) not in self._skip]
        return self._sp.decode(kept)


def resolve_tokenizer_file(path: str | os.PathLike[str]) -> Path:
    """The tokenizer file at ``path``, or inside it when ``path`` is a model folder."""
    path = Path(path)
    if path.is_file() and path.suffix in (".json", ".model"):
        return path
    if path.is_dir():
        for name in _FOLDER_CANDIDATES:
            if (path / name).is_file():
                return path / name
        models = sorted(path.glob("*.model"))
        if models:
            return models[0]
    raise ValueError(
        f"no tokenizer at {path}: expected a *.json or *.model file, or a folder holding "
        f"{' or '.join(_FOLDER_CANDIDATES)} or any *.model file"
    )


def load_tokenizer(path: str | os.PathLike[str]) -> Tokenizer:
    """A tokenizer from a ``tokenizer.json`` / SentencePiece ``*.model`` file or model folder."""
    file = resolve_tokenizer_file(path)
    if file.suffix == ".json":
        return HFTokenizer.from_file(file)
    return SentencePieceTokenizer.from_file(file)
