"""Research ablations (paper Tables 3, 6, 7, Matryoshka, same-tower negatives) on demo FRet.

Built on the demo: one FRet run is relabelled offline for every cell, so all cells share its
queries, candidates and LLM scores. Gin stays in :mod:`gecko_jax.cli.ablate`.
"""

from gecko_jax.recipes.ablations.cells import AblationCell, AblationPlan, Labels, Training
from gecko_jax.recipes.ablations.labels import relabel

__all__ = ["AblationCell", "AblationPlan", "Labels", "Training", "relabel"]
