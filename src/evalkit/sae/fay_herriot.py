"""The Fay-Herriot area-level model: REML, EBLUP and the Prasad-Rao MSE.

``theta_d = x_d' beta + v_d + e_d`` with ``v_d ~ N(0, A)`` and sampling errors ``e_d ~ N(0, psi_d)``
(psi known: the design variances, smoothed where needed, :mod:`~evalkit.sae.direct`). ``A`` is the
REML estimate (maximum of the restricted log-likelihood over A >= 0, bounded scalar search);
``beta`` its GLS estimate; the EBLUP ``gamma_d theta_d + (1 - gamma_d) x_d' beta`` with
``gamma_d = A / (A + psi_d)``. MSE (Prasad and Rao 1990; Datta and Lahiri 2000 for REML):
``g1 + g2 + 2 g3`` with ``g1 = gamma psi``, ``g2 = (1 - gamma)^2 x' (X' V^-1 X)^-1 x``,
``g3 = psi^2 / (A + psi)^3 * 2 / sum (A + psi)^-2``. Areas without a direct estimate get the
synthetic ``x' beta`` with MSE ``A + x' (X' V^-1 X)^-1 x``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar

from evalkit.errors import EvalkitError

__all__ = ["FayHerriotFit", "reml_loglik", "fit_fay_herriot"]


@dataclass(frozen=True)
class FayHerriotFit:
    """Fitted model and predictions for every area (A,) (NaN direct = out of sample)."""

    A: float
    beta: np.ndarray
    beta_cov: np.ndarray
    eblup: np.ndarray
    mse: np.ndarray
    gamma: np.ndarray
    synthetic: np.ndarray
    residuals: np.ndarray
    converged: bool


def reml_loglik(A: float, theta: np.ndarray, psi: np.ndarray, X: np.ndarray) -> float:
    """Restricted log-likelihood of the Fay-Herriot model at ``A`` (up to a constant)."""
    w = 1.0 / (A + psi)
    XtVX = X.T @ (X * w[:, None])
    beta = np.linalg.solve(XtVX, X.T @ (w * theta))
    r = theta - X @ beta
    return float(-0.5 * (np.log(A + psi).sum() + np.linalg.slogdet(XtVX)[1] + (w * r * r).sum()))


def _independent_columns(X: np.ndarray) -> np.ndarray:
    """Columns kept in order while they add to the rank (a covariate constant or collinear among the
    sampled areas, e.g. a facility every sampled village has, cannot be estimated)."""
    keep: list[int] = []
    for j in range(X.shape[1]):      # a handful of covariates
        if np.linalg.matrix_rank(X[:, keep + [j]]) == len(keep) + 1:
            keep.append(j)
    return np.array(keep, dtype=int)


def fit_fay_herriot(theta: np.ndarray, psi: np.ndarray, X: np.ndarray) -> FayHerriotFit:
    """Fit the Fay-Herriot model on the areas with a direct estimate; predict every area.

    Parameters
    ----------
    theta : array (A,)
        Direct estimates (NaN where the area has none).
    psi : array (A,)
        Their sampling variances (> 0 where theta is given).
    X : array (A, p)
        Area covariates (with an intercept), known for every area; columns collinear among the
        areas with a direct estimate are dropped (``beta`` then has fewer entries).
    """
    theta, psi, X = np.asarray(theta, float), np.asarray(psi, float), np.asarray(X, float)
    s = np.isfinite(theta)
    if (psi[s] <= 0).any() or not np.isfinite(psi[s]).all():
        raise EvalkitError("Fay-Herriot needs positive sampling variances for every direct estimate")
    if s.sum() <= X.shape[1] + 1:
        raise EvalkitError(f"Fay-Herriot: {int(s.sum())} areas with a direct estimate for {X.shape[1]} covariates")
    X = X[:, _independent_columns(X[s])]
    ts, ps, Xs = theta[s], psi[s], X[s]
    upper = max(float(np.var(ts)) * 10.0, float(ps.max()) * 10.0, 1e-12)
    res = minimize_scalar(lambda a: -reml_loglik(a, ts, ps, Xs), bounds=(0.0, upper), method="bounded",
                          options={"xatol": upper * 1e-10})
    A = float(res.x)
    if -res.fun < reml_loglik(0.0, ts, ps, Xs):
        A = 0.0
    w = 1.0 / (A + ps)
    cov_b = np.linalg.inv(Xs.T @ (Xs * w[:, None]))
    beta = cov_b @ (Xs.T @ (w * ts))
    synth = X @ beta
    gamma = np.where(s, A / (A + np.where(s, psi, 1.0)), 0.0)
    eblup = np.where(s, gamma * np.where(s, theta, 0.0) + (1 - gamma) * synth, synth)
    xvx = np.einsum("dp,pq,dq->d", X, cov_b, X)
    var_a = 2.0 / np.sum(w ** 2)
    psi0 = np.where(s, psi, 0.0)
    g1, g2 = gamma * psi0, (1 - gamma) ** 2 * xvx
    g3 = np.where(s, psi0 ** 2 / (A + np.where(s, psi, 1.0)) ** 3 * var_a, 0.0)
    mse = np.where(s, g1 + g2 + 2.0 * g3, A + xvx)
    return FayHerriotFit(A=A, beta=beta, beta_cov=cov_b, eblup=eblup, mse=mse, gamma=gamma, synthetic=synth,
                         residuals=np.where(s, theta - synth, np.nan), converged=bool(res.success))
