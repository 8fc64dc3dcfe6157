"""Benchmark the synthetic province generator: wall time and peak memory (prints its numbers).

Targets (issue 2): demo <= 15 s; shaanxi at full scale <= 10 min and <= 16 GiB peak on 2 cores.
Usage: python benchmarks/bench_generate.py --profile demo|shaanxi [--scale F] [--workers N] [--out DIR]
"""
from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

from evalkit.config import load_policy
from evalkit.synth import generate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="demo")
    ap.add_argument("--scale", type=float, default=None)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    out = Path(a.out) if a.out else Path(tempfile.mkdtemp(prefix=f"bench-{a.profile}-"))
    t0 = time.perf_counter()
    generate(a.profile, seed=a.seed, out=out, scale=a.scale, workers=a.workers, policy=load_policy())
    dt = time.perf_counter() - t0
    # ru_maxrss is KiB on Linux; children = worker processes
    peak_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    peak_child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    m = json.loads((out / "manifest.json").read_text())
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 2**20
    print(f"profile={a.profile} scale={m['scale']} workers={a.workers} seconds={dt:.1f} "
          f"peak_rss_main_GiB={peak_self:.2f} peak_rss_worker_GiB={peak_child:.2f} disk_MiB={size:.0f}")
    print("rows:", json.dumps(m["row_counts"]))


if __name__ == "__main__":
    main()
