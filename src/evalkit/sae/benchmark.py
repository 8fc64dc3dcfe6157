"""Benchmarking village estimates to the county's direct estimate (ratio benchmarking).

The village estimates, aggregated with their register population (persons in the domain of the
indicator), are scaled by one factor so that they add up to the county's design-based direct
estimate. :func:`ratio_benchmark_columns` does it for many replicates at once: the EBP's parametric
bootstrap benchmarks every replicate's estimates to that replicate's own county direct estimate, so the
MSE of the benchmarked estimate includes the sampling error of the benchmark
(:func:`evalkit.sae.ebp.ebp_bootstrap`). Fay-Herriot's benchmarked estimates have no MSE of their own.
"""
from __future__ import annotations

import numpy as np

__all__ = ["ratio_benchmark", "ratio_benchmark_columns"]


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


def ratio_benchmark_columns(est: np.ndarray, population: np.ndarray, county_direct: np.ndarray) -> np.ndarray:
    """:func:`ratio_benchmark` of every column of ``est`` (A, B) to ``county_direct`` (B,) at once."""
    est, pop = np.asarray(est, float), np.asarray(population, float)[:, None]
    ok = np.isfinite(est) & (pop > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        agg = np.where(ok, est * pop, 0.0).sum(0) / np.where(ok, pop, 0.0).sum(0)
        target = np.asarray(county_direct, float)
        factor = np.where(np.isfinite(agg) & (agg > 0) & np.isfinite(target), target / agg, 1.0)
    return est * factor[None, :]
