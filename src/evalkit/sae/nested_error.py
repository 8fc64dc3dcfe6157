"""The Battese-Harter-Fuller nested-error model, fitted by REML for many responses at once.

``y_ij = x_ij' beta + u_i + e_ij`` with area effects ``u_i ~ N(0, s2u)`` and unit errors
``e_ij ~ N(0, s2e)``. For a variance ratio ``g = s2u / s2e`` the Fuller-Battese transform
``y - (1 - 1/sqrt(1 + n_i g)) ybar_i`` makes the errors independent, so the REML log-likelihood
profiled over ``beta`` and ``s2e`` depends on ``g`` alone and on the areas' sufficient statistics:

    l(g) = -1/2 [ (n - p) log(RSS(g) / (n - p)) + sum_i log(1 + n_i g) + log det(X~'X~) ]

with ``X~'X~ = X'X - sum_i c_i xbar_i xbar_i'``, ``c_i = n_i^2 g / (1 + n_i g)`` (and the same for
``X~'y`` and ``y~'y``). :func:`fit_nested_error` maximizes it by golden-section search on ``log g``
for every column of ``y`` at once (the parametric bootstrap refits B replicates in one call). It
agrees with statsmodels' ``MixedLM(reml=True)`` (tests/test_sae.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from evalkit.errors import EvalkitError

__all__ = ["NestedErrorFit", "area_statistics", "area_sums", "fit_nested_error"]

_GOLD = (np.sqrt(5.0) - 1.0) / 2.0
_LOG_G = (-12.0, 7.0)  # search range of log(s2u / s2e)


@dataclass(frozen=True)
class NestedErrorFit:
    """REML estimates, one column per response (``beta`` is (p, B); variances are (B,))."""

    beta: np.ndarray
    s2e: np.ndarray
    s2u: np.ndarray
    loglik: np.ndarray
    n_areas: int

    @property
    def ratio(self) -> np.ndarray:
        """Variance ratio s2u / s2e."""
        return self.s2u / self.s2e


def area_statistics(area: np.ndarray, X: np.ndarray, y: np.ndarray, n_areas: int
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Units per area (A,), area means of X (A, p) and of y (A, B); areas without units have zeros."""
    area = np.asarray(area, dtype=np.int64)
    n = np.bincount(area, minlength=n_areas).astype(float)
    safe = np.where(n > 0, n, 1.0)
    xbar = np.stack([np.bincount(area, weights=X[:, j], minlength=n_areas) for j in range(X.shape[1])], 1)
    return n, xbar / safe[:, None], area_sums(area, y, n_areas) / safe[:, None]


def area_sums(area: np.ndarray, values: np.ndarray, n_areas: int) -> np.ndarray:
    """Sums of ``values`` (N, B) by area -> (A, B), all columns at once (areas without units: 0).

    Units sorted by area (the register is) are summed in place by ``reduceat``; otherwise they are
    sorted first (a copy)."""
    area = np.asarray(area, dtype=np.int64)
    values = np.asarray(values)
    out = np.zeros((n_areas,) + values.shape[1:], dtype=np.result_type(values.dtype, np.float32))
    if not len(area):
        return out
    if np.any(area[1:] < area[:-1]):
        order = np.argsort(area, kind="stable")
        area, values = area[order], values[order]
    # reduceat over the first unit of each non-empty area: no padding, no copy of the values
    first = np.flatnonzero(np.r_[True, area[1:] != area[:-1]])
    out[area[first]] = np.add.reduceat(values, first, axis=0)
    return out


