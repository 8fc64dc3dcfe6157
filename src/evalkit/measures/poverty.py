"""Weighted income poverty and inequality: FGT, Watts and Gini, alone or for any grouping.

Persons are the unit: a household's population weight is its design weight times its size.

Poverty convention (docs/policy.md §2): a unit is poor when its income is **not strictly above**
the line, ``y <= z`` (``poor_if="le"``, the default), because 一超过 requires income strictly
above the line; ``poor_if="lt"`` counts as poor only ``y < z`` (income on the line not poor).

An undefined measure is NaN for its group alone, with a :class:`evalkit.text.Note` in the
result's ``attrs["notes"]``: Watts when a poor unit has income <= 0 (ln(z/y) needs y > 0), Gini
when the weighted mean income is <= 0. The other measures are computed as usual.
"""
from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from evalkit.errors import MeasureError
from evalkit.measures.columns import as_list, check_finite, require_columns
from evalkit.text import Note

__all__ = ["MEASURES", "GROUP_KEY", "POOR_IF", "work_frame", "poor_mask", "poverty_terms", "fgt", "watts", "gini",
           "gini_linearized", "group_codes", "population_weights", "undefined_notes", "poverty_measures"]

#: Measures of :func:`poverty_measures`, in output order.
MEASURES: tuple[str, ...] = ("fgt0", "fgt1", "fgt2", "watts", "gini")
#: Poverty conventions: "le" poor if y <= z (default, docs/policy.md §2), "lt" poor if y < z.
POOR_IF: tuple[str, ...] = ("le", "lt")
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


def poor_mask(y: np.ndarray, z: np.ndarray, poor_if: str = "le") -> np.ndarray:
    """Boolean poor flag: ``y <= z`` (``poor_if="le"``, default, docs/policy.md §2) or ``y < z`` ("lt")."""
    if poor_if == "le":
        return np.asarray(y <= z)
    if poor_if == "lt":
        return np.asarray(y < z)
    raise MeasureError(f"poor_if must be one of {POOR_IF} (poor if y <= z or y < z), got {poor_if!r}")


def poverty_terms(y: ArrayLike, z: ArrayLike, poor_if: str = "le") -> pd.DataFrame:
    """Per-unit terms whose weighted means are FGT0/1/2 and Watts.

    ``fgtA`` = 1[poor]·((z − y)/z)^A (A = 0, 1, 2; masked so that 0**0 never counts the
    non-poor) and ``watts`` = 1[poor]·ln(z/y), NaN for a poor unit with y <= 0 (undefined).
    Inputs must already be validated (see :func:`work_frame`).

    Parameters
    ----------
    y, z : array-like
        Incomes and lines (same length).
    poor_if : {"le", "lt"}
        Poor if y <= z (default) or y < z.

    Returns
    -------
    DataFrame
        Columns fgt0, fgt1, fgt2, watts; one row per unit.
    """
    y = np.asarray(y, dtype=float)
    z = np.asarray(z, dtype=float)
    poor = poor_mask(y, z, poor_if)
    gap = np.where(poor, (z - y) / z, 0.0)
    out = {f"fgt{a}": np.where(poor, gap ** a, 0.0) for a in (0, 1, 2)}
    with np.errstate(divide="ignore", invalid="ignore"):
        w_term = np.where(poor, np.log(z / np.where(poor & (y > 0), y, 1.0)), 0.0)
    out["watts"] = np.where(poor & (y <= 0), np.nan, w_term)
    return pd.DataFrame(out)


def _fgt_rows(y: np.ndarray, z: np.ndarray, alpha: float, poor_if: str = "le") -> np.ndarray:
    """Per-unit FGT term for any alpha ≥ 0 (masked so that 0**0 never counts the non-poor)."""
    poor = poor_mask(y, z, poor_if)
    gap = np.where(poor, (z - y) / z, 0.0)
    return np.where(poor, gap ** alpha, 0.0)


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


