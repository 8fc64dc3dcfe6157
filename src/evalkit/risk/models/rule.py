"""The policy rule offices apply today, as a ranking score (the baseline of every comparison)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit

from evalkit.risk.models.base import RiskModel, as_frame
from evalkit.risk.panel import require_columns

__all__ = ["PolicyRuleModel"]


class PolicyRuleModel(RiskModel):
    """The rule offices apply today (docs/policy.md [D4]), as a ranking score.

    Flag = income below the monitoring line at t (``log_income_ratio < 0``) AND a risk factor
    present (any of ``risk_factors`` > 0; default a shock at t or a failed guarantee at t — the
    register's own 'monitored' / 'edge' definition). Score = 0.5·flag + 0.5·logistic(−log ratio):
    flagged households rank first, and within each group lower income ranks higher, so the rule
    can fill a list of any size. The score is a rank, not a calibrated probability; ``fit``
    learns nothing.

    Parameters
    ----------
    risk_factors : sequence of str
        Columns whose positive value means "a risk is present".
    income_col : str
        Log income relative to the monitoring line.
    """

    def __init__(self, risk_factors: Sequence[str] = ("shock_any", "n_guarantee_fail"),
                 income_col: str = "log_income_ratio"):
        self.risk_factors = risk_factors
        self.income_col = income_col

    def fit(self, X: Any, y: Any) -> "PolicyRuleModel":
        """Record the classes (nothing to learn)."""
        Xf, _ = self.fit_start(X, y)
        require_columns(Xf, [self.income_col, *self.risk_factors], "PolicyRuleModel")
        return self

    def flag(self, X: Any) -> np.ndarray:
        """The rule itself: below the monitoring line and a risk factor present."""
        Xf = as_frame(X)
        r = Xf[self.income_col].astype(float).to_numpy()
        risk = (Xf[list(self.risk_factors)].astype(float).to_numpy() > 0).any(axis=1)
        return (r < 0) & risk

    def score_rows(self, X: pd.DataFrame) -> np.ndarray:
        """0.5·flag + 0.5·logistic(−log ratio)."""
        r = X[self.income_col].astype(float).to_numpy()
        return 0.5 * self.flag(X) + 0.5 * np.nan_to_num(expit(-r), nan=0.5)
