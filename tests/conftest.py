"""Test setup: eight forced CPU devices, so sharding code paths run on any machine."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import csv
import json
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    from gecko_jax.assets import minilm_path

    return minilm_path()


@pytest.fixture(scope="session")
def minilm_encoder(minilm_dir):
    from gecko_jax import Encoder

    return Encoder.from_pretrained(minilm_dir)


@pytest.fixture(scope="session")
def real_sentences() -> list[str]:
    """Real English sentences: STS-B test pairs when ../shared is present, else Wikipedia."""
    sts = SHARED_DATA / "stsbenchmark" / "sts-test.csv"
    if sts.exists():
        sentences: list[str] = []
        with open(sts, encoding="utf-8") as handle:
            for row in csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE):
                sentences.extend(row[5:7])
        return list(dict.fromkeys(sentences))
    from gecko_jax.assets import wiki_extracts_path

    extracts = json.loads(wiki_extracts_path().read_text(encoding="utf-8"))
    return [entry["description"] for entry in extracts.values() if entry.get("description")]
