"""seqio tasks and mixtures for Gecko: pre-finetuning pairs, academic and classification sets,
FRet, and deterministic, resumable training batches.

Importing the package registers the default tasks and mixtures (:mod:`tasks.defaults`);
nothing is read until a task is used. Typical use::

    import tasks
    tasks.register_fret("my_fret", "/data/fret/run1/fret.jsonl")
    tasks.add_mixture("my_mixture", {"my_fret": 1.0})
    batcher = tasks.MixtureBatcher("my_mixture", seed=0, global_batch_size=256)
    features = batcher.batch(step)   # gecko_jax.features.FIELDS, same for every (seed, step)
"""

from tasks.classification import ClassificationSet
from tasks.decontamination import decontaminate
from tasks.defaults import register_defaults
from tasks.feature_converter import FeatureConverter, FeatureLengths
from tasks.fret import register_fret
from tasks.input_pipeline import MixtureBatcher
from tasks.registry import add_mixture

__all__ = [
    "ClassificationSet",
    "FeatureConverter",
    "FeatureLengths",
    "MixtureBatcher",
    "add_mixture",
    "decontaminate",
    "register_defaults",
    "register_fret",
]

register_defaults()
