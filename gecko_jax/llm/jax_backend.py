"""The local backend: a Flax Llama decoder from a GGUF file or a Hugging Face folder.

Shapes are bucketed so XLA compiles a handful of programs, not one per request: lengths (prompts,
scored sequences, new tokens) round up to eight steps per octave, at least ``length_bucket``
(at most 12.5% padding; 40 lengths up to 2048), batches to a power of two. Generation is two
jitted programs per shape: prefill (which also picks the first token), then a ``lax.while_loop``
of single-token decode steps on the device that stops when every row has hit an
end-of-generation token or the requested number of tokens (a traced bound, so asking for fewer
tokens, or sampling instead of greedy decoding, compiles nothing new). They are two because XLA
compiler options suit them differently on CPU (see ``_NO_LIBRARY_FUSIONS``); the cache passes
from one to the other without a copy (donated). Prompts are grouped by length before batching.

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
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from gecko_jax.core.partitioning import logical_sharding, mesh_context
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

logger = logging.getLogger(__name__)


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


# Prompt rests in generation round up to this many tokens at least: a generation compiles two
# programs (prefill, decode loop) per shape, each about 10 s on 2 CPU cores for SmolLM2, so a
# few more padded prompt tokens cost less than another shape.
GENERATE_LENGTH_STEP = 64
# Scored rows likewise: their rests round up to steps of 64 tokens and their scored columns to
# steps of 32. On the demo's 141 FRet pairs this cut the programs compiled from 8 to 3 (about
# 12 s each) for about 20% more padded tokens.
SCORE_LENGTH_STEP = 64
SCORE_WIDTH_STEP = 32


def _bucket(n: int, min_step: int) -> int:
    """``n`` rounded up to a step of an eighth of its octave, and at least ``min_step``."""
    return _round_up(n, max(min_step, 1 << max(0, (n - 1).bit_length() - 4)))


def _batch_bucket(n: int) -> int:
    return 1 << (n - 1).bit_length()


def _common_prefix(rows: list[list[int]]) -> int:
    """How many leading tokens every row shares (the lexicographic extremes bound it)."""
    low, high = min(rows), max(rows)
    pairs = zip(low, high, strict=False)
    return next((i for i, (a, b) in enumerate(pairs) if a != b), len(low))


def _positions(mask: jax.Array) -> jax.Array:
    """Left-padded rows: position 0 at each row's first real token (as ``transformers`` does)."""
    return jnp.maximum(jnp.cumsum(mask, axis=1) - 1, 0)


def _prefill(
    model: Llama, params: Any, prefix: jax.Array, tokens: jax.Array, mask: jax.Array, free: int
) -> tuple[jax.Array, KVCache, KVCache | None, jax.Array, jax.Array]:
    """Run the shared ``prefix`` ``[1, C]`` once, then the left-padded rows ``[B, T]`` after it.

    Returns the rows' hidden states, their cache of ``C + T + free`` slots (the prefix copied
    to every row: whole-prompt attention ran slower when it read one shared copy), the prefix's
    own cache ``[1, ...]`` (None without a prefix), the rows' positions and the key mask of
    every slot. :func:`_own_slots` cuts the prefix off for programs that attend to it shared.
    """
    batch, shared = tokens.shape[0], prefix.shape[1]
    key_mask = jnp.concatenate(
        [jnp.ones((batch, shared), mask.dtype), mask, jnp.ones((batch, free), mask.dtype)], axis=1
    )
    variables = {"params": params}
    cache = KVCache.zeros(model.config, 1 if shared else batch, key_mask.shape[1], jnp.float32)
    common = None
    if shared:
        positions = jnp.arange(shared)[None]
        _, cache = model.apply(variables, prefix, positions, key_mask[:1], cache, 0)
        common = jax.tree.map(lambda c: c[:, :, :shared], cache)
        cache = jax.tree.map(lambda c: jnp.broadcast_to(c, (batch, *c.shape[1:])), cache)
    positions = shared + _positions(mask)
    hidden, cache = model.apply(variables, tokens, positions, key_mask, cache, shared)
    return hidden, cache, common, positions, key_mask


