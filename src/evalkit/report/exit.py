"""The county exit assessment report: register glance, sample, criteria, decision, follow-up list."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from evalkit.assessment import CRITERIA, CriteriaResult
from evalkit.privacy import masked_heads
from evalkit.register import household_strata, village_strata
from evalkit.report import style
from evalkit.report.common import (
    code_label,
    fmt_table,
    new_figure,
    notes_markdown,
    pct,
    setup_cjk_font,
    verdict_label,
)
from evalkit.text import label, text

if TYPE_CHECKING:  # the workflow's result type, for hints only (workflows sit above the report layer)
    from evalkit.workflows.county_exit import CountyAssessment

__all__ = ["register_glance", "sample_design_summary", "criteria_table", "plot_criteria", "guarantee_shortfalls",
           "followup_list", "county_intro", "sample_narrative", "decision_narrative", "followup_narrative",
           "plot_operating_characteristic", "poverty_line_sentence", "followup_table"]


def register_glance(households: pd.DataFrame, year: int, lang: str = "zh") -> pd.DataFrame:
    """The county register at a glance in ``year``: households and persons by register status."""
    st = household_strata(households, year)  # the same strata the sample and the estimates use
    exited, poor = st == "exited", st == "poor"
    reg_now = exited | poor
    size = households["household_size"].astype(int)
    rows = [
        ("registered_households", int(reg_now.sum()), int(size[reg_now].sum())),
        ("exited_persons", int(exited.sum()), int(size[exited].sum())),
        ("remaining_poor_persons", int(poor.sum()), int(size[poor].sum())),
        ("non_registered_persons", int((~reg_now).sum()), int(size[~reg_now].sum())),
        ("rural_population_total", int(len(households)), int(size.sum())),
    ]
    out = pd.DataFrame(rows, columns=["key", "households_n", "persons_n"])
    out["share"] = [pct(x, 1) for x in out["persons_n"] / max(int(size.sum()), 1)]
    out = style.format_frame(out, {"households_n": "count", "persons_n": "count"}, lang)
    out.index = pd.Index([label(k, lang) for k in out.pop("key")], name="")
    return fmt_table(out, lang)


def sample_design_summary(field_survey: pd.DataFrame, villages: pd.DataFrame | None = None,
                          lang: str = "zh") -> pd.DataFrame:
    """Villages and households sampled per village stratum and household stratum, with weights."""
    fs = field_survey
    g = fs.groupby("stratum", observed=True)
    out = pd.DataFrame({
        "villages_sampled": g["village_code"].nunique(),
        "households_sampled": g.size(),
        "weighted_households": g["weight"].sum().round(0),
    })
    if villages is not None:
        vs = villages.assign(stratum=village_strata(villages).to_numpy())
        out["villages_in_frame"] = vs.groupby("stratum").size().reindex(out.index).fillna(0).astype(int)
    hh = fs.pivot_table(index="stratum", columns="hh_stratum", values="household_id", aggfunc="count",
                        fill_value=0, observed=True)
    hh.columns = [code_label("hh_stratum", c, lang) for c in hh.columns]
    out = out.join(hh)
    out.index = pd.Index([label(i, lang) for i in out.index], name=label("village_stratum", lang))
    out = style.format_frame(out, {c: "count" for c in out.columns}, lang)
    return fmt_table(out, lang)




def criteria_table(crit: CriteriaResult, lang: str = "zh") -> pd.DataFrame:
    """The four criteria as a readable table (percentages, verdicts in ``lang``)."""
    rows = []
    for c in CRITERIA:
        r = crit.table.loc[c]
        rows.append({
            "criterion": label(c, lang), "est": pct(r["est"]), "lci": pct(r["lci"]), "uci": pct(r["uci"]),
            "se": pct(r["se"], 3), "n": int(r["n"]), "df": int(r["df"]),
            "threshold": f"{label('direction_' + r['direction'], lang)} {pct(r['threshold'], 0)}",
            "verdict": verdict_label(r["verdict"], lang),
            "official_verdict": verdict_label(r["official_verdict"], lang),
        })
    return fmt_table(pd.DataFrame(rows).set_index("criterion"), lang).rename_axis(label("criterion", lang))


_VERDICT_COLORS = {"pass": "#2a9d4b", "borderline": "#e0a100", "fail": "#c0392b"}


def plot_criteria(crit: CriteriaResult, lang: str = "zh") -> Figure:
    """One chart: each criterion's estimate and CI against its threshold, colored by verdict."""
    fig, axes = new_figure((12, 3.4), 1, 4)
    for ax, c in zip(axes, CRITERIA):
        r = crit.table.loc[c]
        col = _VERDICT_COLORS.get(r["verdict"], "grey")
        ax.errorbar([0], [100 * r["est"]], yerr=[[100 * (r["est"] - r["lci"])], [100 * (r["uci"] - r["est"])]],
                    fmt="o", color=col, capsize=8, lw=2, ms=8)
        ax.axhline(100 * r["threshold"], color="black", ls="--", lw=1)
        ax.text(0.32, 100 * r["threshold"], f"{label('threshold', lang)} {100 * r['threshold']:.0f}%",
                va="bottom", ha="right", fontsize=8)
        ax.set_title(label(c, lang), fontsize=10)
        ax.set_xticks([])
        ax.set_xlim(-0.4, 0.4)
        lo = min(100 * r["lci"], 100 * r["threshold"])
        hi = max(100 * r["uci"], 100 * r["threshold"])
        pad = max((hi - lo) * 0.25, 0.5)
        ax.set_ylim(max(lo - pad, 0.0), min(hi + pad, 100.0))  # a rate is never below 0% or above 100%
        ax.set_ylabel("%")
        ax.set_xlabel(verdict_label(r["verdict"], lang), color=col, fontsize=10)
    lvl = f" ({100 * crit.confidence:.0f}% {label('confidence_interval', lang)})"
    fig.suptitle(label("h_criteria", lang) + lvl, fontsize=11)
    fig.set_layout_engine("tight")
    return fig


