"""Alkire–Foster multidimensional poverty: headcount H, intensity A, M0 and contributions."""
from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
import pandas as pd

from evalkit.config import Policy
from evalkit.errors import MeasureError
from evalkit.measures.columns import as_boolean, as_list, check_finite, require_columns
from evalkit.measures.poverty import GROUP_KEY, population_weights
from evalkit.text import Note

__all__ = ["alkire_foster", "deprivation_scores", "intensity_notes"]

# Relative tolerance on the AF cutoff: scores are sums of float weights (1/6 + 1/6 ...) and a
# household exactly at k must not fall out through rounding.
_AF_TOL = 1e-9


def _deprivations(df: pd.DataFrame, names: list[str], deprived_if_false: bool) -> np.ndarray:
    """n × D matrix of 0/1 deprivations; missing values raise (AF needs complete profiles)."""
    mats = []
    for name in names:
        if name in df.columns:
            col = as_boolean(df[name], name)
        elif name == "food_clothing_ok" and deprived_if_false and {"food_ok", "clothing_ok"} <= set(df.columns):
            # household_indicators splits 两不愁 in two; the dimension holds when both hold.
            col = as_boolean(df["food_ok"], "food_ok") & as_boolean(df["clothing_ok"], "clothing_ok")
        else:
            raise MeasureError(f"alkire_foster: dimension column {name!r} not in the data")
        if col.isna().any():
            raise MeasureError(
                f"alkire_foster: dimension {name!r} has {int(col.isna().sum())} missing value(s); "
                "the deprivation score needs every dimension observed — drop or impute first"
            )
        dep = ~col if deprived_if_false else col
        mats.append(dep.to_numpy(dtype=bool))
    return np.column_stack(mats).astype(float)


def _dimension_weights(dimensions: dict[str, float] | list[str] | None,
                       policy: Policy | None) -> dict[str, float]:
    """``{dimension: weight}`` (not yet normalized), checked."""
    if dimensions is None:
        if policy is None:
            raise MeasureError("alkire_foster without dimensions needs the policy: its guarantees are the default")
        dims = {d: 1.0 for d in [*policy.guarantees, "income_above_line"]}
    elif isinstance(dimensions, dict):
        dims = {str(d): float(v) for d, v in dimensions.items()}
    else:
        dims = {str(d): 1.0 for d in dimensions}
    if not dims:
        raise MeasureError("alkire_foster needs at least one dimension")
    v = np.array(list(dims.values()), dtype=float)
    if np.any(~np.isfinite(v)) or np.any(v < 0) or v.sum() <= 0:
        raise MeasureError(f"dimension weights must be non-negative with a positive sum, got {dims}")
    return dims


def _population_weights(df: pd.DataFrame, weight: str | None, persons: str | None) -> np.ndarray:
    """weight × persons per row (1 when not given), finite and non-negative."""
    w = population_weights(df, weight, persons)
    check_finite(w, "weight")
    if np.any(w < 0):
        raise MeasureError("weights must be non-negative")
    return w


def deprivation_scores(
    df: pd.DataFrame,
    dimensions: dict[str, float] | list[str] | None = None,
    k: float | None = None,
    deprived_if_false: bool = True,
    policy: Policy | None = None,
) -> pd.DataFrame:
    """Per-household Alkire–Foster score and poor flag (as in :func:`alkire_foster`).

    Parameters are those of :func:`alkire_foster`.

    Returns
    -------
    DataFrame
        ``score`` c_i = Σ_d v_d g_id (v normalized to sum 1), ``poor`` (c_i ≥ k, 1e-9 tolerance)
        and ``censored`` = c_i·1[poor]; index of ``df``.
    """
    names, v, g, c, poor = _scores(df, dimensions, k, deprived_if_false, policy)
    return pd.DataFrame({"score": c, "poor": poor, "censored": np.where(poor, c, 0.0)}, index=df.index)


def _scores(df: pd.DataFrame, dimensions: dict[str, float] | list[str] | None, k: float | None,
            deprived_if_false: bool, policy: Policy | None
            ) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    dims = _dimension_weights(dimensions, policy)
    v = np.array(list(dims.values()), dtype=float)
    v = v / v.sum()
    if k is None:
        raise MeasureError("alkire_foster needs the poverty cutoff k in (0, 1]")
    if not 0 < k <= 1:
        raise MeasureError(f"k must be in (0, 1], got {k}")
    names = list(dims)
    g = _deprivations(df, names, deprived_if_false)
    c = g @ v
    return names, v, g, c, c >= k - _AF_TOL


