"""The on-disk LLM call cache, in front of a fake backend that records what reaches it."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import pytest

from gecko_jax.llm import LLM, CachedLLM, ContinuationScore, Generation, load_llm
from gecko_jax.llm.cache import cache_key


class FakeLLM(LLM):
    """Answers depend on every input; prompts containing "fail" fail, as a backend reports it."""

    def __init__(self, model: str = "fake-1"):
        self.model = model
        self.calls: list[tuple[str, list]] = []

    @property
    def backend(self) -> str:
        return "fake"

    @property
    def model_id(self) -> str:
        return self.model

    def generate(self, prompts, max_tokens, temperature=0.0, stop=(), seed=0) -> list[Generation]:
        self.calls.append(("generate", list(prompts)))
        return [
            Generation("", "error", 0)
            if "fail" in str(p)
            else Generation(f"{p}|{max_tokens}|{temperature}|{list(stop)}|{seed}", "stop", 3)
            for p in prompts
        ]

    def score(self, contexts: Sequence[str], continuations: Sequence[str]):
        self.calls.append(("score", list(zip(contexts, continuations, strict=True))))
        return [
            ContinuationScore(math.nan, ())
            if "fail" in c
            else ContinuationScore(-0.5 * len(q), (-0.25 * len(q), -0.25 * len(q)))
            for c, q in zip(contexts, continuations, strict=True)
        ]

    def score_parts(self, contexts: Sequence[str], parts: Sequence[Sequence[str]]):
        self.calls.append(
            ("score_parts", [(c, list(p)) for c, p in zip(contexts, parts, strict=True)])
        )
        return super().score_parts(contexts, parts)


class WindowedLLM(FakeLLM):
    """Cuts inputs longer than ``window`` characters, as a local backend cuts tokens."""

    def __init__(self, window: int):
        super().__init__()
        self.window = window

    def _extras(self, texts: Sequence) -> list[dict]:
        return [{"window": self.window} if len(str(t)) > self.window else {} for t in texts]

    def generate_cache_extras(self, prompts, max_tokens) -> list[dict]:
        return self._extras(prompts)

    def score_cache_extras(self, contexts, continuations) -> list[dict]:
        return self._extras(contexts)

    def score_parts_cache_extras(self, contexts, parts) -> list[dict]:
        return self._extras(contexts)


@pytest.fixture
def path(tmp_path):
    return tmp_path / "cache" / "llm_calls.jsonl"


def test_second_call_is_served_from_disk(path):
    inner = FakeLLM()
    prompts = ["a", [{"role": "user", "content": "a"}]]
    first = CachedLLM(inner, path).generate(prompts, max_tokens=8, stop=["\n"])
    scores = CachedLLM(inner, path).score(["ctx"], [" q"])
    reopened = CachedLLM(FakeLLM(), path)  # a new process: only the file carries over
    assert reopened.generate(prompts, max_tokens=8, stop=["\n"]) == first
    assert reopened.score(["ctx"], [" q"]) == scores
    assert reopened.inner.calls == []
    assert (reopened.hits, reopened.misses) == (3, 0)
    assert first[0] != first[1]  # a string and the same text as a chat message differ


def test_only_misses_reach_the_backend_in_one_batch(path):
    inner = FakeLLM()
    cached = CachedLLM(inner, path)
    cached.generate(["a", "b"], max_tokens=8)
    results = cached.generate(["b", "c", "a", "d", "c"], max_tokens=8)
    assert inner.calls[-1] == ("generate", ["c", "d"])
    assert [r.text.split("|")[0] for r in results] == ["b", "c", "a", "d", "c"]
    assert (cached.hits, cached.misses) == (2, 2 + 3)


@pytest.mark.parametrize(
    "change",
    [
        {"max_tokens": 9},
        {"temperature": 0.7},
        {"stop": ["END"]},
        {"seed": 1},
    ],
)
def test_keys_differ_when_parameters_differ(path, change):
    inner = FakeLLM()
    cached = CachedLLM(inner, path)
    base = {"max_tokens": 8, "temperature": 0.0, "stop": [], "seed": 0}
    cached.generate(["a"], **base)
    cached.generate(["a"], **(base | change))
    assert len(inner.calls) == 2


def test_a_new_window_misses_only_the_inputs_it_cuts(path):
    texts = ["abc", "abcdefgh"]
    CachedLLM(WindowedLLM(4), path).generate(texts, max_tokens=8)
    CachedLLM(WindowedLLM(4), path).score(texts, [" q", " q"])
    inner = WindowedLLM(6)
    cached = CachedLLM(inner, path)
    cached.generate(texts, max_tokens=8)
    cached.score(texts, [" q", " q"])
    assert inner.calls == [("generate", ["abcdefgh"]), ("score", [("abcdefgh", " q")])]


def test_keys_differ_per_model_and_operation():
    key = cache_key({"backend": "fake", "model": "m1"}, "score", ["c", "q"], {})
    assert key != cache_key({"backend": "fake", "model": "m2"}, "score", ["c", "q"], {})
    assert key != cache_key({"backend": "fake", "model": "m1"}, "generate", ["c", "q"], {})
    assert key != cache_key({"backend": "fake", "model": "m1"}, "score", ["cq", ""], {})


def test_torn_last_record_is_ignored_and_cut_off(path):
    CachedLLM(FakeLLM(), path).generate(["a", "b"], max_tokens=8)
    with open(path, "ab") as handle:  # a SIGKILL in the middle of a write
        handle.write(b'{"key": "0123", "value": {"text": "half')
    inner = FakeLLM()
    cached = CachedLLM(inner, path)
    assert len(cached) == 2
    cached.generate(["a", "b", "c"], max_tokens=8)
    assert inner.calls == [("generate", ["c"])]
    # The torn bytes are gone, so the record appended after them is readable.
    assert path.read_bytes().endswith(b"\n")
    assert len(CachedLLM(FakeLLM(), path)) == 3


def test_failures_are_not_cached(path):
    inner = FakeLLM()
    cached = CachedLLM(inner, path)
    assert cached.generate(["fail me", "fine"], max_tokens=8)[0].finish_reason == "error"
    assert math.isnan(cached.score(["fail"], [" q"])[0].total)
    cached.generate(["fail me", "fine"], max_tokens=8)
    cached.score(["fail"], [" q"])
    assert inner.calls[-2:] == [("generate", ["fail me"]), ("score", [("fail", " q")])]


def test_score_parts_default_scores_each_part_after_the_earlier_ones():
    inner = FakeLLM()
    assert inner.score_parts(["c", "d"], [[" ab", " c"], [" xyz"]]) == [(-1.5, -1.0), (-2.0,)]
    # One ``score`` call per part index, for the rows that have that part.
    assert inner.calls[1:] == [
        ("score", [("c", " ab"), ("d", " xyz")]),
        ("score", [("c ab", " c")]),
    ]


def test_score_parts_are_cached_apart_from_scores(path):
    inner = FakeLLM()
    parts = [[" q", "\nRelevant:", " Yes"], [" r", " Yes"]]
    first = CachedLLM(inner, path).score_parts(["ctx", "ctx"], parts)
    assert first == [(-1.0, -5.0, -2.0), (-1.0, -2.0)]
    reopened = CachedLLM(FakeLLM(), path)
    assert reopened.score_parts(["ctx", "ctx"], parts) == first
    assert reopened.score(["ctx"], [" q"]) == [ContinuationScore(-1.0, (-0.5, -0.5))]
    # Only the plain score missed: a part list is its own key, not its first part's.
    assert [op for op, _ in reopened.inner.calls] == ["score"]
    assert (reopened.hits, reopened.misses) == (2, 1)


def test_score_parts_misses_go_in_one_batch_and_failures_are_not_cached(path):
    inner = WindowedLLM(4)
    cached = CachedLLM(inner, path)
    cached.score_parts(["a", "fail"], [[" q"], [" q", " r"]])
    results = cached.score_parts(
        ["b", "a", "fail", "abcdefgh"], [[" q"], [" q"], [" q", " r"], [" q"]]
    )
    assert inner.calls[-3] == (
        "score_parts",
        [("b", [" q"]), ("fail", [" q", " r"]), ("abcdefgh", [" q"])],
    )
    assert math.isnan(results[2][0]) and results[1] == (-1.0,)
    # A longer window misses only the input it cut.
    wider = WindowedLLM(6)
    CachedLLM(wider, path).score_parts(["b", "abcdefgh"], [[" q"], [" q"]])
    assert wider.calls[0] == ("score_parts", [("abcdefgh", [" q"])])


def test_load_llm_wraps_in_the_cache(path):
    llm = load_llm("openai:some-model@http://127.0.0.1:9/v1", cache=path)
    assert isinstance(llm, CachedLLM)
    assert llm.cache_identity()["model"] == "some-model"


@pytest.mark.parametrize(
    ("spec", "kwargs", "backend"),
    [
        ("jax:missing.gguf", {"batch_size": 8, "batch_sise": 8}, "jax LLM backend (JaxLLM)"),
        ("jax:missing.gguf", {"params": {}}, "jax LLM backend (JaxLLM)"),
        ("openai:m", {"timeuot": 1.0}, "openai LLM backend (OpenAICompatibleLLM)"),
        ("openai:m@http://127.0.0.1:9/v1", {"base_url": "x"}, "openai LLM backend"),
        ("gemini:m", {"temperature": 0.5}, "gemini LLM backend (GeminiLLM)"),
    ],
)
def test_load_llm_names_the_backend_and_the_unknown_setting(spec, kwargs, backend):
    """Before anything loads (no model file, server or SDK is needed to get the error)."""
    bad = sorted(set(kwargs) - {"batch_size"})
    with pytest.raises(TypeError, match=re.escape(f"unknown setting(s) {bad} for the {backend}")):
        load_llm(spec, **kwargs)
