"""Intervals of the four exit criteria from their estimates, SEs, degrees of freedom and sample sizes.

One function for a real assessment (:func:`evalkit.assessment.assess_sample`) and for the
simulated ones (:func:`evalkit.assessment.replicate_criteria`), so both give the same verdicts.
The choice among the methods is documented in docs/methods.md (coverage benchmark).
"""
from __future__ import annotations

import numpy as np

from evalkit.survey import korn_graubard, logit_interval, wald, wilson_design

__all__ = ["criteria_intervals", "effective_size_cap", "domain_households"]


def domain_households(register: dict) -> np.ndarray:
    """Register households of each criterion's domain (exited, non-registered, all, exited +
    non-registered), from :func:`evalkit.assessment.register_totals`'s ``households``."""
    h = register.get("households") or {}
    ex, nr = float(h.get("exited", np.nan)), float(h.get("non_registered", np.nan))
    return np.array([ex, nr, float(sum(h.values())) if h else np.nan, ex + nr])


def effective_size_cap(method: str, n: np.ndarray, register: dict) -> tuple[np.ndarray | None, np.ndarray]:
    """(cap of the effective size or None, effective size where the SE is 0) of an interval method.

    '..._deff1': the effective size never above the sampled households n (design effect >= 1,
    Korn and Graubard's truncation: a rare case seen in few villages gives an SE too small).
    '..._fpc': never above n / (1 - f), f = n / N the domain's sampling fraction of register
    households — the design effect never below that of simple random sampling WITHOUT replacement,
    the design the truncation compares with when the domain is largely sampled (infinite at a census).
    Where the SE is 0 the effective size is that cap (n without one).
    """
    n = np.asarray(n, dtype=float)
    if method.endswith("_deff1"):
        return n, n
    if method.endswith("_fpc"):
        big = np.broadcast_to(domain_households(register), n.shape)
        with np.errstate(divide="ignore", invalid="ignore"):
            cap = np.where(np.isfinite(big) & (big > n), n * big / (big - n), np.where(np.isfinite(big), np.inf, n))
        return cap, np.where(np.isfinite(cap), cap, n)
    return None, n


def criteria_intervals(method: str, est: np.ndarray, se: np.ndarray, df: np.ndarray, n: np.ndarray,
                       register: dict, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Intervals of the four criteria (vectorized over rows of shape (..., 4), :data:`CRITERIA` order).

    The three rates: ``method`` on (est, se, df, n) ('korn_graubard' :func:`evalkit.survey.korn_graubard`
    with n_eff = sampled households where se = 0; 'wald'; 'logit', falling back to Korn-Graubard
    where p is 0 or 1 or se = 0; 'wilson' :func:`evalkit.survey.wilson_design`). The incidence
    I = P/R + (E r_we + N r_mp)/R is P/R + (1 - P/R) q with q = (E r_we + N r_mp)/(E + N), a
    proportion of the registered-exited and non-registered persons; its SE from the joint
    covariance is se_I / (1 - P/R); the same method gives q's interval (n = sampled exited and
    non-registered households, the design df), mapped back. Hence never below the register floor P/R
    and no widening. With a '_fpc' method a domain observed in full (a census: sampled households
    reach the register's, SE 0) gets the point as its interval.
    """
    est, se, df, n = (np.asarray(x, dtype=float) for x in (est, se, df, n))
    floor = register["remaining_poor_persons"] / register["rural_population"]
    e = np.concatenate([est[..., :3], ((est[..., 3] - floor) / (1.0 - floor))[..., None]], axis=-1)
    s = np.concatenate([se[..., :3], (se[..., 3] / (1.0 - floor))[..., None]], axis=-1)
    if method == "wald":  # R's t intervals, the incidence's too (no floor)
        return wald(est, se, df, alpha)
    e = np.clip(e, 0.0, 1.0)
    cap, n0 = effective_size_cap(method, n, register)
    if method.startswith("wilson"):
        lo, hi = wilson_design(e, s, n, df, alpha, n0, cap)
    else:
        lo, hi, _ = korn_graubard(e, s, n, df, alpha, n0, cap)
        if method == "logit":
            llo, lhi = logit_interval(e, s, df, alpha)
            lo, hi = np.where(np.isfinite(llo), llo, lo), np.where(np.isfinite(lhi), lhi, hi)
    if cap is not None and method.endswith("_fpc"):
        # Every household of the domain observed (as many sampled as the register holds: a census)
        # and no variance: the rate is known,
        # not estimated. Its interval is the point, so that a census never decides worse than a
        # sample of the same county (the zero-variance rule of n households is for rare cases).
        exact = (np.broadcast_to(domain_households(register), n.shape) == n) & (s == 0)
        lo, hi = np.where(exact, e, lo), np.where(exact, e, hi)
    lo = np.concatenate([lo[..., :3], np.maximum(floor + (1.0 - floor) * lo[..., 3:], floor)], axis=-1)
    hi = np.concatenate([hi[..., :3], floor + (1.0 - floor) * hi[..., 3:]], axis=-1)
    return lo, hi
