"""Early stopping on a held-out metric, persisted so that a killed run resumes knowing its best.

The history of evaluations lives in ``WORKDIR/early_stopping.json``. On resume at step s,
evaluations after s are dropped (the deterministic run will redo them), and the best value and
the count of evaluations without improvement are recomputed from what is left.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from etils import epath

from gecko_jax.core.paths import PathLike, as_path

STATE_FILE = "early_stopping.json"


class EarlyStopping:
    """Tracks ``metric`` (higher is better unless ``mode="min"``) over evaluations.

    ``on_improve(params, step)`` runs whenever the metric reaches a new best, so the caller can
    keep the best parameters (for example as an export); ``patience`` evaluations without an
    improvement of more than ``min_delta`` stop the run. ``patience=None`` only selects the
    best step and never stops the run.
    """

    def __init__(
        self,
        metric: str,
        patience: int | None,
        on_improve: Callable[[Any, int], None] | None = None,
        mode: str = "max",
        min_delta: float = 0.0,
    ) -> None:
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        if patience is not None and patience < 1:
            raise ValueError(f"patience must be >= 1 or None, got {patience}")
        self.metric = metric
        self.patience = patience
        self.on_improve = on_improve
        self.mode = mode
        self.sign = 1.0 if mode == "max" else -1.0
        self.min_delta = min_delta
        self.history: list[dict[str, float]] = []
        self._path: epath.Path | None = None

    def attach(self, workdir: PathLike, resumed_step: int) -> None:
        """Read the saved history, keeping the evaluations up to ``resumed_step``."""
        self._path = as_path(workdir) / STATE_FILE
        if self._path.exists():
            saved = json.loads(self._path.read_text())
            self.history = [h for h in saved["history"] if h["step"] <= resumed_step]

    @property
    def best(self) -> dict[str, float] | None:
        """The first evaluation with the best value (None before any evaluation)."""
        best = None
        for entry in self.history:
            if best is None or self._improves(entry["value"], best["value"]):
                best = entry
        return best

    @property
    def evaluations_without_improvement(self) -> int:
        best = self.best
        return 0 if best is None else sum(h["step"] > best["step"] for h in self.history)

    @property
    def stopped(self) -> bool:
        if self.patience is None:
            return False
        return self.evaluations_without_improvement >= self.patience

    def selection(self) -> dict[str, Any] | None:
        """The best step and why it is best, as a run records it (None before any evaluation)."""
        best = self.best
        if best is None:
            return None
        return {"metric": self.metric, "mode": self.mode, **best}

    def _improves(self, value: float, reference: float) -> bool:
        return self.sign * (value - reference) > self.min_delta

    def update(self, step: int, metrics: dict[str, float], params: Any) -> bool:
        """Record one evaluation; returns True when training should stop."""
        if self.metric not in metrics:
            raise KeyError(f"early stopping metric {self.metric!r} not in {sorted(metrics)}")
        value = float(metrics[self.metric])
        if not math.isfinite(value):
            raise ValueError(f"early stopping metric {self.metric!r} is {value} at step {step}")
        previous = self.best
        self.history.append({"step": step, "value": value})
        if (previous is None or self._improves(value, previous["value"])) and self.on_improve:
            self.on_improve(params, step)
        self._save()
        return self.stopped

    def _save(self) -> None:
        if self._path is not None:
            state = {
                "metric": self.metric,
                "mode": self.mode,
                "patience": self.patience,
                "history": self.history,
            }
            tmp = self._path.with_suffix(".tmp")
            tmp.write_text(json.dumps(state, indent=2) + "\n")
            tmp.replace(self._path)
