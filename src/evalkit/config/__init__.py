"""Policy thresholds as data: :class:`Policy` and :func:`load_policy`.

The entry points (command line, notebook parameters, ``evalkit demo``) call :func:`load_policy`
once, with the user's override file if any, and pass the one :class:`Policy` object down to
every function that reads a threshold.
"""
from evalkit.config.policy import Policy, RiskDefaults, SurveyDefaults, load_policy
from evalkit.errors import ConfigError

__all__ = ["Policy", "SurveyDefaults", "RiskDefaults", "ConfigError", "load_policy"]
