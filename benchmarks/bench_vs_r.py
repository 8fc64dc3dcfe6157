"""The four exit criteria of one county: evalkit against R's ``survey`` package, same sample.

    python benchmarks/bench_vs_r.py [--reps 30] [--large] [--json PATH]

Cases: the two-stage sample of R's cross-check (``tests/fixtures_r/fixture_fpc.csv``, 219
households) and the first demo county with a planned exit year (``evalkit.synth``, as in
``bench_exit.py``); ``--large`` adds the built frame of ``bench_exit.py`` (300 villages). A
synthetic county's evaluators' sample is drawn once. Each sample is written to a temporary CSV
with what R needs: the raw survey columns, the stage-1 strata and the register's population sizes
(villages per village stratum, households per village x household stratum), the same columns
evalkit's design uses.

Timed, median of ``--reps`` after one warm-up call, in each process's own clock:

* evalkit ``estimate_criteria`` (register context + sample) and ``assess_sample`` (the sample
  part alone: flags, two-stage design, joint ratios, incidence, domain df, intervals, verdicts);
* R, in one ``Rscript`` process: the flags, ``svydesign(ids = ~village_code + household_id,
  strata = ~stratum1 + cell, fpc = ~N_villages + N_households, nest = TRUE)``, ``svyratio``
  of the three rates with ``covmat = TRUE``, the incidence by ``svycontrast``, the domain df
  (``degf`` of the two subsets) — "core" — and, "with KG", also ``svyciprop(method = "beta")``
  of the three rates (R's Korn-Graubard; evalkit's default interval is Korn-Graubard with the
  effective size capped by the finite-population correction, computed from the same est/se/df).

The estimates and SEs of both are printed side by side (they must agree). Without ``Rscript``
or without the ``survey`` package the benchmark says so and times evalkit alone.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_exit import POLICY, built_county, synth_county  # noqa: E402

from evalkit.assessment import estimate_criteria  # noqa: E402
from evalkit.assessment.criteria import (  # noqa: E402
    assess_sample,
    county_context,
    poverty_line_for,
)
from evalkit.assessment.population import finite_population_columns  # noqa: E402
from evalkit.survey import SampleDesign, draw_sample, survey_from_truth  # noqa: E402

R_SCRIPT = r"""
suppressMessages(library(survey))
args <- commandArgs(trailingOnly = TRUE)
raw <- read.csv(args[1], colClasses = c(household_id = "character", village_code = "character"))
cfg <- read.csv(args[2])
reps <- as.integer(args[3]); two_stage <- args[4] == "fpc"
line <- cfg$line; P <- cfg$P; E <- cfg$E; N <- cfg$N; R <- cfg$R
guar <- strsplit(as.character(cfg$guarantees), ";")[[1]]
options(survey.lonely.psu = as.character(cfg$lonely))
for (g in c(guar, "approves")) raw[[g]] <- as.logical(toupper(as.character(raw[[g]])))
design <- function(d, w) {
  if (two_stage)
    svydesign(ids = ~village_code + household_id, strata = ~stratum1 + cell, fpc = ~N_villages + N_households,
              weights = w, data = d, nest = TRUE)
  else svydesign(ids = ~village_code, strata = ~stratum, weights = w, data = d, nest = TRUE)
}
core <- function(raw) {
  d <- raw
  meets <- d$surveyed_income_per_capita > line & rowSums(!as.matrix(d[guar])) == 0
  d$fail <- as.numeric(!meets)
  d$we_num <- d$household_size * (d$hh_stratum == "exited" & !meets)
  d$we_den <- d$household_size * (d$hh_stratum == "exited")
  d$mp_num <- d$household_size * (d$hh_stratum == "non_registered" & !meets)
  d$mp_den <- d$household_size * (d$hh_stratum == "non_registered")
  d$ap <- as.numeric(d$approves); d$one <- 1
  d$wp <- d$weight * d$household_size
  D <- design(d, ~weight)
  rr <- svyratio(~we_num + mp_num + ap, ~we_den + mp_den + one, D, covmat = TRUE)
  V <- vcov(rr); cf <- coef(rr)
  comp <- svycontrast(rr, setNames(c(E / R, N / R), c("we_num/we_den", "mp_num/mp_den")))
  dfs <- c(degf(subset(D, hh_stratum == "exited")), degf(subset(D, hh_stratum == "non_registered")), degf(D))
  list(d = d, est = c(cf[c("we_num/we_den", "mp_num/mp_den", "ap/one")], P / R + coef(comp)),
       se = c(sqrt(diag(V)[c(1, 5, 9)]), SE(comp)), df = dfs)
}
kg <- function(res) {
  Dp <- design(res$d, ~wp)
  Dh <- design(res$d, ~weight)
  list(svyciprop(~fail, subset(Dp, hh_stratum == "exited"), method = "beta"),
       svyciprop(~fail, subset(Dp, hh_stratum == "non_registered"), method = "beta"),
       svyciprop(~ap, Dh, method = "beta"))
}
now <- function() as.numeric(Sys.time())
t0 <- now(); res <- core(raw); first_core <- now() - t0
t0 <- now(); ci <- kg(res); first_kg <- now() - t0
tc <- numeric(reps); tk <- numeric(reps)
for (i in seq_len(reps)) {
  t0 <- now(); res <- core(raw); t1 <- now(); ci <- kg(res); t2 <- now()
  tc[i] <- t1 - t0; tk[i] <- t2 - t0
}
cat(sprintf("R_VERSION %s survey %s\n", R.version.string, as.character(packageVersion("survey"))))
cat(sprintf("R_TIMES first_core=%.6f first_kg=%.6f core=%.6f with_kg=%.6f\n", first_core, first_core + first_kg,
            median(tc), median(tk)))