def guarantee_shortfalls(field_survey: pd.DataFrame, guarantees: Sequence[str], lang: str = "zh") -> pd.DataFrame:
    """Weighted share and count of sampled households failing each guarantee, by household stratum.

    ``guarantees`` are the policy's (``policy.guarantees``): a user policy that changes them
    changes the table.
    """
    fs = field_survey
    guar = list(guarantees)
    fail = pd.DataFrame({g: ~fs[g].astype(bool) for g in guar})
    n = fail.groupby(fs["hh_stratum"]).sum().T
    share = fail.mul(fs["weight"], axis=0).groupby(fs["hh_stratum"]).sum().T / fs.groupby("hh_stratum")["weight"].sum()
    out = pd.DataFrame({code_label("hh_stratum", hs, lang): [f"{int(a)} ({pct(b)})" for a, b in zip(n[hs], share[hs])]
                        for hs in n.columns}, index=[label(g, lang) for g in guar])
    out.index.name = label("guarantee", lang)
    out.columns.name = label("failing_n", lang) + " (" + label("failing_share", lang) + ")"
    return out


_REASON_KEYS = {"income": "reason_income_below_line", "income_below_line": "reason_income_below_line",
                "food_clothing": "reason_food_clothing", "food": "reason_food_clothing",
                "clothing": "reason_food_clothing", "education": "reason_education",
                "medical": "reason_medical", "housing": "reason_housing", "water": "reason_water"}


def _translate_reasons(codes: pd.Series, lang: str) -> pd.Series:
    # A handful of distinct reason strings: translate the distinct values, then map.
    uniq = codes.fillna("").astype(str).unique()
    trans = {}
    for u in uniq:
        parts = [p for p in u.replace(",", ";").split(";") if p]
        names = []
        for p in parts:
            key = _REASON_KEYS.get(p.removesuffix("_ok").removeprefix("fails_"), None)
            names.append(label(key, lang) if key else p)
        trans[u] = label("list_sep", lang).join(dict.fromkeys(names))
    return codes.fillna("").astype(str).map(trans)


def followup_list(flags: pd.DataFrame, members: pd.DataFrame | None, villages: pd.DataFrame | None,
                  lang: str = "zh") -> pd.DataFrame:
    """疑似问题核实清单: suspected wrongly-exited and missed households, names and IDs masked.

    ``flags`` is :func:`evalkit.assessment.criterion_flags` output (one row per sampled household).
    """
    sus = flags[flags["wrongly_exited"].astype(bool) | flags["missed"].astype(bool)].copy()
    sus["problem_type"] = np.where(sus["wrongly_exited"].astype(bool), label("suspected_wrongly_exited", lang),
                                   label("suspected_missed", lang))
    reason_col = "reasons" if "reasons" in sus.columns else None
    sus["reasons"] = _translate_reasons(sus[reason_col], lang) if reason_col else ""
    if members is not None and len(members):
        sus = sus.merge(masked_heads(members), on="household_id", how="left", validate="many_to_one")
    if villages is not None:
        v = villages.set_index("village_code")
        sus["township_name"] = sus["village_code"].map(v["township_name"])
        sus["village_name"] = sus["village_code"].map(v["village_name"])
    cols = [c for c in ["problem_type", "township_name", "village_name", "household_id", "head_name_masked",
                        "head_id_number_masked", "household_size", "surveyed_income_per_capita", "reasons"]
            if c in sus.columns]
    out = sus.sort_values(["problem_type", "village_code", "household_id"])[cols].reset_index(drop=True)
    out.index = pd.RangeIndex(1, len(out) + 1, name="#")
    return out


# ---------------------------------------------------------------------------------------------
# Narrative (generated so that it follows ``lang`` and the actual numbers)
# ---------------------------------------------------------------------------------------------
def county_intro(a: CountyAssessment, lang: str = "zh") -> str:
    """Title and one-paragraph summary of a county assessment, with the year's poverty line."""
    c, d = a.county, a.decision
    intro = text("intro_county", lang, county_name=c["county_name"], county_code=c["county_code"], year=a.year,
                 title=label("title_county_exit", lang), region=code_label("region", c["region"], lang),
                 level=100 * a.confidence, overall=verdict_label(d["overall"], lang),
                 official=verdict_label(d["official_point_rule"], lang))
    return intro + " " + poverty_line_sentence(a.policy.poverty_line(a.year), a.year, lang)


