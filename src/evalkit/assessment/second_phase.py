"""A second phase for a borderline county: its size, its bound, and the two looks' operating characteristic.

Look 1 is the ordinary first-phase verdict (one-sided error (1 - confidence)/2 = 2.5% per
criterion at its threshold). A county that passes or fails there is decided. A borderline one gets a
second phase (:mod:`evalkit.survey.second_phase`: more villages and households among those not yet
sampled); look 2 judges the union of both phases with a stricter bound z_2 from
:func:`evalkit.survey.second_phase.group_sequential_bounds`, so that over both looks a criterion
at its threshold passes with probability at most ``second_phase_alpha_total`` (5%): cumulative
alpha (a_1, a_2) = ((1 - confidence)/2, alpha_total), correlation sqrt(t_1) with t_1 the first
phase's share of the union's households (the information fraction). The union's intervals are
the assessment's at two-sided level 2 (1 - Phi(z_2)). Stopping for failure at look 1 is
non-binding (it only lowers the pass probability), so the bound is conservative.

Size (:func:`plan_second_phase`): the second phase enlarges the first by a factor k (villages
ceil(k n1_h) per stratum, households ceil(k m1) more per village in the exited and non-registered
strata), k ascending over a grid, until the probability that look 2 decides (all criteria pass,
or one fails) reaches ``second_phase_power`` (80%). That probability is conditional on the first
phase: the first-phase households keep their observed values, the others are a synthetic copy of
the register with the first phase's estimated rates planted (:func:`evalkit.assessment.planner.plant_rates`).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import norm

from evalkit.assessment.criteria import CountyContext, criterion_flags
from evalkit.assessment.fast_criteria import decided_matrix, pass_matrix, replicate_criteria_fast
from evalkit.assessment.planner import PlanEngine, SurveyCosts, plant_rates
from evalkit.assessment.result import CRITERIA
from evalkit.config import Policy
from evalkit.errors import ExitAssessmentError
from evalkit.register import HH_STRATA, VILLAGE_STRATA
from evalkit.survey import SampleDesign, build_frame
from evalkit.survey.replicates import draw_replicates
from evalkit.survey.second_phase import group_sequential_bounds, second_phase_rows

__all__ = ["SecondPhasePlan", "second_phase_settings", "look_two_alpha", "increments_for", "plan_second_phase",
           "two_look_oc", "DEFAULT_SCALES"]

_EXITED, _POOR, _NONREG = HH_STRATA
#: Factors k of the first phase's size searched for the second phase.
DEFAULT_SCALES: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)


def second_phase_settings(policy: Policy) -> tuple[float, float]:
    """(alpha_total, power) of ``[survey.plan]``."""
    p = policy.survey_table("plan")
    if "second_phase_alpha_total" not in p or "second_phase_power" not in p:
        raise ExitAssessmentError("the policy has no [survey.plan] second_phase_alpha_total / second_phase_power")
    return float(p["second_phase_alpha_total"]), float(p["second_phase_power"])


def look_two_alpha(t1: float, confidence: float, alpha_total: float) -> tuple[np.ndarray, float]:
    """Bounds (z_1, z_2) of the two looks and the two-sided alpha of look 2's intervals."""
    a1 = (1.0 - float(confidence)) / 2.0
    if not a1 < alpha_total < 0.5:
        raise ExitAssessmentError(f"second_phase_alpha_total must be in ({a1}, 0.5), got {alpha_total}")
    z = group_sequential_bounds([min(max(float(t1), 1e-6), 1 - 1e-6), 1.0], [a1, float(alpha_total)])
    return z, float(2.0 * norm.sf(z[1]))


def increments_for(first_villages: dict[str, int], design: SampleDesign, k: float,
                   unsampled: dict[str, int]) -> tuple[dict[str, int], dict[str, int]]:
    """(more villages per stratum, more households per village) of scale ``k``."""
    av = {h: int(min(np.ceil(k * first_villages.get(h, 0)), unsampled.get(h, 0))) for h in VILLAGE_STRATA}
    hh = design.households_per_village
    ah = {_EXITED: int(np.ceil(k * hh[_EXITED])), _POOR: 0, _NONREG: int(np.ceil(k * hh[_NONREG]))}
    return av, ah


