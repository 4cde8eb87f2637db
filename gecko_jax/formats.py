"""The unified text formats of the paper's Appendix B, in one place.

Asymmetric tasks: ``task: {task} | query: {input}`` -> ``title: {title} | text: {target}``.
Symmetric tasks put ``task: {task} | query: {target}`` on the target side too. The paper does not
say what fills ``{title}`` for an untitled passage; we use the literal ``none`` (as the
t5x_retrieval and Gemini-embedding style prompts do) so the template keeps its shape.
"""

from __future__ import annotations

NO_TITLE = "none"
DEFAULT_QUERY_TASK = "search result"


def format_query(text: str, task: str = DEFAULT_QUERY_TASK) -> str:
    return f"task: {task} | query: {text}"


def format_document(text: str, title: str | None = None) -> str:
    title = title.strip() if title else ""
    return f"title: {title or NO_TITLE} | text: {text}"
