"""One synthetic county: every table of the canonical model from one random stream.

:func:`generate_county` runs the steps of the generating process (see :mod:`evalkit.synth`) in a
fixed order: county draws, households, villages, members (:mod:`evalkit.synth.people`), baseline
income, guarantees, registration and yearly dynamics (:mod:`evalkit.synth.dynamics`), then the
panel, truth and household tables. The stream is derived from ``(seed, county_code)``, so a county
does not depend on which other counties are generated, in which order or process.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from evalkit.config import Policy
from evalkit.synth.dynamics import (
    GUARANTEE_FLAGS,
    SHOCK_FLAGS,
    History,
    Layout,
    Register,
    baseline_guarantees,
    baseline_income,
    register_households,
    simulate_years,
)
from evalkit.synth.params import TRUE_PARAMS, YEARS
from evalkit.synth.people import HouseholdFeatures, draw_members, household_features
from evalkit.synth.profiles import CountySpec
from evalkit.synth.village_indicators import village_indicators

__all__ = ["county_draws", "household_sizes", "county_layout", "panel_table", "truth_table",
           "households_table", "generate_county"]

_PLACE_CHARS = np.array(list("东西南北中新安和平兴隆丰盛河川山峪沟塬梁庄坪"))


def county_draws(spec: CountySpec, params: dict[str, Any], rng: np.random.Generator) -> dict[str, float]:
    """The county's parameter draws (income effect, registration noise, exit pressure, ...)."""
    ip = params["income"]
    mu_c = rng.normal(0, ip["sigma_county"]) + (ip["poverty_county_shift"] if spec.is_poverty_county else 0.0)
    return {
        "income_effect": mu_c,
        "registration_noise_sd": rng.uniform(*params["registration"]["noise_sd_range"]),
        "exit_pressure": rng.beta(*params["exit"]["pressure_beta"]),
        "risk_county_shift": rng.normal(0, params["risk_model"]["county_shift_sd"]),
        "non_registered_fix_rate": rng.uniform(*params["guarantee_fix_rate"]["non_registered_range"]),
        "approval_base": rng.uniform(*params["approval"]["base_range"]),
    }


