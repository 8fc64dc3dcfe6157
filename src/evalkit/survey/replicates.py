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
from typing import Any

import numpy as np
import pandas as pd

from evalkit.errors import SurveyError

__all__ = ["ReplicateRatios", "ratio_replicates", "domain_df_replicates", "ReplicateDraws", "draw_replicates",
           "pps_probabilities"]


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
    """Dense codes 0..G-1 of the distinct combinations of ``cols`` (integer arithmetic, no tuples).

    Non-negative integer columns are used as they are; others are factorized first. The codes are
    made dense by a presence table when the product's range is small (no hashing: millions of
    stacked rows), else by one final factorize.
    """
    code = np.zeros(len(cols[0]), dtype=np.int64)
    space = 1
    for c in cols:
        c = np.asarray(c)
        if c.dtype.kind in "iu" and (len(c) == 0 or c.min() >= 0):
            k, card = c.astype(np.int64, copy=False), int(c.max()) + 1 if len(c) else 1
        else:
            k, lab = pd.factorize(c)
            card = len(lab) + 1
        if space >= (1 << 62) // max(card, 1):
            code = pd.factorize(code)[0].astype(np.int64)  # keep the product small
            space = int(code.max(initial=0)) + 1
        code = code * card + k
        space *= card
    if space <= 4 * len(code) + 4096:
        seen = np.zeros(space, dtype=bool)
        seen[code] = True
        return (np.cumsum(seen) - 1)[code]
    return pd.factorize(code)[0].astype(np.int64)


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
    z[~np.isfinite(z)] = 0.0
    # stage 1: PSU totals centred within (replicate, stratum); codes nested (stratum in replicate,
    # PSU in stratum, cell in PSU) so that each step combines two integer columns
    h = _codes(rep, strata)
    p = _codes(h, psu)
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
        c = _codes(p, sub)
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
    r = np.asarray(rep, dtype=np.int64)[m]
    if not len(r):
        return np.zeros(n_reps, dtype=np.int64)
    s = np.asarray(strata)[m]
    out = np.zeros(n_reps, dtype=np.int64)
    for sign, code in ((1, _codes(r, s, np.asarray(psu)[m])), (-1, _codes(r, s))):
        rep_of = np.zeros(int(code.max()) + 1, dtype=np.int64)
        rep_of[code] = r                       # each distinct (replicate, ...) once
        out += sign * np.bincount(rep_of, minlength=n_reps)
    return out


@dataclass(frozen=True)
class ReplicateDraws:
    """Many two-stage samples of one frame, stacked: one entry per sampled household of each replicate.

    ``rep`` the replicate (0..R-1, rows sorted by replicate, then the frame's household order);
    ``row`` the household's row in ``frame.households``; ``prob_village`` and ``prob_household``
    the two stages' inclusion probabilities; ``weight`` = 1 / their product.
    """

    rep: np.ndarray
    row: np.ndarray
    prob_village: np.ndarray
    prob_household: np.ndarray
    n_reps: int

    @property
    def weight(self) -> np.ndarray:
        """Design weights 1 / (P(village) P(household | village))."""
        return 1.0 / (self.prob_village * self.prob_household)


def pps_probabilities(size: np.ndarray, n: int) -> np.ndarray:
    """Inclusion probabilities of PPS without replacement of ``n`` units with certainty units.

    A unit whose n x size share reaches 1 is taken with probability 1 and the others share the
    remaining n in proportion to size, repeated until no share reaches 1 (svy ``pps_sys`` with
    ``certainty_threshold=1``).
    """
    size = np.asarray(size, dtype=float)
    cert = np.zeros(len(size), dtype=bool)
    while True:
        n_rest = n - int(cert.sum())
        rest = size * ~cert
        if n_rest <= 0 or rest.sum() <= 0:
            break
        p = n_rest * rest / rest.sum()
        new = (p >= 1.0 - 1e-12) & ~cert
        if not new.any():
            break
        cert |= new
    p = np.where(cert, 1.0, 0.0)
    n_rest = n - int(cert.sum())
    if n_rest > 0:
        rest = size * ~cert
        p = np.where(cert, 1.0, n_rest * rest / rest.sum())
    return p


