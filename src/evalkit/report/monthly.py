"""The monthly check ledger (月核查台账) and the quarterly report's tables and figure.

Display only: codes become their dictionary labels, columns their ``mon_*`` labels, in ``lang``.
The review sheet of a ledger lists every open case with fill-in columns (核实结果, 核实人,
核实日期, 整改情况, 备注) and the decision (审核决定) a township or county returns;
:data:`LEDGER_KEYS` maps those headers back for :func:`evalkit.monitoring.review.apply_review`.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from evalkit import dictionary
from evalkit.outputs import write_xlsx
from evalkit.text import check_lang, label, text

__all__ = ["COLUMN_KEYS", "LEDGER_KEYS", "FILL_IN", "display", "review_sheet", "write_check_ledger",
           "quarter_table", "reasons_table", "plot_quarter", "plot_quarter_map", "ledger_header_map",
           "county_tables", "closure_table", "select_counties", "village_flag_counts", "plot_check_map",
           "risk_table"]

#: Column -> label key of the displayed tables.
COLUMN_KEYS = {"county_code": "mon_county", "village_code": "mon_village", "household_id": "mon_household",
               "case_id": "mon_case_id", "monitor_type": "mon_monitor_type", "state": "mon_state", "risk": "mon_risk",
               "risks": "mon_risks", "flagged_month": "mon_flagged_month", "due_date": "mon_due_date",
               "overdue": "mon_overdue", "days_overdue": "mon_days_overdue", "suspicion": "mon_suspicion",
               "reasons": "mon_reasons", "register_status": "mon_register_status", "income_per_capita": "mon_income",
               "monitoring_line": "mon_monitoring_line", "new_cases": "mon_new_cases",
               "closed_cases": "mon_closed_cases",
               "open_cases": "mon_open_cases", "overdue_flags": "mon_overdue_flags", "visits": "mon_visits",
               "cases": "mon_cases", "opened_month": "mon_opened_month", "month": "mon_closed_month",
               "months_to_closure": "mon_months_to_closure", "row": "mon_row", "reason": "mon_reason",
               "from_state": "mon_from_state", "to_state": "mon_to_state", "red_list": "mon_red_list",
               "overdue_list": "mon_overdue_list", "suspicions": "mon_suspicions", "missed_poor": "mon_missed_poor",
               "red_cases": "mon_red_cases", "overdue_cases": "mon_overdue_cases"}
#: Fill-in columns of the review sheet, in order.
FILL_IN = ("verify_result", "verifier", "verify_date", "rectification", "remark", "decision")
#: Ledger column -> label key (the review sheet's header row, read back by the workflow).
LEDGER_KEYS = {"case_id": "mon_case_id", **{k: f"mon_{k}" for k in FILL_IN}}
_CODES = {"monitor_type": "monitor_type", "state": "case_state", "risk": "risk_category",
          "register_status": "register_status", "suspicion": "suspicion", "reason": "review_reject",
          "from_state": "case_state", "to_state": "case_state"}
_MULTI = {"risks": "risk_category", "reasons": None}


def _code(lst: str, c: object, lang: str) -> str:
    if c is None or (isinstance(c, float) and pd.isna(c)):
        return ""
    try:
        return dictionary.code_label(lst, str(c), lang)
    except KeyError:
        return str(c)


def _multi(v: object, lang: str) -> str:
    if not isinstance(v, str) or not v:
        return ""
    sep = label("mon_list_sep", lang)
    out = []
    for c in v.split(","):
        lst = "suspicion" if c in dictionary.codes("suspicion") else "risk_category"
        out.append(_code(lst, c, lang))
    return sep.join(out)


def display(df: pd.DataFrame, lang: str = "zh") -> pd.DataFrame:
    """Codes as labels and columns as headers in ``lang`` (a copy)."""
    check_lang(lang)
    out = df.copy()
    for c, lst in _CODES.items():
        if c in out:
            out[c] = [_code(lst, v, lang) for v in out[c]]
    for c in _MULTI:
        if c in out:
            out[c] = [_multi(v, lang) for v in out[c]]
    if "overdue" in out:
        out["overdue"] = out["overdue"].map({True: label("mon_yes", lang), False: ""})
    if "due_date" in out:
        out["due_date"] = pd.to_datetime(out["due_date"]).dt.strftime("%Y-%m-%d")
    return out.rename(columns={c: label(COLUMN_KEYS[c], lang) for c in out.columns if c in COLUMN_KEYS})


def review_sheet(red_list: pd.DataFrame, lang: str = "zh") -> pd.DataFrame:
    """One row per open red-flagged case (earliest due date, risks) with the blank fill-in columns."""
    if not len(red_list):
        base = pd.DataFrame(columns=["county_code", "village_code", "household_id", "case_id", "monitor_type",
                                     "state", "risks", "due_date", "overdue"])
    else:
        g = red_list.sort_values(["case_id", "due_date"]).groupby("case_id", sort=True)
        base = g.agg(county_code=("county_code", "first"), village_code=("village_code", "first"),
                     household_id=("household_id", "first"), monitor_type=("monitor_type", "first"),
                     state=("state", "first"), risks=("risk", lambda s: ",".join(sorted(set(s)))),
                     due_date=("due_date", "min"), overdue=("overdue", "any")).reset_index()
        base = base[["county_code", "village_code", "household_id", "case_id", "monitor_type", "state", "risks",
                     "due_date", "overdue"]]
    out = display(base, lang)
    for k in FILL_IN:
        out[label(LEDGER_KEYS[k], lang)] = ""
    return out


def write_check_ledger(check: object, path: str | Path, county: str | None = None, lang: str = "zh") -> Path:
    """The month's ledger of one county (all when None): 审核台账, red list, overdue, suspicions,
    possible missed poor. ``check`` is a :class:`evalkit.monitoring.check.MonthlyCheck`."""
    def sel(df: pd.DataFrame) -> pd.DataFrame:
        return df if county is None else df[df["county_code"] == county]

    fill = {label(f"mon_{k}", lang): "" for k in FILL_IN[:-1]}
    sheets = {label("mon_review_sheet", lang): review_sheet(sel(check.red_list), lang),
              label("mon_red_list", lang): display(sel(check.red_list), lang),
              label("mon_overdue_list", lang): display(sel(check.overdue), lang),
              label("mon_suspicions", lang): display(sel(check.suspicions), lang).assign(**fill),
              label("mon_missed_poor", lang): display(sel(check.missed_poor), lang).assign(**fill)}
    return write_xlsx(sheets, path)


def ledger_header_map(columns: list[object]) -> dict[object, str]:
    """Header of a returned review sheet -> canonical ledger column (zh or en headers)."""
    want = {label(k, lg).strip().lower(): c for c, k in LEDGER_KEYS.items() for lg in ("zh", "en")}
    return {h: want[str(h).strip().lower()] for h in columns if str(h).strip().lower() in want}


def quarter_table(by_county: pd.DataFrame, lang: str = "zh") -> pd.DataFrame:
    """Per county and total: new, closed, open cases, overdue flags, visits."""
    tot = by_county.drop(columns="county_code").sum().to_frame().T.assign(county_code=label("mon_total", lang))
    return display(pd.concat([by_county, tot[by_county.columns]], ignore_index=True), lang)


def reasons_table(reasons: pd.DataFrame, lang: str = "zh") -> pd.DataFrame:
    """New cases by risk (rows) and county (columns)."""
    if not len(reasons):
        return pd.DataFrame()
    t = reasons.pivot_table(index="risk", columns="county_code", values="cases", aggfunc="sum", fill_value=0)
    t.index = [_code("risk_category", r, lang) for r in t.index]
    t.index.name = label("mon_risk", lang)
    t.columns.name = label("mon_county", lang)
    return t


def plot_quarter(by_county: pd.DataFrame, quarter: str, lang: str = "zh"):
    """Bars of new and closed cases and overdue flags per county; returns the figure."""
    from evalkit.report.common import new_figure

    fig, ax = new_figure((8, 3.5))
    x = range(len(by_county))
    w = 0.27
    for i, k in enumerate(("new_cases", "closed_cases", "overdue_flags")):
        ax.bar([j + (i - 1) * w for j in x], by_county[k], width=w, label=label(COLUMN_KEYS[k], lang))
    ax.set_xticks(list(x), by_county["county_code"], rotation=45)
    ax.set_title(text("mon_quarter_title", lang, quarter=quarter))
    ax.legend()
    fig.tight_layout()
    return fig


def plot_quarter_map(by_county: pd.DataFrame, lang: str = "zh"):
    """Maps of the quarter on the real county boundaries: open cases and overdue red flags per county
    (every county of the province drawn, inside its outline); returns the figure."""
    from evalkit.report.common import new_figure
    from evalkit.report.province import province_frame, zoom_to

    frame, outline = province_frame(list(by_county["county_code"]))
    gdf = frame.merge(by_county, on="county_code", how="left")
    inside = gdf[gdf["county_code"].isin(by_county["county_code"])]
    fig, axes = new_figure((10.8, 6.4), 1, 2)
    for ax, key, cmap in zip(axes, ("open_cases", "overdue_flags"), ("Blues", "Reds")):
        gdf[~gdf.index.isin(inside.index)].plot(ax=ax, color="#f2f2f2", edgecolor="#bbbbbb", linewidth=0.4)
        inside.plot(column=key, cmap=cmap, legend=True, ax=ax, edgecolor="white", linewidth=0.6,
                    legend_kwds={"label": label(COLUMN_KEYS[key], lang), "shrink": 0.5})
        outline.plot(ax=ax, color="#444444", linewidth=1.0)
        ax.set_title(label(COLUMN_KEYS[key], lang))
    zoom_to(axes, inside, gdf)
    fig.set_layout_engine("tight")
    return fig


def county_tables(check: object, county: str, lang: str = "zh") -> dict[str, pd.DataFrame]:
    """One county's sections of the monthly check: heading label -> displayed table (empty ones left out)."""
    parts = {"mon_new_cases": check.new_cases, "mon_red_list": check.red_list, "mon_overdue_list": check.overdue,
             "mon_suspicions": check.suspicions, "mon_missed_poor": check.missed_poor}
    out = {}
    for k, df in parts.items():
        sel = df[df["county_code"] == county]
        if len(sel):
            out[label(k, lang)] = display(sel.drop(columns="county_code"), lang)
    return out


