"""seqio tasks and mixtures for Gecko: pre-finetuning pairs, academic and classification sets,
FRet, and deterministic, resumable training batches.

Importing the package registers the default tasks and mixtures (:mod:`tasks.defaults`);
nothing is read until a task is used. Typical use::

    import tasks
    tasks.register_fret("my_fret", "/data/fret/run1/fret.jsonl")
    tasks.add_mixture("my_mixture", {"my_fret": 1.0})
    batcher = tasks.MixtureBatcher(
        "my_mixture", seed=0, global_batch_size=256, tokenizer="tokenizer.json"
    )
    features = batcher.batch(step)   # gecko_jax.text.features.FIELDS, same for every (seed, step)
"""

import tensorflow as tf

# TensorFlow only runs the input pipeline here. Hide accelerators from it so it never claims
# GPU memory that JAX needs (TF would otherwise reserve most of each GPU on first use).
tf.config.set_visible_devices([], "GPU")

from tasks.classification import ClassificationSet  # noqa: E402
from tasks.decontamination import decontaminate  # noqa: E402
from tasks.defaults import register_defaults  # noqa: E402
from tasks.feature_converter import FeatureConverter, FeatureLengths  # noqa: E402
from tasks.fret import register_fret  # noqa: E402
from tasks.input_pipeline import MixtureBatcher  # noqa: E402
from tasks.registry import add_mixture  # noqa: E402
from tasks.sts import StsPairSet, register_sts_pairs  # noqa: E402

__all__ = [
    "ClassificationSet",
    "FeatureConverter",
    "FeatureLengths",
    "MixtureBatcher",
    "StsPairSet",
    "add_mixture",
    "decontaminate",
    "register_defaults",
    "register_fret",
    "register_sts_pairs",
]

register_defaults()
