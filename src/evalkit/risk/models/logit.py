"""Interpretable risk model: logistic regression with village-clustered standard errors."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit

from evalkit.errors import RiskModelError
from evalkit.risk.features import CORE_FEATURES
from evalkit.risk.models.base import RiskModel, as_frame, with_odds_ratios
from evalkit.risk.panel import require_columns

__all__ = ["LogitModel"]


class LogitModel(RiskModel):
    """Logistic regression with standard errors clustered by village (statsmodels).

    Features that are constant in the training data (e.g. ``exited`` when only exited
    households are modelled) are dropped and listed in ``dropped_features_``. With
    ``county_effects`` a dummy per county (first as reference) absorbs county shifts; a county
    unseen at fit gets the mean of the fitted county effects.

    Parameters
    ----------
    features : sequence of str, optional
        Default :data:`~evalkit.risk.features.CORE_FEATURES`.
    county_effects : bool
        Add county fixed effects.
    cluster : str or None
        Column of X with the clusters of the covariance (None: the usual ML covariance).
    county_col : str
    alpha : float
        1 − confidence level of :meth:`effects`.
    maxiter : int
    """

    default_features = CORE_FEATURES

    def __init__(self, features: Sequence[str] | None = None, county_effects: bool = False,
                 cluster: str | None = "village_code", county_col: str = "county_code",
                 alpha: float = 0.05, maxiter: int = 100):
        self.features = features
        self.county_effects = county_effects
        self.cluster = cluster
        self.county_col = county_col
        self.alpha = alpha
        self.maxiter = maxiter

    def _design(self, X: pd.DataFrame) -> np.ndarray:
        a = self.matrix(X, self.features_, "LogitModel")
        return np.column_stack([np.ones(len(X)), a])

    def _county_dummies(self, Xf: pd.DataFrame) -> tuple[np.ndarray | None, list[str]]:
        """County dummies (first county the reference) and their names; None without county effects."""
        self.counties_: list[str] = []
        if not self.county_effects:
            return None, []
        require_columns(Xf, [self.county_col], "LogitModel county_effects")
        cc = Xf[self.county_col].astype(str)
        self.counties_ = sorted(cc.unique())
        if len(self.counties_) <= 1:
            return None, []
        codes = pd.Categorical(cc, categories=self.counties_).codes
        D = np.zeros((len(Xf), len(self.counties_) - 1))
        rows = np.flatnonzero(codes > 0)
        D[rows, codes[rows] - 1] = 1.0
        return D, [f"county[{c}]" for c in self.counties_[1:]]

    def _fit_kwargs(self, Xf: pd.DataFrame) -> dict[str, Any]:
        if self.cluster is None:
            return {}
        require_columns(Xf, [self.cluster], "LogitModel cluster")
        groups = pd.factorize(Xf[self.cluster])[0]
        return {"cov_type": "cluster", "cov_kwds": {"groups": groups}}

    def fit(self, X: Any, y: Any) -> "LogitModel":
        """Maximum-likelihood fit; RiskModelError when y has one class or the fit fails."""
        import statsmodels.api as sm  # heavy import, only needed when a logit is fitted

        Xf, yy = self.fit_start(X, y)
        if yy.min() == yy.max():
            raise RiskModelError(f"LogitModel: the training labels are all {yy[0]}; a logit needs both classes")
        cols = self.columns_for(Xf)
        a = self.matrix(Xf, cols, "LogitModel")
        const = np.ptp(a, axis=0) == 0 if len(a) else np.ones(len(cols), bool)
        self.dropped_features_ = [c for c, k in zip(cols, const) if k]
        self.features_ = [c for c, k in zip(cols, const) if not k]
        parts = [np.ones((len(Xf), 1)), a[:, ~const]]
        names = ["const", *self.features_]
        D, dnames = self._county_dummies(Xf)
        if D is not None:
            parts.append(D)
            names += dnames
        exog = np.column_stack(parts)
        fit_kw = self._fit_kwargs(Xf)
        try:
            res = sm.Logit(yy, exog).fit(method="newton", disp=0, maxiter=self.maxiter, **fit_kw)
        except Exception as e:  # singular design, perfect separation ...
            raise RiskModelError(f"LogitModel fit failed ({type(e).__name__}: {e}); check for features "
                                 "that separate the classes or are collinear") from None
        if not np.all(np.isfinite(res.params)):
            raise RiskModelError("LogitModel fit gave non-finite coefficients (separation or collinearity)")
        self.result_ = res
        self.param_names_ = names
        self.params_ = pd.Series(np.asarray(res.params), index=names)
        fe = self.params_[[n for n in names if n.startswith("county[")]]
        self.county_effect_ = pd.Series(
            np.r_[0.0, fe.to_numpy()], index=self.counties_) if self.counties_ else pd.Series(dtype=float)
        self.n_obs_ = len(Xf)
        self.n_clusters_ = int(len(np.unique(fit_kw["cov_kwds"]["groups"]))) if fit_kw else None
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """Linear predictor x'β (+ county effect)."""
        Xf = as_frame(X)
        z = self._design(Xf) @ self.params_[["const", *self.features_]].to_numpy()
        if self.county_effects and len(self.counties_) > 1:
            fe = Xf[self.county_col].astype(str).map(self.county_effect_)
            z = z + fe.fillna(float(self.county_effect_.mean())).to_numpy(dtype=float)
        return z

    def score_rows(self, X: pd.DataFrame) -> np.ndarray:
        """Logistic of the linear predictor."""
        return expit(self.decision_function(X))

    def effects(self, alpha: float | None = None, include_fixed_effects: bool = False) -> pd.DataFrame:
        """Coefficients with (cluster-robust) inference.

        Returns
        -------
        DataFrame
            Index = term; ``coef, se, z, p_value, ci_low, ci_high, odds_ratio, or_ci_low,
            or_ci_high`` (odds ratio = exp(coef), CI at level 1 − alpha).
        """
        if not hasattr(self, "result_"):
            raise RiskModelError("LogitModel is not fitted")
        a = self.alpha if alpha is None else alpha
        r = self.result_
        ci = np.asarray(r.conf_int(alpha=a))
        out = pd.DataFrame({
            "coef": np.asarray(r.params), "se": np.asarray(r.bse), "z": np.asarray(r.tvalues),
            "p_value": np.asarray(r.pvalues), "ci_low": ci[:, 0], "ci_high": ci[:, 1],
        }, index=pd.Index(self.param_names_, name="term"))
        return with_odds_ratios(out, include_fixed_effects)
