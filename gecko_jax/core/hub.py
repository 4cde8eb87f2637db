"""Copies on the Hugging Face hub of what the offline packages and data folders hold (models,
data sets), downloaded once into a cache in the layout their local readers read, so the rest
of the code reads one layout whatever the source.

Each copy is pinned to a commit: the files must stay those of the local copies. The cache
(``$GECKO_CACHE_DIR``, else ``~/.cache/gecko_jax``) holds ``data/{set folder}/`` and
``models/{name}/``, written atomically: a folder there is complete. ``huggingface_hub`` is
imported only to download.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType

CACHE_DIR_ENV = "GECKO_CACHE_DIR"
DEFAULT_CACHE_DIR = "~/.cache/gecko_jax"
# Seconds to wait for the hub's answer to a request.
CONNECT_TIMEOUT_S = 5.0
# The values huggingface_hub reads as true in HF_HUB_OFFLINE.
_TRUE = frozenset({"1", "ON", "YES", "TRUE"})


class HubUnavailable(Exception):
    """A hub copy that cannot be downloaded now (offline, unreachable, not installed)."""


@dataclasses.dataclass(frozen=True)
class HubCopy:
    """``files`` of the hub repo ``repo_id`` (of ``repo_type``) at commit ``revision``, and
    ``write``, which turns them (hub file name -> downloaded path) into the local layout in a
    folder."""

    repo_id: str
    revision: str
    files: tuple[str, ...]
    write: Callable[[Mapping[str, Path], Path], None]
    repo_type: str = "dataset"


def cache_dir(kind: str) -> Path:
    """The cache's folder for ``kind`` (``data``: one folder per set, as in a local data
    folder; ``models``: one folder per model)."""
    return Path(os.environ.get(CACHE_DIR_ENV) or DEFAULT_CACHE_DIR).expanduser() / kind


def copy_files(downloaded: Mapping[str, Path], folder: Path) -> None:
    """The ``write`` of a copy whose local layout is the repo's own."""
    for name, path in downloaded.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, folder / name)


def fetch(copy: HubCopy, folder: Path) -> Path:
    """``folder`` holding ``copy`` in its local layout: as it is when there, else downloaded,
    written beside it and renamed into place (a concurrent fetch that finished first wins)."""
    if folder.is_dir():
        return folder
    hub = _hub()
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{folder.name}-", dir=folder.parent) as staging:
        downloaded = _download(hub, copy, Path(staging) / "hub")
        written = Path(staging) / folder.name
        written.mkdir()
        copy.write(downloaded, written)
        try:
            written.rename(folder)
        except OSError:
            if not folder.is_dir():
                raise
    return folder


def _hub() -> ModuleType:
    """``huggingface_hub``, unless the hub is off (``HF_HUB_OFFLINE``) or it is not installed."""
    if os.environ.get("HF_HUB_OFFLINE", "").upper() in _TRUE:
        raise HubUnavailable("offline (HF_HUB_OFFLINE is set)")
    try:
        import huggingface_hub
    except ImportError:
        raise HubUnavailable("huggingface_hub is not installed") from None
    return huggingface_hub


def _download(hub: ModuleType, copy: HubCopy, cache_dir: Path) -> dict[str, Path]:
    """Hub file name -> its downloaded path; an unreachable hub fails after one short request
    (``hf_hub_download`` alone retries it for ~25 s)."""
    where = {"repo_type": copy.repo_type, "revision": copy.revision}
    try:
        url = hub.hf_hub_url(copy.repo_id, copy.files[0], **where)
        hub.get_hf_file_metadata(url, timeout=CONNECT_TIMEOUT_S)
        return {
            name: Path(
                hub.hf_hub_download(
                    copy.repo_id, name, cache_dir=cache_dir, etag_timeout=CONNECT_TIMEOUT_S, **where
                )
            )
            for name in copy.files
        }
    except Exception as error:  # connection, HTTP and offline errors share no base class
        raise HubUnavailable(_first_line(error)) from error


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}"
