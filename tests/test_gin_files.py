"""Gin files parse from any working folder, and a missing one is a usage error."""

import json
import subprocess
import sys

import gin
import pytest

from gecko_jax.cli import ablate as ablate_cli
from gecko_jax.cli import fret as fret_cli
from gecko_jax.cli import train as train_cli
from gecko_jax.cli.demo import main as demo_main
from gecko_jax.cli.gin_files import GIN_ROOTS, GinFileError, parse_gin


@pytest.fixture
def gin_scratch():
    gin.clear_config()
    with gin.unlock_config():
        yield
    gin.clear_config()


_PARSE_FROM_ELSEWHERE = """
import json, logging
logging.basicConfig(level=logging.INFO)
import gin
import gecko_jax.cli.train
from gecko_jax.cli.gin_files import parse_gin
parse_gin(["gin_configs/runs/synthetic_smoke.gin"], ["BATCH_SIZE = 4"])
print(json.dumps([gin.query_parameter(name) for name in
                  ("%TOTAL_STEPS", "%BATCH_SIZE", "gecko.MeshConfig.data")]))
"""


def test_checkout_files_and_their_includes_parse_from_another_folder_without_error_lines(
    tmp_path,
):
    # A fresh interpreter in another folder, as a console script or a notebook runs: the
    # checkout is not on sys.path there (pytest's would send gin down another lookup).
    result = subprocess.run(
        [sys.executable, "-c", _PARSE_FROM_ELSEWHERE],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    # The file itself, the binding after it, and base.gin, which it includes.
    assert json.loads(result.stdout.splitlines()[-1]) == [20, 4, -1]
    assert "Path not found" not in result.stderr


def test_a_missing_file_names_the_folders_searched(gin_scratch, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(GinFileError, match=r"nope\.gin") as error:
        parse_gin(["nope.gin"], [])
    assert all(str(root) in str(error.value) for root in GIN_ROOTS)


@pytest.mark.parametrize(
    "main, argv",
    [
        (demo_main, ["demo", "--out", "{out}", "--gin_file", "nope.gin"]),
        (train_cli.main, ["--workdir", "{out}", "--gin_file", "nope.gin"]),
        (
            fret_cli.main,
            ["generate", "--passages", "wiki:1", "--out", "{out}", "--gin_file", "nope.gin"],
        ),
        (ablate_cli.main, ["--demo", "{out}", "--out", "{out}", "--gin_file", "nope.gin"]),
    ],
    ids=["gecko-jax demo", "gecko-train", "gecko-fret", "gecko-ablate"],
)
def test_a_missing_gin_file_is_a_usage_error_before_anything_is_written(
    gin_scratch, main, argv, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        main([arg.format(out=out) for arg in argv])
    assert exit_info.value.code == 2
    stderr = capsys.readouterr().err
    assert "usage:" in stderr and "Unable to open file: nope.gin" in stderr
    assert not out.exists()


@pytest.mark.parametrize(
    "binding, message",
    [
        ("gecko.TrainConfig.total_steps = 'many'", "TrainConfig.total_steps must be int"),
        ("gecko.TrainConfig.learning_rate = '1e-3'", "TrainConfig.learning_rate must be float"),
        ("gecko.TrainConfig.schedule = 'wavy'", "schedule must be linear, cosine or constant"),
    ],
)
def test_a_train_setting_of_the_wrong_type_is_a_usage_error_before_any_work(
    gin_scratch, binding, message, tmp_path, capsys
):
    workdir = tmp_path / "run"
    tiny = str(GIN_ROOTS[0] / "gin_configs" / "runs" / "tiny.gin")
    argv = [f"--gin_file={tiny}", f"--workdir={workdir}", f"--gin_param={binding}"]
    with pytest.raises(SystemExit) as exit_info:
        train_cli.main(argv)
    assert exit_info.value.code == 2
    assert f"gecko-train: error: {message}" in capsys.readouterr().err
    assert not workdir.exists()
