"""``gecko-export`` run as installed: what it refuses, what it writes, and what it leaves alone.

Each test checks the exit code, the message, and the folders afterwards. The model is a tiny
BERT with MiniLM's tokenizer, so each export takes seconds.
"""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gecko_jax import Encoder
from gecko_jax.model_io.atomic import write_folder
from gecko_jax.model_io.sentence_transformers import export_sentence_transformers
from gecko_jax.models.dual_encoder import DualEncoder
from gecko_jax.models.named_configs import get_named_config
from gecko_jax.models.weights import WeightImportError
from gecko_jax.text.tokenizers import load_tokenizer

GECKO_EXPORT = Path(sys.executable).parent / "gecko-export"
ST_FILES = {
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "sentence_bert_config.json",
    "modules.json",
    "config_sentence_transformers.json",
    "1_Pooling",
    "1_Pooling/config.json",
}


def _export(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(GECKO_EXPORT), *map(str, args)],
        capture_output=True,
        text=True,
        umask=0o022,
        timeout=300,
    )


def _tree(folder: Path) -> dict[str, bytes | None]:
    """Relative path -> contents (None for folders): a snapshot to compare before and after."""
    return {
        str(p.relative_to(folder)): None if p.is_dir() else p.read_bytes()
        for p in sorted(folder.rglob("*"))
    }


@pytest.fixture(scope="module")
def tiny_model(minilm_dir, tmp_path_factory) -> Path:
    """A tiny BERT in our format, with random weights and MiniLM's tokenizer."""
    config = get_named_config("tiny_bert")
    ones = jnp.ones((1, 8), jnp.int32)
    shapes = nn.unbox(jax.eval_shape(DualEncoder(config).init, jax.random.key(0), ones, ones))
    rng = np.random.default_rng(0)
    params = jax.tree_util.tree_map(
        lambda s: rng.normal(0, 0.02, s.shape).astype(np.float32), shapes["params"]
    )
    tokenizer_file = minilm_dir / "tokenizer.json"
    encoder = Encoder(config, params, load_tokenizer(tokenizer_file), tokenizer_file)
    return encoder.save_pretrained(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture
def model(tiny_model, tmp_path) -> Path:
    """A private copy of the tiny model, which a test may damage."""
    return Path(shutil.copytree(tiny_model, tmp_path / "model"))


def test_export_appears_whole_with_ordinary_file_modes(model, tmp_path):
    out = tmp_path / "exports" / "st"
    result = _export("--model", model, "--out", out)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"wrote {out}"
    assert set(_tree(out)) == ST_FILES
    for path in [out, *out.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o755 if path.is_dir() else 0o644), (path, oct(mode))
    assert [p.name for p in out.parent.iterdir()] == ["st"], "no temporary folder left behind"


def test_gecko_format_appears_whole_too(model, tmp_path):
    out = tmp_path / "gecko"
    result = _export("--model", model, "--out", out, "--format", "gecko")
    assert result.returncode == 0, result.stderr
    assert set(_tree(out)) == set(_tree(model))
    assert stat.S_IMODE((out / "params.safetensors").stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gecko", "model"]


def test_non_empty_folder_is_refused_untouched(model, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "config.json").write_text('{"mine": true}\n')
    before = _tree(out)
    result = _export("--model", model, "--out", out)
    assert result.returncode == 2
    assert f"{out} is not empty (it holds config.json)" in result.stderr
    assert "--overwrite" in result.stderr
    assert _tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "model"]


def test_overwrite_replaces_the_exported_files_and_keeps_the_rest(model, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "config.json").write_text('{"mine": true}\n')
    (out / "notes.txt").write_text("my notes\n")
    result = _export("--model", model, "--out", out, "--overwrite")
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "config.json").read_text())["model_type"] == "bert"
    assert (out / "notes.txt").read_text() == "my notes\n"
    assert set(_tree(out)) == ST_FILES | {"notes.txt"}


@pytest.mark.parametrize("inside", ["", "sub"])
@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_the_model_folder_is_never_written_into(model, inside, overwrite):
    before = _tree(model)
    result = _export("--model", model, "--out", model / inside, *overwrite)
    assert result.returncode == 2
    where = f"inside {model}, " if inside else ""
    assert f"{model / inside} is {where}the folder the model is read from" in result.stderr
    assert _tree(model) == before


def test_truncated_weights_name_the_file_and_write_nothing(model, tmp_path):
    weights = model / "params.safetensors"
    weights.write_bytes(weights.read_bytes()[:2000])
    result = _export("--model", model, "--out", tmp_path / "out")
    assert result.returncode == 1
    assert f"cannot read weights file {weights} (2,000 bytes)" in result.stderr
    assert "truncated" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_truncated_sentence_transformers_weights_name_the_file(tiny_model, tmp_path):
    folder = export_sentence_transformers(Encoder.from_pretrained(tiny_model), tmp_path / "st")
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(WeightImportError, match="incomplete metadata") as error:
        Encoder.from_pretrained(folder)
    assert str(weights) in str(error.value) and "truncated" in str(error.value)


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        (
            "intermediate_size",
            48,
            "backbone/layers_0/mlp_in/bias: file has (64,), config needs (48,)",
        ),
        ("num_layers", 3, "backbone/layers_2/attention/key/bias: missing"),
        ("num_layers", 1, "backbone/layers_1/attention/key/bias: not in the model"),
    ],
)
def test_weights_saved_for_another_config_name_file_and_tensor(model, field, value, problem):
    meta = json.loads((model / "gecko_config.json").read_text())
    meta["model"]["encoder"][field] = value
    (model / "gecko_config.json").write_text(json.dumps(meta))
    with pytest.raises(WeightImportError) as error:
        Encoder.from_pretrained(model)
    assert str(model / "params.safetensors") in str(error.value)
    assert problem in str(error.value)


def test_a_failed_write_leaves_nothing_behind(tmp_path):
    def write(folder: Path) -> None:
        (folder / "config.json").write_text("{}")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_folder(tmp_path / "new", write)
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "config.json").write_text("old")
    with pytest.raises(RuntimeError, match="disk full"):
        write_folder(existing, write, overwrite=True)
    assert _tree(tmp_path) == {"existing": None, "existing/config.json": b"old"}
