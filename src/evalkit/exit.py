"""County exit assessment: the four criteria 三率一度 with design-based uncertainty.

From the evaluators' field survey (:func:`evalkit.survey.survey_from_truth` or a real
``field_survey`` table) this module flags wrongly-exited and missed households, estimates the
wrongly-exited rate, the missed-poor rate, the approval rate and the comprehensive poverty
incidence of one county with svy (stratified by village stratum, villages as PSUs, design
weights), and turns each confidence interval into a verdict against the policy thresholds
(domain.md §3-§4). :func:`operating_characteristic` replays the whole evaluation many times on
a synthetic county whose true rates are known.

Variance: Taylor linearization by svy, with-replacement approximation at stage 1 (no finite
population correction; R ``survey``'s default). Villages taken with certainty still count as
sampled PSUs, which errs on the conservative side. The joint covariance of the three rates comes
from one svy estimate on a stacked copy of the sample (one copy per rate, ``by=`` the copy), so
the comprehensive incidence, a linear combination of two rates, gets its SE from svy's
``contrast``. No variance formula is written here.

Intervals (``ci_method``, policy ``[survey] ci_method``): 'korn_graubard' (default) gives the three
sample proportions the Korn-Graubard interval of R's ``svyciprop(method="beta")`` built from svy's
estimate and SE; 'wald' gives svy's t interval. Near 0 the Wald interval collapses: with no
wrongly-exited person in the sample the SE is 0 and the interval is [0, 0], which the
uncertainty-aware verdict would take as an exact pass. See :func:`estimate_criteria`.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import polars as pl
import svy
from scipy.special import betaincinv, stdtrit

from evalkit.config import ConfigError, Policy, load_policy
from evalkit.indicators import household_indicators
from evalkit.survey import (
    HH_STRATA,
    SampleDesign,
    _build_frame,
    _draw_from_frame,
    _fill_survey,
    _sample_attrs,
    _truth_index,
    household_strata,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "ExitAssessmentError",
    "CRITERIA",
    "CI_METHODS",
    "criterion_flags",
    "register_totals",
    "estimate_criteria",
    "verdicts",
    "decision",
    "true_rates",
    "operating_characteristic",
    "plot_operating_characteristic",
]

#: The four exit criteria, in report order.
CRITERIA: tuple[str, ...] = (
    "wrongly_exited_rate", "missed_poor_rate", "approval_rate", "comprehensive_poverty_rate",
)
_EXITED, _POOR, _NONREG = HH_STRATA
_INCOME = "surveyed_income_per_capita"
_REQUIRED_SURVEY = ("county_code", "survey_year", "household_id", "village_code", "stratum",
                    "hh_stratum", "weight", "household_size", _INCOME, "approves")

# Policy singleton names may follow R's survey.lonely.psu or svy's Singleton methods.
# 'certainty' (policy default): a lone village is a take-all unit contributing no stage-1
# variance, which is what R's "certainty" and svy's "skip" compute.
_SINGLETON_ALIASES: dict[str, str | None] = {
    "certainty": "skip", "remove": "skip", "skip": "skip",
    "adjust": "center", "center": "center",
    "average": "scale", "scale": "scale",
    "self_representing": "self_representing", "pool": "pool",
    "fail": None, "error": None,
}


# Interval methods for the three sample proportions (see estimate_criteria).
CI_METHODS: tuple[str, ...] = ("korn_graubard", "wald")
_CI_ALIASES: dict[str, str] = {"korn_graubard": "korn_graubard", "korn-graubard": "korn_graubard",
                               "kg": "korn_graubard", "beta": "korn_graubard", "wald": "wald"}


class ExitAssessmentError(ValueError):
    """Input that does not allow a county exit assessment (the message says what and where)."""


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def _policy(policy: Policy | None) -> Policy:
    return load_policy() if policy is None else policy


def _poverty_line(policy: Policy, year: int) -> float:
    try:
        return policy.poverty_line(year)
    except ConfigError as e:
        raise ExitAssessmentError(f"year {year}: {e}") from None


def _thresholds(policy: Policy, county: str) -> tuple[str, dict]:
    try:
        region = policy.region(county)
        return region, policy.exit_thresholds(region)
    except ConfigError as e:
        raise ExitAssessmentError(f"county {county}: {e}") from None


def _guarantees(policy: Policy) -> list[str]:
    return list(policy.section("indicators")["guarantees"])


def _bool_col(df: pd.DataFrame, col: str, what: str) -> np.ndarray:
    s = df[col]
    try:
        b = s.astype("boolean")
    except (TypeError, ValueError):
        raise ExitAssessmentError(f"{what}: column {col!r} is not boolean (dtype {s.dtype})") from None
    na = b.isna().to_numpy()
    if na.any():
        ids = df.loc[na, "household_id"].astype(str).head(5).tolist() if "household_id" in df else []
        raise ExitAssessmentError(f"{what}: {int(na.sum())} missing value(s) in {col!r}, e.g. households {ids}")
    return b.to_numpy(dtype=bool)


def _singleton_rule(method: Any) -> tuple[str, Any]:
    """(name to report, svy rule or None for 'fail')."""
    if isinstance(method, svy.Singleton):
        return repr(method), method
    key = str(method).strip().lower()
    if key not in _SINGLETON_ALIASES:
        raise ExitAssessmentError(
            f"unknown singleton method {method!r}; use one of {sorted(_SINGLETON_ALIASES)} "
            "or a svy.Singleton(...)")
    return key, _SINGLETON_ALIASES[key]


def _ci_method(method: Any) -> str:
    key = str(method).strip().lower()
    if key not in _CI_ALIASES:
        raise ExitAssessmentError(f"unknown ci_method {method!r}; use one of {list(CI_METHODS)}")
    return _CI_ALIASES[key]


def _korn_graubard(est: np.ndarray, se: np.ndarray, n: np.ndarray, df: np.ndarray, alpha: float,
                   n_zero_var: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Korn-Graubard interval of proportions from a design-based estimate and SE (vectorized).

    As R ``survey::svyciprop(method="beta")``: n_eff = p(1-p)/se^2 times
    (qt(alpha/2, n-1) / qt(alpha/2, df))^2 (n = sampled units in the domain, df = design df);
    lower = qbeta(alpha/2, n_eff p, n_eff (1-p) + 1), upper = qbeta(1-alpha/2, n_eff p + 1,
    n_eff (1-p)); lower = 0 at p = 0 and upper = 1 at p = 1. Where se = 0 (R gives NaN) the
    unadjusted n_eff is ``n_zero_var`` (deff 1) before the same df factor.

    Returns
    -------
    (lci, uci, n_eff)
    """
    est, se, n, df, n0 = (np.asarray(x, dtype=float) for x in (est, se, n, df, n_zero_var))
    var = se * se
    with np.errstate(divide="ignore", invalid="ignore"):
        raw = np.where(var > 0, est * (1.0 - est) / np.where(var > 0, var, 1.0), n0)
        n_eff = raw * (stdtrit(n - 1.0, alpha / 2) / stdtrit(df, alpha / 2)) ** 2
        lo = np.where(est <= 0, 0.0, betaincinv(n_eff * est, n_eff * (1.0 - est) + 1.0, alpha / 2))
        hi = np.where(est >= 1, 1.0, betaincinv(n_eff * est + 1.0, n_eff * (1.0 - est), 1.0 - alpha / 2))
    ok = np.isfinite(n_eff) & (n_eff > 0) & np.isfinite(est)
    return np.where(ok, lo, np.nan), np.where(ok, hi, np.nan), n_eff


