"""The local JAX decoder on the real SmolLM2-135M GGUF, against transformers on the same file.

One JaxLLM and one transformers reference per module: the 30-layer model compiles slowly on CPU,
so every test reuses a few shapes (batch 1/2/4, length 64/128).
"""

from __future__ import annotations

import functools
import logging
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec

torch = pytest.importorskip("torch")

from torch_reference import load_reference  # noqa: E402

from gecko_jax.core.assets import smollm2_gguf_path  # noqa: E402
from gecko_jax.core.partitioning import MeshConfig, create_mesh  # noqa: E402
from gecko_jax.fret.prompts import joint_parts  # noqa: E402
from gecko_jax.llm import LLM, CachedLLM, JaxLLM, load_llm  # noqa: E402
from gecko_jax.llm.gguf_loader import unpermute_rope_rows  # noqa: E402
from gecko_jax.llm.jax_backend import _bucket, _common_prefix  # noqa: E402
from gecko_jax.llm.llama import (  # noqa: E402
    KVCache,
    Llama,
    LlamaConfig,
    abstract_params,
    attention_spans,
    load_hf_checkpoint,
)

MAX_CONTEXT = 128
# Few compiled shapes: lengths round up to 64 or 128. The scored pairs share a 64-token prefix
# (their instructions), so batches of them take the shared-prefix layout; the chat prompts share
# less than 64 tokens (SmolLM's system prompt), so their batches do not; single rows never do.
SHAPES = {"max_context": MAX_CONTEXT, "batch_size": 4, "length_bucket": 64}
RAW_PROMPTS = [
    "The capital of France is Paris, and the capital of Germany is",
    "def fibonacci(n):\n    if n < 2:\n        return n\n",
]
CHAT_PROMPTS = [
    [{"role": "user", "content": "Describe whales."}],
    [{"role": "user", "content": "Say the word yes and nothing else."}],
]
# A system prompt long enough (64+ tokens) for a shared prefix, for the sharded model.
SYSTEM = (
    "You help people find information. Read what the user writes and answer in plain English, "
    "briefly and politely, without lists, quotes or any markup. When you are asked for a single "
    "word, reply with only that word and nothing else. Never mention that you are an "
    "assistant, and never apologise."
)
INSTRUCTION = (
    "Each passage below is followed by a query that a user typed into a search engine to find "
    "it. The queries are short, in lower case, and use their own words rather than phrases "
    "copied from the passage.\n\nPassage: The Eiffel Tower was built from 1887 to 1889.\n"
    "Query: how old is the eiffel tower\n\n"
)
PAIRS = [
    (
        INSTRUCTION + "Passage: The blue whale is the largest animal ever known.\nQuery:",
        " how big is a blue whale",
    ),
    (
        INSTRUCTION + "Passage: Bread is made from flour, water and yeast.\nQuery:",
        " what is bread made of",
    ),
    (INSTRUCTION + "Passage: Paris is the capital of France.\nQuery:", " Paris"),
]


@pytest.fixture(scope="module")
def llm() -> JaxLLM:
    return JaxLLM.from_gguf(smollm2_gguf_path(), **SHAPES)


@pytest.fixture(scope="module")
def reference():
    torch.manual_seed(0)
    return load_reference(smollm2_gguf_path())


def reference_logprobs(model, ids: list[int]) -> np.ndarray:
    """log p(ids[t] | ids[:t]) for t >= 1, from transformers."""
    with torch.inference_mode():
        logits = model(torch.tensor([ids])).logits[0]
    logprobs = torch.log_softmax(logits.double(), dim=-1)[:-1]
    return logprobs.gather(-1, torch.tensor(ids[1:])[:, None])[:, 0].numpy()


