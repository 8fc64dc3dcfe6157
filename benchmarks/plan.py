"""Planner and two-look benchmark: the planned design's cost and OC, and the second phase's error control.

    .venv/bin/python benchmarks/plan.py --seed 9101 --reps 200 [--counties 610622 610625] [--data DIR]
        [--scale 1.0] [--first VP VN ME MP MN] [--alpha-total A] [--skip-planner] [--json PATH]

For each county (register of the demo province unless --data): the planner's cheapest design
(:func:`evalkit.assessment.planner.plan_design`, seconds, evaluations), its OC re-simulated with
another seed and another planted truth, and the operating characteristic of the two-look procedure
at the policy's design (:func:`evalkit.assessment.second_phase.two_look_oc`, second phase ``--scale``
times the first): P(pass) of each criterion at its threshold after look 1 alone and over both looks
(should stay <= 5%), and the county's P(pass) at the target.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from evalkit.assessment import planner as pl
from evalkit.assessment.second_phase import second_phase_settings, two_look_oc
from evalkit.config import load_policy
from evalkit.data import load_dataset
from evalkit.survey import SampleDesign
from evalkit.synth import generate
from evalkit.workflows.data import DEMO_SEED

DEFAULT_COUNTIES = ("610622", "610625")


def county(data: Path, code: str, policy, reps: int, seed: int, scale: float, first: list[int] | None = None,
           alpha_total: float | None = None, skip_planner: bool = False) -> dict:
    """Planner result and two-look OC of one county."""
    ds = load_dataset(data, tables=["counties", "villages", "households"], counties=[code], validate=False)
    t = ds.tables
    year = int(t["counties"].loc[t["counties"]["county_code"] == code, "planned_exit_year"].iloc[0])
    eng = pl.plan_engine(t["households"], t["villages"], code, year, policy, counties=t["counties"], seed=seed)
    out: dict = {"year": year}
    res = None if skip_planner else pl.plan_design(eng, pl.survey_costs(policy), n_reps=reps, seed=seed)
    if res is not None:
        out.update({"planner_seconds": res.seconds, "evaluated": len(res.evaluated),
                    "design": None if res.design is None else res.design.as_dict(), "cost": res.cost})
    if res is not None and res.design is not None:
        other = pl.plan_engine(t["households"], t["villages"], code, year, policy, counties=t["counties"],
                               seed=seed + 1)
        oc = pl.design_oc(other, res.design, 2 * reps, seed=seed + 1)
        out["oc_planned"] = {"at_target": res.oc.p_pass_at_target, "at_threshold": res.oc.p_pass_at_threshold}
        out["oc_resimulated"] = {"at_target": oc.p_pass_at_target, "at_threshold": oc.p_pass_at_threshold,
                                 "reps": 2 * reps}
    alpha_total = second_phase_settings(policy)[0] if alpha_total is None else alpha_total
    design = SampleDesign.from_policy(policy) if not first else SampleDesign.from_policy(
        policy, villages_per_stratum={"poverty_village": first[0], "non_poverty_village": first[1]},
        households_per_village={"exited": first[2], "poor": first[3], "non_registered": first[4]})
    t0 = time.perf_counter()
    two = two_look_oc(eng, design, scale, n_reps=reps, seed=seed, alpha_total=alpha_total)
    out["two_look_design"] = design.as_dict()
    out["alpha_total"] = alpha_total
    out["two_look_seconds"] = time.perf_counter() - t0
    checked = two[(two["criterion"] == two["checks"])]
    out["two_look"] = {r.scenario: {"criterion": r.criterion, "p_pass_look1": r.p_pass_look1, "p_pass": r.p_pass,
                                    "p_borderline_look1": r.p_borderline_look1} for r in checked.itertuples()}
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=9101)
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--counties", nargs="*", default=list(DEFAULT_COUNTIES))
    ap.add_argument("--data", type=Path, default=None,
                    help="dataset directory (default: the tests' demo profile, generated with the demo seed)")
    ap.add_argument("--scale", type=float, default=1.0, help="second phase size, times the first phase")
    ap.add_argument("--first", type=int, nargs=5, default=None, metavar=("VP", "VN", "ME", "MP", "MN"),
                    help="first-phase design of the two-look OC (default the policy's)")
    ap.add_argument("--alpha-total", type=float, default=None, help="default [survey.plan] second_phase_alpha_total")
    ap.add_argument("--skip-planner", action="store_true")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    policy = load_policy()
    with tempfile.TemporaryDirectory() as tmp:
        data = a.data or generate("demo", seed=DEMO_SEED, out=Path(tmp) / "demo", policy=policy)
        res = {code: county(data, code, policy, a.reps, a.seed, a.scale, a.first, a.alpha_total, a.skip_planner)
               for code in a.counties}
    text = json.dumps(res, indent=2, default=float)
    print(text)
    if a.json:
        a.json.write_text(text + "\n", encoding="utf-8")
    return res


if __name__ == "__main__":
    main()
