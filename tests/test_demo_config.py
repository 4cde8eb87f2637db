"""The demo's settings: gin files, flags and the nested configs they fill."""

import dataclasses
import json

import pytest

from gecko_jax.cli.demo import _demo_config, build_parser
from gecko_jax.fret.generate import GenerateConfig
from gecko_jax.fret.mine import MineConfig
from gecko_jax.recipes.demo.config import DemoConfig, demo_config_from_json
from gecko_jax.recipes.finetune import FinetuneConfig

# The values `gecko-jax demo` ran with when DemoConfig held every setting flat (and
# gin_configs/demo/default.gin spelled them out): each entry is the setting's new place.
DEFAULT_VALUES = {
    "num_passages": 64,
    "fret_run.max_chars": 450,
    "heldout_fraction": 0.25,
    "corpus_seed": 0,
    "fret_run.llm": None,
    "fret_run.llm_kwargs": {},  # was None: both mean the backend's defaults
    "fret_run.max_failed_share": 0.05,
    "generate.max_tokens": 64,
    "generate.temperature": 0.0,
    "generate.max_overlap": None,
    "generate.batch_size": 16,
    "generate.balance_tasks": True,
    "generate.dedup": True,
    "mine.num_candidates": 3,
    "mine.k_th": 3,
    "mine.rrf_k": 0.0,
    "mine.negative": "nth",
    "mine.score_batch_size": 32,
    "mine.recall_sample": 1000,
    "mine.scoring": "joint",
    "mine.fusion": ("query_likelihood", "retriever"),
    "mine.relabel_guard": "unanimous",
    "mine.round_trip_k": 2,
    "mine.relabel_margin": 0.0,
    "mine.negative_fusion": None,
    "mine.false_negative_margin": None,
    "mine.false_negative_scorers": ("query_likelihood", "relevance"),
    "base_model": None,
    "finetune.text_format": "gecko",
    "finetune.mrl_dims": None,
    "finetune.symmetric_sets": ("banking77", "stsb"),
    "finetune.fret_share": 0.5,
    "seeds": (0, 1, 2),
    "finetune.total_steps": 20,
    "finetune.global_batch_size": 8,
    "finetune.learning_rate": 3e-5,
    "finetune.warmup_steps": 3,
    "finetune.same_tower": True,
    "finetune.use_hard_negatives": True,
    "finetune.query_length": 64,
    "finetune.passage_length": 96,
    "finetune.eval_every": 10,
    "finetune.patience": 2,
    "finetune.model_selection": "last",
    "eval_tasks": ("stsb", "banking77", "wiki_retrieval", "wiki_clustering"),
    "eval_limit": 200,
    "eval_seed": 0,
    "eval_max_length": 128,
}
QUALITY_VALUES = {
    **DEFAULT_VALUES,
    "num_passages": 1000,
    "mine.num_candidates": 10,
    "mine.k_th": 10,
    "mine.round_trip_k": 3,
    "mine.false_negative_margin": 0.0,
    "seeds": (0,),
    "finetune.total_steps": 150,
    "finetune.warmup_steps": 15,
    "finetune.eval_every": 50,
}


def _config(*argv: str) -> DemoConfig:
    return _demo_config(build_parser().parse_args(["demo", "--data_dir", "data", *argv]))


def _flat(config: DemoConfig) -> dict:
    values = {}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if dataclasses.is_dataclass(value):
            values.update({f"{field.name}.{k}": v for k, v in dataclasses.asdict(value).items()})
        else:
            values[field.name] = value
    return values


@pytest.mark.parametrize(
    "gin_files, expected",
    [
        ((), DEFAULT_VALUES),
        (("gin_configs/demo/default.gin",), DEFAULT_VALUES),
        (("gin_configs/demo/quality.gin",), QUALITY_VALUES),
    ],
)
def test_gin_files_give_the_demo_its_values(gin_files, expected):
    config = _config(*(arg for name in gin_files for arg in ("--gin_file", name)))
    flat = _flat(config)
    expected = {**expected, "passages_file": None, "data_dir": "data"}
    # The nested seeds are unset: the corpus seed seeds FRet; its encoder and passage count are
    # base_model and num_passages.
    expected |= {"generate.seed": 0, "mine.seed": 0}
    expected |= {"fret_run.encoder": None, "fret_run.max_passages": None}
    assert flat == expected
    assert config.generate_config().seed == config.mine_config(64).seed == config.corpus_seed


def test_flags_override_the_nested_settings():
    config = _config("--steps", "7", "--num_passages", "9", "--eval_limit", "5", "--seeds", "4")
    assert (config.finetune.total_steps, config.num_passages) == (7, 9)
    assert (config.eval_limit, config.seeds, config.data_dir) == (5, (4,), "data")
    assert config.finetune.global_batch_size == DEFAULT_VALUES["finetune.global_batch_size"]


def test_a_wrong_type_in_a_nested_config_fails_before_any_work():
    with pytest.raises(TypeError, match=r"FinetuneConfig.total_steps must be int, got 'many'"):
        _config("--gin_param", "gecko.FinetuneConfig.total_steps = 'many'")
    with pytest.raises(TypeError, match=r"MineConfig.num_candidates must be int"):
        _config("--gin_param", "gecko.MineConfig.num_candidates = 2.5")


def test_the_corpus_seed_seeds_fret_and_only_it():
    config = _config("--gin_param", "gecko.DemoConfig.corpus_seed = 3")
    assert config.generate_config().seed == config.mine_config(64).seed == 3
    with pytest.raises(ValueError, match="corpus_seed"):
        DemoConfig(generate=GenerateConfig(seed=1))


def test_mining_is_capped_at_the_corpus_size():
    config = DemoConfig(mine=MineConfig(num_candidates=10, round_trip_k=3))
    capped = config.mine_config(3)
    assert (capped.num_candidates, capped.round_trip_k) == (3, 2)
    assert config.mine_config(64) == dataclasses.replace(config.mine, seed=config.corpus_seed)


def test_a_saved_config_reads_back_equal():
    config = _config("--gin_file", "gin_configs/demo/quality.gin")
    saved = json.loads(json.dumps(dataclasses.asdict(config)))
    assert demo_config_from_json(saved) == config
    assert isinstance(demo_config_from_json(saved).finetune, FinetuneConfig)


def test_fret_run_settings_the_demo_has_its_own_names_for_are_refused():
    for binding in ("gecko.fret_run.encoder = 'x'", "gecko.fret_run.max_passages = 5"):
        with pytest.raises(ValueError, match="base_model and its passages num_passages"):
            _config("--gin_param", binding)
