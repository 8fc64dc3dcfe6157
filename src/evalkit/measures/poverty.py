"""Weighted income poverty and inequality: FGT, Watts and Gini, alone or for any grouping.

Persons are the unit: a household's population weight is its design weight times its size. A
unit is poor when its income is not strictly above the line (y <= z), as in 一超过.
"""
from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from evalkit.errors import MeasureError
from evalkit.measures.columns import as_list, check_finite, require_columns

__all__ = ["MEASURES", "GROUP_KEY", "work_frame", "fgt", "watts", "gini", "poverty_measures"]

#: Measures of :func:`poverty_measures`, in output order.
MEASURES: tuple[str, ...] = ("fgt0", "fgt1", "fgt2", "watts", "gini")
_Y, _Z, _W = "__y", "__z", "__w"
#: Name of the constant group key used when a measure is computed without grouping.
GROUP_KEY = "__grp"


def work_frame(y: ArrayLike, z: ArrayLike | None, w: ArrayLike | None,
                keys: pd.DataFrame | None = None) -> pd.DataFrame:
    """Validated working frame (income, line, population weight, group keys).

    Raises :class:`evalkit.errors.MeasureError` on empty, non-finite or mismatched inputs, a
    non-positive line or negative weights. Without ``keys`` every row is in one group
    (:data:`GROUP_KEY` = 0).
    """
    y = np.asarray(y, dtype=float).ravel()
    n = y.size
    if n == 0:
        raise MeasureError("no observations")
    check_finite(y, "income")
    cols: dict[str, np.ndarray] = {_Y: y}
    if z is not None:
        zz = np.broadcast_to(np.asarray(z, dtype=float), (n,)).copy() if np.ndim(z) == 0 \
            else np.asarray(z, dtype=float).ravel()
        if zz.size != n:
            raise MeasureError(f"poverty line has {zz.size} values for {n} incomes")
        check_finite(zz, "poverty line")
        if np.any(zz <= 0):
            raise MeasureError("poverty line must be positive")
        cols[_Z] = zz
    ww = np.ones(n) if w is None else np.asarray(w, dtype=float).ravel()
    if ww.size != n:
        raise MeasureError(f"weights have {ww.size} values for {n} incomes")
    check_finite(ww, "weight")
    if np.any(ww < 0):
        raise MeasureError("weights must be non-negative")
    cols[_W] = ww
    out = pd.DataFrame(cols)
    if keys is None or keys.shape[1] == 0:
        out[GROUP_KEY] = 0  # one group
    else:
        for c in keys.columns:
            out[c] = keys[c].to_numpy()
    return out


def _fgt_rows(y: np.ndarray, z: np.ndarray, alpha: float) -> np.ndarray:
    """Per-unit FGT term: 1[y ≤ z]·((z−y)/z)^alpha (masked so that 0**0 never counts the non-poor)."""
    poor = y <= z
    gap = np.where(poor, (z - y) / z, 0.0)
    return np.where(poor, gap ** alpha, 0.0)


def _watts_rows(y: np.ndarray, z: np.ndarray) -> np.ndarray:
    poor = y <= z
    bad = poor & (y <= 0)
    if bad.any():
        raise MeasureError(
            f"Watts index undefined: {int(bad.sum())} poor unit(s) have income <= 0 and ln(z/y) needs "
            "y > 0; recode or exclude non-positive incomes before computing Watts"
        )
    return np.where(poor, np.log(z / np.where(poor, y, 1.0)), 0.0)


def _grouped_gini(work: pd.DataFrame, keys: list[Hashable]) -> pd.Series:
    """Weighted Gini per group from the Lorenz curve: G = 1 − Σ p_i (L_{i−1} + L_i).

    With equal weights this equals Σ_i Σ_j |y_i − y_j| / (2 n² ȳ) exactly (ties in any order).
    Groups whose weighted mean income is ≤ 0 get NaN (Gini undefined).
    """
    s = work.sort_values([*keys, _Y], kind="mergesort")
    wy = s[_W] * s[_Y]
    g = [s[c] for c in keys]
    cum = wy.groupby(g, dropna=False, sort=False).cumsum()
    tot_wy = wy.groupby(g, dropna=False, sort=False).transform("sum")
    tot_w = s[_W].groupby(g, dropna=False, sort=False).transform("sum")
    with np.errstate(invalid="ignore", divide="ignore"):
        term = (s[_W] / tot_w) * ((2 * cum - wy) / tot_wy)  # p_i (L_i + L_{i-1})
        res = 1.0 - term.groupby(g, dropna=False, sort=True).sum()
        ok = (wy.groupby(g, dropna=False, sort=True).sum() > 0)
    return res.where(ok)


def _grouped_measures(work: pd.DataFrame, keys: list[Hashable]) -> pd.DataFrame:
    """Wide table (one row per group) of fgt0-2, watts, gini and n."""
    y, z, w = work[_Y].to_numpy(), work[_Z].to_numpy(), work[_W].to_numpy()
    contrib = pd.DataFrame(
        {
            "fgt0": w * _fgt_rows(y, z, 0.0),
            "fgt1": w * _fgt_rows(y, z, 1.0),
            "fgt2": w * _fgt_rows(y, z, 2.0),
            "watts": w * _watts_rows(y, z),
            _W: w,
        },
        index=work.index,
    )
    for c in keys:
        contrib[c] = work[c].to_numpy()
    grp = contrib.groupby(keys, dropna=False, sort=True)
    sums = grp.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        wide = sums[["fgt0", "fgt1", "fgt2", "watts"]].div(sums[_W], axis=0)
    wide["gini"] = _grouped_gini(work, keys)
    wide["n"] = grp.size()
    return wide