@dataclass(frozen=True)
class SecondPhasePlan:
    """The second phase of a borderline county and its conditional operating characteristic.

    ``add_villages`` / ``add_households``: the increments (None when the county is decided at look 1);
    ``p_decide`` / ``p_pass``: probability that look 2 decides / passes given the first phase;
    ``t1``, ``bounds`` (z_1, z_2), ``alpha_two`` (two-sided alpha of look 2's intervals);
    ``evaluated`` the scales tried. ``reachable`` False: no scale reached the power (the largest
    tried is returned).
    """

    first_verdict: str
    add_villages: dict | None
    add_households: dict | None
    scale: float | None
    cost: dict | None
    p_decide: float | None
    p_pass: float | None
    t1: float | None
    bounds: list | None
    alpha_two: float | None
    alpha_total: float
    power: float
    reachable: bool
    n_reps: int
    seed: int
    evaluated: pd.DataFrame
    planted_rates: dict

    def union_design(self, design: SampleDesign, first_villages: dict[str, int]) -> dict:
        """Villages per stratum and households per village of the union."""
        av, ah = self.add_villages or {}, self.add_households or {}
        return {"villages_per_stratum": {h: first_villages.get(h, 0) + av.get(h, 0) for h in VILLAGE_STRATA},
                "households_per_village": {k: design.households_per_village[k] + ah.get(k, 0) for k in HH_STRATA}}