def _own_slots(cache: KVCache, key_mask: jax.Array, shared: int) -> tuple[KVCache, jax.Array]:
    """The cache and key mask without the first ``shared`` (prefix) slots."""
    return jax.tree.map(lambda c: c[:, :, shared:], cache), key_mask[:, shared:]


# Without YNNPACK fusions, XLA:CPU ran our prefill and scoring programs about 1.3x faster, and
# decode steps about 1.4x slower (SmolLM2-135M, 2 cores, benchmarks/llm_cpu.py): so only the
# programs that run whole prompts drop them.
_NO_LIBRARY_FUSIONS = {"xla_cpu_experimental_ynn_fusion_type": ""}


@functools.cache
def _prompt_options() -> dict[str, str] | None:
    """Compiler options of the whole-prompt programs: none off CPU or where this jaxlib lacks
    the (experimental) option."""
    if jax.default_backend() != "cpu":
        return None
    try:
        jax.jit(lambda x: x, compiler_options=_NO_LIBRARY_FUSIONS).lower(0).compile()
    except jax.errors.JaxRuntimeError:
        return None
    return _NO_LIBRARY_FUSIONS


def _prompt_jit(
    static_argnames: tuple[str, ...],
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``jax.jit`` with :func:`_prompt_options`, chosen at the first call (importing this module
    must not start a JAX backend). ``.jitted()`` is the jitted function."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.cache
        def jitted() -> Any:
            options = _prompt_options()
            return jax.jit(fn, static_argnames=static_argnames, compiler_options=options)

        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            return jitted()(*args, **kwargs)

        call.jitted = jitted  # type: ignore[attr-defined]
        return call

    return wrap


@_prompt_jit(static_argnames=("config", "width"))
def _score_tail(
    params: Any,
    config: LlamaConfig,
    prefix: jax.Array,
    tokens: jax.Array,
    mask: jax.Array,
    width: int,
) -> jax.Array:
    """log p(token_t | tokens_<t) for the last ``width`` columns of the rows (after ``prefix``).

    Only those columns go through the vocabulary projection, which dominates at this model size.
    """
    model = Llama(config)
    hidden, *_ = _prefill(model, params, prefix, tokens, mask, 0)
    logits = model.apply({"params": params}, hidden[:, -width - 1 : -1], method=Llama.logits)
    logprobs = jax.nn.log_softmax(logits, axis=-1)
    return jnp.take_along_axis(logprobs, tokens[:, -width:, None], axis=-1)[..., 0]


@_prompt_jit(static_argnames=("config", "width"))
def _score_grouped(
    params: Any,
    config: LlamaConfig,
    prefix: jax.Array,
    heads: jax.Array,
    head_mask: jax.Array,
    tails: jax.Array,
    tail_mask: jax.Array,
    head_of_row: jax.Array,
    width: int,
) -> jax.Array:
    """:func:`_score_tail` for rows that share whole contexts: each distinct context (``heads``
    ``[G, H]``, after ``prefix``) runs once, and each row's ``tails`` ``[B, T]`` run after a
    copy of its context's cache (``head_of_row`` ``[B]``). Mining scores every passage against
    the queries of every candidate list it is in, so contexts repeat about N times."""
    model = Llama(config)
    _, head_cache, common, head_positions, head_keys = _prefill(
        model, params, prefix, heads, head_mask, 0
    )
    head_cache, head_keys = _own_slots(head_cache, head_keys, prefix.shape[1])
    free = jnp.zeros((tails.shape[0], config.num_kv_heads, tails.shape[1], config.head_dim))
    cache = jax.tree.map(lambda c: jnp.concatenate([c[head_of_row], free], axis=2), head_cache)
    key_mask = jnp.concatenate([head_keys[head_of_row], tail_mask], axis=1)
    positions = head_positions[head_of_row, -1:] + 1 + _positions(tail_mask)
    variables = {"params": params}
    hidden, _ = model.apply(variables, tails, positions, key_mask, cache, heads.shape[1], common)
    logits = model.apply(variables, hidden[:, -width - 1 : -1], method=Llama.logits)
    logprobs = jax.nn.log_softmax(logits, axis=-1)
    return jnp.take_along_axis(logprobs, tails[:, -width:, None], axis=-1)[..., 0]


def _pick(
    model: Llama,
    params: Any,
    hidden_last: jax.Array,
    step: jax.Array,
    temperature: jax.Array,
    row_keys: jax.Array,
) -> jax.Array:
    """The next token of each row from its last hidden state ``[B, 1, E]``. A ``cond``, not a
    ``where``: greedy decoding skips drawing random numbers over the whole vocabulary."""
    logits = model.apply({"params": params}, hidden_last, method=Llama.logits)[:, 0]

    def sample(logits: jax.Array) -> jax.Array:
        keys = jax.vmap(jax.random.fold_in, (0, None))(row_keys, step)
        return jax.vmap(jax.random.categorical)(keys, logits / temperature).astype(jnp.int32)

    def greedy(logits: jax.Array) -> jax.Array:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)

    return jax.lax.cond(temperature > 0, sample, greedy, logits)


