"""Incomes, guarantees, registration and the yearly dynamics of one synthetic county.

Steps 3-5 of the generating process (see :mod:`evalkit.synth`): baseline income and guarantees in
2014, the noisy registration of 2014-2016, then year by year shocks, guarantee fixes, exits under
the county's plan, register status, assistance, approval and next year's income from the
logistic risk process. Each step draws from the county's random stream in a fixed order, so the
same seed always gives the same county.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from evalkit.synth.params import YEARS
from evalkit.synth.people import HouseholdFeatures
from evalkit.synth.profiles import CountySpec

__all__ = ["GUARANTEE_FLAGS", "SHOCK_FLAGS", "Layout", "Register", "History", "logistic",
           "exact_persons_subset", "baseline_income", "baseline_guarantees", "register_households",
           "simulate_years"]

#: Guarantee flags of the panel (True = the guarantee holds), in generation order.
GUARANTEE_FLAGS: tuple[str, ...] = ("food_clothing_ok", "education_ok", "medical_ok", "housing_ok", "water_ok")
#: Shock flags of the panel, in generation order.
SHOCK_FLAGS: tuple[str, ...] = ("shock_illness", "shock_disability", "shock_disaster", "shock_accident",
                                "shock_project_failure", "shock_job_loss")


def logistic(z: np.ndarray) -> np.ndarray:
    """The logistic function 1 / (1 + e^-z)."""
    return 1.0 / (1.0 + np.exp(-z))


def exact_persons_subset(order: np.ndarray, sizes: np.ndarray, target: int) -> np.ndarray:
    """Indices (from ``order``, in priority) whose sizes sum exactly to ``target`` when possible.

    Greedy prefix, then fill the gap with the next households that fit (the gap is small, so this
    loop runs a handful of times, not once per row).
    """
    cs = np.cumsum(sizes[order])
    k = int(np.searchsorted(cs, target, side="right"))
    chosen = list(order[:k])
    gap = target - (int(cs[k - 1]) if k else 0)
    rest = order[k:]
    while gap > 0 and len(rest):
        fit = rest[sizes[rest] <= gap]
        if not len(fit):
            break
        pick = fit[np.argmax(sizes[fit])]
        chosen.append(pick)
        gap -= int(sizes[pick])
        rest = rest[rest != pick]
    return np.array(chosen, dtype=np.int64)


@dataclass(frozen=True)
class Layout:
    """Households of a county and where they live (one entry per household unless noted).

    ``forced_type`` is the poverty type of a documented register block ('' outside it);
    ``forced_lab`` is 1 / -1 when the block must (not) have labour; ``hh_v`` the village index;
    ``u_v`` and ``is_poverty_village`` are per village; ``has_register_block`` tells whether the
    county has a documented register block (exact register targets).
    """

    sizes: np.ndarray
    forced_type: np.ndarray
    forced_lab: np.ndarray
    hh_v: np.ndarray
    hh_ids: np.ndarray
    village_codes: np.ndarray
    u_v: np.ndarray
    is_poverty_village: np.ndarray
    has_register_block: bool

    @property
    def n_households(self) -> int:
        """Number of households."""
        return len(self.sizes)

    @property
    def n_villages(self) -> int:
        """Number of villages."""
        return len(self.u_v)


@dataclass(frozen=True)
class Register:
    """Registration of 2014-2016: who, when, poverty type and main cause (None if not registered)."""

    registered: np.ndarray
    registration_year: np.ndarray
    poverty_type: np.ndarray
    main_cause: np.ndarray

    def transfer_level(self, t: int) -> np.ndarray:
        """Transfers per capita in year ``t`` by poverty type (dibao / tekun standards rise over time)."""
        f = 1.0 + 0.06 * (t - 2014)
        pt = self.poverty_type
        return np.where(pt == "tekun", 4200 * f, np.where(pt == "dibao", 1900 * f, 0.0)).astype(float)


@dataclass
class History:
    """Yearly arrays (rows = :data:`evalkit.synth.params.YEARS`, columns = households) and exits."""

    rec_income: np.ndarray
    true_income: np.ndarray
    guarantees: dict[str, np.ndarray]
    recorded_guarantees: dict[str, np.ndarray]
    shocks: dict[str, np.ndarray]
    assistance: np.ndarray
    assistance_amount: np.ndarray
    status: np.ndarray
    event: np.ndarray
    event_prob: np.ndarray
    approves: np.ndarray
    exited: np.ndarray
    exit_year: np.ndarray
    forced_exit: np.ndarray

    @classmethod
    def empty(cls, n_hh: int) -> "History":
        """All-zero history for ``n_hh`` households."""
        n_y = len(YEARS)
        return cls(
            rec_income=np.zeros((n_y, n_hh)), true_income=np.zeros((n_y, n_hh)),
            guarantees={k: np.zeros((n_y, n_hh), bool) for k in GUARANTEE_FLAGS},
            recorded_guarantees={k: np.zeros((n_y, n_hh), bool) for k in GUARANTEE_FLAGS},
            shocks={k: np.zeros((n_y, n_hh), bool) for k in SHOCK_FLAGS},
            assistance=np.zeros((n_y, n_hh), bool), assistance_amount=np.zeros((n_y, n_hh)),
            status=np.empty((n_y, n_hh), dtype=object), event=np.zeros((n_y, n_hh), bool),
            event_prob=np.full((n_y, n_hh), np.nan), approves=np.zeros((n_y, n_hh), bool),
            exited=np.zeros(n_hh, bool), exit_year=np.zeros(n_hh, np.int64), forced_exit=np.zeros(n_hh, bool),
        )


def baseline_income(layout: Layout, feats: HouseholdFeatures, income_params: dict[str, Any],
                    county_effect: float, line_2014: float, rng: np.random.Generator) -> np.ndarray:
    """True per-capita income of 2014: log-normal around the line with county, village and
    household effects and the effects of labour, disability, chronic illness and dependants."""
    ip = income_params
    alpha_h = rng.normal(0, ip["sigma_household"], layout.n_households)
    log_ratio0 = (ip["base_log_ratio_to_line"] + county_effect + layout.u_v[layout.hh_v] + alpha_h
                  + ip["beta_able_share"] * feats.able_share
                  + ip["beta_disability"] * feats.has_disability + ip["beta_chronic"] * feats.has_chronic
                  + ip["beta_dependent_share"] * feats.dependent_share)
    if layout.has_register_block:
        # the documented register block is poor by construction (relative poverty in Guangdong)
        blk = layout.forced_type != ""
        log_ratio0 = np.where(blk, rng.normal(-0.25, 0.3, layout.n_households), log_ratio0 + 0.35)
    return line_2014 * np.exp(log_ratio0)


def baseline_guarantees(layout: Layout, feats: HouseholdFeatures, pz: np.ndarray,
                        rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Guarantees of 2014 (True = ok); food/clothing and housing fail more often the poorer
    the household (``pz`` = log income relative to the line), water by village."""
    n_hh = layout.n_households
    food = rng.random(n_hh) >= logistic(-4.5 - 2.0 * pz)
    housing = rng.random(n_hh) >= logistic(-2.4 - 1.8 * pz)
    dry_village = rng.random(layout.n_villages) < np.where(layout.is_poverty_village, 0.12, 0.04)
    water = ~(dry_village[layout.hh_v] & (rng.random(n_hh) < 0.6))
    return {"food_clothing_ok": food, "education_ok": ~feats.has_dropout, "medical_ok": feats.all_insured,
            "housing_ok": housing, "water_ok": water}


