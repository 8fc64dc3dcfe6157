"""Features of each household-year t, using only information known at t.

Nothing from years after t enters a feature at t (``tests/test_risk.py`` perturbs every later
value to prove it). :func:`build_features` assembles the steps below; each step reads the
sorted panel through its household × year :class:`~evalkit.risk.panel.Grid`.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from evalkit import dictionary
from evalkit.config import Policy
from evalkit.errors import RiskModelError
from evalkit.risk.labels import LABEL_COLUMNS
from evalkit.risk.panel import (
    Grid,
    flag_values,
    household_info,
    known_true,
    line_values,
    panel_frame,
    register_at,
    require_columns,
)

__all__ = ["CORE_FEATURES", "INCOME_DERIVED", "META_COLUMNS", "CONTEXT_COLUMNS", "DEPENDENT_AGES",
           "COMPULSORY_SCHOOL_AGES", "build_features", "context_features", "feature_columns"]

#: The generating features of the synthetic risk process (synth.TRUE_PARAMS['risk_model']):
#: the interpretable specification of the logit model. ``dependent_share_base`` is the
#: dependants' share at the register's baseline year, as in the generating definition.
CORE_FEATURES: tuple[str, ...] = (
    "chronic_illness", "disability", "no_labour", "dependent_share_base",
    "log_income_ratio", "shock_any", "assistance", "exited",
)

#: Features computed from the household's own income: dropped by the cross-sectional form of
#: the vulnerability model, whose outcome is that income.
INCOME_DERIVED = frozenset({
    "log_income_ratio", "below_monitoring_line", "below_poverty_line", "income_growth", "income_trend",
    "income_volatility", "share_transfer", "share_wage", "share_business", "share_property",
})

#: Columns of :func:`build_features` that identify or describe a row but are not model inputs.
META_COLUMNS = frozenset({"household_id", "year", "county_code", "village_code", "monitoring_line",
                          "poverty_line"})

#: Village and county context at t: computed over every household of the village / county.
CONTEXT_COLUMNS: tuple[str, ...] = ("village_mean_log_income_ratio", "village_share_below_line",
                                    "village_disaster_share", "county_mean_log_income_ratio")

# Age conventions (definitions, not policy thresholds): dependants are members under 16 or
# 65 and over (national statistics' dependency convention, also the synthetic definition);
# compulsory schooling is the 9 years from age 6 (Compulsory Education Law).
DEPENDENT_AGES: tuple[int, int] = (16, 65)
COMPULSORY_SCHOOL_AGES: tuple[int, int] = (6, 15)

_SHARES = (("income_transfer", "share_transfer"), ("income_wage", "share_wage"),
           ("income_business", "share_business"), ("income_property", "share_property"))


def _member_features(members: pd.DataFrame, info: pd.DataFrame, g: Grid, p: pd.DataFrame) -> dict[str, Any]:
    """Household composition, health and schooling: static at registration, ages move with t."""
    hi, H = g.hi, g.shape[0]
    mi = g.ids.get_indexer(members["household_id"])
    m = members[mi >= 0]
    mi = mi[mi >= 0]

    def cnt(mask: np.ndarray) -> np.ndarray:
        return np.bincount(mi, weights=np.asarray(mask, dtype=float), minlength=H)

    lab = m["labour_capacity"].astype("string").fillna("").to_numpy(dtype=object)
    size = (pd.to_numeric(info["household_size"], errors="coerce").to_numpy(dtype=float)
            if "household_size" in info.columns else np.full(H, np.nan))
    size = np.where(np.isnan(size), cnt(np.ones(len(m))), size)
    size_safe = np.maximum(size, 1.0)
    n_able = cnt(lab == "able")
    birth = pd.to_numeric(m["birth_year"], errors="coerce").to_numpy(dtype=float)
    d0, d1 = DEPENDENT_AGES
    s0, s1 = COMPULSORY_SCHOOL_AGES
    dep, work, school, old = (np.zeros(g.shape) for _ in range(4))
    for j, yr in enumerate(g.years):  # loop over calendar years, not rows
        age = yr - birth
        dep[:, j] = cnt((age < d0) | (age >= d1))
        work[:, j] = cnt((age >= d0) & (age < d1))
        school[:, j] = cnt((age >= s0) & (age <= s1))
        old[:, j] = cnt(age >= d1)
    n_chr = cnt(known_true(m["chronic_illness"]))
    dis0 = cnt(known_true(m["disability"])) > 0
    f: dict[str, Any] = {
        "household_size": size[hi].astype(np.int64), "n_able": n_able[hi].astype(np.int64),
        "n_weak_labour": cnt(lab == "weak")[hi].astype(np.int64), "able_share": (n_able / size_safe)[hi],
        "no_labour": (n_able == 0)[hi], "n_dependants": g.long(dep).astype(np.int64),
        "dependency_ratio": g.long(dep / np.maximum(work, 1.0)),
        "dependent_share": g.long(dep / size_safe[:, None]),
        "dependent_share_base": (dep[:, 0] / size_safe)[hi], "n_elderly": g.long(old).astype(np.int64),
        "chronic_illness": (n_chr > 0)[hi], "n_chronic": n_chr[hi].astype(np.int64),
    }
    # disability: at registration, or an onset recorded at or before t (cumulative over years)
    if "shock_disability" in p.columns:
        onset = np.maximum.accumulate(g.wide(known_true(p["shock_disability"]), fill=False, dtype=bool), axis=1)
        f["disability"] = dis0[hi] | g.long(onset)
    else:
        f["disability"] = dis0[hi]
    f["disability_base"] = dis0[hi]
    f["school_age_children"] = g.long(school).astype(np.int64)
    f["n_in_school_base"] = cnt(known_true(m["in_school"]))[hi].astype(np.int64)
    return f


def _income_features(p: pd.DataFrame, g: Grid, mline: np.ndarray, pline: np.ndarray, w: int) -> dict[str, Any]:
    """Income at t relative to the lines, its trend and volatility over t-w..t, and its sources."""
    f: dict[str, Any] = {}
    inc = pd.to_numeric(p["income_per_capita"], errors="raise").to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        f["log_income_ratio"] = np.log(np.maximum(inc, 1.0) / mline)
        f["below_monitoring_line"] = inc < mline
        f["below_poverty_line"] = inc < pline
    LI = g.wide(np.log(np.maximum(inc, 1.0)))
    lags = [Grid.lag(LI, k) for k in range(w + 1)]  # value at t-k
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
    for comp, name in _SHARES:
        c = pd.to_numeric(p[comp], errors="raise").to_numpy(dtype=float)
        with np.errstate(invalid="ignore", divide="ignore"):
            f[name] = np.where(pos, c / np.where(pos, inc, 1.0), 0.0)
    return f


def _event_features(p: pd.DataFrame, policy: Policy) -> dict[str, Any]:
    """Shocks, failed guarantees and assistance at t."""
    n = len(p)
    sh = {c: known_true(p[c]) for c in p.columns if str(c).startswith("shock_")}
    f: dict[str, Any] = dict(sh)
    f["shock_any"] = np.logical_or.reduce(list(sh.values())) if sh else np.zeros(n, bool)
    f["n_shocks"] = sum(v.astype(np.int64) for v in sh.values()) if sh else np.zeros(n, np.int64)
    gnames = list(dict.fromkeys([*policy.guarantees, *policy.risk.label_guarantees]))
    fails = {"fail_" + gc.removesuffix("_ok"): flag_values(p[gc]) == 0 for gc in gnames if gc in p.columns}
    f.update(fails)
    f["n_guarantee_fail"] = sum(v.astype(np.int64) for v in fails.values()) if fails else np.zeros(n, np.int64)
    f["assistance"] = known_true(p["assistance"]) if "assistance" in p.columns else np.zeros(n, bool)
    amt = (pd.to_numeric(p["assistance_amount"], errors="coerce").fillna(0).to_numpy(dtype=float)
           if "assistance_amount" in p.columns else np.zeros(n))
    f["log_assistance_amount"] = np.log1p(np.maximum(amt, 0.0))
    return f


def _register_features(p: pd.DataFrame, info: pd.DataFrame, g: Grid, t: np.ndarray) -> dict[str, Any]:
    """Register status at t (events dated after t are invisible)."""
    reg_t, ex_t, ey = register_at(info, g.hi, t)
    f: dict[str, Any] = {"registered": reg_t, "exited": ex_t, "poor": reg_t & ~ex_t,
                         "years_since_exit": np.where(ex_t, t - np.nan_to_num(ey), 0).astype(np.int64)}
    if "register_status" in p.columns:
        st = p["register_status"].astype("string").fillna("").to_numpy(dtype=object)
        for s in dictionary.codes("register_status"):  # one flag per code of the data dictionary
            f["status_" + s] = st == s
    ptype = (info["poverty_type"].astype("string").fillna("").to_numpy(dtype=object)[g.hi]
             if "poverty_type" in info.columns else np.full(len(p), "", dtype=object))
    f["type_dibao"] = reg_t & (ptype == "dibao")
    f["type_tekun"] = reg_t & (ptype == "tekun")
    return f


def _add_context(out: pd.DataFrame) -> pd.DataFrame:
    """Village and county context at t (same-year rows only)."""
    vg = out.groupby(["village_code", "year"], sort=False)
    out["village_mean_log_income_ratio"] = vg["log_income_ratio"].transform("mean")
    out["village_share_below_line"] = vg["below_monitoring_line"].transform("mean")
    out["village_disaster_share"] = (vg["shock_disaster"].transform("mean") if "shock_disaster" in out.columns
                                     else 0.0)
    out["county_mean_log_income_ratio"] = out.groupby(["county_code", "year"], sort=False)[
        "log_income_ratio"].transform("mean")
    return out


def context_features(panel: pd.DataFrame, policy: Policy) -> pd.DataFrame:
    """The context columns of :func:`build_features`, one row per village and year.

    Computed from every household of ``panel`` (one or several whole counties) as
    :func:`build_features` computes them (the same means over the same rows, in household order),
    so that features built for a subset of households (``build_features(..., context=...)``) get
    the context of the whole village and county. Grouping runs on integer codes, not strings:
    this is the step that reads every row of a county.

    Returns
    -------
    DataFrame
        ``village_code, year`` and :data:`CONTEXT_COLUMNS`.
    """
    require_columns(panel, ["household_id", "year", "county_code", "village_code", "income_per_capita"],
                    "context_features panel")
    hc = pd.factorize(panel["household_id"], sort=True)[0].astype(np.int64)
    y = panel["year"].to_numpy(dtype=np.int64)
    order = np.lexsort((y, hc))
    hs, ys = hc[order], y[order]
    dup = (hs[1:] == hs[:-1]) & (ys[1:] == ys[:-1])
    if dup.any():
        i = order[1:][dup][:3]
        raise RiskModelError(f"panel has duplicated household-years, e.g. "
                             f"{panel.iloc[i][['household_id', 'year']].to_dict('records')}")
    p = panel.iloc[order]
    mline = line_values(p["county_code"], p["year"], policy, "monitoring")
    inc = pd.to_numeric(p["income_per_capita"], errors="raise").to_numpy(dtype=float)
    vc, vu = pd.factorize(p["village_code"])
    cc, cu = pd.factorize(p["county_code"])
    with np.errstate(invalid="ignore", divide="ignore"):
        d = pd.DataFrame({"v": vc, "c": cc, "year": ys, "lr": np.log(np.maximum(inc, 1.0) / mline),
                          "below": inc < mline})
    d["dis"] = known_true(p["shock_disaster"]) if "shock_disaster" in p.columns else 0.0
    v = d.groupby(["v", "year"], sort=True).agg(c=("c", "first"), lr=("lr", "mean"), below=("below", "mean"),
                                                dis=("dis", "mean")).reset_index()
    cm = d.groupby(["c", "year"], sort=True)["lr"].mean()
    county_mean = cm.reindex(pd.MultiIndex.from_arrays([v["c"], v["year"]])).to_numpy(dtype=float)
    return pd.DataFrame({"village_code": vu.take(v["v"].to_numpy()), "year": v["year"].to_numpy(dtype=np.int64),
                         CONTEXT_COLUMNS[0]: v["lr"].to_numpy(dtype=float),
                         CONTEXT_COLUMNS[1]: v["below"].to_numpy(dtype=float),
                         CONTEXT_COLUMNS[2]: v["dis"].to_numpy(dtype=float), CONTEXT_COLUMNS[3]: county_mean})


def build_features(
    panel: pd.DataFrame,
    households: pd.DataFrame,
    members: pd.DataFrame,
    policy: Policy,
    years: Iterable[int] | None = None,
    trend_window: int = 3,
    *,
    first_year: int | None = None,
    context: pd.DataFrame | None = None,
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
    policy : Policy
    years : iterable of int, optional
        Output only these years t (history before them is still used).
    trend_window : int
        w, the years before t used for trend and volatility.
    first_year : int, optional
        The register's baseline year (of ``dependent_share_base``); default the first year of
        ``panel``. Pass the whole dataset's first year when building features county by county.
    context : DataFrame, optional
        :func:`context_features` of the whole counties, used instead of the context of
        ``panel``'s own households (when ``panel`` holds only some households of a county).

    Returns
    -------
    DataFrame
        One row per panel household-year (of ``years``), sorted by household and year.
    """
    if trend_window < 1:
        raise RiskModelError(f"trend_window must be >= 1, got {trend_window}")
    require_columns(panel, ["village_code", "income_per_capita", "income_wage", "income_business",
                            "income_property", "income_transfer"], "build_features panel")
    require_columns(members, ["household_id", "birth_year", "labour_capacity", "disability", "chronic_illness",
                              "in_school"], "build_features members")
    p = panel_frame(panel)
    g = Grid(p["household_id"], p["year"], first_year=first_year)
    info = household_info(households, g.ids, "build_features")
    t = p["year"].to_numpy(dtype=np.int64)
    mline = line_values(p["county_code"], p["year"], policy, "monitoring")
    pline = line_values(p["county_code"], p["year"], policy, "poverty")
    f: dict[str, Any] = {"household_id": p["household_id"].to_numpy(), "year": t,
                         "county_code": p["county_code"].to_numpy(), "village_code": p["village_code"].to_numpy(),
                         "monitoring_line": mline, "poverty_line": pline}
    f.update(_member_features(members, info, g, p))
    f.update(_income_features(p, g, mline, pline, int(trend_window)))
    f.update(_event_features(p, policy))
    f.update(_register_features(p, info, g, t))
    if context is None:
        out = _add_context(pd.DataFrame(f))
    else:
        require_columns(context, ["village_code", "year", *CONTEXT_COLUMNS], "build_features context")
        out = pd.DataFrame(f).merge(context[["village_code", "year", *CONTEXT_COLUMNS]], on=["village_code", "year"],
                                    how="left", validate="many_to_one")
    if years is not None:
        ys = {int(y) for y in years}
        out = out[out["year"].isin(ys)].reset_index(drop=True)
    return out


def feature_columns(features: pd.DataFrame) -> list[str]:
    """Numeric / boolean model inputs of a :func:`build_features` frame (ids and lines excluded)."""
    return [c for c in features.columns if c not in META_COLUMNS and c not in LABEL_COLUMNS
            and (pd.api.types.is_numeric_dtype(features[c]) or pd.api.types.is_bool_dtype(features[c]))]
