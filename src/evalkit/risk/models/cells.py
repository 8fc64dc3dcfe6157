"""The logit on sufficient statistics: rows collapsed into cells with frequency weights.

The log-likelihood of a logit depends on the data only through, for every distinct row of
(cluster, fixed-effect level, covariates), the number of rows ``n`` and of positives ``k``: the
score of a cell is ``x (k − n p)`` and its information ``n p (1 − p) x x'``, the sums over its
rows. Collapsing rows that are identical in those columns is therefore lossless — estimates and
village-clustered standard errors equal those of the row-level fit (``tests/test_risk.py``
checks them against statsmodels). Cells never span two clusters, so the cluster score sums are
exact too. This is how the province logit is fitted (:mod:`evalkit.risk.large`): DuckDB collapses
the store into cells, and Newton's method runs on the cells.

County fixed effects are not columns of the design: they enter as integer level codes and the
Newton step assembles their block of the information matrix from per-level sums, so a province
of 107 counties costs little more than a county.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit
from scipy.stats import norm

from evalkit.errors import RiskModelError
from evalkit.risk.features import CORE_FEATURES
from evalkit.risk.models.base import RiskModel, with_odds_ratios
from evalkit.risk.panel import require_columns

__all__ = ["CellLogit", "CellLogitModel", "collapse_cells", "fit_logit_cells"]


def collapse_cells(X: np.ndarray, y: np.ndarray, cluster: np.ndarray, level: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Collapse rows into cells of identical (cluster, level, covariates).

    Parameters
    ----------
    X : ndarray, shape (n, p)
    y : ndarray of 0/1
    cluster : ndarray of int
        Cluster code of each row (cells never span two clusters).
    level : ndarray of int, optional
        Fixed-effect level of each row.

    Returns
    -------
    (X_cells, n, k, cluster_cells, level_cells)
    """
    lev = np.zeros(len(X), np.int64) if level is None else np.asarray(level, np.int64)
    key = np.column_stack([np.asarray(cluster, float), lev.astype(float), np.asarray(X, float)])
    uniq, inv = np.unique(key, axis=0, return_inverse=True)
    inv = inv.ravel()
    n = np.bincount(inv, minlength=len(uniq)).astype(float)
    k = np.bincount(inv, weights=np.asarray(y, float), minlength=len(uniq))
    return uniq[:, 2:], n, k, uniq[:, 0].astype(np.int64), uniq[:, 1].astype(np.int64)


@dataclass
class CellLogit:
    """A logit fitted on cells: coefficients, cluster-robust covariance and how it was fitted.

    ``names`` are ``const``, the covariates and ``county[<code>]`` for every level but the first
    (the reference), in the order of ``params``.
    """

    params: pd.Series
    cov: np.ndarray
    n_obs: int
    n_cells: int
    n_clusters: int
    iterations: int
    features: list[str]
    levels: list[str]

    @property
    def bse(self) -> pd.Series:
        """Standard errors (square roots of the covariance's diagonal)."""
        return pd.Series(np.sqrt(np.diag(self.cov)), index=self.params.index)

    def level_effect(self) -> pd.Series:
        """Effect of every fixed-effect level (the reference level 0)."""
        if len(self.levels) <= 1:
            return pd.Series(dtype=float)
        fe = self.params[[f"county[{c}]" for c in self.levels[1:]]].to_numpy()
        return pd.Series(np.r_[0.0, fe], index=self.levels)

    def decision_function(self, X: np.ndarray, level: Sequence[str] | None = None) -> np.ndarray:
        """Linear predictor; a level not seen at fit gets the mean of the fitted level effects."""
        z = self.params["const"] + np.asarray(X, float) @ self.params[self.features].to_numpy()
        eff = self.level_effect()
        if level is not None and len(eff):
            z = z + pd.Series(np.asarray(level, dtype=object)).astype(str).map(eff).fillna(
                float(eff.mean())).to_numpy(float)
        return z

    def predict(self, X: np.ndarray, level: Sequence[str] | None = None) -> np.ndarray:
        """Probability of class 1."""
        return expit(self.decision_function(X, level))

    def effects(self, alpha: float = 0.05, include_fixed_effects: bool = False) -> pd.DataFrame:
        """Coefficients with cluster-robust inference, as :meth:`evalkit.risk.LogitModel.effects`."""
        se = self.bse.to_numpy()
        coef = self.params.to_numpy()
        q = norm.ppf(1 - alpha / 2)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = coef / se
        out = pd.DataFrame({"coef": coef, "se": se, "z": z, "p_value": 2 * norm.sf(np.abs(z)),
                            "ci_low": coef - q * se, "ci_high": coef + q * se},
                           index=pd.Index(self.params.index, name="term"))
        return with_odds_ratios(out, include_fixed_effects)


