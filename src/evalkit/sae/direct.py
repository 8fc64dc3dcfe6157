"""Direct village estimates and their design variances (the survey design object), and the GVF.

Conditional on a village being sampled, its households were drawn by SRS without replacement in
each household stratum, so a village's direct estimate is a stratified ratio estimator with the
stratum cells (village x household stratum) as strata, weights 1 / P(household | village) and the
register's household counts as population sizes. :class:`evalkit.survey.SurveyDesign` computes
the estimates and variances (by village), one indicator's rows at a time:

* wrongly-exited rate: exited persons not meeting the standard / exited persons;
* missed-poor rate: the same among non-registered persons;
* mean income: person-weighted mean per-capita income over all sampled households;
* poverty incidence: ``(P + E r_we + N r_mp) / R`` with the register's persons (P remaining poor,
  E exited, N non-registered, R all); the two rates come from disjoint strata, so their sampling
  covariance is zero and ``var = (E^2 var_we + N^2 var_mp) / R^2``.

**Generalized variance function** (used by Fay-Herriot): a rate's design variance is zero when
no case (or only cases) was sampled, and correlated with the estimate otherwise. Every village's
rate variance is therefore replaced by ``psi = p (1 - p) k (1 - m/M) / m``, with ``p`` the pooled
direct rate of the county's sample, ``m``/``M`` the sampled/register households of the domain and
``k = n sum(size^2) / sum(size)^2`` (persons clustered in households). Mean income keeps its
design variance unless it is zero or undefined (fewer than 2 households), where the same form
with the pooled person variance of income is used.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from evalkit.sae.ebp import INDICATORS
from evalkit.survey import SurveyDesign

__all__ = ["DirectEstimates", "direct_village_estimates"]


class DirectEstimates:
    """Direct estimates per village: ``est``, ``var`` (design), ``psi`` (GVF-smoothed), ``n`` (households).

    Each attribute is a DataFrame indexed by village code with one column per indicator.
    """

    def __init__(self, est: pd.DataFrame, var: pd.DataFrame, psi: pd.DataFrame, n: pd.DataFrame,
                 county: dict[str, float]) -> None:
        self.est, self.var, self.psi, self.n, self.county = est, var, psi, n, county


def _ratio(fs: pd.DataFrame, num: np.ndarray, den: np.ndarray, singleton: str) -> pd.DataFrame:
    if not len(fs):
        return pd.DataFrame(columns=["est", "var"])
    d = SurveyDesign(fs, weight="__w__", strata="__cell__", pop_psu="__M__", singleton=singleton,
                     psu_name="household")
    e = d.ratio(num, den, by=fs["village_code"].astype(str).to_numpy()).to_frame()
    return pd.DataFrame({"est": e["est"], "var": e["se"] ** 2})


def _gvf(p: float, k: float, m: np.ndarray, M: np.ndarray, n: int) -> np.ndarray:
    # a county sample without any case still leaves uncertainty: p at least 0.5 / n; a census
    # cell (m = M) keeps a tiny variance so that Fay-Herriot takes its direct value as (nearly) known
    p = max(p, 0.5 / max(n, 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.maximum(p * (1.0 - p) * k * np.clip(1.0 - m / M, 0.0, 1.0) / m, 1e-12)


def direct_village_estimates(fs: pd.DataFrame, poor: np.ndarray, persons: pd.DataFrame, households: pd.DataFrame,
                             singleton: str = "certainty") -> DirectEstimates:
    """Direct estimates, design variances and GVF variances of every sampled village.

    Parameters
    ----------
    fs : DataFrame
        The survey of one county-year: ``village_code, hh_stratum, prob_household, household_size,
        surveyed_income_per_capita``.
    poor : bool array
        Not meeting the standard, per survey row.
    persons : DataFrame
        Register persons per village (index village_code) in columns ``exited, poor, non_registered``.
    households : DataFrame
        Register households per village (index) and household stratum (columns).
    singleton : str
        Rule for a cell with one sampled household (see :data:`evalkit.survey.design.SINGLETON_RULES`).
    """
    v = fs["village_code"].astype(str).to_numpy()
    st = fs["hh_stratum"].astype(str).to_numpy()
    M = households.stack().reindex(pd.MultiIndex.from_arrays([v, st])).to_numpy(dtype=float)
    f = fs.assign(__w__=1.0 / fs["prob_household"].to_numpy(float), __cell__=pd.Series(v).str.cat(st, sep=":").values,
                  __M__=np.maximum(M, 1.0))
    m = f["household_size"].to_numpy(float)
    y = f["surveyed_income_per_capita"].to_numpy(float)
    out, n = {}, {}
    for name, grp in (("wrongly_exited_rate", "exited"), ("missed_poor_rate", "non_registered")):
        sel = st == grp
        out[name] = _ratio(f[sel], (m * poor)[sel], m[sel], singleton)
        n[name] = pd.Series(v[sel]).value_counts()
    out["mean_income"] = _ratio(f, m * y, m, singleton)
    n["mean_income"] = pd.Series(v).value_counts()
    villages = out["mean_income"].index
    est = pd.DataFrame({k: out[k]["est"].reindex(villages) for k in out})
    var = pd.DataFrame({k: out[k]["var"].reindex(villages) for k in out})
    nn = pd.DataFrame({k: n[k].reindex(villages).fillna(0) for k in out})
    pers = persons.reindex(villages).fillna(0)
    R = pers.sum(axis=1)
    est["poverty_incidence"] = (pers["poor"] + pers["exited"] * est["wrongly_exited_rate"].fillna(0)
                                + pers["non_registered"] * est["missed_poor_rate"].fillna(0)) / R
    missing = ((pers["exited"] > 0) & est["wrongly_exited_rate"].isna()) | \
              ((pers["non_registered"] > 0) & est["missed_poor_rate"].isna())
    est.loc[missing, "poverty_incidence"] = np.nan
    # the county estimate weights by 1 / P(household) (village and household stages), not by 1 / P(household | village)
    w_all = (fs["weight"].to_numpy(float) if "weight" in fs.columns else f["__w__"].to_numpy()) * m
    county = {k: float(np.sum(w_all * (st == g) * poor) / np.sum(w_all * (st == g)))
              for k, g in (("wrongly_exited_rate", "exited"), ("missed_poor_rate", "non_registered"))}
    county["mean_income"] = float(np.sum(w_all * y) / np.sum(w_all))
    hh = households.reindex(villages).fillna(0)
    psi = pd.DataFrame(index=villages)
    k = len(m) * float((m ** 2).sum()) / float(m.sum()) ** 2
    for name, grp in (("wrongly_exited_rate", "exited"), ("missed_poor_rate", "non_registered")):
        psi[name] = _gvf(county[name], k, nn[name].to_numpy(float), hh[grp].to_numpy(float), int((st == grp).sum()))
    s2 = float(np.sum(w_all * (y - county["mean_income"]) ** 2) / np.sum(w_all))
    gvf_inc = s2 * k * np.clip(1 - nn["mean_income"].to_numpy(float) / hh.sum(axis=1).to_numpy(float), 0, 1) / \
        nn["mean_income"].to_numpy(float)
    psi["mean_income"] = np.where(var["mean_income"].to_numpy() > 0, var["mean_income"].to_numpy(), gvf_inc)
    for frame in (var, psi):
        frame["poverty_incidence"] = ((pers["exited"] ** 2) * frame["wrongly_exited_rate"].fillna(0)
                                      + (pers["non_registered"] ** 2) * frame["missed_poor_rate"].fillna(0)) / R ** 2
    # a census of the village (or of its only households) is exact: a tiny variance, not zero, for Fay-Herriot
    # (at least 1/1000 of the indicator's median variance, so that the GLS weights stay finite)
    floor = psi.where(psi > 0).median().fillna(1e-12) * 1e-3
    psi = psi.clip(lower=floor, axis=1).fillna(floor).where(est.notna())
    nn["poverty_incidence"] = nn["mean_income"]
    return DirectEstimates(est[list(INDICATORS)], var[list(INDICATORS)], psi[list(INDICATORS)], nn[list(INDICATORS)],
                           county)
