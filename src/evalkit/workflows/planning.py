"""Design planning and the second phase as workflow calls (CLI ``evalkit plan`` and the county notebook).

* :func:`plan_county`: the cheapest design meeting the stated operating characteristic, from the
  county's register alone (:func:`evalkit.assessment.planner.plan_design`).
* :func:`write_first_phase`: what a second phase needs from a county output folder
  (``first_phase.json``: data directory, county, year, seed, design, alpha), beside ``results.json``.
* :func:`second_phase_for_folder`: the second-phase plan of an assessed county from its output
  folder (``first_phase.json``, or the parameters of a batch run's ``run.json``); the first phase is
  re-run from them (same data and seed, same sample) and checked against ``results.json``.
* :func:`two_phase_assessment`: first phase -> second-phase plan -> second phase drawn on the
  synthetic truth -> final verdict from the union of both phases.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from evalkit.assessment import CriteriaResult, county_context
from evalkit.assessment.criteria import assess_sample
from evalkit.assessment.planner import PlanEngine, PlanResult, plan_design, plan_engine, survey_costs
from evalkit.assessment.second_phase import SecondPhasePlan, look_two_alpha, plan_second_phase
from evalkit.config import Policy
from evalkit.data import load_dataset
from evalkit.errors import ExitAssessmentError, InputError
from evalkit.outputs import write_json
from evalkit.survey import SampleDesign, build_frame, survey_from_truth
from evalkit.survey.second_phase import draw_second_phase
from evalkit.workflows.county_exit import CountyAssessment, assess_county
from evalkit.workflows.data import design_overrides

__all__ = ["CountyPlan", "TwoPhaseAssessment", "plan_county", "write_first_phase", "first_phase_from_folder",
           "second_phase_for", "second_phase_for_folder", "two_phase_assessment", "two_phase_from",
           "design_of_sample", "FIRST_PHASE_FILE"]

#: File beside ``results.json`` holding what a second phase needs.
FIRST_PHASE_FILE = "first_phase.json"


@dataclass
class CountyPlan:
    """The planner's answer for one county (before fieldwork)."""

    county: str
    year: int
    engine: PlanEngine
    result: PlanResult