def _information(Z: np.ndarray, w: np.ndarray, lev: np.ndarray, n_lev: int) -> np.ndarray:
    """Information matrix of [Z, level dummies (level 0 the reference)] from per-level sums."""
    p = Z.shape[1]
    K = p + n_lev - 1
    H = np.empty((K, K))
    H[:p, :p] = Z.T @ (Z * w[:, None])
    if n_lev > 1:
        cross = np.column_stack([np.bincount(lev, weights=w * Z[:, j], minlength=n_lev) for j in range(p)])
        H[:p, p:] = cross[1:].T
        H[p:, :p] = cross[1:]
        H[p:, p:] = np.diag(np.bincount(lev, weights=w, minlength=n_lev)[1:])
    return H


def _score_sums(Z: np.ndarray, r: np.ndarray, lev: np.ndarray, n_lev: int, groups: np.ndarray,
                n_groups: int) -> np.ndarray:
    """Score sums per group (rows: groups; columns: Z then the level dummies)."""
    p = Z.shape[1]
    S = np.zeros((n_groups, p + n_lev - 1))
    for j in range(p):  # loop over columns, not rows
        S[:, j] = np.bincount(groups, weights=Z[:, j] * r, minlength=n_groups)
    if n_lev > 1:
        m = lev > 0
        idx = groups[m] * (n_lev - 1) + (lev[m] - 1)
        S[:, p:] = np.bincount(idx, weights=r[m], minlength=n_groups * (n_lev - 1)).reshape(n_groups, n_lev - 1)
    return S


def _newton(Z: np.ndarray, n: np.ndarray, k: np.ndarray, lev: np.ndarray, n_lev: int, maxiter: int,
            tol: float) -> tuple[np.ndarray, int]:
    """Newton–Raphson from zero; stops when the step is below ``tol`` (max abs)."""
    p = Z.shape[1]
    beta = np.zeros(p + n_lev - 1)
    for it in range(1, maxiter + 1):  # loop over iterations
        eta = Z @ beta[:p] + (np.r_[0.0, beta[p:]][lev] if n_lev > 1 else 0.0)
        mu = expit(eta)
        r = k - n * mu
        g = np.r_[Z.T @ r, np.bincount(lev, weights=r, minlength=n_lev)[1:]] if n_lev > 1 else Z.T @ r
        H = _information(Z, n * mu * (1 - mu), lev, n_lev)
        try:
            step = np.linalg.solve(H, g)
        except np.linalg.LinAlgError:
            raise RiskModelError("cell logit: singular information matrix (collinear features or a "
                                 "county without variation)") from None
        beta = beta + step
        if not np.all(np.isfinite(beta)):
            raise RiskModelError("cell logit: non-finite coefficients (separation or collinearity)")
        if np.max(np.abs(step)) < tol:
            return beta, it
    raise RiskModelError(f"cell logit did not converge in {maxiter} Newton steps (separation?)")


def fit_logit_cells(X: np.ndarray, n: np.ndarray, k: np.ndarray, cluster: np.ndarray, *,
                    features: Sequence[str], level: np.ndarray | None = None,
                    levels: Sequence[str] | None = None, maxiter: int = 100, tol: float = 1e-10) -> CellLogit:
    """Maximum-likelihood logit on cells with standard errors clustered by ``cluster``.

    The covariance is the sandwich H⁻¹ (Σ_g s_g s_g') H⁻¹ with the small-sample factor
    G/(G−1) · (N−1)/(N−K) (N rows = Σ n, K parameters, G clusters) — statsmodels' cluster
    covariance of a row-level fit, which it reproduces exactly.

    Parameters
    ----------
    X : ndarray, shape (cells, p)
        Covariates (no constant: it is added).
    n, k : ndarray
        Rows and positives of each cell (frequency weights).
    cluster : ndarray
        Cluster of each cell (any hashable codes).
    features : sequence of str
        Names of X's columns.
    level : ndarray of int, optional
        Fixed-effect level code (0..L−1) of each cell; level 0 is the reference.
    levels : sequence of str, optional
        Names of the levels (county codes).
    maxiter, tol
        Newton iterations and the step size at which they stop.
    """
    X = np.asarray(X, float)
    n = np.asarray(n, float)
    k = np.asarray(k, float)
    if X.ndim != 2 or X.shape[1] != len(features):
        raise RiskModelError(f"X has shape {X.shape}, expected {len(features)} feature columns")
    if np.any(k < 0) or np.any(k > n) or np.any(n <= 0):
        raise RiskModelError("cells need 0 <= k <= n and n > 0")
    N, pos = float(n.sum()), float(k.sum())
    if pos == 0 or pos == N:
        raise RiskModelError("cell logit: the labels are all of one class; a logit needs both")
    lev = np.zeros(len(X), np.int64) if level is None else np.asarray(level, np.int64)
    names_lev = [str(v) for v in levels] if levels is not None else [str(i) for i in range(int(lev.max()) + 1)]
    n_lev = len(names_lev) if level is not None else 1
    Z = np.column_stack([np.ones(len(X)), X])
    beta, its = _newton(Z, n, k, lev, n_lev, maxiter, tol)
    p = Z.shape[1]
    mu = expit(Z @ beta[:p] + (np.r_[0.0, beta[p:]][lev] if n_lev > 1 else 0.0))
    Hinv = np.linalg.inv(_information(Z, n * mu * (1 - mu), lev, n_lev))
    groups, _ = pd.factorize(pd.Series(np.asarray(cluster)), sort=False)
    G = int(groups.max()) + 1
    S = _score_sums(Z, k - n * mu, lev, n_lev, groups, G)
    K = len(beta)
    cov = Hinv @ (S.T @ S) @ Hinv * (G / (G - 1.0)) * ((N - 1.0) / (N - K))
    names = ["const", *features, *[f"county[{c}]" for c in names_lev[1:]]] if n_lev > 1 else \
        ["const", *features]
    return CellLogit(params=pd.Series(beta, index=names), cov=cov, n_obs=int(round(N)), n_cells=len(X),
                     n_clusters=G, iterations=its, features=list(features),
                     levels=names_lev if n_lev > 1 else [])


