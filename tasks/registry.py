"""seqio registration that can be repeated: adding a name again replaces it.

Tests, notebooks and users re-register tasks (a FRet task over new files, fixtures instead of
hub data); seqio raises on duplicates, and its mixtures hold Task objects, so a replaced task
also rebuilds the mixtures that contain it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping

import seqio

from gecko_jax.text.formats import DEFAULT_TEXT_FORMAT, check_text_format
from tasks.preprocessors import OUTPUT_FEATURES, unified_format
from tasks.records import Record, record_source


def add_task(
    name: str,
    read: Callable[[str], Iterable[Record]],
    *,
    symmetric: bool,
    splits: Iterable[str] = ("train",),
    text_format: str = DEFAULT_TEXT_FORMAT,
) -> str:
    """Registers ``read(split)``'s records, formatted in ``text_format``; returns the name."""
    check_text_format(text_format)
    seqio.TaskRegistry.remove(name)
    seqio.TaskRegistry.add(
        name,
        source=record_source(read, name, splits),
        preprocessors=[
            functools.partial(unified_format, symmetric=symmetric, text_format=text_format)
        ],
        output_features=OUTPUT_FEATURES,
    )
    for mixture_name in list(seqio.MixtureRegistry.names()):
        rates = seqio.MixtureRegistry.get(mixture_name).rate_per_task_name
        if name in rates:
            add_mixture(mixture_name, rates)
    return name


def add_mixture(name: str, rates: Mapping[str, float]) -> seqio.Mixture:
    """Registers a mixture of registered tasks with these (unnormalised) sampling rates."""
    seqio.MixtureRegistry.remove(name)
    return seqio.MixtureRegistry.add(name, sorted(rates.items()))
