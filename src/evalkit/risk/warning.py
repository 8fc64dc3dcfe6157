"""Early warning, case closure (销号) and the village watch list — as data, never as files.

Red / yellow / green levels come from the policy's thresholds, reasons from the official risk
categories (docs/policy.md §5, code list ``risk_category``). Writing the watch list to Excel is
the report layer's job (:func:`evalkit.report.risk.write_watchlist_xlsx`).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from evalkit import privacy
from evalkit.config import Policy
from evalkit.errors import RiskModelError
from evalkit.risk.labels import label_definition
from evalkit.risk.panel import KEYS, Grid, flag_values, known_true, line_values, panel_frame, require_columns

__all__ = ["REASON_CATEGORIES", "LEVELS", "early_warning", "case_closure", "closure_by_year", "watchlist"]

#: Official risk categories (docs/policy.md §5, code list ``risk_category``) a warning can cite.
#: ``rigid_expenditure`` (刚性支出) is not derivable from the panel and is never cited.
REASON_CATEGORIES: tuple[str, ...] = (
    "illness", "disability", "schooling", "disaster", "accident", "project_failure",
    "unstable_employment", "lack_labour", "housing", "water", "low_income",
)

#: Warning levels, most urgent first.
LEVELS: tuple[str, ...] = ("red", "yellow", "green")


def _col(df: pd.DataFrame, name: str) -> np.ndarray:
    """Known-true flag column, or all False when the column is absent."""
    if name not in df.columns:
        return np.zeros(len(df), bool)
    s = df[name]
    if pd.api.types.is_bool_dtype(s) or isinstance(s.dtype, pd.BooleanDtype):
        return known_true(s)
    return pd.to_numeric(s, errors="coerce").fillna(0).to_numpy(dtype=float) > 0


def _reason_flags(df: pd.DataFrame) -> dict[str, np.ndarray]:
    """Flags of the official categories from the household's situation at t (no row loops).

    illness: illness shock at t, chronic illness, or failed medical guarantee; disability: disabled
    member (registration or onset ≤ t); schooling: failed education guarantee, or children of
    school age / in school while income is below the monitoring line; disaster / accident /
    project_failure / unstable_employment: the shocks at t; lack_labour: no member able to work;
    housing / water: failed guarantees; low_income: income below the monitoring line or failed
    food/clothing guarantee.
    """
    low = _col(df, "below_monitoring_line")
    return {
        "illness": _col(df, "shock_illness") | _col(df, "chronic_illness") | _col(df, "fail_medical"),
        "disability": _col(df, "disability"),
        "schooling": _col(df, "fail_education")
        | (low & (_col(df, "school_age_children") | _col(df, "n_in_school_base"))),
        "disaster": _col(df, "shock_disaster"),
        "accident": _col(df, "shock_accident"),
        "project_failure": _col(df, "shock_project_failure"),
        "unstable_employment": _col(df, "shock_job_loss"),
        "lack_labour": _col(df, "no_labour"),
        "housing": _col(df, "fail_housing"),
        "water": _col(df, "fail_water"),
        "low_income": low | _col(df, "fail_food_clothing"),
    }


def _main_reason_priority(df: pd.DataFrame, flags: dict[str, np.ndarray]) -> list[tuple[str, np.ndarray]]:
    """Order in which a reason becomes the *main* one: events dated at t first (they are what
    changed and what assistance can answer now), then lasting conditions, then failed
    guarantees, and low income last (it is the symptom the other causes produce)."""
    return [
        ("disaster", flags["disaster"]), ("accident", flags["accident"]),
        ("illness", _col(df, "shock_illness")), ("disability", _col(df, "shock_disability")),
        ("project_failure", flags["project_failure"]), ("unstable_employment", flags["unstable_employment"]),
        ("illness", flags["illness"]), ("disability", flags["disability"]), ("lack_labour", flags["lack_labour"]),
        ("schooling", flags["schooling"]), ("housing", flags["housing"]), ("water", flags["water"]),
        ("low_income", flags["low_income"]),
    ]


def _reasons(d: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: the flag matrix (rows × categories), the ';'-joined reasons and the main reason."""
    flags = _reason_flags(d)
    M = np.column_stack([flags[c] for c in REASON_CATEGORIES])
    codes = np.array([f"{c};" for c in REASON_CATEGORIES], dtype=object)
    cells = pd.DataFrame(np.where(M, codes, ""), dtype="string")
    reasons = cells.iloc[:, 0].str.cat(cells.iloc[:, 1:], sep="").str.rstrip(";").to_numpy(dtype=object)
    prio = _main_reason_priority(d, flags)
    P = np.column_stack([f for _, f in prio])
    first = np.array([c for c, _ in prio], dtype=object)[P.argmax(axis=1)]
    return M, reasons, np.where(M.any(axis=1), first, None)


