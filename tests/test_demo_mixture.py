"""A recipe's fine-tuning data: FRet plus the symmetric sets whose folders exist."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import seqio

import tasks
from gecko_jax.core.assets import minilm_path
from gecko_jax.recipes.finetune import FinetuneConfig
from gecko_jax.recipes.mixture import (
    FRET_TASK,
    MIXTURE,
    missing_symmetric_sets,
    register_training_data,
)

MINILM = minilm_path()

TESTS = Path(__file__).resolve().parent
FRET = TESTS / "fixtures" / "tasks" / "fret" / "run1" / "fret.jsonl"
SHARED_DATA = TESTS.parents[1] / "shared" / "data"


def test_sets_without_their_folder_are_left_out_with_the_reason(tmp_path: Path) -> None:
    names = ("banking77", "stsb")
    assert set(missing_symmetric_sets(names, None)) == set(names)
    (tmp_path / "banking77").mkdir()
    missing = missing_symmetric_sets(names, str(tmp_path))
    assert list(missing) == ["stsb"] and "stsbenchmark" in missing["stsb"]
    assert register_training_data(FRET, names, 0.5, None, "gecko", 0) == FRET_TASK


@pytest.mark.skipif(not (SHARED_DATA / "banking77").is_dir(), reason="../shared/data absent")
def test_fret_gets_its_share_and_the_sets_split_the_rest() -> None:
    name = register_training_data(FRET, ("banking77", "stsb"), 0.6, str(SHARED_DATA), "gecko", 0)
    assert name == MIXTURE
    mixture = seqio.get_mixture_or_task(name)
    rates = {task.name: mixture.get_rate(task) for task in mixture.tasks}
    assert rates == pytest.approx(
        {FRET_TASK: 0.6, "gecko_ft_cls_banking77": 0.2, "gecko_ft_sts_stsb": 0.2}
    )
    # fret_share 0: the control without FRet.
    control = seqio.get_mixture_or_task(
        register_training_data(FRET, ("banking77", "stsb"), 0.0, str(SHARED_DATA), "gecko", 0)
    )
    assert {task.name: control.get_rate(task) for task in control.tasks} == pytest.approx(
        {"gecko_ft_cls_banking77": 0.5, "gecko_ft_sts_stsb": 0.5}
    )


def test_a_control_without_fret_needs_a_symmetric_set(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fret_share"):
        FinetuneConfig(fret_share=0.0, symmetric_sets=())
    with pytest.raises(ValueError, match="none of"):
        register_training_data(FRET, ("stsb",), 0.0, str(tmp_path), "gecko", 0)


def test_one_fret_file_in_two_folders_trains_on_the_same_batches(tmp_path: Path) -> None:
    """The draw order depends on the seed and the examples, not on where the file lies."""
    batches = []
    for folder in ("run_a", "elsewhere/run_b"):
        copy = tmp_path / folder / "fret_train.jsonl"
        copy.parent.mkdir(parents=True)
        shutil.copyfile(FRET, copy)
        name = register_training_data(copy, (), 1.0, None, "gecko", 0)
        batcher = tasks.MixtureBatcher(name, seed=3, global_batch_size=4, tokenizer=MINILM)
        batches.append([batcher.batch(step) for step in range(6)])
    for first, second in zip(*batches, strict=True):
        for field in first:
            np.testing.assert_array_equal(first[field], second[field], err_msg=field)
