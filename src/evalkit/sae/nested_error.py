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
    """Sums of ``values`` (N, B) by area -> (A, B), all columns at once (areas without units: 0)."""
    area = np.asarray(area, dtype=np.int64)
    order = np.argsort(area, kind="stable")
    starts = np.searchsorted(area[order], np.arange(n_areas))
    # a zero row after the last unit: an empty area (even the last one) sums to 0
    padded = np.concatenate([values[order], np.zeros((1,) + values.shape[1:])], axis=0)
    out = np.add.reduceat(padded, starts, axis=0)
    out[np.bincount(area, minlength=n_areas) == 0] = 0.0
    return out


def _profile(log_g: np.ndarray, stats: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Profile REML log-likelihood, beta and RSS at ``log_g`` (B,)."""
    n_a, xbar, ybar, XtX, XtY, yty, n, p = stats
    g = np.exp(log_g)
    c = n_a[None, :] ** 2 * g[:, None] / (1.0 + n_a[None, :] * g[:, None])        # (B, A)
    M = XtX[None] - np.einsum("ba,ap,aq->bpq", c, xbar, xbar)
    r = XtY.T - np.einsum("ba,ap,ab->bp", c, xbar, ybar)
    beta = np.linalg.solve(M, r[..., None])[..., 0]
    rss = yty - np.einsum("ba,ab->b", c, ybar ** 2) - np.einsum("bp,bp->b", beta, r)
    rss = np.maximum(rss, 1e-300)
    logdet = np.linalg.slogdet(M)[1]
    ll = -0.5 * ((n - p) * np.log(rss / (n - p)) + np.log1p(n_a[None, :] * g[:, None]).sum(1) + logdet)
    return ll, beta, rss


def fit_nested_error(area: np.ndarray, X: np.ndarray, y: np.ndarray, n_areas: int | None = None,
                     iterations: int = 45) -> NestedErrorFit:
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
    lo, hi = np.full(B, _LOG_G[0]), np.full(B, _LOG_G[1])
    a, b = hi - _GOLD * (hi - lo), lo + _GOLD * (hi - lo)
    fa, fb = _profile(a, stats)[0], _profile(b, stats)[0]
    for _ in range(iterations):
        left = fa > fb            # the maximum lies in [lo, b]
        hi = np.where(left, b, hi)
        lo = np.where(left, lo, a)
        a_new, b_new = hi - _GOLD * (hi - lo), lo + _GOLD * (hi - lo)
        fa, fb = np.where(left, _profile(a_new, stats)[0], fb), np.where(left, fa, _profile(b_new, stats)[0])
        a, b = np.where(left, a_new, b), np.where(left, a, b_new)
    t = 0.5 * (lo + hi)
    # the boundary g -> 0 (no area effect) when the search ran into the lower end
    ll, beta, rss = _profile(t, stats)
    ll0, beta0, rss0 = _profile(np.full(B, -40.0), stats)
    zero = ll0 >= ll
    t = np.where(zero, -np.inf, t)
    beta = np.where(zero[:, None], beta0, beta)
    rss = np.where(zero, rss0, rss)
    s2e = rss / (n - p)
    return NestedErrorFit(beta=beta.T, s2e=s2e, s2u=np.exp(t) * s2e, loglik=np.maximum(ll, ll0), n_areas=A)