nm <- c("wrongly_exited_rate", "missed_poor_rate", "approval_rate", "comprehensive_poverty_rate")
for (i in 1:4) cat(sprintf("R_EST %s %.15g %.15g %s\n", nm[i], res$est[i], res$se[i],
                           if (i <= 3) as.character(res$df[i]) else "NA"))
for (i in 1:3) { b <- attr(ci[[i]], "ci"); cat(sprintf("R_KG %s %.15g %.15g\n", nm[i], b[1], b[2])) }
"""


def r_available() -> tuple[str | None, str]:
    """(path of Rscript, why not) — Rscript with the survey package, or None and the reason."""
    rs = shutil.which("Rscript")
    if rs is None:
        return None, "Rscript is not installed"
    ok = subprocess.run([rs, "-e", "suppressMessages(library(survey))"], capture_output=True, text=True)
    if ok.returncode != 0:
        return None, f"R's survey package is not installed ({ok.stderr.strip().splitlines()[-1:]})"
    return rs, ""


def drawn(villages, households, truth, counties, year):
    """(sample, register households, villages, counties, year): the policy's sample of a synthetic county."""
    sample = draw_sample(households, villages, year, SampleDesign.from_policy(POLICY), seed=0)
    return survey_from_truth(sample, truth, year), households, villages, counties, year


def r_fixture():
    """The two-stage sample of ``tests/fixtures_r`` (crosscheck.R, county 610103, 2018): 219 households."""
    fix = Path(__file__).resolve().parents[1] / "tests" / "fixtures_r"
    ids = {"household_id": str, "village_code": str, "county_code": str}
    fs = pd.read_csv(fix / "fixture_fpc.csv", dtype=ids).drop(columns=["N_villages", "N_households"])
    reg = pd.read_csv(fix / "register_fpc.csv", dtype=ids)
    for c in ("registration_year", "exit_year"):
        reg[c] = reg[c].astype("Int64")
    return fs, reg, pd.read_csv(fix / "villages_fpc.csv", dtype=ids), None, 2018


