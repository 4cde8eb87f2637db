"""Training and export on a non-local path (``gs://``), through ``gecko_jax.core.paths``.

Which filesystem, and why: epath, the path layer of orbax and of ours, knows ``gs://``,
``s3://``, ``az://`` and ``hf://`` only (``memory://`` and ``ram://`` are a KeyError), and
orbax writes array data through TensorStore specs it builds for local files, ``gs://`` or
``s3://`` only. No GCS emulator, gcsfs or s3fs is installed here, so the test uses ``gs://``
URLs with the two storage calls under them served from a local folder: fsspec's ``gs``
protocol (epath's backend once told not to use TensorFlow) and orbax's GCS TensorStore spec,
for a bucket without hierarchical namespace (orbax asks google-cloud-storage, absent here).
Everything above them, our code and orbax's GCS code paths (no renames, commit marker files),
sees only ``gs://bucket/...``, and a ``./gs:`` folder would show a URL that went through
pathlib. Runs that are killed run the console scripts' ``main`` in a child process under the
same stand-in (``tests/bucket_standin.py``); the others run in-process.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import gin
import numpy as np
import pytest
from bucket_standin import patches
from test_stage_safety import FAST_FAIL, clean, flaky_server  # noqa: F401 (clean: a fixture used here)
from test_trainer import REPO, _losses

from gecko_jax import Encoder
from gecko_jax.cli import evaluate as eval_cli
from gecko_jax.cli import export as export_cli
from gecko_jax.cli import fret as fret_cli
from gecko_jax.cli import train as train_cli
from gecko_jax.core.paths import as_path, copy_tree, mirror_tree
from gecko_jax.core.stages import EXIT_LLM_FAILED, LOCK_NAME
from gecko_jax.fret.records import FRET, GENERATED, LLM_CACHE, MANIFEST

STANDIN = Path(__file__).resolve().parent / "bucket_standin.py"


@pytest.fixture
def bucket_root(tmp_path, monkeypatch) -> Path:
    """The local folder behind ``gs://``, for the duration of one test."""
    root = tmp_path / "gcs"
    root.mkdir()
    for target, name, value in patches(str(root)):
        monkeypatch.setattr(target, name, value)
    yield root
    assert not Path("gs:").exists(), "a gs:// URL was taken for a local path"


def _train(*argv: str) -> int:
    gin.clear_config()
    return train_cli.main(list(argv))


def _standin(root: Path, module: str, *argv: str) -> list[str]:
    """The command that runs ``module.main(argv)`` in a child process under the stand-in."""
    return [sys.executable, str(STANDIN), str(root), module, *argv]


def _env() -> dict[str, str]:
    """This process's devices (conftest forces 8), so the losses match its run bit for bit."""
    return {**os.environ, "JAX_PLATFORMS": "cpu"}


def _logged_steps(run: Path) -> int:
    metrics = run / "metrics.jsonl"
    return len(metrics.read_text().splitlines()) if metrics.exists() else 0