def _stage1(sizes: np.ndarray, n: int, selection: str, rng: np.random.Generator,
            n_reps: int) -> tuple[np.ndarray, np.ndarray]:
    """(selected unit indices (R, n), inclusion probabilities (N,)) of one stratum, all replicates."""
    big = len(sizes)
    if n >= big:
        return np.broadcast_to(np.arange(big), (n_reps, big)), np.ones(big)
    if selection == "srs":
        keys = rng.random((n_reps, big))
        return np.sort(np.argpartition(keys, n - 1, axis=1)[:, :n], axis=1), np.full(big, n / big)
    p = pps_probabilities(sizes, n)
    cert = np.flatnonzero(p >= 1.0)
    rest = np.flatnonzero(p < 1.0)
    k = n - len(cert)
    # Systematic selection among the rest, one random start per replicate, in frame order
    # ('pps_frame') or in a random order of its own per replicate ('pps': randomized systematic).
    order = (np.argsort(rng.random((n_reps, len(rest))), axis=1) if selection == "pps"
             else np.broadcast_to(np.arange(len(rest)), (n_reps, len(rest))))
    # every replicate's cumulated probabilities (each ends at k) offset by (k + 1) x replicate,
    # so that one searchsorted serves all replicates
    off = (k + 1.0) * np.arange(n_reps)[:, None]
    cum = np.cumsum(p[rest][order], axis=1) + off
    points = rng.random(n_reps)[:, None] + np.arange(k)[None, :] + off
    pos = np.searchsorted(cum.ravel(), points.ravel(), side="right").reshape(n_reps, k)
    pos = np.minimum(pos - len(rest) * np.arange(n_reps)[:, None], len(rest) - 1)
    pick = rest[np.take_along_axis(order, pos, axis=1)]
    sel = np.concatenate([np.broadcast_to(cert, (n_reps, len(cert))), pick], axis=1)
    return np.sort(sel, axis=1), p


def draw_replicates(frame: Any, n_reps: int, rng: np.random.Generator) -> ReplicateDraws:
    """``n_reps`` independent two-stage draws of :func:`evalkit.survey.draw_from_frame`'s design, at once.

    Stage 1 per county x village stratum (a loop over the few strata, not over replicates): PPS
    systematic on the number of households with certainty units (:func:`pps_probabilities`), in a
    random order per replicate ('pps') or the frame's order ('pps_frame'), or SRS; a stratum whose n
    reaches its size is taken whole. Stage 2: SRS of min(n, M) households in every selected village x
    household stratum, by ranking uniform keys within each (replicate, cell). The inclusion
    probabilities are those of svy's draws (tests compare); the random numbers differ, so the
    samples are other draws of the same design. For simulation.
    """
    design = frame.design
    R = int(n_reps)
    vil = frame.villages
    v_code = vil["village_code"].to_numpy().astype(str)
    v_key = list(zip(vil["county_code"].to_list(), vil["stratum"].to_list()))
    sizes = vil["n_hh"].to_numpy().astype(float)
    sel_cols, prob_v = [], np.zeros(len(v_code))
    for key in dict.fromkeys(v_key):
        idx = np.flatnonzero(np.array([k == key for k in v_key]))
        sel, p = _stage1(sizes[idx], int(frame.n_villages.get(key, 0)), design.village_selection, rng, R)
        prob_v[idx] = p
        sel_cols.append(idx[sel])
    sel_v = np.sort(np.concatenate(sel_cols, axis=1), axis=1)            # (R, V) village rows
    hh = frame.households
    h_v = pd.Index(v_code).get_indexer(hh["village_code"].to_numpy().astype(str))
    h_st = hh["hh_stratum"].to_numpy().astype(str)
    n_req = pd.Series(h_st).map(dict(design.households_per_village)).fillna(0).to_numpy(dtype=np.int64)
    # households of the frame grouped by village (frame order is village_code, household_id)
    order = np.argsort(h_v, kind="stable")
    start = np.searchsorted(h_v[order], np.arange(len(v_code)))
    count = np.bincount(h_v, minlength=len(v_code))
    pv = sel_v.ravel()
    rep_of_pair = np.repeat(np.arange(R), sel_v.shape[1])
    tot = count[pv]
    offs = np.repeat(start[pv] - np.concatenate([[0], np.cumsum(tot)[:-1]]), tot) + np.arange(tot.sum())
    row = order[offs]
    rep = np.repeat(rep_of_pair, tot)
    st_code = pd.factorize(h_st, sort=True)[0]
    cell_local = pd.factorize(h_v.astype(np.int64) * (st_code.max() + 1) + st_code)[0]
    M = np.bincount(cell_local)
    req = np.zeros(len(M), dtype=np.int64)
    req[cell_local] = n_req
    m = np.minimum(M, req)
    cl = cell_local[row]
    take = m[cl] >= M[cl]                       # cells taken whole need no random keys
    part = np.flatnonzero(~take & (m[cl] > 0))
    # rank within (replicate, cell): sort on cell code + a uniform key in [0, 1)
    key = (rep[part] * (len(M) + 1) + cl[part]).astype(float) + rng.random(len(part)) * 0.5
    o = part[np.argsort(key)]
    g = rep[o] * (len(M) + 1) + cl[o]
    first = np.r_[0, np.flatnonzero(g[1:] != g[:-1]) + 1]
    rank = np.arange(len(o)) - np.repeat(first, np.diff(np.r_[first, len(o)]))
    take[o] = rank < m[cl[o]]
    c = cell_local[row[take]]
    return ReplicateDraws(rep=rep[take], row=row[take], prob_village=prob_v[h_v[row[take]]],
                          prob_household=m[c] / M[c], n_reps=R)
