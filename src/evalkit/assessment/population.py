"""The register's population sizes of the evaluators' two sampling stages, for the variance.

The variance of the exit criteria is that of the design actually used: villages drawn without
replacement within village strata, households without replacement within village x household
stratum. Its finite-population corrections need population sizes, which the evaluator knows
from the register (not from the field survey): villages per village stratum of the county and
households per village x household stratum (:func:`population_sizes`);
:func:`finite_population_columns` attaches them to a sample, with villages drawn with probability
1 (PPS certainty) apart as certainty units.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from evalkit.errors import ExitAssessmentError
from evalkit.register import household_strata, village_strata

__all__ = ["population_sizes", "finite_population_columns"]


def population_sizes(households: pd.DataFrame, villages: pd.DataFrame, county: str,
                     year: int) -> tuple[dict, pd.Series]:
    """The register's population sizes of the two sampling stages of a county.

    Returns
    -------
    (villages_per_stratum, households_per_cell)
        Villages with at least one household in each village stratum (the stage-1 frame, as
        :func:`evalkit.survey.build_frame`), and households per (village_code, hh_stratum) in ``year``.
    """
    hh = households.loc[households["county_code"].astype(str).to_numpy() == county]
    for c in ("village_code", "county_code", "is_poverty_village"):
        if c not in villages.columns:
            raise ExitAssessmentError(f"villages lacks column {c!r}")
    vil = villages.loc[villages["county_code"].astype(str).to_numpy() == county]
    vcode = vil["village_code"].astype(str).to_numpy()
    inhabited = np.isin(vcode, hh["village_code"].astype(str).unique())
    vs = village_strata(vil).to_numpy()[inhabited]
    per_stratum = {str(k): int(v) for k, v in zip(*np.unique(vs, return_counts=True))}
    cells = pd.DataFrame({"village_code": hh["village_code"].astype(str).to_numpy(),
                          "hh_stratum": household_strata(hh, year).to_numpy()})
    return per_stratum, cells.groupby(["village_code", "hh_stratum"]).size()


def finite_population_columns(fs: pd.DataFrame, villages_per_stratum: dict, households_per_cell: pd.Series,
                              county: str, rep: np.ndarray | None = None) -> pd.DataFrame:
    """The sample with stage-1 strata (certainty villages apart) and the register's population sizes.

    Adds ``__stratum1__`` (the village stratum, or '<stratum>:certainty' for a village drawn with
    probability 1 in a stratum not taken whole), ``__N_villages__`` and ``__N_households__``.
    ``rep`` (replicate of each row of stacked samples) keeps replicates apart.
    """
    v = fs["village_code"].astype(str).to_numpy()
    st = fs["stratum"].astype(str).to_numpy()
    # integer codes (stacked replicates hold ~1e6 rows): stratum within replicate, village
    s_code, s_lab = pd.factorize(st)
    v_code = pd.factorize(v)[0]
    key = s_code if rep is None else np.asarray(rep, dtype=np.int64) * (len(s_lab) + 1) + s_code
    unknown = sorted(set(s_lab) - set(villages_per_stratum))
    if unknown:
        raise ExitAssessmentError(f"field survey of county {county}: village stratum {unknown} has no village "
                                  "with households in the register")
    n_pop = pd.Series(villages_per_stratum).reindex(s_lab).to_numpy(dtype=float)[s_code]
    # A village drawn with probability 1 inside a stratum not taken whole (PPS certainty) is its
    # own stratum with no stage-1 variance; the rest of the stratum keeps N_h less those villages.
    cert = (pd.to_numeric(fs["prob_village"], errors="coerce").to_numpy(dtype=float) >= 1.0
            if "prob_village" in fs.columns else np.zeros(len(fs), dtype=bool))
    nv = int(v_code.max()) + 1 if len(v_code) else 1
    pairs = np.unique(key[cert].astype(np.int64) * nv + v_code[cert])  # distinct certainty villages
    n_cert = np.bincount(pairs // nv, minlength=int(key.max()) + 1 if len(key) else 0)[key].astype(float)
    n_samp = pd.Series(v_code).groupby(key).nunique().reindex(key).to_numpy(dtype=float)
    split = cert & (n_samp < n_pop)
    cert_lab = np.array([f"{x}:certainty" for x in s_lab], dtype=object)  # one per stratum label
    stratum1 = np.where(split, cert_lab[s_code], st)
    pop1 = np.where(split, n_cert, np.where(n_samp < n_pop, n_pop - n_cert, n_pop))
    cells = pd.MultiIndex.from_arrays([v, fs["hh_stratum"].astype(str).to_numpy()])
    pop2 = households_per_cell.reindex(cells).to_numpy(dtype=float)
    return fs.assign(__stratum1__=stratum1, __N_villages__=pop1, __N_households__=pop2)
