"""A second phase for a borderline county: more villages and households, and the bound of its look.

The second phase enlarges the first-phase sample with units not yet sampled (seeded):

* stage 1, in each village stratum h with N_h villages of which n1_h were sampled: SRS of
  d_h = min(add, N_h - n1_h) of the unsampled villages. Over both phases, village i is in the
  union with probability ``pi_i = pi1_i + (1 - pi1_i) d_h / (N_h - n1_h)`` (pi1_i its first-phase
  probability: n1_h / N_h under SRS, the PPS probability of :func:`evalkit.survey.replicates.pps_probabilities`
  under PPS); under SRS this is (n1_h + d_h) / N_h, the union being an SRS of n1_h + d_h villages;
* stage 2, in every village of the union and household stratum c: the union holds
  m = min(m1_c + add_c, M) households (m1_c the first design's households per village), the
  first-phase ones plus an SRS of the missing ones among those not yet sampled: an SRS of m of
  the M households (SRS then SRS of the remainder is SRS), probability m / M.

The union is then one stratified two-stage sample with these inclusion probabilities, estimated
through :class:`evalkit.survey.SurveyDesign` with the register's population sizes (fpc). The
increments are taken as fixed in advance (when they are chosen from the first-phase data the
probabilities are those given the chosen increments).

Error control over the two looks (first-phase verdict, then the union's): group-sequential
bounds by alpha spending (Lan and DeMets 1983) with the exact bivariate-normal recursion,
:func:`group_sequential_bounds`; the spending functions :func:`spending_alpha` ('obf',
O'Brien-Fleming type; 'pocock', Pocock type) give the published bounds (tests check them).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.stats import multivariate_normal, norm

from evalkit.errors import SurveyError
from evalkit.register import HH_STRATA, VILLAGE_STRATA
from evalkit.survey.replicates import ReplicateDraws, pps_probabilities
from evalkit.survey.sampling import SAMPLE_COLUMNS, SampleFrame

__all__ = ["TwoPhaseDraws", "second_phase_replicates", "second_phase_rows", "draw_second_phase", "spending_alpha",
           "group_sequential_bounds", "spending_bounds", "SPENDING_FUNCTIONS"]

#: Alpha-spending functions of :func:`spending_alpha`.
SPENDING_FUNCTIONS: tuple[str, ...] = ("obf", "pocock")


@dataclass(frozen=True)
class TwoPhaseDraws(ReplicateDraws):
    """Union samples (first phase + second phase) of one or many replicates of the second phase.

    One entry per household of the union of each replicate: ``rep``, ``row`` (row in
    ``frame.households``), ``phase`` (1 or 2), ``prob_village`` and ``prob_household`` (inclusion
    probabilities of the union, see the module docstring); ``weight`` = 1 / their product.
    """

    phase: np.ndarray


def _check_increments(add_villages: Mapping[str, int], add_households: Mapping[str, int]) -> tuple[dict, dict]:
    av = {k: int(add_villages.get(k, 0)) for k in VILLAGE_STRATA}
    ah = {k: int(add_households.get(k, 0)) for k in HH_STRATA}
    bad = sorted(set(add_villages) - set(VILLAGE_STRATA)) + sorted(set(add_households) - set(HH_STRATA))
    if bad:
        raise SurveyError(f"unknown stratum in the second-phase increments: {bad}")
    if min(av.values()) < 0 or min(ah.values()) < 0:
        raise SurveyError(f"second-phase increments must be non-negative, got {av}, {ah}")
    return av, ah


def _village_probabilities(frame: SampleFrame, first_v: np.ndarray, first_pv: np.ndarray,
                           add: dict, selection: str) -> tuple[np.ndarray, list]:
    """Union inclusion probability of every frame village and, per stratum, (unsampled idx, d)."""
    vil = frame.villages
    stratum = vil["stratum"].to_numpy().astype(str)
    sizes = vil["n_hh"].to_numpy().astype(float)
    pi = np.zeros(len(stratum))
    plan = []
    for h in dict.fromkeys(stratum):
        idx = np.flatnonzero(stratum == h)
        in1 = first_v[idx]
        n1, big = int(in1.sum()), len(idx)
        p1 = np.full(big, n1 / big) if selection == "srs" else pps_probabilities(sizes[idx], n1)
        # the recorded first-phase probabilities win for the sampled villages
        p1[in1] = first_pv[idx][in1]
        rest = idx[~in1]
        d = min(add.get(h, 0), len(rest))
        pi[idx] = p1 + (1.0 - p1) * (d / len(rest) if len(rest) else 0.0)
        plan.append((rest, d))
    return np.minimum(pi, 1.0), plan


def second_phase_replicates(frame: SampleFrame, first: pd.DataFrame, add_villages: Mapping[str, int],
                            add_households: Mapping[str, int], rng: np.random.Generator,
                            n_reps: int = 1) -> TwoPhaseDraws:
    """``n_reps`` independent second phases of one first-phase sample, stacked with the first phase.

    Parameters
    ----------
    frame : SampleFrame
        The county's frame built with the FIRST phase's design (:func:`evalkit.survey.build_frame`).
    first : pandas.DataFrame
        The first-phase sample (columns ``village_code``, ``household_id``, ``prob_village``).
    add_villages : mapping
        More villages per village stratum (capped at the unsampled ones).
    add_households : mapping
        More households per village and household stratum, over the first design's.
    rng : numpy.random.Generator
    n_reps : int

    Returns
    -------
    TwoPhaseDraws
    """
    v_code = frame.villages["village_code"].to_numpy().astype(str)
    pos = pd.Index(frame.households["household_id"].to_numpy().astype(str)).get_indexer(
        first["household_id"].astype(str).to_numpy())
    if (pos < 0).any():
        raise SurveyError(f"{int((pos < 0).sum())} first-phase household(s) are not in the county's frame")
    in_first = np.zeros(frame.households.height, dtype=bool)
    in_first[pos] = True
    pv = first.groupby(first["village_code"].astype(str))["prob_village"].first()
    first_pv = pv.reindex(v_code).to_numpy(dtype=float)
    return second_phase_rows(frame, in_first, first_pv, add_villages, add_households, rng, n_reps)


def second_phase_rows(frame: SampleFrame, in_first: np.ndarray, first_pv: np.ndarray,
                      add_villages: Mapping[str, int], add_households: Mapping[str, int],
                      rng: np.random.Generator, n_reps: int = 1) -> TwoPhaseDraws:
    """:func:`second_phase_replicates` from arrays: ``in_first`` (households of the frame in the first
    phase) and ``first_pv`` (first-phase probability of each frame village, NaN when not sampled)."""
    av, ah = _check_increments(add_villages, add_households)
    vil, hh = frame.villages, frame.households
    v_code = vil["village_code"].to_numpy().astype(str)
    first_v = np.isfinite(first_pv)
    pi, plan = _village_probabilities(frame, first_v, first_pv, av, frame.design.village_selection)
    R = int(n_reps)
    in_union = np.broadcast_to(first_v, (R, len(v_code))).copy()
    for rest, d in plan:
        if d > 0:
            pick = np.argpartition(rng.random((R, len(rest))), d - 1, axis=1)[:, :d]
            sub = in_union[:, rest]
            np.put_along_axis(sub, pick, True, axis=1)
            in_union[:, rest] = sub
    # stage 2: m = min(m1 + add, M) per village x household stratum
    h_v = pd.Index(v_code).get_indexer(hh["village_code"].to_numpy().astype(str))
    h_st = hh["hh_stratum"].to_numpy().astype(str)
    target = pd.Series(h_st).map({k: frame.design.households_per_village[k] + ah[k] for k in HH_STRATA})
    cell = h_v.astype(np.int64) * len(HH_STRATA) + pd.Index(HH_STRATA).get_indexer(h_st)
    M = np.bincount(cell)
    m_c = np.zeros(len(M), dtype=np.int64)
    m_c[cell] = np.minimum(target.to_numpy(dtype=np.int64), M[cell])
    s_c = np.bincount(cell, in_first, minlength=len(M)).astype(np.int64)
    need = np.maximum(m_c - s_c, 0)
    cand = np.flatnonzero(~in_first & (need[cell] > 0))
    # rank of each candidate within its cell, per replicate: sort on cell code + key in [0, 1)
    order = np.argsort(cell[cand][None, :] + 0.5 * rng.random((R, len(cand))), axis=1)
    c_sorted = cell[cand][order]
    first_pos = np.searchsorted(np.sort(cell[cand]), np.arange(len(M)))
    take = np.zeros((R, len(cand)), dtype=bool)
    np.put_along_axis(take, order, (np.arange(len(cand))[None, :] - first_pos[c_sorted]) < need[c_sorted], axis=1)
    new = take & in_union[:, h_v[cand]]
    rows1 = np.flatnonzero(in_first)
    rr, cc = np.nonzero(new)
    rep = np.concatenate([np.repeat(np.arange(R), len(rows1)), rr])
    row = np.concatenate([np.tile(rows1, R), cand[cc]])
    phase = np.concatenate([np.ones(R * len(rows1), dtype=np.int8), np.full(len(rr), 2, dtype=np.int8)])
    o = np.lexsort((row, rep))
    rep, row, phase = rep[o], row[o], phase[o]
    return TwoPhaseDraws(rep=rep, row=row, phase=phase, prob_village=pi[h_v[row]],
                         prob_household=m_c[cell[row]] / M[cell[row]], n_reps=R)


def draw_second_phase(frame: SampleFrame, first: pd.DataFrame, add_villages: Mapping[str, int],
                      add_households: Mapping[str, int], seed: int = 0) -> pd.DataFrame:
    """The union of the first phase and one seeded second phase, as a sample table.

    Same seed and inputs, same draw. Returns :data:`evalkit.survey.SAMPLE_COLUMNS` plus ``phase``
    (1 or 2), with the union's ``prob_village``, ``prob_household`` and ``weight`` (see the module
    docstring). ``attrs`` holds the seed and the increments.
    """
    d = second_phase_replicates(frame, first, add_villages, add_households,
                                np.random.default_rng([int(seed), 20262]), 1)
    hh = frame.households.to_pandas().iloc[d.row]
    vil = frame.villages.to_pandas().set_index("village_code")
    out = pd.DataFrame({
        "county_code": hh["county_code"].to_numpy(), "village_code": hh["village_code"].to_numpy(),
        "household_id": hh["household_id"].to_numpy(),
        "stratum": vil["stratum"].reindex(hh["village_code"].to_numpy()).to_numpy(),
        "hh_stratum": hh["hh_stratum"].to_numpy(), "prob_village": d.prob_village,
        "prob_household": d.prob_household, "weight": d.weight, "household_size": hh["household_size"].to_numpy(),
    })[list(SAMPLE_COLUMNS)]
    out["phase"] = d.phase
    out.attrs.update({"seed": int(seed), "add_villages": dict(add_villages), "add_households": dict(add_households)})
    return out.reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# group-sequential bounds
# --------------------------------------------------------------------------------------------
def spending_alpha(t: float | np.ndarray, alpha: float, kind: str = "obf") -> float | np.ndarray:
    """Cumulative one-sided alpha spent at information fraction ``t`` (Lan and DeMets 1983).

    'obf' (O'Brien-Fleming type): ``2 - 2 Phi(z_{1 - alpha/2} / sqrt(t))``; 'pocock' (Pocock
    type): ``alpha ln(1 + (e - 1) t)``. Both spend ``alpha`` at t = 1.
    """
    t = np.asarray(t, dtype=float)
    if ((t <= 0) | (t > 1)).any() or not 0 < alpha < 1:
        raise SurveyError(f"information fractions must be in (0, 1] and alpha in (0, 1), got {t}, {alpha}")
    if kind == "obf":
        out = 2.0 - 2.0 * norm.cdf(norm.ppf(1.0 - alpha / 2.0) / np.sqrt(t))
    elif kind == "pocock":
        out = alpha * np.log1p((np.e - 1.0) * t)
    else:
        raise SurveyError(f"spending function must be one of {SPENDING_FUNCTIONS}, got {kind!r}")
    return float(out) if out.ndim == 0 else out


def group_sequential_bounds(times: Sequence[float], cum_alpha: Sequence[float]) -> np.ndarray:
    """One-sided upper bounds z_1, z_2 of two looks spending ``cum_alpha`` (cumulative) at ``times``.

    Z_k is the standardized statistic at look k with corr(Z_1, Z_2) = sqrt(t_1 / t_2) (independent
    increments). ``z_1 = Phi^{-1}(1 - a_1)``; ``z_2`` solves ``P(Z_1 < z_1, Z_2 >= z_2) = a_2 - a_1``
    exactly (bivariate normal), so the probability of crossing at either look is ``a_2``.
    """
    t = np.asarray(times, dtype=float)
    a = np.asarray(cum_alpha, dtype=float)
    if t.shape != (2,) or a.shape != (2,):
        raise SurveyError("group_sequential_bounds handles two looks: two times and two cumulative alphas")
    if not (0 < t[0] < t[1]) or not (0 < a[0] <= a[1] < 1):
        raise SurveyError(f"need 0 < t1 < t2 and 0 < a1 <= a2 < 1, got times {t.tolist()}, alphas {a.tolist()}")
    z1 = float(norm.ppf(1.0 - a[0]))
    if a[1] - a[0] <= 0:
        return np.array([z1, np.inf])
    rho = float(np.sqrt(t[0] / t[1]))
    mvn = multivariate_normal(mean=[0.0, 0.0], cov=[[1.0, rho], [rho, 1.0]])

    def excess(z2: float) -> float:
        # P(Z1 < z1, Z2 >= z2) = Phi(z1) - P(Z1 < z1, Z2 < z2)
        return float(norm.cdf(z1) - mvn.cdf([z1, z2])) - (a[1] - a[0])

    return np.array([z1, brentq(excess, -10.0, 10.0, xtol=1e-10)])


def spending_bounds(times: Sequence[float], alpha: float, kind: str = "obf") -> np.ndarray:
    """Bounds of two looks at ``times`` (information fractions, the last 1) for a spending function."""
    t = np.asarray(times, dtype=float)
    return group_sequential_bounds(t, spending_alpha(t / t[-1], alpha, kind))
