"""Rules on values beyond their dtype: ranges of a column, cross-column and cross-table rules.

A range rule limits one column (years, household size, probabilities, weights); a cross-column
rule compares columns of one row (a village code starts with its county code, an exit follows its
registration, income components add up); a cross-table rule links a child table to its parent
(member -> household -> village -> county). The reasons are the exact sentences shown in the
validation report.

The dictionary (``config/dictionary.toml``) does not carry numeric ranges, so their limits are the
named constants below.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from evalkit import dictionary

__all__ = [
    "TABLE_ORDER", "REFERENCES", "YEAR_RANGE", "BIRTH_YEAR_RANGE", "HOUSEHOLD_SIZE_RANGE",
    "INCOME_PARTS", "RangeCheck", "CrossRule", "year_range", "range_checks", "cross_rules",
]

#: Tables are validated parents first so that a quarantined parent can be seen by its children.
TABLE_ORDER = ("counties", "villages", "village_indicators", "households", "members", "panel", "truth",
               "field_survey")
#: (child table, child column, parent table, parent column, noun used in the reason)
REFERENCES = (
    ("villages", "county_code", "counties", "county_code", "county"),
    ("village_indicators", "village_code", "villages", "village_code", "village"),
    ("households", "village_code", "villages", "village_code", "village"),
    ("members", "household_id", "households", "household_id", "household"),
    ("panel", "household_id", "households", "household_id", "household"),
    ("truth", "household_id", "households", "household_id", "household"),
    ("field_survey", "household_id", "households", "household_id", "household"),
)

#: Calendar years of the register (registration, exit, panel and survey years).
YEAR_RANGE = (2014, 2030)
#: Years of birth of members.
BIRTH_YEAR_RANGE = (1900, 2030)
#: Smallest and largest plausible household size.
HOUSEHOLD_SIZE_RANGE = (1, 30)
#: Per-capita income components whose sum is income_per_capita.
INCOME_PARTS = ("income_wage", "income_business", "income_property", "income_transfer")

#: A column check: (check name, function of the column giving True where valid, reason).
RangeCheck = tuple[str, Callable[[pd.Series], pd.Series], str]


def year_range(col: str) -> tuple[int, int]:
    """Accepted (first, last) year of a ``year`` column."""
    return BIRTH_YEAR_RANGE if col == "birth_year" else YEAR_RANGE


def range_checks(col: dictionary.Column) -> list[RangeCheck]:
    """Column checks whose limits are not implied by the dtype."""
    n = col.name
    if col.dtype == "year":
        lo, hi = year_range(n)
        return [(f"range:{lo}-{hi}", lambda s, lo=lo, hi=hi: (s >= lo) & (s <= hi),
                 f"year outside {lo}–{hi}")]
    if n == "household_size":
        lo, hi = HOUSEHOLD_SIZE_RANGE
        return [("min:household_size", lambda s: s >= lo, f"household size must be at least {lo}"),
                ("max:household_size", lambda s: s <= hi, f"household size above {hi}")]
    if n == "rural_population":
        return [("min:rural_population", lambda s: s >= 0, "population cannot be negative")]
    if n in ("prob_village", "prob_household"):
        return [("prob:(0,1]", lambda s: (s > 0) & (s <= 1), "probability outside (0, 1]")]
    if n == "true_risk_prob":
        return [("prob:[0,1]", lambda s: (s >= 0) & (s <= 1), "probability outside [0, 1]")]
    if n == "weight":
        return [("min:weight", lambda s: s > 0, "design weight must be greater than 0")]
    return []


@dataclass(frozen=True)
class CrossRule:
    """A cross-column rule: rows where ``ok`` is False get ``reason`` on ``column``.

    ``reason`` is a fixed sentence or a function of the failing rows giving one per row.
    """

    name: str
    column: str
    ok: Callable[[pd.DataFrame], np.ndarray]
    reason: Callable[[pd.DataFrame], object]
    severity: str = "error"


def _b(x: pd.Series, fill: bool) -> np.ndarray:
    return x.fillna(fill).to_numpy(dtype=bool)


def _prefix_ok(df: pd.DataFrame, long: str, short: str) -> np.ndarray:
    a, b = df[long], df[short]
    both = (a.notna() & b.notna()).to_numpy()
    ok = np.ones(len(df), dtype=bool)
    if both.any():
        aa, bb = a[both], b[both]
        w = bb.str.len()
        # Codes have one width per column, so a per-width loop is at most one iteration.
        res = np.zeros(len(aa), dtype=bool)
        for width in w.unique():
            sel = (w == width).to_numpy()
            res[sel] = (aa[sel].str.slice(0, int(width)) == bb[sel]).to_numpy(dtype=bool)
        ok[both] = res
    return ok


def cross_rules(table: str) -> list[CrossRule]:
    """The cross-column rules of ``table`` (error- and warning-level)."""
    names = set(dictionary.table(table).names)
    rules: list[CrossRule] = []
    if {"village_code", "county_code"} <= names:
        rules.append(CrossRule(
            "village_in_county", "village_code", lambda d: _prefix_ok(d, "village_code", "county_code"),
            lambda d: "village_code does not start with county_code " + d["county_code"].astype(str)))
    if table == "counties":
        rules.append(CrossRule(
            "province_of_county", "province_code", lambda d: _prefix_ok(d, "county_code", "province_code"),
            lambda d: "province_code differs from the first two digits of county_code "
                      + d["county_code"].astype(str)))
        rules.append(CrossRule(
            "city_of_county", "city_code", lambda d: _prefix_ok(d, "county_code", "city_code"),
            lambda d: "city_code differs from the first four digits of county_code "
                      + d["county_code"].astype(str)))
    if table == "households":
        for c in ("poverty_type", "main_cause", "registration_year", "exit_year"):
            rules.append(CrossRule(
                f"unregistered_{c}", c,
                lambda d, c=c: ~(_b(d["registered"] == False, False) & d[c].notna().to_numpy()),  # noqa: E712
                f"household is not registered (是否建档立卡 = 否) but {c} is filled"))
        rules.append(CrossRule(
            "registered_poverty_type", "poverty_type",
            lambda d: ~(_b(d["registered"], False) & d["poverty_type"].isna().to_numpy()),
            "registered household without poverty_type"))
        rules.append(CrossRule(
            "exit_after_registration", "exit_year",
            lambda d: _b(d["exit_year"] >= d["registration_year"], True),
            lambda d: "exit_year " + d["exit_year"].astype(str) + " is before registration_year "
                      + d["registration_year"].astype(str)))
        rules.append(CrossRule(
            "household_in_village", "household_id",
            lambda d: _prefix_ok(d, "household_id", "village_code"),
            "household_id does not start with village_code (relocated household?)", "warning"))
    if table == "members":
        rules.append(CrossRule(
            "birth_year_matches_id", "birth_year", _birth_year_ok,
            "birth_year differs from the year of birth in the ID number", "warning"))
        rules.append(CrossRule(
            "person_in_household", "person_id", lambda d: _prefix_ok(d, "person_id", "household_id"),
            "person_id does not start with household_id", "warning"))
    if table == "panel":
        rules.append(CrossRule("income_components", "income_per_capita", _income_ok, _income_reason,
                           "warning"))
    if table == "field_survey":
        rules.append(CrossRule(
            "weight_is_inverse_probability", "weight", _weight_ok,
            "weight differs by more than 1% from 1 / (prob_village × prob_household)", "warning"))
    return rules


def _birth_year_ok(d: pd.DataFrame) -> np.ndarray:
    ids = d["id_number"]
    shape = ids.str.fullmatch(r"[0-9]{17}[0-9X]").fillna(False)
    y = pd.to_numeric(ids.str.slice(6, 10).where(shape), errors="coerce").to_numpy(dtype=float)
    b = d["birth_year"].astype("float64").to_numpy()
    return np.isnan(y) | np.isnan(b) | (y == b)


def _income_gap(d: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    total = d[list(INCOME_PARTS)].sum(axis=1, min_count=len(INCOME_PARTS))
    return total, (total - d["income_per_capita"]).abs()


def _income_ok(d: pd.DataFrame) -> np.ndarray:
    _, gap = _income_gap(d)
    gap = gap.to_numpy(dtype=float)
    tol = np.maximum(1.0, 0.01 * d["income_per_capita"].abs().to_numpy(dtype=float))
    return np.isnan(gap) | (gap <= tol)  # NaN: a part is missing or failed to parse


def _income_reason(d: pd.DataFrame) -> pd.Series:
    total, _ = _income_gap(d)
    return ("income components sum to " + total.round(2).astype(str) + ", not income_per_capita "
            + d["income_per_capita"].round(2).astype(str) + " (difference > max(1 yuan, 1%))")


def _weight_ok(d: pd.DataFrame) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        expect = 1.0 / (d["prob_village"] * d["prob_household"]).to_numpy(dtype=float)
        gap = np.abs(d["weight"].to_numpy(dtype=float) - expect)
        return ~np.isfinite(gap) | (gap <= 0.01 * np.abs(expect))
