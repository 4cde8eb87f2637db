"""Hugging Face hub loading for users' evaluation sets, with ``datasets`` imported on demand.

``datasets`` is not a dependency: the package evaluates from local files, and users who want
the hub copies install it themselves.
"""

from __future__ import annotations

from typing import Any


def load_hf_split(name: str, split: str) -> Any:
    """One split of a hub dataset (downloads it on first use)."""
    try:
        import datasets
    except ImportError as error:
        raise ImportError(
            f"loading {name!r} from the Hugging Face hub needs the `datasets` package: "
            "pip install datasets"
        ) from error
    return datasets.load_dataset(name, split=split)
