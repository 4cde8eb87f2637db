"""Pre-finetuning pairs: the task feature on the query only (Eq. 1), offline by default."""

from __future__ import annotations

from pathlib import Path

import seqio

from gecko_jax.data.wiki_extracts import load_wiki_extracts
from tasks.input_pipeline import materialise
from tasks.text_pairs import PAIR_SETS, register_pair_set, register_wiki_tasks, wiki_split

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "tasks" / "data"


def read(task_name: str, split: str = "train") -> dict:
    return materialise(seqio.get_mixture_or_task(task_name), split)


def test_wikipedia_pairs_from_the_installed_extracts() -> None:
    title_task, description_task = register_wiki_tasks()
    articles = load_wiki_extracts()
    train = [a for a in articles if wiki_split(a.id) == "train"]
    titles = read(title_task)
    assert len(titles["query"]) == len(train)
    assert titles["formatted_query"][0] == f"task: search result | query: {train[0].title}"
    # The passage title would repeat the query, so it gets the placeholder.
    assert titles["formatted_positive"][0] == f"title: none | text: {train[0].text}"

    described = [a for a in train if a.description]
    descriptions = read(description_task)
    assert len(descriptions["query"]) == len(described)
    assert descriptions["formatted_query"][0] == (
        f"task: question answering | query: {described[0].description}"
    )
    assert descriptions["formatted_positive"][0] == (
        f"title: {described[0].title} | text: {described[0].text}"
    )
    for columns in (titles, descriptions):  # Eq. 1: no task on the passage, no negatives.
        assert not any(p.startswith("task:") for p in columns["formatted_positive"])
        assert not columns["has_negative"].any()


def test_validation_split_is_a_disjoint_five_percent() -> None:
    title_task, _ = register_wiki_tasks()
    train, validation = set(read(title_task)["query"]), set(read(title_task, "validation")["query"])
    assert not train & validation
    assert 0.03 < len(validation) / (len(train) + len(validation)) < 0.07


def test_web_pair_sets_on_local_files_of_the_hub_schema() -> None:
    gooaq, reddit = (read(register_pair_set(spec, str(FIXTURES))) for spec in PAIR_SETS)
    assert gooaq["formatted_query"][0] == (
        "task: question answering | query: is toprol xl the same as metoprolol?"
    )
    assert gooaq["formatted_positive"][0] == (
        "title: none | text: Metoprolol succinate is also known by the brand name Toprol XL. It "
        "is the extended-release form of metoprolol."
    )
    assert reddit["formatted_query"][1] == (
        "task: search result | query: My tomato leaves are turning yellow"
    )
    assert reddit["formatted_positive"][1].startswith("title: none | text: Yellow lower leaves")