class CellLogitModel(RiskModel):
    """:class:`~evalkit.risk.LogitModel`'s specification fitted on cells (sufficient statistics).

    ``fit(X, y)`` collapses the rows itself (the in-memory path); :meth:`fit_cells` takes cells
    collapsed elsewhere (DuckDB over the province store). Either way the estimates and
    village-clustered standard errors are those of the row-level logit. Features constant in
    the training data are dropped (``dropped_features_``); with ``county_effects`` every county
    but the first gets a fixed effect, and a county unseen at fit gets the mean effect.

    Parameters
    ----------
    features : sequence of str, optional
        Default :data:`~evalkit.risk.features.CORE_FEATURES`.
    county_effects : bool
    cluster, county_col : str
    alpha : float
        1 − confidence level of :meth:`effects`.
    """

    default_features = CORE_FEATURES

    def __init__(self, features: Sequence[str] | None = None, county_effects: bool = True,
                 cluster: str = "village_code", county_col: str = "county_code", alpha: float = 0.05):
        self.features = features
        self.county_effects = county_effects
        self.cluster = cluster
        self.county_col = county_col
        self.alpha = alpha

    def fit(self, X: Any, y: Any) -> "CellLogitModel":
        """Collapse the rows of ``X`` into cells and fit (see :meth:`fit_cells`)."""
        Xf, yy = self.fit_start(X, y)
        cols = self.columns_for(Xf)
        need = [self.cluster, *([self.county_col] if self.county_effects else [])]
        require_columns(Xf, need, "CellLogitModel")
        cells = Xf[[*need, *cols]].copy()
        for c in cols:
            cells[c] = self.matrix(Xf, [c], "CellLogitModel")[:, 0]
        cells["k"] = yy.astype(float)
        g = cells.groupby([*need, *cols], sort=False, dropna=False)["k"].agg(["size", "sum"]).reset_index()
        return self.fit_cells(g.rename(columns={"size": "n", "sum": "k"}), cols)

    def fit_cells(self, cells: pd.DataFrame, features: Sequence[str] | None = None) -> "CellLogitModel":
        """Fit on cells: columns ``cluster``, ``county_col``, the features, ``n`` (rows) and ``k`` (positives)."""
        cols = list(features if features is not None else (self.features or self.default_features))
        require_columns(cells, [self.cluster, *cols, "n", "k"], "CellLogitModel cells")
        self.classes_ = np.array([0, 1])
        a = self.matrix(cells, cols, "CellLogitModel")
        const = np.ptp(a, axis=0) == 0 if len(a) else np.ones(len(cols), bool)
        self.dropped_features_ = [c for c, k in zip(cols, const) if k]
        self.features_ = [c for c, k in zip(cols, const) if not k]
        level, levels = None, None
        if self.county_effects:
            require_columns(cells, [self.county_col], "CellLogitModel county_effects")
            cc = cells[self.county_col].astype(str)
            levels = sorted(cc.unique())
            level = pd.Categorical(cc, categories=levels).codes.astype(np.int64)
        self.result_ = fit_logit_cells(a[:, ~const], cells["n"].to_numpy(float), cells["k"].to_numpy(float),
                                       cells[self.cluster].to_numpy(), features=self.features_, level=level,
                                       levels=levels)
        self.params_ = self.result_.params
        self.counties_ = self.result_.levels
        self.n_obs_, self.n_cells_, self.n_clusters_ = self.result_.n_obs, self.result_.n_cells, self.result_.n_clusters
        return self

    def score_rows(self, X: pd.DataFrame) -> np.ndarray:
        """Logistic of the linear predictor (+ county effect)."""
        lev = X[self.county_col].to_numpy() if self.county_effects and self.county_col in X.columns else None
        return self.result_.predict(self.matrix(X, self.features_, "CellLogitModel"), lev)

    def effects(self, alpha: float | None = None, include_fixed_effects: bool = False) -> pd.DataFrame:
        """Coefficients with cluster-robust inference (:meth:`CellLogit.effects`)."""
        if not hasattr(self, "result_"):
            raise RiskModelError("CellLogitModel is not fitted")
        return self.result_.effects(self.alpha if alpha is None else alpha, include_fixed_effects)
