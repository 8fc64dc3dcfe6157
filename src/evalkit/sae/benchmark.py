"""Benchmarking village estimates to the county's direct estimate (ratio benchmarking).

The village estimates, aggregated with their register population (persons in the domain of the
indicator), are scaled by one factor so that they add up to the county's design-based direct
estimate. The factor is applied to the estimates only; the MSEs are those of the unbenchmarked
estimates (the adjustment is small when the model fits: the benchmark script reports it).
"""
from __future__ import annotations

import numpy as np

__all__ = ["ratio_benchmark"]


def ratio_benchmark(est: np.ndarray, population: np.ndarray, county_direct: float) -> tuple[np.ndarray, float]:
    """Scale ``est`` so that ``sum(population * est) / sum(population)`` equals ``county_direct``.

    Returns
    -------
    (benchmarked estimates, factor); factor 1 when the aggregate is 0 or not finite.
    """
    est, pop = np.asarray(est, float), np.asarray(population, float)
    ok = np.isfinite(est) & (pop > 0)
    agg = float((est[ok] * pop[ok]).sum() / pop[ok].sum()) if ok.any() else float("nan")
    factor = county_direct / agg if np.isfinite(agg) and agg > 0 and np.isfinite(county_direct) else 1.0
    return est * factor, float(factor)
