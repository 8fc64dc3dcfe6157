"""Benchmark of evalkit.risk: features, labels and fitting the four risk models.

Target: fitting all four models on the demo panel (profile ``demo``, scale 0.1, about 35,000
households x 12 years) in at most 60 s on 2 cores.

Usage::

    python benchmarks/bench_risk.py                                  # demo, generated if needed
    python benchmarks/bench_risk.py --data data/demo                 # an existing dataset directory
    python benchmarks/bench_risk.py --profile shaanxi --data data/shaanxi [--counties 610602 ...]
    python benchmarks/bench_risk.py --threads 1                      # cap OpenMP/BLAS threads
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path

import pandas as pd
from threadpoolctl import threadpool_limits

from evalkit import risk, synth
from evalkit.config import Policy, load_policy
from evalkit.data import load_dataset

TABLES = ("panel", "households", "members")


def _load(path: Path, counties: list[str] | None) -> dict[str, pd.DataFrame]:
    """The three tables, read and validated by the project loader."""
    ds = load_dataset(path, tables=list(TABLES), counties=counties)
    return {t: ds[t] for t in TABLES}


def _fit_all(panel: pd.DataFrame, hh: pd.DataFrame, mem: pd.DataFrame, population: str,
             test_year: int | None, policy: Policy) -> float:
    """Time features, labels and the four models; print the table; return the total fit time."""
    t0 = time.perf_counter()
    feats = risk.build_features(panel, hh, mem, policy)
    t_feat = time.perf_counter() - t0
    t0 = time.perf_counter()
    lab = risk.make_labels(panel, hh, policy, population=population)
    t_lab = time.perf_counter() - t0
    print(f"build_features {t_feat:6.2f} s ({feats.shape[0]:,} x {feats.shape[1]})   "
          f"make_labels {t_lab:6.2f} s ({len(lab):,} labelled, {lab['label'].mean():.3f} positive)")
    h = policy.risk.horizon
    test_year = test_year or int(lab["year"].max())
    data_ = risk.labelled_frame(lab, feats)
    train = data_[data_["year"] <= test_year - h]
    test = data_[data_["year"] == test_year]
    Xte = test[list(feats.columns)]
    print(f"train {train['year'].min()}-{train['year'].max()}: {len(train):,} rows; test {test_year}: "
          f"{len(test):,} rows")
    rows, total = [], 0.0
    for name, m in risk.default_models().items():  # loop over the four models
        t0 = time.perf_counter()
        fitted = risk.fit_model(m, train, feats.columns)
        t_fit = time.perf_counter() - t0
        total += t_fit
        t0 = time.perf_counter()
        p = fitted.predict_proba(Xte)[:, 1]
        t_pred = time.perf_counter() - t0
        cap = risk.capture_at_k(test.assign(_s=p), "_s", k=5)
        rows.append({"model": name, "fit_s": round(t_fit, 2), "predict_s": round(t_pred, 2),
                     "auc": round(risk.roc_auc(test["label"], p), 3),
                     "brier": round(risk.brier(test["label"], p), 4),
                     "recall_at_5": round(float(cap["recall_at_k"]), 3)})
    print(pd.DataFrame(rows).to_string(index=False))
    return total


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="demo", choices=["demo", "shaanxi", "seeds"])
    ap.add_argument("--data", type=Path, default=None, help="dataset directory (generated there if absent)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--scale", type=float, default=None)
    ap.add_argument("--counties", nargs="*", default=None)
    ap.add_argument("--population", default="both", choices=["exited", "non_registered", "both"])
    ap.add_argument("--test-year", type=int, default=None, help="default: last labelled year")
    ap.add_argument("--threads", type=int, default=None, help="cap OpenMP/BLAS threads (default: all cores)")
    ap.add_argument("--workers", type=int, default=max(1, min(4, os.cpu_count() or 1)))
    a = ap.parse_args(argv)

    policy = load_policy()
    data = a.data or Path(os.environ.get("TMPDIR", "/tmp")) / f"evalkit_bench_{a.profile}_s{a.seed}"
    t0 = time.perf_counter()
    if not (data / "manifest.json").exists():
        synth.generate(a.profile, seed=a.seed, out=data, scale=a.scale, counties=a.counties,
                       field_survey=False, workers=a.workers, policy=policy)
        print(f"generated {a.profile} -> {data} in {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    tabs = _load(data, a.counties)
    panel, hh, mem = tabs["panel"], tabs["households"], tabs["members"]
    print(f"loaded {len(panel):,} panel rows, {len(hh):,} households, {len(mem):,} members "
          f"in {time.perf_counter() - t0:.1f} s ({os.cpu_count()} cores)")

    limit = contextlib.nullcontext()
    if a.threads:
        limit = threadpool_limits(limits=a.threads)
    with limit:
        total = _fit_all(panel, hh, mem, a.population, a.test_year, policy)
    verdict = "OK" if total <= 60 else "SLOW"
    print(f"fit all four models: {total:.1f} s (target <= 60 s on 2 cores) {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