def early_warning(scores_df: pd.DataFrame, policy: Policy, score: str = "score",
                  features: pd.DataFrame | None = None) -> pd.DataFrame:
    """Warning level and reasons per household-year.

    Level: ``red`` when score ≥ ``policy.risk.red_threshold``, ``yellow`` when ≥
    ``policy.risk.yellow_threshold``, else ``green`` (thresholds assume calibrated probabilities,
    e.g. of the boosting or logit model). Reasons are the official categories
    (:data:`REASON_CATEGORIES`) whose flags hold at t, ';'-joined in that order; ``main_reason``
    is the most pressing of them (events dated at t, then lasting conditions, failed guarantees,
    low income).

    Parameters
    ----------
    scores_df : DataFrame
        ``household_id, year, score`` and the flag columns of
        :func:`~evalkit.risk.features.build_features` (or pass ``features`` to have them merged on
        household_id and year).
    policy : Policy
    score : str
        Score column.
    features : DataFrame, optional

    Returns
    -------
    DataFrame
        keys (+ county_code, village_code when known), ``score, level, main_reason, reasons, n_reasons``.
    """
    red, yellow = policy.risk.red_threshold, policy.risk.yellow_threshold
    if not red > yellow:
        raise RiskModelError(f"[risk] red_threshold ({red}) must exceed yellow_threshold ({yellow})")
    require_columns(scores_df, [*KEYS, score], "early_warning")
    d = scores_df
    if features is not None:
        extra = [c for c in features.columns if c not in d.columns or c in KEYS]
        d = d.merge(features[extra], on=KEYS, how="left", validate="many_to_one")
    s = pd.to_numeric(d[score], errors="raise").to_numpy(dtype=float)
    level = np.where(s >= red, "red", np.where(s >= yellow, "yellow", "green")).astype(object)
    M, reasons, main = _reasons(d)
    keep = [c for c in (*KEYS, "county_code", "village_code") if c in d.columns]
    out = d[keep].reset_index(drop=True).copy()
    out["score"] = s
    out["level"] = pd.Categorical(level, categories=list(LEVELS))
    out["main_reason"] = main
    out["reasons"] = reasons
    out["n_reasons"] = M.sum(axis=1).astype(np.int64)
    return out


def _ok_runs(p: pd.DataFrame, g: Grid, policy: Policy, line: str, guar: list[str]) -> np.ndarray:
    """Households × years: length of the run of ok years (income ≥ line, every guarantee met) ending there."""
    lv = line_values(p["county_code"], p["year"], policy, line)
    inc = pd.to_numeric(p["income_per_capita"], errors="raise").to_numpy(dtype=float)
    ok = (inc >= lv) & np.logical_and.reduce([flag_values(p[c]) == 1 for c in guar] or [np.ones(len(p), bool)])
    OK = g.wide(ok, fill=False, dtype=bool)
    run = np.zeros(g.shape, np.int64)
    for j in range(g.shape[1]):  # loop over calendar years: run length of ok years ending at j
        run[:, j] = np.where(OK[:, j], (run[:, j - 1] if j else 0) + 1, 0)
    return run


