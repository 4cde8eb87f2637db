"""FRet without a real LLM: fusion arithmetic, prompt parsing, passage checks, bookkeeping."""

from __future__ import annotations

import json
import re
import string
from collections.abc import Sequence

import jax
import numpy as np
import pytest

from gecko_jax.fret.fusion import ranks_from_scores, reciprocal_rank_fusion, select
from gecko_jax.fret.generate import GenerateConfig, generate_queries, word_overlap
from gecko_jax.fret.mine import JOINT_DESC, MineConfig, mine
from gecko_jax.fret.passages import Passage, prepare_passages, read_passages_jsonl
from gecko_jax.fret.prompts import (
    JOINT_SEPARATOR,
    PROMPT_VERSION,
    RC_LABEL,
    TASK_TYPES,
    joint_context,
    parse_generation,
    prompt_hashes,
    ql_context,
    query_generation_messages,
    rc_context,
)
from gecko_jax.llm import CachedLLM
from gecko_jax.llm.base import LLM, ContinuationScore, Generation, Prompt


def test_ranks_higher_score_first_ties_by_candidate_order_nan_last():
    assert ranks_from_scores([-3.0, -1.0, -2.0]).tolist() == [3, 1, 2]
    assert ranks_from_scores([0.5, 0.5, 1.0, float("nan")]).tolist() == [2, 3, 1, 4]


def test_rrf_arithmetic_k0_and_k60():
    ql = ranks_from_scores([-10.0, -5.0, -7.0, -20.0])  # 3 1 2 4
    rc = ranks_from_scores([-0.1, -2.0, -0.5, -0.3])  # 1 4 3 2
    fused = reciprocal_rank_fusion([ql, rc])
    np.testing.assert_allclose(fused, [1 / 3 + 1, 1 + 1 / 4, 1 / 2 + 1 / 3, 1 / 4 + 1 / 2])
    np.testing.assert_allclose(
        reciprocal_rank_fusion([ql, rc], k=60),
        [1 / 63 + 1 / 61, 1 / 61 + 1 / 64, 1 / 62 + 1 / 63, 1 / 64 + 1 / 62],
    )
    with pytest.raises(ValueError):
        reciprocal_rank_fusion([[0, 1]])


def test_select_positive_and_each_negative_option():
    ids = ["a", "b", "c", "d", "e"]
    fused = [0.5, 1.5, 0.7, 0.2, 0.7]  # fused order: b, c, e (tie: c first), a, d
    assert select(ids, fused, "nth") == (1, 3)
    assert select(ids, fused, "kth", k_th=3) == (1, 4)
    assert select(ids, fused, "kth", k_th=20) == (1, 3)  # clipped to N
    draws = {select(ids, fused, "random", rng=np.random.default_rng(s))[1] for s in range(50)}
    assert draws == {0, 2, 3, 4}
    with pytest.raises(ValueError):
        select(ids, fused, "best")


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            '{"task": "Given a query, find X.", "query": "who won"}',
            ("Given a query, find X.", "who won"),
        ),
        ('```json\n{"task": "t", "query": " q "}\n```', ("t", "q")),
        ('Sure! Here it is: {"task": "t", "query": "q"} Hope it helps.', ("t", "q")),
        ('{bad} then {"task": "t", "query": "q"}', ("t", "q")),
        ("no json at all", None),
        ('{"task": "t"}', None),
        ('{"task": "t", "query": ""}', None),
        ('{"task": "t", "query": 3}', None),
        ('{"task": "t", "query": "unterminated', None),
        ('{"task": "t", "query": "q \\"x\\"", "answer": "cut sho', ("t", 'q "x"')),
        ('{"task": "t", "query": "q"', None),
    ],
)
def test_parse_generation(text, expected):
    assert parse_generation(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ('{"query": " who won "}', "who won"),
        ('{"task": "other", "query": "q"}', "q"),  # the asked task wins
        ('{"query": "q \\"x\\"", "answer": "cut sho', 'q "x"'),
        ('{"query": ""}', None),
        ('{"query": "unterminated', None),
        ('{"query": "The term "x" means y"}', 'The term "x" means y'),  # unescaped quotes
        ('"a bare string"}', "a bare string"),
        ('{"query": "q"]}', None),
    ],
)
def test_parse_generation_of_a_given_task(text, expected):
    parsed = parse_generation(text, task="T")
    assert parsed == (None if expected is None else ("T", expected))


