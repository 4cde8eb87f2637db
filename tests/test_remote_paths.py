"""Training and export on a non-local path (``gs://``), through ``gecko_jax.paths``.

Which filesystem, and why: epath, the path layer of orbax and of ours, knows ``gs://``,
``s3://``, ``az://`` and ``hf://`` only (``memory://`` and ``ram://`` are a KeyError), and
orbax writes array data through TensorStore specs it builds for local files, ``gs://`` or
``s3://`` only. No GCS emulator, gcsfs or s3fs is installed here, so the test uses ``gs://``
URLs with the two storage calls under them served from a local folder: fsspec's ``gs``
protocol (epath's backend once told not to use TensorFlow) and orbax's GCS TensorStore spec,
for a bucket without hierarchical namespace (orbax asks google-cloud-storage, absent here).
Everything above them, our code and orbax's GCS code paths (no renames, commit marker files),
sees only ``gs://bucket/...``, and a ``./gs:`` folder would show a URL that went through
pathlib. The runs are in-process, since the stand-in is set up in this process.
"""

from pathlib import Path

import gin
import numpy as np
import pytest
from etils.epath import gpath
from fsspec.implementations.local import LocalFileSystem
from fsspec.registry import register_implementation
from orbax.checkpoint._src.path import gcs_utils
from test_trainer import REPO, _losses

from gecko_jax import Encoder, train_cli
from gecko_jax.export import cli as export_cli
from gecko_jax.paths import as_path, copy_tree


class _LocalBucketFS(LocalFileSystem):
    """fsspec's ``gs`` protocol on a local folder: ``gs://bucket/x`` is ``ROOT/bucket/x``."""

    protocol = ("gs", "gcs")
    root = ""

    def __init__(self, **options):
        super().__init__(auto_mkdir=True, **options)  # as in GCS, a write makes its "folders"

    @classmethod
    def _strip_protocol(cls, path):
        text = str(path)
        for prefix in ("gs://", "gcs://"):
            if text.startswith(prefix):
                return f"{cls.root}/{text.removeprefix(prefix)}".rstrip("/")
        return super()._strip_protocol(path)

    def glob(self, path, **kwargs):
        """Names within the bucket, as gcsfs gives them (epath puts ``gs://`` before them)."""
        return [name.removeprefix(f"{self.root}/") for name in super().glob(path, **kwargs)]


@pytest.fixture
def bucket_root(tmp_path, monkeypatch) -> Path:
    """The local folder behind ``gs://``, for the duration of one test."""
    root = tmp_path / "gcs"
    root.mkdir()
    monkeypatch.setattr(_LocalBucketFS, "root", str(root))
    register_implementation("gs", _LocalBucketFS, clobber=True)
    register_implementation("gcs", _LocalBucketFS, clobber=True)
    monkeypatch.setattr(gpath, "_is_tf_installed", lambda: False)  # epath: fsspec, not TF

    def file_spec(url: str) -> dict[str, str]:
        return {"driver": "file", "path": f"{root}/{url.removeprefix('gs://')}"}

    monkeypatch.setattr(gcs_utils, "get_kvstore_for_gcs", file_spec)
    # orbax asks google-cloud-storage (not installed) whether the bucket is hierarchical
    monkeypatch.setattr(gcs_utils, "is_hierarchical_namespace_enabled", lambda path: False)
    yield root
    assert not Path("gs:").exists(), "a gs:// URL was taken for a local path"


def _train(*argv: str) -> int:
    gin.clear_config()
    return train_cli.main(list(argv))


