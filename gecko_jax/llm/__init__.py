"""LLM backends used by the FRet pipeline: generation and continuation scoring.

``load_llm("jax:model.gguf")``, ``load_llm("openai:MODEL@http://host:8000/v1")`` or
``load_llm("gemini:MODEL")``, optionally behind the on-disk call cache (``cache=path``).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Collection, Mapping
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

        _check_kwargs(kind, JaxLLM, kwargs, ("config", "params", "tokenizer", "model_id"))
        load = JaxLLM.from_gguf if target.endswith(".gguf") else JaxLLM.from_pretrained
        llm = load(target, **kwargs)
    elif kind == "openai":
        from gecko_jax.llm.openai_backend import OpenAICompatibleLLM

        model, _, base_url = target.partition("@")
        from_spec = {"base_url": base_url} if base_url else {}
        _check_kwargs(kind, OpenAICompatibleLLM, kwargs, ("model", *from_spec))
        llm = OpenAICompatibleLLM(model, **from_spec, **kwargs)
    elif kind == "gemini":
        from gecko_jax.llm.gemini_backend import GeminiLLM

        _check_kwargs(kind, GeminiLLM, kwargs, ("model",))
        llm = GeminiLLM(target, **kwargs)
    else:
        raise ValueError(f"unknown LLM backend {kind!r} in {spec!r}; known: jax, openai, gemini")
    return llm if cache is None else CachedLLM(llm, cache)


def _check_kwargs(
    kind: str, backend: type, kwargs: Mapping[str, Any], from_spec: Collection[str]
) -> None:
    """Fail before the (slow) load, naming the backend and the keys, where ``backend``'s
    constructor would raise a bare TypeError; ``from_spec``: the arguments load_llm fills."""
    settable = [
        name
        for name, parameter in inspect.signature(backend).parameters.items()
        if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)
        and name not in from_spec
    ]
    if bad := sorted(set(kwargs) - set(settable)):
        raise TypeError(
            f"unknown setting(s) {bad} for the {kind} LLM backend ({backend.__name__}); "
            f"settable: {settable}"
        )


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