def test_prompts_are_versioned_and_hashed():
    hashes = prompt_hashes()
    assert PROMPT_VERSION and set(hashes) == {
        "query_generation",
        "query_generation_given_task",
        "query_likelihood",
        "relevance_classification",
        "joint",
    }
    assert all(len(h) == 64 for h in hashes.values())
    messages = query_generation_messages("P", "fact checking")
    assert messages[0]["role"] == "system"
    assert f'Task: "{TASK_TYPES["fact checking"]}"' in messages[-1]["content"]
    # A given task is not asked back, in the shots' answers either.
    assert all(json.loads(m["content"]).keys() == {"query"} for m in messages[2::2])
    free = query_generation_messages("P")
    assert all(json.loads(m["content"]).keys() == {"task", "query"} for m in free[2::2])
    assert ql_context("P").endswith("Passage: P\nQuery:")
    assert rc_context("Q", "P").endswith("Passage: P\nQuery: Q\nRelevant:")
    # Joint scoring's sequence ends as the RC prompt does, with the RC prompt's shots.
    joint = joint_context("P") + " Q" + JOINT_SEPARATOR
    assert joint.endswith(rc_context("Q", "P").split("\n\n", 1)[1])


def test_prepare_passages_validates():
    records = [
        {"id": 1, "title": "A", "text": " alpha "},
        {"id": "2", "text": "   "},
        {"id": "3", "title": None, "text": "x" * 50},
    ]
    passages, counts = prepare_passages(records, max_chars=10)
    assert passages == [Passage("1", "A", "alpha"), Passage("3", "", "x" * 10)]
    assert counts == {"input": 3, "empty": 1, "truncated": 1, "kept": 2}
    with pytest.raises(ValueError, match="'1'"):
        prepare_passages([*records, {"id": "1", "text": "again"}], max_chars=10)


def test_read_passages_jsonl_skips_bad_lines(tmp_path, caplog):
    path = tmp_path / "p.jsonl"
    path.write_bytes(
        b'{"id": "a", "text": "ok"}\n\xff\xfe broken\nnot json\n[1]\n\n{"id": "b", "text": "ok"}\n'
    )
    records, skipped = read_passages_jsonl(path)
    assert [r["id"] for r in records] == ["a", "b"] and skipped == 3
    assert ":2:" in caplog.text and ":4:" in caplog.text


class ScriptedLLM(LLM):
    """Answers generation prompts from a script keyed by (seed, passage), to test bookkeeping."""

    def __init__(self, answers: dict[tuple[int, str], str]):
        self.answers = answers

    backend = "scripted"
    model_id = "scripted"

    def generate(
        self,
        prompts: Sequence[Prompt],
        max_tokens: int,
        temperature: float = 0.0,
        stop: Sequence[str] = (),
        seed: int = 0,
    ) -> list[Generation]:
        out = []
        for prompt in prompts:
            passage = prompt[-1]["content"].split("Passage: ")[1].split("\n")[0]
            text = self.answers.get((seed, passage), "garbage")
            out.append(Generation(text, "length" if text == "garbage" else "stop", 5))
        return out

    def score(self, contexts, continuations) -> list[ContinuationScore]:
        raise NotImplementedError


def answer(query: str) -> str:
    """An answer to a prompt that named its task (the balanced default): the query alone."""
    return json.dumps({"query": query})


