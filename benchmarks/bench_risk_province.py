"""Benchmark: the risk models on the whole province, out of core, and what its shortcuts cost.

Part 1 (``province``): :func:`evalkit.workflows.monitoring.run_province_risk` on a dataset
(the Shaanxi profile: 107 counties, ~17 M persons, ~60 M panel rows): wall and CPU time per stage,
peak RSS (this process and its county workers), the load average, and ROC-AUC / capture at k of
every model on the held-out year. Target: <= 10 min and <= 16 GiB on 2 cores.

Part 2 (``compare``): on 10 counties, the in-memory path (the whole 10-county panel as frames:
:func:`evalkit.risk.build_features`, :func:`evalkit.risk.out_of_time` with statsmodels' logit and
boosting on every row) against the store path with the province's shortcuts (logit on cells,
boosting on a stratified sample the same share of the rows as in the province run, calibrated on
a held-out sample). Target: |ΔAUC| < 0.005 for every model, logit coefficients within one SE.

Usage (wrap Shaanxi runs in the shared lock)::

    flock /work/notes/big.lock /usr/bin/time -v python benchmarks/bench_risk_province.py \\
        --data /work/shaanxi --json out.json [--parts province compare] [--counties C1 ...]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from evalkit import risk
from evalkit.config import Policy, load_policy
from evalkit.risk import large, store
from evalkit.workflows.monitoring import PROVINCE_CALIBRATION_ROWS, PROVINCE_SAMPLE_ROWS, run_province_risk

#: Ten poverty counties across six prefectures of the Shaanxi profile (the smallest ten: the
#: in-memory baseline holds their whole panel as frames).
DEFAULT_COUNTIES = ["610922", "610923", "610703", "610803", "610327", "610204", "610430", "611026", "611025",
                    "610203"]


def _cpu() -> float:
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def _rss_gib() -> dict[str, float]:
    """Peak RSS of this process and of its largest finished child (ru_maxrss is in KiB on Linux)."""
    return {"self": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
            "children": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20}


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def province(data: Path, out: Path, policy: Policy, counties: list[str] | None, seed: int) -> dict:
    """Part 1: the province run with its timings, memory and held-out metrics."""
    load0, t0, c0 = _load(), time.perf_counter(), _cpu()
    r = run_province_risk(data, out, policy=policy, counties=counties, seed=seed)
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    res = {"wall_s": wall, "cpu_s": cpu, "peak_rss_gib": _rss_gib(), "load_before": load0, "load_after": _load(),
           **{k: r[k] for k in ("timings", "metrics", "best_model", "test_year", "selection_year", "n_rows", "fits")}}
    print(f"\n== province: {r['n_rows']['counties']} counties, {r['n_rows']['panel']:,} panel rows, "
          f"{r['n_rows']['labelled']:,} labelled exited household-years ==")
    print("stages (s): " + ", ".join(f"{k} {v:.1f}" for k, v in r["timings"].items()))
    print(f"wall {wall:.1f} s, CPU {cpu:.1f} s, peak RSS {res['peak_rss_gib']['self']:.2f} GiB (main) / "
          f"{res['peak_rss_gib']['children']:.2f} GiB (largest worker); load {load0} -> {res['load_after']}")
    m = pd.DataFrame(r["metrics"]).T[["roc_auc", "pr_auc", "brier", "recall_at_k"]]
    print(f"held-out year {r['test_year']} (best model: {r['best_model']}, chosen on {r['selection_year']}):")
    print(m.round(4).to_string())
    verdict = "OK" if wall <= 600 and max(res["peak_rss_gib"].values()) <= 16 else "OVER TARGET"
    print(f"target <= 600 s and <= 16 GiB: {verdict}")
    return res


def _in_memory(data: Path, counties: list[str], policy: Policy, train: list[int], test_year: int):
    """The in-memory path: the counties' whole panel as frames, every model on every row."""
    tabs = {t: pd.concat([pd.read_parquet(data / t / f"{c}.parquet") for c in counties], ignore_index=True)
            for t in ("panel", "households", "members")}
    first, _ = store.dataset_years(data, store.dataset_counties(data))
    t0, c0 = time.perf_counter(), _cpu()
    feats = risk.build_features(tabs["panel"], tabs["households"], tabs["members"], policy, first_year=first)
    labels = risk.make_labels(tabs["panel"], tabs["households"], policy, population="exited")
    models = risk.default_models()
    models["boosting"] = risk.BoostingModel(n_threads=1)
    vr = risk.out_of_time(tabs["panel"], tabs["households"], tabs["members"], models, train, test_year,
                          policy=policy, features=feats, labels=labels)
    return vr, feats, {"wall_s": time.perf_counter() - t0, "cpu_s": _cpu() - c0, "panel_rows": len(tabs["panel"])}


