"""The notebooks run top to bottom in a fresh kernel at toy sizes, and report real numbers.

Each notebook reads its sizes from ``GECKO_NB_*`` variables and ends with a cell that prints
one JSON line of key numbers; the tests check those. The kernel gets a single CPU device (the
eight forced by conftest.py are for the sharding tests) and runs in a temporary folder.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
CELL_TIMEOUT_S = 900  # a guard against hangs; the LLM cell takes minutes on a loaded CPU


def run_notebook(name: str, cwd: Path, sizes: dict[str, int]) -> nbformat.NotebookNode:
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    env = {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": "--xla_force_host_platform_device_count=1",
        **{key: str(value) for key, value in sizes.items()},
    }
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(cwd)}},
    )
    client.execute(env=env)
    return notebook


def code_cells(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def summary(notebook: nbformat.NotebookNode) -> dict:
    """The JSON line that the last cell prints."""
    outputs = code_cells(notebook)[-1].outputs
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    return json.loads(text.strip().splitlines()[-1])


def check_suite(results: dict, data_dir_tasks_ran: bool) -> None:
    """Every metric in its range; the Wikipedia tasks always run (their data is offline)."""
    assert set(results) == {"stsb", "banking77", "wiki_retrieval", "wiki_clustering"}
    for task in ("wiki_retrieval", "wiki_clustering"):
        assert "skipped" not in results[task], results[task]
    for task in ("stsb", "banking77"):
        assert ("skipped" not in results[task]) == data_dir_tasks_ran, results[task]
    for task, metrics in results.items():
        for metric, value in metrics.items():
            if metric != "skipped":
                low = -1.0 if task == "stsb" else 0.0
                assert low <= value <= 1.0, (task, metric, value)


def data_dir_present() -> bool:
    from gecko_jax.data.sources import default_data_dir

    folder = default_data_dir()
    return folder is not None and (Path(folder) / "stsbenchmark").is_dir()


@pytest.mark.slow
def test_quickstart(tmp_path):
    sizes = {"GECKO_NB_PASSAGES": 20, "GECKO_NB_EVAL_LIMIT": 12}
    result = summary(run_notebook("quickstart.ipynb", tmp_path, sizes))
    assert result["embedding_shape"] == [2, 384]
    assert result["matryoshka_shape"] == [2, 128]
    assert result["articles"] == 20 and result["index_backend"] == "exact"
    # Descriptions find their own article among 20 almost always.
    assert 0.5 <= result["recall_at_1"] <= 1.0
    check_suite(result["suite"], data_dir_present())
    assert result["suite"]["wiki_retrieval"]["ndcg@10"] > 0.5


@pytest.mark.slow
def test_fret_walkthrough(tmp_path):
    steps = 2
    sizes = {
        "GECKO_NB_PASSAGES": 6,
        "GECKO_NB_CANDIDATES": 3,
        "GECKO_NB_STEPS": steps,
        "GECKO_NB_BATCH_SIZE": 4,
        "GECKO_NB_EVAL_LIMIT": 8,
    }
    notebook = run_notebook("fret_walkthrough.ipynb", tmp_path, sizes)
    result = summary(notebook)
    assert result["passages"] == 6
    # One FRet record per kept query; at least two, for a training and a held-out split.
    assert 2 <= result["fret_records"] == result["kept_queries"] == result["generated_rows"]
    assert result["num_candidates"] == 3
    assert 0 <= result["positive_not_seed"] <= result["fret_records"]
    assert 0 <= result["best_step"] <= steps and 0.0 <= result["best_heldout_mrr"] <= 1.0
    assert len(result["losses"]) == steps and all(map(math.isfinite, result["losses"]))
    data_dir_ran = data_dir_present()
    for name in ("base", "fine-tuned"):
        check_suite(result["results"][name], data_dir_ran)
    if result["best_step"] == 0:  # early stopping kept the base model's parameters
        base, tuned = result["results"]["base"], result["results"]["fine-tuned"]
        assert tuned["wiki_retrieval"] == pytest.approx(base["wiki_retrieval"], abs=1e-5)
    assert (tmp_path / "fret_walkthrough" / "fret" / "manifest.json").is_file()  # cwd: tmp_path
    plots = [
        output
        for cell in code_cells(notebook)
        for output in cell.outputs
        if "image/png" in output.get("data", {})
    ]
    assert len(plots) == 1  # the training and before/after figure, shown inline
