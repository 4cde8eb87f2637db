"""The fixed FRet prompts (query generation, query likelihood, relevance classification).

The paper does not publish its prompts, so these are ours. They are versioned: bump
``PROMPT_VERSION`` on any edit, and the manifest records ``prompt_hashes()`` so two FRet runs
can be told apart. The scored prompts are raw text (``LLM.score`` takes strings); generation
uses chat messages so instruct models get their chat template.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

PROMPT_VERSION = "fret-prompts-v2"

# Many diverse task descriptions (paper: a source of diversity). The first four are the most
# frequent FRet tasks (Table 4); the first three strings are verbatim from the paper (Table 5).
TASK_TYPES: dict[str, str] = {
    "question answering": "Given a query, find a passage that has the answer to the query.",
    "search result": "Given a query, find a passage that might show up as a search result.",
    "fact checking": (
        "Given a query, find a passage that allows you to check whether the query is true or not."
    ),
    "sentence similarity": "Given a sentence, find a passage that expresses a similar meaning.",
    "keyword search": "Given a few keywords, find a passage about the topic they describe.",
    "definition": "Given a term, find a passage that explains what it means.",
    "how-to": "Given a request for instructions or an explanation, find a passage that helps.",
    "comparison": "Given a question comparing two things, find a passage that informs it.",
    "opinion": "Given a claim or opinion, find a passage with evidence for or against it.",
    "entity lookup": "Given a short description of a person, place or thing, find its passage.",
}

# Few-shot examples whose queries share few words with their passages, so a small model sees
# abstractive queries (paraphrase, question about one aspect) rather than copied phrases.
FEW_SHOT: list[dict[str, str]] = [
    {
        "passage": "The Eiffel Tower was constructed from 1887 to 1889 as the entrance arch "
        "to the 1889 World's Fair in Paris.",
        "task": TASK_TYPES["question answering"],
        "query": "how old is the famous iron landmark in france",
    },
    {
        "passage": "Photosynthesis converts light energy into chemical energy stored in "
        "glucose, releasing oxygen as a by-product.",
        "task": TASK_TYPES["fact checking"],
        "query": "plants give off oxygen when they make food from sunlight",
    },
    {
        "passage": "The Great Barrier Reef, off the coast of Queensland, is the world's "
        "largest coral reef system, composed of over 2,900 individual reefs.",
        "task": TASK_TYPES["search result"],
        "query": "biggest reef australia snorkeling",
    },
    {
        "passage": "Insulin is a hormone produced by the pancreas that regulates the amount "
        "of glucose in the blood.",
        "task": TASK_TYPES["sentence similarity"],
        "query": "A gland near the stomach makes a substance that controls blood sugar.",
    },
]

QG_SYSTEM = (
    "You write search data. Read a passage and write one query that a person might type for a "
    "retrieval task, whose answer is in the passage. Use your own words: do not copy phrases "
    "from the passage. Keep the query short. Possible tasks:\n"
    + "".join(f"- {description}\n" for description in TASK_TYPES.values())
    + "Answer with JSON only."
)

# Generation stops at the first "}", which ends the flat JSON answer: a small model that rambles
# on (extra keys, a repeated query) still yields a parsable object. Backends drop the stop string.
QG_STOP = "}"

QL_INSTRUCTION = "Each passage below is followed by a query that a user wrote to find it.\n\n"
RC_INSTRUCTION = (
    "Judge whether the passage answers or is relevant to the query. Answer Yes or No.\n\n"
)
RC_LABEL = " Yes"
# Joint scoring reads QL and RC off one sequence: joint_context(passage), then " " + query,
# JOINT_SEPARATOR (conditioned on, not scored), then RC_LABEL.
JOINT_INSTRUCTION = (
    "Each passage below is followed by a query a user wrote, and whether the passage answers or "
    "is relevant to the query (Yes or No).\n\n"
)
JOINT_SEPARATOR = "\nRelevant:"
# Few-shot pairs for the scored prompts; the RC shots include a "No" so the label is informative.
SCORE_SHOTS: list[tuple[str, str, str]] = [
    (FEW_SHOT[0]["passage"], FEW_SHOT[0]["query"], "Yes"),
    (FEW_SHOT[1]["passage"], FEW_SHOT[2]["query"], "No"),
    (FEW_SHOT[3]["passage"], FEW_SHOT[3]["query"], "Yes"),
]


def _qg_user(passage: str, task_type: str | None) -> str:
    """A given task is not asked back: the answer is the query alone, so a small model spends
    its tokens on the query instead of copying a task description (or cutting it short)."""
    if task_type is None:
        return (
            f"Passage: {passage}\nPick the task that fits the passage best. Answer "
            '{"task": "<task description>", "query": "<query>"}'
        )
    return f'Passage: {passage}\nTask: "{TASK_TYPES[task_type]}"\nAnswer {{"query": "<query>"}}'


def _qg_answer(task: str, query: str, task_given: bool) -> str:
    return json.dumps({"query": query} if task_given else {"task": task, "query": query})


def query_generation_messages(passage: str, task_type: str | None = None) -> list[dict[str, str]]:
    """Chat messages asking for one (task, query) as JSON; ``task_type`` forces a task, and then
    the answer holds the query only (the shots answer the same way)."""
    if task_type is not None and task_type not in TASK_TYPES:
        raise ValueError(f"unknown task type {task_type!r}; known: {list(TASK_TYPES)}")
    given = task_type is not None
    messages = [{"role": "system", "content": QG_SYSTEM}]
    for shot in FEW_SHOT:
        task_type_of_shot = next(k for k, v in TASK_TYPES.items() if v == shot["task"])
        user = _qg_user(shot["passage"], task_type_of_shot if given else None)
        messages.append({"role": "user", "content": user})
        answer = _qg_answer(shot["task"], shot["query"], given)
        messages.append({"role": "assistant", "content": answer})
    messages.append({"role": "user", "content": _qg_user(passage, task_type)})
    return messages


def ql_context(passage: str) -> str:
    """Context for QL(q, p) = log p(query | passage); the scored continuation is " " + query."""
    shots = "".join(
        f"Passage: {p}\nQuery: {q}\n\n" for p, q, label in SCORE_SHOTS if label == "Yes"
    )
    return f"{QL_INSTRUCTION}{shots}Passage: {passage}\nQuery:"


def _labelled_shots() -> str:
    return "".join(
        f"Passage: {p}\nQuery: {q}\nRelevant: {label}\n\n" for p, q, label in SCORE_SHOTS
    )


def rc_context(query: str, passage: str) -> str:
    """Context for RC(q, p) = log p(" Yes" | query, passage); the continuation is ``RC_LABEL``."""
    return f"{RC_INSTRUCTION}{_labelled_shots()}Passage: {passage}\nQuery: {query}\nRelevant:"


def joint_context(passage: str) -> str:
    """Context of joint scoring: QL is log p(" " + query | it), RC is log p(``RC_LABEL`` | it,
    " " + query, ``JOINT_SEPARATOR``), from one sequence (the RC shots teach both)."""
    return f"{JOINT_INSTRUCTION}{_labelled_shots()}Passage: {passage}\nQuery:"


def joint_parts(query: str) -> tuple[str, str, str]:
    """The parts scored after :func:`joint_context`: QL's, the unscored separator, RC's."""
    return " " + query, JOINT_SEPARATOR, RC_LABEL


def prompt_hashes() -> dict[str, str]:
    """sha256 of each template, rendered on fixed placeholders, for the run manifest."""
    texts: dict[str, Any] = {
        "query_generation": query_generation_messages("{passage}"),
        "query_generation_given_task": query_generation_messages("{passage}", "definition"),
        "query_likelihood": ql_context("{passage}"),
        "relevance_classification": [rc_context("{query}", "{passage}"), RC_LABEL],
        "joint": [joint_context("{passage}"), *joint_parts("{query}")],
    }
    return {
        name: hashlib.sha256(json.dumps(text, sort_keys=True).encode("utf-8")).hexdigest()
        for name, text in texts.items()
    }


_JSON_OBJECT = re.compile(r"\{.*?\}", re.DOTALL)
_STRING = r'"((?:[^"\\]|\\.)*)"'
# A complete "task" then "query" pair (or a lone "query") at the start of an object that goes on
# (extra keys) and is cut at the token limit: what was asked for is whole, so it is kept.
_PAIR_PREFIX = re.compile(
    r'\{\s*"task"\s*:\s*' + _STRING + r'\s*,\s*"query"\s*:\s*' + _STRING + r"\s*,"
)
_QUERY_PREFIX = re.compile(r'\{\s*"query"\s*:\s*' + _STRING + r"\s*,")
# A lone query with unescaped quotes inside (``{"query": "The term "x" means y"}``), or a bare
# JSON string: small models write both; the outermost quotes delimit the query.
_LOOSE_QUERY = re.compile(r'^\s*(?:\{\s*"query"\s*:\s*)?"(.+)"\s*\}?\s*$', re.DOTALL)


def _pair(task: Any, query: Any) -> tuple[str, str] | None:
    if isinstance(task, str) and isinstance(query, str) and task.strip() and query.strip():
        return task.strip(), query.strip()
    return None


def parse_generation(text: str, task: str | None = None) -> tuple[str, str] | None:
    """(task, query) from the first JSON object in ``text`` with the asked keys as non-empty
    strings: ``task`` and ``query``, or, when ``task`` was given in the prompt, ``query`` alone.

    Tolerates code fences and chatter around the object, and an object cut short after what was
    asked for; anything else is None.
    """
    for match in _JSON_OBJECT.finditer(text):
        try:
            obj = json.loads(match.group(0))
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and (pair := _pair(task or obj.get("task"), obj.get("query"))):
            return pair
    prefix = (_PAIR_PREFIX if task is None else _QUERY_PREFIX).search(text)
    if prefix is None:
        loose = _LOOSE_QUERY.match(text) if task is not None else None
        return _pair(task, loose.group(1)) if loose else None
    try:
        fields = [json.loads(f'"{group}"') for group in prefix.groups()]
    except json.JSONDecodeError:
        return None
    return _pair(*([task] if task is not None else []), *fields)
