"""Train-step throughput: our jitted Gecko step vs sentence-transformers MNRL, same shapes.

BERT-base size (or another named encoder), random weights, bf16 compute (or float32 on both
sides), every sequence full length. Each step encodes query, positive and hard negative for
every pair (3 sequences per pair) on both sides: ours with the full Gecko loss (hard negative +
same-tower negatives + Matryoshka 768/256), theirs with MultipleNegativesRankingLoss on
(anchor, positive, negative) triplets under bf16 autocast (none for float32). Tokenisation is
excluded on both sides. Prints sequences/s, TFLOP/s, % of the measured matmul peak in the
compute dtype, and ratios; with --out writes the numbers as JSON.

    python benchmarks/train_throughput.py                  # GPU: 128x128 and 512x32, GradCache
    python benchmarks/train_throughput.py --tiny           # CPU smoke run of the same code
    python benchmarks/train_throughput.py --model minilm_l6 --dtype float32 \
        --shapes 128x16 --gradcache-pairs 0                # CPU ratio at a size a CPU can run
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gecko_jax.core.partitioning import (
    MeshConfig,
    batch_sharding,
    create_mesh,
    mesh_context,
    num_batch_shards,
)
from gecko_jax.models.config import DualEncoderConfig, EncoderConfig
from gecko_jax.models.named_configs import get_named_config
from gecko_jax.training.config import TrainConfig
from gecko_jax.training.optimizer import learning_rate_schedule, make_optimizer
from gecko_jax.training.state import init_state, state_shardings
from gecko_jax.training.step import make_train_step
from tasks.array_input import random_token_features

TINY = EncoderConfig("bert", 1000, 64, 2, 4, 128)


def matmul_peak_tflops(n: int, dtype: str = "bfloat16") -> float:
    a = jnp.ones((n, n), dtype)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    start = time.perf_counter()
    for _ in range(10):
        out = f(a)
    out.block_until_ready()
    return 2 * n**3 * 10 / (time.perf_counter() - start) / 1e12


def flops_per_sequence(cfg: EncoderConfig, length: int) -> float:
    """Training FLOPs (3x forward) of one sequence: dense layers plus attention scores."""
    d, ff = cfg.hidden_size, cfg.intermediate_size
    dense = 2 * length * cfg.num_layers * (4 * d * d + 2 * d * ff)
    attention = 2 * cfg.num_layers * 2 * length * length * d
    return 3.0 * (dense + attention)


def build_step(
    encoder: EncoderConfig,
    pairs: int,
    length: int,
    attention: str,
    mesh: jax.sharding.Mesh,
    chunk: int | None = None,
    dtype: str = "bfloat16",
) -> tuple[Any, Any, dict[str, jax.Array]]:
    """(jitted train step, initial state, device batch) for full-length random tokens.

    Call it inside ``mesh_context(mesh)``.
    """
    model = DualEncoderConfig(
        encoder,
        mrl_dims=(min(768, encoder.hidden_size), 32),
        dtype=dtype,
        attention_impl=attention,
        max_length=length,
    )
    config = TrainConfig(
        model=model,
        total_steps=1000,
        global_batch_size=pairs,
        learning_rate=1e-5,
        gradcache_chunk_size=chunk,
    )
    optimizer = make_optimizer(config)
    state = init_state(config, optimizer, mesh, jax.random.key(0))
    shardings = state_shardings(config, optimizer, mesh)
    step = jax.jit(
        make_train_step(config, optimizer, learning_rate_schedule(config), num_batch_shards(mesh)),
        in_shardings=(shardings, batch_sharding(mesh)),
        donate_argnums=0,
    )
    features = random_token_features(pairs, length, length, encoder.vocab_size, full_length=True)
    return step, state, jax.device_put(features, batch_sharding(mesh))


def time_ours(
    encoder: EncoderConfig,
    pairs: int,
    length: int,
    steps: int,
    attention: str,
    chunk: int | None = None,
    dtype: str = "bfloat16",
) -> float:
    """Seconds per train step, averaged over ``steps`` after two warm-up steps."""
    mesh = create_mesh(MeshConfig(data=-1))
    with mesh_context(mesh):
        step, state, batch = build_step(encoder, pairs, length, attention, mesh, chunk, dtype)
        for _ in range(2):  # compile and warm up
            state, metrics = step(state, batch)
        jax.block_until_ready(metrics["loss"])
        # Steps are dispatched back to back, as in a real training loop, and timed as a block.
        start = time.perf_counter()
        for _ in range(steps):
            state, metrics = step(state, batch)
        jax.block_until_ready(metrics["loss"])
        elapsed = (time.perf_counter() - start) / steps
    assert np.isfinite(float(metrics["loss"]))
    return elapsed


def time_sentence_transformers(
    encoder: EncoderConfig, pairs: int, length: int, steps: int, workdir: Path, dtype: str
) -> float:
    import torch
    from sentence_transformers import SentenceTransformer, losses, models
    from transformers import BertConfig, BertModel

    device = "cuda" if torch.cuda.is_available() else "cpu"
    folder = workdir / f"st_bert_{encoder.hidden_size}"
    hf_config = BertConfig(
        vocab_size=encoder.vocab_size,
        hidden_size=encoder.hidden_size,
        num_hidden_layers=encoder.num_layers,
        num_attention_heads=encoder.num_heads,
        intermediate_size=encoder.intermediate_size,
        hidden_act=encoder.hidden_act,
        max_position_embeddings=max(512, length),
    )
    BertModel(hf_config).save_pretrained(folder)
    _save_placeholder_tokenizer(folder, encoder.vocab_size)
    # Newer sentence-transformers releases renamed model_args; a GPU image may hold an older one.
    parameters = inspect.signature(models.Transformer).parameters
    model_kwargs = "model_kwargs" if "model_kwargs" in parameters else "model_args"
    word = models.Transformer(
        str(folder), max_seq_length=length, **{model_kwargs: {"attn_implementation": "sdpa"}}
    )
    pooling = models.Pooling(encoder.hidden_size, "mean")
    model = SentenceTransformer(modules=[word, pooling], device=device)
    loss = losses.MultipleNegativesRankingLoss(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    rng = np.random.default_rng(0)

    def features() -> dict[str, torch.Tensor]:
        ids = torch.as_tensor(rng.integers(1, encoder.vocab_size, (pairs, length)), device=device)
        return {
            "input_ids": ids,
            "attention_mask": torch.ones_like(ids),
            "token_type_ids": torch.zeros_like(ids),
        }

    inputs = [features(), features(), features()]
    labels = torch.zeros(pairs, device=device)
    times = []
    for i in range(steps + 2):
        start = time.perf_counter()
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=dtype == "bfloat16"):
            value = loss(inputs, labels)
        value.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
        if i >= 2:
            times.append(time.perf_counter() - start)
    return float(np.median(times))


def _save_placeholder_tokenizer(folder: Path, vocab_size: int) -> None:
    """A WordPiece tokenizer over made-up tokens: ST needs one on disk, inputs are pre-tokenised."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordPiece
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]"])}
    vocab.update({f"t{i}": i for i in range(len(vocab), vocab_size)})
    fast = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(WordPiece(vocab, unk_token="[UNK]")),
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
    )
    fast.save_pretrained(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny shapes on CPU (smoke test)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--attention", default=None, help="xla or cudnn (default: cudnn on GPU)")
    parser.add_argument("--gradcache-pairs", type=int, default=8192, help="0: skip GradCache")
    parser.add_argument(
        "--shapes", default=None, help="LENGTHxPAIRS,... (default: 128x128,512x32; --tiny: small)"
    )
    parser.add_argument(
        "--hidden-act", default=None, help="override BERT's exact-erf GELU (e.g. gelu_new: tanh)"
    )
    parser.add_argument(
        "--model", default="bert_base", help="named encoder config (ignored with --tiny)"
    )
    parser.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float32"))
    parser.add_argument("--skip-peer", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    on_gpu = jax.devices()[0].platform == "gpu"
    attention = args.attention or ("cudnn" if on_gpu else "xla")
    encoder = TINY if args.tiny else get_named_config(args.model).encoder
    if args.hidden_act:
        encoder = dataclasses.replace(encoder, hidden_act=args.hidden_act)
    shapes = [(128, 16), (32, 8)] if args.tiny else [(128, 128), (512, 32)]
    if args.shapes:
        shapes = [tuple(int(n) for n in shape.split("x")) for shape in args.shapes.split(",")]
    peak = matmul_peak_tflops(8192 if on_gpu else 1024, args.dtype)
    device = jax.devices()[0].device_kind
    print(
        f"device: {device} x{jax.device_count()}, jax {jax.__version__}, "
        f"{args.dtype} matmul peak {peak:.2f} TFLOP/s, attention {attention}"
    )
    results = {
        "device": device,
        "jax": jax.__version__,
        "matmul_peak_tflops": peak,
        "attention": attention,
        "dtype": args.dtype,
        "encoder": dataclasses.asdict(encoder),
        "shapes": [],
    }
    workdir = Path(tempfile.mkdtemp(prefix="st_models_"))
    for length, pairs in shapes:
        seqs = 3 * pairs
        ours = time_ours(encoder, pairs, length, args.steps, attention, dtype=args.dtype)
        flops = flops_per_sequence(encoder, length) * seqs
        row = {
            "length": length,
            "pairs": pairs,
            "ours_seq_per_s": seqs / ours,
            "ours_tflops": flops / ours / 1e12,
            "ours_pct_peak": 100 * flops / ours / 1e12 / peak,
        }
        print(
            f"L={length} pairs={pairs}: ours {seqs / ours:8.0f} seq/s "
            f"{row['ours_tflops']:6.2f} TFLOP/s ({row['ours_pct_peak']:.0f}% of peak)",
            flush=True,
        )
        if not args.skip_peer:
            theirs = time_sentence_transformers(
                encoder, pairs, length, args.steps, workdir, args.dtype
            )
            row.update(
                st_seq_per_s=seqs / theirs, st_tflops=flops / theirs / 1e12, ratio=theirs / ours
            )
            print(
                f"  sentence-transformers {seqs / theirs:8.0f} seq/s "
                f"{row['st_tflops']:6.2f} TFLOP/s -> ratio {theirs / ours:.2f}x",
                flush=True,
            )
        results["shapes"].append(row)
    if args.gradcache_pairs:
        pairs = 64 if args.tiny else args.gradcache_pairs
        chunk = 16 if args.tiny else 512
        length = 32 if args.tiny else 128
        seconds = time_ours(encoder, pairs, length, 1, attention, chunk, args.dtype)
        peak_bytes = (jax.devices()[0].memory_stats() or {}).get("peak_bytes_in_use")
        results["gradcache"] = {
            "pairs": pairs,
            "chunk": chunk,
            "seconds_per_step": seconds,
            "seq_per_s": 3 * pairs / seconds,
            "peak_gib": None if peak_bytes is None else peak_bytes / 2**30,
        }
        memory = "" if peak_bytes is None else f", peak device memory {peak_bytes / 2**30:.1f} GiB"
        print(
            f"GradCache: {pairs} pairs/step (chunks of {chunk}) -> {seconds:.2f} s/step, "
            f"{3 * pairs / seconds:.0f} seq/s{memory}",
            flush=True,
        )
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
