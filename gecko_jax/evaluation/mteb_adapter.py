"""Any gecko_jax ``Encoder`` as an mteb 2.x encoder, with Gecko's formats and Table-9 tasks.

``mteb.evaluate(MtebEncoder(encoder), tasks)`` then scores a model exactly as our evaluators
would. mteb asks for texts batch by batch, with a prompt type (query, document or none) and
the task's metadata. The adapter formats them with ``gecko_jax.text.instructions``, the
table our evaluators use:

- asymmetric tasks (Retrieval): queries get ``task: {task} | query: {text}``, and documents
  ``title: {title} | text: {body}`` from mteb's separate title and body;
- symmetric tasks (STS, classification, clustering, ...): every text, documents included, gets
  the query format. mteb joins a document's title and body with a space, as our retrieval
  evaluator does for symmetric sets.

mteb's own task prompts (``TaskMetadata.prompt``) are not used: Gecko was trained on its Table-9
strings. Task types with no evaluator here get the default ``search result`` formats; give a
task a string of its own with ``instructions={"NQ": Instruction("question answering", False)}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import jax
import numpy as np
from mteb.models.abs_encoder import AbsEncoder
from mteb.models.model_meta import ModelMeta, ScoringFunction
from mteb.types import PromptType

from gecko_jax.text.instructions import Instruction, instruction_for

if TYPE_CHECKING:
    from mteb.abstasks.task_metadata import TaskMetadata
    from mteb.types import BatchedInput
    from torch.utils.data import DataLoader

    from gecko_jax.encoder import Encoder


class MtebEncoder(AbsEncoder):
    """Wraps an ``Encoder`` for ``mteb.evaluate``; ``name`` must read ``organisation/model``."""

    def __init__(
        self,
        encoder: Encoder,
        name: str = "gecko_jax/encoder",
        revision: str | None = None,
        instructions: Mapping[str, Instruction] | None = None,
    ) -> None:
        self.model = encoder
        self.instructions = dict(instructions or {})
        self.mteb_model_meta = ModelMeta(
            loader=None,
            name=name,
            revision=revision,
            release_date=None,
            languages=None,
            n_parameters=sum(x.size for x in jax.tree_util.tree_leaves(encoder.params)),
            memory_usage_mb=None,
            max_tokens=encoder.config.max_length,
            embed_dim=encoder.embedding_dim,
            license=None,
            open_weights=None,
            public_training_code=None,
            public_training_data=None,
            framework=["JAX"],
            similarity_fn_name=ScoringFunction.COSINE,
            use_instructions=True,
            training_datasets=None,
        )

    def instruction(self, task_metadata: TaskMetadata) -> Instruction:
        """The task's own entry in ``instructions``, else its type's Table-9 instruction."""
        return self.instructions.get(task_metadata.name) or instruction_for(task_metadata.type)

    def encode(
        self,
        inputs: DataLoader[BatchedInput],
        *,
        task_metadata: TaskMetadata,
        hf_split: str,
        hf_subset: str,
        prompt_type: PromptType | None = None,
        **kwargs: Any,
    ) -> np.ndarray:
        """Unit-norm float32 embeddings of every text in ``inputs``, in order."""
        del hf_split, hf_subset  # one model for every split and language
        options = {
            "batch_size": kwargs.get("batch_size", 64),
            "show_progress": kwargs.get("show_progress_bar"),
        }
        batches = list(inputs)
        task, symmetric = self.instruction(task_metadata)
        if prompt_type == PromptType.document and not symmetric:
            bodies = [text for batch in batches for text in batch.get("body", batch["text"])]
            titles = [
                title
                for batch in batches
                for title in batch.get("title", [None] * len(batch["text"]))
            ]
            return self.model.encode_documents(bodies, titles, **options)
        texts = [text for batch in batches for text in batch["text"]]
        return self.model.encode_queries(texts, task=task, **options)
