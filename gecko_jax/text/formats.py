"""The text formats a model reads its inputs in, by name, in one place.

``"gecko"`` is the paper's unified format (Appendix B): asymmetric tasks read
``task: {task} | query: {input}`` -> ``title: {title} | text: {target}``, and symmetric tasks put
``task: {task} | query: {target}`` on the target side too. The paper does not say what fills
``{title}`` for an untitled passage; we use the literal ``none`` (as the t5x_retrieval and
Gemini-embedding style prompts do) so the template keeps its shape.

``"plain"`` is Table 7's plain concatenation, ``{task} {input}`` -> ``{title} {target}``; an
untitled passage is its text alone, since there is no template shape to keep. A model records
its format in its config, so it is evaluated in the format it was trained in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

NO_TITLE = "none"
DEFAULT_QUERY_TASK = "search result"
DEFAULT_TEXT_FORMAT = "gecko"


class TextFormat(NamedTuple):
    query: Callable[[str, str], str]  # (text, task) -> the model's input
    document: Callable[[str, str], str]  # (text, stripped title or "") -> the model's input


TEXT_FORMATS: dict[str, TextFormat] = {
    "gecko": TextFormat(
        query=lambda text, task: f"task: {task} | query: {text}",
        document=lambda text, title: f"title: {title or NO_TITLE} | text: {text}",
    ),
    "plain": TextFormat(
        query=lambda text, task: f"{task} {text}",
        document=lambda text, title: f"{title} {text}" if title else text,
    ),
}


def check_text_format(name: str) -> str:
    if name not in TEXT_FORMATS:
        raise ValueError(f"unknown text format {name!r}; known: {sorted(TEXT_FORMATS)}")
    return name


def format_query(
    text: str, task: str = DEFAULT_QUERY_TASK, text_format: str = DEFAULT_TEXT_FORMAT
) -> str:
    return TEXT_FORMATS[check_text_format(text_format)].query(text, task)


def format_document(
    text: str, title: str | None = None, text_format: str = DEFAULT_TEXT_FORMAT
) -> str:
    return TEXT_FORMATS[check_text_format(text_format)].document(text, (title or "").strip())
