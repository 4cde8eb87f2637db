"""``--llm_arg KEY=VALUE``: LLM backend settings on the command line, for ``gecko-fret`` and
``gecko-fret-beam`` alike (plain argparse, no gin, so the Beam pipeline can import it)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from typing import Any

from gecko_jax.llm import check_llm_kwargs

# Python's spellings too: read as a bare word, "False" would be a (truthy) string.
_PYTHON_LITERALS = {"True": True, "False": False, "None": None}


def llm_arg(value: str) -> tuple[str, Any]:
    """``KEY=VALUE`` as (key, value): VALUE is read as JSON (8, 0.5, true, null, [..]) or as
    Python's True, False and None, and a bare word that is neither stays a string, so paths
    and names need no quotes."""
    key, equals, text = value.partition("=")
    if not equals or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. batch_size=8), got {value!r}")
    if text in _PYTHON_LITERALS:
        return key, _PYTHON_LITERALS[text]
    try:
        return key, json.loads(text)
    except json.JSONDecodeError as error:
        if text[:1] in ('"', "[", "{"):
            message = f"{key}: {text!r} is not valid JSON ({error})"
            raise argparse.ArgumentTypeError(message) from error
        return key, text


def share(value: str) -> float:
    """A share flag (``--max_failed_share``): a number in [0, 1]."""
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 0 <= number <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {value!r}")
    return number


def check_llm_args(
    parser: argparse.ArgumentParser, spec: str, llm_kwargs: Mapping[str, Any]
) -> None:
    """Exit with a usage error, not a traceback after minutes of work, for a bad ``--llm`` spec
    or an ``--llm_arg`` key its backend does not take."""
    try:
        check_llm_kwargs(spec, llm_kwargs)
    except (TypeError, ValueError) as error:
        parser.error(str(error))


def add_llm_arg(parser: argparse.ArgumentParser) -> None:
    """``--llm_arg KEY=VALUE``, repeatable; the last value of a key wins."""
    parser.add_argument(
        "--llm_arg",
        type=llm_arg,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an argument of the LLM backend's constructor, e.g. batch_size=8 (repeatable)",
    )
