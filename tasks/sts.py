"""Semantic-similarity pairs (STS Benchmark train) as symmetric contrastive records.

A pair that annotators scored at least ``min_score`` (of 5) becomes (query, positive), both in
the symmetric ``task: semantic similarity | query: ...`` format; in-batch positives and the
same-tower queries are its negatives (no hard negative). It plays the part the paper gives NLI
(entailment as the positive, §3.3): symmetric data that keeps STS from drifting while the
model learns asymmetric retrieval from FRet. The paper does not train on STS-B; a model
trained with this task is in-domain for the STS Benchmark, and says so where it reports it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from gecko_jax.data.sources import resolve_set
from gecko_jax.data.stsb import STSB_FOLDER, STSPairs, load_stsb
from gecko_jax.text.formats import DEFAULT_TEXT_FORMAT
from gecko_jax.text.instructions import STS_TASK
from tasks.records import Record
from tasks.registry import add_task


@dataclasses.dataclass(frozen=True)
class StsPairSet:
    """STS Benchmark pairs: the official files under ``{data_dir}/stsbenchmark``, else their
    hub copy (:func:`gecko_jax.data.sources.resolve_set`)."""

    min_score: float = 4.0
    task: str = STS_TASK
    name: str = "stsb"

    @property
    def task_name(self) -> str:
        return f"gecko_ft_sts_{self.name}"


def similar_pair_records(pairs: STSPairs, min_score: float, task: str) -> Iterator[Record]:
    """One record per pair scored at least ``min_score``, blank and repeated pairs skipped."""
    seen: set[tuple[str, str]] = set()
    for (first, second), score in zip(pairs.pairs, pairs.scores, strict=True):
        pair = (first.strip(), second.strip())
        if score >= min_score and all(pair) and pair not in seen:
            seen.add(pair)
            yield Record(task=task, query=pair[0], positive_text=pair[1])


def register_sts_pairs(
    spec: StsPairSet = StsPairSet(),
    data_dir: str | None = None,
    text_format: str = DEFAULT_TEXT_FORMAT,
) -> str:
    """Registers ``gecko_ft_sts_{name}``, read from ``data_dir`` or the hub copy when read."""

    def read(split: str) -> Iterator[Record]:
        pairs = load_stsb(resolve_set(STSB_FOLDER, data_dir), split)
        return similar_pair_records(pairs, spec.min_score, spec.task)

    return add_task(spec.task_name, read, symmetric=True, text_format=text_format)
