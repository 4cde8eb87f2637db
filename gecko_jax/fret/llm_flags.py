"""``--llm_arg KEY=VALUE``: LLM backend settings on the command line, for ``gecko-fret`` and
``gecko-fret-beam`` alike (plain argparse, no gin, so the Beam pipeline can import it)."""

from __future__ import annotations

import argparse
import json
from typing import Any


def llm_arg(value: str) -> tuple[str, Any]:
    """``KEY=VALUE`` as (key, value): VALUE is read as JSON (8, 0.5, true, null, [..]), and a
    bare word that is not JSON stays a string, so paths and names need no quotes."""
    key, equals, text = value.partition("=")
    if not equals or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. batch_size=8), got {value!r}")
    try:
        return key, json.loads(text)
    except json.JSONDecodeError as error:
        if text[:1] in ('"', "[", "{"):
            message = f"{key}: {text!r} is not valid JSON ({error})"
            raise argparse.ArgumentTypeError(message) from error
        return key, text


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
