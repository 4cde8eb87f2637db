"""What an ablation varies: one ``AblationCell`` per table row group, defaults = the baseline.

The baseline is the demo's Gecko recipe: the top fused candidate as positive (p_1), the last
(p_N) as hard negative, both LLM scorers fused with RRF, the unified text format, same-tower
negatives, and the full embedding. A cell names what it changes; ``Training`` is the model (or,
for separately trained Matryoshka sizes, each model) a cell needs per seed, so cells that need
the same model share one run.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from gecko_jax.core.config_types import check_field_types
from gecko_jax.fret.fusion import LLM_SCORERS, check_members
from gecko_jax.fret.guards import (
    RELABEL_GUARDS,
    check_false_negative_guard,
    check_negative_fusion,
)
from gecko_jax.recipes.finetune import FinetuneConfig, check_training_choices
from gecko_jax.text.formats import DEFAULT_TEXT_FORMAT, check_text_format

# p_1 of the fused ranking (moved from the seed only where ``guard`` allows), or the passage the
# query came from.
POSITIVES = ("llm", "seed")
NEGATIVES = ("none", "random", "nth")  # none, uniform from P \ {p+}, or the last fused (p_N)
BASELINE = "baseline"


def dim_key(dims: int | None) -> str:
    """How an embedding size is named in folders and results: ``full`` or the number."""
    return "full" if dims is None else str(dims)


@dataclasses.dataclass(frozen=True)
class Labels:
    """How a FRet example's positive and hard negative are chosen from its LLM-scored candidates."""

    positive: str = "llm"
    negative: str = "nth"
    # RRF over these members' ranks: the LLM scorers and optionally "retriever".
    reranker: tuple[str, ...] = LLM_SCORERS
    # The relabel guard of an "llm" positive (fret.guards): "none" is the paper's rule.
    guard: str = "none"
    # The members whose RRF orders the hard negatives (None: the reranker's, as in the paper).
    negative_fusion: tuple[str, ...] | None = None
    # The false-negative guard (fret.guards.safe_negative): a hard negative one of these LLM
    # scorers rates within this margin of the positive is replaced; None: no check (the
    # paper's rule).
    false_negative_margin: float | None = None
    false_negative_scorers: tuple[str, ...] = LLM_SCORERS

    def __post_init__(self) -> None:
        if self.positive not in POSITIVES:
            raise ValueError(f"positive must be one of {POSITIVES}, got {self.positive!r}")
        if self.negative not in NEGATIVES:
            raise ValueError(f"negative must be one of {NEGATIVES}, got {self.negative!r}")
        check_members(self.reranker)
        if self.guard not in RELABEL_GUARDS:
            raise ValueError(f"guard must be one of {RELABEL_GUARDS}, got {self.guard!r}")
        check_negative_fusion(self.negative_fusion)
        check_false_negative_guard(self.false_negative_margin, self.false_negative_scorers)


@dataclasses.dataclass(frozen=True)
class Training:
    """One fine-tuned model per seed. ``dims`` are the embedding sizes its loss sums over and it
    is evaluated at (``None``: the full embedding)."""

    labels: Labels
    text_format: str
    same_tower: bool
    dims: tuple[int | None, ...]
    # False: the no-FRet control, trained on the plan's symmetric sets alone (labels unused).
    fret: bool = True

    @property
    def key(self) -> str:
        """A readable folder name, unique per distinct training."""
        labels = self.labels
        dims = "+".join(dim_key(d) for d in self.dims)
        tower = "same_tower" if self.same_tower else "no_same_tower"
        if not self.fret:
            return f"no_fret_{self.text_format}_{tower}_{dims}"
        scorers = "+".join(labels.reranker)
        if labels.guard != "none":
            scorers += f"+guard_{labels.guard}"
        if labels.negative_fusion is not None:
            scorers += "+negative_" + "+".join(labels.negative_fusion)
        if labels.false_negative_margin is not None:
            scorers += f"+false_negative_{labels.false_negative_margin:g}"
            if labels.false_negative_scorers != LLM_SCORERS:
                scorers += "_" + "+".join(labels.false_negative_scorers)
        return f"{labels.positive}-{labels.negative}-{scorers}_{self.text_format}_{tower}_{dims}"

    def finetune_config(self, config: FinetuneConfig, full_dim: int) -> FinetuneConfig:
        """``config`` with this training's tower, loss sizes and, without FRet, no FRet batches.

        The format and sizes are set only where they differ from the defaults, so the label and
        same-tower trainings keep whatever the demo ran with.
        """
        overrides: dict[str, Any] = {"same_tower": self.same_tower}
        if not self.fret:
            overrides["fret_share"] = 0.0
        if self.text_format != DEFAULT_TEXT_FORMAT:
            overrides["text_format"] = self.text_format
        if self.dims != (None,):
            overrides["mrl_dims"] = tuple(full_dim if d is None else d for d in self.dims)
        return dataclasses.replace(config, **overrides)


