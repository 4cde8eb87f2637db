"""LLM backends used by the FRet pipeline: generation and continuation scoring.

``load_llm("jax:model.gguf")``, ``load_llm("openai:MODEL@http://host:8000/v1")`` or
``load_llm("gemini:MODEL")``, optionally behind the on-disk call cache (``cache=path``).
"""

from __future__ import annotations

import os
from typing import Any

from gecko_jax.llm.base import LLM, ContinuationScore, Generation, LLMError, Prompt
from gecko_jax.llm.cache import CachedLLM

__all__ = [
    "LLM",
    "CachedLLM",
    "ContinuationScore",
    "GeminiLLM",
    "Generation",
    "JaxLLM",
    "LLMError",
    "OpenAICompatibleLLM",
    "Prompt",
    "load_llm",
]


def load_llm(spec: str, cache: str | os.PathLike | None = None, **kwargs: Any) -> LLM:
    """A backend from ``"KIND:WHAT"``; ``kwargs`` go to its constructor.

    ``jax:PATH`` (a ``.gguf`` file or a Hugging Face Llama folder), ``openai:MODEL[@BASE_URL]``,
    ``gemini:MODEL``. With ``cache``, calls go through :class:`CachedLLM` at that file.
    """
    kind, _, target = spec.partition(":")
    if not target:
        raise ValueError(f"LLM spec {spec!r} is not KIND:WHAT (jax:, openai:, gemini:)")
    llm: LLM
    if kind == "jax":
        from gecko_jax.llm.jax_backend import JaxLLM

        load = JaxLLM.from_gguf if target.endswith(".gguf") else JaxLLM.from_pretrained
        llm = load(target, **kwargs)
    elif kind == "openai":
        from gecko_jax.llm.openai_backend import OpenAICompatibleLLM

        model, _, base_url = target.partition("@")
        llm = OpenAICompatibleLLM(model, **({"base_url": base_url} if base_url else {}), **kwargs)
    elif kind == "gemini":
        from gecko_jax.llm.gemini_backend import GeminiLLM

        llm = GeminiLLM(target, **kwargs)
    else:
        raise ValueError(f"unknown LLM backend {kind!r} in {spec!r}; known: jax, openai, gemini")
    return llm if cache is None else CachedLLM(llm, cache)


def __getattr__(name: str) -> Any:
    # Lazy, so the HTTP backends never import jax, and google-genai stays optional.
    modules = {
        "JaxLLM": "jax_backend",
        "OpenAICompatibleLLM": "openai_backend",
        "GeminiLLM": "gemini_backend",
    }
    if name in modules:
        import importlib

        return getattr(importlib.import_module(f"gecko_jax.llm.{modules[name]}"), name)
    raise AttributeError(f"module 'gecko_jax.llm' has no attribute {name!r}")
