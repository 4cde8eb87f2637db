"""A run is a model: the README's fine-tune recipe, shrunk, through the console scripts.

``gecko-train`` on ``finetune_tiny.gin`` (``finetune.gin`` at CPU size: the unified mixture
from the local academic files, Banking77 and a gecko-fret output, STS-B evaluated during
training, the best step exported) -> ``gecko-eval --model WORKDIR`` -> ``gecko-export --model
WORKDIR@STEP`` -> sentence-transformers gives the embeddings ``Encoder.from_pretrained`` does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gecko_jax import Encoder
from gecko_jax.cli import evaluate as eval_cli
from gecko_jax.model_io.workdir import EXPORT_DIR, RUN_MODEL_FILE

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FIXTURES = REPO / "tests" / "fixtures" / "tasks"
SHARED_DATA = REPO.parent / "shared" / "data"
EVAL_LIMIT = 16
TEXTS = ["task: search result | query: when was the eiffel tower built", "A cat sat on a mat."]


def _run(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [str(BIN / argv[0]), *argv[1:]], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """GECKO_DATA_DIR as a user has it: the academic sets (test fixtures in their real
    schema) beside the real Banking77 and STS Benchmark files."""
    if not (SHARED_DATA / "banking77").is_dir() or not (SHARED_DATA / "stsbenchmark").is_dir():
        pytest.skip(f"needs Banking77 and STS Benchmark in {SHARED_DATA}")
    folder = tmp_path_factory.mktemp("data")
    for source in [
        *(FIXTURES / "data").iterdir(),
        *(SHARED_DATA / n for n in ("banking77", "stsbenchmark")),
    ]:
        (folder / source.name).symlink_to(source)
    return folder


@pytest.fixture(scope="module")
def env(data_dir) -> dict[str, str]:
    return {
        **os.environ,
        "GECKO_DATA_DIR": str(data_dir),
        "GECKO_FRET_FILES": str(FIXTURES / "fret" / "run1" / "fret.jsonl"),
        "XLA_FLAGS": "--xla_force_host_platform_device_count=1",
        "JAX_PLATFORMS": "cpu",
    }


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, env) -> Path:
    workdir = tmp_path_factory.mktemp("run") / "ft"
    _run(
        "gecko-train",
        "--gin_file=gin_configs/runs/finetune_tiny.gin",
        f"--workdir={workdir}",
        "--gin_param=TOTAL_STEPS = 2",
        "--gin_param=gecko.TrainConfig.checkpoint_every = 1",
        f"--gin_param=gecko.TrainingEvaluation.limit = {EVAL_LIMIT}",
        env=env,
    )
    return workdir


def _evaluations(workdir: Path) -> dict[int, float]:
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["eval/stsb/spearman"] for r in records if "eval/stsb/spearman" in r}


def test_the_run_records_its_inference_model_and_exports_the_best_step(workdir):
    record = json.loads((workdir / RUN_MODEL_FILE).read_text())
    assert record["model"]["max_length"] == 256  # MiniLM's, not the training batches' 64
    assert record["model"]["dtype"] == "float32" and record["tokenizer"] == "tokenizer.json"
    assert (workdir / "tokenizer" / "tokenizer.json").is_file()
    evaluations = _evaluations(workdir)
    assert sorted(evaluations) == [0, 2]  # the starting point competes
    assert list((workdir / "tensorboard").glob("events.out.tfevents.*"))
    best = max(evaluations, key=lambda step: (evaluations[step], -step))
    selected = record["export"]["selected_by"]
    assert record["export"]["step"] == best == selected["step"]
    assert selected["metric"] == "stsb/spearman" and selected["value"] == evaluations[best]
    assert (workdir / EXPORT_DIR / "params.safetensors").is_file()


def test_gecko_eval_on_the_workdir_scores_its_newest_step_as_training_did(
    workdir, env, data_dir, tmp_path
):
    out = tmp_path / "eval.json"
    args = ["--tasks", "stsb", "--data_dir", str(data_dir), "--limit", str(EVAL_LIMIT)]
    _run("gecko-eval", "--model", str(workdir), *args, "--out", str(out), env=env)
    (run,) = json.loads(out.read_text())["runs"].values()
    assert run["results"]["stsb"]["spearman"] == pytest.approx(_evaluations(workdir)[2], abs=1e-4)


def test_a_step_exported_for_sentence_transformers_embeds_as_the_encoder(
    workdir, env, tmp_path, minilm_encoder
):
    from sentence_transformers import SentenceTransformer

    out = tmp_path / "st"
    _run("gecko-export", "--model", f"{workdir}@1", "--out", str(out), env=env)
    encoder = Encoder.from_pretrained(f"{workdir}@1")
    assert encoder.config.max_length == 256
    model = SentenceTransformer(str(out), device="cpu")
    assert model.max_seq_length == 256
    expected = encoder.encode(TEXTS)
    got = model.encode(TEXTS, normalize_embeddings=True)
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert np.min(np.sum(got * expected, axis=1)) > 1 - 1e-5
    # A trained step: not the base model's embeddings.
    assert not np.allclose(minilm_encoder.encode(TEXTS), expected, atol=1e-4)


def test_best_is_the_export(workdir):
    best = Encoder.from_pretrained(f"{workdir}@best").encode(TEXTS)
    np.testing.assert_array_equal(best, Encoder.from_pretrained(workdir / EXPORT_DIR).encode(TEXTS))


def test_a_missing_step_names_the_steps_there(workdir, capsys):
    with pytest.raises(FileNotFoundError, match=r"no step 7 in .*; its steps: 1, 2 \(the export"):
        Encoder.from_pretrained(f"{workdir}@7")
    assert eval_cli.main(["--model", f"{workdir}@7", "--tasks", "stsb"]) == 1
    assert "its steps: 1, 2" in capsys.readouterr().err


def test_a_workdir_without_checkpoints_says_so(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no checkpoint yet"):
        Encoder.from_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="no evaluation selected a best step"):
        Encoder.from_pretrained(f"{tmp_path}@best")