def _register(data_dir: str | Path, county: str) -> tuple[dict, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    try:
        ds = load_dataset(data_dir, tables=["counties", "villages", "households"], counties=[county], validate=False)
    except InputError as e:
        raise ExitAssessmentError(f"the register in {data_dir} cannot be read: {e}") from None
    t = ds.tables
    if any(t.get(k) is None for k in ("counties", "villages", "households")):
        raise ExitAssessmentError(f"{data_dir} lacks the counties, villages or households table")
    c = t["counties"]
    row = c[c["county_code"].astype(str) == county]
    if row.empty:
        raise ExitAssessmentError(f"county {county} is not in {data_dir}")
    return row.iloc[0].to_dict(), c, t["villages"], t["households"]


def plan_county(data_dir: str | Path, county: str, year: int | None = None, *, policy: Policy,
                cost_village: float | None = None, cost_household: float | None = None, reps: int = 100,
                seed: int = 0, progress: bool = False) -> CountyPlan:
    """The cheapest design whose simulated OC meets ``[survey.plan]``, from the county's register alone.

    Costs: ``[survey.costs]`` (assumed defaults) unless given. ``year`` default: the county's
    planned exit year.
    """
    county = str(county)
    crow, counties, villages, households = _register(data_dir, county)
    if year is None:
        if pd.isna(crow.get("planned_exit_year")):
            raise ExitAssessmentError(f"county {county} has no planned exit year: pass --year")
        year = int(crow["planned_exit_year"])
    eng = plan_engine(households, villages, county, int(year), policy, counties=counties, seed=seed)
    res = plan_design(eng, survey_costs(policy, cost_village, cost_household), n_reps=reps, seed=seed,
                      progress=progress)
    return CountyPlan(county, int(year), eng, res)


def write_first_phase(a: CountyAssessment, output_dir: str | Path, design: SampleDesign, seed: int,
                      data_dir: str | Path) -> Path:
    """Write ``first_phase.json`` (data directory, county, year, seed, design, alpha) into ``output_dir``."""
    rec = {"kind": "evalkit.first_phase", "data_dir": str(Path(data_dir).resolve()),
           "county_code": str(a.county["county_code"]), "year": int(a.year), "seed": int(seed),
           "alpha": round(1.0 - a.confidence, 12), "design": design.as_dict(), "survey_source": a.survey_source}
    return write_json(rec, Path(output_dir) / FIRST_PHASE_FILE)


def first_phase_from_folder(folder: str | Path, policy: Policy) -> tuple[CountyAssessment, SampleDesign, dict]:
    """Re-run the first phase recorded in a county output folder; checked against its ``results.json``."""
    folder = Path(folder)
    res_path = folder / "results.json"
    if not res_path.is_file():
        raise ExitAssessmentError(f"{folder} holds no results.json: not a county output folder")
    results = json.loads(res_path.read_text(encoding="utf-8"))
    fp, run = folder / FIRST_PHASE_FILE, folder / "run.json"
    if fp.is_file():
        rec = json.loads(fp.read_text(encoding="utf-8"))
        design = SampleDesign(**rec["design"])
    elif run.is_file():
        p = json.loads(run.read_text(encoding="utf-8")).get("params", {})
        pf = p.get("policy_file")
        if pf and str(Path(pf).resolve()) not in policy.sources:
            raise ExitAssessmentError(f"{folder}: the run used the policy file {pf}; pass it with --policy")
        rec = {"data_dir": p.get("data_dir"), "county_code": p.get("county_code", results.get("county_code")),
               "year": results.get("year"), "seed": int(p.get("seed", 0) or 0), "alpha": float(p.get("alpha", 0.05))}
        design = SampleDesign(**design_overrides(policy, p.get("villages_poverty"), p.get("villages_non_poverty"),
                                                 p.get("households_exited"), p.get("households_poor"),
                                                 p.get("households_non_registered"), p.get("village_selection")))
    else:
        raise ExitAssessmentError(f"{folder} holds neither {FIRST_PHASE_FILE} nor run.json: the first phase "
                                  "cannot be recovered (write it with evalkit.workflows.planning.write_first_phase)")
    if not rec.get("data_dir") or not Path(rec["data_dir"]).is_dir():
        raise ExitAssessmentError(f"{folder}: the data directory {rec.get('data_dir')!r} of the first phase is gone")
    a = assess_county(rec["data_dir"], str(rec["county_code"]), year=int(rec["year"]), alpha=float(rec["alpha"]),
                      policy=policy, design=design, seed=int(rec["seed"]))
    got = a.result().to_dict()
    if got.get("decision") != results.get("decision") or got.get("data_sha256") != results.get("data_sha256"):
        raise ExitAssessmentError(f"{folder}: re-running the first phase does not give its results.json "
                                  f"(decision {got.get('decision')} vs {results.get('decision')}; the data changed?)")
    return a, design, rec


def design_of_sample(fs: pd.DataFrame, design: SampleDesign) -> SampleDesign:
    """``design`` with the sizes the first-phase sample actually has (a survey brought as a table may have
    been drawn with other sizes than the notebook's): villages per stratum, and per household stratum the
    largest number of households sampled in one village."""
    vps = fs.groupby("stratum")["village_code"].nunique().to_dict()
    per = fs.groupby(["village_code", "hh_stratum"]).size().groupby(level=1).max().to_dict()
    return replace(design, villages_per_stratum={h: int(vps.get(h, 0)) for h in design.villages_per_stratum},
                   households_per_village={k: int(per.get(k, 0)) for k in design.households_per_village})


def second_phase_for(a: CountyAssessment, design: SampleDesign, *, reps: int = 200, seed: int = 0,
                     cost_village: float | None = None, cost_household: float | None = None) -> tuple[PlanEngine,
                                                                                                       SecondPhasePlan]:
    """The second-phase plan of an assessed county (its first-phase survey and verdict)."""
    code = str(a.county["county_code"])
    eng = plan_engine(a.households, a.villages, code, a.year, a.policy, seed=seed)
    design = design_of_sample(a.field_survey, design)
    plan = plan_second_phase(eng, design, a.field_survey, a.criteria.table,
                             survey_costs(a.policy, cost_village, cost_household), a.policy, n_reps=reps, seed=seed)
    return eng, plan


def second_phase_for_folder(folder: str | Path, *, policy: Policy, reps: int = 200, seed: int = 0,
                            cost_village: float | None = None,
                            cost_household: float | None = None) -> tuple[CountyAssessment, SampleDesign,
                                                                          SecondPhasePlan]:
    """The second-phase plan of the county whose outputs are in ``folder``."""
    a, design, _ = first_phase_from_folder(folder, policy)
    _, plan = second_phase_for(a, design, reps=reps, seed=seed, cost_village=cost_village,
                               cost_household=cost_household)
    return a, design, plan


@dataclass
class TwoPhaseAssessment:
    """First phase, second-phase plan, the union sample and the final verdict."""

    first: CountyAssessment
    design: SampleDesign
    plan: SecondPhasePlan
    union: pd.DataFrame | None
    final: CriteriaResult | None
    decision: str
    alpha_two: float | None = None

    def summary(self) -> dict[str, Any]:
        """First and final verdicts, sizes and the look-2 bound."""
        return {"first_verdict": self.plan.first_verdict, "final_verdict": self.decision,
                "first_households": int(len(self.first.field_survey)),
                "union_households": None if self.union is None else int(len(self.union)),
                "z2": None if self.plan.bounds is None else self.plan.bounds[1],
                "alpha_two": self.alpha_two}


def two_phase_assessment(data_dir: str | Path, county: str, year: int | None = None, *, policy: Policy,
                         design: SampleDesign | None = None, seed: int = 0, reps: int = 200) -> TwoPhaseAssessment:
    """First phase -> second-phase plan -> second phase drawn on the synthetic truth -> final verdict.

    A county decided at look 1 keeps its verdict. A borderline one gets the planned second phase
    (seeded with ``seed``), surveyed from the truth table, and is judged on the union of both
    phases (:class:`evalkit.survey.SurveyDesign` with the union's inclusion probabilities and the
    register's population sizes) at the look-2 level of its observed information fraction
    (first-phase households / union households).
    """
    design = SampleDesign.from_policy(policy) if design is None else design
    a = assess_county(data_dir, county, year=year, policy=policy, design=design, seed=seed)
    return two_phase_from(a, design, seed=seed, reps=reps)


def two_phase_from(a: CountyAssessment, design: SampleDesign, *, seed: int = 0, reps: int = 200) -> TwoPhaseAssessment:
    """:func:`two_phase_assessment` from an assessed county (its first phase drawn with ``design``)."""
    policy = a.policy
    _, plan = second_phase_for(a, design, reps=reps, seed=seed)
    if plan.first_verdict != "borderline":
        return TwoPhaseAssessment(a, design, plan, None, None, plan.first_verdict)
    if not a.has_truth:
        raise ExitAssessmentError("drawing the second phase here needs the synthetic truth table; with real data "
                                  "survey the planned households and assess the union")
    code = str(a.county["county_code"])
    frame = build_frame(a.households, a.villages, a.year, design_of_sample(a.field_survey, design))
    union = draw_second_phase(frame, a.field_survey, plan.add_villages, plan.add_households, seed=seed)
    fs = survey_from_truth(union.drop(columns="phase"), a.truth, a.year)
    fs["phase"] = union["phase"].to_numpy()
    t1 = float((union["phase"] == 1).mean())
    _, alpha_two = look_two_alpha(t1, a.confidence, plan.alpha_total)
    ctx = county_context(a.households, code, a.year, policy, confidence=1.0 - alpha_two, villages=a.villages,
                         counties=a.dataset.tables.get("counties") if a.dataset is not None else None)
    final = assess_sample(ctx, fs)
    return TwoPhaseAssessment(a, design, plan, fs, final, final.decision()["overall"], alpha_two)
