"""The paper's Table-9 task strings, and which one (and which format) each kind of task gets.

One table serves the evaluators, the mteb adapter and the sentence-transformers export, so a
model is scored, wrapped and exported with the same ``task: {task} | query: ...`` strings.
Kept free of heavy imports: the export reads it without scikit-learn or scipy.
"""

from __future__ import annotations

from typing import NamedTuple

from gecko_jax.text.formats import DEFAULT_QUERY_TASK

SEARCH_RESULT = DEFAULT_QUERY_TASK  # "search result"
QUESTION_ANSWERING = "question answering"
SEMANTIC_SIMILARITY = "semantic similarity"
CLASSIFICATION = "classification"

# Table 9: retrieval sets such as HotpotQA and FEVER are asymmetric "search result" search.
RETRIEVAL_TASK = SEARCH_RESULT
# Table 9: STS and pair classification are symmetric "semantic similarity" tasks.
STS_TASK = SEMANTIC_SIMILARITY
# Table 9: every classification set is the symmetric "classification" task.
CLASSIFICATION_TASK = CLASSIFICATION
# Table 9: every clustering set is the symmetric "search result" task.
CLUSTERING_TASK = SEARCH_RESULT

# Every task string the project trains or evaluates with (NQ-style sets use "question answering").
TASK_STRINGS = (SEARCH_RESULT, QUESTION_ANSWERING, SEMANTIC_SIMILARITY, CLASSIFICATION)


class Instruction(NamedTuple):
    """A task string, and whether documents take the query format too (Table 9's ✓ column)."""

    task: str
    symmetric: bool


# The asymmetric query/document formats with the default task: what ``Encoder`` does unasked.
DEFAULT_INSTRUCTION = Instruction(DEFAULT_QUERY_TASK, symmetric=False)

# By mteb task type (``TaskMetadata.type``), for the types our evaluators cover. Other types
# (Reranking, Summarization, BitextMining, ...) have no evaluator here and get the default.
BY_TASK_TYPE: dict[str, Instruction] = {
    "Retrieval": Instruction(RETRIEVAL_TASK, symmetric=False),
    "STS": Instruction(STS_TASK, symmetric=True),
    "PairClassification": Instruction(STS_TASK, symmetric=True),
    "Classification": Instruction(CLASSIFICATION_TASK, symmetric=True),
    "MultilabelClassification": Instruction(CLASSIFICATION_TASK, symmetric=True),
    "Clustering": Instruction(CLUSTERING_TASK, symmetric=True),
}


def instruction_for(task_type: str | None) -> Instruction:
    """The Table-9 instruction of an mteb task type, or the default for any other type."""
    return BY_TASK_TYPE.get(task_type or "", DEFAULT_INSTRUCTION)
