"""The before/after table: the base model against the fine-tuned seeds' mean and spread.

A difference no larger than the spread over seeds (one sample standard deviation) is flagged
as within noise rather than called a gain or a loss.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np

Results = Mapping[str, Mapping[str, Any]]  # task -> metric -> value (or {"skipped": reason})


def summarize(base: Results, seeds: Sequence[Results]) -> list[dict[str, Any]]:
    """One row per (task, metric) present for the base and every seed."""
    rows = []
    for task, base_metrics in base.items():
        if "skipped" in base_metrics or any("skipped" in s.get(task, {}) for s in seeds):
            continue
        for metric, value in base_metrics.items():
            values = np.array([s[task][metric] for s in seeds], np.float64)
            spread = float(values.std(ddof=1)) if len(values) > 1 else 0.0
            delta = float(values.mean() - value)
            rows.append(
                {
                    "task": task,
                    "metric": metric,
                    "base": float(value),
                    "mean": float(values.mean()),
                    "std": spread,
                    "per_seed": values.tolist(),
                    "delta": delta,
                    "beyond_spread": abs(delta) > spread and len(values) > 1,
                }
            )
    return rows


IN_DOMAIN_NOTE = "* its train split is in the fine-tuning mixture: in-domain for this model"


def format_summary(
    rows: Sequence[Mapping[str, Any]], num_seeds: int, in_domain: Collection[str] = ()
) -> str:
    """A fixed-width table; the last column says whether the change exceeds the seed spread.

    Tasks in ``in_domain`` (trained on their train split) are starred, with a note below.
    """
    header = ["task", "metric", "base", f"fine-tuned ({num_seeds} seeds)", "delta", "reading"]
    lines = [header]
    for row in rows:
        if num_seeds < 2:
            reading = "one seed: spread unknown"
        elif not row["beyond_spread"]:
            reading = "within seed spread"
        else:
            reading = "gain" if row["delta"] > 0 else "loss"
        lines.append(
            [
                row["task"] + ("*" if row["task"] in in_domain else ""),
                row["metric"],
                f"{row['base']:.4f}",
                f"{row['mean']:.4f} ± {row['std']:.4f}",
                f"{row['delta']:+.4f}",
                reading,
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    rendered = [
        "  ".join(
            text.ljust(width) if i < 2 or i == 5 else text.rjust(width)
            for i, (text, width) in enumerate(zip(line, widths, strict=True))
        ).rstrip()
        for line in lines
    ]
    rendered.insert(1, "  ".join("-" * w for w in widths))
    if any(row["task"] in in_domain for row in rows):
        rendered.append(IN_DOMAIN_NOTE)
    return "\n".join(rendered)
