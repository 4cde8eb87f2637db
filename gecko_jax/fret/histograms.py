"""The manifest's score histograms: per LLM scorer, ``HISTOGRAM_BINS`` bins spanning the finite
scores' min to max.

In two passes, range then counts, so records spread over workers need no worker to hold every
score: ``gecko-fret`` runs both passes on all its scores at once (:func:`score_histograms`),
``gecko-fret-beam`` runs each as a combine over its records.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

HISTOGRAM_BINS = 10
Span = tuple[float, float] | None


def finite(scores: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Each scorer's finite scores (a failed score is NaN)."""
    values = {name: np.asarray(v, np.float64).ravel() for name, v in scores.items()}
    return {name: v[np.isfinite(v)] for name, v in values.items()}


def spans(values: Mapping[str, np.ndarray]) -> dict[str, Span]:
    """Each scorer's (min, max), or None without finite scores."""
    return {k: (float(v.min()), float(v.max())) if len(v) else None for k, v in values.items()}


def merge_spans(parts: Iterable[Mapping[str, Span]], scorers: Iterable[str]) -> dict[str, Span]:
    """The spans covering every part's."""
    out: dict[str, Span] = dict.fromkeys(scorers)
    for part in parts:
        for name, span in part.items():
            if span is not None:
                low, high = out[name] or span
                out[name] = (min(low, span[0]), max(high, span[1]))
    return out


def bin_counts(values: Mapping[str, np.ndarray], ranges: Mapping[str, Span]) -> dict[str, Any]:
    """Each scorer's bin counts over ``ranges`` (scorers without a span have none)."""
    return {
        name: np.histogram(values[name], HISTOGRAM_BINS, range=span)[0]
        for name, span in ranges.items()
        if span is not None
    }


def add_counts(parts: Iterable[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for part in parts:
        for name, counts in part.items():
            out[name] = out[name] + counts if name in out else counts
    return out


def histograms(counts: Mapping[str, np.ndarray], ranges: Mapping[str, Span]) -> dict[str, Any]:
    """``{scorer: {"counts", "edges"} or None}``, as the manifest holds them."""
    return {
        name: None
        if span is None
        else {
            "counts": counts[name].tolist(),
            "edges": np.histogram_bin_edges(np.asarray(span), HISTOGRAM_BINS, span).tolist(),
        }
        for name, span in ranges.items()
    }


def score_histograms(scores: Mapping[str, Any]) -> dict[str, Any]:
    """Both passes over scores held in memory."""
    values = finite(scores)
    ranges = spans(values)
    return histograms(bin_counts(values, ranges), ranges)
