"""Monthly risk scoring vs the monitoring rule on held-out counties and months (issue 13, item 3).

Imports the months of a year into a new case store (generating missing synthetic department
months first) and runs :func:`evalkit.workflows.monthly.compare_risk_with_rule`, the product's
comparison: what is known at the end of month M is the panel of the year before and the linked
department events of the imported months up to M; the rule flags the households that became
monitoring cases by M; a logit (evalkit.risk) fitted at the middle month on every other county
flags as many households on the other counties in the later months. Label: the risk package's
event in the year (income below the monitoring line or a failing guarantee, recorded in the panel).

Usage::

    python benchmarks/bench_monthly_risk.py --data DIR --year 2025 --months 1-12 [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from evalkit.config import load_policy
from evalkit.workflows.monthly import compare_risk_with_rule, run_monthly


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--year", type=int, default=2025)
    ap.add_argument("--months", default="1-12", help="first-last month of the year to import")
    ap.add_argument("--db", default=None, help="case store (default: a new temporary one)")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    policy = load_policy()
    lo, hi = (int(x) for x in a.months.split("-"))
    db = Path(a.db) if a.db else Path(tempfile.mkdtemp(prefix="bench_risk_")) / "cases.duckdb"
    t = time.perf_counter()
    for m in range(lo, hi + 1):
        run_monthly(a.data, f"{a.year}-{m:02d}", db, policy)
    t_import = time.perf_counter() - t
    t = time.perf_counter()
    res = compare_risk_with_rule(a.data, db, a.year, policy)
    t_cmp = time.perf_counter() - t
    print(f"trained at {res.train_month} on {len(res.train_counties)} counties, tested on "
          f"{len(res.test_counties)}; logit converged: {res.converged}; imports {t_import:.0f} s, "
          f"comparison {t_cmp:.1f} s")
    print(res.table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    out = {"year": a.year, "train_month": res.train_month, "train_counties": res.train_counties,
           "test_counties": res.test_counties, "converged": res.converged, "rows": res.table.to_dict("records"),
           "seconds_import": round(t_import, 1), "seconds_compare": round(t_cmp, 1)}
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
