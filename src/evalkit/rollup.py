"""Province roll-up: every county's assessment in one table, maps on real boundaries, one chart."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from . import geo
from .exit import CRITERIA
from .report import label, new_figure, pct, verdict_label, write_ledger_xlsx

__all__ = ["collect_exit_results", "collect_risk_shares", "failed_counties", "province_results", "province_table", "plot_maps", "plot_criteria_across",
           "write_province_summary"]



def collect_exit_results(run_dir: str | Path) -> pd.DataFrame:
    """One row per county from ``RUN_DIR/<county_code>/results.json`` (finished counties only).

    Columns: county_code, county_name, year, region, decision, official, and for every criterion
    ``<criterion>_{est,se,lci,uci,verdict,threshold}``.
    """
    rows = []
    for f in sorted(Path(run_dir).glob("*/results.json")):
        r = json.loads(f.read_text(encoding="utf-8"))
        if "decision" not in r:
            continue
        row = {"county_code": r["county_code"], "county_name": r["county_name"], "year": r["year"],
               "region": r["region"], "decision": r["decision"]["overall"],
               "official": r["decision"]["official_point_rule"]}
        for c in CRITERIA:
            for k in ("est", "se", "lci", "uci", "verdict", "n"):
                row[f"{c}_{k}"] = r[c][k]
            row[f"{c}_threshold"] = r["thresholds"][c]["value"]
        rows.append(row)
    if not rows:
        raise FileNotFoundError(f"no county results.json under {run_dir}: run the county batch first")
    return pd.DataFrame(rows).sort_values("county_code", ignore_index=True)


def failed_counties(run_dir: str | Path) -> pd.DataFrame:
    """Counties of a batch run that have no result (from its ``summary.csv``): code, name, error."""
    f = Path(run_dir) / "summary.csv"
    if not f.exists():
        return pd.DataFrame(columns=["county_code", "county_name", "error"])
    s = pd.read_csv(f, dtype={"county_code": str}, encoding="utf-8-sig")
    return s.loc[s["status"] != "ok", ["county_code", "county_name", "error"]].reset_index(drop=True)


def collect_risk_shares(risk_dir: str | Path | None, data_dir: str | Path | None = None
                        ) -> tuple[pd.DataFrame | None, str | None]:
    """Share of red-flag households per county from a risk run, and a note when it is not used.

    The risk run must have read the same data as the roll-up: its ``results.json`` records the
    data fingerprint, compared with ``data_dir``'s; a run on other data is ignored with a note
    (county codes of different datasets overlap, e.g. Yan'an within Shaanxi).
    """
    if not risk_dir or not Path(risk_dir).exists():
        return None, None
    files = sorted(Path(risk_dir).rglob("red_share_by_county.csv"))
    if not files:
        return None, f"no red_share_by_county.csv under {risk_dir}"
    if data_dir is not None:
        from .io import dataset_fingerprint
        from .monitor import DATA_TABLES

        rj = json.loads((files[0].parent / "results.json").read_text(encoding="utf-8"))
        if rj.get("data_sha256") != dataset_fingerprint(data_dir, DATA_TABLES):
            return None, f"the risk run in {risk_dir} used other data than {data_dir}: red-flag map left out"
    return pd.read_csv(files[0], dtype={"county_code": str}), None


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
    from matplotlib.patches import Patch

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


def province_results(res: pd.DataFrame) -> dict:
    """The roll-up's ``results.json``: county count and the decisions under both rules."""
    return {"counties": int(len(res)),
            "decisions": res["decision"].value_counts().sort_index().to_dict(),
            "official": res["official"].value_counts().sort_index().to_dict()}


def write_province_summary(res: pd.DataFrame, path: str | Path, lang: str = "zh",
                           risk: pd.DataFrame | None = None) -> Path:
    """``province_summary.xlsx``: the readable table and the raw numbers."""
    raw = res.copy()
    if risk is not None:
        raw = raw.merge(risk[["county_code", "red_share"]], on="county_code", how="left")
    return write_ledger_xlsx({label("title_province", lang)[:31]: province_table(res, lang).reset_index(), "data": raw},
                             path, lang=lang, title=label("title_province", lang), raw_sheets=("data",))