def test_generate_retries_once_filters_and_counts():
    passages = [
        Passage(str(i), "", t) for i, t in enumerate(["the cat sat", "dogs bark", "x y", "z"])
    ]
    llm = ScriptedLLM(
        {
            (0, "the cat sat"): answer("the cat sat"),  # verbatim copy, overlap 1
            (0, "dogs bark"): "garbage",
            (1, "dogs bark"): answer("why do hounds make noise"),  # fixed by the retry
            (0, "x y"): answer("The cat sat!"),  # duplicate of the first after normalising
        }
    )
    rows, diag = generate_queries(llm, passages, GenerateConfig(batch_size=3))
    assert [r["query"] for r in rows] == ["the cat sat", "why do hounds make noise"]
    assert [r["requested_type"] for r in rows] == list(TASK_TYPES)[:2]
    assert diag["retried"] == 2 and diag["malformed"] == 1 and diag["cut_at_max_tokens"] == 1
    assert diag["verbatim_copy"] == 1 and diag["dropped_duplicate"] == 1
    assert diag["task_types"] == {"question answering": 1, "search result": 1}
    assert diag["mean_word_overlap"] == pytest.approx((1 + 0 + 0) / 3)
    rows, diag = generate_queries(llm, passages, GenerateConfig(max_overlap=0.5, dedup=False))
    assert [r["query"] for r in rows] == ["why do hounds make noise", "The cat sat!"]
    assert diag["dropped_overlap"] == 1 and diag["dropped_duplicate"] == 0


def test_word_overlap():
    assert word_overlap("Cat, dog!", "the cat") == 0.5 and word_overlap("", "x") == 0.0


def test_passages_flag_takes_a_file_or_bundled_wikipedia():
    import argparse

    from gecko_jax.cli.fret import passages_arg

    assert passages_arg("corpus.jsonl") == "corpus.jsonl"
    records = passages_arg("wiki:3")
    assert len(records) == 3 and all(r["id"] and r["title"] and r["text"] for r in records)
    assert prepare_passages(records, max_chars=100)[1]["kept"] == 3
    for bad in ("wiki:", "wiki:0", "wiki:x"):
        with pytest.raises(argparse.ArgumentTypeError, match="wiki:N"):
            passages_arg(bad)


