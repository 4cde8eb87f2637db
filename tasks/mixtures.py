"""Mixture rates: the paper reports none, so these defaults are ours, and documented.

``gecko_unified_finetune`` gives each group of tasks a share of the batches and splits it
evenly among the group's tasks:

============== ===== ==============================================================
group          share tasks
============== ===== ==============================================================
fret           0.5   FRet (the paper's core data: 6.6M of the mixture's examples)
retrieval      0.2   NQ, HotpotQA, FEVER, MedMCQA
nli            0.1   SNLI, MNLI (symmetric; the paper credits them with +1.6 STS)
classification 0.2   the classification sets (the paper's largest gain: +9 MTEB class.)
miracl         0.2   MIRACL, all languages (multilingual mixture only)
============== ===== ==============================================================

Shares are relative (normalised when sampling). Pass other shares, or any task -> rate
mapping to :func:`tasks.registry.add_mixture`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

UNIFIED_SHARES = {"fret": 0.5, "retrieval": 0.2, "nli": 0.1, "classification": 0.2}
MULTILINGUAL_SHARES = {**UNIFIED_SHARES, "miracl": 0.2}


def group_rates(groups: Mapping[str, Sequence[str]], shares: Mapping[str, float]) -> dict:
    """Task -> rate: each group's share split evenly among its tasks."""
    missing = set(groups) - set(shares)
    if missing:
        raise ValueError(f"no share given for task groups {sorted(missing)}")
    return {
        task: shares[group] / len(tasks)
        for group, tasks in groups.items()
        for task in tasks
        if shares[group] > 0
    }
