"""Fine-tune the student on FRet through seqio, scored on held-out queries.

The training examples are the FRet rows of the training passages (a registered seqio task,
``tasks.register_fret``), mixed with symmetric sets when their files are there
(:mod:`gecko_jax.demo.mixture`), batched by ``tasks.MixtureBatcher``, exactly as a large run
reads them. The held-out queries score each evaluation: they search all seed passages for
the passage each was written from (MRR@10), a target that does not depend on the LLM reranker
being right. The kept parameters (the last step, or the best held-out step with early
stopping) are written as an export, so a killed run that resumes still knows them.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gecko_jax.demo.config import DemoConfig
from gecko_jax.demo.mixture import register_training_data
from gecko_jax.encoder import Encoder, read_model_folder
from gecko_jax.evaluation.retrieval import exact_top_k, single_relevant_metrics
from gecko_jax.fret.mine import embed_queries
from gecko_jax.fret.passages import Passage
from gecko_jax.fret.pipeline import GENERATED, read_jsonl
from gecko_jax.models.config import DualEncoderConfig
from gecko_jax.training.config import TrainConfig
from gecko_jax.training.early_stopping import EarlyStopping
from gecko_jax.training.trainer import train

logger = logging.getLogger(__name__)

HELDOUT_METRIC = "mrr@10"
BEST_MODEL = "best_model"


@dataclasses.dataclass(frozen=True)
class FineTuneResult:
    """The kept model: best on the held-out queries, or the last step (``model_selection``)."""

    model_dir: Path
    best_step: int
    best_heldout: float
    history: list[dict[str, float]]


def heldout_queries(fret_dir: Path, heldout_ids: Collection[str]) -> list[dict[str, Any]]:
    """The generated (task, query, passage_id) rows of the held-out passages."""
    heldout = set(heldout_ids)
    return [row for row in read_jsonl(fret_dir / GENERATED) if row["passage_id"] in heldout]


class HeldoutRetrieval:
    """MRR@10 of held-out generated queries for the passages they were written from, searched
    among all seed passages: the demo's model selection and report."""

    def __init__(self, rows: Sequence[Mapping[str, Any]], passages: Sequence[Passage]):
        if not rows:
            raise ValueError("no held-out FRet queries: use more seed passages")
        self.rows = list(rows)
        self.passages = list(passages)
        position = {p.id: i for i, p in enumerate(self.passages)}
        self.targets = np.array([position[row["passage_id"]] for row in self.rows])

    def __call__(self, encoder: Encoder) -> dict[str, float]:
        queries = embed_queries(encoder, self.rows)
        documents = encoder.encode_documents(
            [p.text for p in self.passages], [p.title for p in self.passages]
        )
        ranked, _ = exact_top_k(queries, documents, k=10)
        return single_relevant_metrics(ranked, self.targets)


def _model_config(base_model: Path, config: DemoConfig) -> DualEncoderConfig:
    model_config, _, _ = read_model_folder(base_model)
    overrides: dict[str, Any] = {
        "max_length": max(config.query_length, config.passage_length),
        "text_format": config.text_format,
    }
    if config.mrl_dims is not None:
        overrides["mrl_dims"] = config.mrl_dims
    return DualEncoderConfig.from_dict({**model_config.to_dict(), **overrides})


def fine_tune(
    fret_file: Path,
    heldout: HeldoutRetrieval,
    base_model: Path,
    workdir: Path,
    seed: int,
    config: DemoConfig,
    eval_texts: Iterable[str] = (),
) -> FineTuneResult:
    """Train one seed in ``workdir`` (resuming if it holds a checkpoint); returns the best."""
    from tasks import FeatureLengths, MixtureBatcher

    model_config = _model_config(base_model, config)
    base = Encoder.from_pretrained(base_model)
    training_data = register_training_data(
        fret_file,
        config.symmetric_sets,
        config.fret_share,
        config.data_dir,
        config.text_format,
        seed,
    )
    batcher = MixtureBatcher(
        training_data,
        seed=seed,
        global_batch_size=config.batch_size,
        lengths=FeatureLengths(config.query_length, config.passage_length, config.passage_length),
        tokenizer=base.tokenizer,
        eval_texts=eval_texts,
    )
    train_config = TrainConfig(
        model=model_config,
        total_steps=config.steps,
        global_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        warmup_steps=config.warmup_steps,
        same_tower=config.same_tower,
        use_hard_negatives=config.use_hard_negatives,
        seed=seed,
        init_from=str(base_model),
        eval_every=config.eval_every,
        checkpoint_every=config.eval_every,
        keep_checkpoints=1,
        async_checkpointing=False,
        log_every=1,
    )

    # The trained format and dims, at the base model's inference length.
    inference_config = DualEncoderConfig.from_dict(
        {**model_config.to_dict(), "max_length": base.config.max_length}
    )

    def encoder_for(params: Any) -> Encoder:
        return Encoder(inference_config, params, base.tokenizer, base.tokenizer_file)

    evaluated: dict[int, dict[str, float]] = {}

    def evaluate(params: Any, step: int) -> dict[str, float]:
        evaluated[step] = metrics = heldout(encoder_for(params))
        logger.info("seed %d step %d held-out %s", seed, step, metrics)
        return metrics

    def keep_best(params: Any, step: int) -> None:
        encoder_for(params).save_pretrained(workdir / BEST_MODEL)

    if config.model_selection == "last":
        # A fixed budget: held-out evaluations are only reported, the final parameters kept.
        trained = train(train_config, batcher.batch, workdir, eval_fn=evaluate)
        step = int(trained.state.step)
        final = evaluated.get(step) or evaluate(trained.state.params, step)
        value = final[HELDOUT_METRIC]
        keep_best(trained.state.params, step)
        history = [{"step": s, "value": m[HELDOUT_METRIC]} for s, m in sorted(evaluated.items())]
        return FineTuneResult(workdir / BEST_MODEL, step, value, history)
    stopper = EarlyStopping(HELDOUT_METRIC, config.patience, keep_best)
    train(train_config, batcher.batch, workdir, eval_fn=evaluate, early_stopping=stopper)
    best = stopper.best
    assert best is not None  # the starting point is always evaluated
    return FineTuneResult(workdir / BEST_MODEL, int(best["step"]), best["value"], stopper.history)
