"""Village exit assessment: the register's view of every village and the exit verdict.

A poverty village exits ([N1], policy ``[village_exit]``) when its poverty incidence is below 2%
(3% in the west) and it meets the conditions on infrastructure and public services (hard road,
power, tap water, broadband, bus service, standard clinic) and collective income. The register
gives, for every village: persons by household stratum, the register incidence (remaining
registered poor / persons), households with a recorded guarantee shortfall; the indicators table
gives the conditions. The incidence used for the verdict is the small-area estimate with its
interval (:mod:`evalkit.sae`): ``pass`` when the whole interval is below the threshold and every
condition holds, ``fail`` when the interval is wholly at or above it or a condition fails,
``borderline`` otherwise; ``unknown`` without indicators.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from evalkit.config import Policy
from evalkit.errors import ConfigError
from evalkit.register import household_strata

__all__ = ["VillageCriteria", "register_view", "conditions_met", "village_verdicts"]


@dataclass(frozen=True)
class VillageCriteria:
    """The ``[village_exit]`` policy: incidence threshold by region, required conditions, collective income."""

    incidence_max: dict[str, float]
    required: tuple[str, ...]
    collective_income_min: float

    @classmethod
    def from_policy(cls, policy: Policy) -> VillageCriteria:
        """Read ``[village_exit]`` through :meth:`Policy.section`."""
        sec = policy.section("village_exit")
        return cls({str(k): float(v) for k, v in sec["incidence_max"].items()},
                   tuple(str(x) for x in sec["required"]), float(sec["collective_income_min"]))

    def threshold(self, region: str) -> float:
        """Incidence threshold of a region."""
        if region not in self.incidence_max:
            raise ConfigError(f"[village_exit] incidence_max has no value for region {region!r}")
        return self.incidence_max[region]


def register_view(households: pd.DataFrame, villages: pd.DataFrame, year: int,
                  recorded: pd.DataFrame | None, guarantees: tuple[str, ...]) -> pd.DataFrame:
    """Per village: households and persons by stratum, register incidence, guarantee shortfalls.

    ``recorded`` is the panel of ``year`` (recorded guarantees by household_id); shortfalls are
    registered or exited households with a recorded guarantee not holding.
    """
    st = household_strata(households, year).to_numpy()
    size = households["household_size"].to_numpy(float)
    df = pd.DataFrame({"village_code": households["village_code"].astype(str).to_numpy(), "st": st, "size": size})
    persons = df.pivot_table(index="village_code", columns="st", values="size", aggfunc="sum", fill_value=0)
    hh = df.pivot_table(index="village_code", columns="st", values="size", aggfunc="count", fill_value=0)
    out = pd.DataFrame(index=pd.Index(villages["village_code"].astype(str), name="village_code"))
    for s in ("exited", "poor", "non_registered"):
        out[f"persons_{s}"] = persons.get(s, pd.Series(dtype=float)).reindex(out.index).fillna(0).astype(int)
        out[f"households_{s}"] = hh.get(s, pd.Series(dtype=float)).reindex(out.index).fillna(0).astype(int)
    out["persons"] = out[[f"persons_{s}" for s in ("exited", "poor", "non_registered")]].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["register_incidence"] = out["persons_poor"] / out["persons"].where(out["persons"] > 0)
    out["guarantee_shortfalls"] = 0
    if recorded is not None and len(recorded):
        r = recorded.set_index("household_id").reindex(households["household_id"].astype(str))
        bad = ~np.logical_and.reduce([r[g].astype("boolean").fillna(True).to_numpy(bool) for g in guarantees])
        bad &= st != "non_registered"
        out["guarantee_shortfalls"] = pd.Series(bad.astype(int)).groupby(df["village_code"]).sum().reindex(
            out.index).fillna(0).astype(int)
    return out


def conditions_met(indicators: pd.DataFrame | None, village_codes: pd.Index, crit: VillageCriteria) -> pd.DataFrame:
    """Each condition per village (bool; NA without indicators) and ``conditions_ok``."""
    out = pd.DataFrame(index=village_codes)
    if indicators is None or not len(indicators):
        for c in (*crit.required, "collective_income_ok", "conditions_ok"):
            out[c] = pd.array([pd.NA] * len(out), dtype="boolean")
        return out
    ind = indicators.drop_duplicates("village_code", keep="last").set_index("village_code").reindex(village_codes)
    for c in crit.required:
        out[c] = ind[c].astype("boolean")
    out["collective_income_ok"] = (ind["collective_income"] >= crit.collective_income_min).astype("boolean")
    out.loc[ind["collective_income"].isna(), "collective_income_ok"] = pd.NA
    out["conditions_ok"] = out[[*crit.required, "collective_income_ok"]].all(axis=1, skipna=False).astype("boolean")
    return out


def village_verdicts(lci: np.ndarray, uci: np.ndarray, est: np.ndarray, conditions_ok: pd.Series,
                     threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(verdict with uncertainty, official point verdict) per village: pass / fail / borderline / unknown."""
    cond = conditions_ok.astype("boolean")
    known = cond.notna().to_numpy()
    ok = cond.fillna(False).to_numpy(bool)
    lo_ok, hi_ok = np.asarray(uci) < threshold, np.asarray(lci) >= threshold
    verdict = np.where(~known | ~np.isfinite(est), "unknown",
                       np.where(~ok | hi_ok, "fail", np.where(lo_ok, "pass", "borderline")))
    official = np.where(~known | ~np.isfinite(est), "unknown", np.where(ok & (np.asarray(est) < threshold), "pass",
                                                                       "fail"))
    return verdict.astype(object), official.astype(object)
