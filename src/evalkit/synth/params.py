"""Parameters of the synthetic generating process: the study years and :data:`TRUE_PARAMS`.

Every number here is a parameter of the simulation (written to ``truth_params.json`` with each
dataset), not a policy threshold: policy lines and thresholds come from :class:`evalkit.config.Policy`.
"""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["YEARS", "TRUE_PARAMS"]

#: Years of every household-year table (register 2014, exits 2015-2020, monitoring to 2025).
YEARS = np.arange(2014, 2026)

#: True parameters of the generating process (see :mod:`evalkit.synth`).
TRUE_PARAMS: dict[str, Any] = {
    "household_size_probs": {"1": 0.12, "2": 0.22, "3": 0.22, "4": 0.20, "5": 0.13, "6": 0.07, "7": 0.03, "8": 0.01},
    "income": {
        "base_log_ratio_to_line": 0.80,
        "poverty_county_shift": -0.25,
        "sigma_county": 0.15,
        "sigma_village": 0.25,
        "sigma_household": 0.50,
        "beta_able_share": 0.45,
        "beta_disability": -0.25,
        "beta_chronic": -0.20,
        "beta_dependent_share": -0.30,
        "poor_growth": 0.22,
        "poor_growth_sd": 0.18,
        "growth": 0.07,
        "growth_2020": 0.02,
        "growth_sd": 0.12,
    },
    "registration": {"noise_sd_range": [0.15, 0.45], "guarantee_weight": 0.6,
                     "year_probs": {"2014": 0.8, "2015": 0.12, "2016": 0.08}},
    "exit": {"pressure_beta": [0.8, 10.0], "recorded_income_noise_sd": 0.10, "remaining_share_at_exit": 0.03},
    "risk_model": {
        "features": ["chronic_illness", "disability", "no_labour", "dependent_share",
                     "log_income_ratio", "shock_any", "assistance", "exited"],
        "coefficients": {
            "intercept": -3.3, "chronic_illness": 0.5, "disability": 0.7, "no_labour": 0.6,
            "dependent_share": 0.5, "log_income_ratio": -1.6, "shock_any": 1.0,
            "assistance": -0.3, "exited": 0.4,
        },
        "county_shift_sd": 0.35,
        "event_income_share_of_monitoring_line": "1 - 0.55 * Beta(1, 3)",
        "event_guarantee_failure_prob": 0.03,
        "no_event_floor_share_of_monitoring_line": [1.01, 1.20],
        "definitions": {
            "chronic_illness": "a member had a chronic illness at registration",
            "disability": "a member disabled at registration or a disability onset up to t",
            "no_labour": "no member able to work",
            "dependent_share": "(members under 16 or 65 and over in 2014) / household size",
            "log_income_ratio": "ln(recorded income per capita at t / monitoring line at t)",
            "shock_any": "any shock recorded at t",
            "assistance": "assistance received at t",
            "exited": "registered household exited by t (else not registered at t)",
        },
    },
    "shocks": {"illness": 0.04, "illness_chronic_extra": 0.06, "disability_onset": 0.004,
               "village_disaster": 0.06, "disaster_hit": 0.5, "accident": 0.01,
               "project_failure_registered": 0.03, "project_failure_other": 0.01,
               "job_loss": 0.04, "job_loss_2020": 0.15},
    "guarantee_fix_rate": {"registered_poor": 0.6, "exited": 0.7, "non_registered_range": [0.45, 0.85]},
    "approval": {"base_range": [0.93, 0.995], "penalty_if_poor": 0.25},
}
