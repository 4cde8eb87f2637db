"""The dual-encoder trainer: sharded train step, GradCache, optimiser, checkpoints, metrics."""
