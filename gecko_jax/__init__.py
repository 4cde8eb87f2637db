"""gecko_jax: a JAX/Flax reproduction of Gecko, text embeddings distilled from an LLM."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["Encoder", "__version__"]


def __getattr__(name: str) -> Any:
    # Lazy, so `import gecko_jax` stays cheap and never pulls in jax for CLI help or setup.
    if name == "Encoder":
        from gecko_jax.encoder import Encoder

        return Encoder
    raise AttributeError(f"module 'gecko_jax' has no attribute {name!r}")
