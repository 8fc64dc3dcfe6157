"""The cheapest field design whose simulated operating characteristic meets stated targets, before fieldwork.

From a county's register alone (households with their stratum and size, villages with theirs) the
planner plants known rates in a synthetic copy of the register (every household meets the exit
standard and approves, then, as :func:`evalkit.assessment.set_truth` does, a random set of exited /
non-registered households holding the chosen share of persons fails and a random share of households
approves: :func:`plant_rates`), replays the evaluation on many simulated
samples of a candidate design (the two-stage draw of :func:`evalkit.survey.replicates.draw_replicates`,
the estimator, intervals and verdicts of the assessment) and keeps the design when

* at every criterion's threshold (the other criteria at their targets) the criterion passes in at
  most ``max_p_pass_at_threshold`` of the samples (5%), and
* at the targets (wrongly-exited 1.0%, missed-poor 1.0%, approval 95%, incidence at most 1.5% in
  the west and 1.0% in the centre) the county passes in at least ``min_p_pass_at_target`` (80%).

The search (:func:`plan_design`) runs over a coarse grid of a fraction of the villages of every
village stratum and of households per village of the exited and non-registered strata (the poor
stratum keeps the policy's size), with a monotone staircase; see the function.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from evalkit.assessment.criteria import CountyContext, county_context, county_households
from evalkit.assessment.fast_criteria import decided_matrix, pass_matrix, replicate_criteria_fast
from evalkit.assessment.result import CRITERIA
from evalkit.config import Policy
from evalkit.errors import ExitAssessmentError
from evalkit.register import HH_STRATA, VILLAGE_STRATA
from evalkit.survey import SampleDesign, build_frame
from evalkit.survey.replicates import draw_replicates, pps_probabilities

__all__ = [
    "SurveyCosts", "PlanTargets", "Scenario", "PlanEngine", "DesignOC", "PlanResult", "survey_costs",
    "plan_targets", "register_truth", "plan_engine", "design_oc", "design_cost", "plan_design",
    "DEFAULT_FRACTIONS", "grid_design", "DEFAULT_HOUSEHOLD_GRID", "replicate_criteria_fast", "pass_matrix",
    "decided_matrix", "plan_scenarios", "design_with", "plant_rates", "planted_true_rates", "village_table"
]

_EXITED, _POOR, _NONREG = HH_STRATA
#: Fractions of the villages of every village stratum searched (at least 2 villages).
DEFAULT_FRACTIONS: tuple[float, ...] = (  # a search grid, not a threshold
    0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)  # not a threshold
#: Households per village of the exited and non-registered strata searched.
DEFAULT_HOUSEHOLD_GRID: tuple[int, ...] = (5, 10, 15, 20, 25, 30, 40, 50, 60, 80, 100, 150, 200)


# --------------------------------------------------------------------------------------------
# policy: costs and targets
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SurveyCosts:
    """Field cost of a design: ``per_village`` (yuan per sampled village) and ``per_household``."""

    per_village: float
    per_household: float

    def __post_init__(self) -> None:
        if not (self.per_village >= 0 and self.per_household >= 0):
            raise ExitAssessmentError(f"survey costs must be non-negative, got {self}")


@dataclass(frozen=True)
class PlanTargets:
    """Operating characteristic a plan must meet, and the rates planted for it."""

    max_p_pass_at_threshold: float
    min_p_pass_at_target: float
    target: dict[str, float]


def _plan_section(policy: Policy) -> dict:
    return {"costs": policy.survey_table("costs"), "plan": policy.survey_table("plan")}


def survey_costs(policy: Policy, per_village: float | None = None, per_household: float | None = None) -> SurveyCosts:
    """Costs of ``[survey.costs]`` (stated assumptions), overridden by the arguments."""
    c = _plan_section(policy)["costs"]
    return SurveyCosts(float(c["per_village"] if per_village is None else per_village),
                       float(c["per_household"] if per_household is None else per_household))


def plan_targets(policy: Policy, region: str) -> PlanTargets:
    """Targets of ``[survey.plan]`` for a county of ``region`` (the incidence target is regional)."""
    p = _plan_section(policy)["plan"]
    inc = p["target_comprehensive_poverty_rate"]
    return PlanTargets(float(p["max_p_pass_at_threshold"]), float(p["min_p_pass_at_target"]), {
        "wrongly_exited_rate": float(p["target_wrongly_exited_rate"]),
        "missed_poor_rate": float(p["target_missed_poor_rate"]),
        "approval_rate": float(p["target_approval_rate"]),
        "comprehensive_poverty_rate": float(inc[region] if isinstance(inc, dict) else inc)})


# --------------------------------------------------------------------------------------------
# the synthetic register and its scenarios
# --------------------------------------------------------------------------------------------
def register_truth(households: pd.DataFrame, year: int, policy: Policy, fails: np.ndarray | None = None,
                   approves: np.ndarray | None = None) -> pd.DataFrame:
    """A truth table of ``year`` built from the register alone (households in the given order).

    Households that do not fail have ten times the poverty line (above any province's exit income
    test) and every guarantee; failing ones (``fails``) half the line. ``approves`` default all True.
    """
    line = policy.poverty_line(year)
    n = len(households)
    f = np.zeros(n, dtype=bool) if fails is None else np.asarray(fails, dtype=bool)
    return pd.DataFrame({"household_id": households["household_id"].astype(str).to_numpy(), "year": int(year),
                         "true_income_per_capita": np.where(f, 0.5 * line, 10.0 * line),
                         **{f"true_{g}": True for g in policy.guarantees},
                         "true_approves": np.ones(n, dtype=bool) if approves is None else np.asarray(approves, bool)})


@dataclass(frozen=True)
class Scenario:
    """Planted rates and the criterion whose pass probability is checked (``'overall'`` at the target)."""

    name: str
    checks: str
    rates: dict[str, float]


def _shared_rate(ctx: CountyContext, incidence: float) -> float:
    """Wrongly-exited = missed-poor rate q giving the incidence (P + q (E + N)) / R."""
    r = ctx.register
    return (incidence * r["rural_population"] - r["remaining_poor_persons"]) / (r["exited_persons"]
                                                                              + r["non_registered_persons"])


def plan_scenarios(ctx: CountyContext, targets: PlanTargets) -> list[Scenario]:
    """The target scenario and one threshold scenario per criterion.

    At the target, wrongly-exited and missed-poor are both the target rate, lowered together when
    the register's remaining poor would push the incidence above its target. At the incidence
    threshold both rates equal the q that puts the incidence at its threshold (the scenario is
    dropped when no q in [0, 1] does).
    """
    tg = dict(targets.target)
    q_t = _shared_rate(ctx, tg["comprehensive_poverty_rate"])
    base = {"wrongly_exited_rate": min(tg["wrongly_exited_rate"], max(q_t, 0.0)),
            "missed_poor_rate": min(tg["missed_poor_rate"], max(q_t, 0.0)), "approval_rate": tg["approval_rate"]}
    out = [Scenario("target", "overall", base)]
    thr = ctx.thresholds
    for c in ("wrongly_exited_rate", "missed_poor_rate", "approval_rate"):
        out.append(Scenario(f"threshold:{c}", c, {**base, c: float(thr[c]["value"])}))
    q = _shared_rate(ctx, float(thr["comprehensive_poverty_rate"]["value"]))
    if 0.0 <= q <= 1.0:
        out.append(Scenario("threshold:comprehensive_poverty_rate", "comprehensive_poverty_rate",
                            {**base, "wrongly_exited_rate": q, "missed_poor_rate": q}))
    return out


@dataclass(frozen=True)
class PlanEngine:
    """A county ready for fast simulation: register arrays in frame order and the planted scenarios.

    ``fail`` and ``approves`` are (H, S) booleans of the scenarios (households in the order of
    :func:`evalkit.survey.build_frame`'s ``households``); ``true`` the true criteria of each scenario.
    """

    ctx: CountyContext
    households: pd.DataFrame
    villages: pd.DataFrame
    default_design: SampleDesign
    size: np.ndarray
    hh_stratum: np.ndarray
    village_code: np.ndarray
    stratum: np.ndarray
    pop_households: np.ndarray
    fail: np.ndarray
    approves: np.ndarray
    scenarios: list[Scenario]
    true: pd.DataFrame
    targets: PlanTargets


def plant_rates(size: np.ndarray, hh_stratum: np.ndarray, rates: dict[str, float],
                rng: np.random.Generator, at_least: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(fails, approves) of every household with the rates planted, as :func:`set_truth` plants them.

    Wrongly-exited (missed-poor): a random set of exited (non-registered) households, the prefix of
    a random permutation whose persons come nearest to the rate times the stratum's persons;
    approval: round(rate x households) random households approve. Everyone else meets the standard.
    ``at_least`` (threshold scenarios): households are indivisible, so the failing persons are at
    least the rate (the first prefix reaching it) and the approving households at most the rate,
    never on the passing side of a threshold.
    """
    fails = np.zeros(len(size), dtype=bool)
    for crit, st in (("wrongly_exited_rate", _EXITED), ("missed_poor_rate", _NONREG)):
        idx = np.flatnonzero(hh_stratum == st)
        perm = idx[rng.permutation(len(idx))]
        cum = np.concatenate([[0.0], np.cumsum(size[perm])])
        goal = float(rates.get(crit, 0.0)) * size[idx].sum()
        k = (int(np.searchsorted(cum, goal * (1 - 1e-12), side="left")) if at_least
             else int(np.argmin(np.abs(cum - goal))))
        fails[perm[:min(k, len(perm))]] = True
    approves = np.zeros(len(size), dtype=bool)
    a = float(rates.get("approval_rate", 1.0)) * len(size)
    approves[rng.permutation(len(size))[:int(np.floor(a + 1e-9) if at_least else np.rint(a))]] = True
    return fails, approves


def planted_true_rates(ctx: CountyContext, size: np.ndarray, hh_stratum: np.ndarray, fails: np.ndarray,
                       approves: np.ndarray) -> dict[str, float]:
    """True criteria of a planted register (the definitions of :func:`evalkit.assessment.true_rates`)."""
    ex, nr = hh_stratum == _EXITED, hh_stratum == _NONREG
    we, mp = float((size * (ex & fails)).sum()), float((size * (nr & fails)).sum())
    reg = ctx.register
    return {"wrongly_exited_rate": we / float(size[ex].sum()), "missed_poor_rate": mp / float(size[nr].sum()),
            "approval_rate": float(approves.mean()),
            "comprehensive_poverty_rate": (reg["remaining_poor_persons"] + we + mp) / reg["rural_population"]}


def plan_engine(households: pd.DataFrame, villages: pd.DataFrame, county: str, year: int, policy: Policy, *,
                counties: pd.DataFrame | None = None, seed: int = 0,
                scenarios: Sequence[Scenario] | None = None) -> PlanEngine:
    """Prepare the county's register for :func:`design_oc` (planted scenarios, seeded)."""
    county, year = str(county), int(year)
    hh = county_households(households, county)
    vil = villages.loc[villages["county_code"].astype(str).to_numpy() == county]
    ctx = county_context(hh, county, year, policy, counties=counties, villages=vil)
    targets = plan_targets(policy, ctx.region)
    scen = list(plan_scenarios(ctx, targets) if scenarios is None else scenarios)
    design = SampleDesign.from_policy(policy)
    frame = build_frame(hh, vil, year, design)
    fh = frame.households.to_pandas()
    size = fh["household_size"].to_numpy(dtype=float)
    hs = fh["hh_stratum"].to_numpy().astype(str)
    if not ((hs == _EXITED).any() and (hs == _NONREG).any()):
        raise ExitAssessmentError(f"county {county} has no exited or no non-registered household in {year}")
    rng = np.random.default_rng([int(seed), 20261])
    planted = [plant_rates(size, hs, sc.rates, rng, at_least=sc.checks != "overall") for sc in scen]
    true = pd.DataFrame([planted_true_rates(ctx, size, hs, f, a) for f, a in planted],
                        index=[sc.name for sc in scen])[list(CRITERIA)]
    vmap = frame.villages.to_pandas().set_index("village_code")["stratum"]
    vcode = fh["village_code"].to_numpy().astype(str)
    cells = pd.MultiIndex.from_arrays([vcode, hs])
    return PlanEngine(ctx=ctx, households=hh, villages=vil, default_design=design, size=size, hh_stratum=hs,
                      village_code=vcode, stratum=vmap.reindex(vcode).to_numpy().astype(str),
                      pop_households=ctx.households_per_cell.reindex(cells).to_numpy(dtype=float),
                      fail=np.column_stack([f for f, _ in planted]), approves=np.column_stack([a for _, a in planted]),
                      scenarios=scen, true=true, targets=targets)


# --------------------------------------------------------------------------------------------
# one design: operating characteristic and cost
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DesignOC:
    """Simulated pass probabilities of a design: ``p_pass`` (scenario x criterion + 'overall')."""

    design: SampleDesign
    p_pass: pd.DataFrame
    n_reps: int
    feasible: bool
    p_pass_at_threshold: dict[str, float]
    p_pass_at_target: float

    def mc_se(self, p: float) -> float:
        """Monte Carlo standard error of a probability estimated from ``n_reps`` replicates."""
        return float(np.sqrt(max(p * (1.0 - p), 1e-12) / self.n_reps))


def design_with(base: SampleDesign, villages: dict[str, int], households: dict[str, int]) -> SampleDesign:
    """``base`` with other villages per stratum and households per village (keys kept)."""
    return replace(base, villages_per_stratum={**base.villages_per_stratum, **villages},
                   households_per_village={**base.households_per_village, **households})


def design_oc(engine: PlanEngine, design: SampleDesign, n_reps: int = 200, seed: int = 0) -> DesignOC:
    """Pass probabilities of ``design`` under every planted scenario of ``engine`` (same samples for all).

    Samples: :func:`evalkit.survey.replicates.draw_replicates` with ``default_rng([seed, 20263])``.
    """
    if int(n_reps) < 10:
        raise ExitAssessmentError(f"n_reps must be at least 10, got {n_reps}")
    frame = build_frame(engine.households, engine.villages, engine.ctx.year, design)
    d = draw_replicates(frame, int(n_reps), np.random.default_rng([int(seed), 20263]))
    r = d.row
    rcs = replicate_criteria_fast(engine.ctx, d.rep, engine.village_code[r], engine.stratum[r], d.prob_village,
                                  d.weight, engine.hh_stratum[r], engine.size[r], engine.pop_households[r],
                                  engine.fail[r], engine.approves[r], int(n_reps))
    cols = [*CRITERIA, "overall"]
    p = pd.DataFrame([pass_matrix(engine.ctx, rc).mean(axis=0) for rc in rcs], columns=cols,
                     index=[s.name for s in engine.scenarios])
    t = engine.targets
    at_thr = {s.checks: float(p.at[s.name, s.checks]) for s in engine.scenarios if s.checks != "overall"}
    at_tgt = float(p.at["target", "overall"])
    ok = max(at_thr.values()) <= t.max_p_pass_at_threshold and at_tgt >= t.min_p_pass_at_target
    return DesignOC(design, p, int(n_reps), bool(ok), at_thr, at_tgt)


def village_table(engine: PlanEngine) -> pd.DataFrame:
    """Villages of the frame: stratum, households and households per household stratum (columns HH_STRATA)."""
    cells = pd.crosstab(pd.Series(engine.village_code, name="village_code"), pd.Series(engine.hh_stratum, name="s"))
    cells = cells.reindex(columns=list(HH_STRATA), fill_value=0)
    st = pd.Series(engine.stratum, index=engine.village_code).groupby(level=0).first()
    return cells.assign(stratum=st.reindex(cells.index).to_numpy(), n_hh=cells.sum(axis=1).to_numpy())


def design_cost(engine: PlanEngine, design: SampleDesign, costs: SurveyCosts,
                villages: pd.DataFrame | None = None) -> dict[str, float]:
    """Expected villages, households and cost of ``design`` in the county.

    Villages: the design's (capped at the stratum). Households: sum over villages of the
    inclusion probability (PPS with certainty units, or SRS) times min(m, M) over the household
    strata; cost = villages x per_village + households x per_household. ``villages``:
    :func:`village_table` (computed when None).
    """
    vt = village_table(engine) if villages is None else villages
    m = np.array([design.households_per_village[k] for k in HH_STRATA], dtype=float)
    per_v = np.minimum(vt[list(HH_STRATA)].to_numpy(dtype=float), m[None, :]).sum(axis=1)
    n_v, n_h = 0.0, 0.0
    for h in VILLAGE_STRATA:
        sel = (vt["stratum"] == h).to_numpy()
        n = min(int(design.villages_per_stratum.get(h, 0)), int(sel.sum()))
        if n == 0:
            continue
        pi = (pps_probabilities(vt["n_hh"].to_numpy(dtype=float)[sel], n)
              if design.pps else np.full(int(sel.sum()), n / sel.sum()))
        n_v += n
        n_h += float((pi * per_v[sel]).sum())
    return {"villages": n_v, "households": n_h, "cost": n_v * costs.per_village + n_h * costs.per_household}


# --------------------------------------------------------------------------------------------
# the search
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PlanResult:
    """The cheapest feasible design found (``design`` None when none of the grid is feasible).

    ``oc`` is its operating characteristic (or, when unreachable, that of ``best``, the evaluated
    design with the highest pass probability at the target among those meeting the threshold
    bound); ``evaluated`` lists every simulated design with its cost and OC summary.
    """

    design: SampleDesign | None
    cost: dict[str, float] | None
    oc: DesignOC | None
    best: DesignOC | None
    evaluated: pd.DataFrame
    costs: SurveyCosts
    targets: PlanTargets
    true: pd.DataFrame
    n_reps: int
    seed: int
    seconds: float


def _feasible_screen(oc: DesignOC, t: PlanTargets) -> bool:
    """False when a small-sample OC is clearly infeasible (3 Monte Carlo SEs away)."""
    thr = max(oc.p_pass_at_threshold.values())
    return (oc.p_pass_at_target + 3 * oc.mc_se(oc.p_pass_at_target) >= t.min_p_pass_at_target
            and thr - 3 * oc.mc_se(thr) <= t.max_p_pass_at_threshold)


def grid_design(engine: PlanEngine, fraction: float, households: int) -> SampleDesign:
    """The design of the planner's family: villages max(2, ceil(fraction x N_h)) per village stratum
    (capped at N_h), ``households`` per village in the exited and the non-registered strata."""
    vps = engine.ctx.villages_per_stratum or {}
    vv = {h: int(min(vps.get(h, 0), max(2, int(np.ceil(fraction * vps.get(h, 0) - 1e-9))))) for h in VILLAGE_STRATA}
    return design_with(engine.default_design, vv, {_EXITED: int(households), _NONREG: int(households)})


def _evaluated_row(oc: DesignOC, cost: dict) -> dict:
    d = oc.design
    return {**{f"villages_{h}": d.villages_per_stratum[h] for h in VILLAGE_STRATA},
            **{f"households_{k}": d.households_per_village[k] for k in HH_STRATA}, **cost,
            "p_pass_at_target": oc.p_pass_at_target, "max_p_pass_at_threshold": max(oc.p_pass_at_threshold.values()),
            "n_reps": oc.n_reps, "feasible": oc.feasible}


def _key(d: SampleDesign) -> tuple:
    return tuple(d.villages_per_stratum.items()), tuple(d.households_per_village.items())


def plan_design(engine: PlanEngine, costs: SurveyCosts, n_reps: int = 200, seed: int = 0, *,
                fractions: Sequence[float] = DEFAULT_FRACTIONS,
                household_grid: Sequence[int] = DEFAULT_HOUSEHOLD_GRID, screen_reps: int | None = None,
                progress: bool = False) -> PlanResult:
    """The cheapest design of the grid whose simulated OC meets ``engine.targets``.

    Family (:func:`grid_design`): a fraction f of the villages of every village stratum (at least
    2) x m households per village in the exited and non-registered strata (the poor stratum keeps
    the policy's size); m capped at the largest cell. Feasibility is taken as monotone in f and m,
    so the smallest feasible m is non-increasing in f: a staircase over f ascending (from the
    largest m not costlier than the best found, lowering m while the design stays feasible and
    cheaper) simulates about |f| + |m| designs and returns the cheapest feasible one of the grid.
    Every design is simulated with the same seed (a result is a function of the design); with
    ``screen_reps`` (default n_reps / 4, at least 25) it is first simulated with fewer replicates
    and rejected when clearly infeasible (3 Monte Carlo SEs).
    """
    import time

    t0 = time.perf_counter()
    t = engine.targets
    vt = village_table(engine)
    m_cap = int(max(vt[_EXITED].max(), vt[_NONREG].max()))
    ms = sorted({min(int(m), m_cap) for m in household_grid if int(m) >= 1})
    fs = sorted({float(f) for f in fractions if 0 < float(f) <= 1})
    cache: dict[tuple, DesignOC] = {}
    rows: list[dict] = []
    screen = int(screen_reps) if screen_reps else max(int(n_reps) // 4, 25)

    def cost(d: SampleDesign) -> float:
        return design_cost(engine, d, costs, vt)["cost"]

    def evaluate(d: SampleDesign) -> DesignOC:
        key = _key(d)
        if key not in cache:
            oc = design_oc(engine, d, screen, seed) if screen < n_reps else None
            if oc is None or _feasible_screen(oc, t):
                oc = design_oc(engine, d, n_reps, seed)
            cache[key] = oc
            rows.append(_evaluated_row(oc, design_cost(engine, d, costs, vt)))
            if progress:
                print(f"  {len(cache):3d} {rows[-1]}", flush=True)
        return cache[key]

    best_d, best_c, j = None, np.inf, len(ms) - 1
    for f in fs:
        if cost(grid_design(engine, f, ms[0])) >= best_c:
            break  # every larger fraction costs more at any m
        k = j  # the smallest feasible m of f is at most ms[j] (monotone)
        while k >= 0 and cost(grid_design(engine, f, ms[k])) >= best_c:
            k -= 1
        if k < 0 or not evaluate(grid_design(engine, f, ms[k])).feasible:
            continue  # lower m are infeasible too; higher ones cost more than the best
        best_d, j = grid_design(engine, f, ms[k]), k
        best_c = cost(best_d)
        while j > 0:
            d = grid_design(engine, f, ms[j - 1])
            if cost(d) >= best_c or not evaluate(d).feasible:
                break
            best_d, best_c, j = d, cost(d), j - 1
    ocs = [o for o in cache.values() if o.n_reps == n_reps] or list(cache.values())
    ok_thr = [o for o in ocs if max(o.p_pass_at_threshold.values()) <= t.max_p_pass_at_threshold] or ocs
    best = max(ok_thr, key=lambda o: o.p_pass_at_target) if ok_thr else None
    return PlanResult(design=best_d, cost=design_cost(engine, best_d, costs, vt) if best_d is not None else None,
                      oc=cache[_key(best_d)] if best_d is not None else None, best=best,
                      evaluated=pd.DataFrame(rows), costs=costs, targets=t, true=engine.true, n_reps=int(n_reps),
                      seed=int(seed), seconds=time.perf_counter() - t0)
