"""The four risk models behind one scikit-learn interface (``fit(X, y)``, ``predict_proba(X)`` → n×2).

:class:`PolicyRuleModel` (what offices do today), :class:`LogitModel` (interpretable, clustered
standard errors), :class:`BoostingModel` (calibrated on a later year) and
:class:`VulnerabilityModel` (Chaudhuri–Jalan–Suryahadi three-step FGLS).
"""
from __future__ import annotations

from evalkit.risk.models.base import RANDOM_STATE, RiskModel
from evalkit.risk.models.boosting import BoostingModel
from evalkit.risk.models.logit import LogitModel
from evalkit.risk.models.rule import PolicyRuleModel
from evalkit.risk.models.vulnerability import VulnerabilityModel

__all__ = ["RANDOM_STATE", "RiskModel", "PolicyRuleModel", "LogitModel", "BoostingModel", "VulnerabilityModel",
           "default_models"]


def default_models(random_state: int = RANDOM_STATE, county_effects: bool = True) -> dict[str, RiskModel]:
    """The four models with their default settings: rule, logit, boosting, vulnerability."""
    return {
        "rule": PolicyRuleModel(),
        "logit": LogitModel(county_effects=county_effects),
        "boosting": BoostingModel(random_state=random_state),
        "vulnerability": VulnerabilityModel(),
    }
