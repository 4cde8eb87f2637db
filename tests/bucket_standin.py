"""A ``gs://`` stand-in served from a local folder, for tests of non-local paths.

epath (the path layer of orbax and of ours) reaches ``gs://`` through fsspec once told not to
use TensorFlow, and orbax writes array data through a GCS TensorStore spec; both are pointed at
``ROOT/bucket/...``. Everything above them, our code and orbax's GCS code paths (no renames,
commit marker files), sees only ``gs://bucket/...``.

A test process installs it through :func:`patches` (under pytest's monkeypatch); a command
line runs under it as ``python tests/bucket_standin.py ROOT MODULE ARGS...``, which calls
``MODULE.main(ARGS)``: the same entry point as the console script, in a process that can be
killed.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

from etils.epath import gpath
from fsspec.implementations.local import LocalFileSystem
from fsspec.registry import register_implementation
from orbax.checkpoint._src.path import gcs_utils


class LocalBucketFS(LocalFileSystem):
    """fsspec's ``gs`` protocol on a local folder: ``gs://bucket/x`` is ``ROOT/bucket/x``."""

    protocol = ("gs", "gcs")
    root = ""

    def __init__(self, **options: Any):
        super().__init__(auto_mkdir=True, **options)  # as in GCS, a write makes its "folders"

    @classmethod
    def _strip_protocol(cls, path: Any) -> str:
        text = str(path)
        for prefix in ("gs://", "gcs://"):
            if text.startswith(prefix):
                return f"{cls.root}/{text.removeprefix(prefix)}".rstrip("/")
        return super()._strip_protocol(path)

    def glob(self, path: str, **kwargs: Any) -> list[str]:
        """Names within the bucket, as gcsfs gives them (epath puts ``gs://`` before them)."""
        return [name.removeprefix(f"{self.root}/") for name in super().glob(path, **kwargs)]


def patches(root: str) -> list[tuple[Any, str, Any]]:
    """(object, attribute, value) to set for ``gs://`` to reach ``root``; the fsspec protocols
    are registered here."""
    register_implementation("gs", LocalBucketFS, clobber=True)
    register_implementation("gcs", LocalBucketFS, clobber=True)

    def file_spec(url: str) -> dict[str, str]:
        return {"driver": "file", "path": f"{root}/{url.removeprefix('gs://')}"}

    return [
        (LocalBucketFS, "root", root),
        (gpath, "_is_tf_installed", lambda: False),  # epath: fsspec, not TensorFlow
        (gcs_utils, "get_kvstore_for_gcs", file_spec),
        # orbax asks google-cloud-storage (not installed) whether the bucket is hierarchical
        (gcs_utils, "is_hierarchical_namespace_enabled", lambda path: False),
    ]


def main() -> int:
    root, module, *argv = sys.argv[1:]
    for target, name, value in patches(root):
        setattr(target, name, value)
    return importlib.import_module(module).main(argv)


if __name__ == "__main__":
    sys.exit(main())
