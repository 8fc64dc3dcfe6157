"""Village estimates of one county-year by the chosen method, with MSE, interval, CV and the method used.

With the EBP, townships (digits 7-9 of the village code) get their estimates and bootstrap MSEs
too (``townships``); Fay-Herriot and direct estimates are for villages only.

``method``: ``"ebp"`` (unit level, :mod:`~evalkit.sae.ebp`), ``"fh"`` (area level,
:mod:`~evalkit.sae.fay_herriot` on the direct estimates with GVF variances) or ``"direct"``.
Intervals are ``est +- z sqrt(mse)``; rates (estimate and interval) are truncated to [0, 1].
With ``benchmark=True`` the model estimates benchmarked to the county's direct estimate
(:func:`~evalkit.sae.benchmark.ratio_benchmark`) are added as ``est_benchmarked``; with the EBP also
``mse_benchmarked``, ``lci_benchmarked`` and ``uci_benchmarked``: the bootstrap benchmarks every replicate
to its own county direct estimate, so this MSE includes the benchmark's sampling error. ``est``, ``mse``
and the interval stay those of the unbenchmarked model (benchmarks/sae.py compares both).

**When the direct estimate is preferred**: a sampled village with at least 30 sampled households in
the indicator's domain whose direct estimate has a positive design variance, a CV of at most 20% and
a design variance not above the model's MSE keeps its direct estimate (``method`` column ``direct``);
otherwise the model estimate is used.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import ndtri

from evalkit.errors import ParameterError
from evalkit.sae.benchmark import ratio_benchmark
from evalkit.sae.direct import DirectEstimates, direct_village_estimates
from evalkit.sae.ebp import INDICATORS, EbpResult, ebp_bootstrap
from evalkit.sae.fay_herriot import FayHerriotFit, fit_fay_herriot
from evalkit.sae.units import CountyUnits

__all__ = ["METHODS", "DIRECT_CV_MAX", "DIRECT_MIN_N", "VillageEstimates", "estimate_villages"]

METHODS = ("ebp", "fh", "direct")
#: Largest CV of a direct estimate that may be preferred to the model's.
DIRECT_CV_MAX = 0.20
#: Fewest sampled households of a village (in the indicator's domain) for its direct estimate to be preferred: with
#: fewer, the design variance is itself too unstable to compare (a cell of one household adds no variance at all).
DIRECT_MIN_N = 30
_RATES = ("poverty_incidence", "wrongly_exited_rate", "missed_poor_rate")


@dataclass
class VillageEstimates:
    """Estimates per village (index village_code): a frame per indicator with ``est, mse, lci, uci, cv, method``."""

    frames: dict[str, pd.DataFrame]
    direct: DirectEstimates
    method: str
    ebp: EbpResult | None
    fh: dict[str, FayHerriotFit]
    benchmark_factors: dict[str, float]
    townships: dict[str, pd.DataFrame] | None = None


def _county_direct(cu: CountyUnits, d: DirectEstimates) -> dict[str, float]:
    p = cu.persons.sum()
    out = dict(d.county)
    out["poverty_incidence"] = float((p["poor"] + p["exited"] * out["wrongly_exited_rate"]
                                      + p["non_registered"] * out["missed_poor_rate"]) / p.sum())
    return out


def _population(cu: CountyUnits, k: str) -> np.ndarray:
    p = cu.persons
    return {"wrongly_exited_rate": p["exited"], "missed_poor_rate": p["non_registered"]}.get(k, p.sum(axis=1)).to_numpy(
        float)


def _frame(est: np.ndarray, mse: np.ndarray, used: np.ndarray, rate: bool, z: float, index: pd.Index) -> pd.DataFrame:
    se = np.sqrt(mse)
    lo, hi = est - z * se, est + z * se
    if rate:
        # a linear model (Fay-Herriot) can go below 0 near 0: rates are truncated to [0, 1]
        est, lo, hi = np.clip(est, 0, 1), np.clip(lo, 0, 1), np.clip(hi, 0, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cv = np.where(np.abs(est) > 0, se / np.abs(est), np.nan)
    return pd.DataFrame({"est": est, "mse": mse, "lci": lo, "uci": hi, "cv": cv, "method": used}, index=index)


def _benchmark_interval(frame: pd.DataFrame, mse: np.ndarray, rate: bool, z: float) -> None:
    """Add ``mse_benchmarked``, ``lci_benchmarked``, ``uci_benchmarked`` around ``est_benchmarked``."""
    est = frame["est_benchmarked"].to_numpy(float)
    lo, hi = est - z * np.sqrt(mse), est + z * np.sqrt(mse)
    frame["mse_benchmarked"] = mse
    frame["lci_benchmarked"] = np.clip(lo, 0, 1) if rate else lo
    frame["uci_benchmarked"] = np.clip(hi, 0, 1) if rate else hi


def estimate_villages(cu: CountyUnits, fs: pd.DataFrame, method: str = "ebp", *, B: int = 50, seed: int = 0,
                      confidence: float = 0.95, benchmark: bool = True, singleton: str = "certainty",
                      errors: str = "empirical") -> VillageEstimates:
    """Small-area (or direct) estimates of every village of a county-year.

    Parameters
    ----------
    cu : CountyUnits
        Population and sample (:func:`evalkit.sae.units.county_units`).
    fs : DataFrame
        The survey rows of ``cu`` (same order).
    method : {'ebp', 'fh', 'direct'}
    B : int
        Bootstrap replicates of the EBP MSE.
    seed : int
    confidence : float
    benchmark : bool
        Benchmark model estimates to the county direct estimate.
    singleton : str
        Rule for a stratum cell with one sampled household.
    errors : {'empirical', 'normal'}
        Law of the EBP's unit errors (:func:`evalkit.sae.ebp.ebp_bootstrap`).
    """
    if method not in METHODS:
        raise ParameterError(f"method must be one of {METHODS}, got {method!r}")
    z = float(ndtri(0.5 + confidence / 2))
    idx = pd.Index(cu.village_codes, name="village_code")
    d = direct_village_estimates(fs, cu.poor_sample, cu.persons, cu.households, singleton)
    county = _county_direct(cu, d)
    frames, fh, factors, eb = {}, {}, {}, None
    if method == "ebp":
        eb = ebp_bootstrap(cu.units, B=B, seed=seed, errors=errors)
    for k in INDICATORS:
        de, dv = d.est[k].reindex(idx).to_numpy(float), d.var[k].reindex(idx).to_numpy(float)
        if method == "direct":
            frames[k] = _frame(de, dv, np.where(np.isfinite(de), "direct", "none"), k in _RATES, z, idx)
            continue
        if method == "ebp":
            est, mse = eb.est[k], eb.mse[k]
        else:
            fh[k] = fit_fay_herriot(de, d.psi[k].reindex(idx).to_numpy(float), cu.area_X)
            est, mse = fh[k].eblup, fh[k].mse
        with np.errstate(invalid="ignore", divide="ignore"):
            n = d.n[k].reindex(idx).to_numpy(float)
            prefer = np.isfinite(de) & (dv > 0) & (np.sqrt(dv) / np.abs(de) <= DIRECT_CV_MAX) & (dv <= mse) & \
                (n >= DIRECT_MIN_N)
        frames[k] = _frame(np.where(prefer, de, est), np.where(prefer, dv, mse), np.where(prefer, "direct", method),
                           k in _RATES, z, idx)
        if benchmark:
            bench, factors[k] = ratio_benchmark(est, _population(cu, k), county[k])
            frames[k]["est_benchmarked"] = np.where(prefer, de, np.clip(bench, 0, 1) if k in _RATES else bench)
            if eb is not None and eb.mse_benchmarked is not None:
                # the bootstrap re-did the benchmark in every replicate: an MSE of the benchmarked estimate
                _benchmark_interval(frames[k], np.where(prefer, dv, eb.mse_benchmarked[k]), k in _RATES, z)
    townships = None
    if eb is not None and eb.est_township is not None:
        # a township's EBP is the aggregate of its villages' (same benchmark factor)
        tidx = pd.Index(cu.township_codes, name="township_code")
        townships = {k: _frame(eb.est_township[k], eb.mse_township[k], np.full(len(tidx), "ebp", dtype=object),
                               k in _RATES, z, tidx) for k in INDICATORS}
        for k in factors:
            townships[k]["est_benchmarked"] = townships[k]["est"] * factors[k]
    return VillageEstimates(frames, d, method, eb, fh, factors, townships)
