"""Many simulated samples at once: ratios and their linearized covariance with a replicate dimension.

The operating characteristic and the coverage benchmark estimate the same criteria on hundreds of
simulated samples of one county. svy can take a stacked frame with the replicate as a domain
(``by=``), but it then computes the full covariance between all domains, which grows with the
square of the replicates (400 replicates of a demo county: 11 s for one ratio). Here every
replicate's sample sums are taken at once with ``numpy.bincount`` over (replicate, stratum, PSU)
and (replicate, PSU, second-stage stratum) codes: the same Taylor-linearized variance as
:class:`evalkit.survey.SurveyDesign` (R's multistage estimator; tests check the two agree to 1e-10
replicate by replicate). Singleton strata contribute nothing (the 'certainty' rule). For
simulation only; a real assessment goes through :class:`~evalkit.survey.SurveyDesign` and svy.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from evalkit.errors import SurveyError

__all__ = ["ReplicateRatios", "ratio_replicates", "domain_df_replicates"]


@dataclass(frozen=True)
class ReplicateRatios:
    """Ratios of every replicate: ``est`` (R, k), ``cov`` (R, k, k), design ``df`` (R,)."""

    est: np.ndarray
    cov: np.ndarray
    df: np.ndarray

    @property
    def se(self) -> np.ndarray:
        """Standard errors (R, k)."""
        return np.sqrt(np.maximum(np.diagonal(self.cov, axis1=1, axis2=2), 0.0))


def _codes(*cols: np.ndarray) -> np.ndarray:
    """Dense codes 0..G-1 of the distinct combinations of ``cols`` (integer arithmetic, no tuples)."""
    code = np.zeros(len(cols[0]), dtype=np.int64)
    for c in cols:
        k, lab = pd.factorize(np.asarray(c))
        code = code * (len(lab) + 1) + k
        code = pd.factorize(code)[0].astype(np.int64)  # keep the product small
    return code


def _cross(d: np.ndarray, scale: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """sum over rows of scale * d d^T, by group -> (n_groups, k, k)."""
    k = d.shape[1]
    out = np.empty((n_groups, k, k))
    for a in range(k):
        for b in range(a, k):
            out[:, a, b] = out[:, b, a] = np.bincount(group, scale * d[:, a] * d[:, b], minlength=n_groups)
    return out


def ratio_replicates(rep: np.ndarray, strata: np.ndarray, psu: np.ndarray, weight: np.ndarray,
                     num: np.ndarray, den: np.ndarray, *, n_reps: int | None = None,
                     pop_psu: np.ndarray | None = None, ssu_strata: np.ndarray | None = None,
                     pop_ssu: np.ndarray | None = None) -> ReplicateRatios:
    """Ratios sum(w num) / sum(w den) of every replicate with their linearized covariance.

    Parameters
    ----------
    rep : array of int
        Replicate 0..R-1 of each row of the stacked samples.
    strata, psu, weight : arrays
        Design columns (labels are taken within the replicate).
    num, den : arrays (rows, k)
        Numerators and denominators of the k ratios.
    n_reps : int, optional
        Number of replicates (default max(rep) + 1).
    pop_psu, ssu_strata, pop_ssu : arrays, optional
        As :class:`~evalkit.survey.SurveyDesign`: PSUs in the population of the stratum; the
        second-stage stratum and its population size (two stages without replacement).

    Returns
    -------
    ReplicateRatios
    """
    rep = np.asarray(rep, dtype=np.int64)
    R = int(rep.max()) + 1 if n_reps is None else int(n_reps)
    num, den = np.atleast_2d(np.asarray(num, dtype=float).T).T, np.atleast_2d(np.asarray(den, dtype=float).T).T
    w = np.asarray(weight, dtype=float)
    k = num.shape[1]
    Y = np.stack([np.bincount(rep, w * num[:, j], minlength=R) for j in range(k)], axis=1)
    X = np.stack([np.bincount(rep, w * den[:, j], minlength=R) for j in range(k)], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        est = Y / X
        z = w[:, None] * (num - est[rep] * den) / X[rep]
    z = np.nan_to_num(z)
    # stage 1: PSU totals centred within (replicate, stratum)
    h = _codes(rep, strata)
    p = _codes(rep, strata, psu)
    n_p = p.max() + 1
    T = np.stack([np.bincount(p, z[:, j], minlength=n_p) for j in range(k)], axis=1)
    h_of_p = np.zeros(n_p, dtype=np.int64)
    h_of_p[p] = h
    rep_of_p = np.zeros(n_p, dtype=np.int64)
    rep_of_p[p] = rep
    n_h = np.bincount(h_of_p).astype(float)
    Tbar = np.stack([np.bincount(h_of_p, T[:, j]) for j in range(k)], axis=1) / n_h[:, None]
    f1 = np.ones(len(n_h))
    if pop_psu is not None:
        N_h = np.zeros(len(n_h))
        N_h[h] = np.asarray(pop_psu, dtype=float)
        if (N_h < n_h).any():
            raise SurveyError("pop_psu is below the sampled PSUs of a stratum")
        f1 = 1.0 - n_h / N_h
    with np.errstate(divide="ignore", invalid="ignore"):
        scale1 = np.where(n_h > 1, f1 * n_h / (n_h - 1.0), 0.0)
    cov = _cross(T - Tbar[h_of_p], scale1[h_of_p], rep_of_p, R)
    if pop_ssu is not None:
        if pop_psu is None:
            raise SurveyError("pop_ssu needs pop_psu")
        sub = np.zeros(len(rep), dtype=np.int64) if ssu_strata is None else np.asarray(ssu_strata)
        c = _codes(rep, strata, psu, sub)
        m = np.bincount(c).astype(float)
        M = np.zeros(len(m))
        M[c] = np.asarray(pop_ssu, dtype=float)
        zbar = np.stack([np.bincount(c, z[:, j]) for j in range(k)], axis=1) / m[:, None]
        frac = (n_h / N_h)[h]  # stage-1 sampling fraction of each row's stratum
        with np.errstate(divide="ignore", invalid="ignore"):
            scale2 = np.where(m > 1, (1.0 - m / M) * m / (m - 1.0), 0.0)[c] * frac
        cov += _cross(z - zbar[c], scale2, rep, R)
    n_psu_rep = np.bincount(rep_of_p, minlength=R)
    h_rep = np.zeros(len(n_h), dtype=np.int64)
    h_rep[h] = rep
    df = n_psu_rep - np.bincount(h_rep, minlength=R)
    return ReplicateRatios(est, cov, df.astype(np.int64))


def domain_df_replicates(rep: np.ndarray, strata: np.ndarray, psu: np.ndarray, members: np.ndarray,
                         n_reps: int) -> np.ndarray:
    """Domain degrees of freedom of every replicate (PSUs with a member less their strata), as
    :meth:`evalkit.survey.SurveyDesign.domain_df`."""
    m = np.asarray(members, dtype=bool)
    r = np.asarray(rep)[m]
    p = pd.DataFrame({"r": r, "s": np.asarray(strata)[m], "p": np.asarray(psu)[m]}).drop_duplicates()
    s = p[["r", "s"]].drop_duplicates()
    return (np.bincount(p["r"].to_numpy(dtype=np.int64), minlength=n_reps)
            - np.bincount(s["r"].to_numpy(dtype=np.int64), minlength=n_reps))
