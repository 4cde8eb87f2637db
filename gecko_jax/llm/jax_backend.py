"""The local backend: a Flax Llama decoder from a GGUF file or a Hugging Face folder.

Shapes are bucketed so XLA compiles a handful of programs, not one per request: lengths (prompts,
scored sequences, new tokens) round up to eight steps per octave, at least ``length_bucket``
(at most 12.5% padding; 40 lengths up to 2048), batches to a power of two. Generation is one
jitted program per shape: prefill,
then a ``lax.while_loop`` of single-token decode steps that stops when every row has hit an
end-of-generation token or the requested number of tokens (a traced bound, so asking for fewer
tokens compiles nothing new). Prompts are grouped by length before batching.

A sample is a function of (prompt, seed) only: each row's random key is derived from its prompt
text and the seed, so batch composition (and therefore the on-disk cache, which sends only
uncached prompts) never changes what a seeded prompt produces.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import logging
import os
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from gecko_jax.llm.base import LLM, ContinuationScore, Generation, Prompt
from gecko_jax.llm.llama import (
    KVCache,
    Llama,
    LlamaConfig,
    abstract_params,
    load_hf_checkpoint,
    params_from_hf,
)
from gecko_jax.llm.llm_tokenizer import LLMTokenizer
from gecko_jax.models.weights import TensorSource
from gecko_jax.partitioning import logical_sharding, mesh_context

logger = logging.getLogger(__name__)


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def _bucket(n: int, min_step: int) -> int:
    """``n`` rounded up to a step of an eighth of its octave, and at least ``min_step``."""
    return _round_up(n, max(min_step, 1 << max(0, (n - 1).bit_length() - 4)))


def _batch_bucket(n: int) -> int:
    return 1 << (n - 1).bit_length()


def _positions(mask: jax.Array) -> jax.Array:
    """Left-padded rows: position 0 at each row's first real token (as ``transformers`` does)."""
    return jnp.maximum(jnp.cumsum(mask, axis=1) - 1, 0)


@functools.partial(jax.jit, static_argnames=("config", "width"))
def _score_tail(
    params: Any, config: LlamaConfig, tokens: jax.Array, mask: jax.Array, width: int
) -> jax.Array:
    """log p(token_t | tokens_<t) for the last ``width`` columns of left-padded ``[B, T]`` rows.

    Only those columns go through the vocabulary projection, which dominates at this model size.
    """
    model = Llama(config)
    batch, length = tokens.shape
    hidden, _ = model.apply(
        {"params": params},
        tokens,
        _positions(mask),
        mask,
        KVCache.zeros(config, batch, length, jnp.float32),
        0,
    )
    logits = model.apply({"params": params}, hidden[:, -width - 1 : -1], method=Llama.logits)
    logprobs = jax.nn.log_softmax(logits, axis=-1)
    return jnp.take_along_axis(logprobs, tokens[:, -width:, None], axis=-1)[..., 0]


@functools.partial(jax.jit, static_argnames=("config", "max_new"))
def _generate_tokens(
    params: Any,
    config: LlamaConfig,
    tokens: jax.Array,
    mask: jax.Array,
    max_new: int,
    num_new: jax.Array,
    temperature: jax.Array,
    row_keys: jax.Array,
    stop_ids: jax.Array,
) -> jax.Array:
    """Prefill left-padded prompts ``[B, P]``, then decode up to ``num_new`` (<= max_new) tokens.

    Returns ``[B, max_new]`` token ids; columns past the last step hold ``-1``.
    """
    model = Llama(config)
    batch, prompt_len = tokens.shape
    key_mask = jnp.concatenate([mask, jnp.ones((batch, max_new), mask.dtype)], axis=1)
    cache = KVCache.zeros(config, batch, prompt_len + max_new, jnp.float32)
    positions = _positions(mask)
    hidden, cache = model.apply({"params": params}, tokens, positions, key_mask, cache, 0)

    def pick(hidden_last: jax.Array, step: jax.Array) -> jax.Array:
        """The next token of each row from its last hidden state ``[B, 1, E]``."""
        logits = model.apply({"params": params}, hidden_last, method=Llama.logits)[:, 0]
        keys = jax.vmap(jax.random.fold_in, (0, None))(row_keys, step)
        sampled = jax.vmap(jax.random.categorical)(keys, logits / jnp.maximum(temperature, 1e-6))
        return jnp.where(temperature > 0, sampled, jnp.argmax(logits, axis=-1)).astype(jnp.int32)

    first = pick(hidden[:, -1:], jnp.int32(0))
    out = jnp.full((batch, max_new), -1, jnp.int32).at[:, 0].set(first)
    done = jnp.isin(first, stop_ids)

    def cond(state: tuple) -> jax.Array:
        step, _, _, done, _ = state
        return (step < num_new) & ~jnp.all(done)

    def body(state: tuple) -> tuple:
        step, out, cache, done, last = state
        hidden, cache = model.apply(
            {"params": params},
            last[:, None],
            positions[:, -1:] + step,
            key_mask,
            cache,
            prompt_len + step - 1,
        )
        token = pick(hidden, step)
        out = jax.lax.dynamic_update_slice(out, token[:, None], (jnp.int32(0), step))
        return step + 1, out, cache, done | jnp.isin(token, stop_ids), token

    _, out, _, _, _ = jax.lax.while_loop(cond, body, (jnp.int32(1), out, cache, done, first))
    return out


