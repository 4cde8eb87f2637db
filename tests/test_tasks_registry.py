"""Registration is repeatable, mixtures exist by name, and data flows one way."""

from __future__ import annotations

import importlib
from pathlib import Path

import seqio

import tasks
from tasks.academic import MIRACL_LANGUAGES
from tasks.classification import DEFAULT_CLASSIFICATION_SETS

GECKO_JAX = Path(__file__).resolve().parents[1] / "gecko_jax"


def test_default_mixtures_are_registered_with_their_documented_rates() -> None:
    importlib.reload(tasks)  # Importing twice re-registers without duplicate-name errors.
    mixtures = {
        name: seqio.get_mixture_or_task(name)
        for name in (
            "gecko_pre_finetune",
            "gecko_unified_finetune",
            "gecko_unified_finetune_multilingual",
            "fret_only",
        )
    }
    assert mixtures["gecko_pre_finetune"].rate_per_task_name == {
        "gecko_pft_wiki_description": 1.0,
        "gecko_pft_wiki_title": 1.0,
    }
    assert mixtures["fret_only"].rate_per_task_name == {"gecko_fret": 1.0}
    unified = mixtures["gecko_unified_finetune"].rate_per_task_name
    assert len(unified) == 1 + 6 + len(DEFAULT_CLASSIFICATION_SETS)
    assert unified["gecko_fret"] == 0.5 and unified["gecko_ft_nq"] == 0.05
    assert unified["gecko_ft_cls_banking77"] == 0.2 / len(DEFAULT_CLASSIFICATION_SETS)
    multilingual = mixtures["gecko_unified_finetune_multilingual"].rate_per_task_name
    assert multilingual[f"gecko_ft_miracl_{MIRACL_LANGUAGES[0]}"] == 0.2 / len(MIRACL_LANGUAGES)


def test_re_registering_a_task_updates_the_mixtures_that_use_it(tmp_path: Path) -> None:
    tasks.register_defaults()
    task = seqio.get_mixture_or_task("gecko_fret")
    replacement = tasks.register_fret("gecko_fret", str(tmp_path / "*.jsonl"))
    new_task = seqio.get_mixture_or_task(replacement)
    assert new_task is not task
    for name in ("fret_only", "gecko_unified_finetune"):
        (fret,) = [t for t in seqio.get_mixture_or_task(name).tasks if t.name == "gecko_fret"]
        assert fret is new_task