def _registered(spec: CountySpec, layout: Layout, score: np.ndarray, truly_poor0: np.ndarray) -> np.ndarray:
    """Who is registered: the documented block, else the lowest scores (as many persons as the
    spec names, or as many households as are truly poor)."""
    n_hh = layout.n_households
    if layout.has_register_block:
        return layout.forced_type != ""
    registered = np.zeros(n_hh, bool)
    if spec.register_persons:
        order = np.argsort(score, kind="stable")
        k = int(np.searchsorted(np.cumsum(layout.sizes[order]), spec.register_persons))
        registered[order[: k + 1]] = True
    else:
        registered[np.argsort(score, kind="stable")[: int(truly_poor0.sum())]] = True
    return registered


def register_households(spec: CountySpec, layout: Layout, feats: HouseholdFeatures, params: dict[str, Any],
                        y: np.ndarray, pz: np.ndarray, g: dict[str, np.ndarray], line_2014: float,
                        noise_sd: float, rng: np.random.Generator) -> Register:
    """Registration as a noisy view of true poverty, with poverty type and main cause."""
    n_hh = layout.n_households
    n_fail0 = sum((~g[k]).astype(int) for k in GUARANTEE_FLAGS)
    score = pz + rng.normal(0, noise_sd, n_hh) - params["registration"]["guarantee_weight"] * n_fail0
    registered = _registered(spec, layout, score, (y <= line_2014) | (n_fail0 > 0))
    yp = params["registration"]["year_probs"]
    reg_year = np.where(registered, rng.choice([int(k) for k in yp], n_hh, p=list(yp.values())), 0)
    u1, u2 = rng.random(n_hh), rng.random(n_hh)
    f = feats
    ptype = np.where(f.no_labour & (layout.sizes <= 2) & (f.is_elderly | f.has_disability) & (u1 < 0.8), "tekun",
            np.where((f.no_labour | f.has_disability | f.has_chronic) & (u2 < 0.7), "dibao", "general")).astype(object)
    if layout.has_register_block:
        ptype = np.where(layout.forced_type != "", layout.forced_type, ptype)
    ptype = np.where(registered, ptype, None)
    other_causes = np.array(["lack_funds", "lack_skills", "lack_land", "lack_water", "disaster",
                             "poor_transport", "lack_motivation"], dtype=object)
    oc = other_causes[rng.choice(len(other_causes), n_hh, p=[0.35, 0.25, 0.1, 0.08, 0.08, 0.07, 0.07])]
    cause = np.where(f.has_chronic & (u1 < 0.6), "illness", np.where(f.has_disability, "disability",
            np.where(f.n_school >= 2, "schooling", np.where(f.no_labour, "lack_labour", oc)))).astype(object)
    cause = np.where(registered, cause, None)
    return Register(registered, reg_year, ptype, cause)


