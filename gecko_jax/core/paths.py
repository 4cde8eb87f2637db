"""One path layer for the folders and files a run reads and writes, local or remote.

Paths go through etils ``epath``, the layer orbax writes checkpoints through, so ``gs://``,
``s3://``, ``az://`` and ``hf://`` URLs reach their stores (with TensorFlow installed epath uses
``tf.io.gfile``, else fsspec). ``pathlib`` would turn ``gs://bucket/run`` into a local folder
``gs:/bucket/run``. Local paths are made absolute and otherwise behave as before.

Model folders are read and written by libraries that take local files (safetensors,
tokenizers, torch), so a remote model folder passes through a local copy. Stage folders whose
writers need a local disk (an SQLite cache, a lock file, atomic renames) are worked on in a
local copy mirrored back after each stage (:func:`staged_folder`).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from etils import epath

PathLike = str | os.PathLike

_COPY_CHUNK = 16 << 20
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


class PathError(ValueError):
    """A path whose filesystem cannot be reached: an unknown scheme, or a store that fails."""


def is_remote(path: PathLike) -> bool:
    """Whether ``path`` is a URL (``scheme://...``) rather than a local path."""
    return _URL.match(os.fspath(path)) is not None


def as_path(path: PathLike) -> epath.Path:
    """``path`` as an epath: a URL as given, a local path made absolute."""
    text = os.fspath(path)
    if not is_remote(text):
        return epath.Path(text).absolute()
    try:
        return epath.Path(text)
    except KeyError:  # epath knows no filesystem for the scheme
        raise PathError(
            f"{text}: no filesystem for {text.partition('://')[0]}:// (use a local path or "
            "gs://, s3://, az://, hf://)"
        ) from None


def make_dir(path: PathLike) -> epath.Path:
    """Create the folder and its parents, or raise :class:`PathError` in one line.

    A run's first write, so an unreachable store stops it before any work. The stores' errors
    have no common base (``OSError``, TensorFlow's, fsspec's), hence the broad except.
    """
    folder = as_path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except Exception as error:
        raise PathError(f"cannot create {folder}: {_first_line(error)}") from error
    return folder


def local_copy(path: PathLike) -> Path:
    """A local folder with the contents of ``path``: the path itself when local, else a copy
    kept until the process exits, since a loaded encoder reads its tokenizer file again when
    it is exported."""
    if not is_remote(path):
        return Path(path)
    source = as_path(path)
    local = Path(tempfile.mkdtemp(prefix="gecko_jax_remote_"))
    atexit.register(shutil.rmtree, local, ignore_errors=True)
    try:
        found = source.is_dir()
        if found:
            copy_tree(source, local / source.name)
    except Exception as error:  # as in make_dir: the stores' errors share no base class
        raise PathError(f"cannot read {source}: {_first_line(error)}") from error
    if not found:
        raise FileNotFoundError(f"folder not found: {source}")
    return local / source.name


def copy_tree(source: PathLike, target: PathLike) -> None:
    """Copy a folder's files between any two filesystems, streaming each file."""
    source, target = as_path(source), as_path(target)
    target.mkdir(parents=True, exist_ok=True)
    for entry in source.iterdir():
        if entry.is_dir():
            copy_tree(entry, target / entry.name)
            continue
        _copy_file(entry, target / entry.name)


def mirror_tree(source: PathLike, target: PathLike, skip: frozenset[str] = frozenset()) -> None:
    """Make ``target`` hold what ``source`` holds: files copied over, and files and folders
    that ``source`` no longer has removed (an output a rerun deleted must not come back).
    Names in ``skip`` are neither copied nor removed."""
    source, target = as_path(source), as_path(target)
    target.mkdir(parents=True, exist_ok=True)
    kept = {entry.name for entry in source.iterdir()} - skip
    for entry in target.iterdir():
        if entry.name not in kept and entry.name not in skip:
            entry.rmtree() if entry.is_dir() else entry.unlink()
    for name in sorted(kept):
        entry = source / name
        if entry.is_dir():
            mirror_tree(entry, target / name, skip)
            continue
        _copy_file(entry, target / name)


@contextlib.contextmanager
def staged_folder(
    path: PathLike, skip: frozenset[str] = frozenset()
) -> Iterator[tuple[Path, Callable[[], None]]]:
    """``(local folder, sync)`` for an output folder ``path``: ``path`` itself and a no-op when
    local; for a URL, a local copy of what is there, which ``sync()`` mirrors back (call it
    after each stage) and which is mirrored back once more on the way out, an error included,
    so the finished part of a failed run is kept. Names in ``skip`` (a lock file) stay local.
    """
    if not is_remote(path):
        folder = Path(path)
        yield folder, lambda: None
        return
    target = as_path(path)
    local = Path(tempfile.mkdtemp(prefix="gecko_jax_stage_")) / target.name
    try:
        make_dir(target)
        copy_tree(target, local)
    except Exception as error:  # as in make_dir: the stores' errors share no base class
        shutil.rmtree(local.parent, ignore_errors=True)
        if isinstance(error, PathError):
            raise
        raise PathError(f"cannot read {target}: {_first_line(error)}") from error

    def sync() -> None:
        mirror_tree(local, target, skip)

    try:
        yield local, sync
    finally:
        try:
            sync()
        finally:
            shutil.rmtree(local.parent, ignore_errors=True)


def _copy_file(source: epath.Path, target: epath.Path) -> None:
    """Stream one file between any two filesystems."""
    with source.open("rb") as reader, target.open("wb") as writer:
        shutil.copyfileobj(reader, writer, _COPY_CHUNK)


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}"