def test_unpermute_inverts_llama_cpp_permute():
    heads, head_dim, fan_in = 3, 8, 5
    weight = np.arange(heads * head_dim * fan_in, dtype=np.float32).reshape(-1, fan_in)
    # convert_hf_to_gguf.py's LlamaModel.permute
    permuted = weight.reshape(heads, 2, head_dim // 2, fan_in).swapaxes(1, 2).reshape(weight.shape)
    assert not np.array_equal(permuted, weight)
    np.testing.assert_array_equal(unpermute_rope_rows(permuted, heads), weight)


def test_length_buckets_pad_little_and_stay_few():
    lengths = range(1, 2049)
    buckets = [_bucket(n, 16) for n in lengths]
    assert all(b >= n for n, b in zip(lengths, buckets, strict=True))
    assert max(b / n for n, b in zip(lengths, buckets, strict=True) if n > 128) <= 1.125
    assert len(set(buckets)) == 40
    assert {_bucket(n, 64) for n in range(1, 129)} == {64, 128}


@pytest.mark.parametrize(
    "text",
    [
        "In 2024, 12345 people said: don't, won't, I'll!",
        "naïve café — 東京 🐍 Ünïcödé",
        "  leading spaces\n\n\ttabs   and  runs\r\n",
        "<|im_start|>user\nhi<|im_end|>\n<|endoftext|>",
        "x=1+2; print(x)  # comment\n",
    ],
)
def test_tokenizer_matches_transformers(llm, reference, text):
    _, tokenizer = reference
    ids = llm.tokenizer.encode(text)
    assert ids == tokenizer(text)["input_ids"]
    assert llm.tokenizer.tokenizer.decode(ids, skip_special_tokens=False) == text


def test_chat_template_renders_chatml(llm):
    rendered = llm.tokenizer.render(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    )
    assert rendered == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    # Without a system message, the template adds SmolLM's own.
    assert llm.tokenizer.render(CHAT_PROMPTS[0]).startswith(
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM"
    )
    assert llm.tokenizer.stop_ids >= {llm.tokenizer.eos_id}
    assert llm.tokenizer.tokenizer.id_to_token(llm.tokenizer.eos_id) == "<|im_end|>"


def test_logits_match_transformers(llm, reference):
    """Left-padded batch of two prompts vs transformers on each prompt alone."""
    model, _ = reference
    rows = [llm.tokenizer.encode(p) for p in RAW_PROMPTS]
    length = 64
    tokens = np.zeros((len(rows), length), np.int32)
    mask = np.zeros_like(tokens)
    for i, ids in enumerate(rows):
        tokens[i, length - len(ids) :], mask[i, length - len(ids) :] = ids, 1

    @jax.jit
    def logits(params, tokens, mask):
        decoder = Llama(llm.config)
        positions = jnp.maximum(jnp.cumsum(mask, axis=1) - 1, 0)
        cache = KVCache.zeros(llm.config, *tokens.shape, jnp.float32)
        hidden, _ = decoder.apply({"params": params}, tokens, positions, mask, cache, 0)
        return decoder.apply({"params": params}, hidden, method=Llama.logits)

    ours = np.asarray(logits(llm.params, tokens, mask))
    worst = 0.0
    for i, ids in enumerate(rows):
        with torch.inference_mode():
            theirs = model(torch.tensor([ids])).logits[0].numpy()
        mine = ours[i, length - len(ids) :]
        np.testing.assert_array_equal(mine.argmax(-1), theirs.argmax(-1))
        worst = max(worst, float(np.abs(mine - theirs).max()))
    print(f"max |logit diff| vs transformers: {worst:.2e}")
    assert worst < 2e-3


def tiny_decoder(llm: JaxLLM) -> tuple[LlamaConfig, dict]:
    """A small random decoder (untied head) with the real vocabulary."""
    config = LlamaConfig(
        vocab_size=llm.config.vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_layers=2,
        num_heads=4,
        num_kv_heads=2,
        head_dim=16,
        max_position_embeddings=2 * MAX_CONTEXT,
    )
    abstract = nn.unbox(abstract_params(config))
    leaves, tree = jax.tree.flatten(abstract)
    keys = jax.random.split(jax.random.key(0), len(leaves))
    params = jax.tree.unflatten(
        tree, [0.1 * jax.random.normal(k, x.shape) for k, x in zip(keys, leaves, strict=True)]
    )
    return config, params


def test_chunked_attention_equals_one_product(llm):
    """A static index attends in query chunks over the slots each can see; a traced one in one
    product over every slot. Same result, on left-padded rows after a cached prefix."""
    assert [tuple(s) for s in attention_spans(8, 150, 200)] == [
        (0, 64, 72),
        (64, 128, 136),
        (128, 150, 158),
    ]
    assert len(attention_spans(0, 2048, 2048)) == 8
    assert len(attention_spans(jnp.int32(0), 150, 200)) == 1
    config, params = tiny_decoder(llm)
    tokens = jax.random.randint(jax.random.key(1), (2, 150), 0, config.vocab_size)
    mask = jnp.ones((2, 158), jnp.int32).at[1, 8:40].set(0)
    positions = jnp.maximum(jnp.cumsum(mask[:, 8:], axis=1) - 1, 0) + 8
    cache = KVCache.zeros(config, 2, 158, jnp.float32)
    cache = jax.tree.map(lambda c: c.at[:, :, :8].set(1.0), cache)

    @functools.partial(jax.jit, static_argnames="static")
    def hidden(params, static: bool):
        index = 8 if static else jnp.int32(8)
        out, _ = Llama(config).apply({"params": params}, tokens, positions, mask, cache, index)
        return out

    np.testing.assert_allclose(hidden(params, True), hidden(params, False), atol=1e-5)


def test_greedy_generation_matches_transformers(llm, reference):
    model, _ = reference
    rendered = [llm.tokenizer.encode(llm.tokenizer.render(p)) for p in CHAT_PROMPTS]
    assert _common_prefix(rendered) < 64  # plain left-padded layout
    ours = llm.generate(CHAT_PROMPTS, max_tokens=16)
    for prompt, generation in zip(CHAT_PROMPTS, ours, strict=True):
        ids = llm.tokenizer.encode(llm.tokenizer.render(prompt), at_start=True)
        new, ended = _transformers_greedy(model, llm, ids, 16)
        assert generation.text == llm.tokenizer.decode(new)
        assert generation.num_tokens == len(new) + bool(ended)
        assert generation.finish_reason == ("stop" if ended else "length")
        assert generation.text


def _transformers_greedy(model, llm, ids: list[int], max_new: int) -> tuple[list[int], bool]:
    """transformers' greedy continuation of ``ids``, cut before its first end-of-generation
    token, and whether it reached one."""
    with torch.inference_mode():
        out = model.generate(
            torch.tensor([ids]),
            max_new_tokens=max_new,
            do_sample=False,
            eos_token_id=sorted(llm.tokenizer.stop_ids),
            pad_token_id=llm.tokenizer.eos_id,
        )[0, len(ids) :].tolist()
    ended = [k for k, t in enumerate(out) if t in llm.tokenizer.stop_ids]
    return (out[: ended[0]] if ended else out), bool(ended)


def test_greedy_generation_after_a_shared_prefix_matches_transformers(llm, reference):
    """FRet's prompts share a long head (system prompt, few-shot turns): computed once per
    batch and attended to as one copy, the greedy tokens are still transformers' own."""
    model, _ = reference
    prompts = [[{"role": "system", "content": SYSTEM}, *p] for p in CHAT_PROMPTS]
    rendered = [llm.tokenizer.encode(llm.tokenizer.render(p), at_start=True) for p in prompts]
    assert _common_prefix(rendered) >= 64
    for ids, generation in zip(rendered, llm.generate(prompts, max_tokens=16), strict=True):
        new, _ = _transformers_greedy(model, llm, ids, 16)
        assert generation.text == llm.tokenizer.decode(new)
        assert generation.text


def test_batched_generation_equals_one_by_one(llm):
    batched = llm.generate(CHAT_PROMPTS, max_tokens=16)
    assert batched == [llm.generate([p], max_tokens=16)[0] for p in CHAT_PROMPTS]


def test_seeded_sampling_is_reproducible_and_batch_independent(llm):
    first = llm.generate(CHAT_PROMPTS, max_tokens=16, temperature=1.0, seed=1)
    assert first == llm.generate(CHAT_PROMPTS, max_tokens=16, temperature=1.0, seed=1)
    # A prompt's sample depends on (prompt, seed), not on its batch neighbours.
    assert llm.generate(CHAT_PROMPTS[:1], max_tokens=16, temperature=1.0, seed=1)[0] == first[0]
    other = llm.generate(CHAT_PROMPTS, max_tokens=16, temperature=1.0, seed=2)
    greedy = llm.generate(CHAT_PROMPTS, max_tokens=16)
    assert other != first
    assert first != greedy


def test_stop_strings_and_finish_reason(llm):
    full = llm.generate(CHAT_PROMPTS[:1], max_tokens=16)[0]
    assert full.finish_reason == "length"
    assert full.num_tokens == 16
    stop = full.text[len(full.text) // 2 : len(full.text) // 2 + 3]
    cut = llm.generate(CHAT_PROMPTS[:1], max_tokens=16, stop=["never appears", stop])[0]
    assert cut.text == full.text[: full.text.find(stop)]
    assert cut.finish_reason == "stop"
    assert 0 < cut.num_tokens < 16
    short = llm.generate(CHAT_PROMPTS[:1], max_tokens=3)[0]
    assert (short.finish_reason, short.num_tokens) == ("length", 3)
    assert full.text.startswith(short.text)


def test_fewer_tokens_sampling_or_other_prompts_compile_nothing_new(llm, caplog):
    """Programs per (batch bucket, length bucket) only: max_tokens and temperature are traced."""

    def probe(x):
        return x + 1

    llm.generate(CHAT_PROMPTS, max_tokens=16)
    with jax.log_compiles(), caplog.at_level(logging.WARNING, logger="jax"):
        llm.generate(CHAT_PROMPTS, max_tokens=5, temperature=0.5)
        llm.generate(RAW_PROMPTS, max_tokens=9)
        jax.jit(probe)(1)  # compiles are logged
    assert re.findall(r"XLA compilation of jit\((\w+)\)", caplog.text) == ["probe"]


def test_only_cut_inputs_are_keyed_by_the_window(llm):
    """max_context changes an answer only where it cuts the input, so only there is it keyed."""
    short, long = "Describe whales.", "Passage: " + " ".join(f"word{i}" for i in range(60))
    length = len(llm.tokenizer.encode(short, at_start=True))
    assert len(llm.tokenizer.encode(long, at_start=True)) > MAX_CONTEXT
    window = {"max_context": MAX_CONTEXT}
    assert llm.generate_cache_extras([short, long], max_tokens=16) == [{}, window]
    # The prompt keeps max_context - max_tokens tokens, whatever the length buckets.
    assert llm.generate_cache_extras([short], MAX_CONTEXT - length) == [{}]
    assert llm.generate_cache_extras([short], MAX_CONTEXT - length + 1) == [window]
    assert llm.score_cache_extras([short, long], [" q", " q"]) == [{}, window]
    parts = list(joint_parts("q"))
    assert llm.score_parts_cache_extras([short, long], [parts, parts]) == [{}, window]
    # Every part's tokens count against the window.
    fits = " the" * (MAX_CONTEXT - length)
    assert len(llm.tokenizer.encode(fits)) == MAX_CONTEXT - length
    assert llm.score_parts_cache_extras([short], [[fits]]) == [{}]
    assert llm.score_parts_cache_extras([short], [[fits, " x"]]) == [window]
    wide = JaxLLM(llm.config, llm.params, llm.tokenizer, "same", **(SHAPES | {"max_context": 512}))
    assert wide.score_cache_extras([short, long], [" q", " q"]) == [{}, {}]
    assert wide.score_parts_cache_extras([short, long], [parts, parts]) == [{}, {}]


def test_load_llm_settings_reach_the_backend_and_keep_its_cache(llm, tmp_path):
    """batch_size and length_bucket never change an answer, and max_context only for the inputs
    it cuts (keyed by its window there): loaded with other settings, the LLM keeps the cache."""
    path = tmp_path / "calls.jsonl"
    expected = CachedLLM(llm, path).generate(CHAT_PROMPTS, max_tokens=16)
    settings = {"max_context": 512, "batch_size": 1, "length_bucket": 16}
    other = load_llm("jax:" + str(smollm2_gguf_path()), cache=path, **settings)
    assert {name: getattr(other.inner, name) for name in settings} == settings
    assert other.generate(CHAT_PROMPTS, max_tokens=16) == expected
    assert (other.hits, other.misses) == (2, 0)


def test_empty_inputs_are_rejected(llm):
    with pytest.raises(ValueError, match="empty"):
        llm.generate(["fine", ""], max_tokens=4)
    with pytest.raises(ValueError, match="empty"):
        llm.score([""], [" continuation"])
    with pytest.raises(ValueError, match=r"\[2, 0, 1\] tokens"):
        llm.score_parts(["context"], [[" a b", "", " Yes"]])
    with pytest.raises(ValueError, match="no room"):
        llm.generate(["fine"], max_tokens=MAX_CONTEXT)


def test_score_matches_transformers(llm, reference):
    model, _ = reference
    # The batch shares its instructions: scored through the shared-prefix layout.
    assert _common_prefix([llm.tokenizer.encode(c) for c, _ in PAIRS]) >= 64
    scores = llm.score([c for c, _ in PAIRS], [q for _, q in PAIRS])
    for (context, continuation), score in zip(PAIRS, scores, strict=True):
        head, tail = llm.tokenizer.encode(context), llm.tokenizer.encode(continuation)
        expected = reference_logprobs(model, head + tail)[-len(tail) :]
        np.testing.assert_allclose(score.token_logprobs, expected, atol=2e-4)
        assert score.total == pytest.approx(sum(score.token_logprobs))
        assert score.total < 0


def test_rows_that_share_a_context_match_transformers(llm, reference):
    """Mining scores each candidate passage with several queries: a batch with repeated
    contexts runs each context once and every continuation after it (the grouped layout)."""
    model, _ = reference
    queries = [" how big is a blue whale", " largest animal", " what is bread made of"]
    contexts = [PAIRS[0][0]] * 3 + [PAIRS[1][0]] * 3 + [PAIRS[2][0]]
    continuations = queries * 2 + [" Paris"]
    scores = llm.score(contexts, continuations)  # batches of 4: 3 + 1 rows, then 2 + 1
    for context, continuation, score in zip(contexts, continuations, scores, strict=True):
        head, tail = llm.tokenizer.encode(context), llm.tokenizer.encode(continuation)
        expected = reference_logprobs(model, head + tail)[-len(tail) :]
        np.testing.assert_allclose(score.token_logprobs, expected, atol=2e-4)


def test_batched_score_equals_one_by_one(llm):
    batched = llm.score([c for c, _ in PAIRS], [q for _, q in PAIRS])
    for (context, continuation), score in zip(PAIRS, batched, strict=True):
        (alone,) = llm.score([context], [continuation])
        # Only float32 summation order differs between batch sizes.
        np.testing.assert_allclose(alone.token_logprobs, score.token_logprobs, atol=1e-4)


def test_score_parts_in_one_pass_equals_scoring_each_part(llm):
    """Joint scoring's parity: one pass per row, as the base class's ``score`` per part gives."""
    contexts = [c for c, _ in PAIRS]
    # Each query as FRet's joint scoring sends it: " " + query, the separator, the label.
    parts = [list(joint_parts(q[1:])) for _, q in PAIRS]
    for context, row in zip(contexts, parts, strict=True):
        # Tokenized apart, the joined text has the same tokens: the two ways score the same.
        apart = [t for p in row for t in llm.tokenizer.encode(p)]
        assert llm.tokenizer.encode(context + "".join(row), at_start=True) == (
            llm.tokenizer.encode(context, at_start=True) + apart
        )
    joint = llm.score_parts(contexts, parts)
    one_by_one = LLM.score_parts(llm, contexts, parts)
    assert [len(row) for row in joint] == [3] * len(PAIRS)
    np.testing.assert_allclose(joint, one_by_one, atol=1e-4)
    assert all(total < 0 for row in joint for total in row)


def test_long_context_is_cut_from_the_left_and_counted(llm, reference, caplog):
    model, _ = reference
    # Same weights, a 128-token window: reuses the compiled single-row [1, 128] scoring shape.
    small = JaxLLM(llm.config, llm.params, llm.tokenizer, "same", **(SHAPES | {"max_context": 128}))
    context = "Passage: " + " ".join(f"word{i}" for i in range(60)) + "\nQuery:"
    continuation = " what words are listed"
    head, tail = llm.tokenizer.encode(context), llm.tokenizer.encode(continuation)
    assert len(head) + len(tail) > 128
    with caplog.at_level(logging.WARNING, logger="gecko_jax.llm.jax_backend"):
        (score,) = small.score([context], [continuation])
    assert small.truncated == 1
    assert "cut from the left" in caplog.text
    kept = head[len(head) - (128 - len(tail)) :]
    expected = reference_logprobs(model, kept + tail)[-len(tail) :]
    np.testing.assert_allclose(score.token_logprobs, expected, atol=2e-4)
    # The whole context would have scored differently: the cut mattered.
    assert abs(reference_logprobs(model, head + tail)[-len(tail) :] - expected).max() > 1e-3


def test_hugging_face_folder_gives_the_same_model(llm, reference, tmp_path):
    """transformers writes safetensors + tokenizer files; we read them back."""
    model, tokenizer = reference
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded = JaxLLM.from_pretrained(tmp_path, **SHAPES)
    assert loaded.config == llm.config
    assert llm.model_id.startswith("SmolLM2-135M-Instruct.Q4_1.gguf@")
    assert loaded.model_id != llm.model_id
    assert loaded.tokenizer.render(CHAT_PROMPTS[0]) == llm.tokenizer.render(CHAT_PROMPTS[0])
    assert loaded.tokenizer.stop_ids == llm.tokenizer.stop_ids
    contexts, continuations = [c for c, _ in PAIRS], [q for _, q in PAIRS]
    for a, b in zip(
        loaded.score(contexts, continuations), llm.score(contexts, continuations), strict=True
    ):
        np.testing.assert_allclose(a.token_logprobs, b.token_logprobs, atol=1e-5)


def test_bf16_hugging_face_folder_loads_its_float32_values_rounded(reference, tmp_path):
    """Hub Llama checkpoints are mostly bf16: each parameter equals the float32 one rounded."""
    import copy

    import ml_dtypes

    model, _ = reference
    model.save_pretrained(tmp_path / "f32")
    copy.deepcopy(model).to(torch.bfloat16).save_pretrained(tmp_path / "bf16")
    config, params = load_hf_checkpoint(tmp_path / "f32")
    bf16_config, bf16_params = load_hf_checkpoint(tmp_path / "bf16")
    assert bf16_config == config
    leaves, bf16_leaves = jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(bf16_params)
    assert len(bf16_leaves) == len(leaves)
    for value, bf16_value in zip(leaves, bf16_leaves, strict=True):
        rounded = np.asarray(value).astype(ml_dtypes.bfloat16).astype(np.float32)
        np.testing.assert_array_equal(np.asarray(bf16_value, np.float32), rounded)


def test_every_parameter_has_logical_axis_names(llm):
    abstract = abstract_params(llm.config)
    boxes = jax.tree.leaves(abstract, is_leaf=lambda x: isinstance(x, nn.Partitioned))
    assert len(boxes) == 2 + 9 * llm.config.num_layers  # tied: no lm_head
    for box in boxes:
        assert isinstance(box, nn.Partitioned)
        assert len(box.names) == box.value.ndim
        assert set(box.names) <= {"vocab", "embed", "mlp", "heads", "kv_heads", "kv"}
    # The GGUF import fills exactly the tree the module declares.
    shapes = jax.tree.map(lambda x: x.shape, nn.unbox(abstract))
    assert shapes == jax.tree.map(lambda x: x.shape, llm.params)


def test_sharded_model_gives_the_same_results(llm):
    """A small random decoder (untied head) on a data x fsdp x tensor mesh of 8 CPU devices."""
    config, params = tiny_decoder(llm)
    mesh = create_mesh(MeshConfig(data=2, fsdp=2, tensor=2))
    shapes = SHAPES | {"max_context": 2 * MAX_CONTEXT}
    plain = JaxLLM(config, params, llm.tokenizer, "tiny", **shapes)
    sharded = JaxLLM(config, params, llm.tokenizer, "tiny", **shapes, mesh=mesh)
    kernel = sharded.params["layers_0"]["mlp"]["gate_proj"]["kernel"]
    assert kernel.sharding.spec == PartitionSpec("fsdp", "tensor")
    # Scored pairs without their instructions (no shared prefix), chat prompts with a long
    # shared system prompt (shared prefix): the two layouts the real-model tests do not cover.
    contexts = [c[len(INSTRUCTION) :] for c, _ in PAIRS]
    continuations = [q for _, q in PAIRS]
    for a, b in zip(
        sharded.score(contexts, continuations), plain.score(contexts, continuations), strict=True
    ):
        np.testing.assert_allclose(a.token_logprobs, b.token_logprobs, atol=1e-4)
    prompts = [[{"role": "system", "content": SYSTEM}, *p] for p in CHAT_PROMPTS]
    assert _common_prefix([llm.tokenizer.encode(llm.tokenizer.render(p)) for p in prompts]) >= 64
    assert sharded.generate(prompts, 8) == plain.generate(prompts, 8)
