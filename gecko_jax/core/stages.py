"""Stage fingerprints and output-folder locks, for ``gecko-fret``, ``gecko-fret-beam``, the demo
and ``gecko-ablate``.

Resuming by "the output exists" made every failure permanent and served old results for new
input. So each stage writes, beside its output, ``OUTPUT.fingerprint.json``: what it was made
from (content hashes of its input files, its settings, the LLM's identity and prompt hashes)
and whether it finished. A rerun reuses an output only when that fingerprint matches; an output
made from other inputs stops the run with :class:`StageChanged`, which names what changed,
unless ``restart`` (the ``--restart`` flag) removes it to be made again.

One run writes into a folder at a time: :func:`folder_lock` holds ``.gecko.lock`` (the owner's
pid, host, command and start time). A second run fails at once naming the first; the lock of a
process that is gone from this host is taken over with a warning.

Plain Python, no gecko_jax imports: every layer that writes stage outputs can use it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import socket
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

logger = logging.getLogger(__name__)

# Exit statuses of the command lines that run stages (gecko-train uses 3 for divergence and 4
# for no restorable checkpoint). Input too poor to start on is a usage error, as argparse's.
EXIT_BAD_INPUT = 2
EXIT_LLM_FAILED = 5
EXIT_STAGE_CHANGED = 6
EXIT_FOLDER_LOCKED = 7
RESTART_FLAG = "--restart"
# The share of a stage's LLM calls that may fail (counted, as malformed answers or NaN scores)
# before the stage fails: a few flaky calls should not stop a long run, a dead server must.
MAX_FAILED_SHARE = 0.05
FINGERPRINT_SUFFIX = ".fingerprint.json"
LOCK_NAME = ".gecko.lock"
# How much of a changed value a message shows.
_SHOWN_CHARS = 40


class StageError(RuntimeError):
    """A stage cannot go on; ``exit_code`` is what its command line exits with."""

    exit_code = 1


class EmptyInput(StageError, ValueError):
    """Nothing to work on (no usable passages, no queries): an error, never an empty success."""

    exit_code = EXIT_BAD_INPUT


class StageChanged(StageError):
    """An existing output was made from other inputs than this run's."""

    exit_code = EXIT_STAGE_CHANGED


class FolderLocked(StageError):
    """Another live run writes into the output folder."""

    exit_code = EXIT_FOLDER_LOCKED


class LLMCallsFailed(StageError):
    """More of a stage's LLM calls failed than its ``max_failed_share`` allows."""

    exit_code = EXIT_LLM_FAILED


def stream_digest(handle: IO[bytes]) -> str:
    """sha256 of a binary stream, read in chunks (works for Beam's remote files too)."""
    digest = hashlib.sha256()
    for chunk in iter(lambda: handle.read(1 << 20), b""):
        digest.update(chunk)
    return digest.hexdigest()


def file_digest(path: str | os.PathLike) -> str:
    with open(path, "rb") as handle:
        return stream_digest(handle)


def folder_digest(path: str | os.PathLike) -> str:
    """sha256 over every file's relative name and content (a model folder)."""
    root = Path(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(root)}\0{file_digest(file)}\0".encode())
    return digest.hexdigest()


def model_digest(path: str | os.PathLike) -> str:
    """A model by its content (sha256 of a local folder or file), so a copied, moved or renamed
    install is the same input to a stage; a path that is not local (a URL) as it is."""
    local = Path(path)
    if not local.exists():
        return str(path)
    return folder_digest(local) if local.is_dir() else file_digest(local)


def json_digest(value: Any) -> str:
    """sha256 of a JSON value (key order ignored): the content of rows held in memory."""
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=repr)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def fingerprint_path(output: str | os.PathLike) -> Path:
    output = Path(output)
    return output.with_name(output.name + FINGERPRINT_SUFFIX)


def _normalized(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """``inputs`` as the JSON file holds them (tuples as lists), so equal inputs compare equal."""
    return json.loads(json.dumps(dict(inputs), sort_keys=True, default=repr))


def _flatten(value: Any, prefix: str) -> dict[str, Any]:
    if isinstance(value, dict) and value:
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}.{key}" if prefix else key))
        return flat
    return {prefix: value}


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."


