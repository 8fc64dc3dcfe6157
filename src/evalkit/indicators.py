"""Household exit indicators, household classes and poverty measures.

Four families of tools, all vectorized over household-years:

* :func:`household_indicators` — the exit standard 一超过、两不愁、三保障 (+ drinking water) per
  household-year, with the reasons a household fails it (domain.md §2);
* :func:`classify_households` — the post-exit classes of seed 004 (domain.md §5);
* :func:`fgt`, :func:`watts`, :func:`gini` and :func:`poverty_measures` — weighted income poverty
  and inequality measures for any grouping, persons being the unit;
* :func:`alkire_foster` — Alkire–Foster multidimensional poverty (H, A, M0, contributions).

No line or threshold is written here: every one comes from :class:`evalkit.config.Policy`.
"""
from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from evalkit.config import Policy, load_policy

__all__ = [
    "REASON_CODES",
    "HOUSEHOLD_CLASSES",
    "household_indicators",
    "classify_households",
    "fgt",
    "watts",
    "gini",
    "poverty_measures",
    "alkire_foster",
]

#: Order of the codes in ``fail_reasons`` (income first, then 两不愁, 三保障, water).
REASON_CODES: tuple[str, ...] = (
    "income_below_line", "income_not_stable",
    "food", "clothing", "education", "medical", "housing", "water",
)

#: Categories of :func:`classify_households`.
HOUSEHOLD_CLASSES: tuple[str, ...] = (
    "poor", "monitored", "enjoying_policy", "not_enjoying_policy", "edge", "not_registered",
)

# Policy guarantee name -> (reason code, output column, source columns tried in order).
# 两不愁 is recorded as one flag in the panel but is two guarantees; separate food/clothing
# columns win when a survey recorded them apart.
_KNOWN_GUARANTEES: dict[str, list[tuple[str, str, tuple[str, ...]]]] = {
    "food_clothing_ok": [
        ("food", "food_ok", ("food_ok", "food_clothing_ok")),
        ("clothing", "clothing_ok", ("clothing_ok", "food_clothing_ok")),
    ],
    "food_ok": [("food", "food_ok", ("food_ok",))],
    "clothing_ok": [("clothing", "clothing_ok", ("clothing_ok",))],
}

# Relative tolerance on the AF cutoff: scores are sums of float weights (1/6 + 1/6 ...) and a
# household exactly at k must not fall out through rounding.
_AF_TOL = 1e-9


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def _policy(policy: Policy | None) -> Policy:
    return load_policy() if policy is None else policy


def _as_list(by: Hashable | Sequence[Hashable] | None) -> list[Hashable]:
    if by is None:
        return []
    if isinstance(by, (str, int)) or not isinstance(by, Sequence):
        return [by]
    return list(by)


