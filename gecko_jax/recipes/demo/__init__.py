"""The end-to-end demo: FRet on seed passages, a short fine-tune, and a before/after table."""

from gecko_jax.recipes.demo.config import DemoConfig
from gecko_jax.recipes.demo.run import run_demo

__all__ = ["DemoConfig", "run_demo"]