def _register_block(targets: list[dict], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sizes, poverty types and labour flags of a documented register block (exact totals)."""
    tsz, ttype, tlab = [], [], []
    for t in targets:
        h, p = t["households"], t["persons"]
        extra = p - h
        # spread extra persons over households, capped at 7 extra (size <= 8)
        add = rng.multinomial(extra, np.full(h, 1.0 / h)) if extra > 0 else np.zeros(h, int)
        over = np.maximum(add - 7, 0).sum()
        add = np.minimum(add, 7)
        while over > 0:  # rare redistribution of the overflow, a few passes at most
            room = np.flatnonzero(add < 7)[: int(over)]
            add[room] += 1
            over -= len(room)
        tsz.append(1 + add)
        ttype.append(np.full(h, t["poverty_type"], dtype=object))
        tlab.append(np.full(h, 1 if t["labour"] else -1, np.int8))
    return np.concatenate(tsz), np.concatenate(ttype), np.concatenate(tlab)


def household_sizes(spec: CountySpec, params: dict[str, Any],
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Household sizes, forced poverty type ('' = free) and forced labour (1 / -1 / 0).

    The documented register block of ``spec.register_targets`` (if any) follows the generated
    households; their persons are taken from the rural population.
    """
    probs = np.array(list(params["household_size_probs"].values()))
    mean_size = float((np.arange(1, 9) * probs).sum())
    targets = spec.register_targets
    rural = spec.rural_population - (sum(t["persons"] for t in targets) if targets else 0)
    n_gen = max(int(round(rural / mean_size)), 50)
    sizes = rng.choice(np.arange(1, 9), n_gen, p=probs)
    forced_type = np.full(n_gen, "", dtype=object)
    forced_lab = np.zeros(n_gen, np.int8)
    if targets:
        bsz, btype, blab = _register_block(targets, rng)
        sizes = np.concatenate([sizes, bsz])
        forced_type = np.concatenate([forced_type, btype])
        forced_lab = np.concatenate([forced_lab, blab])
    return sizes, forced_type, forced_lab


def _place_names(rng: np.random.Generator, n: int, suffix: str) -> np.ndarray:
    first = _PLACE_CHARS[rng.integers(0, len(_PLACE_CHARS), n)]
    second = _PLACE_CHARS[rng.integers(0, len(_PLACE_CHARS), n)]
    return np.char.add(np.char.add(first, second), suffix)


def _village_count(spec: CountySpec, n_hh: int, scale: float) -> int:
    hh_per_village = float(np.clip(350 * np.sqrt(scale), 40, 400))
    n_v = int(max(12, round(n_hh / hh_per_village)))
    if spec.n_poverty_villages:
        n_v = max(n_v, int(spec.n_poverty_villages / 0.35) + 1)
    return n_v


def county_layout(spec: CountySpec, params: dict[str, Any], scale: float,
                  rng: np.random.Generator) -> tuple[Layout, pd.DataFrame]:
    """Households, townships and villages (12-digit codes) of the county, households placed in
    villages of unequal size.

    Returns
    -------
    (Layout, DataFrame)
        The households' layout and the ``villages`` table.
    """
    code = spec.county_code
    sizes, forced_type, forced_lab = household_sizes(spec, params, rng)
    n_hh = len(sizes)
    n_v = _village_count(spec, n_hh, scale)
    n_t = max(3, n_v // 12)
    v_township = np.sort(rng.integers(0, n_t, n_v))
    v_township[: n_t] = np.arange(n_t)  # every township has a village
    v_township.sort()
    v_seq = pd.Series(v_township).groupby(v_township).cumcount().to_numpy() + 1
    village_codes = np.array([f"{code}{t + 1:03d}{s:03d}" for t, s in zip(v_township, v_seq)])  # per village
    u_v = rng.normal(0, params["income"]["sigma_village"], n_v)
    # the poorest villages (noisily) are poverty villages
    pov_score = u_v + rng.normal(0, 0.1, n_v)
    n_pov = spec.n_poverty_villages or int(round(n_v * (0.3 if spec.is_poverty_county else 0.1)))
    is_pov_v = np.zeros(n_v, bool)
    is_pov_v[np.argsort(pov_score)[:n_pov]] = True
    tw_names = _place_names(rng, n_t, "镇")
    villages = pd.DataFrame({
        "village_code": village_codes, "county_code": code,
        "township_name": tw_names[v_township].astype(object),
        "village_name": _place_names(rng, n_v, "村").astype(object),
        "is_poverty_village": is_pov_v,
    })
    vw = rng.lognormal(0, 0.5, n_v)
    hh_v = np.sort(rng.choice(n_v, n_hh, p=vw / vw.sum()))
    # keep the forced register block spread across villages too: shuffle the household order
    perm = rng.permutation(n_hh)
    sizes, forced_type, forced_lab = sizes[perm], forced_type[perm], forced_lab[perm]
    hh_seq = pd.Series(hh_v).groupby(hh_v).cumcount().to_numpy() + 1
    hh_ids = np.char.add(village_codes[hh_v].astype(str), np.char.zfill(hh_seq.astype(str), 4)).astype(object)
    layout = Layout(sizes=sizes, forced_type=forced_type, forced_lab=forced_lab, hh_v=hh_v, hh_ids=hh_ids,
                    village_codes=village_codes, u_v=u_v, is_poverty_village=is_pov_v,
                    has_register_block=bool(spec.register_targets))
    return layout, villages


def panel_table(code: str, layout: Layout, feats: HouseholdFeatures, reg: Register, h: History,
                rng: np.random.Generator) -> pd.DataFrame:
    """The household-year panel: recorded income with its components (summing exactly to it),
    guarantees, shocks, assistance and register status, sorted by household and year."""
    n_hh, sizes = layout.n_households, layout.sizes
    wage_share = np.clip(rng.beta(2, 2, n_hh) * (0.4 + 0.8 * feats.able_share), 0.05, 0.95)
    prop_share = rng.uniform(0, 0.05, n_hh)
    elderly_pension = feats.n_aged_60 / sizes * 900
    frames = []
    for i, t in enumerate(YEARS):
        t = int(t)
        inc = h.rec_income[i]
        reg_now = reg.registered & (reg.registration_year <= t)
        tr = np.minimum(np.where(reg_now, reg.transfer_level(t), 0.0) + elderly_pension * (1 + 0.05 * (t - 2014))
                        + 150, 0.9 * np.maximum(inc, 0))
        tr = np.round(tr)
        rest = inc - tr
        wage = np.round(rest * wage_share)
        prop = np.round(rest * prop_share)
        d = {
            "household_id": layout.hh_ids, "year": np.full(n_hh, t, np.int64), "county_code": code,
            "village_code": layout.village_codes[layout.hh_v], "income_per_capita": inc,
            "income_wage": wage, "income_business": inc - tr - wage - prop, "income_property": prop,
            "income_transfer": tr,
        }
        for k in GUARANTEE_FLAGS:
            d[k] = h.recorded_guarantees[k][i]
        for k in SHOCK_FLAGS:
            d[k] = h.shocks[k][i]
        d["assistance"] = h.assistance[i]
        d["assistance_amount"] = h.assistance_amount[i]
        d["register_status"] = h.status[i]
        frames.append(pd.DataFrame(d))
    panel = pd.concat(frames, ignore_index=True)
    return panel.sort_values(["household_id", "year"], kind="stable").reset_index(drop=True)


def truth_table(code: str, layout: Layout, h: History, lines: dict[int, float]) -> pd.DataFrame:
    """The true household-years: income, guarantees, poverty, approval and risk events."""
    n_hh = layout.n_households
    frames = []
    for i, t in enumerate(YEARS):
        t = int(t)
        td = {"household_id": layout.hh_ids, "year": np.full(n_hh, t, np.int64), "county_code": code,
              "true_income_per_capita": np.round(h.true_income[i])}
        for k in GUARANTEE_FLAGS:
            td["true_" + k] = h.guarantees[k][i]
        ok = np.logical_and.reduce([h.guarantees[k][i] for k in GUARANTEE_FLAGS])
        td["true_poor"] = (np.round(h.true_income[i]) <= lines[t]) | ~ok
        td["true_approves"] = h.approves[i]
        td["true_risk_event"] = h.event[i]
        td["true_risk_prob"] = h.event_prob[i]
        frames.append(pd.DataFrame(td))
    truth = pd.concat(frames, ignore_index=True)
    return truth.sort_values(["household_id", "year"], kind="stable").reset_index(drop=True)


def households_table(code: str, layout: Layout, reg: Register, h: History) -> pd.DataFrame:
    """The ``households`` table (sorted by household ID) with registration and exit years."""
    registered = reg.registered
    households = pd.DataFrame({
        "household_id": layout.hh_ids, "village_code": layout.village_codes[layout.hh_v], "county_code": code,
        "household_size": layout.sizes.astype(np.int64), "registered": registered,
        "poverty_type": reg.poverty_type, "main_cause": reg.main_cause,
        "registration_year": pd.array(np.where(registered, reg.registration_year, 0), dtype="Int64"),
        "exit_year": pd.array(np.where(h.exited, h.exit_year, 0), dtype="Int64"),
    })
    households.loc[~registered, "registration_year"] = pd.NA
    households.loc[~h.exited, "exit_year"] = pd.NA
    order = np.argsort(layout.hh_ids, kind="stable")
    return households.iloc[order].reset_index(drop=True)


def generate_county(spec: CountySpec, seed: int, policy: Policy, params: dict | None = None,
                    scale: float = 1.0) -> dict[str, Any]:
    """Generate every table of one county.

    Parameters
    ----------
    spec : CountySpec
    seed : int
        Dataset seed; the county's stream is ``default_rng([seed, county_code])``.
    policy : Policy
        Poverty and monitoring lines, region of the province.
    params : dict, optional
        Process parameters; :data:`evalkit.synth.params.TRUE_PARAMS` when None.
    scale : float
        Population scale of the profile (sets the households per village).

    Returns
    -------
    dict
        ``villages, village_indicators, households, members, panel, truth`` DataFrames, ``county``
        (one-row dict) and
        ``draws`` (the county's parameter draws, written to truth_params.json).
    """
    P = params or TRUE_PARAMS
    rng = np.random.default_rng([seed, int(spec.county_code)])
    code = spec.county_code
    draws = county_draws(spec, P, rng)
    layout, villages = county_layout(spec, P, scale, rng)
    members = draw_members(code, layout.sizes, layout.forced_lab, layout.hh_ids, rng)
    feats = household_features(members, layout.sizes)
    lines = {int(y): policy.poverty_line(int(y)) for y in YEARS}
    mlines = {int(y): policy.monitoring_line(spec.province_code, int(y)) for y in YEARS}
    y = baseline_income(layout, feats, P["income"], draws["income_effect"], lines[2014], rng)
    pz = np.log(y / lines[2014])
    g = baseline_guarantees(layout, feats, pz, rng)
    reg = register_households(spec, layout, feats, P, y, pz, g, lines[2014], draws["registration_noise_sd"], rng)
    h = simulate_years(spec, layout, feats, reg, P, draws, lines, mlines, g, y, rng)
    panel = panel_table(code, layout, feats, reg, h, rng)
    county = {
        "county_code": code, "county_name": spec.county_name, "province_code": spec.province_code,
        "city_code": spec.city_code, "region": policy.region(spec.province_code),
        "is_poverty_county": spec.is_poverty_county, "planned_exit_year": spec.planned_exit_year,
        "rural_population": int(layout.sizes.sum()),
    }
    draws["n_forced_exits"] = int(h.forced_exit.sum())
    # own stream (issue 12): the other tables do not change with it
    indicators = village_indicators(code, layout.village_codes, layout.u_v, layout.is_poverty_village,
                                    int(spec.planned_exit_year or 2020), seed)
    return {"county": county, "villages": villages, "village_indicators": indicators,
            "households": households_table(code, layout, reg, h),
            "members": members, "panel": panel, "truth": truth_table(code, layout, h, lines), "draws": draws}