def _store_fit(st: store.Store, train: list[int], test_year: int, sample_rows: int | None, cal_rows: int | None,
               income_grid: float | None = None):
    con = large.connect(threads=2)
    cols = large.input_columns(large.store_columns(con, st.features_glob))
    t0, c0 = time.perf_counter(), _cpu()
    fitted, info = large.fit_models(con, st.features_glob, train, large.province_models(n_threads=1), cols,
                                    sample_rows=sample_rows, calibration_rows=cal_rows, income_grid=income_grid)
    vr = large.evaluate(fitted, large.year_rows(con, st.features_glob, test_year), cols, info, train, test_year)
    return vr, info, {"wall_s": time.perf_counter() - t0, "cpu_s": _cpu() - c0}


def _deltas(full, short) -> dict:
    """AUC / capture differences per model and the logit's coefficient differences in SE units."""
    a, b = full.metrics.set_index("model"), short.metrics.set_index("model")
    ea = full.models["logit"].effects(include_fixed_effects=True)
    eb = short.models["logit"].effects(include_fixed_effects=True).reindex(ea.index)
    z = (eb["coef"] - ea["coef"]) / ea["se"]
    return {"auc": {m: float(b.loc[m, "auc"] - a.loc[m, "auc"]) for m in a.index},
            "recall_at_k": {m: float(b.loc[m, "recall_at_k"] - a.loc[m, "recall_at_k"]) for m in a.index},
            "auc_full": {m: float(a.loc[m, "auc"]) for m in a.index},
            "logit_coef_diff_in_se": {t: float(v) for t, v in z.items()},
            "logit_max_abs_coef_diff_in_se": float(np.nanmax(np.abs(z))),
            "logit_max_rel_se_diff": float(np.nanmax(np.abs(eb["se"] / ea["se"] - 1)))}