def group_codes(df: pd.DataFrame, by: Hashable | Sequence[Hashable] | None) -> tuple[np.ndarray, pd.DataFrame]:
    """Integer group code per row (0..G-1, groups sorted, missing keys a group of their own) and the keys.

    Returns ``(codes, keys)`` with ``keys`` one row per code (columns ``by``; empty columns when
    ``by`` is None, every row in group 0).
    """
    by_l = as_list(by)
    if not by_l:
        return np.zeros(len(df), dtype=np.int64), pd.DataFrame(index=pd.RangeIndex(1))
    codes = df.groupby(by_l, dropna=False, sort=True).ngroup().to_numpy(dtype=np.int64)
    first = pd.DataFrame({c: df[c].to_numpy() for c in by_l}).assign(__code=codes)
    keys = first.drop_duplicates("__code").sort_values("__code").drop(columns="__code").reset_index(drop=True)
    return codes, keys


def gini_linearized(y: ArrayLike, w: ArrayLike, groups: ArrayLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Gini per group and its linearized (influence) variable per unit.

    The weighted Gini of :func:`gini` is Ĝ = 1 − Σ_ij w_i w_j min(y_i, y_j) / (W T) (W = Σ w,
    T = Σ w y). Its derivative in the weight of unit k,

        u_k = [(1 − Ĝ)(T + W y_k) − 2 (C_k + y_k (W − N_k))] / (W T),

    with N_k = Σ_{y_j ≤ y_k} w_j and C_k = Σ_{y_j ≤ y_k} w_j y_j (ties included), is the
    linearized variable of Kovačević–Binder (1997) / Langel–Tillé (2013): Var(Ĝ) ≈ Var(Σ w_k u_k),
    which a survey design estimates as the variance of a total. Each group uses its own W, T, Ĝ.

    Parameters
    ----------
    y, w : array-like
        Incomes and population weights (validated, w ≥ 0).
    groups : array-like of int, optional
        Group code 0..G-1 per unit (see :func:`group_codes`); one group when None.

    Returns
    -------
    (gini, u)
        ``gini`` per group (NaN where the weighted mean income ≤ 0) and ``u`` per unit (NaN in those groups).
    """
    y = np.asarray(y, dtype=float)
    w = np.asarray(w, dtype=float)
    g = np.zeros(y.size, dtype=np.int64) if groups is None else np.asarray(groups, dtype=np.int64)
    n_g = int(g.max()) + 1 if g.size else 0
    W = np.bincount(g, weights=w, minlength=n_g)
    T = np.bincount(g, weights=w * y, minlength=n_g)
    # Cumulative weight and weighted income up to and including ties, within the group.
    order = np.lexsort((y, g))
    ys, gs, ws = y[order], g[order], w[order]
    cw = np.cumsum(ws)
    cwy = np.cumsum(ws * ys)
    start = np.searchsorted(gs, gs, side="left")
    base_w = np.where(start > 0, cw[start - 1], 0.0)
    base_wy = np.where(start > 0, cwy[start - 1], 0.0)
    # last index of each (group, y) tie block
    last = np.r_[np.flatnonzero((np.diff(gs) != 0) | (np.diff(ys) != 0)), ys.size - 1]
    block_end = last[np.searchsorted(last, np.arange(ys.size), side="left")]
    N_s = cw[block_end] - base_w
    C_s = cwy[block_end] - base_wy
    N = np.empty_like(N_s)
    C = np.empty_like(C_s)
    N[order], C[order] = N_s, C_s
    # Σ_ij w_i w_j min(y_i, y_j) per group = Σ_k w_k (2 (C_k + y_k (W − N_k)) − w_k y_k) ... via the pair form
    s_min = C + y * (W[g] - N)  # Σ_j w_j min(y_k, y_j)
    Q = np.bincount(g, weights=w * s_min, minlength=n_g)
    with np.errstate(invalid="ignore", divide="ignore"):
        G = np.where(T > 0, 1.0 - Q / (W * T), np.nan)
        u = ((1.0 - G[g]) * (T[g] + W[g] * y) - 2.0 * s_min) / (W[g] * T[g])
    return G, np.where(np.isfinite(G[g]), u, np.nan)


def _grouped_measures(work: pd.DataFrame, keys: list[Hashable], poor_if: str = "le") -> pd.DataFrame:
    """Wide table (one row per group) of fgt0-2, watts, gini, n and the count of units making Watts undefined."""
    w = work[_W].to_numpy()
    terms = poverty_terms(work[_Y].to_numpy(), work[_Z].to_numpy(), poor_if)
    undefined = terms["watts"].isna().to_numpy()
    contrib = pd.DataFrame({m: w * terms[m].fillna(0.0).to_numpy() for m in MEASURES[:4]}, index=work.index)
    contrib[_W] = w
    contrib["watts_undefined"] = undefined.astype(np.int64)
    for c in keys:
        contrib[c] = work[c].to_numpy()
    grp = contrib.groupby(keys, dropna=False, sort=True)
    sums = grp.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        wide = sums[list(MEASURES[:4])].div(sums[_W], axis=0)
    # Watts is NaN for a group with a poor non-positive income, that group and measure alone.
    wide["watts"] = wide["watts"].where(sums["watts_undefined"] == 0)
    wide["gini"] = _grouped_gini(work, keys)
    wide["n"] = grp.size()
    wide["watts_undefined"] = sums["watts_undefined"]
    return wide


def _group_label(key: object) -> str:
    return "/".join(str(k) for k in key) if isinstance(key, tuple) else str(key)


def undefined_notes(wide: pd.DataFrame, grouped: bool) -> list[Note]:
    """Notes for the undefined Watts and Gini of a wide table of :func:`poverty_measures`' groups.

    ``wide`` has one row per group (index the group keys) with columns ``watts_undefined``
    (units with a poor income <= 0) and ``gini``.
    """
    notes: list[Note] = []
    bad_w = wide.index[wide["watts_undefined"].to_numpy() > 0]
    if len(bad_w):
        n_bad = int(wide["watts_undefined"].sum())
        if grouped:
            notes.append(Note("note_watts_undefined_groups",
                              {"n": n_bad, "groups": [_group_label(k) for k in bad_w]}))
        else:
            notes.append(Note("note_watts_undefined", {"n": n_bad}))
    bad_g = wide.index[wide["gini"].isna().to_numpy()]
    if len(bad_g):
        if grouped:
            notes.append(Note("note_gini_undefined_groups", {"groups": [_group_label(k) for k in bad_g]}))
        else:
            notes.append(Note("note_gini_undefined"))
    return notes


def fgt(y: ArrayLike, z: ArrayLike, alpha: float, w: ArrayLike | None = None, poor_if: str = "le") -> float:
    """Foster–Greer–Thorbecke index P_alpha = Σ w_i 1[y_i ≤ z] ((z − y_i)/z)^alpha / Σ w_i.

    A unit is poor when its income is not strictly above the line (y ≤ z, ``poor_if="le"``), as
    in 一超过 (docs/policy.md §2); ``poor_if="lt"`` counts y < z only. alpha = 0 headcount,
    1 poverty gap, 2 squared gap.

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
    poor_if : {"le", "lt"}
        Poor if y <= z (default) or y < z.

    Returns
    -------
    float
    """
    if alpha < 0:
        raise MeasureError(f"alpha must be >= 0, got {alpha}")
    work = work_frame(y, z, w)
    rows = _fgt_rows(work[_Y].to_numpy(), work[_Z].to_numpy(), alpha, poor_if)
    return float(np.sum(work[_W] * rows) / work[_W].sum())


def watts(y: ArrayLike, z: ArrayLike, w: ArrayLike | None = None, poor_if: str = "le") -> float:
    """Watts index W = Σ_{i poor} w_i ln(z / y_i) / Σ_i w_i (poor: y ≤ z, or y < z with ``poor_if="lt"``).

    The log gap of the poor, averaged over the whole population (the non-poor contribute 0),
    which is the standard, subgroup-decomposable definition; divide by :func:`fgt` with
    alpha=0 for the mean over the poor only. This single-measure call raises MeasureError when a
    poor unit has income ≤ 0 (ln undefined) — no silent clipping; :func:`poverty_measures`
    instead returns NaN for Watts alone, with a note.

    Parameters
    ----------
    y : array-like
        Incomes.
    z : float or array-like
        Poverty line, positive.
    w : array-like, optional
        Population weights; equal when None.
    poor_if : {"le", "lt"}
        Poor if y <= z (default) or y < z.

    Returns
    -------
    float
    """
    work = work_frame(y, z, w)
    terms = poverty_terms(work[_Y].to_numpy(), work[_Z].to_numpy(), poor_if)["watts"].to_numpy()
    bad = np.isnan(terms)
    if bad.any():
        raise MeasureError(
            f"Watts index undefined: {int(bad.sum())} poor unit(s) have income <= 0 and ln(z/y) needs "
            "y > 0; recode or exclude non-positive incomes before computing Watts"
        )
    return float(np.sum(work[_W] * terms) / work[_W].sum())


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


def population_weights(df: pd.DataFrame, weight: str | None, persons: str | None) -> np.ndarray:
    """Population weight per row: ``weight × persons`` (1 for a column not given)."""
    w = np.ones(len(df))
    if weight is not None:
        w = w * pd.to_numeric(df[weight]).to_numpy(dtype=float)
    if persons is not None:
        w = w * pd.to_numeric(df[persons]).to_numpy(dtype=float)
    return w


def poverty_measures(
    df: pd.DataFrame,
    income: str,
    line: str | float,
    by: Hashable | Sequence[Hashable] | None = None,
    weight: str | None = None,
    persons: str | None = None,
    poor_if: str = "le",
) -> pd.DataFrame:
    """FGT0/1/2, Watts and Gini for each group, persons being the unit.

    The population weight of a row is ``weight × persons`` (design weight × household size), so
    the rates are shares of persons; a per-capita income is attributed to every member. Poor
    means income ≤ line by default (docs/policy.md §2; ``poor_if="lt"`` for income < line).
    Watts is NaN for a group where a poor unit has income ≤ 0, Gini NaN for a group whose mean
    income is ≤ 0 — that measure of that group alone; the result's ``attrs["notes"]`` then holds
    a :class:`evalkit.text.Note` saying so. Each group equals the measure computed on that group alone.

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
    poor_if : {"le", "lt"}
        Poor if income <= line (default) or income < line.

    Returns
    -------
    DataFrame
        Tidy: ``[*by, measure, value, n]`` with measures fgt0, fgt1, fgt2, watts, gini and
        ``n`` the number of rows in the group; ``attrs["notes"]`` a list of Notes (empty when
        every measure is defined).
    """
    poor_mask(np.zeros(1), np.ones(1), poor_if)  # check the option before any work
    by_l = as_list(by)
    cols = [income, *by_l] + [c for c in (weight, persons) if c is not None]
    if isinstance(line, str):
        cols.append(line)
    require_columns(df, cols, "poverty_measures")
    w = population_weights(df, weight, persons)
    z = df[line].to_numpy(dtype=float) if isinstance(line, str) else float(line)
    work = work_frame(df[income].to_numpy(dtype=float), z, w, df[by_l] if by_l else None)
    keys = by_l if by_l else [GROUP_KEY]  # one constant key when no grouping
    wide = _grouped_measures(work, keys, poor_if)
    notes = undefined_notes(wide, bool(by_l))

    long = wide.reset_index().melt(id_vars=[*keys, "n"], value_vars=list(MEASURES),
                                   var_name="measure", value_name="value")
    long["measure"] = pd.Categorical(long["measure"], categories=list(MEASURES))
    long = long.sort_values([*keys, "measure"], kind="mergesort").reset_index(drop=True)
    long["measure"] = long["measure"].astype(str)
    long["n"] = long["n"].astype("int64")
    out = long[[*by_l, "measure", "value", "n"]]
    out.attrs["notes"] = notes
    return out
