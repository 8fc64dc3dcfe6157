"""The register as the small-area population: household and village covariates, the sample's place.

Covariates are what the register knows of **every** household in the assessment year: household
stratum (exited / registered poor / non-registered), log household size, and for registered
households the log ratio of their recorded income to the line (the national system records
incomes of registered households only; non-registered households' incomes are not used even
where a dataset carries them). Village covariates: poverty village, the register's share of
registered persons and mean recorded log income ratio, and, when the village indicators table is
present, the share of the six facilities present and log collective income.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from evalkit.errors import EvalkitError
from evalkit.register import household_strata
from evalkit.sae.ebp import GROUPS, UnitData

__all__ = ["FACILITIES", "CountyUnits", "county_units"]

#: The village conditions of the indicators table used as a covariate (share present).
FACILITIES = ("hard_road", "power", "tap_water", "broadband", "bus_service", "clinic")


@dataclass(frozen=True)
class CountyUnits:
    """Population and sample of a county-year for the small-area methods."""

    units: UnitData
    village_codes: np.ndarray
    township_codes: np.ndarray
    area_X: np.ndarray
    area_X_names: tuple[str, ...]
    persons: pd.DataFrame
    households: pd.DataFrame
    poor_sample: np.ndarray


def _village_covariates(villages: pd.DataFrame, indicators: pd.DataFrame | None, reg_share: np.ndarray,
                        reg_inc: np.ndarray) -> tuple[np.ndarray, list[str]]:
    cols = [np.ones(len(villages)), villages["is_poverty_village"].astype(bool).to_numpy(float), reg_share, reg_inc]
    names = ["intercept", "poverty_village", "registered_share", "registered_log_income"]
    if indicators is not None and len(indicators):
        ind = indicators.drop_duplicates("village_code", keep="last").set_index("village_code")
        ind = ind.reindex(villages["village_code"].astype(str).to_numpy())
        if ind[list(FACILITIES)].notna().all().all():
            cols.append(ind[list(FACILITIES)].astype(float).mean(axis=1).to_numpy())
            cols.append(np.log1p(ind["collective_income"].astype(float).fillna(0).to_numpy()) / 10.0)
            names += ["facilities_share", "log_collective_income"]
    return np.column_stack(cols), names


def county_units(households: pd.DataFrame, villages: pd.DataFrame, fs: pd.DataFrame, year: int, line: float,
                 guarantees: tuple[str, ...], recorded_income: pd.Series | None = None,
                 indicators: pd.DataFrame | None = None) -> CountyUnits:
    """Build the EBP population and sample of one county-year.

    Parameters
    ----------
    households, villages : DataFrame
        The county's register households and villages.
    fs : DataFrame
        The county-year's survey (``household_id``, ``surveyed_income_per_capita``, guarantee flags).
    year : int
    line : float
        Poverty line of the year.
    guarantees : tuple of str
        Guarantee flags that must hold (policy).
    recorded_income : Series, optional
        Recorded per-capita income by household_id in ``year`` (the panel); used for registered households.
    indicators : DataFrame, optional
        The village indicators table.
    """
    vcodes = villages["village_code"].astype(str).to_numpy()
    area = pd.Index(vcodes).get_indexer(households["village_code"].astype(str))
    if (area < 0).any():
        raise EvalkitError(f"{int((area < 0).sum())} register household(s) in villages missing from the villages table")
    group = pd.Index(GROUPS).get_indexer(household_strata(households, year))
    size = households["household_size"].to_numpy(float)
    reg = group != 2
    rec = np.zeros(len(households))
    if recorded_income is not None:
        r = recorded_income.reindex(households["household_id"].astype(str)).to_numpy(float)
        rec = np.where(reg & np.isfinite(r), np.log(np.maximum(r, 100.0) / line), 0.0)
    A = len(vcodes)
    persons_reg = np.bincount(area, weights=size * reg, minlength=A)
    persons = np.bincount(area, weights=size, minlength=A)
    with np.errstate(invalid="ignore", divide="ignore"):
        reg_share = np.nan_to_num(persons_reg / persons)
        reg_inc = np.nan_to_num(np.bincount(area, weights=rec * reg, minlength=A) / np.bincount(area, weights=reg,
                                                                                              minlength=A))
    area_X, names = _village_covariates(villages, indicators, reg_share, reg_inc)
    X = np.column_stack([np.ones(len(households)), group == 0, group == 1, np.log(size), rec, area_X[area, 1:]])
    pos = pd.Index(households["household_id"].astype(str)).get_indexer(fs["household_id"].astype(str))
    if (pos < 0).any():
        raise EvalkitError(f"{int((pos < 0).sum())} surveyed household(s) are not in the register")
    fails = ~np.logical_and.reduce([fs[g].astype(bool).to_numpy() for g in guarantees])
    inc = fs["surveyed_income_per_capita"].to_numpy(float)
    # townships: digits 7-9 of the village code (county + township + village)
    tw_codes, tw_of_village = np.unique(np.asarray([c[:9] for c in vcodes]), return_inverse=True)
    units = UnitData(area=area, X=X.astype(float), size=size, group=group, sampled=pos, income=inc,
                     fails=fails, line=float(line), n_areas=A, township=tw_of_village[area],
                     n_townships=len(tw_codes),
                     weight=fs["weight"].to_numpy(float) if "weight" in fs.columns else None)
    tab = lambda w: pd.DataFrame({g: np.bincount(area, weights=w * (group == i), minlength=A)  # noqa: E731
                                  for i, g in enumerate(GROUPS)}, index=pd.Index(vcodes, name="village_code"))
    return CountyUnits(units=units, village_codes=vcodes, township_codes=tw_codes, area_X=area_X,
                       area_X_names=tuple(names), persons=tab(size), households=tab(np.ones(len(size))),
                       poor_sample=(inc <= line) | fails)