def compare(data: Path, out: Path, policy: Policy, counties: list[str], seed: int,
            share: tuple[float, float] | None) -> dict:
    """Part 2: shortcuts against the full in-memory fit on ``counties``."""
    t0 = time.perf_counter()
    st = store.build_store(data, out / "store10", policy, counties, workers=2, seed=seed)
    t_store = time.perf_counter() - t0
    con = large.connect(threads=2)
    years = [int(y) for y in large.labelled_years(con, st.features_glob)["year"]]
    test_year, h = years[-1], policy.risk.horizon
    train = [y for y in years if y + h <= test_year]
    full, feats, t_full = _in_memory(data, counties, policy, train, test_year)
    got = pd.read_parquet(out / "store10" / "features").sort_values(["household_id", "year"], ignore_index=True)
    exp = feats[feats["exited"]].reset_index(drop=True)
    num = [c for c in exp.columns if pd.api.types.is_float_dtype(exp[c])]
    feat_diff = float(np.nanmax(np.abs(got[num].to_numpy() - exp[num].to_numpy()))) if len(got) == len(exp) else None
    del feats, exp, got
    usable = large.labelled_years(con, st.features_glob).set_index("year")["usable"]
    n_rows, n_boost, n_cal = int(usable[train].sum()), int(usable[train[:-1]].sum()), int(usable[train[-1]])
    variants = {"same_size": (PROVINCE_SAMPLE_ROWS, PROVINCE_CALIBRATION_ROWS), "logit_income_grid_0.01": (None, None)}
    if share is not None:  # the same shares of the rows as the province run's samples
        variants = {"same_share": (max(1000, round(share[0] * n_boost)), max(1000, round(share[1] * n_cal))),
                    **variants}
    runs = {}
    for name, (rows, cal) in variants.items():  # loop over the shortcut variants
        grid = 0.01 if name.startswith("logit_income_grid") else None
        vr, info, t = _store_fit(st, train, test_year, rows, cal, grid)
        runs[name] = {"sample_rows": rows, "calibration_rows": cal, "fits": info, **t, **_deltas(full, vr)}
    res = {"counties": counties, "panel_rows": t_full["panel_rows"], "train_rows": n_rows, "test_year": test_year,
           "store_s": t_store, "in_memory": t_full, "features_max_abs_diff": feat_diff, "shares": share,
           "variants": runs, "load_after": _load()}
    print(f"\n== 10 counties ({t_full['panel_rows']:,} panel rows, {n_rows:,} training rows), test year {test_year} ==")
    print(f"store features vs in-memory: max |diff| {feat_diff}")
    print(f"in-memory path {t_full['wall_s']:.1f} s wall / {t_full['cpu_s']:.1f} s CPU")
    for name, r in runs.items():
        print(f"-- {name}: sample_rows {r['sample_rows']}, calibration_rows {r['calibration_rows']}, "
              f"{r['wall_s']:.1f} s wall / {r['cpu_s']:.1f} s CPU")
        print("   AUC full: " + ", ".join(f"{m} {v:.4f}" for m, v in r["auc_full"].items()))
        print("   ΔAUC: " + ", ".join(f"{m} {v:+.4f}" for m, v in r["auc"].items())
              + f"   (target |ΔAUC| < 0.005: {'OK' if max(abs(v) for v in r['auc'].values()) < 0.005 else 'NO'})")
        print("   Δrecall@k: " + ", ".join(f"{m} {v:+.4f}" for m, v in r["recall_at_k"].items()))
        print(f"   logit: max |Δcoef| / SE = {r['logit_max_abs_coef_diff_in_se']:.2e}, max |ΔSE|/SE = "
              f"{r['logit_max_rel_se_diff']:.2e}  (target < 1: "
              f"{'OK' if r['logit_max_abs_coef_diff_in_se'] < 1 else 'NO'}); cells {r['fits']['logit']['cells']:,} "
              f"of {r['fits']['logit']['rows']:,} rows")
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("/work/shaanxi"))
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "evalkit_bench_risk_province")
    ap.add_argument("--counties", nargs="*", default=DEFAULT_COUNTIES, help="the 10 counties of the comparison")
    ap.add_argument("--province-counties", nargs="*", default=None, help="restrict the province run (default all)")
    ap.add_argument("--parts", nargs="*", default=["province", "compare"], choices=["province", "compare"])
    ap.add_argument("--share", type=float, nargs=2, default=None, metavar=("BOOSTER", "CALIBRATION"),
                    help="sample shares for the comparison (default: the province run's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    policy = load_policy()
    res: dict = {"data": str(a.data), "cores": os.cpu_count(), "load_start": _load()}

    def dump() -> None:
        if a.json:
            a.json.write_text(json.dumps(res, indent=2, default=float), encoding="utf-8")

    share = a.share
    if "province" in a.parts:
        res["province"] = province(a.data, a.out / "province", policy, a.province_counties, a.seed)
        b = res["province"]["fits"]["validation"]["boosting"]
        share = share if share is not None else (b["booster_rows"] / b["booster_of"],
                                                 b["calibration_rows"] / b["calibration_of"])
        dump()
    if "compare" in a.parts:
        res["compare"] = compare(a.data, a.out, policy, list(a.counties), a.seed, share)
    res["load_end"] = _load()
    dump()
    return 0


if __name__ == "__main__":
    sys.exit(main())
