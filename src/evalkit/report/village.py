"""Display of the village assessment: village table, supervision ranking, diagnostics and a map.

Every function takes a :class:`evalkit.workflows.village.VillageAssessment`-like object (``a``)
and returns a table (headers in ``lang``) or a matplotlib figure.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from evalkit.report.common import code_label, new_figure
from evalkit.sae.ebp import GROUPS, INDICATORS
from evalkit.text import label

__all__ = ["village_table", "township_table", "supervision_ranking", "shrinkage_table", "residual_checks",
           "plot_shrinkage", "plot_intervals", "plot_map"]

_BASE = ["village_code", "township_name", "village_name", "is_poverty_village", "persons", "register_incidence",
         "guarantee_shortfalls"]


def _verdict(v: pd.Series, lang: str) -> pd.Series:
    return v.map(lambda x: label(f"verdict_{x}", lang))


def _headers(cols: list[str], lang: str) -> dict[str, str]:
    out = {}
    for c in cols:
        for k in INDICATORS:
            if c.startswith(k + "_"):
                out[c] = f"{label(k, lang)}·{label('sae_' + c[len(k) + 1:], lang)}"
                break
        else:
            out[c] = label("official_verdict_village" if c == "official_verdict" else c, lang)
    return out


def village_table(a: Any, lang: str = "zh") -> pd.DataFrame:
    """One row per village: register view, estimates with intervals and CV, conditions, verdicts."""
    t = a.table().reset_index()
    stats = ("est", "est_benchmarked", "lci_benchmarked", "uci_benchmarked", "lci", "uci", "cv", "method")
    cols = _BASE + [f"{k}_{c}" for k in INDICATORS for c in stats if f"{k}_{c}" in t.columns] + \
        [c for c in a.conditions.columns] + ["exit_verdict", "official_verdict"]
    t = t[cols].copy()
    for k in INDICATORS:
        t[f"{k}_method"] = t[f"{k}_method"].map(lambda m: label(f"sae_method_{m}", lang))
    for c in ("exit_verdict", "official_verdict"):
        t[c] = _verdict(t[c], lang)
    return t.rename(columns=_headers(cols, lang))


def township_table(a: Any, lang: str = "zh") -> pd.DataFrame:
    """Township estimates (EBP only; an empty table otherwise)."""
    tw = a.estimates.townships
    if tw is None:
        return pd.DataFrame()
    t = pd.concat({k: f[["est", "lci", "uci", "cv"]] for k, f in tw.items()}, axis=1)
    t.columns = [f"{k}_{c}" for k, c in t.columns]
    names = a.villages.assign(township_code=a.villages["village_code"].astype(str).str[:9]) \
        .drop_duplicates("township_code").set_index("township_code")["township_name"]
    t.insert(0, "township_name", names.reindex(t.index).to_numpy())
    t = t.reset_index()
    return t.rename(columns={**_headers(list(t.columns), lang), "township_code": label("township_code", lang)})


def supervision_ranking(a: Any, lang: str = "zh", top: int = 12) -> pd.DataFrame:
    """Villages most in need of supervision: by the upper interval bound of the incidence, then the estimate."""
    inc = a.estimates.frames["poverty_incidence"]
    t = a.table().reset_index()
    t["_u"] = inc["uci"].reindex(t["village_code"]).to_numpy()
    t["_e"] = inc["est"].reindex(t["village_code"]).to_numpy()
    t = t.sort_values(["_u", "_e"], ascending=False).head(top)
    t.insert(0, "supervision_rank", np.arange(1, len(t) + 1))
    cols = ["supervision_rank", "village_code", "village_name", "is_poverty_village", "poverty_incidence_est",
            "poverty_incidence_lci", "poverty_incidence_uci", "guarantee_shortfalls", "conditions_ok", "exit_verdict"]
    t = t[cols].copy()
    t["exit_verdict"] = _verdict(t["exit_verdict"], lang)
    return t.rename(columns=_headers(cols, lang))


def shrinkage_table(a: Any, indicator: str = "poverty_incidence", lang: str = "zh") -> pd.DataFrame:
    """Direct against model estimate (and their root MSEs) of the sampled villages."""
    d = a.estimates.direct
    f = a.estimates.frames[indicator]
    idx = d.est.index
    t = pd.DataFrame({"village_code": idx, "sae_sampled_households": d.n[indicator].reindex(idx).to_numpy(),
                      "sae_direct": d.est[indicator].to_numpy(), "sae_model": f["est"].reindex(idx).to_numpy(),
                      "sae_cv": f["cv"].reindex(idx).to_numpy()})
    return t.rename(columns={c: label(c, lang) for c in t.columns})


def residual_checks(a: Any, lang: str = "zh") -> pd.DataFrame:
    """Unit-level residuals of the EBP model by household group: moments and a normality test."""
    eb = a.estimates.ebp
    if eb is None:
        return pd.DataFrame()
    g = a.units.units.group[a.units.units.sampled]
    rows = []
    for k, name in enumerate(GROUPS):
        r = eb.residuals[g == k]
        r = r[np.isfinite(r)]
        p = float(stats.shapiro(r).pvalue) if 3 <= len(r) <= 5000 else float("nan")
        rows.append({"sae_group": code_label("hh_stratum", name, lang),
                     "sae_units": len(r), "sae_mean": float(np.mean(r)) if len(r) else np.nan,
                     "sae_sd": float(np.std(r, ddof=1)) if len(r) > 1 else np.nan,
                     "sae_skewness": float(stats.skew(r)) if len(r) > 2 else np.nan,
                     "sae_kurtosis": float(stats.kurtosis(r)) if len(r) > 3 else np.nan, "sae_shapiro_p": p})
    t = pd.DataFrame(rows)
    return t.rename(columns={c: label(c, lang) for c in t.columns})


def plot_shrinkage(a: Any, indicator: str = "poverty_incidence", lang: str = "zh"):
    """Model against direct estimate of the sampled villages (the 45-degree line: no shrinkage)."""
    d = a.estimates.direct
    f = a.estimates.frames[indicator]
    x, y = d.est[indicator].to_numpy(float), f["est"].reindex(d.est.index).to_numpy(float)
    fig, ax = new_figure((5.5, 4.5))
    ax.scatter(x, y, s=12 + 2 * d.n[indicator].to_numpy(float), alpha=0.7)
    lim = [np.nanmin([x, y]), np.nanmax([x, y])]
    ax.plot(lim, lim, color="grey", lw=1)
    ax.set_xlabel(label("sae_direct", lang))
    ax.set_ylabel(label("sae_model", lang))
    ax.set_title(f"{label(indicator, lang)}: {label('sae_shrinkage_title', lang)}")
    return fig


def plot_intervals(a: Any, indicator: str = "poverty_incidence", lang: str = "zh"):
    """Direct and model intervals of the sampled villages side by side."""
    d = a.estimates.direct
    f = a.estimates.frames[indicator].reindex(d.est.index)
    de, se = d.est[indicator].to_numpy(float), np.sqrt(d.var[indicator].to_numpy(float))
    pos = np.arange(len(de))
    fig, ax = new_figure((8, 4.5))
    ax.errorbar(pos - 0.15, de, yerr=1.96 * se, fmt="o", ms=3, label=label("sae_direct", lang))
    ax.errorbar(pos + 0.15, f["est"], yerr=[f["est"] - f["lci"], f["uci"] - f["est"]], fmt="s", ms=3,
                label=label("sae_model", lang))
    ax.axhline(a.threshold if indicator == "poverty_incidence" else np.nan, color="red", lw=0.8, ls="--")
    ax.set_xticks(pos, [str(c)[-6:] for c in d.est.index], rotation=90, fontsize=7)
    ax.set_ylabel(label(indicator, lang))
    ax.set_title(label("sae_intervals_title", lang))
    ax.legend()
    return fig


def plot_map(a: Any, lang: str = "zh"):
    """Villages at their coordinates coloured by estimated incidence (None without coordinates)."""
    ind = a.indicators
    if ind is None or "longitude" not in ind.columns or ind["longitude"].isna().all():
        return None
    pts = ind.drop_duplicates("village_code", keep="last").set_index("village_code").reindex(a.units.village_codes)
    est = a.estimates.frames["poverty_incidence"]["est"].reindex(a.units.village_codes).to_numpy(float)
    fig, ax = new_figure((6, 5.5))
    try:
        from evalkit.geo import load_county_boundaries

        load_county_boundaries([a.county["county_code"]]).boundary.plot(ax=ax, color="grey", lw=0.8)
    except Exception:  # noqa: BLE001 - the map works without the boundary
        pass
    sc = ax.scatter(pts["longitude"], pts["latitude"], c=est, cmap="OrRd", s=40, edgecolor="k", lw=0.3)
    fig.colorbar(sc, ax=ax, label=label("poverty_incidence", lang))
    ax.set_title(label("sae_map_title", lang))
    ax.set_aspect("equal")
    return fig
