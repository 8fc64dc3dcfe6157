"""Return-to-poverty (返贫) and falling-into-poverty (致贫) risk: labels, features, models, validation.

The monitoring mechanism of domain.md §5 (seed 004) watches exited households so they do not
return to poverty and non-registered near-poor households so they do not fall in. This module
turns the household panel into

1. **labels** (:func:`make_labels`) — an exited household *returned* at t+1 (a non-registered one
   *became poor*) when its per-capita income falls below the line of t+1 or a guarantee fails
   at t+1; line, guarantees and horizon come from ``[risk]`` of the policy config;
2. **features known at t** (:func:`build_features`) — nothing from years after t enters a
   feature at t (``tests/test_risk.py`` perturbs every later value to prove it);
3. **models** behind one scikit-learn interface (``fit(X, y)``, ``predict_proba(X)`` → n×2):
   :class:`PolicyRuleModel` (what offices do today), :class:`LogitModel` (interpretable, clustered
   standard errors), :class:`BoostingModel` (calibrated on a later year) and
   :class:`VulnerabilityModel` (Chaudhuri–Jalan–Suryahadi three-step FGLS);
4. **out-of-time validation** (:func:`out_of_time`, :func:`rolling_origin`) — training years
   always precede the test year; never a random split across years — with AUC, average
   precision, Brier score, calibration tables, the capacity-constrained capture of
   :func:`capture_at_k` and per-county stability;
5. **early warning** (:func:`early_warning`, :func:`case_closure`, :func:`watchlist`,
   :func:`write_watchlist_xlsx`) — red / yellow / green levels from the config thresholds, reasons
   in the official risk categories, closure (销号) and a masked village watch list.

No line or threshold is written here: all come from :class:`evalkit.config.Policy`.
"""
from __future__ import annotations

import inspect
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit
from scipy.stats import norm
from sklearn.base import BaseEstimator, ClassifierMixin, clone

from evalkit.config import Policy, load_policy

__all__ = [
    "RiskModelError",
    "CORE_FEATURES",
    "REASON_CATEGORIES",
    "LEVELS",
    "make_labels",
    "build_features",
    "feature_columns",
    "PolicyRuleModel",
    "LogitModel",
    "BoostingModel",
    "VulnerabilityModel",
    "default_models",
    "roc_auc",
    "pr_auc",
    "brier",
    "calibration_table",
    "capture_at_k",
    "capture_curve",
    "metrics_by_county",
    "stability",
    "ValidationResult",
    "labelled_frame",
    "fit_model",
    "out_of_time",
    "rolling_origin",
    "early_warning",
    "case_closure",
    "watchlist",
    "write_watchlist_xlsx",
]

#: Seed of every random component (boosting); results are reproducible run to run.
RANDOM_STATE = 0

#: The generating features of the synthetic risk process (synth.TRUE_PARAMS['risk_model']):
#: the interpretable specification of :class:`LogitModel`. ``dependent_share_base`` is the
#: dependants' share at the register's baseline year, as in the generating definition.
CORE_FEATURES: tuple[str, ...] = (
    "chronic_illness", "disability", "no_labour", "dependent_share_base",
    "log_income_ratio", "shock_any", "assistance", "exited",
)

#: Official risk categories (domain.md §5, code list ``risk_category``) a warning can cite.
#: ``rigid_expenditure`` (刚性支出) is not derivable from the panel and is never cited.
REASON_CATEGORIES: tuple[str, ...] = (
    "illness", "disability", "schooling", "disaster", "accident", "project_failure",
    "unstable_employment", "lack_labour", "housing", "water", "low_income",
)

#: Warning levels, most urgent first.
LEVELS: tuple[str, ...] = ("red", "yellow", "green")

# Age conventions (definitions, not policy thresholds): dependants are members under 16 or
# 65 and over (national statistics' dependency convention, also the synthetic definition);
# compulsory schooling is the 9 years from age 6 (Compulsory Education Law).
DEPENDENT_AGES: tuple[int, int] = (16, 65)
COMPULSORY_SCHOOL_AGES: tuple[int, int] = (6, 15)

_KEYS = ["household_id", "year"]
_POPULATIONS = ("exited", "non_registered")
_LABEL_NAMES = {"exited": "returned", "non_registered": "became_poor"}
_LINES = ("monitoring", "poverty")
# Columns of build_features that identify or describe a row but are not model inputs.
_META = frozenset({"household_id", "year", "county_code", "village_code", "monitoring_line", "poverty_line"})
# Columns of make_labels: outcomes, never inputs (a default feature list must not pick them up).
_LABEL_COLUMNS = frozenset({"label", "population", "outcome"})
# Features computed from the household's own income: dropped by the cross-sectional form of
# the vulnerability model, whose outcome is that income.
_INCOME_DERIVED = frozenset({
    "log_income_ratio", "below_monitoring_line", "below_poverty_line", "income_growth", "income_trend",
    "income_volatility", "share_transfer", "share_wage", "share_business", "share_property",
})


class RiskModelError(ValueError):
    """A risk-model input that cannot give a meaningful result (message says why and what to do)."""


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def _policy(policy: Policy | None) -> Policy:
    return load_policy() if policy is None else policy