@dataclasses.dataclass(frozen=True)
class AblationCell:
    """A named setting; it is compared with the cell named ``reference`` at each of its dims.

    ``dims`` lists the embedding sizes the cell reports (``None``: full). With ``mrl`` one model
    is trained with the Matryoshka loss over all of them; without, one model per size, trained
    on that size alone (the "separately trained" arm).
    """

    name: str = BASELINE
    positive: str = "llm"
    negative: str = "nth"
    reranker: tuple[str, ...] = LLM_SCORERS
    guard: str = "none"
    negative_fusion: tuple[str, ...] | None = None
    false_negative_margin: float | None = None
    false_negative_scorers: tuple[str, ...] = LLM_SCORERS
    text_format: str = DEFAULT_TEXT_FORMAT
    same_tower: bool = True
    dims: tuple[int | None, ...] = (None,)
    mrl: bool = True
    reference: str = BASELINE
    # False: the no-FRet control (the plan's symmetric sets only), which shows what FRet adds.
    fret: bool = True

    def __post_init__(self) -> None:
        check_field_types(self)
        check_text_format(self.text_format)
        _ = self.labels  # raises on a bad label setting
        if not self.dims or len(set(self.dims)) != len(self.dims):
            raise ValueError(f"{self.name}: dims must be distinct and non-empty, got {self.dims}")

    @property
    def labels(self) -> Labels:
        """The cell's label fields (gin sets them flat on the cell) as one ``Labels``."""
        values = {field.name: getattr(self, field.name) for field in dataclasses.fields(Labels)}
        return Labels(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})

    def trainings(self) -> list[Training]:
        groups = [self.dims] if self.mrl else [(d,) for d in self.dims]
        return [
            Training(self.labels, self.text_format, self.same_tower, g, self.fret) for g in groups
        ]


@dataclasses.dataclass(frozen=True)
class AblationPlan:
    """The cells to run, each with every seed in ``seeds``."""

    cells: tuple[AblationCell, ...]
    seeds: tuple[int, ...] = (0, 1, 2)
    # "last": every run trains the demo's full step budget and keeps its final parameters, so
    # cells differ only in what they ablate; "heldout": the demo's early stopping, which can
    # hand back the unchanged base model and hide a difference.
    model_selection: str = "last"
    # Symmetric sets mixed into every run's fine-tuning (FinetuneConfig.symmetric_sets). None by
    # default: the labelling ablations compare FRet labels, as the paper's FRet-only models
    # do (Tables 3 and 6), and half the batches from other data would dilute the difference.
    symmetric_sets: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_field_types(self)
        names = [cell.name for cell in self.cells]
        if len(set(names)) != len(names):
            raise ValueError(f"cell names must be unique, got {names}")
        if not self.seeds:
            raise ValueError("seeds must name at least one seed")
        check_training_choices(self.model_selection, self.symmetric_sets)
        if not self.symmetric_sets and not all(cell.fret for cell in self.cells):
            raise ValueError(
                "a cell without FRet trains on the plan's symmetric_sets alone: name at least one"
            )
        unknown = {cell.reference for cell in self.cells} - set(names)
        if unknown:
            raise ValueError(f"references to cells not in the plan: {sorted(unknown)}")

    def finetune_config(self, config: FinetuneConfig) -> FinetuneConfig:
        """A demo's fine-tuning settings with the plan's model selection and symmetric sets."""
        return dataclasses.replace(
            config, model_selection=self.model_selection, symmetric_sets=self.symmetric_sets
        )