def county_case(fs, households, villages, counties, year):
    """The register context and the R input of one county's sample."""
    county = str(households["county_code"].iloc[0])
    ctx = county_context(households, county, year, POLICY, counties=counties, villages=villages)
    dd = finite_population_columns(fs, ctx.villages_per_stratum, ctx.households_per_cell, county)
    guar = list(POLICY.guarantees)
    r_in = pd.DataFrame({
        "household_id": dd["household_id"].astype(str), "village_code": dd["village_code"].astype(str),
        "stratum1": dd["__stratum1__"], "stratum": dd["stratum"],
        "cell": dd["village_code"].astype(str) + " " + dd["hh_stratum"].astype(str),
        "hh_stratum": dd["hh_stratum"], "N_villages": dd["__N_villages__"], "N_households": dd["__N_households__"],
        "weight": dd["weight"], "household_size": dd["household_size"],
        "surveyed_income_per_capita": dd["surveyed_income_per_capita"], "approves": dd["approves"],
        **{g: dd[g] for g in guar}})
    reg = ctx.register
    cfg = {"line": poverty_line_for(POLICY, year), "P": reg["remaining_poor_persons"], "E": reg["exited_persons"],
           "N": reg["non_registered_persons"], "R": reg["rural_population"], "guarantees": ";".join(guar),
           "lonely": ctx.singleton}
    return county, fs, ctx, r_in, cfg


def time_evalkit(fs, households, villages, counties, county, year, ctx, reps: int) -> dict:
    """Medians (s) of estimate_criteria and assess_sample, after one warm-up call each."""
    def run_full():
        return estimate_criteria(fs, households, county, year, POLICY, counties=counties, villages=villages)

    out = {}
    for key, fn in (("estimate_criteria", run_full), ("assess_sample", lambda: assess_sample(ctx, fs))):
        t0 = time.perf_counter()
        res = fn()
        out[f"{key}_first_s"] = time.perf_counter() - t0
        ts = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        out[f"{key}_s"] = statistics.median(ts)
    out["table"] = res.table
    return out


