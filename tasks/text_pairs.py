"""Pre-finetuning pairs (the paper's section 3.1): title -> body and question -> answer.

No hard negatives; the task feature goes on the query only (Eq. 1), which the asymmetric
unified format gives: ``task: {task} | query: {text}`` against ``title: {title} | text: ...``.

The offline default pairs come from the Wikipedia lead extracts package (10,033 articles):

- ``gecko_pft_wiki_title``: title -> extract, task "search result" (the web title-body pairs
  of the paper). The passage title is left empty ("none"): it would repeat the query.
- ``gecko_pft_wiki_description``: short description ("1968 film by Stanley Kubrick") ->
  titled extract, task "question answering" (the description is a clue the article answers).

Articles are split by a hash of their id: 5% form a ``validation`` split, held out from
``train`` for evaluation. Web-scale pairs for real runs are defined too (``PAIR_SETS``:
GooAQ question-answer and Reddit title-body pairs from the hub) but are not in the default
mixture, which must work offline.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Iterator

from gecko_jax.data.wiki_extracts import load_wiki_extracts
from tasks.records import Record
from tasks.registry import add_task
from tasks.sources import Table, local_dir

WIKI_SPLITS = ("train", "validation")
_VALIDATION_PERCENT = 5


def wiki_split(article_id: str) -> str:
    """``validation`` for a stable 5% of articles, else ``train``."""
    bucket = zlib.crc32(article_id.encode("utf-8")) % 100
    return "validation" if bucket < _VALIDATION_PERCENT else "train"


def wiki_records(query_field: str, task: str, split: str, path: str | None) -> Iterator[Record]:
    """One record per article of the split that has a non-empty ``query_field``."""
    for article in load_wiki_extracts(path):
        if wiki_split(article.id) != split or not getattr(article, query_field):
            continue
        yield Record(
            task=task,
            query=getattr(article, query_field),
            positive_text=article.text,
            positive_title="" if query_field == "title" else article.title,
        )


@dataclasses.dataclass(frozen=True)
class PairSet:
    """A (query, passage) pair set on the hub, or under ``{data_dir}/{name}/{split}.jsonl``."""

    name: str
    hf_path: str
    query_field: str
    passage_field: str
    task: str
    hf_name: str | None = None

    @property
    def task_name(self) -> str:
        return f"gecko_pft_{self.name}"

    @property
    def table(self) -> Table:
        required = (self.query_field, self.passage_field)
        return Table(self.hf_path, "{split}.jsonl", self.hf_name, required=required)

    def records(self, split: str, folder: str | None) -> Iterator[Record]:
        for row in self.table.rows(split, folder):
            yield Record(
                task=self.task, query=row[self.query_field], positive_text=row[self.passage_field]
            )


PAIR_SETS = (
    PairSet("gooaq", "sentence-transformers/gooaq", "question", "answer", "question answering"),
    PairSet(
        "reddit_title_body",
        "sentence-transformers/reddit-title-body",
        "title",
        "body",
        "search result",
    ),
)


def register_wiki_tasks(path: str | None = None) -> list[str]:
    """Registers the two Wikipedia pair tasks; ``path`` overrides the extracts JSON."""
    return [
        add_task(
            f"gecko_pft_wiki_{field}",
            lambda split, field=field, task=task: wiki_records(field, task, split, path),
            symmetric=False,
            splits=WIKI_SPLITS,
        )
        for field, task in (("title", "search result"), ("description", "question answering"))
    ]


def register_pair_set(spec: PairSet, data_dir: str | None = None) -> str:
    """Registers ``gecko_pft_{name}``: hub rows, or local files under ``data_dir/name``."""
    folder = local_dir(data_dir, spec.name)
    return add_task(spec.task_name, lambda split: spec.records(split, folder), symmetric=False)
