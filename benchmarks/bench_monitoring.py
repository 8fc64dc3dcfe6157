"""Benchmark of the monthly cycle: one month imported (read, checked, linked, cases and flags
written to the store) and checked, with seconds per step and peak memory.

Target (issue 13): a month of the Shaanxi profile (about 17 million persons, about a million
department records) in <= 5 min within 8 GiB on 2 cores. Run it on any generated dataset; the
department files of the month are generated first when missing (not timed).

Usage::

    python benchmarks/bench_monitoring.py --data data/demo --month 2025-07 [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import tempfile
import time
from pathlib import Path

from evalkit.config import load_policy
from evalkit.monitoring import store
from evalkit.monitoring.cases import MonitoringPolicy, identify, risk_events
from evalkit.monitoring.check import monthly_check
from evalkit.monitoring.cycle import import_month, month_matches, population
from evalkit.monitoring.intake import read_month
from evalkit.monitoring.linkage import LinkagePolicy, load_key
from evalkit.workflows.monthly import ensure_departments


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _import_and_check(db: str, data: str, month: str, key: str, out: dict) -> None:
    """The import and check as the CLI runs them, in a fresh process (its peak memory is theirs alone)."""
    policy = load_policy()
    t = time.perf_counter()
    res = import_month(db, data, month, key, policy)
    out["import_month_total"] = time.perf_counter() - t
    t = time.perf_counter()
    with store.connect_read(db) as con:
        chk = monthly_check(con, month, policy)
    out["check"] = time.perf_counter() - t
    out["changes"], out["red_flags"] = res.changes, len(chk.red_list)
    out["peak_rss_mib"] = _peak_mib()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--month", default="2025-07")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    policy = load_policy()
    data = Path(a.data)
    ensure_departments(data, [a.month], policy)
    tmp = Path(tempfile.mkdtemp(prefix="bench_monitoring_"))
    db, key = tmp / "cases.duckdb", tmp / "key" / "pseudo.key"
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as mgr:
        got = mgr.dict()
        p = ctx.Process(target=_import_and_check, args=(str(db), str(data), a.month, str(key), got))
        p.start()
        p.join()
        run = dict(got)
    # the steps again in this process, for their separate timings (the store above is not touched)
    steps = {}
    t0 = time.perf_counter()
    mf = read_month(data, a.month)
    steps["read_and_check_files"] = time.perf_counter() - t0
    t = time.perf_counter()
    persons, status = population(data, int(a.month[:4]))
    steps["read_population"] = time.perf_counter() - t
    t = time.perf_counter()
    matches, _, counts = month_matches(mf, persons, load_key(key), LinkagePolicy.from_policy(policy))
    steps["link"] = time.perf_counter() - t
    mp = MonitoringPolicy.from_policy(policy)
    identify(risk_events(matches.rename(columns={"table_name": "table"}), mp), status, 6000.0, mp)
    out = {"month": a.month, "records": sum(len(v) for v in mf.tables.values()), "persons": len(persons),
           "linkage": counts, "steps_seconds": {k: round(v, 2) for k, v in steps.items()},
           "import_month_seconds": round(run["import_month_total"], 2), "check_seconds": round(run["check"], 2),
           "import_plus_check_seconds": round(run["import_month_total"] + run["check"], 2),
           "import_plus_check_peak_rss_mib": round(run["peak_rss_mib"], 1), "changes": run["changes"],
           "red_flags": run["red_flags"]}
    print(json.dumps(out, indent=2, ensure_ascii=False))
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