@dataclass
class _YearlyProcess:
    """State of the yearly dynamics of one county; :meth:`run` fills a :class:`History`."""

    spec: CountySpec
    layout: Layout
    feats: HouseholdFeatures
    reg: Register
    params: dict[str, Any]
    draws: dict[str, float]
    line: dict[int, float]
    mline: dict[int, float]
    g: dict[str, np.ndarray]
    y: np.ndarray
    rng: np.random.Generator
    h: History = field(init=False)
    has_dis: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.h = History.empty(self.layout.n_households)
        self.has_dis = self.feats.has_disability.copy()
        self.init_reg_persons = int(self.layout.sizes[self.reg.registered].sum())

    def run(self) -> History:
        h, n_hh = self.h, self.layout.n_households
        for i, t in enumerate(YEARS):
            t = int(t)
            reg_now = self.reg.registered & (self.reg.registration_year <= t)
            poor_now = reg_now & ~h.exited
            self._shocks(i, t, reg_now)
            ok_all = self._guarantees(i, poor_now)
            # recorded income: assessment noise for the registered poor, exact otherwise
            noise = np.exp(self.rng.normal(0, self.params["exit"]["recorded_income_noise_sd"], n_hh))
            rec = np.where(poor_now, self.y * noise, self.y)
            rg = {k: self.g[k].copy() for k in GUARANTEE_FLAGS}
            if 2015 <= t <= 2020 and poor_now.any():
                rec = self._exits(t, poor_now, rec, rg, ok_all)
                poor_now = reg_now & ~h.exited
            rec = np.round(rec)
            h.rec_income[i] = rec
            for k in GUARANTEE_FLAGS:
                h.recorded_guarantees[k][i] = rg[k]
            shock_any = self._status_and_assistance(i, t, poor_now, rec, rg)
            truly_not_ok = (self.y <= self.line[t]) | ~ok_all
            ap = self.params["approval"]
            h.approves[i] = self.rng.random(n_hh) < self.draws["approval_base"] - ap["penalty_if_poor"] * (
                truly_not_ok & (h.exited | ~reg_now))
            if i + 1 < len(YEARS):
                self._next_income(i, t, poor_now, rec, shock_any)
        return h

    def _shocks(self, i: int, t: int, reg_now: np.ndarray) -> None:
        """Shocks at t (illness, disability onset, village disasters, accidents, projects, jobs)."""
        sh, rng, n_hh, s = self.params["shocks"], self.rng, self.layout.n_households, self.h.shocks
        chronic = self.feats.has_chronic
        s["shock_illness"][i] = rng.random(n_hh) < sh["illness"] + sh["illness_chronic_extra"] * chronic
        s["shock_disability"][i] = rng.random(n_hh) < sh["disability_onset"]
        vdis = rng.random(self.layout.n_villages) < sh["village_disaster"]
        s["shock_disaster"][i] = vdis[self.layout.hh_v] & (rng.random(n_hh) < sh["disaster_hit"])
        s["shock_accident"][i] = rng.random(n_hh) < sh["accident"]
        s["shock_project_failure"][i] = rng.random(n_hh) < np.where(
            reg_now, sh["project_failure_registered"], sh["project_failure_other"])
        job_loss = sh["job_loss_2020"] if t == 2020 else sh["job_loss"]
        s["shock_job_loss"][i] = (self.feats.n_able > 0) & (rng.random(n_hh) < job_loss)
        self.has_dis = self.has_dis | s["shock_disability"][i]

    def _guarantees(self, i: int, poor_now: np.ndarray) -> np.ndarray:
        """True guarantees this year: fixes happen over time; events at t may break one.
        Returns whether all hold."""
        rng, n_hh, h, g = self.rng, self.layout.n_households, self.h, self.g
        if i > 0:
            fr = self.params["guarantee_fix_rate"]
            fix_rate = np.where(poor_now, fr["registered_poor"],
                                np.where(h.exited, fr["exited"], self.draws["non_registered_fix_rate"]))
            for k in GUARANTEE_FLAGS:
                g[k] = h.guarantees[k][i - 1] | (rng.random(n_hh) < fix_rate)
            broke = h.event[i] & (rng.random(n_hh) < self.params["risk_model"]["event_guarantee_failure_prob"])
            which = rng.integers(0, len(GUARANTEE_FLAGS), n_hh)
            for j, k in enumerate(GUARANTEE_FLAGS):
                g[k] = g[k] & ~(broke & (which == j))
        for k in GUARANTEE_FLAGS:
            h.guarantees[k][i] = g[k]
        h.true_income[i] = self.y
        return np.logical_and.reduce([g[k] for k in GUARANTEE_FLAGS])

    def _plan_exits(self, t: int, poor_now: np.ndarray, rec: np.ndarray, ready: np.ndarray) -> np.ndarray:
        """Exits that follow a documented plan of persons per year exactly."""
        sizes, h = self.layout.sizes, self.h
        target_cum = sum(v for yy, v in self.spec.exit_plan.items() if yy <= t)
        quota = max(target_cum - int(sizes[h.exited].sum()), 0)
        order = np.flatnonzero(poor_now)
        # ready households first, richest recorded income first
        order = order[np.lexsort((-rec[order], ~ready[order]))]
        sel = exact_persons_subset(order, sizes, quota) if quota > 0 else np.array([], np.int64)
        new_exit = np.zeros(len(sizes), bool)
        new_exit[sel] = True
        return new_exit

    def _pressure_exits(self, t: int, poor_now: np.ndarray, rec: np.ndarray, ready: np.ndarray) -> np.ndarray:
        """Exits ramping up to the county's exit year; under pressure some not ready exit too."""
        sizes, h, ex = self.layout.sizes, self.h, self.params["exit"]
        E = self.spec.planned_exit_year or 2020
        if t >= 2020:
            cum_share = 1.0
        elif t > E:
            cum_share = 1.0 - ex["remaining_share_at_exit"] * 0.5
        else:  # ramps up to 1 - remaining share in the exit year E
            cum_share = (1.0 - ex["remaining_share_at_exit"]) * (t - 2014) / (E - 2014)
        quota = cum_share * self.init_reg_persons - sizes[h.exited].sum()
        new_exit = np.zeros(len(sizes), bool)
        if t >= 2020:
            return poor_now.copy()  # every registered poor household exits by 2020
        if quota > 0:
            # plans drive exits: ready households first (richest recorded income first) ...
            cand = np.flatnonzero(ready)
            cand = cand[np.argsort(-rec[cand], kind="stable")]
            take = cand[np.cumsum(sizes[cand]) <= quota]
            new_exit[take] = True
            short = quota - sizes[take].sum()
            if short > 0:
                # ... and under pressure some that are not ready fill the gap
                cand = np.flatnonzero(poor_now & ~ready)
                cand = cand[np.argsort(-rec[cand], kind="stable")]
                need = cand[np.cumsum(sizes[cand]) <= short]
                new_exit[need[self.rng.random(len(need)) < self.draws["exit_pressure"]]] = True
        return new_exit

    def _exits(self, t: int, poor_now: np.ndarray, rec: np.ndarray, rg: dict[str, np.ndarray],
               ok_all: np.ndarray) -> np.ndarray:
        """Exits at t (2015-2020); returns the recorded income with 'paper' passes of forced exits."""
        h = self.h
        ready = poor_now & (rec > self.line[t]) & ok_all
        if self.spec.exit_plan:
            new_exit = self._plan_exits(t, poor_now, rec, ready)
        else:
            new_exit = self._pressure_exits(t, poor_now, rec, ready)
        forced = new_exit & ~ready
        h.exited = h.exited | new_exit
        h.exit_year = np.where(new_exit, t, h.exit_year)
        h.forced_exit |= forced
        # the register records a 'paper' pass for forced exits
        rec = np.where(forced, np.maximum(rec, self.line[t] * self.rng.uniform(1.02, 1.15, len(rec))), rec)
        for k in GUARANTEE_FLAGS:
            rg[k] = np.where(forced, True, rg[k])
        return rec

    def _status_and_assistance(self, i: int, t: int, poor_now: np.ndarray, rec: np.ndarray,
                               rg: dict[str, np.ndarray]) -> np.ndarray:
        """Register status and assistance at t; returns whether any shock occurred at t."""
        h, n_hh = self.h, self.layout.n_households
        shock_any = np.logical_or.reduce([h.shocks[k][i] for k in SHOCK_FLAGS])
        rec_ok = np.logical_and.reduce([rg[k] for k in GUARANTEE_FLAGS])
        risk_present = shock_any | ~rec_ok
        below_m = rec < self.mline[t]
        st = np.where(poor_now, "poor", np.where(h.exited, np.where(below_m & risk_present, "monitored", "exited"),
                      np.where(below_m & risk_present, "edge", "not_registered"))).astype(object)
        h.status[i] = st
        pa_ = np.where(st == "poor", 1.0, np.where((st == "monitored") | (st == "edge"), 0.8,
              np.where(st == "exited", 0.4 if t <= 2020 else 0.25, 0.02)))
        h.assistance[i] = self.rng.random(n_hh) < pa_
        h.assistance_amount[i] = np.where(
            h.assistance[i], np.round(self.rng.lognormal(np.log(np.where(st == "poor", 1500, 800)), 0.4)), 0.0)
        return shock_any

    def _next_income(self, i: int, t: int, poor_now: np.ndarray, rec: np.ndarray, shock_any: np.ndarray) -> None:
        """Income at t+1: the logistic risk process for households not poor at t."""
        h, rng, n_hh, f = self.h, self.rng, self.layout.n_households, self.feats
        ip, rp = self.params["income"], self.params["risk_model"]
        beta = rp["coefficients"]
        t1 = t + 1
        at_risk = ~poor_now  # exited or not registered at t
        z = (beta["intercept"] + self.draws["risk_county_shift"] + beta["chronic_illness"] * f.has_chronic
             + beta["disability"] * self.has_dis
             + beta["no_labour"] * f.no_labour + beta["dependent_share"] * f.dependent_share
             + beta["log_income_ratio"] * np.log(np.maximum(rec, 1.0) / self.mline[t])
             + beta["shock_any"] * shock_any + beta["assistance"] * h.assistance[i] + beta["exited"] * h.exited)
        p_ev = logistic(z)
        ev = at_risk & (rng.random(n_hh) < p_ev)
        h.event[i + 1] = ev
        h.event_prob[i + 1] = np.where(at_risk, p_ev, np.nan)
        grow = ip["growth_2020"] if t1 == 2020 else ip["growth"]
        y = self.y
        y_free = y * np.exp(grow + rng.normal(0, ip["growth_sd"], n_hh))
        floor = self.mline[t1] * rng.uniform(*rp["no_event_floor_share_of_monitoring_line"], n_hh)
        y_event = self.mline[t1] * (1 - 0.55 * rng.beta(1, 3, n_hh))
        y_poor = y * np.exp(ip["poor_growth"] + 0.1 * f.able_share + rng.normal(0, ip["poor_growth_sd"], n_hh))
        y_poor = y_poor + (self.reg.transfer_level(t1) - self.reg.transfer_level(t))  # rising standards
        self.y = np.where(poor_now, y_poor, np.where(ev, y_event, np.maximum(y_free, floor)))


def simulate_years(spec: CountySpec, layout: Layout, feats: HouseholdFeatures, reg: Register,
                   params: dict[str, Any], draws: dict[str, float], lines: dict[int, float],
                   monitoring_lines: dict[int, float], guarantees: dict[str, np.ndarray], income: np.ndarray,
                   rng: np.random.Generator) -> History:
    """Run the dynamics of 2014-2025 from the baseline ``income`` and ``guarantees``.

    Parameters
    ----------
    spec, layout, feats, reg
        The county, its households, their features and the register.
    params : dict
        :data:`evalkit.synth.params.TRUE_PARAMS` or a variant.
    draws : dict
        The county's draws (``exit_pressure``, ``risk_county_shift``, ``non_registered_fix_rate``,
        ``approval_base``).
    lines, monitoring_lines : dict
        Poverty and monitoring line by year.
    guarantees, income : baseline (2014) guarantees and true income.
    rng : numpy.random.Generator
        The county's stream, positioned after registration.

    Returns
    -------
    History
    """
    proc = _YearlyProcess(spec, layout, feats, reg, params, draws, lines, monitoring_lines,
                          dict(guarantees), income, rng)
    return proc.run()