@_prompt_jit(static_argnames=("config", "max_new"))
def _start(
    params: Any,
    config: LlamaConfig,
    prefix: jax.Array,
    tokens: jax.Array,
    mask: jax.Array,
    max_new: int,
    temperature: jax.Array,
    row_keys: jax.Array,
) -> tuple[jax.Array, KVCache, KVCache | None, jax.Array, jax.Array]:
    """Prefill ``prefix`` + left-padded prompts ``[B, P]`` into a cache with ``max_new`` free
    slots, and pick each row's first new token.

    Returns the first tokens ``[B]``, the rows' cache, the prefix's cache, the rows' last
    positions ``[B]`` and the key mask of the rows' slots.
    """
    model = Llama(config)
    hidden, cache, common, positions, key_mask = _prefill(
        model, params, prefix, tokens, mask, max_new
    )
    first = _pick(model, params, hidden[:, -1:], jnp.int32(0), temperature, row_keys)
    # Decode steps read the prefix once per step, not once per row.
    cache, key_mask = _own_slots(cache, key_mask, prefix.shape[1])
    return first, cache, common, positions[:, -1], key_mask


@functools.partial(jax.jit, static_argnames=("config", "max_new"), donate_argnames=("cache",))
def _decode(
    params: Any,
    config: LlamaConfig,
    first: jax.Array,
    cache: KVCache,
    common: KVCache | None,
    last_positions: jax.Array,
    key_mask: jax.Array,
    max_new: int,
    num_new: jax.Array,
    temperature: jax.Array,
    row_keys: jax.Array,
    stop_ids: jax.Array,
) -> tuple[jax.Array, KVCache]:
    """Single-token steps after ``first`` until ``num_new`` (<= max_new, the cache's free slots)
    tokens or every row has stopped, in one ``while_loop``. Returns ``[B, max_new]`` token ids
    (columns past the last step hold -1), and the cache: as an output, the donated one is
    updated in place instead of copied.
    """
    model = Llama(config)
    first_slot = key_mask.shape[1] - max_new
    out = jnp.full((first.shape[0], max_new), -1, jnp.int32).at[:, 0].set(first)

    def cond(state: tuple) -> jax.Array:
        step, _, _, done, _ = state
        return (step < num_new) & ~jnp.all(done)

    def body(state: tuple) -> tuple:
        step, out, cache, done, last = state
        hidden, cache = model.apply(
            {"params": params},
            last[:, None],
            last_positions[:, None] + step,
            key_mask,
            cache,
            first_slot + step - 1,
            common,
        )
        token = _pick(model, params, hidden, step, temperature, row_keys)
        out = jax.lax.dynamic_update_slice(out, token[:, None], (jnp.int32(0), step))
        return step + 1, out, cache, done | jnp.isin(token, stop_ids), token

    state = (jnp.int32(1), out, cache, jnp.isin(first, stop_ids), first)
    _, out, cache, _, _ = jax.lax.while_loop(cond, body, state)
    return out, cache


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