def describe_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """``name (old -> new)`` for every input that differs, nested settings by dotted name."""
    before, after = _flatten(dict(old), ""), _flatten(dict(new), "")
    missing = "(none)"
    return ", ".join(
        f"{key} ({_short(before.get(key, missing))} -> {_short(after.get(key, missing))})"
        for key in sorted(before.keys() | after.keys())
        if before.get(key, missing) != after.get(key, missing)
    )


def _write_record(output: Path, inputs: dict[str, Any], complete: bool) -> None:
    path = fingerprint_path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"inputs": inputs, "complete": complete}, indent=2) + "\n")
    os.replace(tmp, path)


def _remove(output: Path) -> None:
    if output.is_dir():
        shutil.rmtree(output)
    else:
        output.unlink(missing_ok=True)


def begin_stage(
    output: str | os.PathLike, inputs: Mapping[str, Any], restart: bool = False
) -> bool:
    """Whether ``output`` (a file or a folder) is finished and made from ``inputs``.

    False: the stage is to run; its fingerprint is recorded now, unfinished, so a run killed
    midway still says what its partial output (checkpoints, say) was made from. An unfinished
    output from the same inputs is kept for the stage to resume. An output made from other
    inputs, or with no fingerprint, raises :class:`StageChanged`, or with ``restart`` is removed.
    """
    output, inputs = Path(output), _normalized(inputs)
    record_path = fingerprint_path(output)
    record = json.loads(record_path.read_text()) if record_path.exists() else None
    if output.exists():
        if record is not None and record["inputs"] == inputs:
            if record["complete"]:
                return True
        else:
            changes = (
                describe_changes(record["inputs"], inputs)
                if record is not None
                else "it has no fingerprint (written by hand or by an older version)"
            )
            if not restart:
                raise StageChanged(
                    f"{output} was made from other inputs: {changes}. Rerun with {RESTART_FLAG} "
                    "to make it again (finished LLM calls come from the cache), or write to "
                    "another output folder"
                )
            logger.warning(
                "%s: inputs changed (%s); making it again (%s)", output, changes, RESTART_FLAG
            )
            _remove(output)
    _write_record(output, inputs, complete=False)
    return False


def finish_stage(output: str | os.PathLike, inputs: Mapping[str, Any]) -> None:
    """Mark ``output`` finished: from now on a rerun with the same inputs reuses it."""
    _write_record(Path(output), _normalized(inputs), complete=True)


def check_failures(stage: str, failed: int, total: int, max_share: float, detail: str) -> None:
    """Raise :class:`LLMCallsFailed` when more than ``max_share`` of ``total`` calls failed."""
    if total and failed / total > max_share:
        raise LLMCallsFailed(
            f"{stage}: {failed} of {total} LLM calls failed ({failed / total:.0%}, more than "
            f"max_failed_share {max_share:.0%}); {detail}"
        )


def _owner() -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": " ".join(sys.argv),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _read_owner(path: Path) -> dict[str, Any] | None:
    """The lock's owner; None for an unreadable lock (its writer was killed mid-write, or is
    writing it now: read again after a moment before calling it stale)."""
    for attempt in range(2):
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            if not attempt:
                time.sleep(0.2)
    return None


def _acquire(path: Path, owner: dict[str, Any]) -> None:
    for _ in range(3):
        try:
            handle = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            other = _read_owner(path)
            if other == {}:
                continue  # released meanwhile
            if other is not None and not (
                other.get("host") == owner["host"] and not _alive(int(other.get("pid", 0)))
            ):
                raise FolderLocked(
                    f"{path.parent} is in use by another run: pid {other.get('pid')} on "
                    f"{other.get('host')}, started {other.get('started')} "
                    f"({other.get('command')}). Wait for it, or write to another output "
                    f"folder; if that run is gone, delete {path}"
                ) from None
            logger.warning("%s: taking over the lock of a run that is gone (%s)", path, other)
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(handle, "w") as file:
            file.write(json.dumps(owner) + "\n")
        return
    raise FolderLocked(f"{path}: could not take the lock (other runs keep taking it)")


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike) -> Iterator[Path]:
    """Hold ``folder``'s lock (creating the folder) while the block runs; yields the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path, owner = folder / LOCK_NAME, _owner()
    _acquire(path, owner)
    try:
        yield folder
    finally:
        if (_read_owner(path) or {}).get("pid") == owner["pid"]:
            path.unlink(missing_ok=True)
