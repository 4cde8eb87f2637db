"""Deterministic, resumable batches: mixture rates, single-task batches, processes, hosts."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import seqio

import tasks
from gecko_jax.core.assets import minilm_path
from gecko_jax.text.features import FIELDS, text_hash, validate_batch
from tasks.classification import ClassificationSet

MINILM = minilm_path()

TESTS = Path(__file__).resolve().parent
FIXTURES = TESTS / "fixtures" / "tasks"
BATCH = 16


def register_fixture_tasks() -> None:
    """The default tasks and mixtures, pointed at the fixtures (also run by the child process)."""
    tasks.register_defaults(
        str(FIXTURES / "data"),
        str(FIXTURES / "fret" / "*" / "fret.jsonl"),
        classification_sets=[ClassificationSet("tiny_intents", "example/tiny_intents")],
        miracl_languages=("sw",),
    )


def make_batcher(**kwargs) -> tasks.MixtureBatcher:
    kwargs = {"seed": 7, "global_batch_size": BATCH, **kwargs}
    return tasks.MixtureBatcher("gecko_unified_finetune", **kwargs, tokenizer=MINILM)


@pytest.fixture(scope="module")
def child(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[subprocess.Popen, Path]]:
    """A second process computing one batch; started first, as its imports take a while."""
    out = tmp_path_factory.mktemp("child") / "batch.npz"
    script = (
        "import sys, numpy as np; sys.path.insert(0, sys.argv[1]); "
        "import test_tasks_input_pipeline as t; t.register_fixture_tasks(); "
        "np.savez(sys.argv[2], **t.make_batcher(single_task_batches=False).batch(11))"
    )
    env = {**os.environ, "PYTHONPATH": str(TESTS.parent), "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen(
        [sys.executable, "-c", script, str(TESTS), str(out)], cwd=TESTS.parent, env=env
    )
    yield process, out
    if process.poll() is None:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def batcher(child: tuple[subprocess.Popen, Path]) -> tasks.MixtureBatcher:
    register_fixture_tasks()
    return make_batcher()


@pytest.fixture(scope="module")
def mixed(batcher: tasks.MixtureBatcher) -> tasks.MixtureBatcher:
    return make_batcher(single_task_batches=False)


def assert_same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert set(a) == set(b) == set(FIELDS)
    for name in FIELDS:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_batch_holds_the_trainer_features_of_the_selected_texts(
    mixed: tasks.MixtureBatcher,
) -> None:
    batch, examples = mixed.batch(4), mixed.examples(4)
    assert validate_batch(batch) == BATCH
    assert batch["query_input_ids"].shape == (BATCH, 64)
    assert batch["positive_input_ids"].shape == batch["negative_input_ids"].shape == (BATCH, 256)
    tokenizer = mixed._converter.tokenizer
    for row, example in enumerate(examples):
        assert mixed.task_names[batch["task_id"][row]] == example["task_name"]
        (ids,) = tokenizer.encode([example["formatted_query"]], 64)
        assert batch["query_input_ids"][row, : len(ids)].tolist() == ids
        assert batch["query_attention_mask"][row].sum() == len(ids)
        assert batch["query_text_hash"][row] == text_hash(example["formatted_query"])
        assert batch["positive_text_hash"][row] == text_hash(example["formatted_positive"])
        has_negative = bool(example["formatted_negative"])
        assert batch["has_negative"][row] == has_negative
        assert batch["negative_attention_mask"][row].any() == has_negative
    assert batch["example_mask"].tolist() == [1] * BATCH


def test_single_task_batches_hold_one_task(batcher: tasks.MixtureBatcher) -> None:
    for step in range(50):
        task_ids, _ = batcher.select(step)
        assert len(set(task_ids.tolist())) == 1
    assert len(set(batcher.batch(3)["task_id"].tolist())) == 1


def within_sampling_error(counts: np.ndarray, rates: np.ndarray, draws: int) -> None:
    expected = rates * draws
    sigma = np.sqrt(draws * rates * (1 - rates))
    assert np.all(np.abs(counts - expected) <= 4 * sigma), (counts, expected)


def test_mixture_rates_hold_within_sampling_error(
    batcher: tasks.MixtureBatcher, mixed: tasks.MixtureBatcher
) -> None:
    # Single-task batches: 3000 batches, each task's share of them follows its rate.
    tasks_drawn = np.array([batcher.select(step)[0][0] for step in range(3000)])
    counts = np.bincount(tasks_drawn, minlength=len(batcher.rates))
    within_sampling_error(counts, batcher.rates, 3000)
    assert counts[batcher.task_names.index("gecko_fret")] > 1300  # Rate 0.5, not uniform.
    # Mixed batches: 3200 rows, and every batch gets floor or ceil of rate * batch size.
    per_step = np.array(
        [np.bincount(mixed.select(s)[0], minlength=len(mixed.rates)) for s in range(200)]
    )
    within_sampling_error(per_step.sum(axis=0), mixed.rates, 200 * BATCH)
    assert np.all(np.abs(per_step - mixed.rates * BATCH) < 1)


def test_resuming_mid_stream_gives_the_remaining_batches(batcher: tasks.MixtureBatcher) -> None:
    uninterrupted = list(itertools.islice(batcher.from_step(0), 8))
    resumed = make_batcher()  # A fresh process state: nothing cached.
    for expected, batch in zip(uninterrupted[5:], resumed.from_step(5), strict=False):
        assert_same(expected, batch)
    assert_same(uninterrupted[2], resumed.batch(2))  # Going back works too.


def test_host_slices_make_up_the_global_batch(mixed: tasks.MixtureBatcher) -> None:
    hosts = [
        make_batcher(single_task_batches=False, shard_info=seqio.ShardInfo(index, 2))
        for index in range(2)
    ]
    parts = [host.batch(9) for host in hosts]
    assert all(validate_batch(part) == BATCH // 2 for part in parts)
    assert_same(mixed.batch(9), {k: np.concatenate([p[k] for p in parts]) for k in FIELDS})
    with pytest.raises(ValueError, match="not divisible by 3 shards"):
        make_batcher(shard_info=seqio.ShardInfo(0, 3))


def test_every_example_is_drawn_once_per_epoch(batcher: tasks.MixtureBatcher) -> None:
    fret = tasks.MixtureBatcher(
        "gecko_fret", seed=1, global_batch_size=8, tokenizer=MINILM
    )  # 24 examples.
    epochs = [np.concatenate([fret.select(s)[1] for s in range(e * 3, e * 3 + 3)]) for e in (0, 1)]
    assert sorted(epochs[0]) == sorted(epochs[1]) == list(range(24))
    assert not np.array_equal(epochs[0], epochs[1])  # Each epoch has its own order.
    other_seed = tasks.MixtureBatcher("gecko_fret", seed=2, global_batch_size=8, tokenizer=MINILM)
    assert not np.array_equal(other_seed.select(0)[1], fret.select(0)[1])


def test_evaluation_texts_are_removed_before_sampling(batcher: tasks.MixtureBatcher) -> None:
    eval_texts = [
        "Who wrote the  Declaration of Independence",  # An NQ training query.
        "Roman Bernard Atwood is an American YouTube personality and prankster.",  # FEVER gold.
    ]
    tasks.add_mixture("test_decontamination", {"gecko_ft_nq": 1.0, "gecko_ft_fever": 1.0})
    clean = tasks.MixtureBatcher(
        "test_decontamination", seed=0, global_batch_size=4, eval_texts=eval_texts, tokenizer=MINILM
    )
    assert clean.decontamination_counts == {"gecko_ft_fever": 1, "gecko_ft_nq": 1}
    queries = Counter(e["query"] for s in range(50) for e in clean.examples(s))
    assert "who wrote the declaration of independence" not in queries
    assert "Roman Atwood is a content creator." not in queries
    assert "how many moons does mars have" in queries


def test_feature_lengths_truncate_each_field_and_count_it() -> None:
    converter = tasks.FeatureConverter(
        MINILM, lengths=tasks.FeatureLengths(query=8, positive=6, negative=5)
    )
    batch = converter(
        ["task: search result | query: a query that is longer than eight tokens", "short"],
        ["title: none | text: a passage", "title: none | text: p"],
        ["title: none | text: a negative passage", "unused"],
        np.array([1, 0]),
        np.array([3, 3]),
    )
    assert validate_batch(batch) == 2
    lengths = [batch[f"{f}_input_ids"].shape[1] for f in ("query", "positive", "negative")]
    assert lengths == [8, 6, 5]
    assert batch["query_input_ids"][0, -1] == 102  # [SEP] survives truncation.
    assert batch["query_attention_mask"][1].tolist() == [1, 1, 1, 0, 0, 0, 0, 0]
    assert batch["negative_attention_mask"][1].sum() == 0  # No negative: all padding.
    assert batch["task_id"].tolist() == [3, 3]
    # Every text but "short" is cut; the unused negative is never tokenized.
    stats = converter.tokenizer.truncation
    assert (stats.texts_seen, stats.texts_truncated) == (5, 4)


def test_same_seed_and_step_give_the_same_batch_in_another_process(
    mixed: tasks.MixtureBatcher, child: tuple[subprocess.Popen, Path]
) -> None:
    process, out = child
    assert process.wait(timeout=300) == 0
    with np.load(out) as theirs:
        assert_same(mixed.batch(11), dict(theirs))
    assert not np.array_equal(
        mixed.batch(11)["query_input_ids"], mixed.batch(12)["query_input_ids"]
    )
