"""What a recipe's fine-tune reads: its FRet file, mixed with symmetric sets whose files are there.

FRet alone teaches asymmetric search; on its own it moved the demo's STS-B and Banking77 scores
down (README, "What the demo measured"). The paper keeps symmetric tasks up with NLI and
classification data in its unified mixture (§3.3); offline, the demo has Banking77
classification triples and STS Benchmark train pairs, read from the evaluation's data folder.
Both are in-domain for the demo's STS-B and Banking77 evaluations (their test texts are
removed from training), and the report says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from gecko_jax.data.banking77 import BANKING77_FOLDER
from gecko_jax.data.stsb import STSB_FOLDER

# Demo set name -> its folder under the data folder (the evaluation reads the same folders).
SYMMETRIC_SET_FOLDERS: Mapping[str, str] = {"banking77": BANKING77_FOLDER, "stsb": STSB_FOLDER}
# One fixed FRet task name: the batcher seeds each task's draw order with its name, so the order
# depends on the seed and the examples alone. Runs over one FRet file in two folders train
# identically, and ablation cells over relabelled copies see their queries in the same order.
FRET_TASK = "gecko_demo_fret"
MIXTURE = "gecko_demo_mixture"


def missing_symmetric_sets(names: tuple[str, ...], data_dir: str | None) -> dict[str, str]:
    """Requested sets that cannot be mixed in, with the reason (left out, not an error)."""
    if data_dir is None:
        return dict.fromkeys(names, "no data folder (--data_dir or GECKO_DATA_DIR)")
    return {
        name: f"{Path(data_dir) / SYMMETRIC_SET_FOLDERS[name]} not found"
        for name in names
        if not (Path(data_dir) / SYMMETRIC_SET_FOLDERS[name]).is_dir()
    }


def register_training_data(
    fret_file: Path,
    names: tuple[str, ...],
    fret_share: float,
    data_dir: str | None,
    text_format: str,
    seed: int,
) -> str:
    """The seqio task (FRet alone) or mixture a fine-tune reads, registered under fixed names.

    FRet gets ``fret_share`` of the batches (none at 0) and the available symmetric sets split
    the rest; ``seed`` draws the classification triples.
    """
    from tasks import StsPairSet, add_mixture, register_fret, register_sts_pairs
    from tasks.classification import classification_set, register_classification_set

    fret = register_fret(FRET_TASK, str(fret_file), text_format=text_format)
    available = [name for name in names if name not in missing_symmetric_sets(names, data_dir)]
    if not available:
        if fret_share == 0:
            raise ValueError(
                f"fret_share 0 trains on symmetric sets only, and none of {names} "
                f"has its data under {data_dir}"
            )
        return fret
    register = {
        "banking77": lambda: register_classification_set(
            classification_set("banking77"), data_dir, seed, text_format
        ),
        "stsb": lambda: register_sts_pairs(StsPairSet(), data_dir, text_format),
    }
    share = (1.0 - fret_share) / len(available)
    rates = {register[name](): share for name in available}
    if fret_share > 0:
        rates[fret] = fret_share
    add_mixture(MIXTURE, rates)
    return MIXTURE
