"""Profiles of the synthetic province: which real counties, how many people, which exit years."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from evalkit import geo, reference
from evalkit.errors import ParameterError

__all__ = ["CountySpec", "Profile", "PROFILES", "DEMO_REAL_CITIES", "demo_real_counties", "profile_counties"]

#: Profile names known to :func:`profile_counties`.
PROFILES: tuple[str, ...] = ("demo", "demo_real", "shaanxi", "seeds")


@dataclass
class CountySpec:
    """One county of a profile."""

    county_code: str
    county_name: str
    province_code: str
    city_code: str
    rural_population: int
    is_poverty_county: bool
    planned_exit_year: int | None
    # Exact register composition: list of {poverty_type, labour (bool), households, persons}.
    register_targets: list[dict] | None = None
    # Persons exiting per year, e.g. {2016: 2500, 2017: 3000, 2018: 2008}.
    exit_plan: dict[int, int] | None = None
    # Register persons to aim at (approximate), and number of poverty villages.
    register_persons: int | None = None
    n_poverty_villages: int | None = None
    notes: str = ""


@dataclass
class Profile:
    """A named set of county specifications with its default population scale."""

    name: str
    description: str
    default_scale: float
    counties: list[CountySpec] = field(default_factory=list)


def _population_draw(codes: list[str], names: list[str], total: float, rng: np.random.Generator) -> np.ndarray:
    # Urban districts (区) have fewer rural residents than counties (县) and county-level cities (市).
    w = rng.lognormal(0.0, 0.45, len(codes)) * np.array([0.5 if n.endswith("区") else 1.0 for n in names])
    return total * w / w.sum()


#: Units of the ``demo_real`` profile: Yan'an's 13 units and Tongchuan's 4 (GB/T 2260 prefixes), with
#: their rural populations (persons, 2014, rounded; an assumption of the synthetic province).
DEMO_REAL_CITIES: tuple[tuple[str, float], ...] = (("6106", 1.2e6), ("6102", 3.0e5))


def _specs(codes: list[str], names: list[str], pops: np.ndarray, poverty, exit_years) -> list[CountySpec]:
    return [CountySpec(c, n, c[:2], c[:4], max(int(round(p)), 300), bool(pv), int(ey) if pv else None)
            for c, n, p, pv, ey in zip(codes, names, pops, poverty, exit_years)]


def _real_status(codes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Poverty-county flags and exit years of ``codes`` from the reference table (docs/policy.md [R1])."""
    exits = reference.poverty_county_exits("61")
    years = pd.Series(codes).map(exits)
    return years.notna().to_numpy(), years.fillna(0).astype(int).to_numpy()


def _yanan_or_shaanxi(profile: str, scale: float | None, rng: np.random.Generator) -> Profile:
    tab = geo.county_table("6106" if profile == "demo" else "61")
    codes, names = tab.county_code.tolist(), tab.county_name.tolist()
    default_scale = 0.3 if profile == "demo" else 1.0
    s = default_scale if scale is None else scale
    # Yan'an: about 1.2 million rural residents; Shaanxi: about 17 million (2014, rounded).
    total = 1.2e6 if profile == "demo" else 1.7e7
    pops = _population_draw(codes, names, total, rng) * s
    if profile == "demo":
        poverty = np.ones(len(codes), bool)  # synthetic: every Yan'an unit is assessed in the demo
        exit_years = rng.choice([2017, 2018, 2019], len(codes), p=[0.3, 0.4, 0.3])
        desc = "the 13 county-level units of Yan'an, Shaanxi"
    else:
        # The 56 national poverty counties and their exit years (4 in 2017, 23 in 2018, 29 in 2019).
        poverty, exit_years = _real_status(codes)
        desc = ("every county-level unit of Shaanxi at realistic population scale; the 56 national poverty"
                " counties and their exit years are the real ones")
    return Profile(profile, desc, default_scale, _specs(codes, names, pops, poverty, exit_years))


def demo_real_counties(scale: float | None = None, seed: int = 0) -> Profile:
    """The real demo: Yan'an's 13 units and Tongchuan's 4, poverty status and exit years real.

    Yan'an's national poverty counties are 延长 (exit 2017), 延川 and 宜川 (2018); Tongchuan's are
    宜君 (2018), 印台 and 耀州 (2019), so all three of Shaanxi's exit batches appear, with
    non-poverty units (宝塔, 王益, ...) beside them (docs/policy.md §6, [R1]).

    Parameters
    ----------
    scale : float, optional
        Multiplies rural populations (default 0.24).
    seed : int
        Seed of the population draw.
    """
    rng = np.random.default_rng([seed, 1])
    default_scale = 0.24
    s = default_scale if scale is None else scale
    specs: list[CountySpec] = []
    for prefix, total in DEMO_REAL_CITIES:
        tab = geo.county_table(prefix)
        codes, names = tab.county_code.tolist(), tab.county_name.tolist()
        pops = _population_draw(codes, names, total, rng) * s
        poverty, exit_years = _real_status(codes)
        specs += _specs(codes, names, pops, poverty, exit_years)
    desc = ("the 13 units of Yan'an and the 4 of Tongchuan, Shaanxi, with their real poverty counties"
            " and exit years (2017, 2018 and 2019)")
    return Profile("demo_real", desc, default_scale, specs)


