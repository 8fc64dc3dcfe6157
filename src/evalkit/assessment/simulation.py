"""The operating characteristic: the whole evaluation replayed on a county whose truth is known.

Each replication draws a sample, surveys it from the (synthetic) truth and estimates the criteria
with the same code as a real assessment; with ``set_rates`` the truth is first modified so that a
criterion's true rate is a chosen target. The result is the probability of each verdict.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from evalkit.assessment.criteria import (
    CRITERIA,
    CountyContext,
    assess_sample,
    county_context,
    county_households,
    poverty_line_for,
    register_totals,
    thresholds_for,
)
from evalkit.assessment.verdicts import decision
from evalkit.config import Policy
from evalkit.errors import ExitAssessmentError
from evalkit.register import HH_STRATA, household_strata
from evalkit.survey import SampleDesign, build_frame, draw_from_frame, fill_survey, sample_attrs, truth_index

__all__ = ["true_rates", "set_truth", "operating_characteristic"]

_EXITED, _NONREG = HH_STRATA[0], HH_STRATA[2]


def _truth_year(truth: pd.DataFrame, ids: np.ndarray, year: int) -> pd.DataFrame:
    t = truth.loc[truth["year"].to_numpy() == year]
    t = t.loc[t["household_id"].astype(str).isin(ids).to_numpy()]
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
               rng: np.random.Generator, policy: Policy) -> pd.DataFrame:
    """Reassign at random which households fail so that the true rate is as close as possible to
    ``target`` (households are indivisible, so persons are matched to the nearest household)."""
    if not 0.0 <= target <= 1.0:
        raise ExitAssessmentError(f"target rate must be in [0, 1], got {target}")
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
        raise ExitAssessmentError(f"set_rates supports 'wrongly_exited_rate', 'missed_poor_rate' and 'approval_rate', "
                                  f"not {criterion!r} (the comprehensive incidence follows from the other two)")
    grp = st == (_EXITED if criterion == "wrongly_exited_rate" else _NONREG)
    gid, gsize = ids[grp], size[grp]
    perm = rng.permutation(len(gid))
    cum = np.concatenate([[0.0], np.cumsum(gsize[perm])])
    k = int(np.argmin(np.abs(cum - target * gsize.sum())))
    fail = np.isin(ids_t, gid[perm[:k]])
    ok = np.isin(ids_t, gid[perm[k:]])
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
    samples = [draw_from_frame(frame, np.random.default_rng(s)) for s in draw_ss.spawn(n_reps)]

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
                         singleton=design.singleton_method, counties=counties, ci_method=ci_method)
    rows = []
    for varied, target, tr in scenarios:
        truth_rates = true_rates(hh, tr, county, year, pol, counties)
        counts = _verdict_counts(ctx, samples, truth_index(tr, year), year)
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
                 "sample": sample_attrs(frame, samples[0], seed),
                 "note": ("replication r draws with the r-th child of SeedSequence(seed); the same samples "
                          "serve every scenario (common random numbers)")}
    return out


def _verdict_counts(ctx: CountyContext, samples: list[pd.DataFrame], tix: pd.DataFrame,
                    year: int) -> dict[str, dict[str, int]]:
    """How often each verdict (and the official pass) occurs over the replicated samples."""
    labels = [*CRITERIA, "overall"]
    counts = {c: {"official": 0, "pass": 0, "borderline": 0, "fail": 0, "error": 0} for c in labels}
    for s in samples:
        try:
            crit = assess_sample(ctx, fill_survey(s, tix, year)).table
        except ExitAssessmentError:  # e.g. no exited household sampled: counted as not passing
            for c in labels:
                counts[c]["error"] += 1
            continue
        for c, v, o in zip(CRITERIA, crit["verdict"], crit["official_verdict"]):
            counts[c][v] += 1
            counts[c]["official"] += o == "pass"
        d = decision(crit)
        counts["overall"][d["overall"]] += 1
        counts["overall"]["official"] += d["official_point_rule"] == "pass"
    return counts
