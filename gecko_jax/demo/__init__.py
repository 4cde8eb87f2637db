"""The end-to-end demo: FRet on seed passages, a short fine-tune, and a before/after table.

This is the application layer: it ties the FRet pipeline, the seqio tasks, the trainer and the
evaluators together, and nothing below it imports it.
"""

from gecko_jax.demo.config import DemoConfig
from gecko_jax.demo.run import run_demo

__all__ = ["DemoConfig", "run_demo"]