def closure_table(closure: pd.DataFrame, lang: str = "zh") -> pd.DataFrame:
    """Closed cases of the quarter with their months to closure."""
    return display(closure, lang)


def select_counties(check: object, counties: str | list[str] = "all") -> object:
    """The check restricted to ``counties`` ('all', codes as a list or separated by commas)."""
    from dataclasses import replace

    if counties == "all" or counties is None:
        return check
    want = [c.strip() for c in counties.split(",")] if isinstance(counties, str) else [str(c) for c in counties]
    return replace(check, **{k: getattr(check, k)[getattr(check, k)["county_code"].isin(want)].reset_index(drop=True)
                             for k in ("new_cases", "red_list", "overdue", "suspicions", "missed_poor")})


def village_flag_counts(check: object, county: str) -> pd.DataFrame:
    """Per village of ``county``: cases with an open red flag (``red_cases``) and with an overdue one
    (``overdue_cases``)."""
    red = check.red_list[check.red_list["county_code"] == county]
    g = red.groupby("village_code")
    return pd.DataFrame({"red_cases": g["case_id"].nunique(),
                         "overdue_cases": red[red["overdue"]].groupby("village_code")["case_id"].nunique()}
                        ).fillna(0).astype(int).rename_axis("village_code").reset_index()


def plot_check_map(check: object, points: pd.DataFrame, county: str, lang: str = "zh"):
    """Maps of one county's month on its real boundary: villages (points) sized and coloured by cases
    with an open red flag, and by cases overdue; villages without any as small grey dots.

    ``points``: village_code, longitude, latitude (generated positions on synthetic data).
    """
    from evalkit.report.common import new_figure
    from evalkit.report.province import province_frame, zoom_to

    frame, outline = province_frame([county])
    own = frame[frame["county_code"] == county]
    pts = points[points["village_code"].astype(str).str.startswith(county)].merge(
        village_flag_counts(check, county), on="village_code", how="left").fillna({"red_cases": 0, "overdue_cases": 0})
    fig, axes = new_figure((10.8, 5.6), 1, 2)
    for ax, key, colour in zip(axes, ("red_cases", "overdue_cases"), ("#e07b39", "#c0392b")):
        frame.plot(ax=ax, color="#f2f2f2", edgecolor="#bbbbbb", linewidth=0.4)
        own.plot(ax=ax, color="white", edgecolor="#444444", linewidth=1.0)
        outline.plot(ax=ax, color="#888888", linewidth=0.6)
        zero = pts[pts[key] == 0]
        ax.scatter(zero["longitude"], zero["latitude"], s=4, color="#bbbbbb", zorder=2)
        hit = pts[pts[key] > 0]
        sc = ax.scatter(hit["longitude"], hit["latitude"], s=12 + 10 * hit[key], color=colour, alpha=0.8,
                        edgecolor="white", linewidth=0.4, zorder=3)
        if len(hit):
            sizes = sorted({int(hit[key].min()), int(hit[key].max())})
            ax.legend(*sc.legend_elements("sizes", num=sizes, func=lambda s: (s - 12) / 10),
                      title=label(COLUMN_KEYS.get(key, "mon_" + key), lang), fontsize=7, loc="lower left")
        ax.set_title(f"{label(COLUMN_KEYS.get(key, 'mon_' + key), lang)} ({int(hit[key].sum())})")
    zoom_to(axes, own, frame)
    fig.set_layout_engine("tight")
    return fig


def risk_table(table: pd.DataFrame, lang: str = "zh") -> pd.DataFrame:
    """Capture at the monitoring capacity, model vs rule, per held-out month (rows) in ``lang``."""
    t = table.pivot_table(index="month", columns="method", values=["flagged", "capture", "precision"],
                          aggfunc="first")
    out = pd.DataFrame({label("mon_risk_month", lang): t.index,
                        label("mon_risk_capacity", lang): t[("flagged", "rule")].astype(int).to_numpy(),
                        label("mon_risk_rule_capture", lang): t[("capture", "rule")].round(3).to_numpy(),
                        label("mon_risk_model_capture", lang): t[("capture", "logit")].round(3).to_numpy(),
                        label("mon_risk_rule_precision", lang): t[("precision", "rule")].round(3).to_numpy(),
                        label("mon_risk_model_precision", lang): t[("precision", "logit")].round(3).to_numpy()})
    return out
