"""Household classes after exit: not enjoying policy, enjoying policy, monitored, edge, poor.

:func:`classify_households` puts each household-year in one class of docs/policy.md [D4] (§5)
from its register flags, income, the province's monitoring line and the risks it faces. Lines
and shares come from :class:`evalkit.config.Policy`.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from evalkit.config import Policy
from evalkit.errors import MeasureError
from evalkit.measures.columns import as_boolean, require_columns
from evalkit.measures.exit_standard import guarantee_frame, guarantee_specs

__all__ = ["HOUSEHOLD_CLASSES", "REGISTER_STATUS_FLAGS", "classify_households"]

#: Categories of :func:`classify_households`.
HOUSEHOLD_CLASSES: tuple[str, ...] = (
    "poor", "monitored", "enjoying_policy", "not_enjoying_policy", "edge", "not_registered",
)

#: Register status code (dictionary.toml) -> (registered, exited): 'monitored' households are
#: exited; 'edge' ones are not registered.
REGISTER_STATUS_FLAGS: dict[str, tuple[bool, bool]] = {
    "poor": (True, False), "exited": (True, True), "monitored": (True, True),
    "edge": (False, False), "not_registered": (False, False),
}


def _register_flags(df: pd.DataFrame, registered_col: str, exited_col: str) -> tuple[pd.Series, pd.Series]:
    if registered_col in df.columns and exited_col in df.columns:
        return as_boolean(df[registered_col], registered_col), as_boolean(df[exited_col], exited_col)
    if "register_status" not in df.columns:
        raise MeasureError(
            f"classify_households needs columns {registered_col!r} and {exited_col!r}, "
            "or 'register_status' to derive them"
        )
    status = df["register_status"].astype("string")
    known = REGISTER_STATUS_FLAGS
    bad = status.dropna()[~status.dropna().isin(known)].unique()
    if len(bad):
        raise MeasureError(f"unknown register_status values {list(bad)[:5]}; expected codes {list(known)}")
    reg = status.map({s: v[0] for s, v in known.items()}).astype("boolean")
    ex = status.map({s: v[1] for s, v in known.items()}).astype("boolean")
    return reg, ex


def _risk_present(df: pd.DataFrame, pol: Policy, risk_col: str | None) -> np.ndarray:
    if risk_col is not None:
        require_columns(df, [risk_col], "classify_households risk_col")
        return as_boolean(df[risk_col], risk_col).fillna(False).to_numpy(dtype=bool)
    shocks = [c for c in df.columns if str(c).startswith("shock_")]
    try:
        guar = guarantee_frame(df, guarantee_specs(pol.guarantees))
    except MeasureError as e:
        raise MeasureError(f"{e.args[0]}; pass risk_col= to classify without the guarantee columns") from None
    parts = [as_boolean(df[c], c).fillna(False) for c in shocks]
    parts += [(~guar[c]).fillna(False) for c in guar.columns]
    return pd.concat(parts, axis=1).any(axis=1).to_numpy(dtype=bool)


def _province_year_lookup(df: pd.DataFrame, province_code: str | int | None,
                          fn: Callable[[str, int], float]) -> np.ndarray:
    """``fn(province, year)`` of each row: one config lookup per distinct pair, broadcast to the rows."""
    if province_code is None:
        require_columns(df, ["county_code"], "classify_households without province_code")
        prov = df["county_code"].astype("string").str[:2]
    else:
        prov = pd.Series(str(province_code)[:2], index=df.index, dtype="string")
    if prov.isna().any():
        raise MeasureError("county_code is missing for some rows; the monitoring line and the province's"
                           " rural income need the province")
    if df["year"].isna().any():
        raise MeasureError("the 'year' column has missing values; every household-year needs a year")
    yrs = df["year"].astype("int64")
    pairs = pd.MultiIndex.from_arrays([prov.to_numpy(), yrs.to_numpy()])
    upairs = pairs.unique()
    table = pd.Series([fn(p, int(y)) for p, y in upairs], index=upairs)  # distinct pairs, not rows
    return table.reindex(pairs).to_numpy(dtype=float)


def _monitoring_lines(df: pd.DataFrame, pol: Policy, province_code: str | int | None) -> np.ndarray:
    """Monitoring line of each row's (province, year)."""
    return _province_year_lookup(df, province_code, pol.monitoring_line)