def _require(df: pd.DataFrame, cols: Sequence[Hashable], what: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise KeyError(f"{what}: column(s) {missing} not in the data (have {list(df.columns)})")


def _to_boolean(s: pd.Series, name: Hashable) -> pd.Series:
    """Nullable boolean copy; NA stays NA (unknown), anything not boolean-like raises."""
    try:
        return s.astype("boolean")
    except (TypeError, ValueError) as e:
        raise TypeError(
            f"column {name!r} must hold booleans (True/False, 1/0, or missing); "
            f"map labels such as 是/否 first: {e}"
        ) from None


def _guarantee_specs(guarantees: Sequence[str]) -> list[tuple[str, str, tuple[str, ...]]]:
    """(reason code, output column, candidate source columns) for the configured guarantees."""
    specs: dict[str, tuple[str, str, tuple[str, ...]]] = {}
    for g in guarantees:
        if g in _KNOWN_GUARANTEES:
            for spec in _KNOWN_GUARANTEES[g]:
                specs.setdefault(spec[0], spec)
        elif g.endswith("_ok"):
            specs.setdefault(g[: -len("_ok")], (g[: -len("_ok")], g, (g,)))
        else:
            raise ValueError(f"guarantee {g!r} in [indicators].guarantees must be a column ending in '_ok'")
    # Fixed reporting order for the known codes; extra configured guarantees follow in config order.
    fixed = [c for c in REASON_CODES if c in specs]
    extra = [c for c in specs if c not in REASON_CODES]
    return [specs[c] for c in fixed + extra]


def _guarantee_frame(df: pd.DataFrame, specs: list[tuple[str, str, tuple[str, ...]]]) -> pd.DataFrame:
    """One nullable-boolean column per guarantee (output names), taken from the first source present."""
    out = {}
    for _code, col, candidates in specs:
        src = next((c for c in candidates if c in df.columns), None)
        if src is None:
            raise KeyError(f"guarantee {col!r} needs one of the columns {list(candidates)} in the data")
        out[col] = _to_boolean(df[src], src)
    return pd.DataFrame(out, index=df.index)


def _year_lookup(years: pd.Series, fn) -> np.ndarray:
    """Apply a per-year config lookup ``fn`` once per distinct year and broadcast it to the rows."""
    if years.isna().any():
        raise ValueError("the 'year' column has missing values; every household-year needs a year")
    yrs = years.astype("int64")
    table = {y: fn(int(y)) for y in pd.unique(yrs)}  # loop over distinct years, not rows
    return yrs.map(table).to_numpy(dtype=float)


# --------------------------------------------------------------------------------------------
# 1. exit standard per household-year
# --------------------------------------------------------------------------------------------
def household_indicators(
    panel: pd.DataFrame,
    policy: Policy | None = None,
    stable_years: int | None = None,
    income_col: str = "income_per_capita",
) -> pd.DataFrame:
    """Exit standard 一超过、两不愁、三保障 (+ drinking water) per household-year.

    Definitions (domain.md §2):

    * ``line`` — the national poverty line of the row's year (``policy.poverty_line``); a year
      the config does not define raises :class:`evalkit.config.ConfigError` naming the year.
    * ``income_above_line`` (一超过) — income strictly above the line in this year and, with
      ``stable_years=k > 1``, in each of the k−1 previous calendar years of the same household
      (each against its own year's line). A household with any of those years unobserved is not
      stably above (False).
    * ``food_ok``, ``clothing_ok`` (两不愁) — from ``food_ok``/``clothing_ok`` when the data have
      them, else both from ``food_clothing_ok``; ``education_ok``, ``medical_ok``, ``housing_ok``
      (三保障) and ``water_ok`` as recorded. The guarantees required are
      ``[indicators].guarantees`` of the policy.
    * ``meets_exit_standard`` — income stably above the line and every guarantee holds.
    * ``fail_reasons`` — ';'-joined codes in the order of :data:`REASON_CODES`:
      ``income_below_line`` (income ≤ line this year), ``income_not_stable`` (not below this
      year — above, or unknown — but known to be below, or unobserved, in one of the k−1
      previous years), then ``food``, ``clothing``, ``education``, ``medical``,
      ``housing``, ``water``; ``""`` when none. ``n_failed`` counts them.

    Missing values are unknown, not failures: indicator columns are nullable booleans with
    Kleene logic (``meets_exit_standard`` is False if any known criterion fails, NA if the
    others are unknown) and only known failures enter ``fail_reasons``/``n_failed``.

    Parameters
    ----------
    panel : DataFrame
        Household-year table with ``household_id``, ``year``, ``income_col`` and the guarantee
        columns; one row per household-year.
    policy : Policy, optional
        Thresholds; ``load_policy()`` when None.
    stable_years : int, optional
        Consecutive years above the line required; ``[indicators].stable_years`` when None.
    income_col : str
        Per-capita income column.

    Returns
    -------
    DataFrame
        Same index and row order as ``panel``: ``household_id``, ``year``, ``income_col``,
        ``line``, ``income_above_line``, the guarantee columns, ``meets_exit_standard``,
        ``n_failed``, ``fail_reasons``.
    """
    pol = _policy(policy)
    ind_cfg = pol.section("indicators")
    k = int(ind_cfg["stable_years"] if stable_years is None else stable_years)
    if k < 1:
        raise ValueError(f"stable_years must be >= 1, got {k}")
    _require(panel, ["household_id", "year", income_col], "household_indicators")

    hh = panel["household_id"]
    year = panel["year"]
    line = _year_lookup(year, pol.poverty_line)  # raises ConfigError for an unknown year
    key = pd.MultiIndex.from_arrays([hh.to_numpy(), year.astype("int64").to_numpy()])
    if key.duplicated().any():
        dup = key[key.duplicated()].unique()[:5].tolist()
        raise ValueError(f"panel has duplicated household-years, e.g. {dup}; expected one row each")

    income = pd.to_numeric(panel[income_col], errors="raise").astype("Float64")
    above_now = pd.Series((income > line).array, index=key, dtype="boolean")

    # 'Stably above': look up the same household's flag in each of the k-1 previous calendar
    # years through the (household, year) index — a loop over lags, never over rows.
    stable = above_now.copy()
    for lag in range(1, k):
        prev_key = pd.MultiIndex.from_arrays([key.get_level_values(0), key.get_level_values(1) - lag])
        prev = above_now.reindex(prev_key)
        prev[~prev_key.isin(key)] = False  # an unobserved year cannot vouch for stability
        stable = stable & pd.Series(prev.array, index=stable.index)
    stable.index = panel.index
    above_now.index = panel.index

    specs = _guarantee_specs(ind_cfg["guarantees"])
    guar = _guarantee_frame(panel, specs)

    meets = stable.copy()
    for col in guar.columns:
        meets = meets & guar[col]

    # Known failures only (NA -> not a failure). The income reasons are mutually exclusive:
    # 'not stable' is any known instability except being below the line this very year (which
    # covers an unknown income this year after a known year below the line).
    below = (~above_now).fillna(False)
    flags = pd.DataFrame(
        {
            "income_below_line": below,
            "income_not_stable": (~stable).fillna(False) & ~below,
            **{code: (~guar[col]).fillna(False) for code, col, _ in specs},
        },
        index=panel.index,
    ).astype(bool)
    codes = np.array([f"{c};" for c in flags.columns], dtype=object)
    # Vectorized join: each cell is 'code;' or '', concatenated across columns, trailing ';' cut.
    cells = pd.DataFrame(np.where(flags.to_numpy(), codes, ""), index=panel.index, dtype="string")
    reasons = (
        cells.iloc[:, 0].str.cat(cells.iloc[:, 1:], sep="").str.rstrip(";").astype(object)
    )

    out = pd.DataFrame(
        {
            "household_id": hh,
            "year": year,
            income_col: panel[income_col],
            "line": line,
            "income_above_line": stable,
        },
        index=panel.index,
    )
    out = pd.concat([out, guar], axis=1)
    out["meets_exit_standard"] = meets
    out["n_failed"] = flags.sum(axis=1).astype("int64")
    out["fail_reasons"] = reasons
    return out


# --------------------------------------------------------------------------------------------
# 2. household classes after exit
# --------------------------------------------------------------------------------------------
def _register_flags(df: pd.DataFrame, registered_col: str, exited_col: str) -> tuple[pd.Series, pd.Series]:
    if registered_col in df.columns and exited_col in df.columns:
        return _to_boolean(df[registered_col], registered_col), _to_boolean(df[exited_col], exited_col)
    if "register_status" not in df.columns:
        raise KeyError(
            f"classify_households needs columns {registered_col!r} and {exited_col!r}, "
            "or 'register_status' to derive them"
        )
    # Register status codes of dictionary.toml: 'monitored' households are exited; 'edge' ones
    # are not registered.
    status = df["register_status"].astype("string")
    known = {"poor": (True, False), "exited": (True, True), "monitored": (True, True),
             "edge": (False, False), "not_registered": (False, False)}
    bad = status.dropna()[~status.dropna().isin(known)].unique()
    if len(bad):
        raise ValueError(f"unknown register_status values {list(bad)[:5]}; expected codes {list(known)}")
    reg = status.map({s: v[0] for s, v in known.items()}).astype("boolean")
    ex = status.map({s: v[1] for s, v in known.items()}).astype("boolean")
    return reg, ex


def _risk_present(df: pd.DataFrame, pol: Policy, risk_col: str | None) -> np.ndarray:
    if risk_col is not None:
        _require(df, [risk_col], "classify_households risk_col")
        return _to_boolean(df[risk_col], risk_col).fillna(False).to_numpy(dtype=bool)
    shocks = [c for c in df.columns if str(c).startswith("shock_")]
    try:
        guar = _guarantee_frame(df, _guarantee_specs(pol.section("indicators")["guarantees"]))
    except KeyError as e:
        raise KeyError(f"{e.args[0]}; pass risk_col= to classify without the guarantee columns") from None
    parts = [_to_boolean(df[c], c).fillna(False) for c in shocks]
    parts += [(~guar[c]).fillna(False) for c in guar.columns]
    return pd.concat(parts, axis=1).any(axis=1).to_numpy(dtype=bool)


def classify_households(
    df: pd.DataFrame,
    policy: Policy | None = None,
    province_code: str | int | None = None,
    income_col: str = "income_per_capita",
    registered_col: str = "registered",
    exited_col: str = "exited",
    risk_col: str | None = None,
) -> pd.Series:
    """Post-exit class of each household-year (seed 004, domain.md §5).

    * registered and exited:
        - ``not_enjoying_policy`` (不享受政策) — income ≥ share × average rural disposable
          income of the year (share: ``[household_classes].not_enjoying_policy_share_of_average``);
        - ``monitored`` (脱贫监测户) — otherwise, income < monitoring line of the province-year
          AND a risk present;
        - ``enjoying_policy`` (享受政策) — otherwise;
    * registered, not exited: ``poor``;
    * not registered: ``edge`` (边缘户) when income < monitoring line AND a risk present, else
      ``not_registered``.

    "Below" is strict: income equal to the monitoring line is not below it; income equal to the
    share of the average counts as reaching it. A risk is present when ``risk_col`` is true, or,
    without ``risk_col``, when any ``shock_*`` flag is true or any configured guarantee fails in
    that year; a risk must be recorded to count (missing flags are no risk). Rows whose class
    depends on a missing income or register flag get NA.

    Parameters
    ----------
    df : DataFrame
        Household-years with ``year``, ``income_col``, register flags, and (without
        ``risk_col``) the shock and guarantee columns.
    policy : Policy, optional
        Thresholds; ``load_policy()`` when None.
    province_code : str or int, optional
        Province (2-digit GB/T 2260 prefix) for the monitoring line; when None it is taken per
        row from ``county_code``.
    income_col : str
        Per-capita income column.
    registered_col, exited_col : str
        Boolean register columns; when absent they are derived from ``register_status``
        (poor → registered; exited/monitored → registered and exited; edge/not_registered → not
        registered).
    risk_col : str, optional
        Boolean column meaning "a risk of (re)falling into poverty is present".

    Returns
    -------
    Series
        Categorical with categories :data:`HOUSEHOLD_CLASSES`, named ``household_class``, on
        ``df``'s index.
    """
    pol = _policy(policy)
    _require(df, ["year", income_col], "classify_households")
    reg, ex = _register_flags(df, registered_col, exited_col)
    bad = (ex.fillna(False) & ~reg.fillna(True)).to_numpy(dtype=bool)
    if bad.any():
        raise ValueError(f"{int(bad.sum())} row(s) are marked exited but not registered")

    year = df["year"]
    income = pd.to_numeric(df[income_col], errors="raise").to_numpy(dtype=float)

    # Monitoring line per (province, year): one config lookup per distinct pair.
    if province_code is None:
        _require(df, ["county_code"], "classify_households without province_code")
        prov = df["county_code"].astype("string").str[:2]
    else:
        prov = pd.Series(str(province_code)[:2], index=df.index, dtype="string")
    if prov.isna().any():
        raise ValueError("county_code is missing for some rows; the monitoring line needs the province")
    yrs = year.astype("int64")
    pairs = pd.MultiIndex.from_arrays([prov.to_numpy(), yrs.to_numpy()])
    upairs = pairs.unique()
    mline_table = pd.Series([pol.monitoring_line(p, int(y)) for p, y in upairs], index=upairs)
    mline = mline_table.reindex(pairs).to_numpy(dtype=float)

    share = float(pol.section("household_classes")["not_enjoying_policy_share_of_average"])
    avg = _year_lookup(year, pol.rural_disposable_income)

    risk = _risk_present(df, pol, risk_col)
    r = reg.fillna(False).to_numpy(dtype=bool)
    e = ex.fillna(False).to_numpy(dtype=bool)
    nr = (~reg).fillna(False).to_numpy(dtype=bool)
    has_inc = ~np.isnan(income)
    with np.errstate(invalid="ignore"):
        rich = income >= share * avg
        low_risk = (income < mline) & risk

    cond = [
        r & e & has_inc & rich,
        r & e & has_inc & low_risk,
        r & e & has_inc,
        r & ~ex.isna().to_numpy() & ~e,
        nr & has_inc & low_risk,
        nr & has_inc,
    ]
    choice = ["not_enjoying_policy", "monitored", "enjoying_policy", "poor", "edge", "not_registered"]
    # First matching condition wins; code -1 (no condition met: missing input) is NA.
    codes = np.select(cond, [HOUSEHOLD_CLASSES.index(c) for c in choice], default=-1)
    return pd.Series(
        pd.Categorical.from_codes(codes, categories=list(HOUSEHOLD_CLASSES)),
        index=df.index, name="household_class",
    )


# --------------------------------------------------------------------------------------------
# 3. weighted income poverty and inequality
# --------------------------------------------------------------------------------------------
_MEASURES = ("fgt0", "fgt1", "fgt2", "watts", "gini")
_Y, _Z, _W, _G = "__y", "__z", "__w", "__grp"


def _check_finite(a: np.ndarray, what: str) -> None:
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{what} has missing or infinite values; drop or impute them first")


def _work_frame(y: ArrayLike, z: ArrayLike | None, w: ArrayLike | None,
                keys: pd.DataFrame | None = None) -> pd.DataFrame:
    """Validated working frame (income, line, population weight, group keys)."""
    y = np.asarray(y, dtype=float).ravel()
    n = y.size
    if n == 0:
        raise ValueError("no observations")
    _check_finite(y, "income")
    cols: dict[str, np.ndarray] = {_Y: y}
    if z is not None:
        zz = np.broadcast_to(np.asarray(z, dtype=float), (n,)).copy() if np.ndim(z) == 0 \
            else np.asarray(z, dtype=float).ravel()
        if zz.size != n:
            raise ValueError(f"poverty line has {zz.size} values for {n} incomes")
        _check_finite(zz, "poverty line")
        if np.any(zz <= 0):
            raise ValueError("poverty line must be positive")
        cols[_Z] = zz
    ww = np.ones(n) if w is None else np.asarray(w, dtype=float).ravel()
    if ww.size != n:
        raise ValueError(f"weights have {ww.size} values for {n} incomes")
    _check_finite(ww, "weight")
    if np.any(ww < 0):
        raise ValueError("weights must be non-negative")
    cols[_W] = ww
    out = pd.DataFrame(cols)
    if keys is None or keys.shape[1] == 0:
        out[_G] = 0  # one group
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
        raise ValueError(
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
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    work = _work_frame(y, z, w)
    return float(np.sum(work[_W] * _fgt_rows(work[_Y].to_numpy(), work[_Z].to_numpy(), alpha)) / work[_W].sum())


def watts(y: ArrayLike, z: ArrayLike, w: ArrayLike | None = None) -> float:
    """Watts index W = Σ_{i poor} w_i ln(z / y_i) / Σ_i w_i (poor: y ≤ z).

    The log gap of the poor, averaged over the whole population (the non-poor contribute 0),
    which is the standard, subgroup-decomposable definition; divide by :func:`fgt` with
    alpha=0 for the mean over the poor only. Raises ValueError when a poor unit has income ≤ 0
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
    work = _work_frame(y, z, w)
    return float(np.sum(work[_W] * _watts_rows(work[_Y].to_numpy(), work[_Z].to_numpy())) / work[_W].sum())


def gini(y: ArrayLike, w: ArrayLike | None = None) -> float:
    """Weighted Gini coefficient Σ_i Σ_j w_i w_j |y_i − y_j| / (2 W² ȳ_w).

    Computed from the sorted Lorenz curve; with equal weights it equals the standard
    Σ|x_i − x_j| / (2 n² x̄). Integer weights give the Gini of the replicated sample. Negative
    incomes are allowed, but the weighted mean must be positive (ValueError otherwise).

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
    work = _work_frame(y, None, w)
    if not (work[_W] * work[_Y]).sum() > 0:
        raise ValueError("Gini undefined: weighted mean income must be positive")
    return float(_grouped_gini(work, [_G]).iloc[0])


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
    by_l = _as_list(by)
    cols = [income, *by_l] + [c for c in (weight, persons) if c is not None]
    if isinstance(line, str):
        cols.append(line)
    _require(df, cols, "poverty_measures")
    w = np.ones(len(df))
    if weight is not None:
        w = w * pd.to_numeric(df[weight]).to_numpy(dtype=float)
    if persons is not None:
        w = w * pd.to_numeric(df[persons]).to_numpy(dtype=float)
    z = df[line].to_numpy(dtype=float) if isinstance(line, str) else float(line)
    work = _work_frame(df[income].to_numpy(dtype=float), z, w, df[by_l] if by_l else None)
    keys = by_l if by_l else [_G]  # one constant key when no grouping
    wide = _grouped_measures(work, keys)

    long = wide.reset_index().melt(id_vars=[*keys, "n"], value_vars=list(_MEASURES),
                                   var_name="measure", value_name="value")
    long["measure"] = pd.Categorical(long["measure"], categories=list(_MEASURES))
    long = long.sort_values([*keys, "measure"], kind="mergesort").reset_index(drop=True)
    long["measure"] = long["measure"].astype(str)
    long["n"] = long["n"].astype("int64")
    return long[[*by_l, "measure", "value", "n"]]


# --------------------------------------------------------------------------------------------
# 4. Alkire–Foster
# --------------------------------------------------------------------------------------------
def _deprivations(df: pd.DataFrame, names: list[str], deprived_if_false: bool) -> np.ndarray:
    """n × D matrix of 0/1 deprivations; missing values raise (AF needs complete profiles)."""
    mats = []
    for name in names:
        if name in df.columns:
            col = _to_boolean(df[name], name)
        elif name == "food_clothing_ok" and deprived_if_false and {"food_ok", "clothing_ok"} <= set(df.columns):
            # household_indicators splits 两不愁 in two; the dimension holds when both hold.
            col = _to_boolean(df["food_ok"], "food_ok") & _to_boolean(df["clothing_ok"], "clothing_ok")
        else:
            raise KeyError(f"alkire_foster: dimension column {name!r} not in the data")
        if col.isna().any():
            raise ValueError(
                f"alkire_foster: dimension {name!r} has {int(col.isna().sum())} missing value(s); "
                "the deprivation score needs every dimension observed — drop or impute first"
            )
        dep = ~col if deprived_if_false else col
        mats.append(dep.to_numpy(dtype=bool))
    return np.column_stack(mats).astype(float)


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
    * ``A``  = Σ ω_i c_i 1[poor] / Σ ω_i 1[poor] (average censored score of the poor; NaN if none);
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
        Used only for the default dimensions; ``load_policy()`` when None.

    Returns
    -------
    DataFrame
        Tidy: ``[*by, measure, dimension, value, n]``; measures H, A, M0 (dimension NA) and
        censored_headcount, contribution_pct (one row per dimension); ``n`` rows in the group.
    """
    if dimensions is None:
        names = [*_policy(policy).section("indicators")["guarantees"], "income_above_line"]
        dims = {d: 1.0 for d in names}
    elif isinstance(dimensions, dict):
        dims = {str(d): float(v) for d, v in dimensions.items()}
    else:
        dims = {str(d): 1.0 for d in dimensions}
    if not dims:
        raise ValueError("alkire_foster needs at least one dimension")
    v = np.array(list(dims.values()), dtype=float)
    if np.any(~np.isfinite(v)) or np.any(v < 0) or v.sum() <= 0:
        raise ValueError(f"dimension weights must be non-negative with a positive sum, got {dims}")
    v = v / v.sum()
    if k is None:
        raise ValueError("alkire_foster needs the poverty cutoff k in (0, 1]")
    if not 0 < k <= 1:
        raise ValueError(f"k must be in (0, 1], got {k}")

    by_l = _as_list(by)
    _require(df, [*by_l] + [c for c in (weight, persons) if c is not None], "alkire_foster")
    names = list(dims)
    g = _deprivations(df, names, deprived_if_false)
    w = np.ones(len(df))
    if weight is not None:
        w = w * pd.to_numeric(df[weight]).to_numpy(dtype=float)
    if persons is not None:
        w = w * pd.to_numeric(df[persons]).to_numpy(dtype=float)
    _check_finite(w, "weight")
    if np.any(w < 0):
        raise ValueError("weights must be non-negative")

    c = g @ v
    poor = c >= k - _AF_TOL
    # Per-row weighted contributions, then one groupby-sum for every group at once.
    rows = pd.DataFrame({"_w": w, "_poor": w * poor, "_cens": w * np.where(poor, c, 0.0)}, index=df.index)
    cens_dims = pd.DataFrame(w[:, None] * g * poor[:, None], columns=[f"_d{i}" for i in range(len(names))],
                             index=df.index)
    rows = pd.concat([rows, cens_dims], axis=1)
    keys = by_l if by_l else [_G]
    if by_l:
        for col in by_l:
            rows[col] = df[col].to_numpy()
    else:
        rows[_G] = 0
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
    for i, name in enumerate(names):
        parts.append(pd.DataFrame({"measure": "censored_headcount", "dimension": name,
                                   "value": hd[f"_d{i}"], "n": n}))
    for i, name in enumerate(names):
        parts.append(pd.DataFrame({"measure": "contribution_pct", "dimension": name,
                                   "value": contrib[f"_d{i}"], "n": n}))
    out = pd.concat(parts).reset_index()
    out["_order"] = np.arange(len(out))
    out = out.sort_values([*keys, "_order"], kind="mergesort").reset_index(drop=True)
    out["n"] = out["n"].astype("int64")
    out["value"] = out["value"].astype(float)
    return out[[*by_l, "measure", "dimension", "value", "n"]]
