"""Confidence intervals of proportions from a design-based estimate and its standard error."""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import betaincinv, stdtrit

__all__ = ["korn_graubard"]


def korn_graubard(est: Any, se: Any, n: Any, df: Any, alpha: float,
                  n_zero_var: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Korn-Graubard interval of proportions (vectorized), as R ``survey::svyciprop(method="beta")``.

    n_eff = p(1-p)/se^2 times (qt(alpha/2, n-1) / qt(alpha/2, df))^2 (n = sampled units in the
    domain, df = design df); lower = qbeta(alpha/2, n_eff p, n_eff (1-p) + 1), upper =
    qbeta(1-alpha/2, n_eff p + 1, n_eff (1-p)); lower = 0 at p = 0 and upper = 1 at p = 1. Where
    se = 0 (R gives NaN) the unadjusted n_eff is ``n_zero_var`` (a design effect of 1) before the
    same df factor.

    Returns
    -------
    (lci, uci, n_eff) : arrays
        NaN where the interval is undefined (n_eff not positive or est not finite).
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
