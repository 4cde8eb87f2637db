"""Writing a model folder without harming what is already there.

Files are written into a temporary folder beside the target, then renamed into place: an
error or a crash half way leaves no half-written export. A new folder appears whole; in an
existing folder (only with ``overwrite``) each file is replaced in one rename and files the
export does not write stay. The folder a model was loaded from is never written into, and
files get the modes an ordinary write gives (safetensors itself writes 0600). A remote target
(``gs://...``), where nothing renames a folder, receives the files once all are written.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from etils import epath

from gecko_jax.core.paths import PathLike, as_path, copy_tree, is_remote


def write_folder(
    out: PathLike,
    write: Callable[[Path], None],
    *,
    overwrite: bool = False,
    source: PathLike | None = None,
) -> Path | epath.Path:
    """Run ``write(folder)`` on a temporary folder, then move its files to ``out``."""
    if is_remote(out):
        remote = as_path(out)
        check_target(remote, overwrite=overwrite, source=source)
        with tempfile.TemporaryDirectory(prefix="gecko_jax_export_") as staging:
            write(Path(staging))
            copy_tree(staging, remote)
        return remote
    out = Path(out)
    check_target(out, overwrite=overwrite, source=source)
    target = out.resolve()  # the staging folder must sit on the same file system
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(
        tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    )
    try:
        write(staging)
        _ordinary_modes(staging)
        _move_into_place(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def check_target(out: PathLike, *, overwrite: bool, source: PathLike | None) -> None:
    """Refuse, before any work, a target that is the model's own folder (or inside it), a
    file, or a non-empty folder without ``overwrite``."""
    out = as_path(out) if is_remote(out) else Path(out)
    if source is not None and _within(out, source):
        where = "" if _resolved(out) == _resolved(source) else f"inside {source}, "
        raise ValueError(
            f"{out} is {where}the folder the model is read from; write the export elsewhere"
        )
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a folder")
    entries = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if entries and not overwrite:
        raise FileExistsError(
            f"{out} is not empty (it holds {', '.join(entries[:3])}"
            f"{', ...' if len(entries) > 3 else ''}); choose a new or empty folder, or pass "
            "overwrite=True (gecko-export --overwrite) to replace the files the export writes"
        )


def _within(path: PathLike, folder: PathLike) -> bool:
    path, folder = _resolved(path), _resolved(folder)
    return path == folder or folder in path.parents


def _resolved(path: PathLike) -> Path | epath.Path:
    """A form to compare paths by: a URL as given, a local path with its links resolved."""
    return as_path(path) if is_remote(path) else Path(path).resolve()


def _move_into_place(staging: Path, out: Path) -> None:
    if not out.exists():
        staging.rename(out)
        return
    for file in sorted(p for p in staging.rglob("*") if not p.is_dir()):
        target = out / file.relative_to(staging)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(file, target)


def _ordinary_modes(folder: Path) -> None:
    """Folders 0777 and files 0666, less the umask, as ``mkdir`` and ``open`` would give:
    ``mkdtemp`` makes 0700 and safetensors writes 0600, which other users cannot read."""
    umask = _umask()
    folder.chmod(0o777 & ~umask)
    for path in folder.rglob("*"):
        path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)


def _umask() -> int:
    # The umask can only be read by setting it; the stand-in is the strictest one, so a file
    # another thread creates in between is never more open than intended.
    umask = os.umask(0o077)
    os.umask(umask)
    return umask
