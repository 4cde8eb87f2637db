"""How a recipe reports progress: one line at a time, to a callable the caller may replace."""

from __future__ import annotations

from collections.abc import Callable

Say = Callable[[str], None]


def print_progress(line: str) -> None:
    """Progress lines reach a log file or a pipe as they happen, not when a buffer fills."""
    print(line, flush=True)
