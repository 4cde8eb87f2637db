"""Gin file parsing shared by the command lines, so they work from any working folder.

Gin files are named from the folder that holds ``gin_configs/`` (``include
'gin_configs/runs/base.gin'``, ``--gin_file gin_configs/demo/default.gin``). That folder is the
checkout for an editable install, and the installed package itself for a wheel, which ships
``gin_configs/`` inside ``gecko_jax/`` (``setup.py``); whichever exists is a search path, so a
name resolves from any working folder with or without the checkout.

gin tries the search paths in turn and, for each one that misses, its package-resource reader
logs ``Path not found`` at ERROR level even when a later path holds the file; run from a
notebook's folder, every gin file printed such a line.
Those lines are dropped while parsing. A file that no search path holds raises
:class:`GinFileError` with gin's message, which names the paths searched, and so does a syntax
error, named by file (or ``--gin_param``) and line, where gin's tokenizer names neither; the
command lines turn it into a usage error. Gin files may be URLs (``gs://...``), read through
``gecko_jax.core.paths``; gin itself opens files with the builtin ``open`` only.
"""

from __future__ import annotations

import logging
import os
import tokenize
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

import gin

import gecko_jax
from gecko_jax.core.paths import as_path, is_remote

_PACKAGE = Path(gecko_jax.__file__).resolve().parent
# Folders holding gin_configs/: the wheel's copy inside the package, then the checkout's.
GIN_ROOTS = tuple(root for root in (_PACKAGE, _PACKAGE.parent) if (root / "gin_configs").is_dir())

_GIN_MISS = "Unable to open file"  # how gin-config 0.5 (pinned) starts a missing file's error
_search_paths: set[str] = set()


class GinFileError(OSError):
    """A gin file (or one it includes) could not be read from any search path, or a gin file
    or binding does not parse."""


def _open_remote(path: str) -> IO[str]:
    return as_path(path).open("r")


gin.config.register_file_reader(
    _open_remote, lambda path: is_remote(path) and as_path(path).is_file()
)


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
    then in the search paths added so far (``search_paths`` and :data:`GIN_ROOTS`). Raises
    :class:`GinFileError` for a file found in none of them."""
    for path in (*search_paths, *map(str, GIN_ROOTS)):
        if path not in _search_paths:
            gin.add_config_file_search_path(path)
            _search_paths.add(path)
    root = logging.getLogger()
    lookup_filter = _DropLookupMisses()
    root.addFilter(lookup_filter)
    try:
        for name in gin_files:
            _parse_one(name, gin.parse_config_file)
        _parse_one("--gin_param", lambda _: gin.parse_config(list(gin_params)))
        gin.finalize()
    except OSError as error:
        # gin's own miss; an OSError raised by a module a gin file imports keeps its traceback.
        if not str(error).startswith(_GIN_MISS):
            raise
        raise GinFileError(str(error)) from error
    finally:
        root.removeFilter(lookup_filter)


def _parse_one(source: str, parse: Callable[[str], object]) -> None:
    """``parse(source)``, with a syntax error raised as :class:`GinFileError` naming
    ``source`` and the line (gin's tokenizer errors carry only a position)."""
    try:
        parse(source)
    except tokenize.TokenError as error:
        message, (line, _) = error.args
        raise GinFileError(
            f"{source}: line {line}: {message} (an unclosed bracket or string?)"
        ) from None
    except SyntaxError as error:
        message = error.msg.splitlines()[-1].strip()
        text = (error.text or "").strip()
        raise GinFileError(
            f"{error.filename or source}: line {error.lineno}: {message}: {text!r}"
        ) from None
