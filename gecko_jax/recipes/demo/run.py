"""``run_demo``: seed passages -> FRet -> fine-tune per seed -> before/after table and plots.

Every stage writes its output under ``out`` with the fingerprint of its inputs
(:mod:`gecko_jax.core.stages`) and is skipped when both exist and the fingerprint matches, so a
rerun of a killed demo resumes: FRet through its stage outputs and LLM cache, training through the
trainer's checkpoints and early-stopping record, evaluation through one JSON per model. An
output made from other inputs (other passages, other settings) stops the run unless
``restart``; one run at a time holds ``out``.

    out/passages.jsonl      the seed passages          out/fret/           FRet stages + manifest
    out/splits.json         training / held-out ids    out/train/seed_K/   trainer workdir, best
    out/eval/NAME.json      suite results per model    out/model/          the best seed's export
    out/results.json        everything, with timings   out/plots/*.png     the three plots
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gecko_jax.core.stages import (
    begin_stage,
    file_digest,
    finish_stage,
    folder_digest,
    folder_lock,
    json_digest,
    model_digest,
)
from gecko_jax.encoder import Encoder
from gecko_jax.evaluation.suite import evaluate_task
from gecko_jax.fret.passages import Passage
from gecko_jax.fret.pipeline import run_fret
from gecko_jax.fret.records import FRET, read_jsonl, write_jsonl
from gecko_jax.recipes.demo import plots
from gecko_jax.recipes.demo.config import DemoConfig
from gecko_jax.recipes.demo.corpus import file_seed_passages, split_heldout, wiki_seed_passages
from gecko_jax.recipes.demo.report import format_summary, summarize
from gecko_jax.recipes.eval_sets import eval_sets, eval_texts_of
from gecko_jax.recipes.finetune import (
    HELDOUT_METRIC,
    HeldoutRetrieval,
    fine_tune,
    heldout_queries,
)
from gecko_jax.recipes.mixture import missing_symmetric_sets
from gecko_jax.recipes.progress import Say, print_progress

logger = logging.getLogger(__name__)


def teacher_report(mined: Mapping[str, Any]) -> list[str]:
    """Plain lines on the LLM as a ranker (P@1 against the seed) and what the guards did."""
    check, guards = mined.get("teacher_check", {}), mined.get("guards", {})
    if "verdict" not in check:
        return []
    p1 = ", ".join(f"{m} {v:.2f}" for m, v in check["p@1"].items())
    lines = [f"teacher check on {check['queries']} queries, P@1 against the seed: {p1}"]
    lines.append("  " + check["verdict"])
    if guards:
        lines.append(
            f"  guards: {guards['round_trip_dropped']} queries failed the round trip, "
            f"{guards['relabel_blocked']} relabels blocked, {guards['negative_replaced']} "
            f"negatives replaced and {guards['negative_dropped']} dropped as possible positives"
        )
    negatives = mined.get("negatives", {})
    if negatives.get("mean_retriever_rank") is not None:
        lines.append(
            f"  hard negatives: mean rank {negatives['mean_retriever_rank']:.1f} of "
            f"{mined.get('num_candidates')} in the retrieved list (near the end: easy ones)"
        )
    return lines


def training_settings(config: DemoConfig) -> dict[str, Any]:
    """The settings a fine-tune reads, for its stage fingerprint (FRet's reach it through the
    FRet data's content hash)."""
    return {"finetune": dataclasses.asdict(config.finetune), "data_dir": config.data_dir}


def eval_settings(config: DemoConfig) -> dict[str, Any]:
    """The settings an evaluation reads, for its stage fingerprint."""
    names = ("eval_tasks", "eval_limit", "eval_seed", "eval_max_length", "data_dir")
    return {name: getattr(config, name) for name in names}


def _seed_passages(
    config: DemoConfig, out: Path, exclude: set[str], say: Say, restart: bool
) -> list[Passage]:
    path = out / "passages.jsonl"
    inputs = {
        "passages_file": config.passages_file and file_digest(config.passages_file),
        "num_passages": config.num_passages,
        "max_passage_chars": config.fret_run.max_chars,
        "corpus_seed": config.corpus_seed,
        "excluded_texts": None if config.passages_file else json_digest(sorted(exclude)),
    }
    if begin_stage(path, inputs, restart):
        return [Passage(**row) for row in read_jsonl(path)]
    if config.passages_file:
        passages, counts = file_seed_passages(
            config.passages_file, config.num_passages, config.fret_run.max_chars
        )
        say(f"      {config.passages_file}: {counts}")
    else:
        passages = wiki_seed_passages(
            config.num_passages, exclude, config.corpus_seed, config.fret_run.max_chars
        )
    write_jsonl(path, [p.to_json() for p in passages])
    finish_stage(path, inputs)
    return passages


def evaluate_model(
    name: str,
    model: Path,
    eval_data: Mapping[str, Mapping[str, Any]],
    out: Path,
    say: Say,
    settings: Mapping[str, Any],
    restart: bool = False,
) -> dict[str, Any]:
    """Suite results for one model (texts cut to ``settings["eval_max_length"]`` tokens, None:
    the model's own limit), cached as ``out/eval/NAME.json`` with the model's content hash."""
    path = out / "eval" / f"{name}.json"
    inputs = {"model": folder_digest(model), **settings}
    if begin_stage(path, inputs, restart):
        return json.loads(path.read_text())["results"]
    max_length = settings["eval_max_length"]
    started = time.perf_counter()
    encoder = Encoder.from_pretrained(model, max_length=max_length)
    results = {task: evaluate_task(encoder, task, data) for task, data in eval_data.items()}
    seconds = time.perf_counter() - started
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"model": str(model), "seconds": seconds, "results": results}))
    finish_stage(path, inputs)
    say(f"      {name}: evaluated in {seconds:.0f} s")
    return results


