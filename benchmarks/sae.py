"""Small-area benchmark: village estimates against the synthetic truth.

    .venv/bin/python benchmarks/sae.py --seed 5 [--counties 610625 610630] [--reps 4] [--B 50]
        [--data DIR] [--json PATH] [--speed]
    .venv/bin/python benchmarks/sae.py --seed 0 --speed-only --data /work/shaanxi --B 50 [--draw-missing 2019]
        --json PATH

The demo province (the demo seed unless --data gives a dataset) is sampled ``reps`` times per
county, each time twice: with the policy's design and with a sparse design (30 villages, 6
exited, 1 poor and 3 non-registered households per village, i.e. at most 10 sampled households
per village). For every sample the EBP (bootstrap MSE with B replicates), Fay-Herriot and
direct estimates of every village are compared with the true village values
(:func:`evalkit.sae.ebp.area_indicators` on the truth table). Reported per indicator:
coverage of the 95% MSE-based EBP and FH intervals over all villages (``coverage``), and the
relative RMSE sqrt(mean (est - true)^2) / mean(true) of the direct and model (EBP) estimates over
the sampled villages of the sparse design (``rrmse_direct``, ``rrmse_model``), ``villages``
(village-samples evaluated) and ``seconds`` (mean EBP time per county sample); also FH
(``coverage_fh``, ``rrmse_fh``), the EBP benchmarked to the county direct estimate
(``coverage_benchmarked``, ``rrmse_benchmarked``; its intervals from the bootstrap that re-does the
benchmark in every replicate), the EBP with normal instead of empirical unit
errors (``coverage_normal``, ``rrmse_normal``), the EBP coverage by design (``by_design``) and of
the townships' EBP intervals (``coverage_township``, ``townships``). ``--speed`` adds the time of
the EBP of every village of every county with a field survey (``seconds_all_villages``).
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
from evalkit.data import load_dataset
from evalkit.sae.ebp import INDICATORS, area_indicators
from evalkit.sae.estimates import estimate_villages
from evalkit.sae.units import county_units
from evalkit.survey import SampleDesign, draw_sample, survey_from_truth
from evalkit.synth import generate
from evalkit.workflows.data import DEMO_SEED

SPARSE = {"villages_per_stratum": {"poverty_village": 20, "non_poverty_village": 10},
          "households_per_village": {"exited": 6, "poor": 1, "non_registered": 3}}


def _truth(cu, truth: pd.DataFrame, hh: pd.DataFrame, year: int, townships: bool = False) -> dict[str, np.ndarray]:
    t = truth[truth["year"] == year].set_index("household_id").reindex(hh["household_id"])
    u = cu.units
    area, n = (u.township, u.n_townships) if townships else (u.area, u.n_areas)
    tv = area_indicators(area, u.size, u.group, t["true_poor"].to_numpy(float)[:, None],
                         t["true_income_per_capita"].to_numpy(float)[:, None], n)
    return {k: v[:, 0] for k, v in tv.items()}


def run(data: Path, counties: list[str], reps: int, B: int, seed: int) -> dict:
    pol = load_policy()
    ds = load_dataset(data, tables=["counties", "villages", "village_indicators", "households", "panel", "truth"],
                      counties=counties, validate=False)
    rows, secs, tw_rows = [], [], []
    for c in counties:
        crow = ds["counties"].set_index("county_code").loc[c]
        year = int(crow["planned_exit_year"])
        hh = ds["households"][ds["households"]["county_code"] == c].reset_index(drop=True)
        vil = ds["villages"][ds["villages"]["county_code"] == c].reset_index(drop=True)
        panel = ds["panel"]
        rec = panel[(panel["year"] == year) & (panel["county_code"] == c)]
        rec = rec.set_index("household_id")["income_per_capita"]
        for design_name, design in (("default", SampleDesign.from_policy(pol)), ("sparse",
                                    SampleDesign.from_policy(pol, **SPARSE))):
            for r in range(reps):
                s = draw_sample(hh, vil, year, design=design, seed=seed * 1000 + r)
                fs = survey_from_truth(s, ds["truth"], year).reset_index(drop=True)
                cu = county_units(hh, vil, fs, year, pol.poverty_line(year), pol.guarantees, rec,
                                  ds.tables.get("village_indicators"))
                tv = _truth(cu, ds["truth"], hh, year)
                t0 = time.time()
                eb = estimate_villages(cu, fs, "ebp", B=B, seed=r, benchmark=True)
                secs.append(time.time() - t0)
                tt = _truth(cu, ds["truth"], hh, year, townships=True)
                tw_rows += [pd.DataFrame({"indicator": k, "true": tt[k], "lci": eb.townships[k]["lci"].to_numpy(),
                                          "uci": eb.townships[k]["uci"].to_numpy()}) for k in INDICATORS]
                fh = estimate_villages(cu, fs, "fh", benchmark=False)
                ebb = eb        # est, mse, lci, uci do not depend on the benchmark; its own columns are added
                ebn = estimate_villages(cu, fs, "ebp", B=B, seed=r, benchmark=False, errors="normal")
                for k in INDICATORS:
                    de = eb.direct.est[k].reindex(cu.village_codes).to_numpy(float)
                    rows.append(pd.DataFrame({
                        "county": c, "design": design_name, "rep": r, "indicator": k, "village": cu.village_codes,
                        "true": tv[k], "direct": de, "n": eb.direct.n[k].reindex(cu.village_codes).to_numpy(float),
                        "ebp": eb.frames[k]["est"].to_numpy(), "ebp_lci": eb.frames[k]["lci"].to_numpy(),
                        "ebp_uci": eb.frames[k]["uci"].to_numpy(), "fh": fh.frames[k]["est"].to_numpy(),
                        "fh_lci": fh.frames[k]["lci"].to_numpy(), "fh_uci": fh.frames[k]["uci"].to_numpy(),
                        "ebpb": ebb.frames[k]["est_benchmarked"].to_numpy(),
                        "ebpb_lci": ebb.frames[k]["lci_benchmarked"].to_numpy(),
                        "ebpb_uci": ebb.frames[k]["uci_benchmarked"].to_numpy(),
                        "ebpn": ebn.frames[k]["est"].to_numpy(),
                        "ebpn_lci": ebn.frames[k]["lci"].to_numpy(), "ebpn_uci": ebn.frames[k]["uci"].to_numpy()}))
    df = pd.concat(rows, ignore_index=True)
    df = df[np.isfinite(df["true"])]
    out = {"coverage": {}, "coverage_fh": {}, "coverage_benchmarked": {}, "coverage_normal": {}, "rrmse_direct": {},
           "rrmse_model": {}, "rrmse_fh": {}, "rrmse_benchmarked": {}, "rrmse_normal": {}, "by_design": {},
           "villages": int(len(df) // len(INDICATORS)), "seconds": float(np.mean(secs)), "reps": reps, "B": B,
           "counties": counties}
    tw = pd.concat(tw_rows, ignore_index=True)
    tw = tw[np.isfinite(tw["true"])]
    out["coverage_township"] = {k: float(((g["lci"] <= g["true"] + 1e-12) & (g["true"] <= g["uci"] + 1e-12)).mean())
                                for k, g in tw.groupby("indicator")}
    out["townships"] = int(len(tw) // len(INDICATORS))
    for k, g in df.groupby("indicator"):
        # tiny tolerance: a village whose true rate is exactly 0 and interval [0, x] is covered
        out["coverage"][k] = float(((g["ebp_lci"] <= g["true"] + 1e-12) & (g["true"] <= g["ebp_uci"] + 1e-12)).mean())
        for key, col in (("coverage_fh", "fh"), ("coverage_benchmarked", "ebpb"), ("coverage_normal", "ebpn")):
            lo, hi = g[f"{col}_lci"], g[f"{col}_uci"]
            out[key][k] = float(((lo <= g["true"] + 1e-12) & (g["true"] <= hi + 1e-12)).mean())
        for dn, gd in g.groupby("design"):
            out["by_design"].setdefault(dn, {})[k] = float(
                ((gd["ebp_lci"] <= gd["true"] + 1e-12) & (gd["true"] <= gd["ebp_uci"] + 1e-12)).mean())
        sp = g[(g["design"] == "sparse") & np.isfinite(g["direct"]) & (g["n"] <= 10)]
        m = sp["true"].mean()
        for key, col in (("rrmse_direct", "direct"), ("rrmse_model", "ebp"), ("rrmse_fh", "fh"),
                         ("rrmse_benchmarked", "ebpb"), ("rrmse_normal", "ebpn")):
            out[key][k] = float(np.sqrt(((sp[col] - sp["true"]) ** 2).mean()) / m) if len(sp) and m > 0 else None
    return out


def _county_survey(data: Path, c: str, draw_year: int | None, pol, villages: pd.DataFrame
                   ) -> tuple[pd.DataFrame, pd.Series, pd.DataFrame, float]:
    """One county's households, recorded incomes of the survey year and field survey, read straight from the
    generator's partition files (only the columns and the year needed); with ``draw_year``, a county without a
    field survey gets a policy sample drawn from the truth (the seconds of that drawing are returned apart)."""
    hh = pd.read_parquet(data / "households" / f"{c}.parquet")
    fpath, t_draw = data / "field_survey" / f"{c}.parquet", 0.0
    fs = pd.read_parquet(fpath) if fpath.exists() else pd.DataFrame()
    if not len(fs) and draw_year is not None:
        t0 = time.time()
        truth = pd.read_parquet(data / "truth" / f"{c}.parquet", filters=[("year", "==", draw_year)])
        s = draw_sample(hh, villages, draw_year, design=SampleDesign.from_policy(pol), seed=int(c))
        fs = survey_from_truth(s, truth, draw_year).assign(survey_year=draw_year)
        t_draw = time.time() - t0
    if not len(fs):
        return hh, pd.Series(dtype=float), fs, t_draw
    year = int(fs["survey_year"].iloc[0])
    rec = pd.read_parquet(data / "panel" / f"{c}.parquet", columns=["household_id", "year", "income_per_capita"],
                          filters=[("year", "==", year)]).set_index("household_id")["income_per_capita"]
    return hh, rec, fs.reset_index(drop=True), t_draw


def speed(data: Path, B: int, draw_year: int | None = None, only: list[str] | None = None) -> dict:
    """EBP (bootstrap MSE with B replicates) of every village of every county with a field survey
    (with ``draw_year``: of every county, a policy sample drawn from the truth where there is no survey).

    One county at a time (its partition files read directly), so that memory stays that of the largest
    county; ``seconds_all_villages`` is the estimation time (units and EBP), ``seconds_load`` the reading
    time, ``seconds_draw`` that of drawing samples, ``households_all`` the register households."""
    pol = load_policy()
    vil_all = pd.read_parquet(data / "villages.parquet")
    vi_path = data / "village_indicators.parquet"
    indicators = pd.read_parquet(vi_path) if vi_path.exists() else None
    folder = "households" if draw_year is not None else "field_survey"
    codes = sorted(p.stem for p in (data / folder).glob("*.parquet") if not only or p.stem in only)
    t_all, t_load, t_draws, n_v, n_h, per = 0.0, 0.0, 0.0, 0, 0, {}
    for c in codes:                    # a loop over counties; everything inside is whole-array
        t0 = time.time()
        vil = vil_all[vil_all["county_code"] == c].reset_index(drop=True)
        hh, rec, fs, t_draw = _county_survey(data, c, draw_year, pol, vil)
        if not len(fs):
            continue
        year = int(fs["survey_year"].iloc[0])
        t1 = time.time()
        cu = county_units(hh, vil, fs, year, pol.poverty_line(year), pol.guarantees, rec, indicators)
        estimate_villages(cu, fs, "ebp", B=B, seed=0)
        t2 = time.time()
        t_load += t1 - t0 - t_draw
        t_draws += t_draw
        t_all += t2 - t1
        n_v += len(vil)
        n_h += len(hh)
        per[c] = round(t2 - t1, 3)
        del hh, rec, fs, cu
    return {"seconds_all_villages": t_all, "seconds_load": t_load, "seconds_draw": t_draws, "villages_all": n_v,
            "households_all": n_h,
            "counties_all": len(per), "seconds_by_county": per}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--counties", nargs="*", default=["610625", "610630", "610622"])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--B", type=int, default=50)
    ap.add_argument("--data", type=Path)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--speed", action="store_true", help="also time the EBP of every village of the dataset")
    ap.add_argument("--speed-only", action="store_true",
                    help="only time the EBP of every village of --data (e.g. the Shaanxi profile); no coverage run")
    ap.add_argument("--draw-missing", type=int, metavar="YEAR",
                    help="with --speed-only: a county without a field survey gets a policy sample of YEAR (truth)")
    ap.add_argument("--speed-counties", nargs="*", help="with --speed-only: only these counties (a trial run)")
    a = ap.parse_args()
    if a.speed_only:
        if a.data is None:
            ap.error("--speed-only needs --data")
        res = speed(a.data, a.B, a.draw_missing, a.speed_counties)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            data = a.data or generate("demo", seed=DEMO_SEED, out=Path(tmp) / "demo", counties=a.counties,
                                      policy=load_policy(), field_survey=a.speed)
            res = run(Path(data), a.counties, a.reps, a.B, a.seed)
            if a.speed:
                res.update(speed(Path(a.data) if a.data else Path(data), a.B))
    print(json.dumps(res, indent=2, sort_keys=True))
    if a.json:
        a.json.write_text(json.dumps(res, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