@pytest.mark.slow
def test_gecko_train_in_a_bucket_resumes_with_identical_losses(bucket_root, minilm_dir, capsys):
    """tiny.gin with the gin file, init_from and workdir in the bucket; then the newest
    checkpoint is lost and a rerun resumes from the older one, step for step."""
    copy_tree(minilm_dir, "gs://bucket/minilm")
    as_path("gs://bucket/tiny.gin").write_text((REPO / "gin_configs/runs/tiny.gin").read_text())
    argv = (
        "--gin_file=gs://bucket/tiny.gin",
        "--workdir=gs://bucket/run",
        '--gin_param=gecko.TrainConfig.init_from = "gs://bucket/minilm"',
    )
    assert _train(*argv) == 0  # its console lines go to stderr (train_cli.configure_logging)
    run = as_path("gs://bucket/run")
    uninterrupted = _losses(run)
    assert sorted(uninterrupted) == [1, 2, 3, 4]
    assert "INFO initialised from gs://bucket/minilm" in capsys.readouterr().err
    local = bucket_root / "bucket" / "run"
    assert sorted(p.name for p in (local / "checkpoints").iterdir()) == ["2", "4"]
    assert {"operative_config.gin", "train_config.json", "metrics.jsonl"} <= {
        p.name for p in local.iterdir()
    }
    assert list((local / "tensorboard").iterdir()), "no TensorBoard event file"

    (run / "checkpoints" / "4").rmtree()  # as if the run had been killed before step 4's save
    assert _train(*argv) == 0
    assert "INFO resumed from step 2" in capsys.readouterr().err
    assert _losses(run) == uninterrupted  # exact, step by step


def test_gecko_export_reads_from_and_writes_to_a_bucket(
    bucket_root, minilm_dir, minilm_encoder, real_sentences, capsys
):
    copy_tree(minilm_dir, "gs://bucket/minilm")
    args = ["--model", "gs://bucket/minilm", "--format", "sentence-transformers"]
    assert export_cli.main([*args, "--out", "gs://bucket/st"]) == 0
    assert "wrote gs://bucket/st" in capsys.readouterr().out
    assert (bucket_root / "bucket" / "st" / "model.safetensors").is_file()
    texts = real_sentences[:8]
    exported = Encoder.from_pretrained("gs://bucket/st")
    np.testing.assert_allclose(exported.encode(texts), minilm_encoder.encode(texts), atol=1e-5)

    with pytest.raises(SystemExit):  # the bucket folder is now non-empty
        export_cli.main([*args, "--out", "gs://bucket/st"])
    assert "gs://bucket/st is not empty" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        export_cli.main([*args, "--out", "gs://bucket/minilm/inside"])
    assert "inside gs://bucket/minilm" in capsys.readouterr().err


def _last_line(capsys) -> str:
    return capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize("url", ["memory://bucket/run", "ram://bucket/run"])
def test_a_filesystem_epath_lacks_is_a_one_line_usage_error(url, capsys):
    smoke = str(REPO / "gin_configs/runs/synthetic_smoke.gin")
    with pytest.raises(SystemExit) as exited:
        _train(f"--gin_file={smoke}", f"--workdir={url}")
    assert exited.value.code == 2
    scheme = url.partition("://")[0]
    assert f"error: {url}: no filesystem for {scheme}://" in _last_line(capsys)

    with pytest.raises(SystemExit) as exited:
        export_cli.main(["--model", "unused", "--out", url])
    assert exited.value.code == 2
    assert f"no filesystem for {scheme}://" in _last_line(capsys)


def test_a_workdir_the_store_cannot_create_is_a_one_line_error(bucket_root, capsys):
    as_path("gs://bucket/file").write_text("not a folder")
    smoke = str(REPO / "gin_configs/runs/synthetic_smoke.gin")
    with pytest.raises(SystemExit) as exited:
        _train(f"--gin_file={smoke}", "--workdir=gs://bucket/file/run")
    assert exited.value.code == 2
    assert "error: cannot create gs://bucket/file/run: " in _last_line(capsys)


def test_a_missing_model_in_a_bucket_is_one_line(bucket_root, capsys):
    assert export_cli.main(["--model", "gs://bucket/none", "--out", "gs://bucket/out"]) == 1
    error = capsys.readouterr().err
    assert error.startswith("gecko-export: cannot load --model gs://bucket/none: ")
    assert error.count("\n") == 1 and "not found" in error