def fgt(y: ArrayLike, z: ArrayLike, alpha: float, w: ArrayLike | None = None) -> float:
    """Foster–Greer–Thorbecke index P_alpha = Σ w_i 1[y_i ≤ z] ((z − y_i)/z)^alpha / Σ w_i.

    A unit is poor when its income is not strictly above the line (y ≤ z), as in 一超过 and
    FGT (1984). alpha = 0 headcount, 1 poverty gap, 2 squared gap.

    Parameters
    ----------
    y : array-like
        Incomes.
    z : float or array-like
        Poverty line (scalar or one per unit), positive.
    alpha : float
        Poverty aversion, ≥ 0.
    w : array-like, optional
        Population weights (e.g. design weight × household size); equal when None.

    Returns
    -------
    float
    """
    if alpha < 0:
        raise MeasureError(f"alpha must be >= 0, got {alpha}")
    work = work_frame(y, z, w)
    return float(np.sum(work[_W] * _fgt_rows(work[_Y].to_numpy(), work[_Z].to_numpy(), alpha)) / work[_W].sum())


def watts(y: ArrayLike, z: ArrayLike, w: ArrayLike | None = None) -> float:
    """Watts index W = Σ_{i poor} w_i ln(z / y_i) / Σ_i w_i (poor: y ≤ z).

    The log gap of the poor, averaged over the whole population (the non-poor contribute 0),
    which is the standard, subgroup-decomposable definition; divide by :func:`fgt` with
    alpha=0 for the mean over the poor only. Raises MeasureError when a poor unit has income ≤ 0
    (ln undefined) — no silent clipping.

    Parameters
    ----------
    y : array-like
        Incomes.
    z : float or array-like
        Poverty line, positive.
    w : array-like, optional
        Population weights; equal when None.

    Returns
    -------
    float
    """
    work = work_frame(y, z, w)
    return float(np.sum(work[_W] * _watts_rows(work[_Y].to_numpy(), work[_Z].to_numpy())) / work[_W].sum())


def gini(y: ArrayLike, w: ArrayLike | None = None) -> float:
    """Weighted Gini coefficient Σ_i Σ_j w_i w_j |y_i − y_j| / (2 W² ȳ_w).

    Computed from the sorted Lorenz curve; with equal weights it equals the standard
    Σ|x_i − x_j| / (2 n² x̄). Integer weights give the Gini of the replicated sample. Negative
    incomes are allowed, but the weighted mean must be positive (MeasureError otherwise).

    Parameters
    ----------
    y : array-like
        Incomes.
    w : array-like, optional
        Population weights; equal when None.

    Returns
    -------
    float
    """
    work = work_frame(y, None, w)
    if not (work[_W] * work[_Y]).sum() > 0:
        raise MeasureError("Gini undefined: weighted mean income must be positive")
    return float(_grouped_gini(work, [GROUP_KEY]).iloc[0])


def poverty_measures(
    df: pd.DataFrame,
    income: str,
    line: str | float,
    by: Hashable | Sequence[Hashable] | None = None,
    weight: str | None = None,
    persons: str | None = None,
) -> pd.DataFrame:
    """FGT0/1/2, Watts and Gini for each group, persons being the unit.

    The population weight of a row is ``weight × persons`` (design weight × household size), so
    the rates are shares of persons; a per-capita income is attributed to every member. Poor
    means income ≤ line (see :func:`fgt`); Watts as in :func:`watts` (raises on a poor
    non-positive income); Gini as in :func:`gini` (NaN for a group whose mean income ≤ 0).
    Each group equals the measure computed on that group alone.

    Parameters
    ----------
    df : DataFrame
        One row per household (or household-year).
    income : str
        Per-capita income column.
    line : str or float
        Poverty-line column (e.g. ``line`` of :func:`household_indicators`) or one value.
    by : column name or list, optional
        Grouping columns; the whole table when None. Missing keys form their own group.
    weight : str, optional
        Design-weight column (households); 1 when None.
    persons : str, optional
        Household-size column; 1 when None.

    Returns
    -------
    DataFrame
        Tidy: ``[*by, measure, value, n]`` with measures fgt0, fgt1, fgt2, watts, gini and
        ``n`` the number of rows in the group.
    """
    by_l = as_list(by)
    cols = [income, *by_l] + [c for c in (weight, persons) if c is not None]
    if isinstance(line, str):
        cols.append(line)
    require_columns(df, cols, "poverty_measures")
    w = np.ones(len(df))
    if weight is not None:
        w = w * pd.to_numeric(df[weight]).to_numpy(dtype=float)
    if persons is not None:
        w = w * pd.to_numeric(df[persons]).to_numpy(dtype=float)
    z = df[line].to_numpy(dtype=float) if isinstance(line, str) else float(line)
    work = work_frame(df[income].to_numpy(dtype=float), z, w, df[by_l] if by_l else None)
    keys = by_l if by_l else [GROUP_KEY]  # one constant key when no grouping
    wide = _grouped_measures(work, keys)

    long = wide.reset_index().melt(id_vars=[*keys, "n"], value_vars=list(MEASURES),
                                   var_name="measure", value_name="value")
    long["measure"] = pd.Categorical(long["measure"], categories=list(MEASURES))
    long = long.sort_values([*keys, "measure"], kind="mergesort").reset_index(drop=True)
    long["measure"] = long["measure"].astype(str)
    long["n"] = long["n"].astype("int64")
    return long[[*by_l, "measure", "value", "n"]]