class LetterEncoder:
    """Letter-count embeddings: enough to retrieve among a few passages."""

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        counts = [[t.lower().count(c) + 0.1 for c in string.ascii_lowercase] for t in texts]
        x = np.asarray(counts, np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    def encode_queries(self, texts: Sequence[str], task: str) -> np.ndarray:
        return self._embed(texts)

    def encode_documents(self, texts: Sequence[str], titles: Sequence[str]) -> np.ndarray:
        return self._embed(texts)


class LengthScorer(ScriptedLLM):
    """Scores from the texts' lengths (so they differ per pair and per prompt); counts calls."""

    def __init__(self):
        super().__init__({})
        self.calls: list[str] = []

    def score(self, contexts, continuations) -> list[ContinuationScore]:
        self.calls.append("score")
        pairs = zip(contexts, continuations, strict=True)
        return [ContinuationScore(-(len(q) + len(c) % 89) / 10, ()) for c, q in pairs]

    def score_parts(self, contexts, parts) -> list[tuple[float, ...]]:
        self.calls.append("score_parts")
        return super().score_parts(contexts, parts)


MINE_PASSAGES = [
    Passage(str(i), f"T{i}", text)
    for i, text in enumerate(
        [
            "The durian is a fruit known for its smell.",
            "Jupiter is the largest planet in the Solar System.",
            "The violin is a string instrument played with a bow.",
            "Chess is a board game for two players.",
            "A glacier is a body of dense ice that moves slowly.",
        ]
    )
]
MINE_ROWS = [
    {"task": "t", "query": q, "passage_id": pid, "requested_type": "definition"}
    for q, pid in [("smelly fruit", "0"), ("biggest planet", "1"), ("bowed strings", "2")]
]


def test_mine_scores_both_jointly_with_one_request_per_pair(capsys):
    config = MineConfig(num_candidates=3, score_batch_size=4, scoring="joint")
    llm = LengthScorer()
    records, stats = mine(llm, LetterEncoder(), MINE_PASSAGES, MINE_ROWS, config)
    assert JOINT_DESC in capsys.readouterr().err
    # 9 pairs in batches of 4; each score_parts row asks the default for its three parts.
    assert llm.calls == ["score_parts", "score", "score", "score"] * 3
    assert len(records) == 3 and stats["failed_scores"] == 0
    assert all(stats["histograms"][name] for name in ("query_likelihood", "relevance"))
    passages = {p.id: p.text for p in MINE_PASSAGES}
    for record in records:
        query, texts = record["query"], [passages[i] for i in record["candidate_ids"]]
        contexts = [joint_context(t) for t in texts]
        ql = [s.total for s in llm.score(contexts, [" " + query] * 3)]
        with_query = [c + " " + query + JOINT_SEPARATOR for c in contexts]
        rc = [s.total for s in llm.score(with_query, [RC_LABEL] * 3)]
        assert record["scores"]["query_likelihood"] == ql
        assert record["scores"]["relevance"] == rc
    separate = MineConfig(num_candidates=3, score_batch_size=4)
    others, _ = mine(LengthScorer(), LetterEncoder(), MINE_PASSAGES, MINE_ROWS, separate)
    assert [r["candidate_ids"] for r in others] == [r["candidate_ids"] for r in records]
    assert [r["scores"] for r in others] != [r["scores"] for r in records]


def test_mine_config_rejects_an_unknown_scoring():
    with pytest.raises(ValueError, match=r"scoring must be one of \('separate', 'joint'\)"):
        MineConfig(scoring="both")


def test_llm_arg_flags_read_json_literals_and_repeat():
    from gecko_jax.cli.fret import build_parser

    flags = ["batch_size=8", "scale=0.5", "on=true", "mesh=null", "stop=[1, 2]", "name=a/b.gguf"]
    flags += ['quoted="8"', "empty=", "batch_size=4"]  # the last of a key wins
    flags += ["off=False", "py_on=True", "unset=None", "word=false_start"]  # Python's spellings
    args = ["generate", "--passages", "p.jsonl", "--out", "out"]
    args += [arg for flag in flags for arg in ("--llm_arg", flag)]
    assert dict(build_parser().parse_args(args).llm_arg) == {
        "batch_size": 4,
        "scale": 0.5,
        "on": True,
        "mesh": None,
        "stop": [1, 2],
        "name": "a/b.gguf",
        "quoted": "8",
        "empty": "",
        "off": False,
        "py_on": True,
        "unset": None,
        "word": "false_start",
    }


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("batch_size", "expected KEY=VALUE"),
        ("=8", "expected KEY=VALUE"),
        ("batch-size=8", "expected KEY=VALUE"),
        ("stop=[1,", "stop: '\\[1,' is not valid JSON"),
    ],
)
def test_llm_arg_flag_rejects_bad_syntax(flag, message, capsys):
    from gecko_jax.cli.fret import build_parser

    args = ["generate", "--passages", "p.jsonl", "--out", "out", "--llm_arg", flag]
    with pytest.raises(SystemExit):
        build_parser().parse_args(args)
    assert re.search(f"argument --llm_arg: {message}", capsys.readouterr().err)


def test_llm_args_and_gin_reach_load_llm(tmp_path, monkeypatch):
    """``gecko.fret_run.llm_kwargs`` from gin, overridden key by key by ``--llm_arg``."""
    from gecko_jax.cli import fret as cli
    from gecko_jax.fret import pipeline

    loads = []

    def load(spec, cache, **kwargs):
        loads.append((spec, kwargs))
        return CachedLLM(ScriptedLLM({}), cache)

    monkeypatch.setattr(pipeline, "load_llm", load)
    args = ["generate", "--passages", "wiki:2", "--out", str(tmp_path), "--llm", "jax:m.gguf"]
    args += ["--gin_param", "gecko.fret_run.llm_kwargs = {'batch_size': 2, 'max_context': 512}"]
    args += ["--llm_arg", "batch_size=8"]
    assert cli.main(args) == 0
    assert loads == [("jax:m.gguf", {"batch_size": 8, "max_context": 512})]
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["llm_kwargs"] == {"batch_size": 8, "max_context": 512}


