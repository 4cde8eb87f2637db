"""Which XLA flags make our train step fastest on this GPU, then the full benchmark with them.

Each flag set runs ``train_throughput.py`` for one shape in its own process (XLA reads its
flags once, at start-up), ours only. The fastest set then runs the full benchmark: both shapes,
the sentence-transformers peer and GradCache. A flag this XLA does not know fails its own
process and is reported, not fatal. Compiles are shared through a persistent cache.

    python benchmarks/xla_flags_sweep.py --out-dir results/      # GPU
    python benchmarks/xla_flags_sweep.py --tiny --out-dir /tmp/s # CPU smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

BENCHMARK = Path(__file__).with_name("train_throughput.py")
FLAG_SETS = {
    "default": "",
    "no_triton_gemm": "--xla_gpu_enable_triton_gemm=false",
    "cublaslt": "--xla_gpu_enable_cublaslt=true",
    "no_triton_gemm+cublaslt": "--xla_gpu_enable_triton_gemm=false --xla_gpu_enable_cublaslt=true",
}


def run(flags: str, args: list[str], out: Path, log: Path, timeout: float) -> dict | None:
    """One benchmark process with ``flags`` in XLA_FLAGS; its JSON, or None if it failed."""
    env = {**os.environ, "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} {flags}".strip()}
    command = [sys.executable, str(BENCHMARK), *args, "--out", str(out)]
    try:
        with log.open("w") as stream:
            done = subprocess.run(
                command,
                env=env,
                stdout=stream,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
    except subprocess.TimeoutExpired:
        print(f"  timed out after {timeout:.0f} s (log: {log})", flush=True)
        return None
    if done.returncode != 0 or not out.exists():
        tail = log.read_text().strip().splitlines()[-3:]
        print(f"  failed (exit {done.returncode}): {' | '.join(tail)}", flush=True)
        return None
    return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument("--tiny", action="store_true", help="tiny shapes on CPU (smoke test)")
    parser.add_argument("--sweep-shape", default="128x128", help="LENGTHxPAIRS timed per flag set")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=150, help="seconds per sweep process")
    args = parser.parse_args()

    args.out_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(args.out_dir / "jax_cache"))
    common = ["--steps", str(args.steps)] + (["--tiny"] if args.tiny else [])
    sweep_shape = "32x8" if args.tiny else args.sweep_shape
    speeds = {}
    for name, flags in FLAG_SETS.items():
        print(f"[sweep] {name}: XLA_FLAGS={flags or '(none)'}", flush=True)
        result = run(
            flags,
            [*common, "--shapes", sweep_shape, "--skip-peer", "--gradcache-pairs", "0"],
            args.out_dir / f"sweep_{name}.json",
            args.out_dir / f"sweep_{name}.log",
            args.timeout,
        )
        if result:
            row = result["shapes"][0]
            speeds[name] = row["ours_seq_per_s"]
            print(
                f"  {row['ours_seq_per_s']:.0f} seq/s ({row['ours_pct_peak']:.0f}% of peak)",
                flush=True,
            )
    if not speeds:
        raise SystemExit("every flag set failed; see the sweep_*.log files")
    best = max(speeds, key=speeds.get)
    summary = {"sweep_shape": sweep_shape, "seq_per_s": speeds, "best": best}
    (args.out_dir / "sweep.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"[full] best flags: {best}; both shapes, the peer and GradCache", flush=True)
    full = run(
        FLAG_SETS[best],
        common,
        args.out_dir / "full.json",
        args.out_dir / "full.log",
        timeout=float("inf"),
    )
    print((args.out_dir / "full.log").read_text(), flush=True)
    if full is None:
        raise SystemExit("the full benchmark failed; see full.log")


if __name__ == "__main__":
    main()
