"""What every risk model shares: one scikit-learn interface (``fit(X, y)``, ``predict_proba(X)`` → n×2)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin

from evalkit.errors import RiskModelError
from evalkit.risk.features import feature_columns

__all__ = ["RANDOM_STATE", "RiskModel", "as_frame", "with_odds_ratios"]

#: Seed of every random component (boosting); results are reproducible run to run.
RANDOM_STATE = 0


def as_frame(X: Any) -> pd.DataFrame:
    """``X`` as a DataFrame (an array gets columns ``x0, x1, ...``)."""
    if isinstance(X, pd.DataFrame):
        return X
    a = np.asarray(X)
    if a.ndim != 2:
        raise RiskModelError(f"X must be 2-dimensional, got shape {a.shape}")
    return pd.DataFrame(a, columns=[f"x{i}" for i in range(a.shape[1])])


def _binary_y(y: Any, n: int) -> np.ndarray:
    yy = np.asarray(y).astype(float).ravel()
    if len(yy) != n:
        raise RiskModelError(f"X has {n} rows but y has {len(yy)}")
    if np.isnan(yy).any() or not np.isin(yy, (0.0, 1.0)).all():
        raise RiskModelError("y must be binary 0/1 without missing values")
    return yy.astype(np.int64)


class RiskModel(ClassifierMixin, BaseEstimator):
    """Base of the risk models: column selection, float matrices, n×2 probabilities.

    A subclass implements ``fit`` (starting with :meth:`fit_start`) and ``score_rows`` (the
    probability, or score in [0, 1], of class 1 for each row).
    """

    default_features: tuple[str, ...] = ()

    def columns_for(self, X: pd.DataFrame) -> list[str]:
        """Input columns: ``features`` when set, else the model's defaults when present, else every
        :func:`~evalkit.risk.features.feature_columns` column."""
        if getattr(self, "features", None) is not None:
            cols = list(self.features)
        elif all(c in X.columns for c in self.default_features) and self.default_features:
            cols = list(self.default_features)
        else:
            cols = feature_columns(X)
        missing = [c for c in cols if c not in X.columns]
        if missing:
            raise RiskModelError(f"{type(self).__name__}: feature column(s) {missing} not in X")
        return cols

    @staticmethod
    def matrix(X: pd.DataFrame, cols: Sequence[str], what: str) -> np.ndarray:
        """Float matrix of ``cols``; missing or infinite values raise (models do not impute)."""
        a = X[list(cols)].astype(float).to_numpy()
        bad = ~np.isfinite(a)
        if bad.any():
            worst = [cols[j] for j in np.flatnonzero(bad.any(axis=0))][:5]
            raise RiskModelError(f"{what}: missing or infinite values in feature(s) {worst}; impute or drop them")
        return a

    def fit_start(self, X: Any, y: Any) -> tuple[pd.DataFrame, np.ndarray]:
        """Check ``X`` and binary ``y`` and record the classes."""
        Xf = as_frame(X)
        yy = _binary_y(y, len(Xf))
        self.classes_ = np.array([0, 1])
        return Xf, yy

    def score_rows(self, X: pd.DataFrame) -> np.ndarray:  # pragma: no cover - abstract
        """Probability (or score in [0, 1]) of class 1 per row."""
        raise NotImplementedError

    def predict_proba(self, X: Any) -> np.ndarray:
        """Probabilities (or scores in [0, 1]) of class 0 and class 1, shape (n, 2)."""
        if not hasattr(self, "classes_"):
            raise RiskModelError(f"{type(self).__name__} is not fitted; call fit(X, y) first")
        p = np.clip(self.score_rows(as_frame(X)), 0.0, 1.0)
        return np.column_stack([1.0 - p, p])

    def predict(self, X: Any) -> np.ndarray:
        """Class with the larger probability (a 0.5 cut; use the scores for ranking)."""
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(np.int64)


def with_odds_ratios(out: pd.DataFrame, include_fixed_effects: bool) -> pd.DataFrame:
    """A logit's coefficient table (``coef``, ``ci_low``, ``ci_high``) with odds ratios and their
    interval; the county fixed effects dropped unless ``include_fixed_effects``."""
    out = out.assign(odds_ratio=np.exp(out["coef"]), or_ci_low=np.exp(out["ci_low"]),
                     or_ci_high=np.exp(out["ci_high"]))
    if not include_fixed_effects:
        out = out[~out.index.str.startswith("county[")]
    return out
