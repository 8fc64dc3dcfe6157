"""The four exit criteria 三率一度 of one county, estimated from the evaluators' field survey.

From the ``field_survey`` table this module flags wrongly-exited and missed households, builds the
survey design (:class:`evalkit.survey.SurveyDesign`: strata = village stratum, PSU = village,
design weights) and estimates the wrongly-exited rate, the missed-poor rate, the approval rate
and the comprehensive poverty incidence (docs/policy.md §3-§4). The three rates are estimated
together, so the incidence, a linear combination of two of them, gets its SE from their joint
covariance. Intervals: :func:`evalkit.assessment.criteria_intervals` (default Korn-Graubard with the
design effect floored at that of simple random sampling without replacement) or 'wald'
(svy's t interval); see :func:`estimate_criteria`. Verdicts are in
:mod:`evalkit.assessment.verdicts`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import stdtrit

from evalkit.assessment.intervals import criteria_intervals, effective_size_cap
from evalkit.assessment.population import finite_population_columns, population_sizes
from evalkit.assessment.result import CRITERIA
from evalkit.assessment.verdicts import decision, verdicts
from evalkit.config import Policy
from evalkit.errors import ConfigError, ExitAssessmentError, SurveyError
from evalkit.measures import household_indicators
from evalkit.register import HH_STRATA, household_strata
from evalkit.survey import Estimates, SurveyDesign, korn_graubard, singleton_rule
from evalkit.text import Note

__all__ = ["CI_METHODS", "RATES", "CountyContext", "CriteriaResult", "county_context", "criterion_flags",
           "population_sizes", "finite_population_columns", "criteria_intervals",
           "register_totals", "estimate_criteria", "assess_sample", "poverty_line_for", "thresholds_for",
           "county_households"]

#: Interval methods of the three sample proportions (and, mapped, of the incidence).
CI_METHODS: tuple[str, ...] = ("korn_graubard", "korn_graubard_deff1", "korn_graubard_fpc", "wald", "logit",
                                "wilson", "wilson_deff1", "wilson_fpc")
#: The three criteria estimated from the sample (the fourth combines two of them with the register).
RATES: tuple[str, ...] = CRITERIA[:3]
_CI_ALIASES: dict[str, str] = {"korn_graubard": "korn_graubard", "korn-graubard": "korn_graubard",
                               "kg": "korn_graubard", "beta": "korn_graubard", "wald": "wald",
                               "logit": "logit", "wilson": "wilson", "korn_graubard_deff1": "korn_graubard_deff1",
                               "wilson_deff1": "wilson_deff1", "korn_graubard_fpc": "korn_graubard_fpc",
                               "wilson_fpc": "wilson_fpc"}
_EXITED, _POOR, _NONREG = HH_STRATA
_INCOME = "surveyed_income_per_capita"
_REQUIRED_SURVEY = ("county_code", "survey_year", "household_id", "village_code", "stratum",
                    "hh_stratum", "weight", "household_size", _INCOME, "approves")
_FIELDS = ("est", "se", "lci", "uci", "df")


# --------------------------------------------------------------------------------------------
# policy look-ups with the assessment's error
# --------------------------------------------------------------------------------------------
def poverty_line_for(policy: Policy, year: int) -> float:
    """The poverty line of ``year``; :class:`ExitAssessmentError` when the policy has none."""
    try:
        return policy.poverty_line(year)
    except ConfigError as e:
        raise ExitAssessmentError(f"year {year}: {e}") from None


def thresholds_for(policy: Policy, county: str) -> tuple[str, dict]:
    """(region, thresholds) of a county; :class:`ExitAssessmentError` when the policy has none."""
    try:
        region = policy.region(county)
        return region, policy.exit_thresholds(region)
    except ConfigError as e:
        raise ExitAssessmentError(f"county {county}: {e}") from None


def _ci_method(method: Any) -> str:
    key = str(method).strip().lower()
    if key not in _CI_ALIASES:
        raise ExitAssessmentError(f"unknown ci_method {method!r}; use one of {list(CI_METHODS)}")
    return _CI_ALIASES[key]


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


def county_households(households: pd.DataFrame, county: str) -> pd.DataFrame:
    """The register rows of ``county`` (the sampling frame); errors name what is missing."""
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
def criterion_flags(field_survey: pd.DataFrame, policy: Policy, year: int, *, reasons: bool = True) -> pd.DataFrame:
    """Flag wrongly-exited and missed households of a field survey, with the reasons.

    A household meets the exit standard when its surveyed per-capita income is strictly above
    the poverty line of ``year`` and every guarantee of the policy holds (docs/policy.md §2).
    ``wrongly_exited`` = exited household not meeting it; ``missed`` = non-registered household
    not meeting it.

    Returns
    -------
    pandas.DataFrame
        Aligned to ``field_survey``: identifiers, ``hh_stratum``, ``meets_standard``,
        ``wrongly_exited``, ``missed``, ``follow_up`` (either), ``reasons`` (';'-joined codes of the
        failed conditions; left out with ``reasons=False``, the estimation path) and person counts
        ``persons``, ``exited_persons``,
        ``wrongly_exited_persons``, ``non_registered_persons``, ``missed_persons``.
    """
    poverty_line_for(policy, year)  # a year without a line fails here with the assessment's error
    guar = list(policy.guarantees)
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
    # One definition of the exit standard for the panel and the survey (evalkit.measures); the
    # survey observes one year, so "stably above" is that year.
    ok = {g: _bool_col(field_survey, g, "field_survey") for g in guar}
    ind = household_indicators(
        pd.DataFrame({"household_id": np.arange(len(field_survey)), "year": int(year),
                      "income_per_capita": inc, **ok}),
        policy=policy, stable_years=1, reasons=reasons)
    fail_any = ~ind["meets_exit_standard"].to_numpy(dtype=bool)
    exited, nonreg = hs == _EXITED, hs == _NONREG
    we, mp = exited & fail_any, nonreg & fail_any
    cols = {c: field_survey[c].to_numpy()
            for c in ("county_code", "survey_year", "household_id", "village_code", "stratum")
            if c in field_survey.columns}
    why = {"reasons": ind["fail_reasons"].to_numpy(dtype=object)} if reasons else {}
    return pd.DataFrame({
        **cols, "hh_stratum": hs, "meets_standard": ~fail_any, "wrongly_exited": we, "missed": mp,
        "follow_up": we | mp, **why, "persons": size,
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
    households of the register. The non-registered population N is R - P - E (docs/policy.md §4:
    the missed-poor rate applies to every non-registered rural person); when the listed
    non-registered persons differ from it by more than 1% a note says so.

    Returns
    -------
    dict
        ``remaining_poor_persons``, ``exited_persons``, ``non_registered_persons``,
        ``listed_non_registered_persons``, ``register_persons``, ``rural_population``,
        ``rural_population_source``, ``note`` (a Note or None) and ``households`` (register households
        per household stratum: the population of each rate's domain, for the sampling fraction).
    """
    county = str(county)
    hh = county_households(households, county)
    st = household_strata(hh, year).to_numpy()
    size = pd.to_numeric(hh["household_size"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    if not (size >= 1).all():
        raise ExitAssessmentError(
            f"households of county {county}: {int((~(size >= 1)).sum())} with missing or non-positive household_size")
    tot = {k: float(size[st == k].sum()) for k in HH_STRATA}
    n_hh = {k: int((st == k).sum()) for k in HH_STRATA}
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
        note = Note("note_non_registered_from_rural", {"n": N, "listed": listed})
    return {
        "remaining_poor_persons": P, "exited_persons": E, "non_registered_persons": N,
        "listed_non_registered_persons": listed, "register_persons": float(size.sum()),
        "rural_population": rural, "rural_population_source": source, "note": note,
        "households": n_hh,
    }


# --------------------------------------------------------------------------------------------
# the county context and the typed result
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CountyContext:
    """Everything of an assessment that does not depend on the sample (built once per county)."""

    policy: Policy
    county: str
    year: int
    line: float
    region: str
    thresholds: dict
    confidence: float
    ci_method: str
    singleton: str
    frame_villages: frozenset
    register: dict
    #: Register villages (with households) per village stratum, None without the villages table.
    villages_per_stratum: dict | None = None
    #: Register households per (village_code, hh_stratum), for the second-stage correction.
    households_per_cell: pd.Series | None = None



def county_context(households: pd.DataFrame, county: str, year: int, policy: Policy, *,
                   confidence: float | None = None, singleton: Any = None,
                   counties: pd.DataFrame | None = None, ci_method: str | None = None,
                   villages: pd.DataFrame | None = None) -> CountyContext:
    """The sample-independent part of an assessment (thresholds, register totals, rules).

    With ``villages`` (the village table: village strata) the variance is that of the two-stage
    design without replacement (population sizes of :func:`population_sizes`); without it, stage 1
    is treated as with replacement (R ``survey``'s default, conservative).
    """
    county, year = str(county), int(year)
    line = poverty_line_for(policy, year)
    region, thr = thresholds_for(policy, county)
    sec = policy.survey
    conf = float(sec.confidence_level if confidence is None else confidence)
    if not 0.0 < conf < 1.0:
        raise ExitAssessmentError(f"confidence must be in (0, 1), got {conf}")
    try:
        singleton_rule(sec.singleton_method if singleton is None else singleton)
    except SurveyError as e:
        raise ExitAssessmentError(str(e)) from None
    ci = _ci_method(sec.ci_method if ci_method is None else ci_method)
    hh = county_households(households, county)
    pops = population_sizes(hh, villages, county, year) if villages is not None else (None, None)
    return CountyContext(policy, county, year, line, region, thr, conf, ci,
                         sec.singleton_method if singleton is None else singleton,
                         frozenset(hh["village_code"].astype(str).unique()),
                         register_totals(hh, county, year, counties), *pops)


@dataclass(frozen=True)
class CriteriaResult:
    """The four criteria of one county with their intervals, verdicts and how they were computed.

    ``table`` has index ``criterion`` (:data:`CRITERIA`) and columns est, se, lci, uci, n (sampled
    households in the denominator), df, threshold, direction, verdict, official_verdict.
    ``ci_method`` names each criterion's interval (the method, or for the incidence
    '<method>_of_share_above_register_floor'); ``wald_ci`` holds the Wald intervals;
    ``n_eff`` the Korn-Graubard effective sizes; ``covariance`` the joint covariance of the three
    sample rates (``covariance_keys`` order); ``notes`` are :class:`~evalkit.text.Note` objects.
    """

    table: pd.DataFrame
    county: str
    year: int
    region: str
    poverty_line: float
    confidence: float
    ci_method: dict[str, str]
    ci_method_requested: str
    wald_ci: dict[str, list[float]]
    n_eff: dict[str, float]
    n_persons: dict[str, float]
    singleton_method: str
    singleton_method_svy: str | None
    singleton_strata: list[str]
    ci_below_zero: list[str]
    ci_above_one: list[str]
    zero_se: list[str]
    covariance: np.ndarray
    covariance_keys: list[str]
    register: dict
    n_villages: int
    n_households: int
    n_strata: int
    notes: list[Note] = field(default_factory=list)

    def decision(self) -> dict[str, str]:
        """``overall`` (with uncertainty) and ``official_point_rule`` decisions of the county."""
        return decision(self.table)


# --------------------------------------------------------------------------------------------
# estimation
# --------------------------------------------------------------------------------------------
def estimate_criteria(field_survey: pd.DataFrame, households: pd.DataFrame, county: str, year: int,
                      policy: Policy, confidence: float | None = None, singleton: Any = None, *,
                      counties: pd.DataFrame | None = None, ci_method: str | None = None,
                      villages: pd.DataFrame | None = None) -> CriteriaResult:
    """Estimate the four exit criteria of one county with design-based CIs and verdicts.

    * ``wrongly_exited_rate`` = weighted wrongly-exited persons / weighted exited persons;
    * ``missed_poor_rate`` = weighted missed persons / weighted non-registered persons;
    * ``approval_rate`` = weighted approving households / weighted surveyed households;
    * ``comprehensive_poverty_rate`` = (P + r_we E + r_mp N) / R with the register totals of
      :func:`register_totals`; its SE is svy's contrast over the joint covariance of the rates.

    Intervals (``ci_method``, default the policy's ``[survey] ci_method``):

    * 'wald': svy's t intervals (R ``survey``), the three rates on their domain df
      (:meth:`evalkit.survey.SurveyDesign.domain_df`, R's ``degf`` of a subset).
    * 'korn_graubard_fpc' (policy default), 'korn_graubard_deff1', 'korn_graubard', 'logit', 'wilson',
      'wilson_deff1', 'wilson_fpc': :func:`evalkit.assessment.criteria_intervals` — for the three
      proportions the named interval (Korn-Graubard = R ``svyciprop(method="beta")``; '_deff1' caps the
      effective size at the sampled households n, '_fpc' at n / (1 - n/N) with N the domain's register
      households, :func:`evalkit.assessment.intervals.effective_size_cap`), df = domain df; where se = 0
      the effective size is that cap (the sampled HOUSEHOLDS of the domain without one). The incidence
      is P/R + (1 - P/R) q with q's interval by the same method from the joint covariance: never below the register
      floor P/R. The choice is documented in docs/methods.md (coverage benchmark).

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
    policy : Policy
        Thresholds and defaults.
    confidence : float, optional
        Two-sided CI level; the policy's ``[survey] confidence_level`` if None.
    singleton : str or svy.Singleton, optional
        Rule for a village stratum with one sampled village (R or svy names, see
        :data:`evalkit.survey.SINGLETON_RULES`); the policy's ``singleton_method`` if None.
    counties : pandas.DataFrame, optional
        For the county's ``rural_population``.
    ci_method : str, optional
        One of :data:`CI_METHODS`.
    villages : pandas.DataFrame, optional
        Village table (village strata) of the register: with it the variance is the two-stage
        one without replacement, with the register's population sizes (villages per village
        stratum, households per village x household stratum); a stratum taken whole, or a
        village drawn with probability 1 (``prob_village``), is a certainty unit without
        stage-1 variance. Without it, stage 1 is with replacement.

    Returns
    -------
    CriteriaResult

    Raises
    ------
    ExitAssessmentError
        County or year absent, no exited (or non-registered) household sampled, bad weights,
        sample villages outside the register, no poverty line or threshold configured, singleton
        strata under the 'fail' rule, or a design without degrees of freedom.
    """
    ctx = county_context(households, county, year, policy, confidence=confidence, singleton=singleton,
                         counties=counties, ci_method=ci_method, villages=villages)
    return assess_sample(ctx, field_survey)


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


def _checked_flags(ctx: CountyContext, fs: pd.DataFrame) -> tuple[pd.DataFrame, int, int]:
    outside = sorted(set(fs["village_code"].astype(str)) - ctx.frame_villages)
    if outside:
        raise ExitAssessmentError(
            f"{len(outside)} sampled village(s) of county {ctx.county} are not in the households register: {outside}")
    flags = criterion_flags(fs, ctx.policy, ctx.year, reasons=False)
    hs = flags["hh_stratum"].to_numpy()
    n_ex, n_nr = int((hs == _EXITED).sum()), int((hs == _NONREG).sum())
    for n, what, rate in ((n_ex, "exited", "wrongly-exited"), (n_nr, "non-registered", "missed-poor")):
        if n == 0:
            raise ExitAssessmentError(f"no {what} households in the field survey of county {ctx.county} in "
                                      f"{ctx.year}: the {rate} rate has no denominator")
    return flags, n_ex, n_nr


def _design(ctx: CountyContext, fs: pd.DataFrame) -> SurveyDesign:
    try:
        if ctx.villages_per_stratum is not None:
            return SurveyDesign(finite_population_columns(fs, ctx.villages_per_stratum, ctx.households_per_cell,
                                                          ctx.county), weight="weight", strata="__stratum1__",
                                psu="village_code", singleton=ctx.singleton, confidence=ctx.confidence,
                                psu_name="village", pop_psu="__N_villages__", ssu_strata="hh_stratum",
                                pop_ssu="__N_households__")
        return SurveyDesign(fs, weight="weight", strata="stratum", psu="village_code",
                            singleton=ctx.singleton, confidence=ctx.confidence, psu_name="village")
    except SurveyError as e:
        raise ExitAssessmentError(f"field survey of county {ctx.county}: {e}") from None


def _estimate_rates(ctx: CountyContext, design: SurveyDesign, flags: pd.DataFrame,
                    approves: np.ndarray) -> tuple[Estimates, np.ndarray]:
    """The three rates jointly, then the incidence through their covariance: (rates, values[4, 5])."""
    n = design.n
    try:
        rates = design.ratios({
            "wrongly_exited_rate": (flags["wrongly_exited_persons"].to_numpy(float),
                                    flags["exited_persons"].to_numpy(float)),
            "missed_poor_rate": (flags["missed_persons"].to_numpy(float),
                                 flags["non_registered_persons"].to_numpy(float)),
            "approval_rate": (approves, np.ones(n)),
        })
    except SurveyError as e:
        raise ExitAssessmentError(f"svy could not estimate county {ctx.county}: {e}") from e
    reg = ctx.register
    E, N, P, R = (reg["exited_persons"], reg["non_registered_persons"], reg["remaining_poor_persons"],
                  reg["rural_population"])
    comp = rates.combine({"wrongly_exited_rate": E / R, "missed_poor_rate": N / R}, constant=P / R)
    vals = np.array([[getattr(rates[c], f) for f in _FIELDS] for c in RATES]
                    + [[getattr(comp, f) for f in _FIELDS]], dtype=float)
    return rates, vals


def assess_sample(ctx: CountyContext, field_survey: pd.DataFrame) -> CriteriaResult:
    """The per-sample part of :func:`estimate_criteria` (the operating characteristic reuses ``ctx``)."""
    fs = _county_sample(field_survey, ctx.county, ctx.year)
    flags, n_ex, n_nr = _checked_flags(ctx, fs)
    approves = _bool_col(fs, "approves", "field_survey").astype(float)
    design = _design(ctx, fs)
    rates, vals = _estimate_rates(ctx, design, flags, approves)
    n = design.n
    # Domain degrees of freedom (R's degf on a subset, as svyciprop uses): the villages with a
    # member of the domain less their strata; the t intervals of the three rates use them.
    hs = flags["hh_stratum"].to_numpy()
    vals[:3, 4] = [design.domain_df(hs == _EXITED), design.domain_df(hs == _NONREG), vals[2, 4]]
    q = stdtrit(np.maximum(vals[:3, 4], 1.0), 1.0 - (1.0 - ctx.confidence) / 2)
    vals[:3, 2], vals[:3, 3] = vals[:3, 0] - q * vals[:3, 1], vals[:3, 0] + q * vals[:3, 1]
    wald = vals[:, 2:4].copy()
    n_units = np.array([n_ex, n_nr, n, n_ex + n_nr])
    n_eff = np.full(3, np.nan)
    methods = dict.fromkeys(CRITERIA, "wald")
    kg = ctx.ci_method != "wald"
    notes: list[Note] = []
    if kg and (vals[:, 4] > 0).all():
        # the same intervals as the operating characteristic (criteria_intervals)
        vals[:, 2], vals[:, 3] = criteria_intervals(ctx.ci_method, vals[:, 0], vals[:, 1], vals[:, 4], n_units,
                                                    ctx.register, 1.0 - ctx.confidence)
        cap, n0 = effective_size_cap(ctx.ci_method, n_units.astype(float), ctx.register)
        n_eff = korn_graubard(vals[:3, 0], vals[:3, 1], n_units[:3], vals[:3, 4], 1.0 - ctx.confidence, n0[:3],
                              None if cap is None else cap[:3])[2]
        methods = {**dict.fromkeys(RATES, ctx.ci_method),
                   "comprehensive_poverty_rate": f"{ctx.ci_method}_of_share_above_register_floor"}
    table = pd.DataFrame(vals, columns=list(_FIELDS), index=pd.Index(list(CRITERIA), name="criterion"))
    table.insert(4, "n", n_units)
    bad = ~np.isfinite(vals[:, :4]).all(axis=1) | (vals[:, 4] <= 0)
    if bad.any():
        raise ExitAssessmentError(
            f"county {ctx.county}: the design gives no usable interval for {table.index[bad].tolist()} "
            f"(design df {vals[:, 4].tolist()}; {design.n_psus} villages in {design.n_strata} strata; "
            f"sampled households {n_units.tolist()}): sample at least two villages in some stratum "
            "(and, for the Korn-Graubard interval, at least two households in each domain)")
    thr = ctx.thresholds
    table["threshold"] = [thr[c]["value"] for c in CRITERIA]
    table["direction"] = [thr[c]["direction"] for c in CRITERIA]
    table["verdict"], table["official_verdict"] = verdicts(vals[:, 0], vals[:, 2], vals[:, 3],
                                                           table["threshold"], table["direction"])
    below0 = table.index[vals[:, 2] < 0].tolist()
    above1 = table.index[vals[:, 3] > 1].tolist()
    zero_se = table.index[vals[:, 1] == 0].tolist()
    notes = _notes(kg, below0, above1, zero_se, design, ctx) + notes
    if ctx.register.get("note"):
        notes.append(ctx.register["note"])
    persons = [float(flags["exited_persons"].sum()), float(flags["non_registered_persons"].sum())]
    rule = design.singleton_svy
    return CriteriaResult(
        table=table, county=ctx.county, year=ctx.year, region=ctx.region, poverty_line=ctx.line,
        confidence=ctx.confidence, ci_method=methods, ci_method_requested=ctx.ci_method,
        wald_ci={c: [float(a), float(b)] for c, (a, b) in zip(CRITERIA, wald)},
        n_eff=dict(zip(RATES, (float(x) for x in n_eff))),
        n_persons={"wrongly_exited_rate": persons[0], "missed_poor_rate": persons[1]},
        singleton_method=design.singleton_name,
        singleton_method_svy=rule if isinstance(rule, str) or rule is None else repr(rule),
        singleton_strata=design.singleton_strata, ci_below_zero=below0, ci_above_one=above1, zero_se=zero_se,
        covariance=rates.covariance, covariance_keys=list(RATES), register=dict(ctx.register),
        n_villages=design.n_psus, n_households=int(n), n_strata=design.n_strata, notes=notes,
    )


def _notes(kg: bool, below0: list, above1: list, zero_se: list, design: SurveyDesign,
           ctx: CountyContext) -> list[Note]:
    notes = []
    if below0:
        notes.append(Note("note_ci_below_zero", {"criteria": below0}))
    if above1:
        notes.append(Note("note_ci_above_one", {"criteria": above1}))
    if zero_se:
        notes.append(Note("note_zero_se_kg" if kg else "note_zero_se_wald", {"criteria": zero_se}))
    if design.singleton_strata:
        notes.append(Note("note_singleton", {"strata": design.singleton_strata, "rule": design.singleton_name}))
    return notes