def _row_key(seed: int, text: str) -> jax.Array:
    """The random key of one prompt: a function of the seed and the prompt text only."""
    return jax.random.fold_in(jax.random.key(seed), zlib.crc32(text.encode("utf-8")))


def _file_digest(paths: Sequence[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


@dataclasses.dataclass
class _Row:
    """One padded batch row: the original position and the token ids."""

    index: int
    ids: list[int]


def _batches(rows: list[_Row], batch_size: int) -> Iterator[list[_Row]]:
    """Rows grouped by length (less padding), ``batch_size`` at a time."""
    ordered = sorted(rows, key=lambda row: len(row.ids))
    for start in range(0, len(ordered), batch_size):
        yield ordered[start : start + batch_size]


class JaxLLM(LLM):
    """A Llama decoder run with JAX on the local devices."""

    def __init__(
        self,
        config: LlamaConfig,
        params: Any,
        tokenizer: LLMTokenizer,
        model_id: str,
        max_context: int = 2048,
        batch_size: int = 16,
        length_bucket: int = 16,
        mesh: Mesh | None = None,
    ):
        """``mesh``: shard the parameters by their logical axis names and run under it."""
        if max_context > config.max_position_embeddings:
            raise ValueError(
                f"max_context {max_context} exceeds the model's {config.max_position_embeddings}"
            )
        self.config = config
        self.mesh = mesh
        if mesh is None:
            self.params = jax.tree.map(jnp.asarray, params)
        else:
            sharding = logical_sharding(abstract_params(config), mesh)
            self.params = jax.device_put(params, sharding)
        self.tokenizer = tokenizer
        self._model_id = model_id
        self.max_context = max_context
        self.batch_size = batch_size
        self.length_bucket = length_bucket
        # Inputs cut from the left to fit max_context (generation prompts and score contexts).
        self.truncated = 0

    @classmethod
    def from_gguf(cls, path: str | os.PathLike, **kwargs: Any) -> JaxLLM:
        from gecko_jax.llm.gguf_loader import read_gguf

        path = Path(path)
        contents = read_gguf(path)
        params = params_from_hf(TensorSource(contents.tensors, str(path)), contents.config)
        model_id = f"{path.name}@{_file_digest([path])}"
        return cls(contents.config, params, contents.tokenizer, model_id, **kwargs)

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, **kwargs: Any) -> JaxLLM:
        """A Hugging Face Llama folder: config.json, safetensors, tokenizer.json."""
        folder = Path(folder)
        config, params = load_hf_checkpoint(folder)
        model_id = f"{folder.name}@{_file_digest(sorted(folder.glob('*.safetensors')))}"
        return cls(config, params, LLMTokenizer.from_folder(folder), model_id, **kwargs)

    @property
    def backend(self) -> str:
        return "jax"

    def _placement(self) -> contextlib.AbstractContextManager:
        """Where the jitted programs trace and run: under the mesh, if there is one."""
        return contextlib.nullcontext() if self.mesh is None else mesh_context(self.mesh)

    @property
    def model_id(self) -> str:
        return self._model_id

    def _fit(self, ids: list[int], budget: int, what: str) -> list[int]:
        """Keep the last ``budget`` tokens (the part next to what the model writes or scores)."""
        if len(ids) <= budget:
            return ids
        self.truncated += 1
        logger.warning(
            "%s of %d tokens cut from the left to %d (max_context %d); %d inputs truncated so far",
            what,
            len(ids),
            budget,
            self.max_context,
            self.truncated,
        )
        return ids[len(ids) - budget :]

    def _padded(self, rows: list[_Row], length: int) -> tuple[np.ndarray, np.ndarray]:
        """Left-pad rows to ``[batch bucket, length]``; filler rows repeat the last row."""
        batch = _batch_bucket(len(rows))
        tokens = np.zeros((batch, length), np.int32)
        mask = np.zeros((batch, length), np.int32)
        for i in range(batch):
            ids = rows[min(i, len(rows) - 1)].ids
            tokens[i, length - len(ids) :] = ids
            mask[i, length - len(ids) :] = 1
        return tokens, mask

    def generate(
        self,
        prompts: Sequence[Prompt],
        max_tokens: int,
        temperature: float = 0.0,
        stop: Sequence[str] = (),
        seed: int = 0,
    ) -> list[Generation]:
        max_new = _bucket(max_tokens, self.length_bucket)
        budget = self.max_context - max_new
        if max_tokens < 1 or budget < 1:
            raise ValueError(
                f"max_tokens={max_tokens} (reserved as {max_new}) leaves no room for a prompt "
                f"in max_context={self.max_context}"
            )
        texts = [self.tokenizer.render(p) for p in prompts]
        rows = [
            _Row(i, self._fit(self.tokenizer.encode(t, at_start=True), budget, "prompt"))
            for i, t in enumerate(texts)
        ]
        stop_ids = jnp.asarray(sorted(self.tokenizer.stop_ids), jnp.int32)
        results: list[Generation | None] = [None] * len(rows)
        for batch in _batches(rows, self.batch_size):
            length = _bucket(max(len(r.ids) for r in batch), self.length_bucket)
            tokens, mask = self._padded(batch, min(length, budget))
            keys = [_row_key(seed, texts[row.index]) for row in batch]
            keys += keys[:1] * (len(tokens) - len(batch))
            with self._placement():
                out = _generate_tokens(
                    self.params,
                    self.config,
                    jnp.asarray(tokens),
                    jnp.asarray(mask),
                    max_new,
                    jnp.int32(max_tokens),
                    jnp.float32(temperature),
                    jnp.stack(keys),
                    stop_ids,
                )
            for row, ids in zip(batch, np.asarray(out)[: len(batch)], strict=True):
                results[row.index] = self._finish(ids[:max_tokens].tolist(), stop)
        return results  # type: ignore[return-value]

    def _finish(self, ids: list[int], stop: Sequence[str]) -> Generation:
        """Cut generated ids at the first end-of-generation token, then at the first stop string."""
        ended = next((k for k, t in enumerate(ids) if t in self.tokenizer.stop_ids), None)
        ids = ids if ended is None else ids[:ended]
        text = self.tokenizer.decode(ids)
        cuts = [text.find(s) for s in stop if s and s in text]
        if not cuts:
            finish = "length" if ended is None else "stop"
            return Generation(text, finish, len(ids) + (ended is not None))
        # Tokens consumed: the shortest prefix whose text already holds a stop string.
        used = next(k for k in range(len(ids) + 1) if self._has_stop(ids[:k], stop))
        return Generation(text[: min(cuts)], "stop", used)

    def _has_stop(self, ids: list[int], stop: Sequence[str]) -> bool:
        text = self.tokenizer.decode(ids)
        return any(s and s in text for s in stop)

    def score(
        self, contexts: Sequence[str], continuations: Sequence[str]
    ) -> list[ContinuationScore]:
        """Context and continuation are tokenized apart and joined, so the continuation's tokens
        are exactly those of the continuation text; contexts too long are cut from the left."""
        if len(contexts) != len(continuations):
            raise ValueError(f"{len(contexts)} contexts but {len(continuations)} continuations")
        rows, widths = [], []
        for i, (context, continuation) in enumerate(zip(contexts, continuations, strict=True)):
            tail = self.tokenizer.encode(continuation)
            if not tail or len(tail) >= self.max_context:
                raise ValueError(
                    f"continuation {i} has {len(tail)} tokens; need 1 to {self.max_context - 1}"
                )
            head = self._fit(
                self.tokenizer.encode(context, at_start=True),
                self.max_context - len(tail),
                "context",
            )
            if not head:
                raise ValueError(f"context {i} is empty: nothing to condition the first token on")
            rows.append(_Row(i, head + tail))
            widths.append(len(tail))
        results: list[ContinuationScore | None] = [None] * len(rows)
        for batch in _batches(rows, self.batch_size):
            length = _bucket(max(len(r.ids) for r in batch), self.length_bucket)
            tokens, mask = self._padded(batch, min(length, self.max_context))
            # Columns scored: every continuation in the batch, bucketed, and all preceded by
            # at least one context token.
            width = min(_round_up(max(widths[r.index] for r in batch), 16), tokens.shape[1] - 1)
            with self._placement():
                logprobs = _score_tail(
                    self.params, self.config, jnp.asarray(tokens), jnp.asarray(mask), width
                )
            logprobs = np.asarray(logprobs)
            for row, values in zip(batch, logprobs[: len(batch)], strict=True):
                terms = tuple(float(x) for x in values[width - widths[row.index] :])
                results[row.index] = ContinuationScore(sum(terms), terms)
        return results  # type: ignore[return-value]
