"""The province roll-up report: every county's criteria and verdicts, maps on real boundaries."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.patches import Patch

from evalkit import geo
from evalkit.assessment import CRITERIA
from evalkit.report.common import new_figure, pct, verdict_label, write_ledger_xlsx
from evalkit.text import label

__all__ = ["province_table", "plot_maps", "plot_criteria_across", "write_province_summary"]


def province_table(res: pd.DataFrame, lang: str = "zh") -> pd.DataFrame:
    """Readable table: county, the four criteria (estimate [CI]) and the verdicts."""
    out = pd.DataFrame({label("county", lang): res["county_name"] + " (" + res["county_code"] + ")",
                        label("year_label", lang): res["year"]})
    for c in CRITERIA:
        out[label(c, lang)] = [f"{pct(e)} [{pct(lo)}, {pct(hi)}]" for e, lo, hi in
                               zip(res[f"{c}_est"], res[f"{c}_lci"], res[f"{c}_uci"])]
    out[label("decision_overall", lang)] = [verdict_label(v, lang) for v in res["decision"]]
    out[label("decision_official", lang)] = [verdict_label(v, lang) for v in res["official"]]
    return out.set_index(label("county", lang))


_VCOL = {"pass": "#2a9d4b", "borderline": "#e0a100", "fail": "#c0392b"}


def plot_maps(res: pd.DataFrame, risk: pd.DataFrame | None = None, lang: str = "zh",
              missing: list[str] | None = None):
    """Choropleths on the real county boundaries: incidence, verdict and (if given) red-flag share.

    Counties in ``missing`` (e.g. failed runs) are drawn in grey, not left out of the map.
    """
    gdf = geo.load_county_boundaries(codes=sorted({*res["county_code"], *(missing or [])}))
    gdf = gdf.merge(res.drop(columns=["county_name"]), on="county_code", how="left")
    panels = 3 if risk is not None else 2
    fig, axes = new_figure((5.2 * panels, 5.6), 1, panels)
    ax = axes[0]
    gdf.assign(v=100 * gdf["comprehensive_poverty_rate_est"]).plot(
        column="v", cmap="OrRd", legend=True, ax=ax, edgecolor="white", linewidth=0.6,
        missing_kwds={"color": "#cccccc"},
        legend_kwds={"label": label("comprehensive_poverty_rate", lang) + " (%)", "shrink": 0.6})
    ax.set_title(label("comprehensive_poverty_rate", lang))
    ax = axes[1]
    gdf.plot(color=[_VCOL.get(v, "#cccccc") for v in gdf["decision"]], ax=ax, edgecolor="white", linewidth=0.6)
    handles = [Patch(color=c, label=verdict_label(v, lang)) for v, c in _VCOL.items()]
    if missing:
        handles.append(Patch(color="#cccccc", label=label("no_result", lang)))
    ax.legend(handles=handles, loc="lower left", fontsize=8)
    ax.set_title(label("decision_overall", lang))
    if risk is not None:
        ax = axes[2]
        g2 = gdf.merge(risk[["county_code", "red_share"]], on="county_code", how="left")
        g2.assign(v=100 * g2["red_share"]).plot(column="v", cmap="Reds", legend=True, ax=ax, edgecolor="white",
                                                linewidth=0.6, missing_kwds={"color": "#eeeeee"},
                                                legend_kwds={"label": label("red_share", lang) + " (%)", "shrink": 0.6})
        ax.set_title(label("red_share", lang))
    for ax in axes:
        ax.set_axis_off()
    pts = gdf.geometry.representative_point()
    for name, x, y in zip(gdf["county_name"], pts.x, pts.y):  # one label per county polygon
        axes[1].annotate(name, (x, y), ha="center", fontsize=6)
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


def write_province_summary(res: pd.DataFrame, path: str | Path, lang: str = "zh",
                           risk: pd.DataFrame | None = None) -> Path:
    """``province_summary.xlsx``: the readable table and the raw numbers."""
    raw = res.copy()
    if risk is not None:
        raw = raw.merge(risk[["county_code", "red_share"]], on="county_code", how="left")
    return write_ledger_xlsx({label("title_province", lang)[:31]: province_table(res, lang).reset_index(), "data": raw},
                             path, lang=lang, title=label("title_province", lang), raw_sheets=("data",))
