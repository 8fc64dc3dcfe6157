"""Benchmark of evalkit.monitoring.linkage: precision and recall against the generator's truth.

Targets: precision >= 0.99 and recall >= 0.95 of the links of a month of synthetic department
records (every department, urban residents outside the population included) to the rural
population; the seconds it takes are printed too. Precision = correct links / links made;
recall = correct links / records that belong to a person of the population. Records sent to
clerical review count as not linked (they lower the recall, not the precision).

Usage::

    python benchmarks/bench_linkage.py --data data/demo --month 2025-06
    python benchmarks/bench_linkage.py --data data/demo --months 2025-01,2025-06 --json out.json
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from evalkit.config import load_policy
from evalkit.monitoring.cycle import month_matches, population_sql
from evalkit.monitoring.intake import MonthFiles, read_month
from evalkit.monitoring.linkage import LinkagePolicy, connect, load_key
from evalkit.workflows.monthly import ensure_departments


def _stress(mf: MonthFiles, seed: int) -> MonthFiles:
    """Harder records: 30% of IDs dropped, 10% of names with a changed given name character,
    5% of birth dates a day off and 5% of village codes wrong (on top of the generator's noise)."""
    rng = np.random.default_rng(seed)
    out = {}
    for t, df in mf.tables.items():
        n = len(df)
        df = df.copy()
        df.loc[rng.random(n) < 0.30, "id_number"] = None
        nm = df["name"].astype(str)
        swap = rng.random(n) < 0.10
        df.loc[swap, "name"] = nm[swap].str.slice(0, -1) + "某"
        bd = pd.to_datetime(df["birth_date"])
        shift = rng.random(n) < 0.05
        df.loc[shift, "birth_date"] = (bd[shift] + pd.Timedelta(days=1)).dt.strftime("%Y-%m-%d")
        vc = df["village_code"].astype(str)
        wrong = rng.random(n) < 0.05
        df.loc[wrong, "village_code"] = vc[wrong].str.slice(0, 9) + "999"
        out[t] = df
    return MonthFiles(mf.month, out, mf.sha256)


def bench_month(data: Path, month: str, key: bytes, lp: LinkagePolicy, stress: bool = False) -> dict:
    """Link one month and score it against ``departments_truth``."""
    mf = read_month(data, month)
    if stress:
        mf = _stress(mf, int(month.replace("-", "")))
    con = connect()
    persons = population_sql(data)
    t0 = time.perf_counter()
    matches, review, counts = month_matches(mf, persons, key, lp, con)
    secs = time.perf_counter() - t0
    n_persons = int(con.execute(f"SELECT count(*) FROM ({persons})").fetchall()[0][0])
    con.close()
    truth = pd.read_parquet(data / "departments_truth" / f"{month}.parquet").rename(columns={"table": "table_name"})
    t = truth.merge(matches, on=["table_name", "record_id"], suffixes=("_true", ""))
    linked = t["person_id"].notna()
    correct = linked & (t["person_id"] == t["person_id_true"])
    by_type = t[linked].groupby("match_type").apply(lambda d: (d["person_id"] == d["person_id_true"]).mean(),
                                                   include_groups=False)
    return {"month": month, "stress": stress, "records": len(t), "persons": n_persons, "seconds": round(secs, 2),
            "precision": float(correct.sum() / max(linked.sum(), 1)),
            "recall": float(correct.sum() / max(t["person_id_true"].notna().sum(), 1)),
            "precision_by_type": {k: round(float(v), 4) for k, v in by_type.items()},
            "review_records": int(review["record_id"].nunique()), **{f"n_{k}": v for k, v in counts.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="a generated dataset directory")
    ap.add_argument("--months", default="2025-06", help="comma-separated YYYY-MM")
    ap.add_argument("--json", default=None)
    ap.add_argument("--stress", action="store_true", help="degrade the records further (see _stress)")
    a = ap.parse_args()
    policy = load_policy()
    months = a.months.split(",")
    ensure_departments(a.data, months, policy)
    key = load_key(Path(tempfile.gettempdir()) / "evalkit_bench_linkage.key")
    lp = LinkagePolicy.from_policy(policy)
    rows = [bench_month(Path(a.data), m, key, lp, a.stress) for m in months]
    for r in rows:
        ok = r["precision"] >= 0.99 and r["recall"] >= 0.95
        tag = " (stress)" if r["stress"] else ""
        print(f"{r['month']}{tag}: {r['records']} records, {r['persons']} persons, {r['seconds']} s, "
              f"precision {r['precision']:.4f}, recall {r['recall']:.4f} "
              f"(exact {r['n_exact']}, probabilistic {r['n_probabilistic']}, review {r['review_records']}, "
              f"unlinked {r['n_unlinked']}) {'OK' if ok else 'BELOW TARGET'}")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=2, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
