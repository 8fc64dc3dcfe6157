"""The operating characteristic: the whole evaluation replayed on a county whose truth is known.

Each replication draws a sample, surveys it from the (synthetic) truth and estimates the criteria
with the same estimator as a real assessment (every replicate at once, NumPy); with ``set_rates``
the truth is first modified so that a criterion's true rate is a chosen target. The result is the
probability of each verdict.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from evalkit.assessment.criteria import (
    CRITERIA,
    CountyContext,
    county_context,
    county_households,
    criteria_intervals,
    criterion_flags,
    finite_population_columns,
    poverty_line_for,
    register_totals,
    thresholds_for,
)
from evalkit.assessment.verdicts import verdicts
from evalkit.config import Policy
from evalkit.errors import ExitAssessmentError
from evalkit.register import HH_STRATA, household_strata
from evalkit.survey import (
    SampleDesign,
    SampleFrame,
    build_frame,
    domain_df_replicates,
    fill_survey,
    ratio_replicates,
    sample_attrs,
    truth_index,
)
from evalkit.survey.replicates import ReplicateDraws, draw_replicates

__all__ = ["true_rates", "set_truth", "operating_characteristic", "ReplicateCriteria", "replicate_criteria",
           "stack_samples",
           "draws_criteria", "draws_sample"]

_EXITED, _NONREG = HH_STRATA[0], HH_STRATA[2]


@dataclass(frozen=True)
class ReplicateCriteria:
    """The four criteria of R simulated samples: arrays (R, 4) in :data:`CRITERIA` order.

    ``ok`` (R,) is False where a replicate has no exited or no non-registered household (the
    estimate is impossible, as :func:`assess_sample` raises).
    """

    est: np.ndarray
    se: np.ndarray
    df: np.ndarray
    n: np.ndarray
    ok: np.ndarray
    register: dict
    alpha: float

    def intervals(self, method: str) -> tuple[np.ndarray, np.ndarray]:
        """(lci, uci) of every replicate by :func:`criteria_intervals`."""
        return criteria_intervals(method, self.est, self.se, self.df, self.n, self.register, self.alpha)


def stack_samples(samples: Sequence[pd.DataFrame]) -> tuple[pd.DataFrame, np.ndarray]:
    """One frame of several samples and the replicate of each row."""
    rep = np.repeat(np.arange(len(samples)), [len(x) for x in samples])
    return pd.concat(samples, ignore_index=True), rep


def replicate_criteria(ctx: CountyContext, field_survey: pd.DataFrame, rep: np.ndarray,
                       n_reps: int) -> ReplicateCriteria:
    """The criteria of many simulated field surveys of ``ctx``'s county at once.

    ``field_survey`` stacks the replicates' surveys (:func:`stack_samples` then
    :func:`evalkit.survey.fill_survey`); ``rep`` gives each row's replicate. Same estimates,
    covariance, domain df as :func:`assess_sample` (the two-stage design without replacement when
    ``ctx`` has the population sizes), computed for all replicates together by
    :func:`evalkit.survey.ratio_replicates`.
    """
    rep = np.asarray(rep, dtype=np.int64)
    flags = criterion_flags(field_survey, ctx.policy, ctx.year, reasons=False)
    hs = flags["hh_stratum"].to_numpy()
    approves = field_survey["approves"].astype(bool).to_numpy(dtype=float)
    num = np.column_stack([flags["wrongly_exited_persons"], flags["missed_persons"], approves])
    den = np.column_stack([flags["exited_persons"], flags["non_registered_persons"], np.ones(len(rep))])
    if ctx.villages_per_stratum is not None:
        fs = finite_population_columns(field_survey, ctx.villages_per_stratum, ctx.households_per_cell, ctx.county,
                                       rep)
        strata = fs["__stratum1__"].to_numpy()
        pops = {"pop_psu": fs["__N_villages__"].to_numpy(), "ssu_strata": hs,
                "pop_ssu": fs["__N_households__"].to_numpy()}
    else:
        strata, pops = field_survey["stratum"].astype(str).to_numpy(), {}
    psu = field_survey["village_code"].astype(str).to_numpy()
    return _criteria(ctx, rep, n_reps, (hs == _EXITED, hs == _NONREG), num, den, strata, psu,
                     field_survey["weight"].to_numpy(dtype=float), pops)


def _criteria(ctx: CountyContext, rep: np.ndarray, n_reps: int, domains: tuple[np.ndarray, np.ndarray],
              num: np.ndarray, den: np.ndarray, strata: np.ndarray, psu: np.ndarray, weight: np.ndarray,
              pops: dict) -> ReplicateCriteria:
    rr = ratio_replicates(rep, strata, psu, weight, num, den, n_reps=n_reps, **pops)
    reg = ctx.register
    E, N, P, R = (reg["exited_persons"], reg["non_registered_persons"], reg["remaining_poor_persons"],
                  reg["rural_population"])
    a = np.array([E / R, N / R, 0.0])
    est = np.column_stack([rr.est, P / R + rr.est @ a])
    var = np.column_stack([np.diagonal(rr.cov, axis1=1, axis2=2), np.einsum("i,rij,j->r", a, rr.cov, a)])
    ex, nr = domains
    n_ex = np.bincount(rep, ex, minlength=n_reps)
    n_nr = np.bincount(rep, nr, minlength=n_reps)
    n_all = np.bincount(rep, minlength=n_reps)
    df = np.column_stack([domain_df_replicates(rep, strata, psu, ex, n_reps),
                          domain_df_replicates(rep, strata, psu, nr, n_reps), rr.df, rr.df])
    ok = (n_ex > 0) & (n_nr > 0) & (rr.df > 0)
    return ReplicateCriteria(est, np.sqrt(np.maximum(var, 0.0)), df.astype(float),
                             np.column_stack([n_ex, n_nr, n_all, n_ex + n_nr]).astype(float), ok, dict(reg),
                             1.0 - ctx.confidence)


def draws_sample(frame: SampleFrame, draws: ReplicateDraws, r: int | None = None) -> pd.DataFrame:
    """Replicate ``r`` of :func:`evalkit.survey.replicates.draw_replicates` as a sample table
    (:data:`evalkit.survey.SAMPLE_COLUMNS`, as :func:`evalkit.survey.draw_sample` returns); with
    ``r=None`` every replicate, stacked, with a leading column ``rep``."""
    keep = np.ones(len(draws.rep), dtype=bool) if r is None else draws.rep == r
    h = frame.households.to_pandas().iloc[draws.row[keep]]
    strat = dict(zip(frame.villages["village_code"].to_list(), frame.villages["stratum"].to_list()))
    out = pd.DataFrame({
        "county_code": h["county_code"].to_numpy(), "village_code": h["village_code"].to_numpy(),
        "household_id": h["household_id"].to_numpy(), "stratum": h["village_code"].map(strat).to_numpy(),
        "hh_stratum": h["hh_stratum"].to_numpy(), "prob_village": draws.prob_village[keep],
        "prob_household": draws.prob_household[keep], "weight": draws.weight[keep],
        "household_size": h["household_size"].to_numpy()})
    if r is None:
        return out.assign(rep=draws.rep)[["rep", *out.columns]].sort_values(
            ["rep", "county_code", "village_code", "household_id"], ignore_index=True)
    return out.sort_values(["county_code", "village_code", "household_id"], ignore_index=True)


def draws_criteria(ctx: CountyContext, frame: SampleFrame, draws: ReplicateDraws,
                   truth_y: pd.DataFrame) -> ReplicateCriteria:
    """The criteria of every replicate of ``draws`` (all at once) when the county's truth is ``truth_y``.

    Each household's flags are taken once from the truth (:func:`criterion_flags` on the whole
    frame) and gathered for the sampled rows; the estimator is that of :func:`replicate_criteria`
    and :func:`assess_sample` (a test checks equality with the svy estimate replicate by replicate).
    """
    hh = frame.households.to_pandas()
    full = pd.DataFrame({"county_code": hh["county_code"].to_numpy(), "village_code": hh["village_code"].to_numpy(),
                         "household_id": hh["household_id"].to_numpy(), "stratum": "",
                         "hh_stratum": hh["hh_stratum"].to_numpy(), "prob_village": 1.0, "prob_household": 1.0,
                         "weight": 1.0, "household_size": hh["household_size"].to_numpy()})
    fs = fill_survey(full, truth_index(truth_y, frame.year), frame.year)
    flags = criterion_flags(fs, ctx.policy, ctx.year, reasons=False)
    approves = fs["approves"].astype(bool).to_numpy(dtype=float)
    num_h = np.column_stack([flags["wrongly_exited_persons"], flags["missed_persons"], approves])
    den_h = np.column_stack([flags["exited_persons"], flags["non_registered_persons"], np.ones(len(hh))])
    row = draws.row
    v_codes = frame.villages["village_code"].to_numpy().astype(str)
    h_v = pd.Index(v_codes).get_indexer(hh["village_code"].to_numpy().astype(str))[row]
    hs = hh["hh_stratum"].to_numpy().astype(str)
    v_strat = frame.villages["stratum"].to_numpy().astype(str)
    strata, pops = _stage_columns(ctx, frame, draws, h_v, v_strat)
    hs_code = pd.factorize(hs)[0]  # integer strata: millions of stacked rows compare fast
    if pops:
        cells = pd.MultiIndex.from_arrays([hh["village_code"].astype(str).to_numpy(), hs])
        pops["pop_ssu"] = ctx.households_per_cell.reindex(cells).to_numpy(dtype=float)[row]
        pops["ssu_strata"] = hs_code[row]
    domains = ((hs == _EXITED)[row], (hs == _NONREG)[row])
    return _criteria(ctx, draws.rep, draws.n_reps, domains, num_h[row], den_h[row], strata, h_v, draws.weight,
                     pops)


def _stage_columns(ctx: CountyContext, frame: SampleFrame, draws: ReplicateDraws, h_v: np.ndarray,
                   v_strat: np.ndarray) -> tuple[np.ndarray, dict]:
    """Stage-1 strata (integer codes) and population sizes of the sampled rows, as
    :func:`finite_population_columns` (a PPS certainty village apart when its stratum is not taken whole)."""
    s_code, s_lab = pd.factorize(v_strat)
    if ctx.villages_per_stratum is None:
        return s_code[h_v], {}
    n_pop = pd.Series(ctx.villages_per_stratum).reindex(s_lab).to_numpy(dtype=float)
    n_samp = np.array([frame.n_villages.get((ctx.county, s), 0) for s in s_lab], dtype=float)
    cert_v = np.zeros(len(v_strat), dtype=bool)
    cert_v[h_v[draws.prob_village >= 1.0]] = True   # deterministic: PPS certainty depends on sizes alone
    n_cert = np.bincount(s_code[cert_v], minlength=len(s_lab)).astype(float)
    part = n_samp < n_pop
    split = cert_v & part[s_code]
    stratum1 = np.where(split, s_code + len(s_lab), s_code)
    pop1 = np.where(split, n_cert[s_code], np.where(part[s_code], (n_pop - n_cert)[s_code], n_pop[s_code]))
    return stratum1[h_v], {"pop_psu": pop1[h_v]}


def _truth_year(truth: pd.DataFrame, ids: np.ndarray, year: int) -> pd.DataFrame:
    t = truth.loc[truth["year"].to_numpy() == year]
    t = t.loc[pd.Index(ids).get_indexer(t["household_id"].astype(str).to_numpy()) >= 0]
    if len(t) != len(ids):
        raise ExitAssessmentError(f"truth of {year} covers {len(t)} of the county's {len(ids)} households")
    return t


def true_rates(households: pd.DataFrame, truth: pd.DataFrame, county: str, year: int,
               policy: Policy, counties: pd.DataFrame | None = None) -> pd.Series:
    """The county's true criteria in ``year`` from the (synthetic) truth table.

    Same definitions as :func:`estimate_criteria` applied to every household of the county
    (true income and guarantees; ``true_approves`` for approval, household-based).

    Returns
    -------
    pandas.Series
        Indexed by :data:`CRITERIA`.
    """
    pol = policy
    county = str(county)
    line = poverty_line_for(pol, year)
    hh = county_households(households, county)
    ids = hh["household_id"].astype(str).to_numpy()
    t = _truth_year(truth, ids, year)
    t = t.assign(household_id=t["household_id"].astype(str)).set_index("household_id").reindex(ids)
    meets = t["true_income_per_capita"].to_numpy(dtype=float) > line
    for g in pol.guarantees:
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


def set_truth(truth_y: pd.DataFrame, hh: pd.DataFrame, year: int, criterion: str, target: float,
              rng: np.random.Generator, policy: Policy, *, side: str = "nearest") -> pd.DataFrame:
    """Reassign at random which households fail so that the true rate is as close as possible to
    ``target`` (households are indivisible, so persons are matched to the nearest household).

    ``side='failing'`` puts the true rate at or beyond the target on the failing side (at least the
    target for the maximum rates, below it for approval): a pass is then a wrong decision even
    when the sample is nearly a census.
    """
    if not 0.0 <= target <= 1.0:
        raise ExitAssessmentError(f"target rate must be in [0, 1], got {target}")
    t = truth_y.copy()
    ids_t = t["household_id"].astype(str).to_numpy()
    st = household_strata(hh, year).to_numpy()
    ids = hh["household_id"].astype(str).to_numpy()
    size = pd.to_numeric(hh["household_size"]).to_numpy(dtype=float)
    pos = pd.Index(ids).get_indexer(ids_t)  # each truth row's household in the register (-1: none)

    def rows_of(chosen: np.ndarray) -> np.ndarray:
        mark = np.zeros(len(ids) + 1, dtype=bool)
        mark[chosen] = True
        return mark[pos]  # pos -1 reads the last, always False, slot

    if criterion == "approval_rate":
        perm = rng.permutation(len(ids))
        k = int(np.ceil(target * len(ids)) - 1) if side == "failing" else int(np.rint(target * len(ids)))
        t["true_approves"] = rows_of(perm[:k])
        return t
    if criterion not in ("wrongly_exited_rate", "missed_poor_rate"):
        raise ExitAssessmentError(f"set_rates supports 'wrongly_exited_rate', 'missed_poor_rate' and 'approval_rate', "
                                  f"not {criterion!r} (the comprehensive incidence follows from the other two)")
    grp = st == (_EXITED if criterion == "wrongly_exited_rate" else _NONREG)
    gidx, gsize = np.flatnonzero(grp), size[grp]
    perm = rng.permutation(len(gidx))
    cum = np.concatenate([[0.0], np.cumsum(gsize[perm])])
    k = (int(np.searchsorted(cum, target * gsize.sum() * (1 - 1e-12))) if side == "failing"
         else int(np.argmin(np.abs(cum - target * gsize.sum()))))
    fail = rows_of(gidx[perm[:k]])
    ok = rows_of(gidx[perm[k:]])
    line = poverty_line_for(policy, year)
    inc = t["true_income_per_capita"].to_numpy(dtype=float)
    # Failing households fail through income (at the line is not above it); passing ones get
    # the smallest income above the line at least and every guarantee.
    inc = np.where(fail, np.minimum(inc, line), inc)
    inc = np.where(ok, np.maximum(inc, np.nextafter(line, np.inf)), inc)
    t["true_income_per_capita"] = inc
    meets = inc > line
    for g in policy.guarantees:
        col = f"true_{g}"
        t[col] = np.where(ok, True, t[col].astype(bool).to_numpy())
        meets &= t[col].to_numpy(dtype=bool)
    if "true_poor" in t.columns:
        t["true_poor"] = ~meets
    return t


def operating_characteristic(households: pd.DataFrame, villages: pd.DataFrame, truth: pd.DataFrame,
                             county: str, year: int, design: SampleDesign | None = None, n_reps: int = 200,
                             set_rates: Mapping[str, Sequence[float]] | None = None, seed: int = 0,
                             *, policy: Policy,
                             counties: pd.DataFrame | None = None, ci_method: str | None = None) -> pd.DataFrame:
    """Probability of each verdict when the whole evaluation is replayed ``n_reps`` times.

    The replications are drawn all at once (:func:`evalkit.survey.replicates.draw_replicates`: the
    design of :func:`evalkit.survey.draw_sample`, with svy's inclusion probabilities), surveyed from
    the truth and estimated all at once (:func:`draws_criteria`: the estimator of
    :func:`estimate_criteria`, equal to it replicate by replicate). With ``set_rates`` the truth is
    first modified, one criterion and one target at a time, by reassigning at random (seeded) which
    exited households are wrongly exited (which non-registered households are missed, which households approve) so
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
    pol = policy
    county, year = str(county), int(year)
    if int(n_reps) < 1:
        raise ExitAssessmentError(f"n_reps must be at least 1, got {n_reps}")
    design = SampleDesign.from_policy(pol) if design is None else design
    _, thr = thresholds_for(pol, county)
    hh = county_households(households, county)
    vil = villages.loc[villages["county_code"].astype(str).to_numpy() == county]
    ids = hh["household_id"].astype(str).to_numpy()
    truth_y = _truth_year(truth, ids, year)
    frame = build_frame(hh, vil, year, design)
    ss = np.random.SeedSequence(seed)
    draw_ss, truth_ss = ss.spawn(2)
    # every replicate drawn at once (NumPy); same design and inclusion probabilities as svy's draws
    draws = draw_replicates(frame, int(n_reps), np.random.default_rng(draw_ss))

    scenarios: list[tuple[str | None, float, pd.DataFrame]] = [(None, np.nan, truth_y)]
    if set_rates:
        scenarios = []
        t_rng = np.random.default_rng(truth_ss)
        for crit, targets in set_rates.items():
            for target in targets:
                scenarios.append((crit, float(target), set_truth(truth_y, hh, year, crit, float(target), t_rng, pol)))

    # The county context (register totals, thresholds) is built once; each replication runs
    # the same per-sample code as survey_from_truth and estimate_criteria.
    ctx = county_context(hh, county, year, pol, confidence=design.confidence_level,
                         singleton=design.singleton_method, counties=counties, ci_method=ci_method,
                         villages=vil)
    rows = []
    for varied, target, tr in scenarios:
        truth_rates = true_rates(hh, tr, county, year, pol, counties)
        counts = _verdict_counts(ctx, draws_criteria(ctx, frame, draws, tr))
        for c, k in counts.items():
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
                 "sample": sample_attrs(frame, draws_sample(frame, draws, 0), seed),
                 "note": ("the replications are drawn at once (evalkit.survey.replicates.draw_replicates) from the "
                          "first child of SeedSequence(seed); the same samples serve every scenario (common "
                          "random numbers)")}
    return out


