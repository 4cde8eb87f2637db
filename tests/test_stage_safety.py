"""What happens when something goes wrong, through the console scripts (``gecko-fret``,
``gecko-jax demo``) against a local OpenAI-compatible server (``fake_openai``).

A server that fails a share of calls, then recovers: the first run exits 5 with its good rows
kept, the rerun completes with the output of a run that never failed, and no call is answered
twice. A dead server exits 5 and says how long it waited; empty passages, a rerun with other
passages, a second run into a busy folder, a stale lock, and bad gin each fail as documented.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections import Counter
from pathlib import Path

import pytest
from fake_openai import PromptScoredOpenAI, serve

from gecko_jax.core.stages import (
    EXIT_BAD_INPUT,
    EXIT_FOLDER_LOCKED,
    EXIT_LLM_FAILED,
    EXIT_STAGE_CHANGED,
    LOCK_NAME,
    fingerprint_path,
    model_digest,
)
from gecko_jax.data.wiki_extracts import load_wiki_extracts
from gecko_jax.fret.manifest import llm_fingerprint
from gecko_jax.fret.records import FRET, GENERATED, MANIFEST

BIN = Path(sys.executable).parent
# No retries inside the backend: a failed call fails at once.
FAST_FAIL = ["--llm_arg", "max_retries=0", "--llm_arg", "backoff=0"]


class FlakyOpenAI(PromptScoredOpenAI):
    """While ``server.failing``, HTTP 500 for every request about a passage whose hash is even
    (its first try and its retry alike); counts the requests it answers, by body."""

    def reply_to(self, body):
        server = self.server
        prompt = json.dumps(body.get("messages") or body.get("prompt"))
        if server.failing and zlib.crc32(prompt.encode()) % 2 == 0:
            return 500, {"error": {"message": "injected failure"}}
        with server.lock:
            server.answered[json.dumps(body, sort_keys=True)] += 1
        return super().reply_to(body)


class SlowOpenAI(PromptScoredOpenAI):
    """Holds every request long enough for a second run to find the folder busy."""

    def reply_to(self, body):
        time.sleep(30)
        return super().reply_to(body)


running = contextlib.contextmanager(serve)


@contextlib.contextmanager
def flaky_server():
    with running(FlakyOpenAI) as (spec, server):
        server.failing, server.answered, server.lock = False, Counter(), threading.Lock()
        yield spec, server


def write_passages(path: Path, count: int) -> Path:
    articles = load_wiki_extracts()[::1000][:count]
    path.write_text(
        "".join(json.dumps({"id": a.id, "title": a.title, "text": a.text}) + "\n" for a in articles)
    )
    return path


def gecko_fret(passages: Path, out: Path, spec: str, *extra: str, wait: bool = True):
    args = [str(BIN / "gecko-fret"), "all", "--passages", str(passages), "--out", str(out)]
    args += ["--llm", spec, "--max_chars", "300", "--num_candidates", "3", *FAST_FAIL, *extra]
    if not wait:
        return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(args, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """A run against a server that never fails: (passages, out, the requests it answered)."""
    folder = tmp_path_factory.mktemp("clean")
    passages = write_passages(folder / "passages.jsonl", 6)
    with flaky_server() as (spec, server):
        result = gecko_fret(passages, folder / "out", spec)
        assert result.returncode == 0, result.stderr
    return passages, folder / "out", server.answered


def test_failed_calls_fail_the_stage_and_a_rerun_retries_only_them(clean, tmp_path):
    passages, clean_out, clean_answered = clean
    out = tmp_path / "out"
    with flaky_server() as (spec, server):
        server.failing = True
        first = gecko_fret(passages, out, spec)
        assert first.returncode == EXIT_LLM_FAILED, first.stderr
        message = "generate: 4 of 6 LLM calls failed (67%, more than max_failed_share 5%)"
        assert message in first.stderr
        assert "Run the same command again to retry only the failed calls" in first.stderr
        kept = (out / GENERATED).read_text().splitlines()
        assert 0 < len(kept) < len((clean_out / GENERATED).read_text().splitlines())
        assert not json.loads(fingerprint_path(out / GENERATED).read_text())["complete"]
        assert not (out / FRET).exists() and not (out / LOCK_NAME).exists()
        assert json.loads((out / MANIFEST).read_text())["generate"]["llm_failed"] == 4

        server.failing = False
        second = gecko_fret(passages, out, spec)
        assert second.returncode == 0, second.stderr
    assert (out / FRET).read_bytes() == (clean_out / FRET).read_bytes()
    assert (out / GENERATED).read_bytes() == (clean_out / GENERATED).read_bytes()
    # Every request answered once over both runs, and the same ones as the clean run's.
    assert set(server.answered.values()) == {1}
    assert server.answered.keys() == clean_answered.keys()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_dead_server_exits_5_in_bounded_time_and_a_rerun_retries(tmp_path):
    passages = write_passages(tmp_path / "passages.jsonl", 4)
    port, out = free_port(), tmp_path / "out"
    spec = f"openai:fake@http://127.0.0.1:{port}/v1"
    started = time.perf_counter()
    dead = gecko_fret(passages, out, spec, "--llm_arg", "max_failed_wait=0")
    assert dead.returncode == EXIT_LLM_FAILED, dead.stderr
    assert time.perf_counter() - started < 120
    assert "generate: 4 of 4 LLM calls failed" in dead.stderr
    assert "s went to failed requests" in dead.stderr and "not sent: failed requests" in dead.stderr
    calls = json.loads((out / MANIFEST).read_text())["llm_calls"]
    # max_failed_wait=0: after the first failure (of the 8 threads' first tries) none is sent.
    assert calls["failures"] == 8 and calls["requests"] < 8
    assert not (out / GENERATED).exists() and not (out / FRET).exists()

    with running(PromptScoredOpenAI, port) as (live_spec, server):
        assert live_spec == spec
        rerun = gecko_fret(passages, out, spec)
    assert rerun.returncode == 0, rerun.stderr
    mined = json.loads((out / MANIFEST).read_text())["mine"]["rows"]
    assert len((out / FRET).read_text().splitlines()) == mined > 0 and server.requests > 0


def test_empty_passages_are_an_error_and_leave_nothing(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    result = gecko_fret(empty, tmp_path / "out", "openai:fake@http://127.0.0.1:9/v1")
    assert result.returncode == EXIT_BAD_INPUT
    assert "0 usable passages" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_rerun_with_other_passages_stops_naming_the_change(clean, tmp_path):
    _, clean_out, _ = clean
    out = tmp_path / "out"
    shutil.copytree(clean_out, out)
    before = (out / FRET).read_bytes()
    other = write_passages(tmp_path / "other.jsonl", 5)
    spec = "openai:fake@http://127.0.0.1:9/v1"  # never called: the check comes first
    result = gecko_fret(other, out, spec)
    assert result.returncode == EXIT_STAGE_CHANGED, result.stderr
    assert f"{out / GENERATED} was made from other inputs: " in result.stderr
    assert "llm.spec" in result.stderr and "passages (" in result.stderr
    assert "--restart" in result.stderr
    assert (out / FRET).read_bytes() == before and not (out / LOCK_NAME).exists()

    with running(PromptScoredOpenAI) as (spec, _):
        restarted = gecko_fret(other, out, spec, "--restart")
    assert restarted.returncode == 0, restarted.stderr
    assert "making it again (--restart)" in restarted.stderr
    mined = json.loads((out / MANIFEST).read_text())["mine"]["rows"]
    assert len((out / FRET).read_text().splitlines()) == mined > 0
    assert (out / FRET).read_bytes() != before


def test_a_second_run_into_a_busy_folder_fails_at_once_and_a_stale_lock_is_taken_over(
    tmp_path,
):
    passages = write_passages(tmp_path / "passages.jsonl", 3)
    out = tmp_path / "out"
    with running(SlowOpenAI) as (spec, _):
        first = gecko_fret(passages, out, spec, wait=False)
        deadline = time.monotonic() + 120
        while not (out / LOCK_NAME).exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        second = gecko_fret(passages, out, spec)
        os.kill(first.pid, signal.SIGKILL)  # leaves its lock behind
        first.communicate()
    assert second.returncode == EXIT_FOLDER_LOCKED, second.stderr
    assert f"is in use by another run: pid {first.pid} on {socket.gethostname()}" in second.stderr
    assert not (out / GENERATED).exists()
    assert json.loads((out / LOCK_NAME).read_text())["pid"] == first.pid

    third = gecko_fret(passages, out, "openai:fake@http://127.0.0.1:9/v1")
    assert "taking over the lock of a run that is gone" in third.stderr
    assert third.returncode == EXIT_LLM_FAILED and not (out / LOCK_NAME).exists()


def test_a_gin_value_of_the_wrong_type_fails_before_any_work(tmp_path):
    out = tmp_path / "out"
    args = [str(BIN / "gecko-jax"), "demo", "--out", str(out)]
    started = time.perf_counter()
    result = subprocess.run(
        [*args, "--gin_param", "gecko.FinetuneConfig.total_steps = 'many'"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    assert "FinetuneConfig.total_steps must be int, got 'many' (str)" in result.stderr
    assert time.perf_counter() - started < 120 and not out.exists()


def test_a_gin_syntax_error_names_the_file_and_line(tmp_path):
    bad = tmp_path / "bad.gin"
    bad.write_text("gecko.MineConfig.num_candidates = 5\ngecko.MineConfig.fusion = ('relevance',\n")
    passages = write_passages(tmp_path / "passages.jsonl", 2)
    result = gecko_fret(passages, tmp_path / "out", "openai:m", "--gin_file", str(bad))
    assert result.returncode == 2
    assert f"{bad}: line 3: EOF in multi-line statement" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()


def test_models_are_stage_inputs_by_content(tmp_path):
    """A moved or copied model is the same input (no refusal after moving an install); a
    changed one is not; a URL stays as it is."""
    model = tmp_path / "a" / "model"
    model.mkdir(parents=True)
    (model / "config.json").write_text('{"hidden": 8}')
    (model / "weights.bin").write_bytes(b"\x00\x01")
    moved = tmp_path / "b" / "model"
    shutil.copytree(model, moved)
    assert model_digest(model) == model_digest(moved) != model_digest(tmp_path / "a")
    assert llm_fingerprint(f"jax:{model / 'weights.bin'}", None) == llm_fingerprint(
        f"jax:{moved / 'weights.bin'}", None
    )
    (moved / "weights.bin").write_bytes(b"\x00\x02")
    assert model_digest(model) != model_digest(moved)
    assert model_digest("gs://bucket/model") == "gs://bucket/model"
    # Hosted models are named by their spec, credentials removed.
    assert llm_fingerprint("openai:m@http://user:secret@host/v1", None)["spec"].count("secret") == 0


def test_beam_fingerprint_holds_the_passages_and_encoder_by_content(tmp_path):
    from gecko_jax.fret.beam.pipeline import BeamFretConfig, fingerprint

    passages = write_passages(tmp_path / "passages.jsonl", 2)
    encoder = tmp_path / "encoder"
    encoder.mkdir()
    (encoder / "config.json").write_text("{}")

    def config(encoder_dir: Path) -> BeamFretConfig:
        return BeamFretConfig(str(passages), str(tmp_path / "out"), "gemini:m", str(encoder_dir))

    before = fingerprint(config(encoder))
    shutil.copytree(encoder, tmp_path / "moved")
    assert fingerprint(config(tmp_path / "moved")) == before
    write_passages(passages, 3)  # the same path, other passages
    assert fingerprint(config(encoder))["passages"] != before["passages"]
