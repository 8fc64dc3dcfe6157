"""The return-to-poverty risk report: model comparison, calibration, capture, effects, red list,
case closure, notes and the watch-list workbook.

Display and file writing of the risk slice live here; :mod:`evalkit.risk` only computes. Every
string comes from :mod:`evalkit.text`; ``run`` arguments are a
:class:`evalkit.workflows.monitoring.MonitoringRun` (read by attribute, not imported: the report
layer sits below the workflows).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from evalkit import dictionary, geo, privacy
from evalkit.config import Policy
from evalkit.errors import RiskModelError
from evalkit.report import style
from evalkit.report.common import code_label, feature_label, fmt_table, new_figure, pct, write_ledger_xlsx
from evalkit.report.ledger import sheet_name
from evalkit.risk import LEVELS, REASON_CATEGORIES
from evalkit.text import Note, check_lang, label, render_notes, text

__all__ = ["model_label", "model_comparison", "effects_table", "plot_calibration", "plot_capture_curve",
           "plot_effects", "stability_table", "red_list_by_village", "risk_intro", "returns_table",
           "selection_text", "closure_table", "closure_text", "notes_section", "warning_thresholds_text",
           "write_watchlist_xlsx"]




def model_label(name: str, lang: str = "zh") -> str:
    """Label of a risk model."""
    return label(f"model_{name}", lang)


def model_comparison(metrics: pd.DataFrame, lang: str = "zh") -> pd.DataFrame:
    """Model comparison table (AUC, PR-AUC, Brier, recall@k, precision@k), rule first."""
    m = metrics.set_index("model")
    order = ["rule"] + [x for x in m.index if x != "rule"]
    out = pd.DataFrame({
        label("metric_auc", lang): [style.prob(x, 3) for x in m.loc[order, "auc"]],
        label("metric_pr_auc", lang): [style.prob(x, 3) for x in m.loc[order, "pr_auc"]],
        label("metric_brier", lang): [style.prob(x, 3) for x in m.loc[order, "brier"]],
        label("recall_at_k", lang): [pct(x, 1) for x in m.loc[order, "recall_at_k"]],
        label("precision_at_k", lang): [pct(x, 1) for x in m.loc[order, "precision_at_k"]],
    }, index=pd.Index([model_label(x, lang) for x in order], name=label("model", lang)))
    return out


def effects_table(effects: pd.DataFrame, lang: str = "zh") -> pd.DataFrame:
    """Logit effects: coefficient, clustered SE, odds ratio with its CI, p-value; labelled rows."""
    e = effects.drop(index=[i for i in effects.index if str(i).startswith("C(")], errors="ignore")
    names = [feature_label(t, lang) for t in e.index]
    out = pd.DataFrame({label("coefficient", lang): e["coef"].round(3).to_numpy(),
                        label("se", lang): e["se"].round(3).to_numpy(),
                        label("odds_ratio", lang): [f"{a:.2f} [{b:.2f}, {c:.2f}]" for a, b, c in
                                                    zip(e["odds_ratio"], e["or_ci_low"], e["or_ci_high"])],
                        label("p_value", lang): e["p_value"].map(lambda p: "<0.001" if p < 0.001 else f"{p:.3f}")
                        .to_numpy()},
                       index=pd.Index(names, name=""))
    return out


def plot_calibration(calibration: pd.DataFrame, lang: str = "zh"):
    """Calibration curves: mean predicted probability vs observed rate, per model."""
    fig, ax = new_figure((5.5, 5))
    for name, g in calibration.groupby("model", sort=False):
        if name == "rule":  # a ranking score, not a probability
            continue
        ax.plot(g["mean_predicted"], g["observed_rate"], "o-", label=model_label(name, lang), ms=4)
    hi = float(max(calibration["mean_predicted"].max(), calibration["observed_rate"].max()))
    ax.plot([0, hi], [0, hi], "k--", lw=1)
    ax.set_xlabel(label("mean_predicted", lang))
    ax.set_ylabel(label("observed_rate", lang))
    ax.set_title(label("h_calibration", lang))
    ax.legend(fontsize=8)
    fig.set_layout_engine("tight")
    return fig


def plot_capture_curve(curve: pd.DataFrame, lang: str = "zh"):
    """Share of actual returners on the lists against list size per village, every model vs the rule."""
    fig, ax = new_figure((6.5, 4.5))
    for name, g in curve.groupby("model", sort=False):
        ax.plot(g["k"], 100 * g["recall_at_k"], "k--o" if name == "rule" else "-o", ms=4,
                label=model_label(name, lang))
    ax.set_xlabel(label("list_size_k", lang))
    ax.set_ylabel(label("recall_at_k", lang) + " (%)")
    ax.set_title(label("h_capture", lang))
    ax.legend(fontsize=8)
    fig.set_layout_engine("tight")
    return fig


def plot_effects(effects: pd.DataFrame, lang: str = "zh"):
    """Odds ratios with 95% CIs of the logistic model (log scale)."""
    e = effects.drop(index=[i for i in effects.index if i == "const" or str(i).startswith("C(")], errors="ignore")
    fig, ax = new_figure((6.5, 0.38 * len(e) + 1.2))
    y = np.arange(len(e))
    ax.errorbar(e["odds_ratio"], y, xerr=[e["odds_ratio"] - e["or_ci_low"], e["or_ci_high"] - e["odds_ratio"]],
                fmt="o", capsize=3)
    ax.axvline(1, color="black", lw=1, ls="--")
    ax.set_xscale("log")
    _odds_ratio_ticks(ax, float(e["or_ci_low"].min()), float(e["or_ci_high"].max()))
    ax.set_yticks(y, [feature_label(t, lang) for t in e.index], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(label("odds_ratio", lang))
    ax.set_title(label("h_effects", lang))
    fig.set_layout_engine("tight")
    return fig


_OR_TICKS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100)  # axis ticks, not a threshold


def _odds_ratio_ticks(ax: Any, lo: float, hi: float) -> None:
    """Plain-number ticks (0.5, 1, 2 ...) on a log axis instead of overlapping 10^x labels."""
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

    lo, hi = max(min(lo, 1.0), 1e-3), max(hi, 1.0)
    ticks = [t for t in _OR_TICKS if lo / 1.2 <= t <= hi * 1.2] or [1]
    while len(ticks) > 7:  # keep every other tick, always keeping 1
        ticks = sorted({*ticks[::2], 1})
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(lambda v, _pos: f"{v:g}")
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlim(min(ticks[0], lo) / 1.15, max(ticks[-1], hi) * 1.15)


def warning_thresholds_text(policy: Policy, lang: str = "zh") -> str:
    """How the red and yellow lists are defined (the policy's score thresholds)."""
    return text("risk_thresholds_text", lang, red=pct(policy.risk.red_threshold, 0),
                yellow=pct(policy.risk.yellow_threshold, 0))


def stability_table(stability: pd.DataFrame, lang: str = "zh") -> pd.DataFrame:
    """County stability: mean, sd, min and max of each metric across counties ('—' where undefined).

    Shares (recall, precision) are percentages with one decimal; AUC and Brier scores three decimals.
    """
    s = stability.copy()
    share = s["metric"].isin(["recall_at_k", "precision_at_k"]).to_numpy()
    cols = ["n_counties", "mean", "sd", "min", "max"]
    shown = pd.DataFrame({"n_counties": [style.num(v) for v in s["n_counties"]]}, index=s.index)
    for c in cols[1:]:
        shown[c] = [style.pct(v, 1) if sh else style.prob(v, 3) for v, sh in zip(s[c], share)]
    shown["model"] = [model_label(x, lang) for x in s["model"]]
    shown["metric"] = [label(f"metric_{x}", lang) for x in s["metric"]]
    t = shown.set_index(["model", "metric"])[cols].rename_axis([label("model", lang), label("metric", lang)])
    t.columns = [label(f"stat_{c}", lang) for c in cols]
    # one county: the spread across counties is undefined, shown as a dash and never as NaN
    return t.replace("—", label("risk_missing_value", lang))


def red_list_by_village(watch: pd.DataFrame, lang: str = "zh") -> pd.DataFrame:
    """Red-list summary: households on the red and yellow lists per village."""
    w = watch.assign(red=watch["warning_level"].eq("red"), yellow=watch["warning_level"].eq("yellow"))
    keys = [c for c in ("county_code", "township_name", "village_name", "village_code") if c in w.columns]
    out = w.groupby(keys, dropna=False).agg(red=("red", "sum"), yellow=("yellow", "sum")).reset_index()
    out = out.sort_values(["red", "yellow"], ascending=False, kind="stable").set_index(keys)
    out.index.names = [label(k, lang) for k in keys]
    return out.rename(columns={"red": code_label("warning_level", "red", lang),
                               "yellow": code_label("warning_level", "yellow", lang)})


def risk_intro(run: Any, lang: str = "zh") -> str:
    """One paragraph: what was validated and what the current list holds."""
    m = run.validation.metrics.set_index("model")
    best, rule = m.loc[run.best_model], m.loc["rule"]
    sy = run.selection_year
    key = "risk_intro_selected" if sy is not None else "risk_intro_default"
    return text(key, lang, first=min(run.train_years), last=max(run.train_years), test_year=run.test_year,
                k=run.capacity_k, model=model_label(run.best_model, lang), selection_year=sy,
                best_recall=pct(best["recall_at_k"], 1), rule_recall=pct(rule["recall_at_k"], 1),
                score_year=run.score_year, n_red=int((run.warnings["level"] == "red").sum()))


def returns_table(returns: pd.DataFrame, lang: str = "zh") -> pd.DataFrame:
    """Observed returns by population and year with labelled index and columns."""
    pop_codes = {"exited": "exited", "non_registered": "non_registered"}
    out = returns.rename(index=lambda v: code_label("hh_stratum", pop_codes.get(v, v), lang)
                         if isinstance(v, str) else v)
    out.index = out.index.set_names([label("population", lang), label("panel.year", lang)])
    out = style.format_frame(out, {"n": "count", "events": "count", "rate": "pct1"}, lang)
    return fmt_table(out, lang)


def selection_text(run: Any, lang: str = "zh") -> str:
    """How the model was chosen (selection year, recall@k of each model there)."""
    if run.selection is None:
        return text("selection_none", lang, model=model_label(run.best_model, lang))
    sm = run.selection.set_index("model")["recall_at_k"]
    parts = label("risk_list_sep", lang).join(f"{model_label(n, lang)} {pct(v, 1)}" for n, v in sm.items()
                                              if n != "rule")
    return text("selection_chosen", lang, year=run.selection_year, first=int(run.selection["train_start"].min()),
                last=int(run.selection["train_end"].max()), k=run.capacity_k, parts=parts,
                model=model_label(run.best_model, lang), test_year=run.test_year)


def closure_table(by_year: pd.DataFrame, lang: str = "zh") -> pd.DataFrame:
    """Monitoring cases by year (:func:`evalkit.risk.closure_by_year`) with labelled columns."""
    names = {c: label(f"closure_{c}", lang) for c in ("opened", "cleared", "open")}
    return by_year.rename(columns=names).rename_axis(label("closure_year", lang))


def closure_text(by_year: pd.DataFrame, year: int, policy: Policy, lang: str = "zh") -> str:
    """One sentence on case closure in ``year`` (the rule of closure from ``policy.risk``)."""
    r = by_year.loc[year] if year in by_year.index else pd.Series({"opened": 0, "cleared": 0, "open": 0})
    return text("closure_text", lang, year=year, opened=int(r["opened"]), cleared=int(r["cleared"]),
                open=int(r["open"]), k=policy.risk.closure_periods,
                line=label(f"line_{policy.risk.label_line}", lang))


def notes_section(notes: list[Note | str], lang: str = "zh") -> str:
    """The notes as a Markdown list ('' when there is none)."""
    if not notes:
        return ""
    return label("h_risk_notes", lang) + "\n\n" + "\n".join(f"- {n}" for n in render_notes(notes, lang))


# ---------------------------------------------------------------------------------------------
# the watch-list workbook
# ---------------------------------------------------------------------------------------------
def _header(key: str, lang: str) -> str:
    try:
        return label(key, lang)
    except KeyError:  # a column without a label keeps its canonical name
        return key


def _translate_reasons(s: pd.Series, lang: str) -> pd.Series:
    table = {c: dictionary.code_label("risk_category", c, lang) for c in REASON_CATEGORIES}
    sep = label("risk_reason_sep", lang)
    ex = s.fillna("").astype(str).str.split(";").explode()
    tr = ex.map(table).dropna()
    joined = tr.groupby(level=0).agg(sep.join)
    return joined.reindex(s.index).fillna("")


def _masked(df: pd.DataFrame) -> pd.DataFrame:
    """Name and ID columns masked again (idempotent), recognized by header."""
    d = df.copy()
    if "head_name_masked" in d.columns:
        d["head_name_masked"] = privacy.mask_name(d["head_name_masked"])
    if "head_id_number_masked" in d.columns:
        d["head_id_number_masked"] = privacy.mask_id_number(d["head_id_number_masked"])
    # any other name / ID column recognized by its header (not by content: see write_watchlist_xlsx)
    others = [c for c in d.columns if c not in ("head_name_masked", "head_id_number_masked")]
    for c, kind in privacy.pii_columns(others).items():
        d[c] = privacy.mask_name(d[c]) if kind == "name" else privacy.mask_id_number(d[c])
    return d


def _county_sheet(code: str, lang: str) -> str:
    """Sheet name of a county: its name and code (the code alone when the code is not a real one)."""
    try:
        t = geo.county_table(str(code)[:2]).set_index("county_code")["county_name"]
        name = str(t.get(str(code), ""))
    except Exception:  # noqa: BLE001 - no boundary data for this code: the code is still unique
        name = ""
    return sheet_name(text("risk_sheet_county", lang, name=name, code=code) if name else str(code))


def write_watchlist_xlsx(df: pd.DataFrame, path: str | Path, lang: str = "zh", by_county: bool = True,
                         policy: Policy | None = None) -> Path:
    """Write a :func:`evalkit.risk.watchlist` to Excel as a ledger (台账) with translated headers,
    levels and reasons, the fill-in columns, a 汇总 and a 说明 sheet.

    The file is written by :func:`evalkit.report.common.write_ledger_xlsx`, the one masked-Excel
    writer (headers from :func:`evalkit.text.label`, canonical name where there is none; atomic
    write; its full-ID check). Name and ID columns are masked again first (idempotent, by
    header); a value that still looks like a full 18-character ID number in any other column
    stops the write with :class:`~evalkit.errors.RiskModelError` (it is never silently masked:
    it means a wrong column was joined in).

    Parameters
    ----------
    df : DataFrame
        :func:`evalkit.risk.watchlist` output.
    path : path-like
    lang : {'zh', 'en'}
    by_county : bool
        One sheet per county (named by county name and code), else one sheet sorted by village.
    policy : Policy, optional
        When given, 说明 states the red and yellow score thresholds.

    Returns
    -------
    Path
    """
    check_lang(lang)
    d = _masked(df)
    for c in ("score", "risk_score"):  # a probability: three decimals are all a reader can use
        if c in d.columns:
            d[c] = pd.to_numeric(d[c], errors="coerce").round(3)
    if "warning_level" in d.columns:
        d["warning_level"] = d["warning_level"].astype(str).map(
            {v: dictionary.code_label("warning_level", v, lang) for v in LEVELS})
    for c in ("main_risk_reason", "risk_reasons"):
        if c in d.columns:
            d[c] = _translate_reasons(d[c], lang)
    if "county_code" in d.columns:
        d = d.sort_values([c for c in ("county_code", "village_code", "rank_in_village") if c in d.columns],
                          kind="stable")
    sheets: dict[str, pd.DataFrame] = {}
    if by_county and "county_code" in d.columns:
        sheets = {_county_sheet(cc, lang): part.reset_index(drop=True)
                  for cc, part in d.groupby("county_code", sort=True)}
    if not sheets:
        sheets = {sheet_name(_header("watchlist", lang)): d.reset_index(drop=True)}
    about = label("risk_watchlist_about", lang)
    if policy is not None:
        about += " " + warning_thresholds_text(policy, lang)
    try:
        return write_ledger_xlsx(sheets, path, lang=lang, title=label("watchlist", lang),
                                 about=about, number_formats={"score": "0.000", "risk_score": "0.000"})
    except ValueError as e:  # the shared full-ID check refused the write
        raise RiskModelError(f"watch list not written: {e}") from e

