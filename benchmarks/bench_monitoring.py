"""Benchmark of the monthly cycle: one month imported (files read and checked, linked, cases and
flags written to the store) and checked, with seconds per step, CPU seconds, peak memory and the
load average of the (shared) machine.

Target (issue 13): a month of the Shaanxi profile (about 17 million persons, about a million
department records) in <= 5 min within 8 GiB on 2 cores. The department files of the month must
exist (``--generate`` writes them first, not timed; on a read-only dataset point ``--data`` at a
folder of links to its tables, the department files then go beside them). Run it under
``/usr/bin/time -v`` for an outside view of the peak memory; the numbers here are the process's
own (``ru_maxrss``, CPU from ``getrusage``).

Usage::

    python benchmarks/bench_monitoring.py --data DIR --month 2025-07 [--generate] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path

from evalkit.config import load_policy
from evalkit.monitoring import store
from evalkit.monitoring.check import monthly_check


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--month", default="2025-07")
    ap.add_argument("--generate", action="store_true", help="write the month's department files first (not timed)")
    ap.add_argument("--routine-stay-rate", type=float, default=None,
                    help="routine hospital stays per person and month when generating (record volume)")
    ap.add_argument("--db", default=None, help="case store (default: a new temporary one)")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    policy = load_policy()
    data = Path(a.data)
    if a.generate:
        from evalkit.synth.departments import ROUTINE_STAY_RATE, write_departments

        seed = int(json.loads((data / "manifest.json").read_text(encoding="utf-8"))["seed"])
        t = time.perf_counter()
        write_departments(data, [a.month], seed, policy,
                          routine_stay_rate=a.routine_stay_rate or ROUTINE_STAY_RATE)
        print(f"generated {a.month} in {time.perf_counter() - t:.1f} s (not timed below)", flush=True)
    from evalkit.monitoring.cycle import import_month

    tmp = Path(tempfile.mkdtemp(prefix="bench_monitoring_"))
    db = Path(a.db) if a.db else tmp / "cases.duckdb"
    key = tmp / "key" / "pseudo.key"
    load0, cpu0, t0 = os.getloadavg(), _cpu(), time.perf_counter()
    steps: dict[str, float] = {}
    res = import_month(db, data, a.month, key, policy, timings=steps)
    t = time.perf_counter()
    with store.connect_read(db) as con:
        chk = monthly_check(con, a.month, policy)
    steps["check"] = round(time.perf_counter() - t, 2)
    wall, cpu = time.perf_counter() - t0, _cpu() - cpu0
    out = {"month": a.month, "records": res.changes.get("records"), "linkage": {
               k[5:]: v for k, v in res.changes.items() if k.startswith("link_")},
           "steps_seconds": steps, "import_plus_check_seconds": round(wall, 1), "cpu_seconds": round(cpu, 1),
           "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
           "load_average_before": [round(x, 2) for x in load0],
           "load_average_after": [round(x, 2) for x in os.getloadavg()],
           "new_cases": res.changes.get("new_cases"), "red_flags": len(chk.red_list),
           "suspicions": len(chk.suspicions), "missed_poor": len(chk.missed_poor),
           "target_met": bool(wall <= 300 and resource.getrusage(resource.RUSAGE_SELF).ru_maxrss <= 8 * 1024 ** 2)}
    print(json.dumps(out, indent=2, ensure_ascii=False))
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
