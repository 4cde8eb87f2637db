"""The default registry: every task and the mixtures, registered when ``tasks`` is imported.

Nothing is read at registration; a task reads its files or hub data when first used, so a
missing source fails then, with an error naming it. Two environment variables point the
defaults at local data:

- ``GECKO_DATA_DIR``: read the academic, classification and web pair sets from
  ``$GECKO_DATA_DIR/{name}/`` (``{split}.jsonl``; Banking77 ``{split}.csv``; FEVER in BEIR
  layout; STS Benchmark's official ``stsbenchmark/sts-{split}.csv``) instead of the Hugging
  Face hub. The folder names are the sets' ``name`` fields.
- ``GECKO_FRET_FILES``: the glob of FRet files (default ``~/gecko_data/fret/*/fret*.jsonl``:
  each run folder's ``fret.jsonl``, or the shards ``gecko-fret-beam`` writes).

Call :func:`register_defaults` again to re-point them from Python (tests do, at fixtures).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from gecko_jax.fret.records import FRET_FILES
from tasks.academic import (
    ACADEMIC_SETS,
    MIRACL_LANGUAGES,
    AcademicSet,
    miracl_set,
    register_academic_set,
)
from tasks.classification import (
    DEFAULT_CLASSIFICATION_SETS,
    ClassificationSet,
    register_classification_set,
)
from tasks.fret import register_fret
from tasks.mixtures import MULTILINGUAL_SHARES, UNIFIED_SHARES, group_rates
from tasks.registry import add_mixture
from tasks.sts import StsPairSet, register_sts_pairs
from tasks.text_pairs import PAIR_SETS, register_pair_set, register_wiki_tasks

FRET_TASK = "gecko_fret"
DEFAULT_FRET_PATTERN = "~/gecko_data/fret/*/" + FRET_FILES
PRE_FINETUNE = "gecko_pre_finetune"
UNIFIED_FINETUNE = "gecko_unified_finetune"
UNIFIED_FINETUNE_MULTILINGUAL = "gecko_unified_finetune_multilingual"
FRET_ONLY = "fret_only"


def register_defaults(
    data_dir: str | None = None,
    fret_pattern: str | None = None,
    *,
    classification_sets: Sequence[ClassificationSet] = DEFAULT_CLASSIFICATION_SETS,
    academic_sets: Mapping[str, AcademicSet] = ACADEMIC_SETS,
    miracl_languages: Sequence[str] = MIRACL_LANGUAGES,
    wiki_path: str | None = None,
    shares: Mapping[str, float] = UNIFIED_SHARES,
    multilingual_shares: Mapping[str, float] = MULTILINGUAL_SHARES,
    seed: int = 0,
) -> None:
    """(Re-)registers every default task and mixture.

    ``data_dir`` and ``fret_pattern`` default to ``$GECKO_DATA_DIR`` (else the hub) and
    ``$GECKO_FRET_FILES`` (else ``DEFAULT_FRET_PATTERN``); ``seed`` fixes the classification
    triples. Mixtures: ``gecko_pre_finetune`` (the two Wikipedia pair tasks, equal rates),
    ``gecko_unified_finetune`` and ``..._multilingual`` (rates from ``shares``, see
    :mod:`tasks.mixtures`), ``fret_only`` (the paper's zero-shot FRet-only model). STS
    Benchmark pairs (``gecko_ft_sts_stsb``, :mod:`tasks.sts`) are registered in no mixture.
    """
    data_dir = data_dir or os.environ.get("GECKO_DATA_DIR") or None
    fret_pattern = fret_pattern or os.environ.get("GECKO_FRET_FILES") or DEFAULT_FRET_PATTERN

    wiki = register_wiki_tasks(wiki_path)
    for pair_set in PAIR_SETS:
        register_pair_set(pair_set, data_dir)
    groups: dict[str, list[str]] = {"fret": [register_fret(FRET_TASK, fret_pattern)]}
    for spec in (*academic_sets.values(), *(miracl_set(lang) for lang in miracl_languages)):
        groups.setdefault(spec.group, []).append(register_academic_set(spec, data_dir))
    groups["classification"] = [
        register_classification_set(spec, data_dir, seed) for spec in classification_sets
    ]
    register_sts_pairs(StsPairSet(), data_dir)  # In no mixture: the paper does not train on it.
    multilingual = groups.pop("miracl", [])

    add_mixture(PRE_FINETUNE, dict.fromkeys(wiki, 1.0))
    add_mixture(UNIFIED_FINETUNE, group_rates(groups, shares))
    add_mixture(
        UNIFIED_FINETUNE_MULTILINGUAL,
        group_rates({**groups, "miracl": multilingual}, multilingual_shares),
    )
    add_mixture(FRET_ONLY, {FRET_TASK: 1.0})
