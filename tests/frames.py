"""Test fixtures that build small data frames (imported by tests as ``from frames import ...``).

``tests/`` is on pytest's ``pythonpath``; benchmarks that need a frame insert the tests directory
on ``sys.path``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["frame_county"]


def frame_county(seed: int = 0, county: str = "610101", n_villages: int = 30, share_poverty: float = 0.3,
                 mean_hh: int = 60, year: int = 2018, income_median: float = 6000.0, income_sigma: float = 0.5,
                 guarantee_fail: float = 0.01, approval: float = 0.95
                 ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """A small random county frame (villages, households, truth of ``year``) for tests and benchmarks.

    Not the generating process of :func:`evalkit.synth.generate`: independent draws with stated
    rates, so that sampling and estimation can be checked against a frame whose truth is easy to compute.
    Registration 35% in poverty villages and 12% elsewhere, 80% of the registered exited in
    2015-2019, sizes 1-6, log-normal income, each guarantee failing with ``guarantee_fail``.
    """
    rng = np.random.default_rng(seed)
    vcode = np.array([f"{county}{i:06d}" for i in range(1, n_villages + 1)])
    villages = pd.DataFrame({"village_code": vcode, "county_code": county, "township_name": "t",
                             "village_name": vcode, "is_poverty_village": rng.random(n_villages) < share_poverty})
    nh = rng.integers(mean_hh // 3, 2 * mean_hh, n_villages)
    v = np.repeat(vcode, nh)
    n = v.size
    pov = np.repeat(villages["is_poverty_village"].to_numpy(), nh)
    registered = rng.random(n) < np.where(pov, 0.35, 0.12)
    exit_year = np.where(registered & (rng.random(n) < 0.8), rng.integers(2015, 2020, n), -1)
    households = pd.DataFrame({
        "household_id": [f"{county}{i:010d}" for i in range(n)], "village_code": v, "county_code": county,
        "household_size": rng.integers(1, 7, n), "registered": registered,
        "poverty_type": np.where(registered, "general", None), "main_cause": np.where(registered, "illness", None),
        "registration_year": pd.array(np.where(registered, 2014, 0), dtype="Int64"),
        "exit_year": pd.array(exit_year, dtype="Int64"),
    })
    households.loc[households["exit_year"] < 0, "exit_year"] = pd.NA
    households.loc[~households["registered"], "registration_year"] = pd.NA
    truth = pd.DataFrame({"household_id": households["household_id"], "year": year, "county_code": county,
                          "true_income_per_capita": rng.lognormal(np.log(income_median), income_sigma, n)})
    for g in ("food_clothing", "education", "medical", "housing", "water"):
        truth[f"true_{g}_ok"] = rng.random(n) > guarantee_fail
    truth["true_poor"] = False
    truth["true_approves"] = rng.random(n) < approval
    return villages, households, truth