def test_manifest_records_llm_settings_that_are_not_json_by_repr():
    from gecko_jax.fret.manifest import llm_kwargs_record

    mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("data",))
    record = llm_kwargs_record({"mesh": mesh, "batch_size": 8})
    assert record == {"batch_size": 8, "mesh": repr(mesh)}
    assert json.loads(json.dumps(record)) == record


def test_manifest_never_records_url_credentials():
    from gecko_jax.fret.manifest import llm_kwargs_record

    record = llm_kwargs_record({"base_url": "http://user:SECRET@host:8000/v1", "timeout": 5})
    assert record == {"base_url": "http://host:8000/v1", "timeout": 5}


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--llm", "jax:m.gguf", "--llm_arg", "batch_sise=8"], r"\['batch_sise'\] for the jax"),
        (["--llm", "ollama:m"], "unknown LLM backend 'ollama'"),
    ],
)
def test_bad_llm_settings_are_a_usage_error_before_anything_runs(tmp_path, capsys, flags, message):
    """A usage line and the reason on stderr (exit 2), not a traceback; nothing is written."""
    from gecko_jax.cli import fret as cli

    args = ["generate", "--passages", "wiki:1", "--out", str(tmp_path / "out"), *flags]
    with pytest.raises(SystemExit) as stop:
        cli.main(args)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: gecko-fret") and re.search(f"error: .*{message}", err)
    assert not (tmp_path / "out").exists()


def test_llm_kwargs_need_an_llm_spec(tmp_path):
    from gecko_jax.fret.pipeline import run_fret

    with pytest.raises(ValueError, match=r"llm_kwargs \['batch_size'\] .* ScriptedLLM"):
        run_fret([], tmp_path, ScriptedLLM({}), llm_kwargs={"batch_size": 8})


def test_a_passage_without_id_is_a_malformed_line(tmp_path, caplog):
    path = tmp_path / "p.jsonl"
    path.write_text(
        '{"id": "a", "text": "ok"}\n{"title": "T", "text": "no id"}\n{"id": "", "text": "x"}\n'
    )
    records, skipped = read_passages_jsonl(path)
    assert [r["id"] for r in records] == ["a"] and skipped == 2
    assert "p.jsonl:2: skipping malformed line: no 'id' field" in caplog.text
    assert "p.jsonl:3:" in caplog.text


def test_fewer_than_two_usable_passages_stop_before_the_llm(tmp_path):
    from gecko_jax.fret.pipeline import run_fret

    path = tmp_path / "p.jsonl"
    path.write_text('{"id": "a", "text": "only one"}\n{"id": "b", "text": "  "}\n')
    with pytest.raises(ValueError, match=r"p.jsonl: 1 usable passages .*'empty': 1.*at least 2"):
        run_fret(path, tmp_path / "out", ScriptedLLM({}))
    assert not (tmp_path / "out" / "llm_cache.jsonl").exists()


@pytest.mark.parametrize("value", ["-2", "0", "many"])
def test_a_count_flag_below_one_is_a_usage_error(value, capsys):
    from gecko_jax.cli import fret as cli

    with pytest.raises(SystemExit) as exit_info:
        cli.main(["all", "--passages", "p.jsonl", "--out", "o", "--max_passages", value])
    assert exit_info.value.code == 2
    assert "expected a whole number >= 1" in capsys.readouterr().err


def test_scoring_batches_group_repeated_contexts_and_answers_keep_their_order():
    from gecko_jax.fret.mine import _batched

    contexts = ["p2", "p1", "p2", "p3", "p1", "p2"]  # query-major: a passage in several lists
    rest = [f"q{i}" for i in range(len(contexts))]
    sent = []

    def call(batch_contexts, batch_rest):
        sent.append(list(batch_contexts))
        return [f"{c}|{r}" for c, r in zip(batch_contexts, batch_rest, strict=True)]

    answers = _batched(call, contexts, rest, batch_size=3, desc="test")
    assert answers == [f"{c}|{r}" for c, r in zip(contexts, rest, strict=True)]
    assert sent == [["p1", "p1", "p2"], ["p2", "p2", "p3"]]