def _batches(
    rows: list[_Row], batch_size: int, key: Callable[[_Row], Any] = lambda row: len(row.ids)
) -> Iterator[list[_Row]]:
    """Rows in ``key`` order (by default by length: less padding), ``batch_size`` at a time."""
    ordered = sorted(rows, key=key)
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

    @property
    def model_id(self) -> str:
        return self._model_id

    def _placement(self) -> contextlib.AbstractContextManager:
        """Where the jitted programs trace and run: under the mesh, if there is one."""
        return contextlib.nullcontext() if self.mesh is None else mesh_context(self.mesh)

    def _prompt_budget(self, max_tokens: int) -> int:
        """Prompt tokens kept: ``max_tokens`` new ones must fit after them in max_context."""
        if not 1 <= max_tokens < self.max_context:
            raise ValueError(
                f"max_tokens={max_tokens} leaves no room for a prompt in "
                f"max_context={self.max_context}"
            )
        return self.max_context - max_tokens

    def _window(self, length: int, budget: int) -> dict[str, Any]:
        """Cache-key extras of an input of ``length`` tokens kept to ``budget``: the window if
        it is cut (the answer depends on it), nothing otherwise (it does not)."""
        return {"max_context": self.max_context} if length > budget else {}

    def generate_cache_extras(
        self, prompts: Sequence[Prompt], max_tokens: int
    ) -> list[dict[str, Any]]:
        budget = self._prompt_budget(max_tokens)
        texts = (self.tokenizer.render(p) for p in prompts)
        return [self._window(len(self.tokenizer.encode(t, at_start=True)), budget) for t in texts]

    def score_cache_extras(
        self, contexts: Sequence[str], continuations: Sequence[str]
    ) -> list[dict[str, Any]]:
        return self.score_parts_cache_extras(contexts, [[q] for q in continuations])

    def score_parts_cache_extras(
        self, contexts: Sequence[str], parts: Sequence[Sequence[str]]
    ) -> list[dict[str, Any]]:
        return [
            self._window(
                len(self.tokenizer.encode(c, at_start=True)),
                self.max_context - sum(len(self.tokenizer.encode(p)) for p in row),
            )
            for c, row in zip(contexts, parts, strict=True)
        ]

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

    def _layout(
        self, rows: list[list[int]], limit: int, cap: int, min_step: int = 0
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A batch as a shared prefix ``[1, C]`` plus left-padded rest ``[batch bucket, T]``.

        The prefix is the longest token prefix all rows share (batches of two or more; at most
        ``limit``, rounded down to ``length_bucket``): FRet's few-shot prompts are identical
        for every passage, so their keys and values are computed once per batch, not per row.
        ``T`` is the bucketed longest rest (steps of at least ``min_step``), at most ``cap - C``.
        Filler rows repeat the last row.
        """
        shared = 0
        if len(rows) > 1:
            common = min(_common_prefix(rows), limit)
            shared = common // self.length_bucket * self.length_bucket
        rest = [ids[shared:] for ids in rows]
        step = max(self.length_bucket, min_step)
        length = min(_bucket(max(map(len, rest)), step), cap - shared)
        tokens = np.zeros((_batch_bucket(len(rest)), length), np.int32)
        mask = np.zeros_like(tokens)
        for i in range(len(tokens)):
            ids = rest[min(i, len(rest) - 1)]
            tokens[i, length - len(ids) :] = ids
            mask[i, length - len(ids) :] = 1
        return np.asarray(rows[0][:shared], np.int32).reshape(1, shared), tokens, mask

    def generate(
        self,
        prompts: Sequence[Prompt],
        max_tokens: int,
        temperature: float = 0.0,
        stop: Sequence[str] = (),
        seed: int = 0,
    ) -> list[Generation]:
        budget = self._prompt_budget(max_tokens)
        texts = [self.tokenizer.render(p) for p in prompts]
        rows = [
            _Row(i, self._fit(self.tokenizer.encode(t, at_start=True), budget, "prompt"))
            for i, t in enumerate(texts)
        ]
        if empty := [r.index for r in rows if not r.ids]:
            raise ValueError(f"prompts {empty[:5]} are empty: nothing to continue from")
        results: list[Generation | None] = [None] * len(rows)
        for batch in _batches(rows, self.batch_size):
            ids = [r.ids for r in batch]
            prefix, tokens, mask = self._layout(
                ids, min(map(len, ids)) - 1, budget, GENERATE_LENGTH_STEP
            )
            keys = [_row_key(seed, texts[row.index]) for row in batch]
            # Filler rows repeat the last row, its random key too, so they end when it ends.
            keys += keys[-1:] * (len(tokens) - len(batch))
            out = self._decode_batch(prefix, tokens, mask, jnp.stack(keys), max_tokens, temperature)
            for row, new in zip(batch, out[: len(batch)], strict=True):
                results[row.index] = self._finish(new[:max_tokens].tolist(), stop)
        return results  # type: ignore[return-value]

    def _row_logprobs(
        self, batch: list[_Row], heads: list[int], longest: int
    ) -> tuple[int, jax.Array]:
        """The last ``width`` columns' log-probs of rows laid out one by one after the prefix
        they share. The prefix stops short of every context's last token: that token's hidden
        state predicts the continuation's first."""
        limit = min(heads[r.index] for r in batch) - 1
        prefix, tokens, mask = self._layout(
            [r.ids for r in batch], limit, self.max_context, SCORE_LENGTH_STEP
        )
        # Columns scored: every continuation in the batch, bucketed, and all preceded by at
        # least one context token.
        width = min(_round_up(longest, SCORE_WIDTH_STEP), tokens.shape[1] - 1)
        args = (jnp.asarray(prefix), jnp.asarray(tokens), jnp.asarray(mask))
        return width, _score_tail(self.params, self.config, *args, width)

    def _grouped_logprobs(
        self,
        batch: list[_Row],
        contexts: list[tuple[int, ...]],
        distinct: list[tuple[int, ...]],
        longest: int,
    ) -> tuple[int, jax.Array]:
        """As :meth:`_row_logprobs` where rows share contexts: each distinct context but its
        last token runs once; each row runs that token and its continuation after it."""
        heads = [list(c[:-1]) for c in distinct]
        prefix, head_tokens, head_mask = self._layout(
            heads, min(map(len, heads)) - 1, self.max_context, SCORE_LENGTH_STEP
        )
        group = {c: g for g, c in enumerate(distinct)}
        tails = [[contexts[r.index][-1], *r.ids[len(contexts[r.index]) :]] for r in batch]
        _, tail_tokens, tail_mask = self._layout(tails, 0, self.max_context, SCORE_WIDTH_STEP)
        head_of_row = [group[contexts[r.index]] for r in batch]
        head_of_row += head_of_row[-1:] * (len(tail_tokens) - len(batch))
        width = min(_round_up(longest, SCORE_WIDTH_STEP), tail_tokens.shape[1] - 1)
        arrays = (prefix, head_tokens, head_mask, tail_tokens, tail_mask, head_of_row)
        args = [jnp.asarray(a, jnp.int32) for a in arrays]
        return width, _score_grouped(self.params, self.config, *args, width)

    def _decode_batch(
        self,
        prefix: np.ndarray,
        tokens: np.ndarray,
        mask: np.ndarray,
        row_keys: jax.Array,
        max_tokens: int,
        temperature: float,
    ) -> np.ndarray:
        """New token ids ``[batch bucket, bucketed max_tokens]`` of one laid-out batch."""
        max_new, heat = _bucket(max_tokens, self.length_bucket), jnp.float32(temperature)
        stop_ids = jnp.asarray(sorted(self.tokenizer.stop_ids), jnp.int32)
        with self._placement():
            first, cache, common, positions, key_mask = _start(
                self.params,
                self.config,
                jnp.asarray(prefix),
                jnp.asarray(tokens),
                jnp.asarray(mask),
                max_new,
                heat,
                row_keys,
            )
            out, _ = _decode(
                self.params,
                self.config,
                first,
                cache,
                common,
                positions,
                key_mask,
                max_new,
                jnp.int32(max_tokens),
                heat,
                row_keys,
                stop_ids,
            )
        return np.asarray(out)

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
        rows = self._score_terms(contexts, [[q] for q in continuations])
        return [ContinuationScore(sum(terms), terms) for (terms,) in rows]

    def score_parts(
        self, contexts: Sequence[str], parts: Sequence[Sequence[str]]
    ) -> list[tuple[float, ...]]:
        """One forward pass per row: the context and each part are tokenized apart and joined
        (as ``score`` joins context and continuation), and each part's token terms summed."""
        if len(contexts) != len(parts):
            raise ValueError(f"{len(contexts)} contexts but {len(parts)} part lists")
        rows = self._score_terms(contexts, parts)
        return [tuple(sum(terms) for terms in row) for row in rows]

    def _score_terms(
        self, contexts: Sequence[str], parts: Sequence[Sequence[str]]
    ) -> list[list[tuple[float, ...]]]:
        """Per row, per part, log p(token | everything before it) of each of the part's tokens.

        Every part must have a token; a context too long for the parts is cut from the left.
        """
        rows, spans, heads = [], [], []
        for i, (context, texts) in enumerate(zip(contexts, parts, strict=True)):
            tails = [self.tokenizer.encode(text) for text in texts]
            lengths = [len(t) for t in tails]
            if not tails or 0 in lengths or sum(lengths) >= self.max_context:
                raise ValueError(
                    f"continuation {i} has {lengths} tokens (per part); need 1 or more in each "
                    f"part and {self.max_context - 1} at most in all"
                )
            head = self._fit(
                self.tokenizer.encode(context, at_start=True),
                self.max_context - sum(lengths),
                "context",
            )
            if not head:
                raise ValueError(f"context {i} is empty: nothing to condition the first token on")
            rows.append(_Row(i, head + [t for tail in tails for t in tail]))
            spans.append(lengths)
            heads.append(len(head))
        results: list[list[tuple[float, ...]] | None] = [None] * len(rows)
        # Rows with the same context side by side (by context length first: less padding), so
        # that batches hold whole groups of them.
        context_ids = [tuple(r.ids[: heads[r.index]]) for r in rows]

        def order(row: _Row) -> tuple:
            return heads[row.index], context_ids[row.index], len(row.ids)

        for batch in _batches(rows, self.batch_size, order):
            longest = max(sum(spans[r.index]) for r in batch)
            distinct = list(dict.fromkeys(context_ids[r.index] for r in batch))
            with self._placement():
                if len(distinct) < len(batch) and min(map(len, distinct)) > 1:
                    width, logprobs = self._grouped_logprobs(batch, context_ids, distinct, longest)
                else:
                    width, logprobs = self._row_logprobs(batch, heads, longest)
            logprobs = np.asarray(logprobs)
            for row, values in zip(batch, logprobs[: len(batch)], strict=True):
                tail = values[width - sum(spans[row.index]) :]
                pieces = np.split(tail, np.cumsum(spans[row.index])[:-1])
                results[row.index] = [tuple(float(x) for x in piece) for piece in pieces]
        return results  # type: ignore[return-value]
