"""Benchmark of the county exit assessment (target: all four criteria of one county in <= 2 s).

    python benchmarks/bench_exit.py [--reps 20] [--oc-reps 1000]

Times, for a synthetic county from ``evalkit.synth`` (demo profile, first poverty county with a
planned exit year) and for a large built frame (300 villages, ~50,000 households):
the frame + draw (:func:`evalkit.survey.draw_sample`), the survey fill
(:func:`evalkit.survey.survey_from_truth`), the estimation of the four criteria
(:func:`evalkit.assessment.estimate_criteria`, first call including svy's warm-up, then the median)
and :func:`evalkit.assessment.operating_characteristic` (all replicates drawn and estimated at once;
target: 1,000 replicates of one design in <= 5 s).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the random county frame of the tests
from frames import frame_county  # noqa: E402

_t0 = time.perf_counter()
from evalkit.assessment import estimate_criteria, operating_characteristic  # noqa: E402  (imports svy)
from evalkit.config import load_policy  # noqa: E402
from evalkit.survey import SampleDesign, draw_sample, survey_from_truth  # noqa: E402
from evalkit.synth import generate_county, profile_counties  # noqa: E402

IMPORT_S = time.perf_counter() - _t0
POLICY = load_policy()
TARGET_S = 2.0


def built_county(county: str = "610199", n_villages: int = 300, mean_hh: int = 170, year: int = 2018, seed: int = 0):
    """A large random county in the canonical model (villages, households, truth, counties)."""
    villages, households, truth = frame_county(seed, county, n_villages, share_poverty=0.3, mean_hh=mean_hh,
                                               year=year, income_median=8000.0, income_sigma=0.3,
                                               guarantee_fail=0.002, approval=0.96)
    counties = pd.DataFrame({"county_code": [county], "rural_population": [int(households["household_size"].sum())]})
    return villages, households, truth, counties, year


def synth_county():
    """The first demo county with a planned exit year, from evalkit.synth."""
    prof = profile_counties("demo")
    spec = next(c for c in prof.counties if c.is_poverty_county and c.planned_exit_year)
    res = generate_county(spec, seed=0, policy=POLICY, scale=prof.default_scale)
    return (res["villages"], res["households"], res["truth"], pd.DataFrame([res["county"]]),
            int(spec.planned_exit_year))


def bench(name: str, villages, households, truth, counties, year: int, reps: int, oc_reps: int) -> float:
    county = str(households["county_code"].iloc[0])
    t0 = time.perf_counter()
    sample = draw_sample(households, villages, year, SampleDesign.from_policy(POLICY), seed=0)
    t_draw = time.perf_counter() - t0
    t0 = time.perf_counter()
    fs = survey_from_truth(sample, truth, year)
    t_fill = time.perf_counter() - t0
    t0 = time.perf_counter()
    crit = estimate_criteria(fs, households, county, year, POLICY, counties=counties)
    t_first = time.perf_counter() - t0
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        estimate_criteria(fs, households, county, year, POLICY, counties=counties)
        times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    operating_characteristic(households, villages, truth, county, year, n_reps=oc_reps, counties=counties,
                             policy=POLICY)
    t_oc = time.perf_counter() - t0
    med = statistics.median(times)
    print(f"\n== {name}: county {county}, {year}: {len(villages)} villages, {len(households):,} households; "
          f"sample {len(fs)} households in {fs['village_code'].nunique()} villages")
    print(f"draw_sample            {t_draw * 1e3:8.1f} ms")
    print(f"survey_from_truth      {t_fill * 1e3:8.1f} ms")
    print(f"estimate_criteria      {t_first * 1e3:8.1f} ms first call, {med * 1e3:.1f} ms median of {reps} "
          f"(target <= {TARGET_S:.0f} s: {'OK' if max(t_first, med) <= TARGET_S else 'SLOW'})")
    print(f"operating_characteristic {t_oc:6.2f} s for {oc_reps} replications "
          f"({1000 * t_oc / oc_reps:.2f} s per 1,000; target <= 5 s: {'OK' if t_oc * 1000 / oc_reps <= 5 else 'SLOW'})")
    print(crit.table[["est", "se", "lci", "uci", "verdict", "official_verdict"]].round(4).to_string())
    print("decision:", crit.decision())
    return max(t_first, med)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--oc-reps", type=int, default=1000)
    a = ap.parse_args()
    print(f"import evalkit.assessment (svy, polars): {IMPORT_S * 1e3:.0f} ms")
    worst = 0.0
    worst = max(worst, bench("evalkit.synth demo", *synth_county(), a.reps, a.oc_reps))
    worst = max(worst, bench("built frame", *built_county(), a.reps, a.oc_reps))
    print(f"\nslowest estimate_criteria: {worst:.3f} s (target {TARGET_S} s)")


if __name__ == "__main__":
    main()