def profile_counties(profile: str, scale: float | None = None, seed: int = 0) -> Profile:
    """County specifications of a profile (``demo``, ``demo_real``, ``shaanxi`` or ``seeds``).

    ``shaanxi`` and ``demo_real`` take poverty status and exit years from the reference table of
    Shaanxi's 56 national poverty counties (:func:`evalkit.reference.poverty_counties`);
    ``demo`` keeps its synthetic status (every Yan'an unit assessed, exit years drawn).

    Parameters
    ----------
    profile : str
    scale : float, optional
        Multiplies rural populations (and register targets other than exact ones).
    seed : int
        Seed of the county-level draws (populations, and the demo's exit years).

    Returns
    -------
    Profile

    Raises
    ------
    ParameterError
        An unknown profile name.
    """
    rng = np.random.default_rng([seed, 1])
    if profile in ("demo", "shaanxi"):
        return _yanan_or_shaanxi(profile, scale, rng)
    if profile == "demo_real":
        return demo_real_counties(scale, seed)
    if profile == "seeds":
        s = 1.0 if scale is None else scale
        names = {c: geo.county_table(c).county_name.iloc[0] for c in
                 ["440232", "230126", "230127", "230129", "341323", "341503", "340882", "360735"]}

        def sp(code, pop, poverty, exit_year, **kw):
            return CountySpec(code, names[code], code[:2], code[:4], int(round(pop * s)), poverty, exit_year, **kw)

        ruyuan_targets = [
            # docs/policy.md [D3]: 2944 hh / 7508 p; general 880/3021, dibao 1634/4042, wubao (tekun) 430/445;
            # with labour 1530/5352, without 1414/2156 (of which dibao+wubao 1277/1903, general 137/253).
            {"poverty_type": "general", "labour": True, "households": 743, "persons": 2768},
            {"poverty_type": "general", "labour": False, "households": 137, "persons": 253},
            {"poverty_type": "dibao", "labour": True, "households": 787, "persons": 2584},
            {"poverty_type": "dibao", "labour": False, "households": 847, "persons": 1458},
            {"poverty_type": "tekun", "labour": False, "households": 430, "persons": 445},
        ]
        specs = [
            # Ruyuan is exact at any scale: the register totals are the calibration target.
            CountySpec("440232", names["440232"], "44", "4402", 150_000, False, None,
                       register_targets=ruyuan_targets, exit_plan={2016: 2500, 2017: 3000, 2018: 2008},
                       notes="docs/policy.md [D3]: Guangdong relative poverty (east), exit plan 2016-2018"),
            # Harbin (docs/policy.md [D2]): Bayan and Mulan exit 2016-17 with 117 villages, 161,898 poor persons.
            sp("230126", 560_000, True, 2017, register_persons=int(161_898 * 0.62 * s), n_poverty_villages=73,
               notes="docs/policy.md [D2]: provincial poverty county, exit 2016-17"),
            sp("230127", 250_000, True, 2017, register_persons=int(161_898 * 0.38 * s), n_poverty_villages=44,
               notes="docs/policy.md [D2]: provincial poverty county, exit 2016-17"),
            sp("230129", 230_000, True, 2018, register_persons=int(39_189 * s), n_poverty_villages=46,
               notes="docs/policy.md [D2]: national poverty county, exit by 2018 with 46 villages, 39,189 persons"),
            sp("341323", 1_100_000, True, 2019, notes="docs/policy.md [D4]: census pilot"),
            sp("341503", 900_000, True, 2019, notes="docs/policy.md [D4]: census pilot"),
            sp("340882", 450_000, True, 2018, notes="docs/policy.md [D4]: census pilot"),
            sp("360735", 280_000, True, 2019, notes="docs/policy.md [D1]: Shicheng, Jiangxi"),
        ]
        return Profile("seeds", "the counties named in the policy documents", 1.0, specs)
    raise ParameterError(f"unknown profile {profile!r}; choose {', '.join(PROFILES)}")