def poverty_line_sentence(line: float, year: int, lang: str = "zh") -> str:
    """The poverty line of ``year`` in 元 per person and year (what 'income above the line' means)."""
    return text("poverty_line_stated", lang, year=year, line=style.yuan(line, lang))


def followup_table(followup: pd.DataFrame, lang: str = "zh") -> pd.DataFrame:
    """The follow-up list for display: labelled columns, incomes in 元 with thousands separators."""
    return fmt_table(style.format_frame(followup, {"surveyed_income_per_capita": "yuan",
                                                   "household_size": "count"}, lang), lang)


def sample_narrative(a: CountyAssessment, lang: str = "zh") -> str:
    """How the sample was drawn and how it is analysed, followed by the assessment's notes."""
    fs = a.field_survey
    txt = text("sample_text", lang, source=label(f"survey_source_{a.survey_source}", lang),
               villages=fs["village_code"].nunique(), households=len(fs))
    return txt + notes_markdown(a.notes, lang)


def decision_narrative(a: CountyAssessment, lang: str = "zh") -> str:
    """The decision with its certainty, criterion by criterion."""
    t, d = a.criteria.table, a.decision
    lines = [text("decision_line", lang, criterion=label(c, lang), est=pct(t.at[c, "est"]),
                  level=100 * a.confidence, lci=pct(t.at[c, "lci"]), uci=pct(t.at[c, "uci"]),
                  direction=label("direction_" + t.at[c, "direction"], lang), threshold=pct(t.at[c, "threshold"], 0),
                  verdict=verdict_label(t.at[c, "verdict"], lang),
                  official=verdict_label(t.at[c, "official_verdict"], lang))
             for c in CRITERIA]
    head = text("decision_head", lang, overall_label=label("decision_overall", lang),
                overall=verdict_label(d["overall"], lang), official_label=label("decision_official", lang),
                official=verdict_label(d["official_point_rule"], lang))
    if d["overall"] == "borderline":
        head += label("decision_borderline_hint", lang)
    return head + "\n\n" + "\n".join(lines)


def followup_narrative(followup: pd.DataFrame, path: str | Path, lang: str = "zh") -> str:
    """One sentence about the follow-up list and where its ledger is."""
    n = len(followup)
    return text("followup_some", lang, n=n, file=Path(path).name) if n else label("followup_none", lang)


def plot_operating_characteristic(oc: pd.DataFrame, lang: str = "zh") -> Figure:
    """Plot an operating characteristic from :func:`evalkit.assessment.operating_characteristic`.

    With ``set_rates``: one panel per varied criterion, probability of passing (official
    point rule and uncertainty-aware rule) and of failing against the target rate, with the
    threshold marked. Without: stacked bars of the verdict probabilities per criterion.

    Returns
    -------
    matplotlib.figure.Figure
    """
    setup_cjk_font()
    thr = oc.attrs.get("thresholds", {})
    series = [("p_official_pass", "o-"), ("p_pass", "s-"), ("p_fail", "^--"), ("p_borderline", "x:")]
    varied = [v for v in oc["varied"].dropna().unique()]
    if not varied:
        fig = Figure(figsize=(7, 4), layout="constrained")
        ax = fig.add_subplot()
        sub = oc.set_index("criterion")
        x = np.arange(len(sub))
        bottom = np.zeros(len(sub))
        for col in ("p_pass", "p_borderline", "p_fail", "p_error"):
            ax.bar(x, sub[col].to_numpy(), bottom=bottom, label=label(col, lang))
            bottom += sub[col].to_numpy()
        ax.plot(x, sub["p_official_pass"].to_numpy(), "k*", ms=10, label=label("p_official_pass", lang))
        ax.set_xticks(x, [label(c, lang) for c in sub.index], rotation=20)
        ax.set_ylim(0, 1)
        ax.set_ylabel(label("probability", lang))
        ax.legend(fontsize="small")
        return fig
    fig = Figure(figsize=(5 * len(varied), 4), layout="constrained")
    axes = fig.subplots(1, len(varied), squeeze=False)[0]
    for ax, v in zip(axes, varied):
        sub = oc[(oc["varied"] == v) & (oc["criterion"] == v)].sort_values("target_rate")
        for col, marker in series:
            ax.plot(sub["target_rate"], sub[col], marker, label=label(col, lang))
        if v in thr:
            ax.axvline(thr[v]["value"], color="grey", lw=1)
        ax.set_xlabel(label(v, lang))
        ax.set_ylabel(label("probability", lang))
        ax.set_ylim(-0.025, 1.025)  # probabilities, a little room for markers at 0 and 1
        ax.legend(fontsize="small")
    return fig
