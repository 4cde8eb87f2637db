"""The evaluation suite as the trainer's ``eval_fn``: any of its tasks, every N steps.

The trainer calls the hook with the current parameters every ``TrainConfig.eval_every`` steps
and writes what it returns to ``metrics.jsonl`` and TensorBoard as ``eval/TASK/METRIC``. A
``select_metric`` (``"stsb/spearman"``) makes the run keep its best step: ``gecko-train`` then
passes the trainer an ``EarlyStopping`` on it, which also stops the run after ``patience``
evaluations without a gain when that is set. ``gecko-train`` builds this from gin
(``gecko.TrainingEvaluation``); the class itself is plain.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gecko_jax.data.sources import default_data_dir
from gecko_jax.evaluation.suite import TASKS, evaluate_task, load_task

if TYPE_CHECKING:
    from gecko_jax.encoder import Encoder

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class TrainingEvaluation:
    """Which suite tasks to run during training, on what data, and how to pick the best step.

    ``data_dir`` (default :func:`~gecko_jax.data.sources.default_data_dir`: ``$GECKO_DATA_DIR``,
    the folder the training tasks read, else the sets' hub copies) holds ``stsbenchmark/`` and
    ``banking77/``; ``limit`` caps each task's examples (seeded).
    """

    tasks: tuple[str, ...]
    data_dir: str | None = None
    limit: int | None = None
    seed: int = 0
    batch_size: int = 64
    select_metric: str | None = None
    select_mode: str = "max"
    patience: int | None = None

    def __post_init__(self) -> None:
        unknown = sorted(set(self.tasks) - set(TASKS))
        if unknown or not self.tasks:
            raise ValueError(f"evaluation tasks: choose from {sorted(TASKS)} (got {self.tasks})")
        if self.select_metric is not None:
            task, _, metric = self.select_metric.partition("/")
            if task not in self.tasks or not metric:
                raise ValueError(
                    f"select_metric {self.select_metric!r} must be TASK/METRIC with TASK one of "
                    f"the evaluated tasks {list(self.tasks)}"
                )
        elif self.patience is not None:
            raise ValueError("patience (early stopping) needs a select_metric")

    def hook(self, encoder_for: Callable[[Any], Encoder]) -> Callable[[Any, int], dict[str, float]]:
        """The trainer's ``eval_fn``. Each task's data is read once, here: a task whose data
        is missing is an error now rather than a silent gap in the curves."""
        data_dir = self.data_dir or default_data_dir()
        data = {name: load_task(name, data_dir, self.limit, self.seed) for name in self.tasks}
        skipped = {name: d["skipped"] for name, d in data.items() if "skipped" in d}
        if skipped:
            raise FileNotFoundError(f"evaluation data missing (data_dir {data_dir}): {skipped}")

        def evaluate(params: Any, step: int) -> dict[str, float]:
            encoder = encoder_for(params)
            metrics = {
                f"{name}/{metric}": float(value)
                for name, task_data in data.items()
                for metric, value in evaluate_task(
                    encoder, name, task_data, self.batch_size
                ).items()
            }
            logger.info(
                "eval at step %d: %s",
                step,
                ", ".join(f"{name} {value:.4f}" for name, value in metrics.items()),
            )
            return metrics

        return evaluate
