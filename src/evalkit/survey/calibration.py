"""Calibration of the field weights to totals the evaluator knows from the register (GREG through svy).

The register gives, for every village stratum x household stratum, the number of households and of
persons. :func:`register_aux` builds the auxiliary matrix of those cells (one household-count and one
person-count column per cell); :func:`calibrated_ratios` calibrates the design weights to the totals
with svy's ``weighting.calibrate_matrix`` (linear GREG) and estimates ratios with svy, whose Taylor
variance credits the calibration (the linearized variable is replaced by its residual on the
auxiliaries, as R's ``calibrate()`` then ``svyratio``; tests/fixtures_r/fixture_calibration.csv).

Scope: the one-stage (ultimate-cluster, with-replacement) variance of a stratified cluster design.
The replay of docs/methods.md §4 (*Calibration*) found that calibrating to these totals leaves the
sampling SD of every exit criterion within 1% at the default design, so the exit assessment does not
calibrate by default and the two-stage design object does not offer it.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import polars as pl
import svy

from evalkit.errors import SurveyError
from evalkit.survey.design import Estimate

__all__ = ["register_aux", "calibrated_ratios"]


def register_aux(cells: Sequence[str] | np.ndarray, household_size: Sequence[float] | np.ndarray,
                 labels: Sequence[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """Auxiliary matrix of households and persons per cell (e.g. village stratum x household stratum).

    Returns
    -------
    (matrix, names)
        One row per sampled household; columns ``households:<cell>`` (1 in its cell) then
        ``persons:<cell>`` (its size in its cell), cells in ``labels`` order (sorted if None).
    """
    cells = np.asarray(cells).astype(str)
    size = np.asarray(household_size, dtype=float)
    labs = sorted(set(cells.tolist())) if labels is None else [str(x) for x in labels]
    ind = np.column_stack([cells == c for c in labs]).astype(float)
    return np.hstack([ind, ind * size[:, None]]), [f"households:{c}" for c in labs] + [f"persons:{c}" for c in labs]


def calibrated_ratios(data: pd.DataFrame, *, weight: str, strata: str, psu: str, aux: np.ndarray,
                      totals: Sequence[float] | np.ndarray, ratios: Mapping[str, tuple[str, str]],
                      confidence: float = 0.95) -> tuple[dict[str, Estimate], np.ndarray]:
    """Ratios of weighted totals with weights calibrated (linear GREG) to known ``totals`` of ``aux``.

    Parameters
    ----------
    data : pandas.DataFrame
        The sample with the design columns and the ratio variables.
    weight, strata, psu : str
        Design columns (with-replacement first stage).
    aux : numpy.ndarray
        Auxiliary matrix (rows of ``data`` x controls), e.g. :func:`register_aux`.
    totals : sequence of float
        Known population total of every column of ``aux``.
    ratios : mapping
        ``{name: (numerator column, denominator column)}``.

    Returns
    -------
    (estimates, calibrated weights)
        One :class:`~evalkit.survey.design.Estimate` per ratio (svy's estimate, SE and t interval
        on the design df, after calibration) and the calibrated weights in ``data``'s row order.
    """
    aux = np.asarray(aux, dtype=float)
    tot = np.asarray(totals, dtype=float)
    if aux.shape != (len(data), len(tot)):
        raise SurveyError(f"aux has shape {aux.shape}; expected ({len(data)}, {len(tot)}) for the sample and totals")
    cols = {c for pair in ratios.values() for c in pair}
    missing = sorted({weight, strata, psu, *cols} - set(data.columns))
    if missing:
        raise SurveyError(f"the sample lacks column(s) {missing}")
    frame = pl.DataFrame({"__stratum__": data[strata].astype(str).to_numpy(),
                          "__psu__": data[psu].astype(str).to_numpy(),
                          "__w__": pd.to_numeric(data[weight]).to_numpy(dtype=float),
                          **{c: pd.to_numeric(data[c]).to_numpy(dtype=float) for c in cols}})
    sample = svy.Sample(frame, svy.Design(stratum="__stratum__", psu="__psu__", wgt="__w__"))
    try:
        cal = sample.weighting.calibrate_matrix(aux_vars=aux, controls=list(tot), wgt_name="__calw__")
    except svy.SvyError as e:
        raise SurveyError(f"svy could not calibrate the weights: {e}") from e
    out = {}
    for name, (num, den) in ratios.items():
        r = cal.estimation.ratio(num, den, alpha=1.0 - confidence).to_polars().row(0, named=True)
        out[name] = Estimate(float(r["est"]), float(r["se"]), float(r["lci"]), float(r["uci"]), df=int(r["df"]),
                             n=len(data))
    return out, cal.data["__calw__"].to_numpy()