def alkire_foster(
    df: pd.DataFrame,
    dimensions: dict[str, float] | list[str] | None = None,
    k: float | None = None,
    by: Hashable | Sequence[Hashable] | None = None,
    weight: str | None = None,
    persons: str | None = None,
    deprived_if_false: bool = True,
    policy: Policy | None = None,
) -> pd.DataFrame:
    """Alkire–Foster multidimensional poverty per group.

    With dimension weights v_d normalized to sum 1 and deprivation g_id ∈ {0, 1}, the score is
    c_i = Σ_d v_d g_id; unit i is multidimensionally poor when c_i ≥ k (dual cutoff; a 1e-9
    tolerance keeps a score exactly at k from rounding out). With population weights ω_i
    (weight × persons):

    * ``H``  = Σ ω_i 1[poor] / Σ ω_i (headcount ratio);
    * ``A``  = Σ ω_i c_i 1[poor] / Σ ω_i 1[poor] (average censored score of the poor; NaN if none,
      with a note — the other measures are still given);
    * ``M0`` = H × A = Σ ω_i c_i 1[poor] / Σ ω_i (adjusted headcount);
    * ``censored_headcount`` of d = Σ ω_i g_id 1[poor] / Σ ω_i;
    * ``contribution_pct`` of d = 100 × v_d × censored_headcount_d / M0 (sums to 100; NaN if M0=0).

    Parameters
    ----------
    df : DataFrame
        One row per household with boolean dimension columns.
    dimensions : dict or list, optional
        ``{column: weight}`` or a list of columns (equal weights). Default: the policy's
        guarantees (``[indicators].guarantees``) plus ``income_above_line``, equally weighted —
        run :func:`household_indicators` first; ``food_clothing_ok`` falls back to
        ``food_ok & clothing_ok`` when only those exist.
    k : float
        Poverty cutoff in (0, 1]; required (no built-in default cutoff — it is an analyst's
        choice, e.g. 1/3 as in the global MPI).
    by : column name or list, optional
        Grouping columns; the whole table when None.
    weight, persons : str, optional
        Design-weight and household-size columns; population weight is their product.
    deprived_if_false : bool
        True when columns say "ok" (False = deprived); False when they flag deprivation.
    policy : Policy, optional
        Needed for the default dimensions only (its guarantees); MeasureError without it.

    Returns
    -------
    DataFrame
        Tidy: ``[*by, measure, dimension, value, n]``; measures H, A, M0 (dimension NA) and
        censored_headcount, contribution_pct (one row per dimension); ``n`` rows in the group;
        ``attrs["notes"]`` a Note when A is undefined (no poor household) in some group.
    """
    by_l = as_list(by)
    require_columns(df, [*by_l] + [c for c in (weight, persons) if c is not None], "alkire_foster")
    names, v, g, c, poor = _scores(df, dimensions, k, deprived_if_false, policy)
    w = _population_weights(df, weight, persons)

    # Per-row weighted contributions, then one groupby-sum for every group at once.
    rows = pd.DataFrame({"_w": w, "_poor": w * poor, "_cens": w * np.where(poor, c, 0.0)}, index=df.index)
    cens_dims = pd.DataFrame(w[:, None] * g * poor[:, None], columns=[f"_d{i}" for i in range(len(names))],
                             index=df.index)
    rows = pd.concat([rows, cens_dims], axis=1)
    keys = by_l if by_l else [GROUP_KEY]
    if by_l:
        for col in by_l:
            rows[col] = df[col].to_numpy()
    else:
        rows[GROUP_KEY] = 0
    grp = rows.groupby(keys, dropna=False, sort=True)
    s = grp.sum()
    n = grp.size()
    with np.errstate(invalid="ignore", divide="ignore"):
        H = s["_poor"] / s["_w"]
        A = s["_cens"] / s["_poor"]
        M0 = s["_cens"] / s["_w"]
        hd = s[cens_dims.columns].div(s["_w"], axis=0)
        contrib = 100.0 * hd.mul(v, axis=1).div(M0, axis=0)

    parts = [pd.DataFrame({"measure": m, "dimension": None, "value": val, "n": n})
             for m, val in (("H", H), ("A", A), ("M0", M0))]
    for measure, table in (("censored_headcount", hd), ("contribution_pct", contrib)):
        parts += [pd.DataFrame({"measure": measure, "dimension": name, "value": table[f"_d{i}"], "n": n})
                  for i, name in enumerate(names)]
    out = pd.concat(parts).reset_index()
    out["_order"] = np.arange(len(out))
    out = out.sort_values([*keys, "_order"], kind="mergesort").reset_index(drop=True)
    out["n"] = out["n"].astype("int64")
    out["value"] = out["value"].astype(float)
    out = out[[*by_l, "measure", "dimension", "value", "n"]]
    out.attrs["notes"] = intensity_notes(H, bool(by_l))
    return out


def intensity_notes(H: pd.Series, grouped: bool) -> list[Note]:
    """A Note when the intensity A is undefined (no poor: H = 0) in some group (``H`` indexed by group)."""
    none_poor = H.index[(H == 0).to_numpy()]
    if not len(none_poor):
        return []
    if not grouped:
        return [Note("note_af_intensity_undefined")]
    return [Note("note_af_intensity_undefined_groups",
                 {"groups": ["/".join(map(str, k)) if isinstance(k, tuple) else str(k) for k in none_poor]})]
