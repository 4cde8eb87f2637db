"""Every demo setting in one plain dataclass, nesting the configs of the stages it drives; the
CLI fills it from flags and gin (``gin_configs/demo/default.gin``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from gecko_jax.core.config_types import check_field_types
from gecko_jax.fret.generate import GenerateConfig
from gecko_jax.fret.mine import MineConfig
from gecko_jax.fret.run_settings import RunSettings
from gecko_jax.recipes.demo.corpus import MAX_PASSAGE_CHARS
from gecko_jax.recipes.finetune import FinetuneConfig


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    """The demo's own settings; FRet's and fine-tuning's are the nested configs. The demo's
    values of those come from gin (``gin_configs/demo/default.gin``, which includes
    ``gin_configs/fret/cpu_smollm2.gin``); the README reports what they measured."""

    # Seed passages: a JSONL file of {id, title, text}, or this many Wikipedia extracts that
    # are in none of the evaluation sets.
    passages_file: str | None = None
    num_passages: int = 64
    # Share of the seed passages whose queries are held out: they score each fine-tune.
    heldout_fraction: float = 0.25
    # Draws the seed passages and the held-out split, and seeds FRet's generation and mining
    # (the demo's one corpus seed: the nested configs' own ``seed`` stays unset).
    corpus_seed: int = 0
    # FRet as a whole (gecko.fret_run): the LLM (None: the offline SmolLM2) and its backend's
    # constructor arguments, the length seed passages are cut to (see corpus.MAX_PASSAGE_CHARS
    # for why 450), the share of a stage's LLM calls that may fail before the demo stops (exit
    # 5). Its encoder and passage count are the demo's base_model and num_passages.
    fret_run: RunSettings = dataclasses.field(
        default_factory=lambda: RunSettings(max_chars=MAX_PASSAGE_CHARS)
    )
    generate: GenerateConfig = dataclasses.field(default_factory=GenerateConfig)
    # num_candidates is capped at the number of seed passages (round_trip_k below it).
    mine: MineConfig = dataclasses.field(default_factory=MineConfig)
    # Student and initial retriever (None: the offline all-MiniLM-L6-v2).
    base_model: str | None = None
    # Fine-tuning, once per seed.
    finetune: FinetuneConfig = dataclasses.field(default_factory=FinetuneConfig)
    seeds: tuple[int, ...] = (0, 1, 2)
    # Evaluation: tasks of gecko_jax.evaluation.suite, at most eval_limit examples each.
    eval_tasks: tuple[str, ...] = ("stsb", "banking77", "wiki_retrieval", "wiki_clustering")
    eval_limit: int | None = 200
    eval_seed: int = 0
    # Evaluated texts are cut to this many tokens (None: the model's limit, 256 for MiniLM):
    # encoding Wikipedia articles is most of the evaluation's time on CPU, and the first 128
    # tokens of an article hold what its description is about.
    eval_max_length: int | None = 128
    # Holds the evaluation sets and the symmetric training sets (stsbenchmark/, banking77/).
    data_dir: str | None = None

    def __post_init__(self) -> None:
        check_field_types(self)
        if not 0 < self.heldout_fraction < 1:
            raise ValueError(f"heldout_fraction must be in (0, 1), got {self.heldout_fraction}")
        if not self.seeds:
            raise ValueError("seeds must name at least one fine-tuning seed")
        if self.num_passages < 2:
            raise ValueError(f"num_passages must be >= 2, got {self.num_passages}")
        if self.fret_run.encoder is not None or self.fret_run.max_passages is not None:
            raise ValueError(
                "the demo's FRet encoder is its base_model and its passages num_passages: set "
                "those, not fret_run.encoder or fret_run.max_passages"
            )
        for name, config in (("generate", self.generate), ("mine", self.mine)):
            if config.seed != type(config).seed:
                raise ValueError(
                    f"{name}.seed is the demo's corpus_seed: set corpus_seed, not "
                    f"{type(config).__name__}.seed (got {config.seed})"
                )

    def generate_config(self) -> GenerateConfig:
        """FRet's generation settings, seeded with the corpus seed."""
        return dataclasses.replace(self.generate, seed=self.corpus_seed)

    def mine_config(self, num_passages: int) -> MineConfig:
        """FRet's mining settings for a corpus of ``num_passages``, seeded with the corpus seed:
        no more candidates than passages, and the round trip's k below that."""
        num_candidates = min(self.mine.num_candidates, num_passages)
        return dataclasses.replace(
            self.mine,
            num_candidates=num_candidates,
            seed=self.corpus_seed,
            round_trip_k=min(self.mine.round_trip_k, num_candidates - 1),
        )


def demo_config_from_json(saved: Mapping[str, Any]) -> DemoConfig:
    """The config a demo saved in its ``results.json`` (JSON lists back to tuples)."""

    def build(cls: type, values: Mapping[str, Any]) -> Any:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})

    nested = {
        "fret_run": RunSettings,
        "generate": GenerateConfig,
        "mine": MineConfig,
        "finetune": FinetuneConfig,
    }
    flat = {k: v for k, v in saved.items() if k not in nested}
    return build(DemoConfig, {**flat, **{k: build(cls, saved[k]) for k, cls in nested.items()}})
