"""Type checks for config dataclasses, run when a config is built.

Gin binds whatever value a file or ``--gin_param`` gives, and a dataclass does not check it:
``gecko.FinetuneConfig.total_steps = 'many'`` once ran minutes of FRet before the trainer
failed on it. Each config calls :func:`check_field_types` in ``__post_init__``, so a wrong
value fails when the command line builds its config, before any model loads.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any


def _matches(value: Any, hint: Any) -> bool:
    """Whether ``value`` has type ``hint``; lists pass for tuples (gin writes both), ints for
    floats, bools for neither ints nor floats. Forms not handled here pass."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in args)
    if hint is type(None):
        return value is None
    if hint in (int, float):
        numbers = (int,) if hint is int else (int, float)
        return isinstance(value, numbers) and not isinstance(value, bool)
    if origin in (tuple, list, Sequence):
        if not isinstance(value, tuple | list):
            return False
        if (len(args) == 2 and args[1] is Ellipsis) or origin is not tuple:
            return all(_matches(item, args[0]) for item in value) if args else True
        return len(value) == len(args) and all(map(_matches, value, args))
    if origin in (dict, Mapping):
        return isinstance(value, Mapping) and (
            not args or all(_matches(k, args[0]) and _matches(v, args[1]) for k, v in value.items())
        )
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def _name(hint: Any) -> str:
    text = str(hint)
    for module in ("collections.abc.", "typing."):
        text = text.replace(module, "")
    return hint.__name__ if isinstance(hint, type) else text


def check_field_types(config: Any) -> None:
    """Raise ``TypeError`` naming the field, its type and the value, for the first field of
    the dataclass ``config`` whose value does not have the field's annotated type."""
    hints = typing.get_type_hints(type(config))
    for field in dataclasses.fields(config):
        value, hint = getattr(config, field.name), hints[field.name]
        if not _matches(value, hint):
            raise TypeError(
                f"{type(config).__name__}.{field.name} must be {_name(hint)}, got {value!r} "
                f"({type(value).__name__})"
            )
