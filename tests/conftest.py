"""Test setup: eight forced CPU devices, so sharding code paths run on any machine."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import csv
import io
import json
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
# The `hub` fixture: a local stand-in of the Hugging Face hub.
pytest_plugins = ("hub_standin",)
# Sentences for a tiny SentencePiece model where STS-B is absent.
FALLBACK_SENTENCES = [
    "A girl is styling her hair.",
    "A group of men play soccer on the beach.",
    "One woman is measuring another woman's ankle.",
    "The cat sat quietly on the warm window sill.",
    "Stock markets fell sharply after the announcement.",
    "He quickly jumped over the lazy brown dog.",
    "Scientists discovered a new species of frog in the rainforest.",
    "The committee will vote on the proposal next week.",
]


def train_tiny_sentencepiece(sentences: list[str], path: Path) -> Path:
    """A tiny T5-style SentencePiece model (pad 0, eos 1, unk 2, no bos) at ``path``."""
    import sentencepiece

    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=model,
        vocab_size=100,
        hard_vocab_limit=False,
        character_coverage=1.0,
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        minloglevel=2,
    )
    path.write_bytes(model.getvalue())
    return path


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    from gecko_jax.core.assets import minilm_path

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
    from gecko_jax.core.assets import wiki_extracts_path

    extracts = json.loads(wiki_extracts_path().read_text(encoding="utf-8"))
    return [entry["description"] for entry in extracts.values() if entry.get("description")]


# Short seed passages keep the LLM's prompts, and so the demo tests, short.
DEMO_SEED_PASSAGES = [
    ("Durian", "The durian is the edible fruit of trees of the genus Durio, known for its smell."),
    ("Jupiter", "Jupiter is the fifth planet from the Sun and the largest in the Solar System."),
    ("Violin", "The violin is a wooden string instrument, usually played with a bow."),
    (
        "Photosynthesis",
        "Photosynthesis is how plants turn light, water and carbon dioxide into sugar.",
    ),
    ("Chess", "Chess is a board game for two players on a board of 64 squares."),
    ("Volcano", "A volcano is a rupture in the crust of a planet through which lava erupts."),
    ("Glacier", "A glacier is a persistent body of dense ice that moves under its own weight."),
    ("Sonnet", "A sonnet is a poetic form of fourteen lines with a set rhyme scheme."),
]
TINY_DEMO_GIN = [
    "gecko.GenerateConfig.max_tokens = 64",
    "gecko.MineConfig.num_candidates = 3",
    "gecko.FinetuneConfig.global_batch_size = 8",  # the test session's 8 CPU devices take one each
    "gecko.FinetuneConfig.query_length = 24",
    "gecko.FinetuneConfig.passage_length = 32",
    "gecko.FinetuneConfig.eval_every = 2",
    "gecko.FinetuneConfig.patience = 2",
    "gecko.FinetuneConfig.warmup_steps = 0",
    "gecko.DemoConfig.heldout_fraction = 0.25",
    "gecko.DemoConfig.eval_tasks = ('stsb', 'wiki_retrieval')",
]
TINY_DEMO_EVAL_LIMIT = 24


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory) -> tuple[Path, list[str]]:
    """``gecko-jax demo`` end to end at a tiny scale, on the user-passages path: (out, argv).

    Shared by the demo and ablation tests, since it runs the real LLM and trains twice.
    """
    from gecko_jax.cli.demo import main

    folder = tmp_path_factory.mktemp("demo")
    passages = folder / "seed_passages.jsonl"
    passages.write_text(
        "".join(
            json.dumps({"id": title.lower(), "title": title, "text": text}) + "\n"
            for title, text in DEMO_SEED_PASSAGES
        )
    )
    out = folder / "out"
    argv = ["demo", "--out", str(out), "--passages", str(passages), "--seeds", "0", "1"]
    argv += ["--steps", "4", "--eval_limit", str(TINY_DEMO_EVAL_LIMIT)]
    argv += [arg for param in TINY_DEMO_GIN for arg in ("--gin_param", param)]
    assert main(argv) == 0
    return out, argv