def _profile(log_g: np.ndarray, stats: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Profile REML log-likelihood, beta and RSS at ``log_g`` (B,)."""
    n_a, xbar, ybar, XtX, XtY, yty, n, p = stats
    g = np.exp(log_g)
    c = n_a[None, :] ** 2 * g[:, None] / (1.0 + n_a[None, :] * g[:, None])        # (B, A)
    p_ = xbar.shape[1]
    # matrix products (BLAS) rather than einsum: the golden-section search calls this ~90 times
    M = XtX[None] - (c @ (xbar[:, :, None] * xbar[:, None, :]).reshape(len(n_a), p_ * p_)).reshape(-1, p_, p_)
    r = XtY.T - (c * ybar.T) @ xbar
    beta = np.linalg.solve(M, r[..., None])[..., 0]
    rss = yty - (c * (ybar ** 2).T).sum(1) - (beta * r).sum(1)
    rss = np.maximum(rss, 1e-300)
    logdet = np.linalg.slogdet(M)[1]
    ll = -0.5 * ((n - p) * np.log(rss / (n - p)) + np.log1p(n_a[None, :] * g[:, None]).sum(1) + logdet)
    return ll, beta, rss


def fit_nested_error(area: np.ndarray, X: np.ndarray, y: np.ndarray, n_areas: int | None = None,
                     iterations: int = 45, adjusted: bool = False, area_effect: bool = True) -> NestedErrorFit:
    """REML fit of the nested-error model for each column of ``y``.

    Parameters
    ----------
    area : array of int (n,)
        Area index 0..A-1 of each unit.
    X : array (n, p)
        Covariates (with an intercept column).
    y : array (n,) or (n, B)
        Responses; each column is fitted separately (same X and areas).
    n_areas : int, optional
        Number of areas (default max(area) + 1).
    iterations : int
        Golden-section steps on log(s2u/s2e) (45 narrow the range of 19 to ~5e-9).
    adjusted : bool
        Maximize the adjusted REML likelihood ``l_R + log s2u`` (Li and Lahiri 2010) instead of ``l_R``:
        ``s2u`` is then never estimated as 0 (a zero estimate makes the bootstrap MSE leave out the area
        effects). ``loglik`` stays the unadjusted REML log-likelihood.
    area_effect : bool
        False: no area effect (``s2u = 0``, least squares), for a sample that cannot tell the area
        variance from the unit variance (about one unit per area).

    Raises
    ------
    EvalkitError
        Fewer units than covariates + 1, or a singular X.
    """
    y2 = np.asarray(y, dtype=float)
    y2 = y2[:, None] if y2.ndim == 1 else y2
    X = np.asarray(X, dtype=float)
    n, p = X.shape
    if n <= p + 1 or np.linalg.matrix_rank(X) < p:
        raise EvalkitError(f"nested-error model: {n} units and {p} covariates (rank {np.linalg.matrix_rank(X)}); "
                           "too few units or collinear covariates")
    A = int(np.max(area)) + 1 if n_areas is None else int(n_areas)
    n_a, xbar, ybar = area_statistics(area, X, y2, A)
    stats = (n_a, xbar, ybar, X.T @ X, X.T @ y2, np.einsum("nb,nb->b", y2, y2), n, p)
    B = y2.shape[1]

    def objective(log_g: np.ndarray) -> np.ndarray:
        ll, _, rss = _profile(log_g, stats)
        # adjusted REML (Li and Lahiri 2010): + log s2u, so that the estimate of s2u is never 0
        return ll + log_g + np.log(rss / (n - p)) if adjusted else ll

    with threadpool_limits(1, user_api="blas"):   # tiny matrices: a second BLAS thread only adds overhead
        if not area_effect:
            ll, beta, rss = _profile(np.full(B, -40.0), stats)
            return NestedErrorFit(beta=beta.T, s2e=rss / (n - p), s2u=np.zeros(B), loglik=ll, n_areas=A)
        return _golden(objective, stats, B, A, iterations, adjusted, n, p)


def _golden(objective, stats: tuple, B: int, A: int, iterations: int, adjusted: bool, n: int, p: int
            ) -> NestedErrorFit:
    """Golden-section search of ``objective`` over log(s2u/s2e) for all B responses at once."""
    lo, hi = np.full(B, _LOG_G[0]), np.full(B, _LOG_G[1])
    a, b = hi - _GOLD * (hi - lo), lo + _GOLD * (hi - lo)
    fa, fb = objective(a), objective(b)
    for _ in range(iterations):
        left = fa > fb            # the maximum lies in [lo, b]: the new point is a new 'a', else a new 'b'
        hi, lo = np.where(left, b, hi), np.where(left, lo, a)
        x = np.where(left, hi - _GOLD * (hi - lo), lo + _GOLD * (hi - lo))
        fx = objective(x)          # one evaluation per step, the other point is reused
        a, b = np.where(left, x, b), np.where(left, a, x)
        fa, fb = np.where(left, fx, fb), np.where(left, fa, fx)
    t = 0.5 * (lo + hi)
    ll, beta, rss = _profile(t, stats)
    if adjusted:
        # maximizing l_R + log s2u over s2e too gives RSS / (n - p - 2); the optimal ratio g is unchanged
        s2e = rss / max(n - p - 2, 1)
        return NestedErrorFit(beta=beta.T, s2e=s2e, s2u=np.exp(t) * s2e, loglik=ll, n_areas=A)
    # the boundary g -> 0 (no area effect) when the search ran into the lower end
    ll0, beta0, rss0 = _profile(np.full(B, -40.0), stats)
    zero = ll0 >= ll
    t = np.where(zero, -np.inf, t)
    beta = np.where(zero[:, None], beta0, beta)
    rss = np.where(zero, rss0, rss)
    s2e = rss / (n - p)
    return NestedErrorFit(beta=beta.T, s2e=s2e, s2u=np.exp(t) * s2e, loglik=np.maximum(ll, ll0), n_areas=A)