def _monitoring_starts(p: pd.DataFrame, g: Grid) -> pd.DataFrame:
    """The start of every spell of ``register_status`` 'monitored' or 'edge'."""
    require_columns(p, ["register_status"], "case_closure without cases")
    mon = g.wide(p["register_status"].isin(["monitored", "edge"]).to_numpy(), fill=False, dtype=bool)
    start = mon & ~Grid.lag(mon, 1, fill=False)
    hi_, yi_ = np.nonzero(start)
    return pd.DataFrame({"household_id": g.ids[hi_].to_numpy(), "year": g.years[yi_]})


def case_closure(
    panel: pd.DataFrame,
    policy: Policy,
    cases: pd.DataFrame | None = None,
    line: str | None = None,
    guarantees: Sequence[str] | None = None,
    periods: int | None = None,
) -> pd.DataFrame:
    """Closure (销号) of monitoring cases.

    A case opened at year t0 is cleared at the first year s > t0 ending a run of ``periods``
    consecutive panel years after t0 in which income is not below the line (income ≥ line) and
    every guarantee holds (a missing year or unknown value breaks the run).

    Parameters
    ----------
    panel : DataFrame
    policy : Policy
    cases : DataFrame, optional
        ``household_id, year`` of opening (e.g. warnings of level red/yellow). Default: the start
        of every spell of ``register_status`` 'monitored' or 'edge'.
    line : {'monitoring', 'poverty'}, optional
        Default ``policy.risk.label_line``.
    guarantees : list of str, optional
        Default ``policy.risk.label_guarantees``.
    periods : int, optional
        Default ``policy.risk.closure_periods``.

    Returns
    -------
    DataFrame
        ``household_id, opened, cleared, closure_year (Int64), status ('cleared'|'open'),
        consecutive_ok`` (length of the ok run at the panel's last year).
    """
    line, guar, _ = label_definition(policy, line, guarantees, None)
    k = int(policy.risk.closure_periods if periods is None else periods)
    if k < 1:
        raise RiskModelError(f"periods must be >= 1, got {k}")
    require_columns(panel, ["income_per_capita", *guar], "case_closure")
    p = panel_frame(panel)
    g = Grid(p["household_id"], p["year"])
    run = _ok_runs(p, g, policy, line, guar)
    if cases is None:
        cases = _monitoring_starts(p, g)
    require_columns(cases, KEYS, "case_closure cases")
    c = cases[KEYS].drop_duplicates().reset_index(drop=True)
    ci = g.ids.get_indexer(c["household_id"])
    if (ci < 0).any():
        raise RiskModelError(f"{int((ci < 0).sum())} case(s) refer to households not in the panel")
    t0 = c["year"].to_numpy(dtype=np.int64)
    R = run[ci]  # cases × calendar years
    yrs = g.years[None, :]
    # cleared at s when the run ending at s has >= k years, all after the opening year
    hit = (R >= k) & (yrs - k + 1 > t0[:, None])
    anyhit = hit.any(axis=1)
    closure = np.where(anyhit, g.years[hit.argmax(axis=1)], -1)
    out = pd.DataFrame({
        "household_id": c["household_id"].to_numpy(), "opened": t0,
        "cleared": anyhit, "closure_year": pd.array(np.where(anyhit, closure, 0), dtype="Int64"),
        "status": np.where(anyhit, "cleared", "open").astype(object),
        "consecutive_ok": run[ci, -1],
    })
    out.loc[~anyhit, "closure_year"] = pd.NA
    return out


