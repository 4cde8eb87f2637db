"""Every demo setting in one plain dataclass; the CLI fills it from flags and gin."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from gecko_jax.config_types import check_field_types
from gecko_jax.demo.corpus import MAX_PASSAGE_CHARS
from gecko_jax.demo.mixture import SYMMETRIC_SET_FOLDERS
from gecko_jax.fret.mine import MineConfig
from gecko_jax.stages import MAX_FAILED_SHARE

MODEL_SELECTIONS = ("heldout", "last")


def check_training_choices(model_selection: str, symmetric_sets: tuple[str, ...]) -> None:
    """The settings the demo and the ablation plan share, checked where each is built."""
    if model_selection not in MODEL_SELECTIONS:
        raise ValueError(
            f"model_selection must be one of {MODEL_SELECTIONS}, got {model_selection!r}"
        )
    unknown = set(symmetric_sets) - set(SYMMETRIC_SET_FOLDERS)
    if unknown:
        raise ValueError(
            f"unknown symmetric_sets {sorted(unknown)}; known: {list(SYMMETRIC_SET_FOLDERS)}"
        )


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    """Defaults sized for two CPU cores; the README reports what they measured."""

    # Seed passages: a JSONL file of {id, title, text}, or this many Wikipedia extracts that
    # are in none of the evaluation sets.
    passages_file: str | None = None
    num_passages: int = 64
    # Longer seed passages are cut (see corpus.MAX_PASSAGE_CHARS for why this length).
    max_passage_chars: int = MAX_PASSAGE_CHARS
    # Share of the seed passages whose queries are held out: they score each fine-tune.
    heldout_fraction: float = 0.25
    corpus_seed: int = 0
    # FRet: the LLM (a load_llm spec; None: the offline SmolLM2), its backend's constructor
    # arguments (e.g. {"batch_size": 8}; None: the backend's defaults), and its settings.
    llm: str | None = None
    llm_kwargs: Mapping[str, Any] | None = None
    # The share of a FRet stage's LLM calls that may fail before the demo stops (exit 5).
    max_failed_share: float = MAX_FAILED_SHARE
    max_tokens: int = 64
    temperature: float = 0.0
    max_overlap: float | None = None
    num_candidates: int = 3
    negative: str = "nth"
    # "joint": QL and RC from one LLM pass per pair (fret.mine; on the demo's data it picked
    # the separate scorers' positive for 42 of 47 queries, in 53% of the time); "separate".
    scoring: str = "joint"
    # The label guards (fret.guards, MineConfig): RRF members, round-trip filter, when the
    # positive may leave the seed, and the false-negative margin (nats; None: off). Chosen by
    # gecko-rerank-eval (benchmarks/RESULTS.md, "FRet teacher"): SmolLM2-135M's relevance
    # classification ranks far below MiniLM, and RRF(QL, RC) with no guard moved the positive
    # off the right seed for 21 of 53 held-out queries; QL fused with the retriever's rank,
    # moving only when both rank a candidate above the seed, moved 1 of 53.
    fusion: tuple[str, ...] = ("query_likelihood", "retriever")
    relabel_guard: str = "unanimous"
    # With that guard, the default demo's only relabels (3 of 47) were queries unrelated to
    # their seed, which MiniLM ranked last of 3 ("the world's largest city is japan" for
    # "Cargo"): the round trip drops such queries instead of relabelling them.
    round_trip_k: int = 2
    relabel_margin: float = 0.0
    false_negative_margin: float | None = None
    # Student and initial retriever (None: the offline all-MiniLM-L6-v2), the text format it
    # is trained and evaluated with, and its Matryoshka dims (None: the base model's).
    base_model: str | None = None
    text_format: str = "gecko"
    mrl_dims: tuple[int, ...] | None = None
    # Symmetric sets mixed into fine-tuning (gecko_jax.demo.mixture): "banking77"
    # (classification triples, the paper's classification data) and "stsb" (STS Benchmark train
    # pairs scored >= 4, standing in for the paper's NLI), read from data_dir; a set without
    # its folder is left out. FRet gets fret_share of the batches, the sets split the rest
    # (fret_share = 0: the sets alone, a control for what FRet adds).
    symmetric_sets: tuple[str, ...] = ("banking77", "stsb")
    fret_share: float = 0.5
    # Fine-tuning, once per seed.
    seeds: tuple[int, ...] = (0, 1, 2)
    steps: int = 20
    batch_size: int = 8
    learning_rate: float = 3e-5
    warmup_steps: int = 3
    same_tower: bool = True
    use_hard_negatives: bool = True
    query_length: int = 64
    passage_length: int = 96
    eval_every: int = 10
    patience: int = 2
    # Which parameters a fine-tune keeps: "last", the final step of the fixed budget; or
    # "heldout", the best held-out MRR@10 of every eval_every steps (the starting point
    # included), stopping after patience evaluations without a gain. At the default scale the
    # held-out queries start near the ceiling (MRR@10 0.91 over 64 passages), so "heldout"
    # kept the base model and hid a real retrieval gain (README, "What the demo measured").
    model_selection: str = "last"
    # Evaluation: tasks of gecko_jax.evaluation.suite, at most eval_limit examples each.
    eval_tasks: tuple[str, ...] = ("stsb", "banking77", "wiki_retrieval", "wiki_clustering")
    eval_limit: int | None = 200
    eval_seed: int = 0
    # Evaluated texts are cut to this many tokens (None: the model's limit, 256 for MiniLM):
    # encoding Wikipedia articles is most of the evaluation's time on CPU, and the first 128
    # tokens of an article hold what its description is about.
    eval_max_length: int | None = 128
    data_dir: str | None = None

    def __post_init__(self) -> None:
        check_field_types(self)
        if not 0 < self.heldout_fraction < 1:
            raise ValueError(f"heldout_fraction must be in (0, 1), got {self.heldout_fraction}")
        if not self.seeds:
            raise ValueError("seeds must name at least one fine-tuning seed")
        check_training_choices(self.model_selection, self.symmetric_sets)
        if not 0 <= self.fret_share <= 1 or (self.fret_share == 0 and not self.symmetric_sets):
            raise ValueError(
                f"fret_share must be in [0, 1], and 0 only with symmetric_sets (a control "
                f"without FRet), got {self.fret_share}"
            )
        self.mine_config(self.num_candidates)  # checks the FRet settings before any work
        if self.num_passages < 2:
            raise ValueError(f"num_passages must be >= 2, got {self.num_passages}")

    def mine_config(self, num_candidates: int) -> MineConfig:
        """FRet mining settings for a corpus that holds at least ``num_candidates`` passages."""
        return MineConfig(
            num_candidates=num_candidates,
            negative=self.negative,
            k_th=num_candidates,
            seed=self.corpus_seed,
            scoring=self.scoring,
            fusion=self.fusion,
            round_trip_k=min(self.round_trip_k, num_candidates - 1),
            relabel_guard=self.relabel_guard,
            relabel_margin=self.relabel_margin,
            false_negative_margin=self.false_negative_margin,
        )