def run_demo(
    config: DemoConfig, out: str | Path, say: Say = print_progress, restart: bool = False
) -> dict[str, Any]:
    """Run (or resume) the demo into ``out``; returns what ``results.json`` holds.

    ``restart``: stages whose output in ``out`` was made from other inputs are made again
    (without it such an output raises :class:`~gecko_jax.core.stages.StageChanged`).
    """
    with folder_lock(out) as folder:
        return _run_demo(config, folder, say, restart)


def _run_demo(config: DemoConfig, out: Path, say: Say, restart: bool) -> dict[str, Any]:
    from gecko_jax.core.assets import minilm_path, smollm2_llm_spec

    started = time.perf_counter()
    timings: dict[str, float] = {}
    base_model = Path(config.base_model) if config.base_model else minilm_path()
    llm = config.fret_run.llm or smollm2_llm_spec()

    say("[1/5] evaluation sets and seed passages")
    eval_data = eval_sets(config.eval_tasks, config.data_dir, config.eval_limit, config.eval_seed)
    eval_texts = eval_texts_of(eval_data)
    passages = _seed_passages(config, out, eval_texts, say, restart)
    train_ids, heldout_ids = split_heldout(passages, config.heldout_fraction, config.corpus_seed)
    (out / "splits.json").write_text(json.dumps({"train": train_ids, "heldout": heldout_ids}))
    say(f"      {len(passages)} seed passages ({len(heldout_ids)} held out to score fine-tunes)")
    timings["setup"] = time.perf_counter() - started

    mine_config = config.mine_config(len(passages))
    say(f"[2/5] FRet: queries, top-{mine_config.num_candidates} candidates, LLM reranking ({llm})")
    stage = time.perf_counter()
    manifest = run_fret(
        [p.to_json() for p in passages],
        out / "fret",
        llm,
        encoder=base_model,
        max_chars=max(len(p.text) for p in passages),
        generate_config=config.generate_config(),
        mine_config=mine_config,
        mine_only=train_ids,  # held-out queries are scored against their own passage
        llm_kwargs=config.fret_run.llm_kwargs,
        restart=restart,
        max_failed_share=config.fret_run.max_failed_share,
    )
    records = read_jsonl(out / "fret" / FRET)
    heldout_set = set(heldout_ids)
    train_file = out / "fret" / "fret_train.jsonl"
    write_jsonl(train_file, [r for r in records if r["seed_id"] not in heldout_set])
    heldout = HeldoutRetrieval(heldout_queries(out / "fret", heldout_ids), passages)
    generated, mined = manifest.get("generate", {}), manifest.get("mine", {})
    say(
        f"      {len(records)} FRet examples; mean query-passage word overlap "
        f"{generated.get('mean_word_overlap') or 0:.2f}, verbatim copies "
        f"{generated.get('verbatim_copy')}; positive differs from the seed for "
        f"{mined.get('positive_not_seed', 0):.1%}"
    )
    for line in teacher_report(mined):
        say("      " + line)
    timings["fret"] = time.perf_counter() - stage

    finetune = config.finetune
    missing = missing_symmetric_sets(finetune.symmetric_sets, config.data_dir)
    mixed = [name for name in finetune.symmetric_sets if name not in missing]
    sources = (["FRet"] if finetune.fret_share > 0 or not mixed else []) + mixed
    data = " + ".join(sources) + (f" (FRet {finetune.fret_share:.0%})" if mixed else "")
    student = base_model.name if config.base_model else "all-MiniLM-L6-v2"
    say(f"[3/5] fine-tuning {student} on {data}, seeds {list(config.seeds)}")
    for name, reason in missing.items():
        say(f"      {name} left out of the mixture: {reason}")
    stage = time.perf_counter()
    base_heldout = heldout(Encoder.from_pretrained(base_model))[HELDOUT_METRIC]
    say(f"      base model: held-out MRR@10 {base_heldout:.4f} ({len(heldout.rows)} queries)")
    tuned = {}
    training_inputs = {
        "fret_train": file_digest(train_file),
        "heldout": json_digest(heldout.rows),
        "decontaminated": json_digest(sorted(eval_texts)),
        "base_model": model_digest(base_model),
        **training_settings(config),
    }
    for seed in config.seeds:
        workdir = out / "train" / f"seed_{seed}"
        # Unfinished or finished, the trainer resumes from the checkpoints of these inputs.
        begin_stage(workdir, {**training_inputs, "seed": seed}, restart)
        result = fine_tune(
            train_file, heldout, base_model, workdir, seed, finetune, config.data_dir, eval_texts
        )
        finish_stage(workdir, {**training_inputs, "seed": seed})
        tuned[seed] = result
        say(
            f"      seed {seed}: kept step {result.best_step} (0 = the base model), held-out "
            f"MRR@10 {result.best_heldout:.4f}"
        )
    best_seed = max(tuned, key=lambda s: tuned[s].best_heldout)
    export = out / "model"
    export_inputs = {"seed": best_seed, "model": folder_digest(tuned[best_seed].model_dir)}
    if not begin_stage(export, export_inputs, restart):
        shutil.rmtree(export, ignore_errors=True)  # an unfinished copy
        shutil.copytree(tuned[best_seed].model_dir, export)
        finish_stage(export, export_inputs)
    timings["fine_tune"] = time.perf_counter() - stage

    say(f"[4/5] evaluating the base model and {len(tuned)} fine-tuned models")
    stage = time.perf_counter()
    settings = eval_settings(config)
    base_results = evaluate_model("base", base_model, eval_data, out, say, settings, restart)
    seed_results = [
        evaluate_model(f"seed_{seed}", result.model_dir, eval_data, out, say, settings, restart)
        for seed, result in tuned.items()
    ]
    rows = summarize(base_results, seed_results)
    table = format_summary(rows, len(seed_results), in_domain=mixed)
    timings["evaluate"] = time.perf_counter() - stage

    say("[5/5] plots")
    titles = {p.id: p.title for p in passages}
    workdirs = {seed: out / "train" / f"seed_{seed}" for seed in tuned}
    plot_files = [
        plots.plot_training(workdirs, out / "plots" / "training.png"),
        plots.plot_rank_changes(records, out / "plots" / "rank_changes.png"),
        plots.plot_changed_examples(records, titles, out / "plots" / "positive_changed.png"),
    ]
    timings["total"] = time.perf_counter() - started
    summary = {
        "config": dataclasses.asdict(config),
        "base_model": str(base_model),
        "llm": manifest.get("llm"),
        "fret": {"examples": len(records), "generate": generated, "mine": mined},
        "training_mixture": {"fret_share": finetune.fret_share if mixed else 1.0, "sets": mixed},
        "heldout_base_mrr@10": base_heldout,
        "fine_tune": {
            str(s): {"best_step": r.best_step, "best_heldout_mrr@10": r.best_heldout}
            for s, r in tuned.items()
        },
        "exported_seed": best_seed,
        "base": base_results,
        "fine_tuned": {str(s): r for s, r in zip(tuned, seed_results, strict=True)},
        "table": rows,
        "plots": [str(p) for p in plot_files],
        "timings_s": timings,
    }
    (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "table.txt").write_text(table + "\n")
    say("")
    say(table)
    say(f"\nmodel: {export} (Encoder.from_pretrained)   plots: {out / 'plots'}")
    say(f"results: {out / 'results.json'}   total {timings['total']:.0f} s")
    return summary
