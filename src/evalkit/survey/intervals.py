"""Confidence intervals of proportions from a design-based estimate and its standard error."""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import betaincinv, stdtrit

__all__ = ["korn_graubard", "wald", "logit_interval", "wilson_design"]


def korn_graubard(est: Any, se: Any, n: Any, df: Any, alpha: float,
                  n_zero_var: Any, max_n_eff: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Korn-Graubard interval of proportions (vectorized), as R ``survey::svyciprop(method="beta")``.

    n_eff = p(1-p)/se^2 times (qt(alpha/2, n-1) / qt(alpha/2, df))^2 (n = sampled units in the
    domain, df = design df); lower = qbeta(alpha/2, n_eff p, n_eff (1-p) + 1), upper =
    qbeta(1-alpha/2, n_eff p + 1, n_eff (1-p)); lower = 0 at p = 0 and upper = 1 at p = 1. Where
    se = 0 (R gives NaN) the unadjusted n_eff is ``n_zero_var`` (a design effect of 1) before the
    same df factor. ``max_n_eff`` (e.g. n: a design effect of at least 1, Korn and Graubard's
    truncation) caps the unadjusted n_eff.

    Returns
    -------
    (lci, uci, n_eff) : arrays
        NaN where the interval is undefined (n_eff not positive or est not finite).
    """
    est, se, n, df, n0 = (np.asarray(x, dtype=float) for x in (est, se, n, df, n_zero_var))
    var = se * se
    with np.errstate(divide="ignore", invalid="ignore"):
        raw = np.where(var > 0, est * (1.0 - est) / np.where(var > 0, var, 1.0), n0)
        if max_n_eff is not None:
            raw = np.minimum(raw, np.asarray(max_n_eff, dtype=float))
        n_eff = raw * (stdtrit(n - 1.0, alpha / 2) / stdtrit(df, alpha / 2)) ** 2
        lo = np.where(est <= 0, 0.0, betaincinv(n_eff * est, n_eff * (1.0 - est) + 1.0, alpha / 2))
        hi = np.where(est >= 1, 1.0, betaincinv(n_eff * est + 1.0, n_eff * (1.0 - est), 1.0 - alpha / 2))
    ok = np.isfinite(n_eff) & (n_eff > 0) & np.isfinite(est)
    return np.where(ok, lo, np.nan), np.where(ok, hi, np.nan), n_eff


def wald(est: Any, se: Any, df: Any, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """t interval est -/+ qt(1 - alpha/2, df) se (vectorized; R ``confint(..., df=)``)."""
    est, se, df = (np.asarray(x, dtype=float) for x in (est, se, df))
    q = stdtrit(np.maximum(df, 1.0), 1.0 - alpha / 2)
    return est - q * se, est + q * se


def logit_interval(est: Any, se: Any, df: Any, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Logit interval of R ``svyciprop(method="logit")``: the t interval of logit(p) with SE
    se / (p (1 - p)), transformed back. NaN where p is 0 or 1 or se = 0 (no interval)."""
    est, se, df = (np.asarray(x, dtype=float) for x in (est, se, df))
    q = stdtrit(np.maximum(df, 1.0), 1.0 - alpha / 2)
    ok = (est > 0) & (est < 1) & (se > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        lg = np.log(est / (1.0 - est))
        h = q * se / (est * (1.0 - est))
        lo, hi = 1.0 / (1.0 + np.exp(-(lg - h))), 1.0 / (1.0 + np.exp(-(lg + h)))
    return np.where(ok, lo, np.nan), np.where(ok, hi, np.nan)


def wilson_design(est: Any, se: Any, n: Any, df: Any, alpha: float,
                  n_zero_var: Any, max_n_eff: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval on the effective sample size (Kott and Carr's design-effect Wilson).

    n_eff = p (1 - p) / se^2 (``n_zero_var`` where se = 0) times the same df factor as
    :func:`korn_graubard` (``max_n_eff`` caps it likewise); the score interval with the t quantile
    on ``df``.
    """
    est, se, n, df, n0 = (np.asarray(x, dtype=float) for x in (est, se, n, df, n_zero_var))
    var = se * se
    q = stdtrit(np.maximum(df, 1.0), 1.0 - alpha / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        raw = np.where(var > 0, est * (1.0 - est) / np.where(var > 0, var, 1.0), n0)
        if max_n_eff is not None:
            raw = np.minimum(raw, np.asarray(max_n_eff, dtype=float))
        ne = raw * (stdtrit(n - 1.0, alpha / 2) / stdtrit(np.maximum(df, 1.0), alpha / 2)) ** 2
        c = q * q / ne
        mid = (est + c / 2) / (1 + c)
        half = q * np.sqrt(est * (1 - est) / ne + c / (4 * ne)) / (1 + c)
    ok = np.isfinite(ne) & (ne > 0)
    return np.where(ok, np.maximum(mid - half, 0.0), np.nan), np.where(ok, np.minimum(mid + half, 1.0), np.nan)
