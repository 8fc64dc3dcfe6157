"""The exit standard per household-year: 一超过、两不愁、三保障 and drinking water.

:func:`household_indicators` tells, for each household-year, whether income is stably above the
poverty line and every configured guarantee holds, with the reasons a household fails
(docs/policy.md §2). No line or threshold is written here: every one comes from
:class:`evalkit.config.Policy`.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from evalkit.config import Policy
from evalkit.errors import MeasureError
from evalkit.measures.columns import as_boolean, require_columns

__all__ = ["REASON_CODES", "GuaranteeSpec", "guarantee_specs", "guarantee_frame", "year_lookup",
           "exit_lines", "household_indicators"]

#: Order of the codes in ``fail_reasons`` (income first, then 两不愁, 三保障, water).
REASON_CODES: tuple[str, ...] = (
    "income_below_line", "income_not_stable",
    "food", "clothing", "education", "medical", "housing", "water",
)

#: (reason code, output column, source columns tried in order) of one guarantee.
GuaranteeSpec = tuple[str, str, tuple[str, ...]]

# Policy guarantee name -> (reason code, output column, source columns tried in order).
# 两不愁 is recorded as one flag in the panel but is two guarantees; separate food/clothing
# columns win when a survey recorded them apart.
_KNOWN_GUARANTEES: dict[str, list[GuaranteeSpec]] = {
    "food_clothing_ok": [
        ("food", "food_ok", ("food_ok", "food_clothing_ok")),
        ("clothing", "clothing_ok", ("clothing_ok", "food_clothing_ok")),
    ],
    "food_ok": [("food", "food_ok", ("food_ok",))],
    "clothing_ok": [("clothing", "clothing_ok", ("clothing_ok",))],
}


def guarantee_specs(guarantees: Sequence[str]) -> list[GuaranteeSpec]:
    """(reason code, output column, candidate source columns) for the configured guarantees.

    Known codes come in the order of :data:`REASON_CODES`; other ``*_ok`` guarantees follow in
    configuration order.
    """
    specs: dict[str, GuaranteeSpec] = {}
    for g in guarantees:
        if g in _KNOWN_GUARANTEES:
            for spec in _KNOWN_GUARANTEES[g]:
                specs.setdefault(spec[0], spec)
        elif g.endswith("_ok"):
            specs.setdefault(g[: -len("_ok")], (g[: -len("_ok")], g, (g,)))
        else:
            raise MeasureError(f"guarantee {g!r} in [indicators].guarantees must be a column ending in '_ok'")
    # Fixed reporting order for the known codes; extra configured guarantees follow in config order.
    fixed = [c for c in REASON_CODES if c in specs]
    extra = [c for c in specs if c not in REASON_CODES]
    return [specs[c] for c in fixed + extra]


def guarantee_frame(df: pd.DataFrame, specs: list[GuaranteeSpec]) -> pd.DataFrame:
    """One nullable-boolean column per guarantee (output names), taken from the first source present."""
    out = {}
    for _code, col, candidates in specs:
        src = next((c for c in candidates if c in df.columns), None)
        if src is None:
            raise MeasureError(f"guarantee {col!r} needs one of the columns {list(candidates)} in the data")
        out[col] = as_boolean(df[src], src)
    return pd.DataFrame(out, index=df.index)


def year_lookup(years: pd.Series, fn: Callable[[int], float]) -> np.ndarray:
    """Apply a per-year config lookup ``fn`` once per distinct year and broadcast it to the rows."""
    if years.isna().any():
        raise MeasureError("the 'year' column has missing values; every household-year needs a year")
    yrs = years.astype("int64")
    table = {y: fn(int(y)) for y in pd.unique(yrs)}  # loop over distinct years, not rows
    return yrs.map(table).to_numpy(dtype=float)


def _row_provinces(panel: pd.DataFrame, province_code: str | int | None) -> tuple[np.ndarray, list[str]]:
    """Index of each row's province in the returned list ('' = unknown): ``province_code``, else
    ``county_code`` (factorized: the distinct counties are few), else unknown."""
    n = len(panel)
    if province_code is not None:
        return np.zeros(n, dtype=np.int64), [str(province_code)[:2]]
    if "county_code" not in panel.columns:
        return np.zeros(n, dtype=np.int64), [""]
    codes, uniq = pd.factorize(panel["county_code"], use_na_sentinel=True)
    codes = np.where(codes < 0, len(uniq), codes).astype(np.int64)
    return codes, [str(u)[:2] for u in uniq] + [""]


def _rule_line(policy: Policy, prov: str, year: int, rule: str | None) -> tuple[float, bool, bool]:
    """(line, income must be at least it, relative rule) of one province-year."""
    r = policy.exit_rule_named(rule) if rule else policy.exit_rule(prov or None)
    if r.kind == "poverty_line":
        return policy.poverty_line(year), False, False
    if not prov:
        raise MeasureError(f"exit rule {r.name!r} compares income with the province's rural income: pass"
                           " province_code or give the rows a county_code")
    # Cents: the share times a yuan amount must not miss a boundary by a floating-point hair.
    line = round(float(r.share) * policy.rural_disposable_income(year, prov), 2)
    return line, r.comparison == "at_least", True


def exit_lines(panel: pd.DataFrame, policy: Policy, province_code: str | int | None = None,
               rule: str | None = None) -> pd.DataFrame:
    """The income line of each row's exit rule (docs/policy.md §2, §2.1).

    The rule is ``rule`` when given (``"national"`` or a name of ``[exit_standard.rules]``), else
    the province's (:meth:`evalkit.config.Policy.exit_rule`; the province is ``province_code``, or
    each row's ``county_code``; without either the national rule). National rule: the poverty
    line of the year, income must be strictly above it. Guangdong's relative rule ([D3]): 45% of
    the province's rural disposable income of the year (sourced or assumed, §3.5), rounded to the
    cent; income must be at least it.

    Returns
    -------
    DataFrame
        On ``panel``'s index: ``line`` (float), ``at_least`` (bool: income ≥ line passes, else
        income > line), ``relative`` (bool: a share-of-rural-income rule).
    """
    if panel["year"].isna().any():
        raise MeasureError("the 'year' column has missing values; every household-year needs a year")
    pidx, provs = _row_provinces(panel, province_code)
    yrs = panel["year"].astype("int64").to_numpy()
    y0 = int(yrs.min()) if len(yrs) else 0
    span = int(yrs.max()) - y0 + 1 if len(yrs) else 1
    # one config lookup per distinct (province, year), broadcast to the rows
    ukey, inv = np.unique(pidx * span + (yrs - y0), return_inverse=True)
    vals = [_rule_line(policy, provs[int(k) // span], int(k) % span + y0, rule) for k in ukey]
    tab = pd.DataFrame(vals, columns=["line", "at_least", "relative"]).astype(
        {"line": "float64", "at_least": bool, "relative": bool})
    out = tab.iloc[inv.reshape(-1)].set_axis(panel.index)
    return out


def _income_test(income: pd.Series, lines: pd.DataFrame, panel: pd.DataFrame, able_bodied_col: str | None,
                 support_col: str | None) -> pd.Series:
    """Income passes the rule of its row; under a relative rule a household without labour capacity
    passes through 低保/特困 support instead ([D3]: '纳入低保') when ``able_bodied_col`` is given."""
    line = lines["line"].to_numpy(dtype=float)
    strict = pd.Series((income > line).array, index=panel.index, dtype="boolean")
    reach = pd.Series((income >= line).array, index=panel.index, dtype="boolean")
    ok = strict.mask(lines["at_least"].to_numpy(dtype=bool), reach)
    if able_bodied_col is None:
        return ok
    if support_col is None:
        raise MeasureError("able_bodied_col needs support_col: the dibao/tekun enrolment of households without"
                           " labour capacity")
    require_columns(panel, [able_bodied_col, support_col], "household_indicators")
    unable = (~as_boolean(panel[able_bodied_col], able_bodied_col)).fillna(False).to_numpy(dtype=bool)
    unable &= lines["relative"].to_numpy(dtype=bool)
    support = pd.Series(as_boolean(panel[support_col], support_col).array, index=panel.index, dtype="boolean")
    return ok.mask(unable, support)


def _stably_above(above_now: pd.Series, key: pd.MultiIndex, k: int) -> pd.Series:
    """Above the line in this year and each of the k-1 previous calendar years (on ``key``)."""
    # Look up the same household's flag in each previous year through the (household, year)
    # index — a loop over lags, never over rows.
    stable = above_now.copy()
    for lag in range(1, k):
        prev_key = pd.MultiIndex.from_arrays([key.get_level_values(0), key.get_level_values(1) - lag])
        prev = above_now.reindex(prev_key)
        prev[~prev_key.isin(key)] = False  # an unobserved year cannot vouch for stability
        stable = stable & pd.Series(prev.array, index=stable.index)
    return stable


def _failure_flags(above_now: pd.Series, stable: pd.Series, guar: pd.DataFrame,
                   specs: list[GuaranteeSpec]) -> pd.DataFrame:
    """One boolean column per reason code: known failures only (NA is not a failure)."""
    # The income reasons are mutually exclusive: 'not stable' is any known instability except
    # being below the line this very year (which covers an unknown income this year after a
    # known year below the line).
    below = (~above_now).fillna(False)
    return pd.DataFrame(
        {
            "income_below_line": below,
            "income_not_stable": (~stable).fillna(False) & ~below,
            **{code: (~guar[col]).fillna(False) for code, col, _ in specs},
        },
        index=guar.index,
    ).astype(bool)


def _join_reasons(flags: pd.DataFrame) -> pd.Series:
    """';'-joined codes of the true flags per row ('' when none)."""
    codes = np.array([f"{c};" for c in flags.columns], dtype=object)
    # Vectorized join: each cell is 'code;' or '', concatenated across columns, trailing ';' cut.
    cells = pd.DataFrame(np.where(flags.to_numpy(), codes, ""), index=flags.index, dtype="string")
    return cells.iloc[:, 0].str.cat(cells.iloc[:, 1:], sep="").str.rstrip(";").astype(object)


def household_indicators(
    panel: pd.DataFrame,
    policy: Policy,
    stable_years: int | None = None,
    income_col: str = "income_per_capita",
    province_code: str | int | None = None,
    rule: str | None = None,
    able_bodied_col: str | None = None,
    support_col: str | None = None,
    *,
    reasons: bool = True,
) -> pd.DataFrame:
    """Exit standard 一超过、两不愁、三保障 (+ drinking water) per household-year.

    Definitions (docs/policy.md §2):

    * ``line`` — the line of the row's exit rule (:func:`exit_lines`): the national poverty line
      of the row's year (``policy.poverty_line``) under the national rule; under Guangdong's
      relative rule (province 44 by default, §2.1) 45% of the province's rural disposable income
      of the year. A year the config does not define raises
      :class:`evalkit.config.ConfigError` naming the year.
    * ``income_above_line`` (一超过) — income strictly above the line (at least the line under
      the relative rule) in this year and, with
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
    policy : Policy
        Poverty lines, guarantees and the default ``stable_years``.
    stable_years : int, optional
        Consecutive years above the line required; ``[indicators].stable_years`` when None.
    income_col : str
        Per-capita income column.
    province_code : str or int, optional
        Province whose exit rule applies to every row; when None, each row's ``county_code``
        (without it, the national rule).
    rule : str, optional
        Force one rule for every row: ``"national"`` or a name of ``[exit_standard.rules]``
        (e.g. ``"guangdong_relative"``).
    able_bodied_col, support_col : str, optional
        Boolean columns "the household has labour capacity" and "enrolled in 低保/特困 support".
        With them, under a relative rule a household without labour capacity passes the income
        test by its support enrolment ([D3]: "纳入低保"); without them the income test applies to
        every household.
    reasons : bool
        False: leave out ``fail_reasons`` (the ';'-joined strings are the costly part; an estimate
        needs only the flags).

    Returns
    -------
    DataFrame
        Same index and row order as ``panel``: ``household_id``, ``year``, ``income_col``,
        ``line``, ``income_above_line``, the guarantee columns, ``meets_exit_standard``,
        ``n_failed``, ``fail_reasons`` (unless ``reasons=False``).
    """
    pol = policy
    k = int(pol.stable_years if stable_years is None else stable_years)
    if k < 1:
        raise MeasureError(f"stable_years must be >= 1, got {k}")
    require_columns(panel, ["household_id", "year", income_col], "household_indicators")

    hh = panel["household_id"]
    year = panel["year"]
    lines = exit_lines(panel, pol, province_code, rule)  # raises ConfigError for an unknown year
    line = lines["line"].to_numpy(dtype=float)
    key = pd.MultiIndex.from_arrays([hh.to_numpy(), year.astype("int64").to_numpy()])
    if key.duplicated().any():
        dup = key[key.duplicated()].unique()[:5].tolist()
        raise MeasureError(f"panel has duplicated household-years, e.g. {dup}; expected one row each")

    income = pd.to_numeric(panel[income_col], errors="raise").astype("Float64")
    above_now = _income_test(income, lines, panel, able_bodied_col, support_col)
    above_now = pd.Series(above_now.array, index=key, dtype="boolean")

    stable = _stably_above(above_now, key, k)
    stable.index = panel.index
    above_now.index = panel.index

    specs = guarantee_specs(pol.guarantees)
    guar = guarantee_frame(panel, specs)

    meets = stable.copy()
    for col in guar.columns:
        meets = meets & guar[col]

    flags = _failure_flags(above_now, stable, guar, specs)

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
    out["n_failed"] = flags.to_numpy().sum(axis=1).astype("int64")
    if reasons:
        out["fail_reasons"] = _join_reasons(flags)
    return out