def closure_by_year(closure: pd.DataFrame, last_year: int) -> pd.DataFrame:
    """Monitoring cases by year from :func:`case_closure`.

    Returns
    -------
    DataFrame
        Index ``year`` (first opening year to ``last_year`` or the last closure, whichever is
        later); ``opened`` (cases starting that year), ``cleared`` (销号 that year) and ``open``
        (opened by then and not cleared at the year's end).
    """
    if not len(closure):
        return pd.DataFrame({"opened": [], "cleared": [], "open": []}, dtype="int64").rename_axis("year")
    opened = closure["opened"].astype("int64")
    closed = closure["closure_year"].astype("Float64")
    first = int(opened.min())
    last = max(int(last_year), int(closed.max()) if closed.notna().any() else first)
    rows = []
    for y in range(first, last + 1):  # loop over years
        still = (opened <= y) & (closed.isna() | (closed > y)).fillna(True).astype(bool)
        rows.append({"year": y, "opened": int((opened == y).sum()),
                     "cleared": int((closed == y).fillna(False).sum()), "open": int(still.sum())})
    return pd.DataFrame(rows).set_index("year")


def watchlist(
    warnings: pd.DataFrame,
    households: pd.DataFrame,
    members: pd.DataFrame | None,
    villages: pd.DataFrame | None = None,
    levels: Sequence[str] = ("red", "yellow"),
    k: int | None = None,
    heads: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Per-village watch list with the household head's name and ID number masked.

    Parameters
    ----------
    warnings : DataFrame
        :func:`early_warning` output (one year).
    households, members : DataFrame
        ``members`` may be None when ``heads`` is given.
    villages : DataFrame, optional
        Adds ``township_name`` and ``village_name``.
    levels : sequence of str
        Levels listed.
    k : int, optional
        Keep only the top-k households of each village (follow-up capacity).
    heads : DataFrame, optional
        :func:`evalkit.privacy.masked_heads` computed already (the province store keeps them
        instead of the members' names).

    Returns
    -------
    DataFrame
        ``county_code, village_code[, township_name, village_name], rank_in_village, household_id,
        head_name_masked, head_id_number_masked, household_size, year, risk_score, warning_level,
        main_risk_reason, risk_reasons`` sorted by county, village and descending score.
    """
    require_columns(warnings, [*KEYS, "score", "level", "main_reason", "reasons"], "watchlist")
    if heads is None:
        require_columns(members, ["household_id", "name", "id_number", "relation_to_head"], "watchlist members")
        heads = privacy.masked_heads(members)
    require_columns(heads, ["household_id", "head_name_masked", "head_id_number_masked"], "watchlist heads")
    w = warnings[warnings["level"].astype(str).isin(list(levels))]
    hh_cols = [c for c in ("household_id", "county_code", "village_code", "household_size") if c in households.columns]
    w = w.drop(columns=[c for c in ("county_code", "village_code") if c in w.columns]).merge(
        households[hh_cols], on="household_id", how="left", validate="many_to_one")
    w = w.merge(heads, on="household_id", how="left", validate="many_to_one")
    if villages is not None:
        vc = [c for c in ("village_code", "township_name", "village_name") if c in villages.columns]
        w = w.merge(villages[vc].drop_duplicates("village_code"), on="village_code", how="left")
    w = w.sort_values(["county_code", "village_code", "score", "household_id"],
                      ascending=[True, True, False, True], kind="stable").reset_index(drop=True)
    w["rank_in_village"] = w.groupby("village_code").cumcount() + 1
    if k is not None:
        w = w[w["rank_in_village"] <= k].reset_index(drop=True)
    w = w.rename(columns={"score": "risk_score", "level": "warning_level", "main_reason": "main_risk_reason",
                          "reasons": "risk_reasons"})
    w["warning_level"] = w["warning_level"].astype(str)
    order = ["county_code", "village_code", "township_name", "village_name", "rank_in_village", "household_id",
             "head_name_masked", "head_id_number_masked", "household_size", "year", "risk_score", "warning_level",
             "main_risk_reason", "risk_reasons"]
    return w[[c for c in order if c in w.columns]]