def _require(df: pd.DataFrame, cols: Iterable[str], what: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise KeyError(f"{what}: column(s) {missing} not in the data (have {list(df.columns)})")


def _float_bool(s: pd.Series) -> np.ndarray:
    """Boolean-like column as floats 1/0 with NaN for missing (unknown)."""
    return s.astype("boolean").astype("Float64").to_numpy(dtype=float, na_value=np.nan)


def _true(s: pd.Series) -> np.ndarray:
    """Known-true flags (missing counts as not true)."""
    return s.astype("boolean").fillna(False).to_numpy(dtype=bool)


def _int_or_nan(s: pd.Series) -> np.ndarray:
    return pd.to_numeric(s, errors="raise").astype("Float64").to_numpy(dtype=float, na_value=np.nan)


def _lines(county_code: pd.Series, year: pd.Series, pol: Policy, which: str) -> np.ndarray:
    """Line of each row (one config lookup per distinct province-year, never per row)."""
    if which not in _LINES:
        raise ValueError(f"line must be one of {_LINES}, got {which!r}")
    prov = county_code.astype("string").str[:2]
    if prov.isna().any():
        raise ValueError("county_code is missing for some rows; the monitoring line needs the province")
    pairs = pd.MultiIndex.from_arrays([prov.to_numpy(dtype=object), year.to_numpy(dtype=np.int64)])
    upairs = pairs.unique()
    fn = (lambda p, y: pol.monitoring_line(p, y)) if which == "monitoring" else (lambda p, y: pol.poverty_line(y))
    table = pd.Series([fn(p, int(y)) for p, y in upairs], index=upairs, dtype=float)
    return table.reindex(pairs).to_numpy(dtype=float)


def _panel_frame(panel: pd.DataFrame, counties: Iterable[str] | None = None) -> pd.DataFrame:
    """Panel sorted by household and year, checked for duplicates, optionally county-filtered."""
    _require(panel, ["household_id", "year", "county_code"], "panel")
    p = panel
    if counties is not None:
        want = {str(c) for c in counties}
        have = set(p["county_code"].astype(str).unique())
        absent = sorted(want - have)
        if absent:
            raise RiskModelError(f"county/counties {absent} not in the panel (panel has {sorted(have)[:20]})")
        p = p[p["county_code"].astype(str).isin(want)]
    if p["year"].isna().any():
        raise ValueError("the panel's 'year' column has missing values")
    p = p.sort_values(_KEYS, kind="stable").reset_index(drop=True)
    dup = p.duplicated(_KEYS)
    if dup.any():
        raise ValueError(f"panel has duplicated household-years, e.g. {p.loc[dup, _KEYS].head(3).to_dict('records')}")
    return p


class _Grid:
    """Household × calendar-year matrix view of a sorted long panel (lags without row loops)."""

    def __init__(self, hh: pd.Series, year: pd.Series):
        self.hi, ids = pd.factorize(hh, sort=True)
        self.ids = pd.Index(ids)
        y = year.to_numpy(dtype=np.int64)
        self.years = np.arange(y.min(), y.max() + 1)
        self.yi = y - self.years[0]
        self.shape = (len(self.ids), len(self.years))

    def wide(self, values: np.ndarray, fill: Any = np.nan, dtype: Any = float) -> np.ndarray:
        w = np.full(self.shape, fill, dtype=dtype)
        w[self.hi, self.yi] = values
        return w

    def long(self, w: np.ndarray) -> np.ndarray:
        return w[self.hi, self.yi]

    @staticmethod
    def lag(w: np.ndarray, k: int, fill: Any = np.nan) -> np.ndarray:
        """Value at t-k in column t (fill before the first year)."""
        if k == 0:
            return w
        out = np.full_like(w, fill)
        out[:, k:] = w[:, :-k]
        return out

    @staticmethod
    def lead(w: np.ndarray, k: int, fill: Any = np.nan) -> np.ndarray:
        """Value at t+k in column t (fill beyond the last year)."""
        out = np.full_like(w, fill)
        out[:, :-k] = w[:, k:]
        return out


def _household_info(households: pd.DataFrame, ids: pd.Index, what: str) -> pd.DataFrame:
    """households aligned to ``ids``; every panel household must have a record."""
    _require(households, ["household_id", "registered", "registration_year", "exit_year"], "households")
    h = households.drop_duplicates("household_id").set_index("household_id")
    missing = ids.difference(h.index)
    if len(missing):
        raise RiskModelError(
            f"{what}: {len(missing)} panel household(s) have no row in the households table, "
            f"e.g. {list(missing[:3])}; pass the households of the same dataset/counties")
    return h.reindex(ids)


def _register_at(info: pd.DataFrame, hi: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(registered by t, exited by t, exit year) per row; a registered household without a
    registration year counts as registered from the start of the panel."""
    reg = _true(info["registered"])[hi]
    ry = _int_or_nan(info["registration_year"])[hi]
    ey = _int_or_nan(info["exit_year"])[hi]
    with np.errstate(invalid="ignore"):
        reg_t = reg & ~(ry > t)
        ex_t = ey <= t
    return reg_t, ex_t & reg_t, ey


# ---------------------------------------------------------------------------------------------
# 1. labels
# ---------------------------------------------------------------------------------------------
def _populations(population: str) -> tuple[str, ...]:
    if population == "both":
        return _POPULATIONS
    if population not in _POPULATIONS:
        raise ValueError(f"population must be 'exited', 'non_registered' or 'both', got {population!r}")
    return (population,)


def _label_definition(pol: Policy, line: str | None, guarantees: Sequence[str] | None,
                      horizon: int | None) -> tuple[str, list[str], int]:
    cfg = pol.section("risk")
    line = cfg["label_line"] if line is None else line
    if line not in _LINES:
        raise ValueError(f"line must be one of {_LINES}, got {line!r}")
    g = list(cfg["label_guarantees"] if guarantees is None else guarantees)
    h = int(cfg["horizon"] if horizon is None else horizon)
    if h < 1:
        raise ValueError(f"horizon must be >= 1, got {h}")
    return line, g, h


def make_labels(
    panel: pd.DataFrame,
    households: pd.DataFrame,
    policy: Policy | None = None,
    line: str | None = None,
    guarantees: Sequence[str] | None = None,
    horizon: int | None = None,
    population: str = "exited",
    counties: Iterable[str] | None = None,
) -> pd.DataFrame:
    """Return-to-poverty / falling-into-poverty labels per household and year t.

    An *event* in year s: income per capita strictly below the line of s (of the household's
    province for the monitoring line) or a known failure of one of ``guarantees`` in s.
    The label at t is 1 when an event occurs in any of t+1..t+h. Populations at t:
    ``exited`` — exit_year ≤ t (label meaning *returned*); ``non_registered`` — not registered
    at t (never registered, or registered after t; label meaning *became poor*). Registered
    households not exited at t are not at risk of returning and get no label.

    A row is labelled only when every year t+1..t+h is in the panel for the household; rows
    whose window runs beyond the panel's last year, or has a missing household-year, or whose
    event status is unknown (missing income, no other event) are dropped — never NaN labels.

    Parameters
    ----------
    panel, households : DataFrame
        Canonical tables (``panel``: household_id, year, county_code, income_per_capita and the
        guarantee columns; ``households``: household_id, registered, registration_year, exit_year).
    policy : Policy, optional
        ``load_policy()`` when None.
    line : {'monitoring', 'poverty'}, optional
        Default ``[risk].label_line``.
    guarantees : list of str, optional
        Guarantee columns whose failure is an event; default ``[risk].label_guarantees``; ``[]``
        for an income-only label.
    horizon : int, optional
        h, default ``[risk].horizon``.
    population : {'exited', 'non_registered', 'both'}
    counties : iterable of str, optional
        Restrict to these counties; with population 'exited' each must have exited households.

    Returns
    -------
    DataFrame
        ``household_id, year, label (int8), population, outcome`` where ``outcome`` is the lowest
        ln(income / line) over t+1..t+h (the continuous outcome of :class:`VulnerabilityModel`;
        NaN when an income is missing). ``attrs['definition']`` records the definition.
    """
    pol = _policy(policy)
    line, guar, h = _label_definition(pol, line, guarantees, horizon)
    pops = _populations(population)
    _require(panel, ["income_per_capita", *guar], "make_labels")
    p = _panel_frame(panel, counties)
    g = _Grid(p["household_id"], p["year"])
    info = _household_info(households, g.ids, "make_labels")
    t = p["year"].to_numpy(dtype=np.int64)

    lv = _lines(p["county_code"], p["year"], pol, line)
    inc = pd.to_numeric(p["income_per_capita"], errors="raise").astype("Float64").to_numpy(float, na_value=np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        below = inc < lv
        ratio = np.log(np.maximum(inc, 1.0) / lv)
    known_inc = ~np.isnan(inc)
    gv = [_float_bool(p[c]) for c in guar]
    failed = np.logical_or.reduce([v == 0 for v in gv]) if gv else np.zeros(len(p), bool)
    all_ok = np.logical_and.reduce([v == 1 for v in gv]) if gv else np.ones(len(p), bool)
    ev = np.where(below | failed, 1.0, np.where(known_inc & all_ok, 0.0, np.nan))

    E = g.wide(ev)
    present = g.wide(np.ones(len(p), bool), fill=False, dtype=bool)
    R = g.wide(ratio)
    any_pos = np.zeros(g.shape, bool)
    all_neg = np.ones(g.shape, bool)
    window_ok = np.ones(g.shape, bool)
    outcome = np.full(g.shape, np.inf)
    unknown_outcome = np.zeros(g.shape, bool)
    for k in range(1, h + 1):  # loop over the horizon, not rows
        ek = _Grid.lead(E, k)
        any_pos |= ek == 1
        all_neg &= ek == 0
        window_ok &= _Grid.lead(present, k, fill=False)
        rk = _Grid.lead(R, k)
        unknown_outcome |= np.isnan(rk)
        outcome = np.fmin(outcome, rk)
    outcome = np.where(unknown_outcome, np.nan, outcome)
    lab = np.where(any_pos, 1.0, np.where(all_neg, 0.0, np.nan))
    lab = np.where(window_ok, lab, np.nan)

    reg_t, ex_t, _ = _register_at(info, g.hi, t)
    pop = np.where(ex_t, "exited", np.where(~reg_t, "non_registered", ""))
    lab_l = g.long(lab)
    keep = np.isin(pop, pops) & ~np.isnan(lab_l)
    out = pd.DataFrame({
        "household_id": p["household_id"].to_numpy()[keep],
        "year": t[keep],
        "label": lab_l[keep].astype(np.int8),
        "population": pop[keep].astype(object),
        "outcome": g.long(outcome)[keep],
    })

    if "exited" in pops:
        cc = p["county_code"].astype(str).to_numpy()
        with_exits = set(cc[ex_t])
        asked = sorted({str(c) for c in counties}) if counties is not None else sorted(set(cc))
        lacking = [c for c in asked if c not in with_exits]
        if counties is not None and lacking:
            raise RiskModelError(
                f"county/counties {lacking} have no exited households (no exit_year in the panel "
                "period), so there is nothing to return to poverty; use population='non_registered' "
                "for falling-into-poverty labels, or drop these counties")
        if population == "exited" and not with_exits:
            raise RiskModelError(
                f"no county in the panel ({', '.join(asked[:10])}) has exited households; "
                "return-to-poverty labels need households with an exit_year")
    out.attrs["definition"] = {
        "line": line, "guarantees": guar, "horizon": h, "population": population,
        "label_names": {k: _LABEL_NAMES[k] for k in pops},
        "event": f"income per capita < {line} line of the year, or a failed guarantee, in t+1..t+{h}",
    }
    return out


# ---------------------------------------------------------------------------------------------
# 2. features known at t
# ---------------------------------------------------------------------------------------------
def build_features(
    panel: pd.DataFrame,
    households: pd.DataFrame,
    members: pd.DataFrame,
    years: Iterable[int] | None = None,
    policy: Policy | None = None,
    trend_window: int = 3,
) -> pd.DataFrame:
    """Features of each household-year t, using only information known at t.

    Every feature at t is computed from panel rows of years ≤ t, the static register tables
    (members as recorded at registration; household size), and register events dated ≤ t
    (registration, exit). A register attribute dated after t (a later registration's poverty
    type, a later exit) is invisible at t.

    Columns (flags are bool, counts int, the rest float):

    * keys and context ids: ``household_id, year, county_code, village_code``; lines
      ``monitoring_line, poverty_line`` (not model inputs);
    * household: ``household_size, n_able, n_weak_labour, able_share, no_labour`` (no member able
      to work), ``n_dependants, dependency_ratio`` (dependants / working-age members, floor 1),
      ``dependent_share`` (dependants / size, ages at t), ``dependent_share_base`` (same at the
      panel's first year, the register baseline), ``n_elderly``;
    * health: ``chronic_illness, n_chronic`` (at registration), ``disability`` (a member disabled
      at registration or a ``shock_disability`` onset at or before t), ``disability_base``;
    * schooling: ``school_age_children`` (compulsory-school age at t), ``n_in_school_base``;
    * income: ``log_income_ratio`` = ln(max(income, 1) / monitoring line of t),
      ``below_monitoring_line, below_poverty_line``, ``income_growth`` (Δ ln income t-1→t),
      ``income_trend`` (OLS slope of ln income over t-w..t), ``income_volatility`` (SD of annual
      Δ ln income over the window; 0 with fewer than 2 changes), ``history_years`` (earlier years
      in the window), shares ``share_transfer, share_wage, share_business, share_property``;
    * shocks at t: every ``shock_*`` column, ``shock_any, n_shocks``;
    * guarantees at t: ``fail_<guarantee>`` per configured guarantee, ``n_guarantee_fail``;
    * assistance at t: ``assistance, log_assistance_amount``;
    * register at t: ``registered, exited, poor`` (registered, not exited), ``years_since_exit``
      (0 when not exited), ``status_<register_status>``, ``type_dibao, type_tekun``;
    * context at t: ``village_mean_log_income_ratio, village_share_below_line,
      village_disaster_share, county_mean_log_income_ratio``.

    Parameters
    ----------
    panel, households, members : DataFrame
        Canonical tables (one or several counties).
    years : iterable of int, optional
        Output only these years t (history before them is still used).
    policy : Policy, optional
    trend_window : int
        w, the years before t used for trend and volatility.

    Returns
    -------
    DataFrame
        One row per panel household-year (of ``years``), sorted by household and year.
    """
    pol = _policy(policy)
    if trend_window < 1:
        raise ValueError(f"trend_window must be >= 1, got {trend_window}")
    _require(panel, ["village_code", "income_per_capita", "income_wage", "income_business",
                     "income_property", "income_transfer"], "build_features panel")
    _require(members, ["household_id", "birth_year", "labour_capacity", "disability", "chronic_illness",
                       "in_school"], "build_features members")
    p = _panel_frame(panel)
    g = _Grid(p["household_id"], p["year"])
    info = _household_info(households, g.ids, "build_features")
    t = p["year"].to_numpy(dtype=np.int64)
    hi, H = g.hi, g.shape[0]
    f: dict[str, Any] = {"household_id": p["household_id"].to_numpy(), "year": t,
                         "county_code": p["county_code"].to_numpy(), "village_code": p["village_code"].to_numpy()}
    mline = _lines(p["county_code"], p["year"], pol, "monitoring")
    pline = _lines(p["county_code"], p["year"], pol, "poverty")
    f["monitoring_line"], f["poverty_line"] = mline, pline

    # ---- members: static at registration, ages move with t
    mi = g.ids.get_indexer(members["household_id"])
    m = members[mi >= 0]
    mi = mi[mi >= 0]

    def cnt(mask: np.ndarray) -> np.ndarray:
        return np.bincount(mi, weights=np.asarray(mask, dtype=float), minlength=H)

    lab = m["labour_capacity"].astype("string").fillna("").to_numpy(dtype=object)
    n_members = cnt(np.ones(len(m)))
    size = (pd.to_numeric(info["household_size"], errors="coerce").to_numpy(dtype=float)
            if "household_size" in info.columns else np.full(H, np.nan))
    size = np.where(np.isnan(size), n_members, size)
    size_safe = np.maximum(size, 1.0)
    n_able = cnt(lab == "able")
    birth = pd.to_numeric(m["birth_year"], errors="coerce").to_numpy(dtype=float)
    d0, d1 = DEPENDENT_AGES
    s0, s1 = COMPULSORY_SCHOOL_AGES
    dep = np.zeros(g.shape)
    work = np.zeros(g.shape)
    school = np.zeros(g.shape)
    old = np.zeros(g.shape)
    for j, yr in enumerate(g.years):  # loop over calendar years, not rows
        age = yr - birth
        dep[:, j] = cnt((age < d0) | (age >= d1))
        work[:, j] = cnt((age >= d0) & (age < d1))
        school[:, j] = cnt((age >= s0) & (age <= s1))
        old[:, j] = cnt(age >= d1)
    f["household_size"] = size[hi].astype(np.int64)
    f["n_able"] = n_able[hi].astype(np.int64)
    f["n_weak_labour"] = cnt(lab == "weak")[hi].astype(np.int64)
    f["able_share"] = (n_able / size_safe)[hi]
    f["no_labour"] = (n_able == 0)[hi]
    f["n_dependants"] = g.long(dep).astype(np.int64)
    f["dependency_ratio"] = g.long(dep / np.maximum(work, 1.0))
    f["dependent_share"] = g.long(dep / size_safe[:, None])
    f["dependent_share_base"] = (dep[:, 0] / size_safe)[hi]
    f["n_elderly"] = g.long(old).astype(np.int64)
    n_chr = cnt(_true(m["chronic_illness"]))
    dis0 = cnt(_true(m["disability"])) > 0
    f["chronic_illness"] = (n_chr > 0)[hi]
    f["n_chronic"] = n_chr[hi].astype(np.int64)
    # disability: at registration, or an onset recorded at or before t (cumulative over years)
    if "shock_disability" in p.columns:
        onset = np.maximum.accumulate(g.wide(_true(p["shock_disability"]), fill=False, dtype=bool), axis=1)
        f["disability"] = dis0[hi] | g.long(onset)
    else:
        f["disability"] = dis0[hi]
    f["disability_base"] = dis0[hi]
    f["school_age_children"] = g.long(school).astype(np.int64)
    f["n_in_school_base"] = cnt(_true(m["in_school"]))[hi].astype(np.int64)

    # ---- income at t and its past
    inc = pd.to_numeric(p["income_per_capita"], errors="raise").to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        lr = np.log(np.maximum(inc, 1.0) / mline)
        f["log_income_ratio"] = lr
        f["below_monitoring_line"] = inc < mline
        f["below_poverty_line"] = inc < pline
    LI = g.wide(np.log(np.maximum(inc, 1.0)))
    w = int(trend_window)
    lags = [_Grid.lag(LI, k) for k in range(w + 1)]  # value at t-k
    avail = [~np.isnan(v) for v in lags]
    n = sum(a.astype(float) for a in avail)
    xs = [-float(k) for k in range(w + 1)]
    sx = sum(x * a for x, a in zip(xs, avail))
    sxx = sum(x * x * a for x, a in zip(xs, avail))
    sy = sum(np.where(a, v, 0.0) for v, a in zip(lags, avail))
    sxy = sum(x * np.where(a, v, 0.0) for x, v, a in zip(xs, lags, avail))
    den = n * sxx - sx * sx
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = np.where((n >= 2) & avail[0] & (den > 0), (n * sxy - sx * sy) / den, 0.0)
    diffs = np.stack([lags[k] - lags[k + 1] for k in range(w)], axis=2)
    nd = (~np.isnan(diffs)).sum(axis=2)
    dmean = np.where(nd > 0, np.nansum(diffs, axis=2) / np.maximum(nd, 1), 0.0)
    dvar = np.nansum((diffs - dmean[:, :, None]) ** 2, axis=2) / np.maximum(nd, 1)
    f["income_growth"] = g.long(np.nan_to_num(diffs[:, :, 0], nan=0.0))
    f["income_trend"] = g.long(slope)
    f["income_volatility"] = g.long(np.where(nd >= 2, np.sqrt(dvar), 0.0))
    f["history_years"] = g.long(sum(a.astype(np.int64) for a in avail[1:]))
    pos = inc > 0
    for comp, name in (("income_transfer", "share_transfer"), ("income_wage", "share_wage"),
                       ("income_business", "share_business"), ("income_property", "share_property")):
        c = pd.to_numeric(p[comp], errors="raise").to_numpy(dtype=float)
        with np.errstate(invalid="ignore", divide="ignore"):
            f[name] = np.where(pos, c / np.where(pos, inc, 1.0), 0.0)

    # ---- shocks, guarantees, assistance at t
    shock_cols = [c for c in p.columns if str(c).startswith("shock_")]
    sh = {c: _true(p[c]) for c in shock_cols}
    f.update(sh)
    f["shock_any"] = np.logical_or.reduce(list(sh.values())) if sh else np.zeros(len(p), bool)
    f["n_shocks"] = (sum(v.astype(np.int64) for v in sh.values()) if sh else np.zeros(len(p), np.int64))
    gnames = list(dict.fromkeys([*pol.section("indicators")["guarantees"], *pol.section("risk")["label_guarantees"]]))
    fails = {}
    for gc in gnames:
        if gc in p.columns:
            fails["fail_" + gc.removesuffix("_ok")] = _float_bool(p[gc]) == 0
    f.update(fails)
    f["n_guarantee_fail"] = (sum(v.astype(np.int64) for v in fails.values()) if fails
                             else np.zeros(len(p), np.int64))
    f["assistance"] = _true(p["assistance"]) if "assistance" in p.columns else np.zeros(len(p), bool)
    amt = (pd.to_numeric(p["assistance_amount"], errors="coerce").fillna(0).to_numpy(dtype=float)
           if "assistance_amount" in p.columns else np.zeros(len(p)))
    f["log_assistance_amount"] = np.log1p(np.maximum(amt, 0.0))

    # ---- register at t (events dated after t are invisible)
    reg_t, ex_t, ey = _register_at(info, hi, t)
    f["registered"] = reg_t
    f["exited"] = ex_t
    f["poor"] = reg_t & ~ex_t
    f["years_since_exit"] = np.where(ex_t, t - np.nan_to_num(ey), 0).astype(np.int64)
    if "register_status" in p.columns:
        from evalkit import dictionary

        st = p["register_status"].astype("string").fillna("").to_numpy(dtype=object)
        for s in dictionary.codes("register_status"):  # one flag per code of the data dictionary
            f["status_" + s] = st == s
    ptype = (info["poverty_type"].astype("string").fillna("").to_numpy(dtype=object)[hi]
             if "poverty_type" in info.columns else np.full(len(p), "", dtype=object))
    f["type_dibao"] = reg_t & (ptype == "dibao")
    f["type_tekun"] = reg_t & (ptype == "tekun")

    out = pd.DataFrame(f)
    # ---- village and county context at t (same-year rows only)
    vg = out.groupby(["village_code", "year"], sort=False)
    out["village_mean_log_income_ratio"] = vg["log_income_ratio"].transform("mean")
    out["village_share_below_line"] = vg["below_monitoring_line"].transform("mean")
    out["village_disaster_share"] = (vg["shock_disaster"].transform("mean") if "shock_disaster" in out.columns
                                     else 0.0)
    out["county_mean_log_income_ratio"] = out.groupby(["county_code", "year"], sort=False)[
        "log_income_ratio"].transform("mean")
    if years is not None:
        ys = {int(y) for y in years}
        out = out[out["year"].isin(ys)].reset_index(drop=True)
    return out


def feature_columns(features: pd.DataFrame) -> list[str]:
    """Numeric / boolean model inputs of a :func:`build_features` frame (ids and lines excluded)."""
    return [c for c in features.columns if c not in _META and c not in _LABEL_COLUMNS
            and (pd.api.types.is_numeric_dtype(features[c]) or pd.api.types.is_bool_dtype(features[c]))]


# ---------------------------------------------------------------------------------------------
# 3. models
# ---------------------------------------------------------------------------------------------
def _as_frame(X: Any) -> pd.DataFrame:
    if isinstance(X, pd.DataFrame):
        return X
    a = np.asarray(X)
    if a.ndim != 2:
        raise RiskModelError(f"X must be 2-dimensional, got shape {a.shape}")
    return pd.DataFrame(a, columns=[f"x{i}" for i in range(a.shape[1])])


def _binary_y(y: Any, n: int) -> np.ndarray:
    yy = np.asarray(y).astype(float).ravel()
    if len(yy) != n:
        raise RiskModelError(f"X has {n} rows but y has {len(yy)}")
    if np.isnan(yy).any() or not np.isin(yy, (0.0, 1.0)).all():
        raise RiskModelError("y must be binary 0/1 without missing values")
    return yy.astype(np.int64)


class _RiskModel(ClassifierMixin, BaseEstimator):
    """Shared plumbing: column selection, float matrices, n×2 probabilities."""

    _default_features: tuple[str, ...] = ()

    def _columns(self, X: pd.DataFrame) -> list[str]:
        if getattr(self, "features", None) is not None:
            cols = list(self.features)
        elif all(c in X.columns for c in self._default_features) and self._default_features:
            cols = list(self._default_features)
        else:
            cols = feature_columns(X)
        missing = [c for c in cols if c not in X.columns]
        if missing:
            raise RiskModelError(f"{type(self).__name__}: feature column(s) {missing} not in X")
        return cols

    @staticmethod
    def _matrix(X: pd.DataFrame, cols: Sequence[str], what: str) -> np.ndarray:
        a = X[list(cols)].astype(float).to_numpy()
        bad = ~np.isfinite(a)
        if bad.any():
            worst = [cols[j] for j in np.flatnonzero(bad.any(axis=0))][:5]
            raise RiskModelError(f"{what}: missing or infinite values in feature(s) {worst}; impute or drop them")
        return a

    def _fit_start(self, X: Any, y: Any) -> tuple[pd.DataFrame, np.ndarray]:
        Xf = _as_frame(X)
        yy = _binary_y(y, len(Xf))
        self.classes_ = np.array([0, 1])
        return Xf, yy

    def _score(self, X: pd.DataFrame) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def predict_proba(self, X: Any) -> np.ndarray:
        """Probabilities (or scores in [0, 1]) of class 0 and class 1, shape (n, 2)."""
        if not hasattr(self, "classes_"):
            raise RiskModelError(f"{type(self).__name__} is not fitted; call fit(X, y) first")
        p = np.clip(self._score(_as_frame(X)), 0.0, 1.0)
        return np.column_stack([1.0 - p, p])

    def predict(self, X: Any) -> np.ndarray:
        """Class with the larger probability (a 0.5 cut; use the scores for ranking)."""
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(np.int64)


class PolicyRuleModel(_RiskModel):
    """The rule offices apply today (seed 004), as a ranking score.

    Flag = income below the monitoring line at t (``log_income_ratio < 0``) AND a risk factor
    present (any of ``risk_factors`` > 0; default a shock at t or a failed guarantee at t — the
    register's own 'monitored' / 'edge' definition). Score = 0.5·flag + 0.5·logistic(−log ratio):
    flagged households rank first, and within each group lower income ranks higher, so the rule
    can fill a list of any size. The score is a rank, not a calibrated probability; ``fit``
    learns nothing.

    Parameters
    ----------
    risk_factors : sequence of str
        Columns whose positive value means "a risk is present".
    income_col : str
        Log income relative to the monitoring line.
    """

    def __init__(self, risk_factors: Sequence[str] = ("shock_any", "n_guarantee_fail"),
                 income_col: str = "log_income_ratio"):
        self.risk_factors = risk_factors
        self.income_col = income_col

    def fit(self, X: Any, y: Any) -> "PolicyRuleModel":
        """Record the classes (nothing to learn)."""
        Xf, _ = self._fit_start(X, y)
        _require(Xf, [self.income_col, *self.risk_factors], "PolicyRuleModel")
        return self

    def flag(self, X: Any) -> np.ndarray:
        """The rule itself: below the monitoring line and a risk factor present."""
        Xf = _as_frame(X)
        r = Xf[self.income_col].astype(float).to_numpy()
        risk = (Xf[list(self.risk_factors)].astype(float).to_numpy() > 0).any(axis=1)
        return (r < 0) & risk

    def _score(self, X: pd.DataFrame) -> np.ndarray:
        r = X[self.income_col].astype(float).to_numpy()
        return 0.5 * self.flag(X) + 0.5 * np.nan_to_num(expit(-r), nan=0.5)


class LogitModel(_RiskModel):
    """Logistic regression with standard errors clustered by village (statsmodels).

    Features that are constant in the training data (e.g. ``exited`` when only exited
    households are modelled) are dropped and listed in ``dropped_features_``. With
    ``county_effects`` a dummy per county (first as reference) absorbs county shifts; a county
    unseen at fit gets the mean of the fitted county effects.

    Parameters
    ----------
    features : sequence of str, optional
        Default :data:`CORE_FEATURES`.
    county_effects : bool
        Add county fixed effects.
    cluster : str or None
        Column of X with the clusters of the covariance (None: the usual ML covariance).
    county_col : str
    alpha : float
        1 − confidence level of :meth:`effects`.
    maxiter : int
    """

    _default_features = CORE_FEATURES

    def __init__(self, features: Sequence[str] | None = None, county_effects: bool = False,
                 cluster: str | None = "village_code", county_col: str = "county_code",
                 alpha: float = 0.05, maxiter: int = 100):
        self.features = features
        self.county_effects = county_effects
        self.cluster = cluster
        self.county_col = county_col
        self.alpha = alpha
        self.maxiter = maxiter

    def _design(self, X: pd.DataFrame) -> np.ndarray:
        cols = self.features_
        a = self._matrix(X, cols, "LogitModel")
        return np.column_stack([np.ones(len(X)), a])

    def fit(self, X: Any, y: Any) -> "LogitModel":
        """Maximum-likelihood fit; RiskModelError when y has one class or the fit fails."""
        import statsmodels.api as sm

        Xf, yy = self._fit_start(X, y)
        if yy.min() == yy.max():
            raise RiskModelError(f"LogitModel: the training labels are all {yy[0]}; a logit needs both classes")
        cols = self._columns(Xf)
        a = self._matrix(Xf, cols, "LogitModel")
        const = np.ptp(a, axis=0) == 0 if len(a) else np.ones(len(cols), bool)
        self.dropped_features_ = [c for c, k in zip(cols, const) if k]
        self.features_ = [c for c, k in zip(cols, const) if not k]
        parts = [np.ones((len(Xf), 1)), a[:, ~const]]
        names = ["const", *self.features_]
        self.counties_: list[str] = []
        if self.county_effects:
            _require(Xf, [self.county_col], "LogitModel county_effects")
            cc = Xf[self.county_col].astype(str)
            self.counties_ = sorted(cc.unique())
            if len(self.counties_) > 1:
                codes = pd.Categorical(cc, categories=self.counties_).codes
                D = np.zeros((len(Xf), len(self.counties_) - 1))
                rows = np.flatnonzero(codes > 0)
                D[rows, codes[rows] - 1] = 1.0
                parts.append(D)
                names += [f"county[{c}]" for c in self.counties_[1:]]
        exog = np.column_stack(parts)
        fit_kw: dict[str, Any] = {}
        if self.cluster is not None:
            _require(Xf, [self.cluster], "LogitModel cluster")
            groups = pd.factorize(Xf[self.cluster])[0]
            fit_kw = {"cov_type": "cluster", "cov_kwds": {"groups": groups}}
        try:
            res = sm.Logit(yy, exog).fit(method="newton", disp=0, maxiter=self.maxiter, **fit_kw)
        except Exception as e:  # singular design, perfect separation ...
            raise RiskModelError(f"LogitModel fit failed ({type(e).__name__}: {e}); check for features "
                                 "that separate the classes or are collinear") from None
        if not np.all(np.isfinite(res.params)):
            raise RiskModelError("LogitModel fit gave non-finite coefficients (separation or collinearity)")
        self.result_ = res
        self.param_names_ = names
        self.params_ = pd.Series(np.asarray(res.params), index=names)
        fe = self.params_[[n for n in names if n.startswith("county[")]]
        self.county_effect_ = pd.Series(
            np.r_[0.0, fe.to_numpy()], index=self.counties_) if self.counties_ else pd.Series(dtype=float)
        self.n_obs_ = len(Xf)
        self.n_clusters_ = int(len(np.unique(fit_kw["cov_kwds"]["groups"]))) if fit_kw else None
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """Linear predictor x'β (+ county effect)."""
        Xf = _as_frame(X)
        z = self._design(Xf) @ self.params_[["const", *self.features_]].to_numpy()
        if self.county_effects and len(self.counties_) > 1:
            fe = Xf[self.county_col].astype(str).map(self.county_effect_)
            z = z + fe.fillna(float(self.county_effect_.mean())).to_numpy(dtype=float)
        return z

    def _score(self, X: pd.DataFrame) -> np.ndarray:
        return expit(self.decision_function(X))

    def effects(self, alpha: float | None = None, include_fixed_effects: bool = False) -> pd.DataFrame:
        """Coefficients with (cluster-robust) inference.

        Returns
        -------
        DataFrame
            Index = term; ``coef, se, z, p_value, ci_low, ci_high, odds_ratio, or_ci_low,
            or_ci_high`` (odds ratio = exp(coef), CI at level 1 − alpha).
        """
        if not hasattr(self, "result_"):
            raise RiskModelError("LogitModel is not fitted")
        a = self.alpha if alpha is None else alpha
        r = self.result_
        ci = np.asarray(r.conf_int(alpha=a))
        out = pd.DataFrame({
            "coef": np.asarray(r.params), "se": np.asarray(r.bse), "z": np.asarray(r.tvalues),
            "p_value": np.asarray(r.pvalues), "ci_low": ci[:, 0], "ci_high": ci[:, 1],
        }, index=pd.Index(self.param_names_, name="term"))
        out["odds_ratio"] = np.exp(out["coef"])
        out["or_ci_low"] = np.exp(out["ci_low"])
        out["or_ci_high"] = np.exp(out["ci_high"])
        if not include_fixed_effects:
            out = out[~out.index.str.startswith("county[")]
        return out


class BoostingModel(_RiskModel):
    """Gradient boosting (HistGradientBoostingClassifier) with time-respecting calibration.

    The booster is trained on the training years except the last ``calibration_years``; its
    probabilities are then calibrated (sigmoid or isotonic, ``CalibratedClassifierCV`` on the
    frozen booster) on those later years only, so calibration mimics predicting a future year.
    Sigmoid is the default: isotonic calibration is a step function whose ties blur the ranking
    that village lists are cut from (recall at k), at no gain in Brier score on the demo data.
    ``county_col`` enters as a categorical feature (unseen counties are treated as missing).

    Parameters
    ----------
    features : sequence of str, optional
        Default: every numeric feature of :func:`build_features` (:func:`feature_columns`).
    method : {'sigmoid', 'isotonic'}
    calibration_years : int
    year_col, county_col : str
    max_iter, learning_rate, max_leaf_nodes, min_samples_leaf, l2_regularization
        Booster settings (no early stopping: its validation split would be random).
    random_state : int
    n_threads : int, optional
        Cap on OpenMP threads while fitting and predicting (None: all cores). On a machine whose
        cores are shared, 1 is often much faster: idle OpenMP threads spin while waiting.
    """

    def __init__(self, features: Sequence[str] | None = None, method: str = "sigmoid",
                 calibration_years: int = 1, year_col: str = "year", county_col: str | None = "county_code",
                 max_iter: int = 150, learning_rate: float = 0.08, max_leaf_nodes: int = 31,
                 min_samples_leaf: int = 40, l2_regularization: float = 1.0, random_state: int = RANDOM_STATE,
                 n_threads: int | None = None):
        self.features = features
        self.method = method
        self.calibration_years = calibration_years
        self.year_col = year_col
        self.county_col = county_col
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.random_state = random_state
        self.n_threads = n_threads

    def _threads(self):
        from threadpoolctl import threadpool_limits

        return threadpool_limits(limits=self.n_threads, user_api="openmp")

    def _frame(self, X: pd.DataFrame) -> pd.DataFrame:
        out = pd.DataFrame(self._matrix(X, self.features_, "BoostingModel"), columns=self.features_, index=X.index)
        if self.county_col is not None and self.county_col in X.columns:
            out["__county"] = pd.Categorical(X[self.county_col].astype(str), categories=self.county_categories_)
        return out

    def fit(self, X: Any, y: Any) -> "BoostingModel":
        """Fit booster on the earlier years and the calibrator on the last ``calibration_years``."""
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.ensemble import HistGradientBoostingClassifier
        from sklearn.frozen import FrozenEstimator

        Xf, yy = self._fit_start(X, y)
        if self.method not in ("isotonic", "sigmoid"):
            raise ValueError(f"method must be 'isotonic' or 'sigmoid', got {self.method!r}")
        _require(Xf, [self.year_col], "BoostingModel (time-respecting calibration needs the year)")
        cols = [c for c in self._columns(Xf) if c != self.year_col]
        self.features_ = cols
        self.county_categories_ = (sorted(Xf[self.county_col].astype(str).unique())
                                   if self.county_col is not None and self.county_col in Xf.columns else [])
        yrs = Xf[self.year_col].to_numpy(dtype=np.int64)
        uy = np.unique(yrs)
        k = int(self.calibration_years)
        if len(uy) <= k:
            raise RiskModelError(f"BoostingModel needs more than {k} training year(s) to calibrate on a later "
                                 f"year; got {list(uy)}")
        cal = np.isin(yrs, uy[-k:])
        for part, m in (("booster (earlier years)", ~cal), ("calibration (last years)", cal)):
            if yy[m].min() == yy[m].max():
                raise RiskModelError(f"BoostingModel: the {part} set has only label {yy[m][0]}")
        D = self._frame(Xf)
        hgb = HistGradientBoostingClassifier(
            max_iter=self.max_iter, learning_rate=self.learning_rate, max_leaf_nodes=self.max_leaf_nodes,
            min_samples_leaf=self.min_samples_leaf, l2_regularization=self.l2_regularization,
            early_stopping=False, categorical_features="from_dtype", random_state=self.random_state)
        with self._threads():
            hgb.fit(D[~cal], yy[~cal])
            self.calibrator_ = CalibratedClassifierCV(FrozenEstimator(hgb), method=self.method).fit(D[cal], yy[cal])
        self.booster_ = hgb
        self.calibration_years_ = [int(v) for v in uy[-k:]]
        return self

    def _score(self, X: pd.DataFrame) -> np.ndarray:
        with self._threads():
            return self.calibrator_.predict_proba(self._frame(X))[:, 1]


class VulnerabilityModel(_RiskModel):
    """Vulnerability to poverty, Chaudhuri–Jalan–Suryahadi (2002) three-step FGLS.

    With ``outcome`` o = ln(income / line) of the label window (``make_labels(...).outcome``):

    1. OLS of o on [1, X] → residuals ê;
    2. OLS of ê² on [1, X] → variance function σ̂²(X) = X θ̂ (floored at ``variance_floor`` × mean ê²,
       because a linear variance function can go negative);
    3. WLS of o on [1, X] with weights 1/σ̂² → β̂;

    vulnerability = P(ln y < ln z) = Φ((0 − Xβ̂) / σ̂(X)), the line being 0 on the log-ratio scale.
    Without ``outcome`` (plain ``fit(X, y)``) the classical cross-sectional form is used: o is
    the current ``outcome_col`` and features computed from the household's own income are left out.
    The model predicts the income part of the label only (guarantee failures are not modelled).

    Parameters
    ----------
    features : sequence of str, optional
    outcome_col : str
    variance_floor : float
    """

    _default_features = (
        "chronic_illness", "disability", "no_labour", "dependent_share", "household_size", "able_share",
        "log_income_ratio", "income_trend", "income_volatility", "share_transfer", "shock_any", "assistance",
        "exited", "village_mean_log_income_ratio",
    )

    def __init__(self, features: Sequence[str] | None = None, outcome_col: str = "log_income_ratio",
                 variance_floor: float = 0.01):
        self.features = features
        self.outcome_col = outcome_col
        self.variance_floor = variance_floor

    def fit(self, X: Any, y: Any, outcome: Any = None) -> "VulnerabilityModel":
        """Three-step FGLS; ``outcome`` is ln(income/line) over the label window (see class doc)."""
        Xf, _ = self._fit_start(X, y)
        cols = self._columns(Xf)
        if outcome is None:
            _require(Xf, [self.outcome_col], "VulnerabilityModel (cross-sectional form)")
            o = Xf[self.outcome_col].astype(float).to_numpy()
            cols = [c for c in cols if c not in _INCOME_DERIVED and c != self.outcome_col]
            self.form_ = "cross_section"
        else:
            o = np.asarray(outcome, dtype=float).ravel()
            if len(o) != len(Xf):
                raise RiskModelError(f"outcome has {len(o)} values for {len(Xf)} rows")
            self.form_ = "panel"
        ok = np.isfinite(o)
        if ok.sum() < len(cols) + 2:
            raise RiskModelError("VulnerabilityModel: too few rows with a finite outcome")
        a = self._matrix(Xf, cols, "VulnerabilityModel")
        const = np.ptp(a[ok], axis=0) == 0
        self.features_ = [c for c, k in zip(cols, const) if not k]
        Z = np.column_stack([np.ones(ok.sum()), a[ok][:, ~const]])
        oo = o[ok]
        b_ols = np.linalg.lstsq(Z, oo, rcond=None)[0]
        e2 = (oo - Z @ b_ols) ** 2
        theta = np.linalg.lstsq(Z, e2, rcond=None)[0]
        self.floor_ = float(self.variance_floor * e2.mean())
        s2 = np.maximum(Z @ theta, self.floor_)
        wt = 1.0 / np.sqrt(s2)
        beta = np.linalg.lstsq(Z * wt[:, None], oo * wt, rcond=None)[0]
        self.beta_ = pd.Series(beta, index=["const", *self.features_])
        self.theta_ = pd.Series(theta, index=["const", *self.features_])
        self.beta_ols_ = pd.Series(b_ols, index=["const", *self.features_])
        return self

    def mean_variance(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """Expected log ratio X β̂ and variance σ̂²(X) of each row."""
        Xf = _as_frame(X)
        Z = np.column_stack([np.ones(len(Xf)), self._matrix(Xf, self.features_, "VulnerabilityModel")])
        return Z @ self.beta_.to_numpy(), np.maximum(Z @ self.theta_.to_numpy(), self.floor_)

    def _score(self, X: pd.DataFrame) -> np.ndarray:
        mu, s2 = self.mean_variance(X)
        return norm.cdf(-mu / np.sqrt(s2))


def default_models(random_state: int = RANDOM_STATE, county_effects: bool = True) -> dict[str, _RiskModel]:
    """The four models with their default settings: rule, logit, boosting, vulnerability."""
    return {
        "rule": PolicyRuleModel(),
        "logit": LogitModel(county_effects=county_effects),
        "boosting": BoostingModel(random_state=random_state),
        "vulnerability": VulnerabilityModel(),
    }


# ---------------------------------------------------------------------------------------------
# 4. metrics
# ---------------------------------------------------------------------------------------------
def _yp(y: Any, p: Any) -> tuple[np.ndarray, np.ndarray]:
    yy = np.asarray(y, dtype=float).ravel()
    pp = np.asarray(p, dtype=float).ravel()
    if len(yy) != len(pp):
        raise ValueError(f"y has {len(yy)} values, the scores {len(pp)}")
    return yy, pp


def roc_auc(y: Any, score: Any) -> float:
    """Area under the ROC curve (ties count one half); NaN when y has a single class."""
    from sklearn.metrics import roc_auc_score

    yy, pp = _yp(y, score)
    return float(roc_auc_score(yy, pp)) if len(np.unique(yy)) == 2 else float("nan")


def pr_auc(y: Any, score: Any) -> float:
    """Average precision (area under the precision-recall curve); NaN without positives."""
    from sklearn.metrics import average_precision_score

    yy, pp = _yp(y, score)
    return float(average_precision_score(yy, pp)) if yy.sum() > 0 else float("nan")


def brier(y: Any, p: Any) -> float:
    """Brier score: mean of (p − y)²."""
    yy, pp = _yp(y, p)
    return float(np.mean((pp - yy) ** 2)) if len(yy) else float("nan")


def calibration_table(y: Any, p: Any, n_bins: int = 10, strategy: str = "quantile") -> pd.DataFrame:
    """Calibration curve: observed event rate against mean predicted probability per bin.

    Parameters
    ----------
    y, p : array-like
    n_bins : int
    strategy : {'quantile', 'uniform'}
        Equal-count bins or equal-width bins on [0, 1].

    Returns
    -------
    DataFrame
        ``bin, n, p_min, p_max, mean_predicted, observed_rate`` (empty bins omitted).
    """
    yy, pp = _yp(y, p)
    if strategy == "quantile":
        edges = np.unique(np.quantile(pp, np.linspace(0, 1, n_bins + 1)))
    elif strategy == "uniform":
        edges = np.linspace(0, 1, n_bins + 1)
    else:
        raise ValueError(f"strategy must be 'quantile' or 'uniform', got {strategy!r}")
    b = np.clip(np.searchsorted(edges, pp, side="right") - 1, 0, max(len(edges) - 2, 0))
    d = pd.DataFrame({"bin": b, "y": yy, "p": pp})
    out = d.groupby("bin").agg(n=("y", "size"), p_min=("p", "min"), p_max=("p", "max"),
                               mean_predicted=("p", "mean"), observed_rate=("y", "mean")).reset_index()
    return out


def _topk_rank(df: pd.DataFrame, score: str, group: str) -> np.ndarray:
    """0-based rank of each row within its group by descending score (ties: row order)."""
    order = np.lexsort((np.arange(len(df)), -df[score].to_numpy(dtype=float),
                        pd.factorize(df[group])[0]))
    rank = np.empty(len(df), dtype=np.int64)
    g_sorted = pd.factorize(df[group])[0][order]
    rank[order] = pd.Series(g_sorted).groupby(g_sorted).cumcount().to_numpy()
    return rank


def capture_at_k(df: pd.DataFrame, score: str, label: str = "label", group: str = "village_code",
                 k: int = 5) -> pd.Series:
    """Capacity-constrained capture: each group (village) can follow up its top-k households.

    Parameters
    ----------
    df : DataFrame
        One row per household (of one year), with ``score``, ``label`` and ``group``.
    score, label, group : str
    k : int
        List size per group; ties are broken by row order.

    Returns
    -------
    Series
        ``recall_at_k`` (listed positives / all positives), ``precision_at_k`` (listed positives /
        listed), ``n_listed``, ``n_captured``, ``n_positives``, ``k``.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    _require(df, [score, label, group], "capture_at_k")
    listed = _topk_rank(df, score, group) < k
    y = df[label].to_numpy(dtype=float)
    npos, nl = float(y.sum()), int(listed.sum())
    cap = float(y[listed].sum())
    return pd.Series({"recall_at_k": cap / npos if npos else float("nan"),
                      "precision_at_k": cap / nl if nl else float("nan"),
                      "n_listed": nl, "n_captured": cap, "n_positives": npos, "k": k})


def capture_curve(df: pd.DataFrame, scores: Sequence[str], label: str = "label", group: str = "village_code",
                  ks: Iterable[int] = range(1, 11), baseline: str | None = None) -> pd.DataFrame:
    """Capture versus list size per group for several score columns.

    Returns
    -------
    DataFrame
        ``model, k, recall_at_k, precision_at_k, n_listed`` and, with ``baseline`` (a score
        column, e.g. the rule), ``baseline_recall`` and ``gain`` = recall − baseline recall at the
        same k.
    """
    y = df[label].to_numpy(dtype=float)
    npos = y.sum()
    rows = []
    for s in scores:  # loop over models and list sizes, not rows
        rank = _topk_rank(df, s, group)
        for k in ks:
            listed = rank < k
            cap = y[listed].sum()
            rows.append({"model": s, "k": int(k), "recall_at_k": cap / npos if npos else np.nan,
                         "precision_at_k": cap / listed.sum() if listed.sum() else np.nan,
                         "n_listed": int(listed.sum())})
    out = pd.DataFrame(rows)
    if baseline is not None and len(out):
        base = out[out["model"] == baseline].set_index("k")["recall_at_k"]
        out["baseline_recall"] = out["k"].map(base)
        out["gain"] = out["recall_at_k"] - out["baseline_recall"]
    return out


def _metric_row(y: np.ndarray, s: np.ndarray, df: pd.DataFrame, col: str, label: str, group: str,
                k: int) -> dict[str, float]:
    cap = capture_at_k(df, col, label, group, k) if group in df.columns else None
    return {"n": len(y), "n_positives": float(np.sum(y)), "auc": roc_auc(y, s), "pr_auc": pr_auc(y, s),
            "brier": brier(y, s),
            "recall_at_k": float(cap["recall_at_k"]) if cap is not None else np.nan,
            "precision_at_k": float(cap["precision_at_k"]) if cap is not None else np.nan}


def metrics_by_county(scores: pd.DataFrame, models: Sequence[str], label: str = "label",
                      county_col: str = "county_code", group: str = "village_code", k: int = 5) -> pd.DataFrame:
    """Metrics of each score column within each county (AUC NaN where a county has one class)."""
    rows = []
    for cc, d in scores.groupby(county_col, sort=True):  # loop over counties and models
        y = d[label].to_numpy(dtype=float)
        for m in models:
            rows.append({county_col: cc, "model": m,
                         **_metric_row(y, d[m].to_numpy(dtype=float), d, m, label, group, k)})
    return pd.DataFrame(rows)


def stability(by_county: pd.DataFrame, metrics: Sequence[str] = ("auc", "pr_auc", "brier", "recall_at_k")
              ) -> pd.DataFrame:
    """Spread of per-county metrics: mean, SD, min, max and IQR across counties per model."""
    long = by_county.melt(id_vars=["model"], value_vars=list(metrics), var_name="metric")
    g = long.groupby(["model", "metric"])["value"]
    out = g.agg(n_counties="count", mean="mean", sd="std", min="min", max="max")
    out["iqr"] = g.quantile(0.75) - g.quantile(0.25)
    return out.reset_index()


# ---------------------------------------------------------------------------------------------
# 4b. out-of-time validation
# ---------------------------------------------------------------------------------------------
@dataclass
class ValidationResult:
    """Out-of-time validation output.

    Attributes
    ----------
    scores : DataFrame
        Test rows (keys, county, village, label, population) with one score column per model.
    metrics : DataFrame
        Per model: n, n_positives, auc, pr_auc, brier, recall_at_k, precision_at_k, fit_seconds.
    curve : DataFrame
        :func:`capture_curve` with the rule baseline.
    by_county, stability : DataFrame
        Per-county metrics and their spread.
    calibration : DataFrame
        :func:`calibration_table` per model.
    models : dict
        Fitted models (for rolling origins: ``{test_year: {name: model}}``).
    """

    scores: pd.DataFrame
    metrics: pd.DataFrame
    curve: pd.DataFrame
    by_county: pd.DataFrame
    stability: pd.DataFrame
    calibration: pd.DataFrame
    models: dict = field(default_factory=dict)
    train_years: list[int] = field(default_factory=list)
    test_year: int | list[int] | None = None


def _model_dict(models: Mapping[str, Any] | Sequence[Any] | None) -> dict[str, Any]:
    if models is None:
        return default_models()
    if isinstance(models, Mapping):
        d = dict(models)
    else:
        d = {}
        for m in models:
            name = type(m).__name__.removesuffix("Model").lower()
            d[name if name not in d else f"{name}{len(d)}"] = m
    bad = [n for n in d if n in _META or n in _LABEL_COLUMNS]
    if bad:
        raise ValueError(f"model names {bad} clash with data columns; rename them")
    if not any(isinstance(m, PolicyRuleModel) for m in d.values()):
        d = {"rule": PolicyRuleModel(), **d}  # the baseline every model is compared with
    return d


def _fit_model(m: Any, X: pd.DataFrame, y: np.ndarray, outcome: np.ndarray) -> Any:
    params = inspect.signature(m.fit).parameters
    return m.fit(X, y, outcome=outcome) if "outcome" in params else m.fit(X, y)


def labelled_frame(labels: pd.DataFrame, features: pd.DataFrame) -> pd.DataFrame:
    """Labels joined with the features known at t (inner join on household and year, one to one).

    The rows every model is trained and tested on (:func:`out_of_time`, :func:`fit_model`).
    """
    return labels.merge(features, on=_KEYS, how="inner", validate="one_to_one")


def fit_model(model: Any, train: pd.DataFrame, columns: Sequence[str]) -> Any:
    """Fit a clone of ``model`` on labelled rows exactly as :func:`out_of_time` does.

    The model sees ``columns`` only (the feature columns: labels and outcomes are never candidate
    inputs), target ``label``; a model whose ``fit`` takes ``outcome`` (the panel form of
    :class:`VulnerabilityModel`) also gets the ``outcome`` column.

    Parameters
    ----------
    model : estimator
        Left unfitted; a fitted clone is returned.
    train : DataFrame
        :func:`labelled_frame` rows of the training years.
    columns : sequence of str
        The columns of :func:`build_features`.
    """
    est = clone(model)
    _fit_model(est, train[list(columns)], train["label"].to_numpy(dtype=np.int64),
               train["outcome"].to_numpy(dtype=float))
    return est


def out_of_time(
    panel: pd.DataFrame,
    households: pd.DataFrame,
    members: pd.DataFrame,
    models: Mapping[str, Any] | Sequence[Any] | None,
    train_years: Iterable[int],
    test_year: int,
    *,
    policy: Policy | None = None,
    population: str = "exited",
    line: str | None = None,
    guarantees: Sequence[str] | None = None,
    horizon: int | None = None,
    counties: Iterable[str] | None = None,
    features: pd.DataFrame | None = None,
    labels: pd.DataFrame | None = None,
    k: int = 5,
    group: str = "village_code",
    ks: Iterable[int] = range(1, 11),
) -> ValidationResult:
    """Train on years t ∈ ``train_years`` and test on t = ``test_year`` (never a random split).

    Every training label must be observable at the test year: max(train_years) + h ≤ test_year,
    otherwise the training outcomes would overlap the test period. Models are cloned, so the
    objects passed in stay unfitted. A :class:`PolicyRuleModel` named ``rule`` is added when
    none is given: it is the baseline of the capture curve.

    Parameters
    ----------
    panel, households, members : DataFrame
    models : mapping name → estimator, sequence, or None for :func:`default_models`
    train_years : iterable of int
    test_year : int
    policy, population, line, guarantees, horizon, counties
        Label definition (see :func:`make_labels`).
    features, labels : DataFrame, optional
        Precomputed :func:`build_features` / :func:`make_labels` output (rolling origins reuse them).
    k : int
        Per-village list size of the capture metrics.
    group : str
    ks : iterable of int
        List sizes of the capture curve.

    Returns
    -------
    ValidationResult
    """
    pol = _policy(policy)
    _, _, h = _label_definition(pol, line, guarantees, horizon)
    pyears = np.unique(panel["year"].to_numpy(dtype=np.int64))
    lo, hi = int(pyears.min()), int(pyears.max())
    test_year = int(test_year)
    if test_year not in pyears:
        raise RiskModelError(f"test year {test_year} is outside the panel (years {lo}-{hi})")
    if test_year + h > hi:
        raise RiskModelError(f"test year {test_year} cannot be labelled: horizon {h} needs year {test_year + h}, "
                             f"beyond the panel's last year {hi}; choose a test year ≤ {hi - h}")
    ty = sorted({int(y) for y in train_years})
    if not ty:
        raise RiskModelError("train_years is empty")
    outside = [y for y in ty if y not in pyears]
    if outside:
        raise RiskModelError(f"training year(s) {outside} are outside the panel (years {lo}-{hi})")
    if ty[-1] + h > test_year:
        raise RiskModelError(f"training year {ty[-1]} has labels in {ty[-1] + 1}..{ty[-1] + h}, not all observed "
                             f"by test year {test_year}; end the training years at {test_year - h}")
    mdl = _model_dict(models)
    if labels is None:
        labels = make_labels(panel, households, pol, line, guarantees, horizon, population, counties)
    if features is None:
        p = panel if counties is None else panel[panel["county_code"].astype(str).isin({str(c) for c in counties})]
        features = build_features(p, households, members, years=[*ty, test_year], policy=pol)
    data = labelled_frame(labels, features)
    train = data[data["year"].isin(ty)].reset_index(drop=True)
    test = data[data["year"] == test_year].reset_index(drop=True)
    if not len(train):
        raise RiskModelError(f"no labelled {population} households in training years {ty}")
    if int(train["label"].sum()) == 0:
        raise RiskModelError(f"the training set ({ty[0]}-{ty[-1]}, {len(train)} {population} household-years) "
                             "has no positive case; widen the training years or check the label definition")
    if not len(test):
        raise RiskModelError(f"no labelled {population} households in test year {test_year}")
    # models see the feature columns only: labels and outcomes must never be candidate inputs
    Xte = test[list(features.columns)]
    scores = test[[*_KEYS, "county_code", "village_code", "population", "label"]].copy()
    fitted, rows, cal = {}, [], []
    for name, m in mdl.items():  # loop over models
        t0 = time.perf_counter()
        est = fit_model(m, train, features.columns)
        secs = time.perf_counter() - t0
        scores[name] = est.predict_proba(Xte)[:, 1]
        fitted[name] = est
        y = scores["label"].to_numpy(dtype=float)
        rows.append({"model": name, **_metric_row(y, scores[name].to_numpy(), scores, name, "label", group, k),
                     "k": k, "fit_seconds": secs})
        cal.append(calibration_table(y, scores[name].to_numpy()).assign(model=name))
    names = list(mdl)
    rule = next(n for n, m in mdl.items() if isinstance(m, PolicyRuleModel))
    by_c = metrics_by_county(scores, names, group=group, k=k)
    return ValidationResult(
        scores=scores, metrics=pd.DataFrame(rows).assign(test_year=test_year, train_start=ty[0], train_end=ty[-1]),
        curve=capture_curve(scores, names, "label", group, ks, baseline=rule).assign(test_year=test_year),
        by_county=by_c.assign(test_year=test_year), stability=stability(by_c).assign(test_year=test_year),
        calibration=pd.concat(cal, ignore_index=True).assign(test_year=test_year),
        models=fitted, train_years=ty, test_year=test_year)


def rolling_origin(
    panel: pd.DataFrame,
    households: pd.DataFrame,
    members: pd.DataFrame,
    models: Mapping[str, Any] | Sequence[Any] | None,
    test_years: Iterable[int],
    *,
    first_train_year: int | None = None,
    window: int | None = None,
    policy: Policy | None = None,
    population: str = "exited",
    line: str | None = None,
    guarantees: Sequence[str] | None = None,
    horizon: int | None = None,
    counties: Iterable[str] | None = None,
    **kwargs: Any,
) -> ValidationResult:
    """Out-of-time validation at several origins: for each test year T, train on years up to T − h.

    Parameters
    ----------
    test_years : iterable of int
    first_train_year : int, optional
        First training year (default: the panel's first year); the window expands.
    window : int, optional
        Use only the last ``window`` training years (sliding window) instead.
    **kwargs
        Passed to :func:`out_of_time` (k, group, ks).

    Returns
    -------
    ValidationResult
        Tables stacked over origins (column ``test_year``); ``models`` = {test_year: fitted}.
    """
    pol = _policy(policy)
    _, _, h = _label_definition(pol, line, guarantees, horizon)
    labels = make_labels(panel, households, pol, line, guarantees, horizon, population, counties)
    p = panel if counties is None else panel[panel["county_code"].astype(str).isin({str(c) for c in counties})]
    feats = build_features(p, households, members, policy=pol)
    start = int(panel["year"].min()) if first_train_year is None else int(first_train_year)
    parts: list[ValidationResult] = []
    for T in sorted({int(y) for y in test_years}):  # loop over origins
        end = T - h
        ty = list(range(start if window is None else max(start, end - window + 1), end + 1))
        parts.append(out_of_time(panel, households, members, models, ty, T, policy=pol, population=population,
                                 line=line, guarantees=guarantees, horizon=horizon, counties=counties,
                                 features=feats, labels=labels, **kwargs))
    cat = lambda attr: pd.concat([getattr(r, attr) for r in parts], ignore_index=True)  # noqa: E731
    return ValidationResult(scores=cat("scores"), metrics=cat("metrics"), curve=cat("curve"),
                            by_county=cat("by_county"), stability=cat("stability"), calibration=cat("calibration"),
                            models={r.test_year: r.models for r in parts},
                            train_years=sorted({y for r in parts for y in r.train_years}),
                            test_year=[r.test_year for r in parts])


# ---------------------------------------------------------------------------------------------
# 5. early warning, case closure, watch list
# ---------------------------------------------------------------------------------------------
def _col(df: pd.DataFrame, name: str) -> np.ndarray:
    """Known-true flag column, or all False when the column is absent."""
    if name not in df.columns:
        return np.zeros(len(df), bool)
    s = df[name]
    if pd.api.types.is_bool_dtype(s) or isinstance(s.dtype, pd.BooleanDtype):
        return _true(s)
    return pd.to_numeric(s, errors="coerce").fillna(0).to_numpy(dtype=float) > 0


def _reason_flags(df: pd.DataFrame) -> dict[str, np.ndarray]:
    """Flags of the official categories from the household's situation at t (no row loops).

    illness: illness shock at t, chronic illness, or failed medical guarantee; disability: disabled
    member (registration or onset ≤ t); schooling: failed education guarantee, or children of
    school age / in school while income is below the monitoring line; disaster / accident /
    project_failure / unstable_employment: the shocks at t; lack_labour: no member able to work;
    housing / water: failed guarantees; low_income: income below the monitoring line or failed
    food/clothing guarantee.
    """
    low = _col(df, "below_monitoring_line")
    return {
        "illness": _col(df, "shock_illness") | _col(df, "chronic_illness") | _col(df, "fail_medical"),
        "disability": _col(df, "disability"),
        "schooling": _col(df, "fail_education")
        | (low & (_col(df, "school_age_children") | _col(df, "n_in_school_base"))),
        "disaster": _col(df, "shock_disaster"),
        "accident": _col(df, "shock_accident"),
        "project_failure": _col(df, "shock_project_failure"),
        "unstable_employment": _col(df, "shock_job_loss"),
        "lack_labour": _col(df, "no_labour"),
        "housing": _col(df, "fail_housing"),
        "water": _col(df, "fail_water"),
        "low_income": low | _col(df, "fail_food_clothing"),
    }


def _main_reason_priority(df: pd.DataFrame, flags: dict[str, np.ndarray]) -> list[tuple[str, np.ndarray]]:
    """Order in which a reason becomes the *main* one: events dated at t first (they are what
    changed and what assistance can answer now), then lasting conditions, then failed
    guarantees, and low income last (it is the symptom the other causes produce)."""
    return [
        ("disaster", flags["disaster"]), ("accident", flags["accident"]),
        ("illness", _col(df, "shock_illness")), ("disability", _col(df, "shock_disability")),
        ("project_failure", flags["project_failure"]), ("unstable_employment", flags["unstable_employment"]),
        ("illness", flags["illness"]), ("disability", flags["disability"]), ("lack_labour", flags["lack_labour"]),
        ("schooling", flags["schooling"]), ("housing", flags["housing"]), ("water", flags["water"]),
        ("low_income", flags["low_income"]),
    ]


def early_warning(scores_df: pd.DataFrame, policy: Policy | None = None, score: str = "score",
                  features: pd.DataFrame | None = None) -> pd.DataFrame:
    """Warning level and reasons per household-year.

    Level: ``red`` when score ≥ ``[risk].red_threshold``, ``yellow`` when ≥
    ``[risk].yellow_threshold``, else ``green`` (thresholds assume calibrated probabilities, e.g.
    of :class:`BoostingModel` or :class:`LogitModel`). Reasons are the official categories
    (:data:`REASON_CATEGORIES`) whose flags hold at t (see ``_reason_flags``), ';'-joined in
    that order; ``main_reason`` is the most pressing of them (``_main_reason_priority``: events
    dated at t, then lasting conditions, failed guarantees, low income).

    Parameters
    ----------
    scores_df : DataFrame
        ``household_id, year, score`` and the flag columns of :func:`build_features` (or pass
        ``features`` to have them merged on household_id and year).
    policy : Policy, optional
    score : str
        Score column.
    features : DataFrame, optional

    Returns
    -------
    DataFrame
        keys (+ county_code, village_code when known), ``score, level, main_reason, reasons, n_reasons``.
    """
    pol = _policy(policy)
    cfg = pol.section("risk")
    red, yellow = float(cfg["red_threshold"]), float(cfg["yellow_threshold"])
    if not red > yellow:
        raise ValueError(f"[risk] red_threshold ({red}) must exceed yellow_threshold ({yellow})")
    _require(scores_df, [*_KEYS, score], "early_warning")
    d = scores_df
    if features is not None:
        extra = [c for c in features.columns if c not in d.columns or c in _KEYS]
        d = d.merge(features[extra], on=_KEYS, how="left", validate="many_to_one")
    s = pd.to_numeric(d[score], errors="raise").to_numpy(dtype=float)
    level = np.where(s >= red, "red", np.where(s >= yellow, "yellow", "green")).astype(object)
    flags = _reason_flags(d)
    M = np.column_stack([flags[c] for c in REASON_CATEGORIES])
    codes = np.array([f"{c};" for c in REASON_CATEGORIES], dtype=object)
    cells = pd.DataFrame(np.where(M, codes, ""), dtype="string")
    reasons = cells.iloc[:, 0].str.cat(cells.iloc[:, 1:], sep="").str.rstrip(";").to_numpy(dtype=object)
    prio = _main_reason_priority(d, flags)
    P = np.column_stack([f for _, f in prio])
    first = np.array([c for c, _ in prio], dtype=object)[P.argmax(axis=1)]
    keep = [c for c in (*_KEYS, "county_code", "village_code") if c in d.columns]
    out = d[keep].reset_index(drop=True).copy()
    out["score"] = s
    out["level"] = pd.Categorical(level, categories=list(LEVELS))
    out["main_reason"] = np.where(M.any(axis=1), first, None)
    out["reasons"] = reasons
    out["n_reasons"] = M.sum(axis=1).astype(np.int64)
    return out


def case_closure(
    panel: pd.DataFrame,
    cases: pd.DataFrame | None = None,
    policy: Policy | None = None,
    line: str | None = None,
    guarantees: Sequence[str] | None = None,
    periods: int | None = None,
) -> pd.DataFrame:
    """Closure (销号) of monitoring cases.

    A case opened at year t0 is cleared at the first year s > t0 ending a run of ``periods``
    consecutive panel years after t0 in which income is not below the line (income ≥ line) and
    every guarantee holds (a missing year or unknown value breaks the run).

    Parameters
    ----------
    panel : DataFrame
    cases : DataFrame, optional
        ``household_id, year`` of opening (e.g. warnings of level red/yellow). Default: the start
        of every spell of ``register_status`` 'monitored' or 'edge'.
    policy : Policy, optional
    line : {'monitoring', 'poverty'}, optional
        Default ``[risk].label_line``.
    guarantees : list of str, optional
        Default ``[risk].label_guarantees``.
    periods : int, optional
        Default ``[risk].closure_periods``.

    Returns
    -------
    DataFrame
        ``household_id, opened, cleared, closure_year (Int64), status ('cleared'|'open'),
        consecutive_ok`` (length of the ok run at the panel's last year).
    """
    pol = _policy(policy)
    line, guar, _ = _label_definition(pol, line, guarantees, None)
    k = int(pol.section("risk")["closure_periods"] if periods is None else periods)
    if k < 1:
        raise ValueError(f"periods must be >= 1, got {k}")
    _require(panel, ["income_per_capita", *guar], "case_closure")
    p = _panel_frame(panel)
    g = _Grid(p["household_id"], p["year"])
    lv = _lines(p["county_code"], p["year"], pol, line)
    inc = pd.to_numeric(p["income_per_capita"], errors="raise").to_numpy(dtype=float)
    ok = (inc >= lv) & np.logical_and.reduce([_float_bool(p[c]) == 1 for c in guar] or [np.ones(len(p), bool)])
    OK = g.wide(ok, fill=False, dtype=bool)
    run = np.zeros(g.shape, np.int64)
    for j in range(g.shape[1]):  # loop over calendar years: run length of ok years ending at j
        run[:, j] = np.where(OK[:, j], (run[:, j - 1] if j else 0) + 1, 0)
    if cases is None:
        _require(p, ["register_status"], "case_closure without cases")
        mon = g.wide(p["register_status"].isin(["monitored", "edge"]).to_numpy(), fill=False, dtype=bool)
        start = mon & ~_Grid.lag(mon, 1, fill=False)
        hi_, yi_ = np.nonzero(start)
        cases = pd.DataFrame({"household_id": g.ids[hi_].to_numpy(), "year": g.years[yi_]})
    _require(cases, _KEYS, "case_closure cases")
    c = cases[_KEYS].drop_duplicates().reset_index(drop=True)
    ci = g.ids.get_indexer(c["household_id"])
    if (ci < 0).any():
        raise RiskModelError(f"{int((ci < 0).sum())} case(s) refer to households not in the panel")
    t0 = c["year"].to_numpy(dtype=np.int64)
    R = run[ci]  # cases × calendar years
    yrs = g.years[None, :]
    # cleared at s when the run ending at s has >= k years, all after the opening year
    hit = (R >= k) & (yrs - k + 1 > t0[:, None])
    anyhit = hit.any(axis=1)
    closure = np.where(anyhit, g.years[hit.argmax(axis=1)], -1)
    out = pd.DataFrame({
        "household_id": c["household_id"].to_numpy(), "opened": t0,
        "cleared": anyhit, "closure_year": pd.array(np.where(anyhit, closure, 0), dtype="Int64"),
        "status": np.where(anyhit, "cleared", "open").astype(object),
        "consecutive_ok": run[ci, -1],
    })
    out.loc[~anyhit, "closure_year"] = pd.NA
    return out


def watchlist(
    warnings: pd.DataFrame,
    households: pd.DataFrame,
    members: pd.DataFrame,
    villages: pd.DataFrame | None = None,
    levels: Sequence[str] = ("red", "yellow"),
    k: int | None = None,
) -> pd.DataFrame:
    """Per-village watch list with the household head's name and ID number masked.

    Parameters
    ----------
    warnings : DataFrame
        :func:`early_warning` output (one year).
    households, members : DataFrame
    villages : DataFrame, optional
        Adds ``township_name`` and ``village_name``.
    levels : sequence of str
        Levels listed.
    k : int, optional
        Keep only the top-k households of each village (follow-up capacity).

    Returns
    -------
    DataFrame
        ``county_code, village_code[, township_name, village_name], rank_in_village, household_id,
        head_name_masked, head_id_number_masked, household_size, year, risk_score, warning_level,
        main_risk_reason, risk_reasons`` sorted by county, village and descending score.
    """
    from evalkit import privacy

    _require(warnings, [*_KEYS, "score", "level", "main_reason", "reasons"], "watchlist")
    _require(members, ["household_id", "name", "id_number", "relation_to_head"], "watchlist members")
    w = warnings[warnings["level"].astype(str).isin(list(levels))]
    hh_cols = [c for c in ("household_id", "county_code", "village_code", "household_size") if c in households.columns]
    w = w.drop(columns=[c for c in ("county_code", "village_code") if c in w.columns]).merge(
        households[hh_cols], on="household_id", how="left", validate="many_to_one")
    w = w.merge(privacy.masked_heads(members), on="household_id", how="left", validate="many_to_one")
    if villages is not None:
        vc = [c for c in ("village_code", "township_name", "village_name") if c in villages.columns]
        w = w.merge(villages[vc].drop_duplicates("village_code"), on="village_code", how="left")
    w = w.sort_values(["county_code", "village_code", "score", "household_id"],
                      ascending=[True, True, False, True], kind="stable").reset_index(drop=True)
    w["rank_in_village"] = w.groupby("village_code").cumcount() + 1
    if k is not None:
        w = w[w["rank_in_village"] <= k].reset_index(drop=True)
    w = w.rename(columns={"score": "risk_score", "level": "warning_level", "main_reason": "main_risk_reason",
                          "reasons": "risk_reasons"})
    w["warning_level"] = w["warning_level"].astype(str)
    order = ["county_code", "village_code", "township_name", "village_name", "rank_in_village", "household_id",
             "head_name_masked", "head_id_number_masked", "household_size", "year", "risk_score", "warning_level",
             "main_risk_reason", "risk_reasons"]
    return w[[c for c in order if c in w.columns]]


def _header(key: str, lang: str) -> str:
    from evalkit import dictionary

    try:
        return dictionary.label(key, lang)
    except KeyError:  # a column without a label keeps its canonical name
        return key


def _level_label(code: str, lang: str) -> str:
    from evalkit import dictionary

    return dictionary.code_label("warning_level", code, lang)


def _translate_reasons(s: pd.Series, lang: str) -> pd.Series:
    from evalkit import dictionary

    table = {c: dictionary.code_label("risk_category", c, lang) for c in REASON_CATEGORIES}
    sep = "、" if lang == "zh" else "; "
    ex = s.fillna("").astype(str).str.split(";").explode()
    tr = ex.map(table).dropna()
    joined = tr.groupby(level=0).agg(sep.join)
    return joined.reindex(s.index).fillna("")


def write_watchlist_xlsx(df: pd.DataFrame, path: str | Path, lang: str = "zh", by_county: bool = True) -> Path:
    """Write a :func:`watchlist` to Excel with translated headers, levels and reasons.

    The file is written by :func:`evalkit.report.write_ledger_xlsx`, the one masked-Excel writer
    (headers from :func:`evalkit.dictionary.label`, canonical name where the dictionary has none;
    atomic write; its full-ID check). Name and ID columns are masked again first (idempotent, by
    header); a value that still looks like a full 18-character ID number in any other column
    stops the write with :class:`RiskModelError` (it is never silently masked: it means a wrong
    column was joined in).

    Parameters
    ----------
    df : DataFrame
        :func:`watchlist` output.
    path : path-like
    lang : {'zh', 'en'}
    by_county : bool
        One sheet per county (named by county code), else one sheet sorted by village.

    Returns
    -------
    Path
    """
    from evalkit import privacy
    from evalkit.report import write_ledger_xlsx

    if lang not in ("zh", "en"):
        raise ValueError(f"lang must be 'zh' or 'en', got {lang!r}")
    d = df.copy()
    for c in ("head_name_masked",):
        if c in d.columns:
            d[c] = privacy.mask_name(d[c])
    for c in ("head_id_number_masked",):
        if c in d.columns:
            d[c] = privacy.mask_id_number(d[c])
    # any other name / ID column recognized by its header (not by content: see the docstring)
    for c, kind in privacy.pii_columns([c for c in d.columns if c not in ("head_name_masked",
                                                                           "head_id_number_masked")]).items():
        d[c] = privacy.mask_name(d[c]) if kind == "name" else privacy.mask_id_number(d[c])
    if "warning_level" in d.columns:
        d["warning_level"] = d["warning_level"].astype(str).map({v: _level_label(v, lang) for v in LEVELS})
    if "main_risk_reason" in d.columns:
        d["main_risk_reason"] = _translate_reasons(d["main_risk_reason"], lang)
    if "risk_reasons" in d.columns:
        d["risk_reasons"] = _translate_reasons(d["risk_reasons"], lang)
    if "county_code" in d.columns:
        d = d.sort_values([c for c in ("county_code", "village_code", "rank_in_village") if c in d.columns],
                          kind="stable")
    sheets: dict[str, pd.DataFrame]
    if by_county and "county_code" in d.columns:
        sheets = {str(cc)[:31]: part.reset_index(drop=True) for cc, part in d.groupby("county_code", sort=True)}
    else:
        sheets = {_header("watchlist", lang)[:31]: d.reset_index(drop=True)}
    if not sheets:
        sheets = {_header("watchlist", lang)[:31]: d.reset_index(drop=True)}
    try:
        return write_ledger_xlsx(sheets, path, lang=lang)
    except ValueError as e:  # the shared full-ID check refused the write
        raise RiskModelError(f"watch list not written: {e}") from e
