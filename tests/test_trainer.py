"""The training loop as users run it: gin CLI, SIGKILL/SIGTERM resume, multi-host, init_from."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SMOKE = "gin_configs/runs/synthetic_smoke.gin"
STEPS = 20  # margin: under load a run must not finish before the SIGKILL lands


def _command(workdir: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gecko_jax.cli.train",
        f"--gin_file={SMOKE}",
        f"--workdir={workdir}",
        f"--gin_param=TOTAL_STEPS={STEPS}",
        "--gin_param=gecko.TrainConfig.checkpoint_every=4",
        *extra,
    ]


def _env(devices: int = 1) -> dict[str, str]:
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    env["JAX_PLATFORMS"] = "cpu"
    return env


def _losses(workdir: Path) -> dict[int, float]:
    lines = (workdir / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    steps = [r["step"] for r in records]
    assert steps == sorted(set(steps)), f"duplicated or unordered steps: {steps}"
    return {r["step"]: r["loss"] for r in records}


def _logged_steps(workdir: Path) -> int:
    path = workdir / "metrics.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


def _run_until(workdir: Path, min_steps: int, checkpoint: int, sig: int) -> int:
    """Start (or resume) a run, wait for ``min_steps`` logged and ``checkpoint`` on disk, signal."""
    process = subprocess.Popen(
        _command(workdir), cwd=REPO, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        if (
            _logged_steps(workdir) >= min_steps
            and (workdir / "checkpoints" / str(checkpoint)).exists()
        ):
            break
        time.sleep(0.1)
    assert process.poll() is None, process.stderr.read().decode()[-2000:]
    process.send_signal(sig)
    return process.wait(timeout=120)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("uninterrupted")
    subprocess.run(_command(workdir), cwd=REPO, env=_env(), check=True, capture_output=True)
    return workdir


def test_run_writes_metrics_checkpoints_and_operative_config(uninterrupted):
    losses = _losses(uninterrupted)
    assert sorted(losses) == list(range(1, STEPS + 1))
    assert all(np.isfinite(v) for v in losses.values())
    assert "total_steps = %TOTAL_STEPS" in (uninterrupted / "operative_config.gin").read_text()
    kept = sorted(int(p.name) for p in (uninterrupted / "checkpoints").iterdir())
    assert kept == list(range(4, STEPS + 1, 4))[-3:]  # every 4 steps, keep the newest 3
    assert list((uninterrupted / "tensorboard").iterdir()), "no TensorBoard event file"


def test_sigterm_then_sigkill_then_rerun_reproduces_losses_exactly(uninterrupted, tmp_path):
    from gecko_jax.model_io.checkpoints import Checkpointer

    workdir = tmp_path / "interrupted"
    # SIGTERM (what a TPU VM preemption sends): checkpoint at the current step, exit cleanly.
    assert _run_until(workdir, min_steps=5, checkpoint=4, sig=signal.SIGTERM) == 0
    checkpointer = Checkpointer(workdir, async_save=False)
    saved = checkpointer.latest_step()
    checkpointer.close()
    assert saved is not None and saved >= 5
    assert _logged_steps(workdir) == saved  # stopped right after checkpointing
    # SIGKILL: no chance to save; the rerun resumes from the last periodic checkpoint, or,
    # that one damaged, from the one before it.
    assert _run_until(workdir, min_steps=9, checkpoint=8, sig=signal.SIGKILL) == -signal.SIGKILL
    assert _logged_steps(workdir) < STEPS
    newest = max(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
    (workdir / "checkpoints" / str(newest) / "state" / "_METADATA").unlink()
    rerun = subprocess.run(
        _command(workdir), cwd=REPO, env=_env(), check=True, capture_output=True, text=True
    )
    assert f"WARNING checkpoint at step {newest} does not restore (" in rerun.stderr
    assert _losses(workdir) == _losses(uninterrupted)  # exact, step by step


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_match_one(tmp_path):
    single = tmp_path / "single"
    subprocess.run(_command(single), cwd=REPO, env=_env(devices=2), check=True, capture_output=True)
    multi = tmp_path / "multi"
    port = _free_port()
    processes = [
        subprocess.Popen(
            _command(
                multi,
                f"--coordinator_address=127.0.0.1:{port}",
                "--num_processes=2",
                f"--process_id={i}",
                "--cpu_collectives=gloo",
            ),
            cwd=REPO,
            env=_env(devices=1),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for i in range(2)
    ]
    for process in processes:
        assert process.wait(timeout=600) == 0, process.stderr.read().decode()[-3000:]
    expected, got = _losses(single), _losses(multi)
    assert sorted(got) == sorted(expected)
    np.testing.assert_allclose(
        [got[s] for s in sorted(got)], [expected[s] for s in sorted(expected)], rtol=1e-5
    )


def test_tiny_gin_pre_finetunes_minilm_on_wikipedia(tmp_path):
    """The README's training smoke run through the console script: real MiniLM weights, real
    seqio mixture, CPU, and a progress line per step on the console."""
    workdir = tmp_path / "tiny"
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "gecko-train"),
            "--gin_file=gin_configs/runs/tiny.gin",
            f"--workdir={workdir}",
        ],
        cwd=REPO,
        env=_env(),
        check=True,
        capture_output=True,
        text=True,
    )
    losses = _losses(workdir)
    assert sorted(losses) == [1, 2, 3, 4]
    assert all(np.isfinite(v) for v in losses.values())
    config = json.loads((workdir / "train_config.json").read_text())
    assert (
        config["init_from"].endswith("model") and config["model"]["encoder"]["hidden_size"] == 384
    )
    console = result.stderr
    assert f"INFO initialised from {config['init_from']}" in console
    progress = re.findall(
        r"INFO step (\d)/4 loss ([\d.]+) .* ([\d.]+) ex/s eta (\d+:\d\d:\d\d)", console
    )
    assert [int(step) for step, *_ in progress] == [1, 2, 3, 4], console[-3000:]
    assert [float(loss) for _, loss, *_ in progress] == pytest.approx(
        [losses[s] for s in (1, 2, 3, 4)], abs=1e-4
    )
