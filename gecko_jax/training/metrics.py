"""Per-step metrics to ``metrics.jsonl``, TensorBoard event files and a console line."""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import socket
import time
from typing import Any

from etils import epath

from gecko_jax.core.paths import PathLike, as_path

logger = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
_event_files = itertools.count()  # tells apart the files one process opens in one second

# Dense bf16 peak per device, for the MFU estimate (None where unknown, e.g. CPU).
PEAK_FLOPS = {
    "H200": 989e12,
    "H100": 989e12,
    "A100": 312e12,
    "TPU v4": 275e12,
    "TPU v5 lite": 197e12,
    "TPU v5p": 459e12,
    "TPU v6 lite": 918e12,
}


def peak_flops(device_kind: str) -> float | None:
    for name, flops in PEAK_FLOPS.items():
        if name.lower() in device_kind.lower():
            return flops
    return None


def train_flops_per_step(non_embedding_params: int, tokens: int, gradcache: bool) -> float:
    """6 N T for forward + backward (GradCache adds a forward: 8 N T); attention is ignored."""
    return (8.0 if gradcache else 6.0) * non_embedding_params * tokens


class MetricsWriter:
    """Appends one JSON object per logged step; resumed runs first drop steps past the restore.

    Dropping lines after the restored step keeps ``metrics.jsonl`` equal to an uninterrupted
    run's after a crash, since those steps are recomputed. The file is rewritten rather than
    appended to, since object stores (``gs://``) cannot append.
    """

    def __init__(
        self, workdir: PathLike, start_step: int, tensorboard: bool = True, enabled: bool = True
    ):
        """``enabled=False`` (hosts other than process 0) makes every call a no-op."""
        self.path = as_path(workdir) / METRICS_FILE
        self.enabled = enabled
        self._handle = None
        self._tb = None
        if not enabled:
            return
        kept = self._lines_up_to(start_step)
        self._handle = self.path.open("w")
        self._handle.write("".join(f"{line}\n" for line in kept))
        self._handle.flush()
        self._tb = _event_writer(self.path.parent / "tensorboard") if tensorboard else None

    def _lines_up_to(self, step: int) -> list[str]:
        if not self.path.exists():
            return []
        kept = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                if json.loads(line)["step"] <= step:
                    kept.append(line)
            except (json.JSONDecodeError, KeyError, TypeError):
                logger.warning("dropping unreadable line in %s: %r", self.path, line[:80])
        return kept

    def write(self, step: int, metrics: dict[str, float]) -> None:
        if self._handle is None:
            return
        record = {"step": step, **{k: _jsonable(v) for k, v in metrics.items()}}
        self._handle.write(json.dumps(record) + "\n")
        self._handle.flush()
        if self._tb is not None:
            self._tb.write(step, metrics)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
        if self._tb is not None:
            self._tb.close()


def _jsonable(value: Any) -> Any:
    value = float(value) if not isinstance(value, (bool, int, str)) else value
    return None if isinstance(value, float) and not math.isfinite(value) else value


class _TensorBoard:
    def __init__(self, writer: Any, summary_pb2: Any, event_pb2: Any):
        self._writer, self._summary_pb2, self._event_pb2 = writer, summary_pb2, event_pb2

    def write(self, step: int, metrics: dict[str, float]) -> None:
        values = [
            self._summary_pb2.Summary.Value(tag=name, simple_value=float(value))
            for name, value in metrics.items()
            if isinstance(value, (int, float)) and math.isfinite(float(value))
        ]
        self.add(
            self._event_pb2.Event(
                wall_time=time.time(), step=step, summary=self._summary_pb2.Summary(value=values)
            )
        )

    def add(self, event: Any) -> None:
        self._writer.write(event.SerializeToString())
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


def _event_writer(directory: epath.Path) -> _TensorBoard | None:
    """TensorBoard event files through the ``tensorboard`` package alone (no TensorFlow),
    written through epath like the rest of the workdir, local or remote."""
    try:
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.summary.writer.record_writer import RecordWriter
    except ImportError:
        logger.info("tensorboard is not installed; metrics go to metrics.jsonl only")
        return None
    directory.mkdir(parents=True, exist_ok=True)
    name = (
        f"events.out.tfevents.{time.time():010.0f}.{socket.gethostname()}.{os.getpid()}"
        f".{next(_event_files)}"
    )
    board = _TensorBoard(RecordWriter((directory / name).open("wb")), summary_pb2, event_pb2)
    board.add(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2"))
    return board