def run_r(rs: str, r_in: pd.DataFrame, cfg: dict, reps: int, tmp: Path, design: str) -> dict:
    """Run the R script on the sample; its timings and estimates."""
    (tmp / "bench.R").write_text(R_SCRIPT, encoding="utf-8")
    r_in.to_csv(tmp / "sample.csv", index=False)
    pd.DataFrame([cfg]).to_csv(tmp / "cfg.csv", index=False)
    p = subprocess.run([rs, str(tmp / "bench.R"), str(tmp / "sample.csv"), str(tmp / "cfg.csv"), str(reps), design],
                       capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if p.returncode != 0:
        raise RuntimeError(f"Rscript failed: {p.stderr.strip()}")
    out: dict = {"est": {}, "kg": {}}
    for line in p.stdout.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "R_VERSION":
            out["version"] = rest
        elif kind == "R_TIMES":
            out.update({k: float(v) for k, v in (kv.split("=") for kv in rest.split())})
        elif kind == "R_EST":
            c, est, se, df = rest.split()
            out["est"][c] = (float(est), float(se), None if df == "NA" else int(df))
        elif kind == "R_KG":
            c, lo, hi = rest.split()
            out["kg"][c] = (float(lo), float(hi))
    return out


def bench(name: str, case, reps: int, rs: str | None, tmp: Path) -> list[dict]:
    """Both designs of one case: two stages without replacement (villages given) and stage 1 with replacement."""
    fs, households, villages, counties, year = case
    county, fs, ctx, r_in, cfg = county_case(fs, households, villages, counties, year)
    print(f"\n== {name}: county {county}, {year}: {len(fs)} households in {fs['village_code'].nunique()} villages "
          f"(register {len(households):,} households)")
    rows = []
    for design in ("fpc", "wr"):
        vil = villages if design == "fpc" else None
        dctx = ctx if design == "fpc" else county_context(households, county, year, POLICY, counties=counties)
        ev = time_evalkit(fs, households, vil, counties, county, year, dctx, reps)
        row = {"case": name, "design": design, "county": county, "year": year, "n_households": len(fs),
               **{k: round(v, 6) for k, v in ev.items() if k != "table"}}
        rows.append(row)
        what = "two stages, fpc (default)" if design == "fpc" else "stage 1 with replacement"
        print(f"-- design: {what}")
        print(f"evalkit estimate_criteria  {1e3 * ev['estimate_criteria_s']:8.1f} ms median "
              f"(first {1e3 * ev['estimate_criteria_first_s']:.1f} ms)")
        print(f"evalkit assess_sample      {1e3 * ev['assess_sample_s']:8.1f} ms median "
              f"(first {1e3 * ev['assess_sample_first_s']:.1f} ms)")
        if rs is None:
            continue
        r = run_r(rs, r_in, cfg, reps, tmp, design)
        print(f"R survey core              {1e3 * r['core']:8.1f} ms median (first {1e3 * r['first_core']:.1f} ms)")
        print(f"R survey with KG intervals {1e3 * r['with_kg']:8.1f} ms median "
              f"(first {1e3 * r['first_kg']:.1f} ms)   [{r.get('version', '')}]")
        ratio = ev["assess_sample_s"] / r["with_kg"]
        print(f"evalkit / R (with KG): assess_sample {ratio:.2f}, estimate_criteria "
              f"{ev['estimate_criteria_s'] / r['with_kg']:.2f}")
        t = ev["table"]
        diff = 0.0
        for c, (est, se, df) in r["est"].items():
            diff = max(diff, abs(est - t.at[c, "est"]), abs(se - t.at[c, "se"]))
            if df is not None and int(t.at[c, "df"]) != df:
                diff = float("inf")  # a different design: say so loudly
        print(f"largest |evalkit - R| of the four estimates and SEs: {diff:.2e}"
              + ("" if diff < 1e-9 else "   <-- NOT THE SAME COMPUTATION"))
        if design == "fpc":
            print(f"{'criterion':<28} {'evalkit est':>12} {'R est':>12} {'evalkit se':>11} {'R se':>11} {'df':>7}")
            for c, (est, se, df) in r["est"].items():
                dfs = f"{int(t.at[c, 'df'])}/{df}" if df is not None else ""
                print(f"{c:<28} {t.at[c, 'est']:12.6f} {est:12.6f} {t.at[c, 'se']:11.6f} {se:11.6f} {dfs:>7}")
        row.update({"r_version": r.get("version"), "r_core_s": r["core"], "r_with_kg_s": r["with_kg"],
                    "r_first_core_s": r["first_core"], "r_first_kg_s": r["first_kg"],
                    "ratio_assess_sample_to_r": round(ratio, 3), "max_abs_diff_est_se": diff})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--large", action="store_true", help="also the built frame (300 villages)")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    rs, why = r_available()
    load0 = os.getloadavg()
    print(f"load average {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}; "
          + ("R: " + rs if rs else f"R NOT AVAILABLE: {why}; timing evalkit alone"))
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-vs-r-") as t:
        rows.extend(bench("R fixture (fixture_fpc.csv)", r_fixture(), a.reps, rs, Path(t)))
        rows.extend(bench("evalkit.synth demo", drawn(*synth_county()), a.reps, rs, Path(t)))
        if a.large:
            rows.extend(bench("built frame", drawn(*built_county()), a.reps, rs, Path(t)))
    out = {"r_available": rs is not None, "r_missing_reason": why or None, "reps": a.reps,
           "load_avg_before": [round(x, 2) for x in load0], "load_avg_after": [round(x, 2) for x in os.getloadavg()],
           "cases": rows}
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2, default=float) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
