"""The academic fine-tuning sets and how each becomes (task, query, positive, negative).

The paper lists NQ, HotpotQA, FEVER, MedMCQA, SNLI, MNLI (and MIRACL for the multilingual
model) but not how they were mapped, nor their task descriptions. Our choices, each a
keyword of its mapping function (override with ``dataclasses.replace(spec, to_records=
functools.partial(fn, ...))``):

- Task descriptions are the simplified task types the paper evaluates each set with (its
  Table 9): NQ "question answering", HotpotQA and FEVER "search result", NLI "semantic
  similarity"; MedMCQA and MIRACL (not in Table 9) "question answering". Training with the
  evaluation string keeps the two aligned.
- One record per query: the first gold passage is the positive (DPR's convention).
- NQ and MIRACL (DPR layout, ``Tevatron/wikipedia-nq`` / ``miracl/miracl``): the first mined
  hard negative.
- HotpotQA (distractor setting): the first supporting paragraph is the positive, the first
  distractor paragraph (a title outside the supporting facts) the negative.
- FEVER (BEIR layout: corpus, queries, qrels): a random non-relevant corpus passage, seeded
  by query id (the paper's Table 3 "random from P minus the positive").
- MedMCQA: the correct option is the positive (optionally with the explanation), a random
  wrong option the negative; the answers have no title.
- SNLI / MNLI: premise -> entailed hypothesis, with a contradiction of the same premise as the
  negative; symmetric; premises without both are skipped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from tasks import rng
from tasks.records import Record
from tasks.registry import add_task
from tasks.sources import Table, local_dir

T = TypeVar("T")
Rows = Iterator[dict[str, Any]]

# MIRACL languages with a training split (de and yo have none).
MIRACL_LANGUAGES = (
    "ar",
    "bn",
    "en",
    "es",
    "fa",
    "fi",
    "fr",
    "hi",
    "id",
    "ja",
    "ko",
    "ru",
    "sw",
    "te",
    "th",
    "zh",
)


def pick(items: Sequence[T], how: str, key: rng.Key) -> T | None:
    """One item: ``"first"``, ``"random"`` (fixed by ``key``) or ``"none"``; None if empty."""
    if how not in ("first", "random", "none"):
        raise ValueError(f"expected 'first', 'random' or 'none', got {how!r}")
    if not items or how == "none":
        return None
    return items[0] if how == "first" else items[rng.index(key, 0, len(items))]


def dpr_records(task: str, rows: Rows, negative: str = "first") -> Iterator[Record]:
    """DPR layout: ``query``, ``positive_passages`` / ``negative_passages`` of {title, text}."""
    for row in rows:
        positive = row["positive_passages"][0]
        hard = pick(row.get("negative_passages") or [], negative, (str(row["query"]),))
        yield Record(
            task=task,
            query=row["query"],
            positive_title=positive.get("title") or "",
            positive_text=positive["text"],
            negative_title=(hard or {}).get("title") or "",
            negative_text=hard["text"] if hard else None,
        )


def hotpotqa_records(task: str, rows: Rows, negative: str = "first") -> Iterator[Record]:
    """HF ``hotpot_qa`` distractor rows: ``question``, ``supporting_facts``, ``context``."""
    for row in rows:
        context = row["context"]
        paragraphs = {
            title: " ".join(s.strip() for s in sentences)
            for title, sentences in zip(context["title"], context["sentences"], strict=True)
        }
        supporting = [t for t in dict.fromkeys(row["supporting_facts"]["title"]) if t in paragraphs]
        if not supporting:
            continue
        distractors = [t for t in paragraphs if t not in supporting]
        hard = pick(distractors, negative, (row["id"],))
        yield Record(
            task=task,
            query=row["question"],
            positive_title=supporting[0],
            positive_text=paragraphs[supporting[0]],
            negative_title=hard or "",
            negative_text=paragraphs[hard] if hard else None,
        )


def beir_records(
    task: str, corpus: Rows, queries: Rows, qrels: Rows, negative: str = "random"
) -> Iterator[Record]:
    """BEIR layout: corpus {_id, title, text}, queries {_id, text}, qrels query-id/corpus-id/score.

    The whole corpus is held in memory (FEVER: 5.4M passages, a few GB).
    """
    if negative not in ("random", "none"):
        raise ValueError(f"BEIR negatives are 'random' or 'none', got {negative!r}")
    passages = {str(row["_id"]): (row.get("title") or "", row["text"]) for row in corpus}
    relevant: dict[str, list[str]] = {}
    for row in qrels:
        if float(row["score"]) > 0:
            relevant.setdefault(str(row["query-id"]), []).append(str(row["corpus-id"]))
    ids = list(passages)
    for row in queries:
        query_id = str(row["_id"])
        gold = [doc for doc in relevant.get(query_id, []) if doc in passages]
        if not gold:
            continue
        hard = None
        if negative == "random" and len(ids) > len(gold):
            for attempt in range(100):  # Rejection sampling: gold passages are few.
                candidate = ids[rng.index((query_id,), attempt, len(ids))]
                if candidate not in gold:
                    hard = candidate
                    break
        title, text = passages[gold[0]]
        yield Record(
            task=task,
            query=row["text"],
            positive_title=title,
            positive_text=text,
            negative_title=passages[hard][0] if hard else "",
            negative_text=passages[hard][1] if hard else None,
        )


def medmcqa_records(task: str, rows: Rows, with_explanation: bool = False) -> Iterator[Record]:
    """MedMCQA rows: ``question``, options ``opa``..``opd``, correct index ``cop`` (0-3)."""
    for row in rows:
        options = [str(row[key]).strip() for key in ("opa", "opb", "opc", "opd")]
        correct = int(row["cop"])
        answer = options[correct]
        if with_explanation and (row.get("exp") or "").strip():
            answer = f"{answer}. {row['exp'].strip()}"
        wrong = [o for i, o in enumerate(options) if i != correct and o and o != options[correct]]
        yield Record(
            task=task,
            query=row["question"],
            positive_text=answer,
            negative_text=pick(wrong, "random", (str(row.get("id") or row["question"]),)),
        )


_NLI_LABELS = {
    0: "entailment",
    2: "contradiction",
    "entailment": "entailment",
    "contradiction": "contradiction",
}


def nli_records(task: str, rows: Rows, require_negative: bool = True) -> Iterator[Record]:
    """SNLI / MNLI rows: ``premise``, ``hypothesis``, ``label`` (0/2 or their names)."""
    by_premise: dict[str, dict[str, list[str]]] = {}
    for row in rows:
        label = _NLI_LABELS.get(row["label"])
        if label:
            hypotheses = by_premise.setdefault(row["premise"], {})
            hypotheses.setdefault(label, []).append(row["hypothesis"])
    for premise, hypotheses in by_premise.items():
        contradictions = hypotheses.get("contradiction", [])
        if require_negative and not contradictions:
            continue
        for i, entailed in enumerate(hypotheses.get("entailment", [])):
            yield Record(
                task=task,
                query=premise,
                positive_text=entailed,
                negative_text=contradictions[i % len(contradictions)] if contradictions else None,
            )


@dataclasses.dataclass(frozen=True)
class AcademicSet:
    """A data set: its tables, how rows become records, its description and symmetry.

    ``to_records(task, **rows)`` receives one row iterator per entry of ``tables``. ``group``
    is the mixture group it belongs to (see :mod:`tasks.mixtures`).
    """

    name: str
    task: str
    symmetric: bool
    tables: dict[str, Table]
    to_records: Callable[..., Iterator[Record]]
    group: str = "retrieval"

    @property
    def task_name(self) -> str:
        return f"gecko_ft_{self.name}"


def _rows_table(hf_path: str, required: tuple[str, ...], hf_name: str | None = None) -> dict:
    return {"rows": Table(hf_path, "{split}.jsonl", hf_name, required=required)}


# Required fields per layout.
_DPR = ("query", "positive_passages")
_HOTPOTQA = ("id", "question", "supporting_facts", "context")
_QRELS = ("query-id", "corpus-id", "score")
_MEDMCQA = ("question", "opa", "opb", "opc", "opd", "cop")
_NLI = ("premise", "hypothesis", "label")

ACADEMIC_SETS = {
    spec.name: spec
    for spec in (
        AcademicSet(
            "nq",
            task="question answering",
            symmetric=False,
            tables=_rows_table("Tevatron/wikipedia-nq", _DPR),
            to_records=dpr_records,
        ),
        AcademicSet(
            "hotpotqa",
            task="search result",
            symmetric=False,
            tables=_rows_table("hotpotqa/hotpot_qa", _HOTPOTQA, hf_name="distractor"),
            to_records=hotpotqa_records,
        ),
        AcademicSet(
            "fever",
            task="search result",
            symmetric=False,
            tables={
                "corpus": Table("mteb/fever", "corpus.jsonl", "corpus", "corpus", ("_id", "text")),
                "queries": Table(
                    "mteb/fever", "queries.jsonl", "queries", "queries", ("_id", "text")
                ),
                "qrels": Table("mteb/fever", "qrels/{split}.tsv", "default", required=_QRELS),
            },
            to_records=beir_records,
        ),
        AcademicSet(
            "medmcqa",
            task="question answering",
            symmetric=False,
            tables=_rows_table("openlifescienceai/medmcqa", _MEDMCQA),
            to_records=medmcqa_records,
        ),
        AcademicSet(
            "snli",
            task="semantic similarity",
            symmetric=True,
            tables=_rows_table("stanfordnlp/snli", _NLI),
            to_records=nli_records,
            group="nli",
        ),
        AcademicSet(
            "mnli",
            task="semantic similarity",
            symmetric=True,
            tables=_rows_table("nyu-mll/multi_nli", _NLI),
            to_records=nli_records,
            group="nli",
        ),
    )
}


def miracl_set(language: str) -> AcademicSet:
    """MIRACL's training queries in one language (DPR layout, same mapping as NQ)."""
    return AcademicSet(
        f"miracl_{language}",
        task="question answering",
        symmetric=False,
        tables=_rows_table("miracl/miracl", _DPR, hf_name=language),
        to_records=dpr_records,
        group="miracl",
    )


def register_academic_set(spec: AcademicSet, data_dir: str | None = None) -> str:
    """Registers ``gecko_ft_{name}``: hub rows, or local files under ``data_dir/name``."""
    folder = local_dir(data_dir, spec.name)

    def read(split: str) -> Iterator[Record]:
        rows = {key: table.rows(split, folder) for key, table in spec.tables.items()}
        return spec.to_records(spec.task, **rows)

    return add_task(spec.task_name, read, symmetric=spec.symmetric)
