"""Coverage benchmark: do the exit criteria's intervals cover the truth as often as they claim?

    .venv/bin/python benchmarks/coverage.py --seed 7301 --reps 500 [--counties 610603 610622 ...]
        [--data DIR] [--json PATH]

On the demo province (generated with the demo seed unless --data gives a dataset), every county is
sampled ``reps`` times with the policy's design; each replicate is estimated (all replicates at once,
:func:`evalkit.assessment.replicate_criteria`, the same estimator as a real assessment) and every
candidate interval method is applied. Reported: coverage of the true criteria
(:func:`evalkit.assessment.true_rates`) and mean width per criterion and method, and for each
method the probability that a criterion passes when the truth is placed at its threshold
(:func:`evalkit.assessment.set_truth`: should be at most 2.5%, never above 5%) and at the target
(wrongly-exited 1.0%, missed-poor 1.0%, approval 95%, the incidence following from the register:
should be at least 80%), with the county's overall pass at the target. "At the threshold" puts the
true rate at or just beyond the threshold on the failing side (``set_truth(..., side="failing")``),
so a pass is always a wrong decision. The replicates are drawn all at once
(:func:`evalkit.survey.replicates.draw_replicates`) and estimated all at once
(:func:`evalkit.assessment.simulation.draws_criteria`). Averages over the counties are printed and
written (``--json``) as ``{"coverage": {criterion: {method: v}}, "width": ..., "p_pass": {criterion:
{"at_threshold": v, "at_target": v}} (the policy's interval method), "p_pass_by_method", "reps",
"seconds_per_1000_reps" (wall: draw and estimate one scenario), "cpu_seconds_per_1000_reps",
"by_county"}``.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from evalkit.assessment import CRITERIA, county_context, set_truth, true_rates
from evalkit.assessment.simulation import draws_criteria
from evalkit.assessment.verdicts import verdicts
from evalkit.config import load_policy
from evalkit.data import load_dataset
from evalkit.survey import SampleDesign, build_frame
from evalkit.survey.replicates import draw_replicates
from evalkit.synth import generate
from evalkit.workflows.data import DEMO_SEED

METHODS = ("korn_graubard", "korn_graubard_deff1", "korn_graubard_fpc", "logit", "wilson", "wilson_deff1",
           "wilson_fpc", "wald")
DEFAULT_COUNTIES = ("610603", "610622", "610625", "610630")
TARGET = {"wrongly_exited_rate": 0.01, "missed_poor_rate": 0.01, "approval_rate": 0.95}


def _scenario(ctx, frame, draws, truth_y: pd.DataFrame):
    return draws_criteria(ctx, frame, draws, truth_y)


def county(ds, policy, code: str, reps: int, seed: int) -> dict:
    """Coverage, width and pass probabilities of one county."""
    t = ds.tables
    counties = t["counties"]
    year = int(counties.loc[counties["county_code"] == code, "planned_exit_year"].iloc[0])
    hh = t["households"][t["households"]["county_code"] == code]
    vil = t["villages"][t["villages"]["county_code"] == code]
    truth_y = t["truth"][(t["truth"]["year"] == year) & t["truth"]["household_id"].isin(hh["household_id"])]
    design = SampleDesign.from_policy(policy)
    frame = build_frame(hh, vil, year, design)
    ss = np.random.SeedSequence([seed, int(code)])
    t0, c0 = time.perf_counter(), time.process_time()
    draws = draw_replicates(frame, reps, np.random.default_rng(ss))
    t_draw = time.perf_counter() - t0
    ctx = county_context(hh, code, year, policy, counties=counties, villages=vil)
    thr = ctx.thresholds
    thr_v = np.array([thr[c]["value"] for c in CRITERIA])
    direction = np.array([thr[c]["direction"] for c in CRITERIA], dtype=object)
    t1 = time.perf_counter()
    rc = _scenario(ctx, frame, draws, truth_y)
    t_est = time.perf_counter() - t1
    cpu = time.process_time() - c0  # CPU seconds: the wall time of a shared machine says little
    tr = true_rates(hh, truth_y, code, year, policy, counties).reindex(list(CRITERIA)).to_numpy()
    out: dict = {"year": year, "true": dict(zip(CRITERIA, tr.tolist())), "reps": reps, "ok": float(rc.ok.mean()),
                 "seconds_draw": t_draw, "seconds_estimate": t_est, "cpu_seconds": cpu, "coverage": {}, "width": {},
                 "p_pass": {}}
    rng = np.random.default_rng([seed, int(code), 1])
    at_thr = {c: _scenario(ctx, frame, draws, set_truth(truth_y, hh, year, c, thr[c]["value"], rng, policy,
                                                            side="failing")) for c in TARGET}
    tgt_truth = truth_y
    for c, v in TARGET.items():
        tgt_truth = set_truth(tgt_truth, hh, year, c, v, rng, policy)
    at_tgt = _scenario(ctx, frame, draws, tgt_truth)
    out["true_at_target"] = dict(zip(CRITERIA, true_rates(hh, tgt_truth, code, year, policy, counties)
                                     .reindex(list(CRITERIA)).tolist()))
    for m in METHODS:
        lo, hi = rc.intervals(m)
        cov = ((lo <= tr) & (tr <= hi))[rc.ok].mean(axis=0)
        out["coverage"][m] = dict(zip(CRITERIA, cov.tolist()))
        out["width"][m] = dict(zip(CRITERIA, (hi - lo)[rc.ok].mean(axis=0).tolist()))
        pp = {}
        for i, c in enumerate(CRITERIA):
            if c in at_thr:
                s = at_thr[c]
                lo_t, hi_t = s.intervals(m)
                v, _ = verdicts(s.est[:, i], lo_t[:, i], hi_t[:, i], thr_v[i], direction[i])
                pp[c] = {"at_threshold": float(((v == "pass") & s.ok).mean())}
        lo_g, hi_g = at_tgt.intervals(m)
        v = np.stack([verdicts(at_tgt.est[:, i], lo_g[:, i], hi_g[:, i], thr_v[i], direction[i])[0]
                      for i in range(len(CRITERIA))], axis=1)
        for i, c in enumerate(CRITERIA):
            pp.setdefault(c, {})["at_target"] = float(((v[:, i] == "pass") & at_tgt.ok).mean())
        pp["overall"] = {"at_target": float(((v == "pass").all(axis=1) & at_tgt.ok).mean())}
        out["p_pass"][m] = pp
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=7301)
    ap.add_argument("--reps", type=int, default=500)
    ap.add_argument("--counties", nargs="*", default=list(DEFAULT_COUNTIES))
    ap.add_argument("--data", type=Path, default=None, help="dataset directory (default: the demo, generated)")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    policy = load_policy()
    with tempfile.TemporaryDirectory() as tmp:
        data = a.data or generate("demo", seed=DEMO_SEED, out=Path(tmp) / "demo", policy=policy)
        ds = load_dataset(data)
        by = {c: county(ds, policy, c, a.reps, a.seed) for c in a.counties}
    mean = lambda key: {c: {m: float(np.mean([by[k][key][m][c] for k in by])) for m in METHODS}  # noqa: E731
                        for c in CRITERIA}
    p_by = {c: {m: {s: float(np.mean([by[k]["p_pass"][m][c][s] for k in by])) for s in by[a.counties[0]]["p_pass"]
                    [m][c]} for m in METHODS} for c in [*CRITERIA, "overall"]}
    chosen = policy.survey.ci_method
    p_pass = {c: p_by[c][chosen] for c in p_by}
    secs = sum(by[k]["seconds_draw"] + by[k]["seconds_estimate"] for k in by)
    res = {"coverage": mean("coverage"), "width": mean("width"), "p_pass": p_pass, "p_pass_by_method": p_by,
           "ci_method": chosen, "design": SampleDesign.from_policy(policy).as_dict(), "reps": a.reps,
           "seconds_per_1000_reps": 1000 * secs / (a.reps * len(by)),
           "cpu_seconds_per_1000_reps": 1000 * sum(by[k]["cpu_seconds"] for k in by) / (a.reps * len(by)),
           "seconds_per_1000_reps_estimation_only": 1000 * sum(by[k]["seconds_estimate"] for k in by)
           / (a.reps * len(by)),
           "seed": a.seed, "counties": a.counties, "by_county": by}
    for key in ("coverage", "width"):
        print(f"\n{key} (mean over {len(by)} counties, {a.reps} replicates each)")
        print(pd.DataFrame(res[key]).T.round(4).to_string())
    print("\nP(pass) at threshold / at target")
    print(pd.DataFrame({m: {f"{c}:{s}": v[m][s] for c, v in p_by.items() for s in v[m]} for m in METHODS})
          .round(3).to_string())
    for k in by:
        print(f"\n{k} true {np.round(list(by[k]['true'].values()), 4).tolist()} coverage")
        print(pd.DataFrame(by[k]["coverage"]).round(3).to_string())
    print(f"\nseconds per 1000 replicates: {res['seconds_per_1000_reps']:.1f} "
          f"(estimation only {res['seconds_per_1000_reps_estimation_only']:.2f}; CPU "
          f"{res['cpu_seconds_per_1000_reps']:.1f})")
    if a.json:
        a.json.write_text(json.dumps(res, indent=1))
    return res


if __name__ == "__main__":
    main()
