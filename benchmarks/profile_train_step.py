"""Where our train step's GPU time goes: a jax.profiler trace, then time per kernel group.

On the GPU, ``--trace DIR`` runs warm-up steps, traces a few more and writes the compiled HLO
beside the trace. Anywhere with TensorFlow installed, ``--summarize DIR`` reads the trace back
and prints GPU time per kernel (summed over the traced steps), largest first, so the fusions
and matmuls worth optimising come first.

    PYTHONPATH=. python benchmarks/profile_train_step.py --trace prof/      # GPU
    .venv/bin/python benchmarks/profile_train_step.py --summarize prof/     # here
"""

from __future__ import annotations

import argparse
import collections
import re
from pathlib import Path

import jax
from train_throughput import build_step

from gecko_jax.core.partitioning import MeshConfig, create_mesh, mesh_context
from gecko_jax.models.named_configs import get_named_config


def trace(out: Path, length: int, pairs: int, steps: int) -> None:
    encoder = get_named_config("bert_base").encoder
    on_gpu = jax.devices()[0].platform == "gpu"
    mesh = create_mesh(MeshConfig(data=-1))
    with mesh_context(mesh):
        attention = "cudnn" if on_gpu else "xla"
        step, state, batch = build_step(encoder, pairs, length, attention, mesh)
        out.mkdir(parents=True, exist_ok=True)
        (out / "train_step.hlo.txt").write_text(step.lower(state, batch).compile().as_text())
        for _ in range(3):
            state, metrics = step(state, batch)
        jax.block_until_ready(metrics["loss"])
        with jax.profiler.trace(str(out)):
            for _ in range(steps):
                state, metrics = step(state, batch)
            jax.block_until_ready(metrics["loss"])
    print(f"traced {steps} steps of L={length} x {pairs} pairs into {out}")


def kernel_times(folder: Path) -> tuple[collections.Counter, int]:
    """Microseconds per GPU kernel name over the trace, and the number of kernel launches."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    (path,) = sorted(folder.rglob("*.xplane.pb"))[-1:]
    space = xplane_pb2.XSpace()
    space.ParseFromString(path.read_bytes())
    times: collections.Counter = collections.Counter()
    launches = 0
    for plane in space.planes:
        if not plane.name.startswith("/device:GPU"):
            continue
        names = {i: m.name for i, m in plane.event_metadata.items()}
        for line in plane.lines:
            if "stream" not in line.name.lower() or "memcpy" in line.name.lower():
                continue
            for event in line.events:
                times[names.get(event.metadata_id, "?")] += event.duration_ps / 1e6
                launches += 1
    return times, launches


def kernel_group(name: str) -> str:
    """A coarse kind for a kernel name: matmul, attention, fusion kinds, or the name itself."""
    lowered = name.lower()
    for key, group in (
        ("gemm", "matmul (cuBLAS/cutlass)"),
        ("sm90_xmma", "matmul (cuBLAS/cutlass)"),
        ("nvjet", "matmul (cuBLAS/cutlass)"),
        ("cudnn", "attention (cuDNN)"),
        ("flash", "attention (cuDNN)"),
        ("triton", "triton fusion"),
        ("scatter", "scatter"),
        ("reduce", "reduction fusion"),
        ("loop", "loop fusion"),
        ("input_fusion", "reduction fusion"),
        ("fusion", "other fusion"),
    ):
        if key in lowered:
            return group
    return re.sub(r"[_.]\d+$", "", name)


def summarize(folder: Path, top: int) -> None:
    times, launches = kernel_times(folder)
    total = sum(times.values())
    groups: collections.Counter = collections.Counter()
    for name, micros in times.items():
        groups[kernel_group(name)] += micros
    print(f"GPU kernel time {total / 1e3:.1f} ms in {launches} launches")
    for name, micros in groups.most_common():
        print(f"  {micros / total:6.1%}  {micros / 1e3:8.2f} ms  {name}")
    print(f"top {top} kernels:")
    for name, micros in times.most_common(top):
        print(f"  {micros / total:6.1%}  {micros / 1e3:8.2f} ms  {name[:110]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trace", type=Path, help="trace into this folder (run on the GPU)")
    parser.add_argument("--summarize", type=Path, help="summarise a trace folder")
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--pairs", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    if args.trace:
        trace(args.trace, args.length, args.pairs, args.steps)
    if args.summarize:
        summarize(args.summarize, args.top)
    if not (args.trace or args.summarize):
        parser.error("give --trace DIR, --summarize DIR, or both")


if __name__ == "__main__":
    main()
