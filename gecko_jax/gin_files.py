"""Gin file parsing shared by the command lines, so they work from any working folder.

The gin files name their includes from the checkout (``include 'gin_configs/runs/base.gin'``),
so the checkout is always a search path. gin tries the search paths in turn and, for each one
that misses, its package-resource reader logs ``Path not found`` at ERROR level even when a
later path holds the file; run from a notebook's folder, every gin file printed such a line.
Those lines are dropped while parsing. A file that no search path holds raises
:class:`GinFileError` with gin's message, which names the paths searched; the command lines
turn it into a usage error.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import gin

CHECKOUT = Path(__file__).resolve().parents[1]

_GIN_MISS = "Unable to open file"  # how gin-config 0.5 (pinned) starts a missing file's error
_search_paths: set[str] = set()


class GinFileError(OSError):
    """A gin file (or one it includes) could not be read from any search path."""


class _DropLookupMisses(logging.Filter):
    """Drops gin's per-search-path "Path not found" records; a real miss still raises."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            record.pathname.endswith(os.path.join("gin", "resource_reader.py"))
            and record.getMessage().startswith("Path not found")
        )


def parse_gin(
    gin_files: Sequence[str], gin_params: Sequence[str], search_paths: Sequence[str] = ()
) -> None:
    """Parse gin files and bindings; relative file names are looked up in the working folder,
    then in the search paths added so far (``search_paths`` and the checkout). Raises
    :class:`GinFileError` for a file found in none of them."""
    for path in (*search_paths, str(CHECKOUT)):
        if path not in _search_paths:
            gin.add_config_file_search_path(path)
            _search_paths.add(path)
    root = logging.getLogger()
    lookup_filter = _DropLookupMisses()
    root.addFilter(lookup_filter)
    try:
        gin.parse_config_files_and_bindings(list(gin_files), list(gin_params))
    except OSError as error:
        # gin's own miss; an OSError raised by a module a gin file imports keeps its traceback.
        if not str(error).startswith(_GIN_MISS):
            raise
        raise GinFileError(str(error)) from error
    finally:
        root.removeFilter(lookup_filter)
