"""The register (建档立卡) at a point in time: who was registered, exited or never registered.

One definition serves the evaluators' sample strata, the exit criteria, the risk labels and the
household indicators (docs/policy.md §1, §4): a household is *registered at t* when it is on the
register and its registration year (when known) is not after t; it is *exited at t* when it is
registered at t and its exit year is at most t. Village strata of the sample are poverty and
non-poverty villages.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from evalkit.errors import require_columns

__all__ = ["HH_STRATA", "VILLAGE_STRATA", "status_at", "registered_at", "household_strata", "village_strata"]

#: Household strata inside a village: exited, still poor, never registered.
HH_STRATA: tuple[str, ...] = ("exited", "poor", "non_registered")
#: Village strata of the evaluators' first stage.
VILLAGE_STRATA: tuple[str, ...] = ("poverty_village", "non_poverty_village")




def _years(s: pd.Series | np.ndarray) -> np.ndarray:
    return pd.to_numeric(pd.Series(np.asarray(s, dtype=object)), errors="coerce").to_numpy(
        dtype=float, na_value=np.nan)


def status_at(registered: Any, registration_year: Any, exit_year: Any, year: Any) -> tuple[np.ndarray, np.ndarray]:
    """Registered and exited flags at ``year`` (vectorized; ``year`` a scalar or one per row).

    Parameters
    ----------
    registered : array-like of bool
        On the register (missing counts as not registered).
    registration_year, exit_year : array-like or None
        Year of registration (missing or None: from the start) and of exit (missing: not exited).
    year : int or array-like

    Returns
    -------
    (registered_at, exited_at) : two boolean arrays
    """
    reg = pd.Series(np.asarray(registered, dtype=object)).astype("boolean").fillna(False).to_numpy(dtype=bool)
    t = np.asarray(year, dtype=float)
    if registration_year is not None:
        ry = _years(registration_year)
        with np.errstate(invalid="ignore"):
            reg = reg & ~(ry > t)  # NaN > t is False: registered from the start
    ey = _years(exit_year)
    with np.errstate(invalid="ignore"):
        exited = reg & (ey <= t)  # NaN <= t is False: not exited
    return reg, exited


def registered_at(households: pd.DataFrame, year: int) -> pd.Series:
    """Whether each household is on the register in ``year`` (see the module docstring)."""
    require_columns(households, ("registered",), "households")
    ry = households["registration_year"] if "registration_year" in households.columns else None
    ey = households["exit_year"] if "exit_year" in households.columns else np.full(len(households), np.nan)
    reg, _ = status_at(households["registered"], ry, ey, year)
    return pd.Series(reg, index=households.index, name="registered_at")


def household_strata(households: pd.DataFrame, year: int) -> pd.Series:
    """Household stratum in ``year``: 'exited', 'poor' (registered, not exited) or 'non_registered'.

    Returns
    -------
    pandas.Series
        Strings aligned to ``households``, named ``hh_stratum``.
    """
    require_columns(households, ("registered", "exit_year"), "households")
    ry = households["registration_year"] if "registration_year" in households.columns else None
    reg, exited = status_at(households["registered"], ry, households["exit_year"], year)
    out = np.where(exited, HH_STRATA[0], np.where(reg, HH_STRATA[1], HH_STRATA[2]))
    return pd.Series(out, index=households.index, name="hh_stratum", dtype=object)


def village_strata(villages: pd.DataFrame) -> pd.Series:
    """Village stratum: 'poverty_village' where ``is_poverty_village``, else 'non_poverty_village'."""
    require_columns(villages, ("is_poverty_village",), "villages")
    pv = villages["is_poverty_village"].astype("boolean").fillna(False).to_numpy(dtype=bool)
    return pd.Series(np.where(pv, VILLAGE_STRATA[0], VILLAGE_STRATA[1]), index=villages.index,
                     name="stratum", dtype=object)