def _conditional_truth(engine: PlanEngine, frame_ids: np.ndarray, fs1: pd.DataFrame, policy: Policy,
                       rates: dict, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Planted (fails, approves) of the frame's households, the first phase's observed values kept."""
    fails, appr = plant_rates(engine.size, engine.hh_stratum, rates, np.random.default_rng([int(seed), 20264]))
    flags = criterion_flags(fs1, policy, engine.ctx.year, reasons=False)
    pos = pd.Index(frame_ids).get_indexer(fs1["household_id"].astype(str).to_numpy())
    if (pos < 0).any():
        raise ExitAssessmentError("first-phase households are missing from the county's register")
    fails[pos] = ~flags["meets_standard"].to_numpy(dtype=bool)
    appr[pos] = fs1["approves"].astype(bool).to_numpy()
    return fails, appr


def plan_second_phase(engine: PlanEngine, design: SampleDesign, fs1: pd.DataFrame, first_table: pd.DataFrame,
                      costs: SurveyCosts, policy: Policy, n_reps: int = 200, seed: int = 0,
                      scales: Sequence[float] = DEFAULT_SCALES) -> SecondPhasePlan:
    """How much more sampling makes a borderline county's verdict decide with the stated power.

    ``fs1`` is the first-phase field survey (sample columns and surveyed values), ``first_table``
    its criteria table (:class:`~evalkit.assessment.CriteriaResult` ``.table``: est, verdict);
    ``engine`` the county's :func:`~evalkit.assessment.planner.plan_engine`.
    """
    alpha_total, power = second_phase_settings(policy)
    v = first_table["verdict"].to_numpy()
    verdict = "fail" if (v == "fail").any() else ("pass" if (v == "pass").all() else "borderline")
    est = first_table["est"]
    rates = {c: float(np.nan_to_num(np.clip(est[c], 0.0, 1.0)))
             for c in ("wrongly_exited_rate", "missed_poor_rate", "approval_rate")}
    empty = pd.DataFrame()
    if verdict != "borderline":
        return SecondPhasePlan(verdict, None, None, None, None, None, None, None, None, None, alpha_total, power,
                               True, int(n_reps), int(seed), empty, rates)
    ctx: CountyContext = engine.ctx
    frame = build_frame(engine.households, engine.villages, ctx.year, design)
    ids = frame.households["household_id"].to_numpy().astype(str)
    fails, appr = _conditional_truth(engine, ids, fs1, policy, rates, seed)
    in_first = np.zeros(len(ids), dtype=bool)
    in_first[pd.Index(ids).get_indexer(fs1["household_id"].astype(str).to_numpy())] = True
    v_code = frame.villages["village_code"].to_numpy().astype(str)
    pv = fs1.groupby(fs1["village_code"].astype(str))["prob_village"].first().reindex(v_code).to_numpy(dtype=float)
    vstr = frame.villages["stratum"].to_numpy().astype(str)
    n1 = {h: int((np.isfinite(pv) & (vstr == h)).sum()) for h in VILLAGE_STRATA}
    unsampled = {h: int((~np.isfinite(pv) & (vstr == h)).sum()) for h in VILLAGE_STRATA}
    rows, chosen = [], None
    for k in sorted(float(x) for x in scales):
        av, ah = increments_for(n1, design, k, unsampled)
        res = _look_two(engine, frame, in_first, pv, av, ah, fails, appr, n_reps, seed, alpha_total)
        n_new = res["households"] - len(fs1)
        cost = {"villages": float(sum(av.values())), "households": float(n_new),
                "cost": sum(av.values()) * costs.per_village + n_new * costs.per_household}
        rows.append({"scale": k, **{f"add_villages_{h}": av[h] for h in VILLAGE_STRATA},
                     **{f"add_households_{c}": ah[c] for c in HH_STRATA}, **cost,
                     "p_decide": res["p_decide"], "p_pass": res["p_pass"], "t1": res["t1"], "z2": res["z"][1]})
        chosen = (k, av, ah, cost, res)
        if res["p_decide"] >= power:
            break
    k, av, ah, cost, res = chosen
    return SecondPhasePlan(verdict, av, ah, k, cost, res["p_decide"], res["p_pass"], res["t1"],
                           [float(x) for x in res["z"]], res["alpha_two"], alpha_total, power,
                           bool(res["p_decide"] >= power), int(n_reps), int(seed), pd.DataFrame(rows), rates)


def _look_two(engine: PlanEngine, frame, in_first: np.ndarray, pv: np.ndarray, av: dict, ah: dict,
              fails: np.ndarray, appr: np.ndarray, n_reps: int, seed: int, alpha_total: float) -> dict:
    """Look 2 simulated ``n_reps`` times for one first phase: P(decide), P(pass), t1 and the bound."""
    ctx = engine.ctx
    d = second_phase_rows(frame, in_first, pv, av, ah, np.random.default_rng([int(seed), 20265]), int(n_reps))
    n_union = len(d.rep) / int(n_reps)
    t1 = float(in_first.sum()) / n_union
    z, alpha_two = look_two_alpha(t1, ctx.confidence, alpha_total)
    r = d.row
    rc = replicate_criteria_fast(ctx, d.rep, engine.village_code[r], engine.stratum[r], d.prob_village, d.weight,
                                 engine.hh_stratum[r], engine.size[r], engine.pop_households[r], fails[r], appr[r],
                                 int(n_reps), alpha=alpha_two)[0]
    return {"p_decide": float(decided_matrix(ctx, rc).mean()), "p_pass": float(pass_matrix(ctx, rc)[:, -1].mean()),
            "t1": t1, "z": z, "alpha_two": alpha_two, "households": n_union}


def two_look_oc(engine: PlanEngine, design: SampleDesign, scale: float, n_reps: int = 200, seed: int = 0,
                alpha_total: float = 0.05) -> pd.DataFrame:
    """Operating characteristic of the whole two-look procedure under the engine's planted scenarios.

    Each replicate draws a first phase of ``design``; a borderline one gets one second phase of
    ``scale`` (:func:`increments_for`) and is judged at look 2 with the bound of its information
    fraction. Returns per scenario and criterion (+ 'overall'): ``p_pass_look1`` (first phase
    alone), ``p_pass`` (over both looks), ``p_borderline_look1``, ``n_reps``.
    """
    ctx = engine.ctx
    frame = build_frame(engine.households, engine.villages, ctx.year, design)
    R = int(n_reps)
    d1 = draw_replicates(frame, R, np.random.default_rng([int(seed), 20266]))
    r = d1.row
    rcs = replicate_criteria_fast(ctx, d1.rep, engine.village_code[r], engine.stratum[r], d1.prob_village,
                                  d1.weight, engine.hh_stratum[r], engine.size[r], engine.pop_households[r],
                                  engine.fail[r], engine.approves[r], R)
    v_code = frame.villages["village_code"].to_numpy().astype(str)
    vstr = frame.villages["stratum"].to_numpy().astype(str)
    v_of_row = pd.Index(v_code).get_indexer(engine.village_code)
    rows = []
    rng = np.random.default_rng([int(seed), 20267])
    for s, sc in enumerate(engine.scenarios):
        p1 = pass_matrix(ctx, rcs[s])
        dec = decided_matrix(ctx, rcs[s])
        final = p1.copy()
        for rep in np.flatnonzero(~dec):
            sel = r[d1.rep == rep]
            in_first = np.zeros(len(engine.size), dtype=bool)
            in_first[sel] = True
            pv = np.full(len(v_code), np.nan)
            pv[v_of_row[sel]] = d1.prob_village[d1.rep == rep]
            n1 = {h: int((np.isfinite(pv) & (vstr == h)).sum()) for h in VILLAGE_STRATA}
            un = {h: int((~np.isfinite(pv) & (vstr == h)).sum()) for h in VILLAGE_STRATA}
            av, ah = increments_for(n1, design, scale, un)
            d2 = second_phase_rows(frame, in_first, pv, av, ah, rng, 1)
            z, a2 = look_two_alpha(len(sel) / len(d2.row), ctx.confidence, alpha_total)
            q = d2.row
            rc2 = replicate_criteria_fast(ctx, d2.rep, engine.village_code[q], engine.stratum[q], d2.prob_village,
                                          d2.weight, engine.hh_stratum[q], engine.size[q], engine.pop_households[q],
                                          engine.fail[q, s], engine.approves[q, s], 1, alpha=a2)[0]
            final[rep] = pass_matrix(ctx, rc2)[0]
        for i, c in enumerate([*CRITERIA, "overall"]):
            rows.append({"scenario": sc.name, "checks": sc.checks, "criterion": c,
                         "p_pass_look1": float(p1[:, i].mean()), "p_pass": float(final[:, i].mean()),
                         "p_borderline_look1": float((~dec).mean()), "n_reps": R})
    return pd.DataFrame(rows)
