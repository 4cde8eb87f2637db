"""Every fine-tuning task yields the unified format on local files of its real schema."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import seqio

import tasks
from tasks.classification import ClassificationSet
from tasks.input_pipeline import materialise

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "tasks"
TINY_INTENTS = ClassificationSet("tiny_intents", "example/tiny_intents")


@pytest.fixture(scope="module", autouse=True)
def fixture_tasks() -> None:
    tasks.register_defaults(
        str(FIXTURES / "data"),
        str(FIXTURES / "fret" / "*" / "fret.jsonl"),
        classification_sets=[TINY_INTENTS],
        miracl_languages=("sw",),
    )


def read(task_name: str) -> list[dict]:
    columns = materialise(seqio.get_mixture_or_task(task_name), "train")
    return [dict(zip(columns, row, strict=True)) for row in zip(*columns.values(), strict=True)]


def texts(example: dict) -> tuple[str, str, str]:
    return (
        example["formatted_query"],
        example["formatted_positive"],
        example["formatted_negative"],
    )


def test_nq_gold_passage_and_first_mined_negative() -> None:
    examples = read("gecko_ft_nq")
    assert len(examples) == 3
    assert texts(examples[0]) == (
        "task: question answering | query: who wrote the declaration of independence",
        "title: United States Declaration of Independence | text: The Declaration was drafted "
        "by the Committee of Five, with Thomas Jefferson writing most of the text.",
        "title: Articles of Confederation | text: The Articles of Confederation was the first "
        "written constitution of the United States.",
    )
    # No mined negative: no negative text, has_negative 0.
    assert examples[2]["has_negative"] == 0 and examples[2]["formatted_negative"] == ""


def test_miracl_uses_the_dpr_mapping_per_language() -> None:
    (example,) = read("gecko_ft_miracl_sw")
    assert texts(example) == (
        "task: question answering | query: Je, ni nani aliyegundua penisilini?",
        "title: Alexander Fleming | text: Alexander Fleming alikuwa mwanasayansi wa Uskoti "
        "aliyegundua penisilini mwaka 1928.",
        "title: Louis Pasteur | text: Louis Pasteur alikuwa mwanakemia na mwanabiolojia wa "
        "Ufaransa.",
    )


def test_hotpotqa_supporting_paragraph_against_a_distractor() -> None:
    first, second = read("gecko_ft_hotpotqa")
    assert texts(first) == (
        "task: search result | query: Were Scott Derrickson and Ed Wood of the same nationality?",
        "title: Scott Derrickson | text: Scott Derrickson (born July 16, 1966) is an American "
        "director, screenwriter and producer. He lives in Los Angeles, California.",
        "title: Ed Wood (film) | text: Ed Wood is a 1994 American biographical period "
        "comedy-drama film. It was directed by Tim Burton.",
    )
    # The negative is never a supporting paragraph ("Shirley Temple" supports the second).
    assert second["formatted_negative"].startswith("title: Meet Corliss Archer | text: ")


def test_fever_beir_relevant_passage_and_random_other_passage() -> None:
    examples = read("gecko_ft_fever")
    assert [e["query"] for e in examples] == [
        "Nikolaj Coster-Waldau worked with the Fox Broadcasting Company.",
        "Roman Atwood is a content creator.",
    ]  # The claim without relevance judgements is left out.
    query, positive, negative = texts(examples[0])
    assert query == (
        "task: search result | query: Nikolaj Coster-Waldau worked with the Fox Broadcasting "
        "Company."
    )
    assert positive == (
        "title: Nikolaj Coster-Waldau | text: Nikolaj William Coster-Waldau is a Danish actor and "
        "producer. He appeared in the Fox television film Virtuality."
    )
    relevant = ("title: Nikolaj Coster-Waldau |", "title: Fox Broadcasting Company |")
    assert negative.startswith("title: ") and not negative.startswith(relevant)
    assert read("gecko_ft_fever") == examples  # Seeded: the same negatives every read.


def test_medmcqa_correct_option_against_a_wrong_one() -> None:
    example = read("gecko_ft_medmcqa")[1]
    assert example["formatted_query"] == (
        "task: question answering | query: Which vitamin is supplied from only animal source:"
    )
    assert example["formatted_positive"] == "title: none | text: Vitamin B12"
    assert example["formatted_negative"] in {
        f"title: none | text: Vitamin {name}" for name in ("C", "B7", "D")
    }


@pytest.mark.parametrize("name", ["snli", "mnli"])
def test_nli_entailment_positive_contradiction_negative_symmetric(name: str) -> None:
    examples = read(f"gecko_ft_{name}")
    expected = {
        "snli": [
            (
                "A person on a horse jumps over a broken down airplane.",
                "A person is outdoors, on a horse.",
                "A person is at a diner, ordering an omelette.",
            )
        ],  # The second premise has no contradiction: skipped.
        "mnli": [
            (
                "Conceptually cream skimming has two basic dimensions - product and geography.",
                "Cream skimming has product and geography as its dimensions.",
                "Cream skimming has nothing to do with geography.",
            ),
            (
                "you know during the season and i guess at at your level uh you lose them to "
                "the next level",
                "You lose the things to the following level if the people recall.",
                "They never get promoted to the next level.",
            ),
        ],
    }[name]
    prefix = "task: semantic similarity | query: "
    assert [texts(e) for e in examples] == [tuple(prefix + t for t in row) for row in expected]


def test_mixture_rates_follow_the_documented_shares() -> None:
    mixture = seqio.get_mixture_or_task("gecko_unified_finetune")
    rates = {t.name: mixture.get_rate(t) for t in mixture.tasks}
    assert rates == pytest.approx(
        {
            "gecko_fret": 0.5,
            "gecko_ft_nq": 0.05,
            "gecko_ft_hotpotqa": 0.05,
            "gecko_ft_fever": 0.05,
            "gecko_ft_medmcqa": 0.05,
            "gecko_ft_snli": 0.05,
            "gecko_ft_mnli": 0.05,
            "gecko_ft_cls_tiny_intents": 0.2,
        }
    )
    multilingual = seqio.get_mixture_or_task("gecko_unified_finetune_multilingual")
    assert multilingual.get_rate(seqio.get_mixture_or_task("gecko_ft_miracl_sw")) == 0.2
    fret_only = seqio.get_mixture_or_task("fret_only")
    assert [t.name for t in fret_only.tasks] == ["gecko_fret"]
    assert np.isclose(sum(rates.values()), 1.0)
