"""The household panel as the risk models see it: sorted frame, household × year grid, register at t.

Shared plumbing of labels, features and warnings: checking a panel, one configured line per row,
a household × calendar-year matrix view for lags and leads without row loops, and the household
records aligned to the panel's households.
"""
from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from evalkit.config import Policy
from evalkit.errors import RiskModelError
from evalkit.errors import require_columns as check_columns
from evalkit.register import status_at

#: Missing columns of a table raise :class:`~evalkit.errors.RiskModelError` (one checker for every package).
require_columns = partial(check_columns, error=RiskModelError)

__all__ = ["KEYS", "LINES", "require_columns", "flag_values", "known_true", "numbers", "line_values",
           "panel_frame", "Grid", "household_info", "register_at"]

#: Keys of a household-year row.
KEYS: list[str] = ["household_id", "year"]
#: Lines a label or a closure can be defined on.
LINES: tuple[str, ...] = ("monitoring", "poverty")


def flag_values(s: pd.Series) -> np.ndarray:
    """Boolean-like column as floats 1/0 with NaN for missing (unknown)."""
    return s.astype("boolean").astype("Float64").to_numpy(dtype=float, na_value=np.nan)


def known_true(s: pd.Series) -> np.ndarray:
    """Known-true flags (missing counts as not true)."""
    return s.astype("boolean").fillna(False).to_numpy(dtype=bool)


def numbers(s: pd.Series) -> np.ndarray:
    """Numeric column as floats with NaN for missing (a non-number raises)."""
    return pd.to_numeric(s, errors="raise").astype("Float64").to_numpy(dtype=float, na_value=np.nan)


def line_values(county_code: pd.Series, year: pd.Series, policy: Policy, which: str) -> np.ndarray:
    """Line of each row (one config lookup per distinct county-year, never per row).

    Parameters
    ----------
    county_code, year : Series
        Per row; the province is the county code's first two digits.
    policy : Policy
    which : {'monitoring', 'poverty'}
    """
    if which not in LINES:
        raise RiskModelError(f"line must be one of {LINES}, got {which!r}")
    codes, uniq = pd.factorize(county_code)
    if (codes < 0).any():
        raise RiskModelError("county_code is missing for some rows; the monitoring line needs the province")
    prov = [str(c)[:2] for c in uniq]
    y = year.to_numpy(dtype=np.int64)
    y0 = int(y.min()) if len(y) else 0
    span = int(y.max()) - y0 + 1 if len(y) else 1
    keys, inv = np.unique(codes.astype(np.int64) * span + (y - y0), return_inverse=True)
    if which == "monitoring":
        vals = [policy.monitoring_line(prov[k // span], int(k % span) + y0) for k in keys]
    else:
        vals = [policy.poverty_line(int(k % span) + y0) for k in keys]
    return np.asarray(vals, dtype=float)[inv.ravel()]


def panel_frame(panel: pd.DataFrame, counties: Iterable[str] | None = None) -> pd.DataFrame:
    """Panel sorted by household and year, checked for duplicates, optionally county-filtered."""
    require_columns(panel, ["household_id", "year", "county_code"], "panel")
    p = panel
    if counties is not None:
        want = {str(c) for c in counties}
        have = set(p["county_code"].astype(str).unique())
        absent = sorted(want - have)
        if absent:
            raise RiskModelError(f"county/counties {absent} not in the panel (panel has {sorted(have)[:20]})")
        p = p[p["county_code"].astype(str).isin(want)]
    if p["year"].isna().any():
        raise RiskModelError("the panel's 'year' column has missing values")
    p = p.sort_values(KEYS, kind="stable").reset_index(drop=True)
    dup = p.duplicated(KEYS)
    if dup.any():
        raise RiskModelError(
            f"panel has duplicated household-years, e.g. {p.loc[dup, KEYS].head(3).to_dict('records')}")
    return p


class Grid:
    """Household × calendar-year matrix view of a sorted long panel (lags without row loops).

    Parameters
    ----------
    hh, year : Series
        Household id and year of each row of a :func:`panel_frame`.
    first_year : int, optional
        First calendar year of the grid (default the first year of ``year``; never later).
    """

    def __init__(self, hh: pd.Series, year: pd.Series, first_year: int | None = None):
        self.hi, ids = pd.factorize(hh, sort=True)
        self.ids = pd.Index(ids)
        y = year.to_numpy(dtype=np.int64)
        lo = int(y.min()) if first_year is None else int(first_year)
        if lo > y.min():
            raise RiskModelError(f"first_year {lo} is after the panel's first year {int(y.min())}")
        self.years = np.arange(lo, y.max() + 1)
        self.yi = y - self.years[0]
        self.shape = (len(self.ids), len(self.years))

    def wide(self, values: np.ndarray, fill: Any = np.nan, dtype: Any = float) -> np.ndarray:
        """Rows' values as a households × years matrix (``fill`` where a household-year is absent)."""
        w = np.full(self.shape, fill, dtype=dtype)
        w[self.hi, self.yi] = values
        return w

    def long(self, w: np.ndarray) -> np.ndarray:
        """A households × years matrix back to one value per row."""
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


def household_info(households: pd.DataFrame, ids: pd.Index, what: str) -> pd.DataFrame:
    """``households`` aligned to ``ids``; every panel household must have a record."""
    require_columns(households, ["household_id", "registered", "registration_year", "exit_year"], "households")
    h = households.drop_duplicates("household_id").set_index("household_id")
    missing = ids.difference(h.index)
    if len(missing):
        raise RiskModelError(
            f"{what}: {len(missing)} panel household(s) have no row in the households table, "
            f"e.g. {list(missing[:3])}; pass the households of the same dataset/counties")
    return h.reindex(ids)


def register_at(info: pd.DataFrame, hi: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(registered by t, exited by t, exit year) per row.

    The register status at t is :func:`evalkit.register.status_at` (a registered household
    without a registration year counts as registered from the start of the panel).

    Parameters
    ----------
    info : DataFrame
        :func:`household_info` output.
    hi : ndarray
        Position of each row's household in ``info``.
    t : ndarray
        Year of each row.
    """
    ey = numbers(info["exit_year"])
    reg, ry = info["registered"].to_numpy(dtype=object), info["registration_year"].to_numpy(dtype=object)
    years = np.unique(t)
    R = np.empty((len(info), len(years)), bool)
    E = np.empty_like(R)
    for j, y in enumerate(years):  # loop over calendar years (status of every household), not rows
        R[:, j], E[:, j] = status_at(reg, ry, ey, int(y))
    yi = np.searchsorted(years, t)
    return R[hi, yi], E[hi, yi], ey[hi]
