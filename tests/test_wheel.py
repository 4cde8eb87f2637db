"""A user without the checkout: the built wheel, pip-installed into a fresh venv, runs the
console scripts and finds the gin files by name from any folder."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

_RESOLVE_BY_NAME = """
import json
import gecko_jax
from gecko_jax.cli.demo import load_demo_config
config = load_demo_config(["gin_configs/demo/default.gin"])
print(json.dumps({"package": gecko_jax.__file__, "num_passages": config.num_passages}))
"""


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=True, timeout=300)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv holding only the wheel; the dependencies come from this interpreter's
    site-packages through a path file (no network here), the editable install's hooks not."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    files = _run(["git", "ls-files", "-co", "--exclude-standard"], ROOT).stdout.split()
    for name in files:
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    _run([*pip_wheel, "-q", str(source), "-w", str(work / "dist")], work)
    (wheel,) = (work / "dist").glob("gecko_jax-*.whl")
    venv = work / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], work)
    (site,) = (venv / "lib").glob("python*/site-packages")
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], work
    )
    return venv


def _setup_scripts() -> set[str]:
    return set(re.findall(r'"(gecko-[\w-]+)=[\w.]+:main"', (ROOT / "setup.py").read_text()))


def test_every_console_script_is_installed_and_answers_help(installed: Path, tmp_path: Path):
    names = _setup_scripts()
    assert len(names) >= 8
    for name in sorted(names):
        result = _run([str(installed / "bin" / name), "--help"], tmp_path)
        assert "usage:" in result.stdout, name
    demo = _run([str(installed / "bin" / "gecko-jax"), "demo", "--help"], tmp_path)
    assert "--gin_file" in demo.stdout


def test_gin_files_resolve_by_name_from_the_installed_package(installed: Path, tmp_path: Path):
    result = _run([str(installed / "bin" / "python"), "-c", _RESOLVE_BY_NAME], tmp_path)
    found = json.loads(result.stdout.splitlines()[-1])
    assert Path(found["package"]).is_relative_to(installed), "imported the checkout, not the wheel"
    assert found["num_passages"] == 64
    bundled = Path(found["package"]).parent / "gin_configs"
    assert sorted(p.relative_to(bundled) for p in bundled.rglob("*.gin")) == sorted(
        p.relative_to(ROOT / "gin_configs") for p in (ROOT / "gin_configs").rglob("*.gin")
    )