def _verdict_counts(ctx: CountyContext, rc: ReplicateCriteria) -> dict[str, dict[str, int]]:
    """How often each verdict (and the official pass) occurs over the replicated samples.

    All replicates at once (:func:`replicate_criteria`); a replicate where :func:`assess_sample`
    would raise (no exited or non-registered household, no degrees of freedom) is an 'error'.
    """
    lo, hi = rc.intervals(ctx.ci_method)
    ok = rc.ok & (rc.df > 0).all(axis=1) & np.isfinite(lo).all(axis=1) & np.isfinite(hi).all(axis=1)
    thr = ctx.thresholds
    v, o = verdicts(rc.est, lo, hi, np.array([thr[c]["value"] for c in CRITERIA])[None, :],
                    np.array([thr[c]["direction"] for c in CRITERIA], dtype=object)[None, :])
    overall = np.where((v == "fail").any(axis=1), "fail", np.where((v == "pass").all(axis=1), "pass", "borderline"))
    official = (o == "pass").all(axis=1)
    counts = {}
    for i, c in enumerate([*CRITERIA, "overall"]):
        vi, oi = (v[:, i], o[:, i] == "pass") if c != "overall" else (overall, official)
        counts[c] = {"official": int((oi & ok).sum()), "pass": int(((vi == "pass") & ok).sum()),
                     "borderline": int(((vi == "borderline") & ok).sum()), "fail": int(((vi == "fail") & ok).sum()),
                     "error": int((~ok).sum())}
    return counts
