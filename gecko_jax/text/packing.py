"""Sequence packing for inference: several short texts share one fixed-length row.

Padding every text of a batch to the longest one wastes compute on short, uneven inputs
(about a quarter of all token slots on STS-B with length buckets), and every new padded
length is another jit compilation. Packing texts first-fit-decreasing into rows of a few fixed
lengths wastes a few percent and compiles one shape per row length.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Sequence

import numpy as np

MIN_ROW_LENGTH = 64


@dataclasses.dataclass
class PackedCall:
    """One forward call: ``[rows, row_length]`` arrays and where each text slot's output goes."""

    input_ids: np.ndarray
    attention_mask: np.ndarray
    segment_ids: np.ndarray
    position_ids: np.ndarray
    # (row, segment slot, text index) for every text in this call.
    slots: list[tuple[int, int, int]]


def row_lengths(max_length: int) -> list[int]:
    """Row lengths a text may open: 64, 128, 256, ... capped at ``max_length``."""
    lengths, n = [], MIN_ROW_LENGTH
    while n < max_length:
        lengths.append(n)
        n *= 2
    return [*lengths, max_length]


def max_segments(row_length: int) -> int:
    """Text slots per row. Every text has at least two tokens ([CLS] [SEP] or text + </s>);
    capping the slots at a quarter of the row keeps per-text pooling cheap and rarely binds."""
    return max(1, row_length // 4)


def pack_rows(lengths: Sequence[int], max_length: int) -> list[tuple[int, list[int]]]:
    """Best-fit-decreasing: ``(row_length, [text indices])`` per row.

    Texts go longest first into the open row with the least room that still holds them; a
    text that fits nowhere opens a row of the smallest length that holds it. Shorter texts
    thus fill leftover room in rows of any length. O(n log n) through a sorted free list.
    """
    classes = row_lengths(max_length)
    rows: list[tuple[int, list[int]]] = []
    open_rows: list[tuple[int, int]] = []  # sorted (free tokens, row index)
    for index in np.argsort(-np.asarray(lengths), kind="stable"):
        size = int(lengths[index])
        if size > max_length:
            raise ValueError(f"text {index} has {size} tokens, more than max_length {max_length}")
        position = bisect.bisect_left(open_rows, (size, -1))
        if position < len(open_rows):
            room, r = open_rows.pop(position)
        else:
            r, room = len(rows), next(c for c in classes if c >= size)
            rows.append((room, []))
        rows[r][1].append(int(index))
        room -= size
        if room > 0 and len(rows[r][1]) < max_segments(rows[r][0]):
            bisect.insort(open_rows, (room, r))
    return rows


def plan_calls(
    token_ids: Sequence[Sequence[int]], max_length: int, tokens_per_call: int, pad_id: int
) -> list[PackedCall]:
    """Pack texts into rows, then group rows of equal length into calls of fixed shape.

    Each call has ``max(1, tokens_per_call // row_length)`` rows, except that the last call of
    a row length is padded only to the next power of two, so few shapes are ever compiled.
    """
    by_length: dict[int, list[list[int]]] = {}
    for row_length, members in pack_rows([len(t) for t in token_ids], max_length):
        by_length.setdefault(row_length, []).append(members)
    calls = []
    for row_length in sorted(by_length, reverse=True):
        rows = by_length[row_length]
        per_call = max(1, tokens_per_call // row_length)
        for start in range(0, len(rows), per_call):
            chunk = rows[start : start + per_call]
            n_rows = per_call if len(chunk) == per_call else _pow2_at_least(len(chunk), per_call)
            calls.append(_fill(chunk, n_rows, row_length, token_ids, pad_id))
    return calls


def _pow2_at_least(n: int, cap: int) -> int:
    return min(cap, 1 << (n - 1).bit_length())


def _fill(
    rows: list[list[int]],
    n_rows: int,
    row_length: int,
    token_ids: Sequence[Sequence[int]],
    pad_id: int,
) -> PackedCall:
    shape = (n_rows, row_length)
    input_ids = np.full(shape, pad_id, np.int32)
    segment_ids = np.zeros(shape, np.int32)
    position_ids = np.zeros(shape, np.int32)
    slots = []
    for r, members in enumerate(rows):
        offset = 0
        for s, index in enumerate(members):
            ids = token_ids[index]
            end = offset + len(ids)
            input_ids[r, offset:end] = ids
            segment_ids[r, offset:end] = s + 1
            position_ids[r, offset:end] = np.arange(len(ids))
            slots.append((r, s, index))
            offset = end
    mask = (segment_ids > 0).astype(np.int32)
    return PackedCall(input_ids, mask, segment_ids, position_ids, slots)