def _rural_incomes(df: pd.DataFrame, pol: Policy, province_code: str | int | None) -> np.ndarray:
    """The province's average rural disposable income of each row's year ([D4]: 全省农村居民可支配收入
    平均水平; sourced where known, else assumed: :meth:`evalkit.config.Policy.rural_income`)."""
    return _province_year_lookup(df, province_code, lambda p, y: pol.rural_disposable_income(y, p))


def classify_households(
    df: pd.DataFrame,
    policy: Policy,
    province_code: str | int | None = None,
    income_col: str = "income_per_capita",
    registered_col: str = "registered",
    exited_col: str = "exited",
    risk_col: str | None = None,
) -> pd.Series:
    """Post-exit class of each household-year (docs/policy.md [D4], §5).

    * registered and exited:
        - ``not_enjoying_policy`` (不享受政策) — income ≥ share × the province's average rural
          disposable income of the year (share:
          ``[household_classes].not_enjoying_policy_share_of_average``; the province's value where a
          source gives it, else assumed from the national series, docs/policy.md §3.5);
        - ``monitored`` (脱贫监测户) — otherwise, income < monitoring line of the province-year
          AND a risk present;
        - ``enjoying_policy`` (享受政策) — otherwise;
    * registered, not exited: ``poor``;
    * not registered: ``edge`` (边缘户) when income < monitoring line AND a risk present, else
      ``not_registered``.

    "Below" is strict: income equal to the monitoring line is not below it; income equal to the
    share of the average counts as reaching it. A risk is present when ``risk_col`` is true, or,
    without ``risk_col``, when any ``shock_*`` flag is true or any configured guarantee fails in
    that year; a risk must be recorded to count (missing flags are no risk). Rows whose class
    depends on a missing income or register flag get NA.

    Parameters
    ----------
    df : DataFrame
        Household-years with ``year``, ``income_col``, register flags, and (without
        ``risk_col``) the shock and guarantee columns.
    policy : Policy
        Monitoring lines, the provinces' average rural disposable income, the not-enjoying-policy
        share and the guarantees.
    province_code : str or int, optional
        Province (2-digit GB/T 2260 prefix) for the monitoring line and the rural income; when
        None it is taken per row from ``county_code``.
    income_col : str
        Per-capita income column.
    registered_col, exited_col : str
        Boolean register columns; when absent they are derived from ``register_status``
        (poor → registered; exited/monitored → registered and exited; edge/not_registered → not
        registered).
    risk_col : str, optional
        Boolean column meaning "a risk of (re)falling into poverty is present".

    Returns
    -------
    Series
        Categorical with categories :data:`HOUSEHOLD_CLASSES`, named ``household_class``, on
        ``df``'s index.
    """
    pol = policy
    require_columns(df, ["year", income_col], "classify_households")
    reg, ex = _register_flags(df, registered_col, exited_col)
    bad = (ex.fillna(False) & ~reg.fillna(True)).to_numpy(dtype=bool)
    if bad.any():
        raise MeasureError(f"{int(bad.sum())} row(s) are marked exited but not registered")

    income = pd.to_numeric(df[income_col], errors="raise").to_numpy(dtype=float)

    mline = _monitoring_lines(df, pol, province_code)
    share = pol.not_enjoying_policy_share
    avg = _rural_incomes(df, pol, province_code)

    risk = _risk_present(df, pol, risk_col)
    r = reg.fillna(False).to_numpy(dtype=bool)
    e = ex.fillna(False).to_numpy(dtype=bool)
    nr = (~reg).fillna(False).to_numpy(dtype=bool)
    has_inc = ~np.isnan(income)
    with np.errstate(invalid="ignore"):
        # cents: a share of a yuan amount must not miss the boundary by a floating-point hair
        rich = income >= np.round(share * avg, 2)
        low_risk = (income < mline) & risk

    cond = [
        r & e & has_inc & rich,
        r & e & has_inc & low_risk,
        r & e & has_inc,
        r & ~ex.isna().to_numpy() & ~e,
        nr & has_inc & low_risk,
        nr & has_inc,
    ]
    choice = ["not_enjoying_policy", "monitored", "enjoying_policy", "poor", "edge", "not_registered"]
    # First matching condition wins; code -1 (no condition met: missing input) is NA.
    codes = np.select(cond, [HOUSEHOLD_CLASSES.index(c) for c in choice], default=-1)
    return pd.Series(
        pd.Categorical.from_codes(codes, categories=list(HOUSEHOLD_CLASSES)),
        index=df.index, name="household_class",
    )
