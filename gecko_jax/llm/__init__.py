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
    "check_llm_kwargs",
    "load_llm",
]


def load_llm(spec: str, cache: str | os.PathLike | None = None, **kwargs: Any) -> LLM:
    """A backend from ``"KIND:WHAT"``; ``kwargs`` go to its constructor.

    ``jax:PATH`` (a ``.gguf`` file or a Hugging Face Llama folder), ``openai:MODEL[@BASE_URL]``,
    ``gemini:MODEL``. With ``cache``, calls go through :class:`CachedLLM` at that file.
    """
    kind, target, backend, from_spec = _resolve(spec)
    _check_kwargs(kind, backend, kwargs, from_spec)
    llm: LLM
    if kind == "jax":  # the loader fills the spec's arguments from the model files
        load = backend.from_gguf if target.endswith(".gguf") else backend.from_pretrained
        llm = load(target, **kwargs)
    else:
        llm = backend(**from_spec, **kwargs)
    return llm if cache is None else CachedLLM(llm, cache)


def check_llm_kwargs(spec: str, kwargs: Mapping[str, Any]) -> None:
    """Raise what :func:`load_llm` would for a bad spec or setting, without loading anything:
    command lines check their ``--llm_arg`` values before the (slow) pipeline starts."""
    kind, _, backend, from_spec = _resolve(spec)
    _check_kwargs(kind, backend, kwargs, from_spec)


def _resolve(spec: str) -> tuple[str, str, type, dict[str, Any]]:
    """(kind, target, backend class, the constructor arguments the spec fills: names only for
    ``jax``, whose loader reads their values from the model files)."""
    kind, _, target = spec.partition(":")
    if not target:
        raise ValueError(f"LLM spec {spec!r} is not KIND:WHAT (jax:, openai:, gemini:)")
    if kind == "jax":
        from gecko_jax.llm.jax_backend import JaxLLM

        return kind, target, JaxLLM, dict.fromkeys(("config", "params", "tokenizer", "model_id"))
    if kind == "openai":
        from gecko_jax.llm.openai_backend import OpenAICompatibleLLM

        model, _, base_url = target.partition("@")
        from_spec = {"model": model} | ({"base_url": base_url} if base_url else {})
        return kind, target, OpenAICompatibleLLM, from_spec
    if kind == "gemini":
        from gecko_jax.llm.gemini_backend import GeminiLLM

        return kind, target, GeminiLLM, {"model": target}
    raise ValueError(f"unknown LLM backend {kind!r} in {spec!r}; known: jax, openai, gemini")


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
