"""Where the evaluation sets with a hub copy (STS-B, Banking77) are read from.

In order: the data folder given (``$GECKO_DATA_DIR`` or ``--data_dir``) when it holds the set's
folder; else the set's hub copy, downloaded once into the cache (:mod:`gecko_jax.core.hub`);
else the set is unavailable, with a one-line reason.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

from etils import epath

from gecko_jax.core.hub import HubCopy, HubUnavailable, cache_dir, fetch
from gecko_jax.core.paths import PathLike, as_path
from gecko_jax.data.banking77 import BANKING77_FOLDER, BANKING77_HUB_COPY
from gecko_jax.data.stsb import STSB_FOLDER, STSB_HUB_COPY

logger = logging.getLogger(__name__)

DATA_DIR_ENV = "GECKO_DATA_DIR"
_CHECKOUT = Path(__file__).resolve().parents[2]

# Set folder name (under a data folder) -> its copy on the hub.
HUB_COPIES: Mapping[str, HubCopy] = {
    STSB_FOLDER: STSB_HUB_COPY,
    BANKING77_FOLDER: BANKING77_HUB_COPY,
}


class SetUnavailable(FileNotFoundError):
    """A set in neither the data folder nor, now, the hub; the message says why in one line."""


def resolve_set(name: str, data_dir: PathLike | None = None) -> epath.Path:
    """The folder holding set ``name`` (a key of :data:`HUB_COPIES`) in its local layout."""
    if data_dir is not None and (as_path(data_dir) / name).is_dir():
        return as_path(data_dir) / name
    copy = HUB_COPIES[name]
    try:
        return epath.Path(fetch(copy, cache_dir("data") / name))
    except HubUnavailable as error:
        where = f"not in {data_dir}" if data_dir is not None else "no data folder"
        raise SetUnavailable(
            f"{name}: {where}, and its hub copy {copy.repo_id} is unavailable: {error}"
        ) from None


def hub_data_dir() -> str | None:
    """The cache's data folder with every set the hub could give (each unavailable one logged),
    or None when it holds none of them."""
    available = []
    for name in HUB_COPIES:
        try:
            available.append(resolve_set(name))
        except SetUnavailable as error:
            logger.warning("%s", error)
    return str(cache_dir("data")) if available else None


def default_data_dir() -> str | None:
    """``$GECKO_DATA_DIR``, else a ``shared/data`` folder beside the checkout, else the sets'
    hub copies, downloaded once into the cache (:func:`hub_data_dir`).

    It holds ``stsbenchmark/`` and ``banking77/``; a set it lacks is skipped.
    """
    if os.environ.get(DATA_DIR_ENV):
        return os.environ[DATA_DIR_ENV]
    beside_checkout = _CHECKOUT.parent / "shared" / "data"
    if beside_checkout.is_dir():
        return str(beside_checkout)
    return hub_data_dir()