@pytest.mark.slow
def test_a_run_in_a_bucket_killed_resumes_then_evaluates_and_exports(
    bucket_root, minilm_dir, real_sentences, capsys
):
    """tiny.gin with the gin file, init_from and workdir in the bucket, run through
    ``gecko-train``'s main; a second run is SIGKILLed after its step-2 checkpoint and resumed,
    step for step; then ``gecko-eval --model WORKDIR`` and ``gecko-export --model WORKDIR``
    read the run from the bucket, and the export loads in sentence-transformers."""
    from sentence_transformers import SentenceTransformer

    copy_tree(minilm_dir, "gs://bucket/minilm")
    as_path("gs://bucket/tiny.gin").write_text((REPO / "gin_configs/runs/tiny.gin").read_text())
    settings = (
        "--gin_file=gs://bucket/tiny.gin",
        '--gin_param=gecko.TrainConfig.init_from = "gs://bucket/minilm"',
        "--gin_param=TOTAL_STEPS = 12",
    )
    assert _train(*settings, "--workdir=gs://bucket/full") == 0
    assert "INFO initialised from gs://bucket/minilm" in capsys.readouterr().err
    full = bucket_root / "bucket" / "full"
    uninterrupted = _losses(full)
    assert sorted(uninterrupted) == list(range(1, 13))
    assert {"operative_config.gin", "train_config.json", "metrics.jsonl"} <= {
        p.name for p in full.iterdir()
    }
    assert list((full / "tensorboard").iterdir()), "no TensorBoard event file"

    command = _standin(bucket_root, "gecko_jax.cli.train", *settings, "--workdir=gs://bucket/run")
    run = bucket_root / "bucket" / "run"
    process = subprocess.Popen(
        command, cwd=REPO, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        if _logged_steps(run) >= 3 and (run / "checkpoints" / "2").exists():
            break
        time.sleep(0.1)
    assert process.poll() is None, process.stderr.read().decode()[-2000:]
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=120) == -signal.SIGKILL
    assert _logged_steps(run) < 12
    resumed = subprocess.run(command, cwd=REPO, env=_env(), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "INFO resumed from step " in resumed.stderr
    assert _losses(run) == uninterrupted  # exact, step by step

    out = bucket_root / "eval.json"
    args = ["--model", "gs://bucket/run", "--tasks", "wiki_retrieval", "--limit", "16"]
    assert eval_cli.main([*args, "--out", str(out)]) == 0
    (evaluated,) = json.loads(out.read_text())["runs"].values()
    assert evaluated["results"]["wiki_retrieval"]["ndcg@10"] > 0.5
    assert export_cli.main(["--model", "gs://bucket/run", "--out", "gs://bucket/st"]) == 0
    model = SentenceTransformer(str(bucket_root / "bucket" / "st"), device="cpu")
    texts = real_sentences[:8]
    expected = Encoder.from_pretrained("gs://bucket/run").encode(texts)
    np.testing.assert_allclose(model.encode(texts, normalize_embeddings=True), expected, atol=1e-4)


def test_gecko_export_reads_from_and_writes_to_a_bucket(
    bucket_root, minilm_dir, minilm_encoder, real_sentences, capsys
):
    copy_tree(minilm_dir, "gs://bucket/minilm")
    args = ["--model", "gs://bucket/minilm", "--format", "sentence-transformers"]
    assert export_cli.main([*args, "--out", "gs://bucket/st"]) == 0
    assert "wrote gs://bucket/st" in capsys.readouterr().out
    assert (bucket_root / "bucket" / "st" / "model.safetensors").is_file()
    texts = real_sentences[:8]
    exported = Encoder.from_pretrained("gs://bucket/st")
    np.testing.assert_allclose(exported.encode(texts), minilm_encoder.encode(texts), atol=1e-5)

    with pytest.raises(SystemExit):  # the bucket folder is now non-empty
        export_cli.main([*args, "--out", "gs://bucket/st"])
    assert "gs://bucket/st is not empty" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        export_cli.main([*args, "--out", "gs://bucket/minilm/inside"])
    assert "inside gs://bucket/minilm" in capsys.readouterr().err


def _last_line(capsys) -> str:
    return capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize("url", ["memory://bucket/run", "ram://bucket/run"])
def test_a_filesystem_epath_lacks_is_a_one_line_usage_error(url, capsys):
    smoke = str(REPO / "gin_configs/runs/synthetic_smoke.gin")
    with pytest.raises(SystemExit) as exited:
        _train(f"--gin_file={smoke}", f"--workdir={url}")
    assert exited.value.code == 2
    scheme = url.partition("://")[0]
    assert f"error: {url}: no filesystem for {scheme}://" in _last_line(capsys)

    with pytest.raises(SystemExit) as exited:
        export_cli.main(["--model", "unused", "--out", url])
    assert exited.value.code == 2
    assert f"no filesystem for {scheme}://" in _last_line(capsys)


def test_a_workdir_the_store_cannot_create_is_a_one_line_error(bucket_root, capsys):
    as_path("gs://bucket/file").write_text("not a folder")
    smoke = str(REPO / "gin_configs/runs/synthetic_smoke.gin")
    with pytest.raises(SystemExit) as exited:
        _train(f"--gin_file={smoke}", "--workdir=gs://bucket/file/run")
    assert exited.value.code == 2
    assert "error: cannot create gs://bucket/file/run: " in _last_line(capsys)


def test_a_missing_model_in_a_bucket_is_one_line(bucket_root, capsys):
    assert export_cli.main(["--model", "gs://bucket/none", "--out", "gs://bucket/out"]) == 1
    error = capsys.readouterr().err
    assert error.startswith("gecko-export: cannot load --model gs://bucket/none: ")
    assert error.count("\n") == 1 and "not found" in error


def test_gecko_fret_reads_and_writes_a_bucket_and_a_failed_run_resumes_there(bucket_root, request):
    """Passages and --out in the bucket: a run whose LLM calls fail leaves its good rows and
    LLM cache there (no lock file), and the rerun asks only for the failed calls."""
    passages, clean_out, clean_answered = request.getfixturevalue("clean")
    as_path("gs://bucket/passages.jsonl").write_text(passages.read_text())
    out = bucket_root / "bucket" / "fret"
    argv = ["all", "--passages", "gs://bucket/passages.jsonl", "--out", "gs://bucket/fret"]
    argv += ["--max_chars", "300", "--num_candidates", "3", *FAST_FAIL]
    with flaky_server() as (spec, server):
        server.failing = True
        assert fret_cli.main([*argv, "--llm", spec]) == EXIT_LLM_FAILED
        assert (out / GENERATED).exists() and (out / LLM_CACHE).exists()
        assert not (out / FRET).exists() and not (out / LOCK_NAME).exists()
        server.failing = False
        assert fret_cli.main([*argv, "--llm", spec]) == 0
    assert (out / FRET).read_bytes() == (clean_out / FRET).read_bytes()
    assert set(server.answered.values()) == {1}  # nothing asked twice over both runs
    assert server.answered.keys() == clean_answered.keys()
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["passages_file"] == "gs://bucket/passages.jsonl"
    assert manifest["llm_cache"]["file"] == LLM_CACHE


def test_a_mirrored_folder_loses_what_its_source_no_longer_has(bucket_root, tmp_path):
    local = tmp_path / "stage"
    (local / "sub").mkdir(parents=True)
    (local / "kept.jsonl").write_text("new\n")
    (local / "sub" / "a.txt").write_text("a")
    (local / LOCK_NAME).write_text("pid")
    remote = bucket_root / "bucket" / "out"
    (remote / "gone").mkdir(parents=True)
    (remote / "stale.jsonl").write_text("old\n")
    (remote / "kept.jsonl").write_text("old\n")
    mirror_tree(local, "gs://bucket/out", skip=frozenset({LOCK_NAME}))
    assert sorted(p.name for p in remote.iterdir()) == ["kept.jsonl", "sub"]
    assert (remote / "kept.jsonl").read_text() == "new\n"
    assert (remote / "sub" / "a.txt").read_text() == "a"
