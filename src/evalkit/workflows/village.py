"""The village assessment as one call: register view, small-area estimates, conditions and verdicts.

The village notebook calls :func:`assess_villages` and displays what it returns;
:func:`write_outputs` writes ``results.json`` (one object per village) and the Excel list.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from evalkit.assessment.village import VillageCriteria, conditions_met, register_view, village_verdicts
from evalkit.config import Policy
from evalkit.data import load_dataset
from evalkit.errors import ExitAssessmentError
from evalkit.outputs import write_json, write_xlsx
from evalkit.report.village import village_table
from evalkit.sae.ebp import INDICATORS
from evalkit.sae.estimates import VillageEstimates, estimate_villages
from evalkit.sae.units import CountyUnits, county_units
from evalkit.text import check_lang, label

__all__ = ["VillageAssessment", "assess_villages", "write_outputs"]

_TABLES = ["counties", "villages", "village_indicators", "households", "panel", "field_survey"]


@dataclass
class VillageAssessment:
    """Everything the village report shows."""

    county: dict
    year: int
    region: str
    threshold: float
    villages: pd.DataFrame
    register: pd.DataFrame
    conditions: pd.DataFrame
    estimates: VillageEstimates
    units: CountyUnits
    verdict: pd.DataFrame
    indicators: pd.DataFrame | None
    field_survey: pd.DataFrame

    def table(self) -> pd.DataFrame:
        """One row per village: names, register view, estimates, conditions and verdicts."""
        v = self.villages.set_index("village_code")[["township_name", "village_name", "is_poverty_village"]]
        cols = ["est", "est_benchmarked", "lci_benchmarked", "uci_benchmarked", "lci", "uci", "cv", "method"]
        est = pd.concat({k: f[[c for c in cols if c in f.columns]] for k, f in self.estimates.frames.items()}, axis=1)
        est.columns = [f"{k}_{c}" for k, c in est.columns]
        return v.join(self.register).join(est).join(self.conditions).join(self.verdict)

    def township_results(self) -> list[dict]:
        """Township estimates (EBP only), one object per township."""
        tw = self.estimates.townships
        if tw is None:
            return []
        out = []
        for code in tw[INDICATORS[0]].index:
            obj: dict = {"township_code": str(code)}
            for k in INDICATORS:
                r = tw[k].loc[code]
                obj[k] = {c: (float(r[c]) if np.isfinite(r[c]) else None) for c in ("est", "mse", "lci", "uci", "cv")}
                obj[k]["method"] = "ebp"
            out.append(obj)
        return out

    def results(self) -> list[dict]:
        """``results.json``: one object per village."""
        out = []
        names = self.villages.set_index("village_code")["village_name"]
        for code in self.units.village_codes:
            obj = {"village_code": str(code), "village_name": str(names[code]),
                   "exit_verdict": str(self.verdict.at[code, "exit_verdict"])}
            for k in INDICATORS:
                r = self.estimates.frames[k].loc[code]
                obj[k] = {c: (float(r[c]) if np.isfinite(r[c]) else None) for c in ("est", "mse", "lci", "uci", "cv")}
                obj[k]["method"] = str(r["method"])
            out.append(obj)
        return out


def assess_villages(data_dir: str | Path, county_code: str, year: int | None = None, method: str = "ebp", *,
                    policy: Policy, B: int = 50, seed: int = 0, benchmark: bool = True) -> VillageAssessment:
    """Assess every village of a county-year (register, survey, small-area estimates, verdicts).

    Parameters
    ----------
    data_dir : path
    county_code : str
    year : int, optional
        Default: the county's planned exit year.
    method : {'ebp', 'fh', 'direct'}
    policy : Policy
    B : int
        Bootstrap replicates of the EBP MSE.
    seed : int
    benchmark : bool
        Benchmark model estimates to the county direct estimate.
    """
    county_code = str(county_code)
    ds = load_dataset(data_dir, tables=_TABLES, counties=[county_code])
    for t in ("counties", "villages", "households"):
        if t not in ds:
            raise ExitAssessmentError(f"the village assessment needs table {t} in {data_dir}")
    if "field_survey" not in ds:  # the table is read per county: absent = this county was not sampled
        raise ExitAssessmentError(f"no field survey of county {county_code} in {data_dir}: the village "
                                  "estimates need the evaluators' sample of the county")
    counties = ds["counties"].set_index("county_code")
    if county_code not in counties.index:
        raise ExitAssessmentError(f"county {county_code} is not in {data_dir}")
    crow = counties.loc[county_code].to_dict()
    if year is None and pd.isna(crow.get("planned_exit_year")):
        raise ExitAssessmentError(f"county {county_code} has no planned exit year: pass `year`")
    year = int(year if year is not None else crow["planned_exit_year"])
    hh = ds["households"]
    villages = ds["villages"][ds["villages"]["county_code"] == county_code].reset_index(drop=True)
    fs = ds["field_survey"]
    fs = fs[(fs["county_code"] == county_code) & (fs["survey_year"] == year)].reset_index(drop=True)
    if not len(fs):
        raise ExitAssessmentError(f"no field survey of county {county_code} in {year} in {data_dir}")
    panel = ds.tables.get("panel")
    rec = panel[panel["year"] == year] if panel is not None else None
    ind = ds.tables.get("village_indicators")
    line = policy.poverty_line(year)
    cu = county_units(hh, villages, fs, year, line, policy.guarantees,
                      rec.set_index("household_id")["income_per_capita"] if rec is not None else None, ind)
    est = estimate_villages(cu, fs, method, B=B, seed=seed, confidence=policy.survey.confidence_level,
                            benchmark=benchmark, singleton=policy.survey.singleton_method)
    crit = VillageCriteria.from_policy(policy)
    region = policy.region(county_code)
    reg = register_view(hh, villages, year, rec, policy.guarantees)
    cond = conditions_met(ind, reg.index, crit)
    inc = est.frames["poverty_incidence"].reindex(reg.index)
    v, o = village_verdicts(inc["lci"].to_numpy(), inc["uci"].to_numpy(), inc["est"].to_numpy(),
                            cond["conditions_ok"], crit.threshold(region))
    verdict = pd.DataFrame({"exit_verdict": v, "official_verdict": o}, index=reg.index)
    return VillageAssessment(county={"county_code": county_code, **crow}, year=year, region=region,
                             threshold=crit.threshold(region), villages=villages, register=reg, conditions=cond,
                             estimates=est, units=cu, verdict=verdict, indicators=ind, field_survey=fs)


def write_outputs(a: VillageAssessment, output_dir: str | Path, lang: str = "zh") -> dict[str, Path]:
    """Write ``results.json`` (one object per village) and ``villages.xlsx``."""
    check_lang(lang)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"results": write_json({"county_code": a.county["county_code"], "year": a.year,
                                    "method": a.estimates.method, "villages": a.results(),
                                    "townships": a.township_results()}, out / "results.json")}
    paths["villages"] = write_xlsx({label("village_sheet", lang): village_table(a, lang)}, out / "villages.xlsx")
    return paths
