"""Verdicts of the exit criteria: with their uncertainty, and by the official point rule.

A criterion passes under uncertainty when its whole confidence interval lies on the passing side
of the threshold, fails when it lies wholly on the failing side, and is borderline otherwise; the
official rule compares the point estimate alone. A county exits only when every criterion passes
(one failure vetoes, docs/policy.md §3).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from evalkit.errors import ExitAssessmentError

__all__ = ["verdicts", "decision"]


def verdicts(est: Any, lci: Any, uci: Any, threshold: Any, direction: Any) -> tuple[np.ndarray, np.ndarray]:
    """Uncertainty-aware and official verdicts (vectorized).

    'below' criteria pass when the rate is strictly below the threshold: verdict 'pass' when
    ``uci < threshold`` (the whole CI passes), 'fail' when ``lci >= threshold``, else
    'borderline'; official: ``est < threshold``. 'at_least' criteria pass when the rate is at
    least the threshold: 'pass' when ``lci >= threshold``, 'fail' when ``uci < threshold``;
    official: ``est >= threshold``. Exact comparisons: a CI touching the threshold is not
    wholly on either side unless the touching point itself passes.

    Returns
    -------
    (verdict, official_verdict) : arrays of str
    """
    est, lci, uci, thr = (np.asarray(x, dtype=float) for x in (est, lci, uci, threshold))
    direction = np.asarray(direction, dtype=object)
    if not np.isin(direction, ["below", "at_least"]).all():
        raise ExitAssessmentError(f"direction must be 'below' or 'at_least', got {sorted(set(direction.ravel()))}")
    below = direction == "below"
    ci_pass = np.where(below, uci < thr, lci >= thr)
    ci_fail = np.where(below, lci >= thr, uci < thr)
    verdict = np.where(ci_pass, "pass", np.where(ci_fail, "fail", "borderline")).astype(object)
    official = np.where(np.where(below, est < thr, est >= thr), "pass", "fail").astype(object)
    return verdict, official


def decision(criteria: pd.DataFrame) -> dict[str, str]:
    """County decision from :func:`estimate_criteria`'s table.

    Returns
    -------
    dict
        ``overall``: 'fail' if any criterion fails, 'pass' if all pass, else 'borderline';
        ``official_point_rule``: 'pass' if every point estimate passes, else 'fail'.
    """
    v = criteria["verdict"].to_numpy()
    overall = "fail" if (v == "fail").any() else ("pass" if (v == "pass").all() else "borderline")
    official = "pass" if (criteria["official_verdict"].to_numpy() == "pass").all() else "fail"
    return {"overall": overall, "official_point_rule": official}
