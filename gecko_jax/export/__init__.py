"""Trained encoders written for other tools.

``export_sentence_transformers`` writes a BERT-family encoder as a sentence-transformers folder;
``Encoder.save_pretrained`` writes any encoder as our safetensors + JSON folder; ``cli`` is
``gecko-export``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["export_sentence_transformers"]


def __getattr__(name: str) -> Any:
    # Lazy, so `gecko-export --help` does not import jax.
    if name == "export_sentence_transformers":
        from gecko_jax.export.sentence_transformers import export_sentence_transformers

        return export_sentence_transformers
    raise AttributeError(f"module 'gecko_jax.export' has no attribute {name!r}")
