"""The exit criteria of many simulated samples under several planted truths at once (planner, second phase).

The estimator of :func:`evalkit.assessment.replicate_criteria` (two stages without replacement with the
register's population sizes, domain df, incidence through the joint covariance), computed from per-row
arrays instead of a field survey, with only the moments the criteria need: the planner simulates
hundreds of designs, each under five truths. Tests check it equals ``replicate_criteria``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from evalkit.assessment.criteria import CountyContext
from evalkit.assessment.result import CRITERIA
from evalkit.assessment.simulation import ReplicateCriteria
from evalkit.assessment.verdicts import verdicts
from evalkit.errors import ExitAssessmentError
from evalkit.register import HH_STRATA

__all__ = ["replicate_criteria_fast", "replicate_verdicts", "pass_matrix", "decided_matrix"]

_EXITED, _POOR, _NONREG = HH_STRATA


# --------------------------------------------------------------------------------------------
def _first_stage(rep: np.ndarray, stratum: np.ndarray, village: np.ndarray, prob_village: np.ndarray,
                 villages_per_stratum: dict, n_reps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(stage-1 stratum codes, villages in the population of that stratum, village codes) of every row.

    The rule of :func:`evalkit.assessment.finite_population_columns`: a village drawn with probability
    1 in a stratum not taken whole is its own (certainty) stratum with no stage-1 variance; the
    rest of the stratum keeps N_h less those villages.
    """
    s_idx, s_lab = pd.factorize(stratum)
    v_idx = pd.factorize(village)[0].astype(np.int64)
    unknown = sorted(set(s_lab) - set(villages_per_stratum))
    if unknown:
        raise ExitAssessmentError(f"village stratum {unknown} has no village with households in the register")
    big_n = pd.Series(villages_per_stratum).reindex(s_lab).to_numpy(dtype=float)[s_idx]
    n_v = int(v_idx.max()) + 1 if len(v_idx) else 1
    key = rep.astype(np.int64) * (len(s_lab) + 1) + s_idx
    cert = prob_village >= 1.0
    pairs = np.unique(key * n_v + v_idx)
    n_samp = np.bincount(pairs // n_v, minlength=int(key.max()) + 1)[key].astype(float)
    cp = np.unique(key[cert] * n_v + v_idx[cert])
    n_cert = np.bincount(cp // n_v, minlength=int(key.max()) + 1)[key].astype(float)
    split = cert & (n_samp < big_n)
    pop1 = np.where(split, n_cert, np.where(n_samp < big_n, big_n - n_cert, big_n))
    return s_idx * 2 + split, pop1, v_idx


def _dense(*cols: np.ndarray) -> np.ndarray:
    """Dense codes of the combinations of integer columns."""
    code = np.zeros(len(cols[0]), dtype=np.int64)
    for c in cols:
        c = np.asarray(c, dtype=np.int64)
        code = code * (int(c.max()) + 1 if len(c) else 1) + c
        code = np.unique(code, return_inverse=True)[1].astype(np.int64)
    return code


def _ratio_moments(rep: np.ndarray, strata: np.ndarray, psu: np.ndarray, weight: np.ndarray, num: np.ndarray,
                   den: np.ndarray, n_reps: int, pop_psu: np.ndarray, ssu: np.ndarray,
                   pop_ssu: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Ratios, their variances and the (k=0, k=1) covariance of every triple of columns, per replicate.

    The two-stage linearized variance of :func:`evalkit.survey.replicates.ratio_replicates` (stage 1
    with fpc 1 - n_h/N_h, stage 2 with 1 - m/M times the stage-1 fraction), computed only for the
    moments the criteria need (the full covariance of 3S columns is S times more work).
    """
    w = np.asarray(weight, dtype=float)
    Y = np.stack([np.bincount(rep, w * num[:, j], minlength=n_reps) for j in range(num.shape[1])], axis=1)
    X = np.stack([np.bincount(rep, w * den[:, j], minlength=n_reps) for j in range(den.shape[1])], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        est = Y / X
        z = np.nan_to_num(w[:, None] * (num - est[rep] * den) / X[rep])
    h = _dense(rep, strata)
    p = _dense(h, psu)
    n_p = int(p.max()) + 1
    h_of_p, rep_of_p = np.zeros(n_p, dtype=np.int64), np.zeros(n_p, dtype=np.int64)
    h_of_p[p], rep_of_p[p] = h, rep
    n_h = np.bincount(h_of_p).astype(float)
    N_h = np.zeros(len(n_h))
    N_h[h] = pop_psu
    with np.errstate(divide="ignore", invalid="ignore"):
        scale1 = np.where(n_h > 1, (1.0 - n_h / N_h) * n_h / (n_h - 1.0), 0.0)[h_of_p]
    c = _dense(p, pd.factorize(ssu)[0])
    m = np.bincount(c).astype(float)
    M = np.zeros(len(m))
    M[c] = pop_ssu
    with np.errstate(divide="ignore", invalid="ignore"):
        scale2 = np.where(m > 1, (1.0 - m / M) * m / (m - 1.0), 0.0)[c] * (n_h / N_h)[h]
    d1 = np.empty((n_p, z.shape[1]))
    d2 = np.empty_like(z)
    for j in range(z.shape[1]):
        T = np.bincount(p, z[:, j], minlength=n_p)
        d1[:, j] = T - (np.bincount(h_of_p, T) / n_h)[h_of_p]
        d2[:, j] = z[:, j] - (np.bincount(c, z[:, j]) / m)[c]
    var = np.stack([np.bincount(rep_of_p, scale1 * d1[:, j] ** 2, minlength=n_reps)
                    + np.bincount(rep, scale2 * d2[:, j] ** 2, minlength=n_reps) for j in range(z.shape[1])], axis=1)
    cov = np.stack([np.bincount(rep_of_p, scale1 * d1[:, j] * d1[:, j + 1], minlength=n_reps)
                    + np.bincount(rep, scale2 * d2[:, j] * d2[:, j + 1], minlength=n_reps)
                    for j in range(0, z.shape[1], 3)], axis=1)
    h_rep = np.zeros(len(n_h), dtype=np.int64)
    h_rep[h] = rep
    df = np.bincount(rep_of_p, minlength=n_reps) - np.bincount(h_rep, minlength=n_reps)
    return est, var, cov, df.astype(np.int64)


def _domain_df(rep: np.ndarray, strata: np.ndarray, psu: np.ndarray, member: np.ndarray, n_reps: int) -> np.ndarray:
    """PSUs with a member less their strata, per replicate (R's degf of a subset)."""
    r, s, p = rep[member].astype(np.int64), strata[member].astype(np.int64), psu[member].astype(np.int64)
    ns, npsu = int(strata.max()) + 1 if len(strata) else 1, int(psu.max()) + 1 if len(psu) else 1
    rs = np.unique(r * ns + s)
    rp = np.unique((r * ns + s) * npsu + p)
    return (np.bincount(rp // npsu // ns, minlength=n_reps) - np.bincount(rs // ns, minlength=n_reps)).astype(float)


def replicate_criteria_fast(ctx: CountyContext, rep: np.ndarray, village: np.ndarray, stratum: np.ndarray,
                            prob_village: np.ndarray, weight: np.ndarray, hh_stratum: np.ndarray, size: np.ndarray,
                            pop_households: np.ndarray, fail: np.ndarray, approves: np.ndarray, n_reps: int,
                            alpha: float | None = None) -> list[ReplicateCriteria]:
    """The criteria of stacked simulated samples under S planted truths at once (one per column).

    Same estimator as :func:`evalkit.assessment.replicate_criteria` (two stages without replacement,
    domain df, incidence through the joint covariance; tests compare the two), from per-row arrays
    instead of a field survey: ``fail`` and ``approves`` are (rows, S) booleans of the planted truths,
    ``pop_households`` the register households of each row's village x household stratum.
    """
    rep = np.asarray(rep, dtype=np.int64)
    fail, approves = np.atleast_2d(fail.T).T, np.atleast_2d(approves.T).T
    n_s = fail.shape[1]
    ex, nr = hh_stratum == _EXITED, hh_stratum == _NONREG
    strata, pop1, psu = _first_stage(rep, stratum, village, prob_village, ctx.villages_per_stratum, n_reps)
    num = np.concatenate([np.column_stack([size * ex * fail[:, s], size * nr * fail[:, s], approves[:, s]])
                          for s in range(n_s)], axis=1).astype(float)
    den = np.tile(np.column_stack([size * ex, size * nr, np.ones(len(rep))]), (1, n_s)).astype(float)
    est_all, var_all, cov_wm, design_df = _ratio_moments(rep, strata, psu, weight, num, den, n_reps, pop1,
                                                         hh_stratum, pop_households)
    reg = ctx.register
    E, N, P, R = (reg["exited_persons"], reg["non_registered_persons"], reg["remaining_poor_persons"],
                  reg["rural_population"])
    a = np.array([E / R, N / R, 0.0])
    n_ex = np.bincount(rep, ex, minlength=n_reps)
    n_nr = np.bincount(rep, nr, minlength=n_reps)
    n_all = np.bincount(rep, minlength=n_reps)
    dd = np.column_stack([_domain_df(rep, strata, psu, ex, n_reps), _domain_df(rep, strata, psu, nr, n_reps),
                          design_df, design_df])
    ok = (n_ex > 0) & (n_nr > 0) & (design_df > 0)
    n = np.column_stack([n_ex, n_nr, n_all, n_ex + n_nr]).astype(float)
    al = 1.0 - ctx.confidence if alpha is None else float(alpha)
    out = []
    for s in range(n_s):
        e3, v3 = est_all[:, 3 * s:3 * s + 3], var_all[:, 3 * s:3 * s + 3]
        est = np.column_stack([e3, P / R + e3 @ a])
        var = np.column_stack([v3, a[0] ** 2 * v3[:, 0] + a[1] ** 2 * v3[:, 1] + 2 * a[0] * a[1] * cov_wm[:, s]])
        out.append(ReplicateCriteria(est, np.sqrt(np.maximum(var, 0.0)), dd, n, ok, dict(reg), al))
    return out


def replicate_verdicts(ctx: CountyContext, rc: ReplicateCriteria) -> tuple[np.ndarray, np.ndarray]:
    """(R, 4) verdicts of each criterion with its interval, and (R,) booleans: the replicate's
    estimates and intervals are usable (every criterion estimable, positive df, finite bounds)."""
    lo, hi = rc.intervals(ctx.ci_method)
    ok = rc.ok & (rc.df > 0).all(axis=1) & np.isfinite(lo).all(axis=1) & np.isfinite(hi).all(axis=1)
    thr = ctx.thresholds
    v, _ = verdicts(rc.est, lo, hi, np.array([thr[c]["value"] for c in CRITERIA])[None, :],
                    np.array([thr[c]["direction"] for c in CRITERIA], dtype=object)[None, :])
    return v, ok


def pass_matrix(ctx: CountyContext, rc: ReplicateCriteria) -> np.ndarray:
    """(R, 5) booleans: each criterion passes (with its interval), then the county (all four)."""
    v, ok = replicate_verdicts(ctx, rc)
    p = (v == "pass") & ok[:, None]
    return np.column_stack([p, p.all(axis=1)])


def decided_matrix(ctx: CountyContext, rc: ReplicateCriteria) -> np.ndarray:
    """(R,) booleans: the county's verdict is decided (all pass, or one fails) rather than borderline."""
    v, ok = replicate_verdicts(ctx, rc)
    return ok & ((v == "pass").all(axis=1) | (v == "fail").any(axis=1))