def _need_county(households: pd.DataFrame, county: str) -> pd.DataFrame:
    for c in ("household_id", "village_code", "county_code", "household_size", "registered", "exit_year"):
        if c not in households.columns:
            raise ExitAssessmentError(f"households lacks column {c!r}")
    hh = households.loc[households["county_code"].astype(str).to_numpy() == county]
    if hh.empty:
        raise ExitAssessmentError(f"county {county} is not in the households register (the sampling frame)")
    return hh


# --------------------------------------------------------------------------------------------
# household flags
# --------------------------------------------------------------------------------------------
def criterion_flags(field_survey: pd.DataFrame, policy: Policy | None, year: int) -> pd.DataFrame:
    """Flag wrongly-exited and missed households of a field survey, with the reasons.

    A household meets the exit standard when its surveyed per-capita income is strictly
    above the poverty line of ``year`` and every guarantee of the policy
    (``[indicators] guarantees``) holds. ``wrongly_exited`` = exited household not meeting it;
    ``missed`` = non-registered household not meeting it.

    Returns
    -------
    pandas.DataFrame
        Aligned to ``field_survey``: identifiers, ``hh_stratum``, ``meets_standard``,
        ``wrongly_exited``, ``missed``, ``follow_up`` (either), ``reasons`` (';'-joined codes
        of the failed conditions: ``income_below_line`` for income at or below the line, then
        the guarantee names without ``_ok``) and person counts ``persons``,
        ``exited_persons``, ``wrongly_exited_persons``, ``non_registered_persons``,
        ``missed_persons``.
    """
    pol = _policy(policy)
    _poverty_line(pol, year)  # a year without a line fails here with the exit module's error
    guar = _guarantees(pol)
    miss = [c for c in ("household_id", "hh_stratum", "household_size", _INCOME, *guar)
            if c not in field_survey.columns]
    if miss:
        raise ExitAssessmentError(f"field_survey lacks column(s) {miss}")
    inc = pd.to_numeric(field_survey[_INCOME], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    if np.isnan(inc).any():
        bad = np.isnan(inc)
        raise ExitAssessmentError(
            f"field_survey: {int(bad.sum())} missing or non-numeric {_INCOME!r}, e.g. households "
            f"{field_survey.loc[bad, 'household_id'].astype(str).head(5).tolist()}")
    size = pd.to_numeric(field_survey["household_size"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = ~(size >= 1)
    if bad.any():
        raise ExitAssessmentError(
            f"field_survey: {int(bad.sum())} household(s) with missing or non-positive household_size, e.g. "
            f"{field_survey.loc[bad, 'household_id'].astype(str).head(5).tolist()}")
    hs = field_survey["hh_stratum"].astype(str).to_numpy()
    unknown = sorted(set(np.unique(hs)) - set(HH_STRATA))
    if unknown:
        raise ExitAssessmentError(f"field_survey: unknown hh_stratum value(s) {unknown}; expected {HH_STRATA}")
    # The exit standard itself is evaluated by evalkit.indicators (one definition for the panel and
    # the survey); the survey observes one year, so "stably above" is that year.
    ok = {g: _bool_col(field_survey, g, "field_survey") for g in guar}
    ind = household_indicators(
        pd.DataFrame({"household_id": np.arange(len(field_survey)), "year": int(year),
                      "income_per_capita": inc, **ok}),
        policy=pol, stable_years=1)
    fail_any = ~ind["meets_exit_standard"].to_numpy(dtype=bool)
    reasons = ind["fail_reasons"].to_numpy(dtype=object)
    exited, nonreg = hs == _EXITED, hs == _NONREG
    we, mp = exited & fail_any, nonreg & fail_any
    cols = {c: field_survey[c].to_numpy()
            for c in ("county_code", "survey_year", "household_id", "village_code", "stratum")
            if c in field_survey.columns}
    return pd.DataFrame({
        **cols, "hh_stratum": hs, "meets_standard": ~fail_any, "wrongly_exited": we, "missed": mp,
        "follow_up": we | mp, "reasons": reasons, "persons": size,
        "exited_persons": size * exited, "wrongly_exited_persons": size * we,
        "non_registered_persons": size * nonreg, "missed_persons": size * mp,
    }, index=field_survey.index)


# --------------------------------------------------------------------------------------------
# register totals
# --------------------------------------------------------------------------------------------
def register_totals(households: pd.DataFrame, county: str, year: int,
                    counties: pd.DataFrame | None = None) -> dict:
    """Register totals of a county in ``year`` for the comprehensive poverty incidence.

    Persons are sums of ``household_size``. The rural population R is the county's
    ``rural_population`` when ``counties`` gives a positive value, else the persons of all
    households of the register. The non-registered population N is R - P - E (domain.md §4: the
    missed-poor rate applies to every non-registered rural person), so a register that lists only
    part of the non-registered households does not shrink the missed-poor term; when the listed
    non-registered persons differ from R - P - E by more than 1% this is noted.

    Returns
    -------
    dict
        ``remaining_poor_persons``, ``exited_persons``, ``non_registered_persons``,
        ``register_persons`` (all households), ``rural_population``,
        ``rural_population_source``.
    """
    county = str(county)
    hh = _need_county(households, county)
    st = household_strata(hh, year).to_numpy()
    size = pd.to_numeric(hh["household_size"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    if not (size >= 1).all():
        raise ExitAssessmentError(
            f"households of county {county}: {int((~(size >= 1)).sum())} with missing or non-positive household_size")
    tot = {k: float(size[st == k].sum()) for k in HH_STRATA}
    rural, source = float(size.sum()), "sum of household_size of the register"
    if counties is not None and "rural_population" in counties.columns:
        rp = pd.to_numeric(counties.loc[counties["county_code"].astype(str) == county, "rural_population"],
                           errors="coerce").dropna()
        if len(rp) and float(rp.iloc[0]) > 0:
            rural, source = float(rp.iloc[0]), "counties.rural_population"
    P, E, listed = tot[_POOR], tot[_EXITED], tot[_NONREG]
    N = rural - P - E
    if N < 0:
        raise ExitAssessmentError(
            f"county {county}: rural population {rural:.0f} ({source}) is smaller than the registered "
            f"persons {P + E:.0f} in {year}: check counties.rural_population")
    note = None
    if abs(N - listed) > 0.01 * max(N, 1.0):
        note = (f"non-registered rural persons taken as rural population - registered = {N:.0f}; the register "
                f"lists {listed:.0f} non-registered persons")
    return {
        "remaining_poor_persons": P,
        "exited_persons": E,
        "non_registered_persons": N,
        "listed_non_registered_persons": listed,
        "register_persons": float(size.sum()),
        "rural_population": rural,
        "rural_population_source": source,
        "note": note,
    }


# --------------------------------------------------------------------------------------------
# verdicts
# --------------------------------------------------------------------------------------------
def verdicts(est: Any, lci: Any, uci: Any, threshold: Any, direction: Any) -> tuple[np.ndarray, np.ndarray]:
    """Uncertainty-aware and official verdicts (vectorized).

    'below' criteria pass when the rate is strictly below the threshold: verdict 'pass' when
    ``uci < threshold`` (the whole CI passes), 'fail' when ``lci >= threshold``, else
    'borderline'; official: ``est < threshold``. 'at_least' criteria pass when the rate is at
    least the threshold: 'pass' when ``lci >= threshold``, 'fail' when ``uci < threshold``;
    official: ``est >= threshold``. Exact comparisons: a CI touching the threshold is not
    wholly on either side unless the touching point itself passes.

    Returns
    -------
    (verdict, official_verdict) : arrays of str
    """
    est, lci, uci, thr = (np.asarray(x, dtype=float) for x in (est, lci, uci, threshold))
    direction = np.asarray(direction, dtype=object)
    if not np.isin(direction, ["below", "at_least"]).all():
        raise ValueError(f"direction must be 'below' or 'at_least', got {sorted(set(direction.ravel()))}")
    below = direction == "below"
    ci_pass = np.where(below, uci < thr, lci >= thr)
    ci_fail = np.where(below, lci >= thr, uci < thr)
    verdict = np.where(ci_pass, "pass", np.where(ci_fail, "fail", "borderline")).astype(object)
    official = np.where(np.where(below, est < thr, est >= thr), "pass", "fail").astype(object)
    return verdict, official


def decision(criteria: pd.DataFrame) -> dict[str, str]:
    """County decision from :func:`estimate_criteria`'s table.

    Returns
    -------
    dict
        ``overall``: 'fail' if any criterion fails, 'pass' if all pass, else 'borderline';
        ``official_point_rule``: 'pass' if every point estimate passes, else 'fail'.
    """
    v = criteria["verdict"].to_numpy()
    overall = "fail" if (v == "fail").any() else ("pass" if (v == "pass").all() else "borderline")
    official = "pass" if (criteria["official_verdict"].to_numpy() == "pass").all() else "fail"
    return {"overall": overall, "official_point_rule": official}


# --------------------------------------------------------------------------------------------
# estimation
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Context:
    """Everything of an assessment that does not depend on the sample (built once per county)."""

    policy: Policy
    county: str
    year: int
    line: float
    region: str
    thresholds: dict
    confidence: float
    ci_method: str
    singleton_name: str
    singleton_rule: Any
    frame_villages: frozenset
    register: dict


def _context(households: pd.DataFrame, county: str, year: int, policy: Policy | None,
             confidence: float | None, singleton: Any, counties: pd.DataFrame | None,
             ci_method: str | None = None) -> _Context:
    pol = _policy(policy)
    county, year = str(county), int(year)
    line = _poverty_line(pol, year)
    region, thr = _thresholds(pol, county)
    sec = pol.section("survey")
    conf = float(sec["confidence_level"] if confidence is None else confidence)
    if not 0.0 < conf < 1.0:
        raise ExitAssessmentError(f"confidence must be in (0, 1), got {conf}")
    sing_name, sing_rule = _singleton_rule(sec["singleton_method"] if singleton is None else singleton)
    # a hand-built Policy without the key gets the base policy's default
    ci = _ci_method(sec.get("ci_method", "korn_graubard") if ci_method is None else ci_method)
    hh = _need_county(households, county)
    return _Context(pol, county, year, line, region, thr, conf, ci, sing_name, sing_rule,
                    frozenset(hh["village_code"].astype(str).unique()),
                    register_totals(hh, county, year, counties))


def _county_sample(field_survey: pd.DataFrame, county: str, year: int) -> pd.DataFrame:
    miss = [c for c in _REQUIRED_SURVEY if c not in field_survey.columns]
    if miss:
        raise ExitAssessmentError(f"field_survey lacks column(s) {miss}")
    cc = field_survey["county_code"].astype(str).to_numpy()
    if not (cc == county).any():
        present = sorted(set(cc))
        raise ExitAssessmentError(
            f"county {county} is not in the field survey (counties present: {present[:10]}"
            f"{' ...' if len(present) > 10 else ''})")
    yy = pd.to_numeric(field_survey["survey_year"], errors="coerce").to_numpy()
    if not ((cc == county) & (yy == year)).any():
        raise ExitAssessmentError(
            f"county {county} has no field survey for year {year} "
            f"(years present: {sorted(set(yy[cc == county].tolist()))})")
    keep = (cc == county) & (yy == year)
    fs = field_survey if keep.all() else field_survey.loc[keep]
    ids = fs["household_id"].astype(str)
    dup = ids.duplicated().to_numpy()
    if dup.any():
        raise ExitAssessmentError(f"field survey of county {county}: {int(dup.sum())} duplicated household_id(s), "
                                  f"e.g. {ids[dup].head(5).tolist()}")
    w = pd.to_numeric(fs["weight"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = ~(np.isfinite(w) & (w > 0))
    if bad.any():
        raise ExitAssessmentError(
            f"field survey of county {county}: {int(bad.sum())} row(s) with missing, zero or negative weight, "
            f"household_id(s) {ids[bad].head(10).tolist()}{' ...' if bad.sum() > 10 else ''}")
    if fs["village_code"].isna().any() or fs["stratum"].isna().any():
        raise ExitAssessmentError(f"field survey of county {county}: missing village_code or stratum")
    return fs


def estimate_criteria(field_survey: pd.DataFrame, households: pd.DataFrame, county: str, year: int,
                      policy: Policy | None = None, confidence: float | None = None,
                      singleton: str | Any | None = None, *,
                      counties: pd.DataFrame | None = None, ci_method: str | None = None) -> pd.DataFrame:
    """Estimate the four exit criteria of one county with design-based CIs and verdicts.

    Design: strata = ``stratum`` (village stratum), PSU = ``village_code``, weights =
    ``weight``; Taylor linearization by svy (estimates and SEs).

    * ``wrongly_exited_rate`` = weighted wrongly-exited persons / weighted exited persons;
    * ``missed_poor_rate`` = weighted missed persons / weighted non-registered persons;
    * ``approval_rate`` = weighted approving households / weighted surveyed households;
    * ``comprehensive_poverty_rate`` = (P + r_we E + r_mp N) / R with the register totals
      of :func:`register_totals` (P remaining registered poor persons, E exited persons,
      N non-registered persons, R rural population); its SE is svy's contrast over the
      joint covariance of the rates (one svy estimate on a stacked copy of the sample).

    Intervals (``ci_method``):

    * 'wald': svy's t intervals on the design df (est +/- t se), for all four criteria.
    * 'korn_graubard' (policy default): for the three sample proportions, the Korn-Graubard
      (1998) interval, i.e. Clopper-Pearson on the df-adjusted effective sample size, as R
      ``svyciprop(method="beta")`` (cross-checked in tests/fixtures_r). Only svy's estimate and
      SE enter: n_eff = p(1-p)/se^2 x (qt(a/2, n-1)/qt(a/2, df))^2 with n = sampled households
      in the domain (the ``n`` column, R's ``nrow`` of the domain design) and df = svy's design df
      (the ``df`` column; R's ``degf`` of the domain design is smaller only when some sampled
      village has no household of the domain); CI = [qbeta(a/2, n_eff p, n_eff(1-p)+1), qbeta(1-a/2, n_eff p+1,
      n_eff(1-p))], lower 0 at p = 0, upper 1 at p = 1. When se = 0 (p = 0 or 1, e.g. no
      wrongly-exited person in the sample) R gives NaN; here p(1-p)/se^2 is replaced by the
      number of sampled HOUSEHOLDS in the domain, i.e. a design effect of 1 on households, before
      the same df factor. Households, not persons: every member shares the household's status,
      so counting persons would claim information the sample does not have (an operating-
      characteristic replay passed 9% of samples from a county exactly at the 2% threshold with
      persons). At p = 0 the upper bound is 1 - (a/2)^(1/n_eff). The comprehensive incidence
      keeps svy's Wald interval, widened to contain the plug-in of the component Korn-Graubard
      bounds: lci = min(Wald lci, (P + E lci_we + N lci_mp)/R), uci = max(Wald uci,
      (P + E uci_we + N uci_mp)/R), and its lower bound is never below the register floor P/R.
      Without this, when both error rates are 0 in the sample their covariance is 0 and the Wald
      interval collapses to P/R, an exact-looking pass.

    Parameters
    ----------
    field_survey : pandas.DataFrame
        ``field_survey`` table (may hold other counties or years).
    households : pandas.DataFrame
        Household register (the sampling frame) for the register totals.
    county : str
        6-digit county code.
    year : int
        Assessment year (poverty line, household strata, ``survey_year``).
    policy : Policy, optional
        Thresholds and defaults; base policy if None.
    confidence : float, optional
        Two-sided CI level; ``[survey] confidence_level`` if None.
    singleton : str or svy.Singleton, optional
        Rule for a village stratum with one sampled village: R names ('certainty',
        'remove', 'adjust', 'average', 'fail') or svy names ('skip', 'center', 'scale',
        'self_representing', 'pool'); ``[survey] singleton_method`` if None.
    counties : pandas.DataFrame, optional
        For the county's ``rural_population``.
    ci_method : {'korn_graubard', 'wald'}, optional
        Interval method (see above); ``[survey] ci_method`` if None.

    Returns
    -------
    pandas.DataFrame
        Index ``criterion`` (:data:`CRITERIA`); columns est, se, lci, uci, n (sampled
        households in the denominator), df, threshold, direction, verdict, official_verdict.
        ``attrs``: county, year, region, poverty_line, confidence, ci_method (method of each
        criterion's interval: 'korn_graubard', 'wald' or, for the comprehensive incidence under
        Korn-Graubard, 'wald_widened_by_kg_plug_in'), ci_method_requested, wald_ci (svy's
        Wald [lci, uci] of every criterion), n_eff (df-adjusted effective sample sizes of the
        Korn-Graubard intervals), n_persons (sampled persons of the two person-based rates),
        singleton_method, singleton_method_svy, singleton_strata, ci_below_zero,
        ci_above_one, zero_se, covariance (of the three sample rates, with keys), register
        totals, n_villages, n_households, notes.

    Raises
    ------
    ExitAssessmentError
        County or year absent, no exited (or non-registered) household sampled, missing or
        non-positive weights, sample villages outside the register, no poverty line or
        threshold configured, singleton strata under the 'fail' rule, or a design without
        degrees of freedom.
    """
    ctx = _context(households, county, year, policy, confidence, singleton, counties, ci_method)
    return _assess(ctx, field_survey)


def _assess(ctx: _Context, field_survey: pd.DataFrame) -> pd.DataFrame:
    """The per-sample part of :func:`estimate_criteria`."""
    county, year = ctx.county, ctx.year
    fs = _county_sample(field_survey, county, year)
    sv = fs["village_code"].astype(str).to_numpy()
    outside = sorted(set(sv) - ctx.frame_villages)
    if outside:
        raise ExitAssessmentError(
            f"{len(outside)} sampled village(s) of county {county} are not in the households register: {outside}")
    flags = criterion_flags(fs, ctx.policy, year)
    hs = flags["hh_stratum"].to_numpy()
    n_ex, n_nr = int((hs == _EXITED).sum()), int((hs == _NONREG).sum())
    if n_ex == 0:
        raise ExitAssessmentError(
            f"no exited households in the field survey of county {county} in {year}: the wrongly-exited "
            "rate has no denominator")
    if n_nr == 0:
        raise ExitAssessmentError(
            f"no non-registered households in the field survey of county {county} in {year}: the "
            "missed-poor rate has no denominator")
    approves = _bool_col(fs, "approves", "field_survey").astype(float)

    # Singleton strata: one sampled village. Report them and apply the chosen rule.
    strat = fs["stratum"].astype(str).to_numpy()
    s_code, s_lab = pd.factorize(strat, sort=True)
    v_code, v_lab = pd.factorize(sv)
    pairs = np.unique(s_code.astype(np.int64) * len(v_lab) + v_code)   # distinct (stratum, village)
    twice = np.bincount(pairs % len(v_lab), minlength=len(v_lab)) > 1
    if twice.any():
        raise ExitAssessmentError(
            f"field survey of county {county}: village(s) {list(np.asarray(v_lab)[twice][:10])} appear in more "
            "than one stratum; a village (PSU) belongs to one village stratum")
    n_psu = np.bincount(pairs // len(v_lab), minlength=len(s_lab))
    labels = np.asarray(s_lab, dtype=object)
    singles = [str(x) for x in labels[n_psu == 1]]
    if singles and ctx.singleton_rule is None:
        raise ExitAssessmentError(
            f"village strata {singles} of county {county} have a single sampled village (singleton PSU) and "
            f"the singleton rule is {ctx.singleton_name!r}; choose e.g. 'certainty', 'adjust' or 'average'")

    # Stacked copy of the sample, one per rate; by='__which__' gives their joint covariance.
    which = np.array(["wrongly_exited_rate", "missed_poor_rate", "approval_rate"])
    k, n = len(which), len(fs)
    stacked = pl.DataFrame({
        "stratum": np.tile(strat, k),
        "village_code": np.tile(sv, k),
        "weight": np.tile(pd.to_numeric(fs["weight"]).to_numpy(dtype=float), k),
        "__which__": np.repeat(which, n),
        "__num__": np.concatenate([flags["wrongly_exited_persons"].to_numpy(float),
                                   flags["missed_persons"].to_numpy(float), approves]),
        "__den__": np.concatenate([flags["exited_persons"].to_numpy(float),
                                   flags["non_registered_persons"].to_numpy(float), np.ones(n)]),
    })
    design = svy.Design(stratum="stratum", psu="village_code", wgt="weight",
                        singleton=ctx.singleton_rule if singles else None)
    alpha = 1.0 - ctx.confidence
    try:
        est = svy.Sample(stacked, design).estimation.ratio("__num__", "__den__", by="__which__", alpha=alpha)
    except svy.SvyError as e:
        raise ExitAssessmentError(f"svy could not estimate county {county}: {e}") from e
    reg = ctx.register
    E, N, P, R = (reg["exited_persons"], reg["non_registered_persons"], reg["remaining_poor_persons"],
                  reg["rural_population"])
    comp = est.contrast(
        {"comprehensive_poverty_rate": P / R + (E / R) * svy.estd("wrongly_exited_rate")
         + (N / R) * svy.estd("missed_poor_rate")}, alpha=alpha)

    fields = ("est", "se", "lci", "uci", "df")
    rows = {str(r["__which__"]): r for r in est.to_polars().select("__which__", *fields).iter_rows(named=True)}
    rows["comprehensive_poverty_rate"] = comp.to_polars().row(0, named=True)
    vals = np.array([[float(rows[c][f]) for f in fields] for c in CRITERIA])
    wald = vals[:, 2:4].copy()
    n_units = np.array([n_ex, n_nr, n, n_ex + n_nr])
    persons = np.array([flags["exited_persons"].sum(), flags["non_registered_persons"].sum()], dtype=float)
    n_eff = np.full(3, np.nan)
    methods = dict.fromkeys(CRITERIA, "wald")
    if ctx.ci_method == "korn_graubard" and (vals[:, 4] > 0).all():
        # rows 0-2 = the three proportions. se = 0 (no case, or all cases, in the sample): R gives
        # NaN; we take deff 1 on HOUSEHOLDS, not persons, because every member of a household shares
        # its status -- counting persons would claim information the sample does not have (an OC
        # replay passed 9% of samples from a county exactly at the 2% threshold with persons).
        lo, hi, n_eff = _korn_graubard(vals[:3, 0], vals[:3, 1], n_units[:3], vals[:3, 4], alpha,
                                       n_units[:3].astype(float))
        vals[:3, 2], vals[:3, 3] = lo, hi
        # comprehensive: Wald interval widened to hold the plug-in of the component KG bounds
        vals[3, 2] = min(vals[3, 2], (P + E * lo[0] + N * lo[1]) / R)
        vals[3, 3] = max(vals[3, 3], (P + E * hi[0] + N * hi[1]) / R)
        methods = {**dict.fromkeys(CRITERIA[:3], "korn_graubard"),
                   "comprehensive_poverty_rate": "wald_widened_by_kg_plug_in"}
    # The incidence cannot lie below the registered poor alone (P/R, a register count without
    # sampling error, both rates being >= 0): a symmetric interval that crosses it is cut there.
    # Only with korn_graubard: ci_method='wald' stays exactly R survey's svycontrast interval.
    floor_note = None
    if ctx.ci_method == "korn_graubard" and vals[3, 2] < P / R:
        floor_note = (f"comprehensive_poverty_rate: lower bound {vals[3, 2]:.5f} raised to the register floor "
                      f"P/R = {P / R:.5f} (remaining registered poor / rural population)")
        vals[3, 2] = P / R
    out = pd.DataFrame(vals, columns=list(fields), index=pd.Index(list(CRITERIA), name="criterion"))
    out.insert(4, "n", n_units)
    bad = ~np.isfinite(vals[:, :4]).all(axis=1) | (vals[:, 4] <= 0)
    if bad.any():
        raise ExitAssessmentError(
            f"county {county}: the design gives no usable interval for {out.index[bad].tolist()} "
            f"(design df {vals[:, 4].tolist()}; {len(set(sv))} villages in {len(labels)} strata; "
            f"sampled households {n_units.tolist()}): sample at least two villages in some stratum "
            "(and, for the Korn-Graubard interval, at least two households in each domain)")
    thr = ctx.thresholds
    out["threshold"] = [thr[c]["value"] for c in CRITERIA]
    out["direction"] = [thr[c]["direction"] for c in CRITERIA]
    out["verdict"], out["official_verdict"] = verdicts(vals[:, 0], vals[:, 2], vals[:, 3],
                                                       out["threshold"], out["direction"])
    keys = [str(x) for x in est.keys()]
    order = [keys.index(c) for c in which]
    V = np.asarray(est.covariance)[np.ix_(order, order)]
    below0 = out.index[vals[:, 2] < 0].tolist()
    above1 = out.index[vals[:, 3] > 1].tolist()
    zero_se = out.index[vals[:, 1] == 0].tolist()
    notes = []
    kg = ctx.ci_method == "korn_graubard"
    if below0:
        notes.append(f"lower CI bound below 0 for {below0}: reported unclipped (Wald interval)")
    if above1:
        notes.append(f"upper CI bound above 1 for {above1}: reported unclipped (Wald interval)")
    if zero_se and kg:
        notes.append(f"zero standard error for {zero_se}: no variation in the sample (e.g. no case found); "
                     "the Korn-Graubard interval of a rate uses a design effect of 1 (n_eff = sampled "
                     "households, times the df factor), and the comprehensive "
                     "incidence's interval is widened to the plug-in of those bounds")
    elif zero_se:
        notes.append(f"zero standard error for {zero_se}: no variation in the sample (e.g. no case found); "
                     "the Wald interval collapses to the point and the verdict treats it as exact")
    if singles:
        notes.append(f"singleton strata {singles} handled by {ctx.singleton_name!r}")
    if floor_note:
        notes.append(floor_note)
    if reg.get("note"):
        notes.append(reg["note"])
    rule = ctx.singleton_rule
    out.attrs = {
        "county": county, "year": year, "region": ctx.region, "poverty_line": ctx.line,
        "confidence": ctx.confidence,
        "ci_method": methods, "ci_method_requested": ctx.ci_method,
        "wald_ci": {c: [float(a), float(b)] for c, (a, b) in zip(CRITERIA, wald)},
        "n_eff": dict(zip(which.tolist(), (float(x) for x in n_eff))),
        "n_persons": {"wrongly_exited_rate": float(persons[0]), "missed_poor_rate": float(persons[1])},
        "singleton_method": ctx.singleton_name,
        "singleton_method_svy": rule if isinstance(rule, str) or rule is None else repr(rule),
        "singleton_strata": singles,
        "ci_below_zero": below0, "ci_above_one": above1, "zero_se": zero_se,
        "covariance": V.tolist(), "covariance_keys": which.tolist(),
        "register": dict(reg), "n_villages": int(len(set(sv))), "n_households": int(n),
        "n_strata": int(len(labels)),
        "variance": "Taylor linearization (svy), strata=stratum, PSU=village_code, with replacement at stage 1",
        "notes": notes,
    }
    return out


# --------------------------------------------------------------------------------------------
# truth and the operating characteristic
# --------------------------------------------------------------------------------------------
def _truth_year(truth: pd.DataFrame, ids: np.ndarray, year: int) -> pd.DataFrame:
    t = truth.loc[truth["year"].to_numpy() == year]
    t = t.loc[t["household_id"].astype(str).isin(ids).to_numpy()]
    if len(t) != len(ids):
        raise ExitAssessmentError(f"truth of {year} covers {len(t)} of the county's {len(ids)} households")
    return t


def true_rates(households: pd.DataFrame, truth: pd.DataFrame, county: str, year: int,
               policy: Policy | None = None, counties: pd.DataFrame | None = None) -> pd.Series:
    """The county's true criteria in ``year`` from the (synthetic) truth table.

    Same definitions as :func:`estimate_criteria` applied to every household of the county
    (true income and guarantees; ``true_approves`` for approval, household-based).

    Returns
    -------
    pandas.Series
        Indexed by :data:`CRITERIA`.
    """
    pol = _policy(policy)
    county = str(county)
    line = _poverty_line(pol, year)
    hh = _need_county(households, county)
    ids = hh["household_id"].astype(str).to_numpy()
    t = _truth_year(truth, ids, year)
    t = t.assign(household_id=t["household_id"].astype(str)).set_index("household_id").reindex(ids)
    meets = t["true_income_per_capita"].to_numpy(dtype=float) > line
    for g in _guarantees(pol):
        meets &= t[f"true_{g}"].astype(bool).to_numpy()
    st = household_strata(hh, year).to_numpy()
    size = pd.to_numeric(hh["household_size"]).to_numpy(dtype=float)
    reg = register_totals(hh, county, year, counties)
    ex, nr = st == _EXITED, st == _NONREG
    if not ex.any() or not nr.any():
        raise ExitAssessmentError(f"county {county} has no {'exited' if not ex.any() else 'non-registered'} "
                                  f"household in {year}: the true rate is undefined")
    we_p, mp_p = float((size * (ex & ~meets)).sum()), float((size * (nr & ~meets)).sum())
    return pd.Series({
        "wrongly_exited_rate": we_p / float(size[ex].sum()),
        "missed_poor_rate": mp_p / float(size[nr].sum()),
        "approval_rate": float(t["true_approves"].astype(bool).mean()),
        "comprehensive_poverty_rate": (reg["remaining_poor_persons"] + we_p + mp_p) / reg["rural_population"],
    }, name="true")


def _set_truth(truth_y: pd.DataFrame, hh: pd.DataFrame, year: int, criterion: str, target: float,
               rng: np.random.Generator, policy: Policy) -> pd.DataFrame:
    """Reassign at random which households fail so that the true rate is as close as possible to
    ``target`` (households are indivisible, so persons are matched to the nearest household)."""
    if not 0.0 <= target <= 1.0:
        raise ValueError(f"target rate must be in [0, 1], got {target}")
    t = truth_y.copy()
    ids_t = t["household_id"].astype(str).to_numpy()
    st = household_strata(hh, year).to_numpy()
    ids = hh["household_id"].astype(str).to_numpy()
    size = pd.to_numeric(hh["household_size"]).to_numpy(dtype=float)
    if criterion == "approval_rate":
        perm = rng.permutation(len(ids))
        k = int(np.rint(target * len(ids)))
        t["true_approves"] = np.isin(ids_t, ids[perm[:k]])
        return t
    if criterion not in ("wrongly_exited_rate", "missed_poor_rate"):
        raise ValueError(f"set_rates supports 'wrongly_exited_rate', 'missed_poor_rate' and 'approval_rate', "
                         f"not {criterion!r} (the comprehensive incidence follows from the other two)")
    grp = st == (_EXITED if criterion == "wrongly_exited_rate" else _NONREG)
    gid, gsize = ids[grp], size[grp]
    perm = rng.permutation(len(gid))
    cum = np.concatenate([[0.0], np.cumsum(gsize[perm])])
    k = int(np.argmin(np.abs(cum - target * gsize.sum())))
    fail = np.isin(ids_t, gid[perm[:k]])
    ok = np.isin(ids_t, gid[perm[k:]])
    line = _poverty_line(policy, year)
    inc = t["true_income_per_capita"].to_numpy(dtype=float)
    # Failing households fail through income (at the line is not above it); passing ones get
    # the smallest income above the line at least and every guarantee.
    inc = np.where(fail, np.minimum(inc, line), inc)
    inc = np.where(ok, np.maximum(inc, np.nextafter(line, np.inf)), inc)
    t["true_income_per_capita"] = inc
    meets = inc > line
    for g in _guarantees(policy):
        col = f"true_{g}"
        t[col] = np.where(ok, True, t[col].astype(bool).to_numpy())
        meets &= t[col].to_numpy(dtype=bool)
    if "true_poor" in t.columns:
        t["true_poor"] = ~meets
    return t


def operating_characteristic(households: pd.DataFrame, villages: pd.DataFrame, truth: pd.DataFrame,
                             county: str, year: int, design: SampleDesign | None = None, n_reps: int = 200,
                             set_rates: Mapping[str, Sequence[float]] | None = None, seed: int = 0,
                             policy: Policy | None = None, *,
                             counties: pd.DataFrame | None = None, ci_method: str | None = None) -> pd.DataFrame:
    """Probability of each verdict when the whole evaluation is replayed ``n_reps`` times.

    Each replication draws a sample (:func:`evalkit.survey.draw_sample`), surveys it from the
    truth (:func:`evalkit.survey.survey_from_truth`) and estimates the criteria
    (:func:`estimate_criteria`). With ``set_rates`` the truth is first modified, one criterion
    and one target at a time, by reassigning at random (seeded) which exited households are
    wrongly exited (which non-registered households are missed, which households approve) so
    that the true rate is the target. The same ``n_reps`` samples serve every target (common
    random numbers: the curves differ only through the truth).

    Parameters
    ----------
    households, villages, truth : pandas.DataFrame
        Register, village list and truth (synthetic).
    county : str
        County to evaluate.
    year : int
        Assessment year.
    design : SampleDesign, optional
        Sample sizes and rules (policy defaults if None); its ``confidence_level`` and
        ``singleton_method`` are used for the estimates.
    n_reps : int
        Replications per scenario.
    set_rates : mapping, optional
        ``{criterion: [target rates]}`` for 'wrongly_exited_rate', 'missed_poor_rate',
        'approval_rate'.
    seed : int
        Seed of the draws and of the truth reassignment.
    policy : Policy, optional
    counties : pandas.DataFrame, optional
        For the rural population.
    ci_method : {'korn_graubard', 'wald'}, optional
        Interval method of the uncertainty-aware verdicts; ``[survey] ci_method`` if None.

    Returns
    -------
    pandas.DataFrame
        One row per scenario and criterion (plus ``overall``): ``varied``, ``target_rate``
        (NaN without set_rates), ``criterion``, ``true_rate``, ``p_official_pass``, ``p_pass``,
        ``p_borderline``, ``p_fail``, ``p_error`` (replications where the estimate was
        impossible, e.g. no exited household sampled; counted as not passing), ``n_reps``.
        ``attrs``: thresholds, county, year, design, seed, ci_method.
    """
    pol = _policy(policy)
    county, year = str(county), int(year)
    if int(n_reps) < 1:
        raise ValueError(f"n_reps must be at least 1, got {n_reps}")
    design = SampleDesign.from_policy(pol) if design is None else design
    _, thr = _thresholds(pol, county)
    hh = _need_county(households, county)
    vil = villages.loc[villages["county_code"].astype(str).to_numpy() == county]
    ids = hh["household_id"].astype(str).to_numpy()
    truth_y = _truth_year(truth, ids, year)
    frame = _build_frame(hh, vil, year, design)
    ss = np.random.SeedSequence(seed)
    draw_ss, truth_ss = ss.spawn(2)
    samples = [_draw_from_frame(frame, np.random.default_rng(s)) for s in draw_ss.spawn(n_reps)]

    scenarios: list[tuple[str | None, float, pd.DataFrame]] = [(None, np.nan, truth_y)]
    if set_rates:
        scenarios = []
        t_rng = np.random.default_rng(truth_ss)
        for crit, targets in set_rates.items():
            for target in targets:
                scenarios.append((crit, float(target), _set_truth(truth_y, hh, year, crit, float(target), t_rng, pol)))

    # The county context (register totals, thresholds) is built once; each replication runs
    # the same per-sample code as survey_from_truth and estimate_criteria.
    ctx = _context(hh, county, year, pol, design.confidence_level, design.singleton_method, counties, ci_method)
    rows = []
    labels = [*CRITERIA, "overall"]
    for varied, target, tr in scenarios:
        truth_rates = true_rates(hh, tr, county, year, pol, counties)
        tix = _truth_index(tr, year)
        counts = {c: {"official": 0, "pass": 0, "borderline": 0, "fail": 0, "error": 0} for c in labels}
        for s in samples:
            try:
                crit = _assess(ctx, _fill_survey(s, tix, year))
            except ExitAssessmentError:
                for c in labels:
                    counts[c]["error"] += 1
                continue
            for c, v, o in zip(CRITERIA, crit["verdict"], crit["official_verdict"]):
                counts[c][v] += 1
                counts[c]["official"] += o == "pass"
            d = decision(crit)
            counts["overall"][d["overall"]] += 1
            counts["overall"]["official"] += d["official_point_rule"] == "pass"
        for c in labels:
            k = counts[c]
            rows.append({
                "varied": varied, "target_rate": target, "criterion": c,
                "true_rate": float(truth_rates[c]) if c in truth_rates else np.nan,
                "p_official_pass": k["official"] / n_reps, "p_pass": k["pass"] / n_reps,
                "p_borderline": k["borderline"] / n_reps, "p_fail": k["fail"] / n_reps,
                "p_error": k["error"] / n_reps, "n_reps": n_reps,
            })
    out = pd.DataFrame(rows)
    out.attrs = {"county": county, "year": year, "seed": int(seed), "n_reps": int(n_reps),
                 "design": design.as_dict(), "thresholds": thr, "ci_method": ctx.ci_method,
                 "sample": _sample_attrs(frame, samples[0], seed),
                 "note": ("replication r draws with the r-th child of SeedSequence(seed); the same samples "
                          "serve every scenario (common random numbers)")}
    return out


def _label(key: str, lang: str) -> str:
    from evalkit.dictionary import label

    return label(key, lang)


def plot_operating_characteristic(oc: pd.DataFrame, lang: str = "zh") -> "Figure":
    """Plot an operating characteristic from :func:`operating_characteristic`.

    With ``set_rates``: one panel per varied criterion, probability of passing (official
    point rule and uncertainty-aware rule) and of failing against the target rate, with the
    threshold marked. Without: stacked bars of the verdict probabilities per criterion.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    from evalkit.report import setup_cjk_font

    setup_cjk_font()
    thr = oc.attrs.get("thresholds", {})
    series = [("p_official_pass", "o-"), ("p_pass", "s-"), ("p_fail", "^--"), ("p_borderline", "x:")]
    varied = [v for v in oc["varied"].dropna().unique()]
    if not varied:
        fig = Figure(figsize=(7, 4), layout="constrained")
        ax = fig.add_subplot()
        sub = oc.set_index("criterion")
        x = np.arange(len(sub))
        bottom = np.zeros(len(sub))
        for col in ("p_pass", "p_borderline", "p_fail", "p_error"):
            ax.bar(x, sub[col].to_numpy(), bottom=bottom, label=_label(col, lang))
            bottom += sub[col].to_numpy()
        ax.plot(x, sub["p_official_pass"].to_numpy(), "k*", ms=10, label=_label("p_official_pass", lang))
        ax.set_xticks(x, [_label(c, lang) for c in sub.index], rotation=20)
        ax.set_ylim(0, 1)
        ax.set_ylabel(_label("probability", lang))
        ax.legend(fontsize="small")
        return fig
    fig = Figure(figsize=(5 * len(varied), 4), layout="constrained")
    axes = fig.subplots(1, len(varied), squeeze=False)[0]
    for ax, v in zip(axes, varied):
        sub = oc[(oc["varied"] == v) & (oc["criterion"] == v)].sort_values("target_rate")
        for col, style in series:
            ax.plot(sub["target_rate"], sub[col], style, label=_label(col, lang))
        if v in thr:
            ax.axvline(thr[v]["value"], color="grey", lw=1)
        ax.set_xlabel(_label(v, lang))
        ax.set_ylabel(_label("probability", lang))
        ax.set_ylim(-0.025, 1.025)  # probabilities, a little room for markers at 0 and 1
        ax.legend(fontsize="small")
    return fig
