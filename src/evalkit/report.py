"""Report building blocks: labels, CJK fonts, reproducible JSON, atomic files and Excel ledgers.

Every user-facing string comes from the bilingual data dictionary (:func:`evalkit.dictionary.label`);
``lang`` is ``'zh'`` (default) or ``'en'``.
"""
from __future__ import annotations

import importlib.util
import json
import math
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from .dictionary import label
from .exit import CRITERIA as _CRITERIA

__all__ = ["setup_cjk_font", "label", "to_jsonable", "write_json", "atomic_path", "write_ledger_xlsx",
           "pct", "fmt_table"]

_FONT_FILE = "NotoSansCJKsc-Regular.otf"
_FONT_FAMILY = "Noto Sans CJK SC"


def setup_cjk_font() -> str:
    """Register the Noto Sans CJK SC font shipped in the ``mplfonts`` wheel and make it the default.

    In-process only (no download, nothing written into site-packages); idempotent.
    Returns the family name.
    """
    import matplotlib
    from matplotlib import font_manager

    spec = importlib.util.find_spec("mplfonts")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("mplfonts is not installed: it ships the CJK font used in plots")
    path = Path(next(iter(spec.submodule_search_locations))) / "fonts" / _FONT_FILE
    if not any(f.fname == str(path) for f in font_manager.fontManager.ttflist):
        font_manager.fontManager.addfont(str(path))
    matplotlib.rcParams["font.family"] = "sans-serif"
    sans = [f for f in matplotlib.rcParams["font.sans-serif"] if f != _FONT_FAMILY]
    matplotlib.rcParams["font.sans-serif"] = [_FONT_FAMILY, *sans]
    matplotlib.rcParams["axes.unicode_minus"] = False  # the CJK font lacks U+2212
    matplotlib.rcParams["svg.hashsalt"] = "evalkit"  # reproducible SVG ids
    return _FONT_FAMILY


def new_figure(figsize: tuple[float, float], nrows: int = 1, ncols: int = 1, **kw):
    """A matplotlib Figure (not registered with pyplot, so never shown twice) with the CJK font set."""
    from matplotlib.figure import Figure

    setup_cjk_font()
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, **kw)


def _feature_label(term: object, lang: str) -> str:
    try:
        return label(f"feat_{term}", lang)
    except KeyError:  # a feature without a label keeps its name
        return str(term)


def to_jsonable(obj: Any) -> Any:
    """Convert numpy/pandas scalars and containers to plain JSON types; refuse NaN/inf.

    A report never carries a silent NaN: a missing number must be ``None`` on purpose.
    """
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        if not math.isfinite(f):
            raise ValueError("refusing to write a non-finite number (NaN/inf) into a result file")
        return f
    if obj is pd.NA or obj is None:
        return None
    if isinstance(obj, (pd.Timestamp,)):
        return obj.isoformat()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(obj: Any, path: str | Path) -> Path:
    """Write JSON deterministically (sorted keys, UTF-8, trailing newline), atomically."""
    text = json.dumps(to_jsonable(obj), ensure_ascii=False, indent=2, sort_keys=True) + "\n"
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only if the block succeeds.

    A run killed half-way leaves at most a ``.tmp-*`` file, never a complete-looking output.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{path.name}.", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def pct(x: float | None, digits: int = 2) -> str:
    """Format a share as a percentage string ('—' for None)."""
    return "—" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{100 * x:.{digits}f}%"


def fmt_table(df: pd.DataFrame, lang: str = "zh", keys: dict[str, str] | None = None) -> pd.DataFrame:
    """Rename columns to their labels in ``lang`` (``keys`` maps column -> label key)."""
    keys = keys or {}
    ren = {}
    for c in df.columns:
        k = keys.get(c, c)
        try:
            ren[c] = label(k, lang)
        except KeyError:
            ren[c] = c
    return df.rename(columns=ren)


def write_ledger_xlsx(sheets: dict[str, pd.DataFrame], path: str | Path, lang: str = "zh",
                      title: str | None = None, keys: dict[str, str] | None = None,
                      raw_sheets: tuple[str, ...] = ()) -> Path:
    """Write a printable ledger (one or more sheets) to Excel, atomically.

    Column headers are translated to ``lang`` except in ``raw_sheets`` (machine-readable data
    keeps the canonical names).

    Columns named ``name`` or ``id_number`` must already be masked: this function refuses
    anything that still looks like a full 18-digit ID number.
    """
    from openpyxl.styles import Alignment, Font

    from .privacy import pii_columns

    for sname, df in sheets.items():
        flat = df.reset_index() if not isinstance(df.index, pd.RangeIndex) else df
        unmasked = [c for c, kind in pii_columns(flat.columns, flat).items()
                    if kind == "id_number" and flat[c].dropna().astype(str).str.contains(r"\d{9}").any()]
        if unmasked:
            raise ValueError(f"sheet {sname!r} column(s) {unmasked} hold full ID numbers: mask them first")
    path = Path(path)
    with atomic_path(path) as tmp:
        with pd.ExcelWriter(tmp, engine="openpyxl") as xw:
            for sname, df in sheets.items():
                out = df if sname in raw_sheets else fmt_table(df, lang, keys)
                start = 2 if title else 0
                out.to_excel(xw, sheet_name=sname[:31], index=False, startrow=start)
                ws = xw.sheets[sname[:31]]
                if title:
                    ws.cell(row=1, column=1, value=title).font = Font(bold=True, size=13)
                for j, col in enumerate(out.columns, start=1):
                    width = max([len(str(col))] + [len(str(v)) for v in out[col].head(200)]) + 2
                    ws.column_dimensions[ws.cell(row=start + 1, column=j).column_letter].width = min(max(width * 1.3, 8), 40)
                    ws.cell(row=start + 1, column=j).alignment = Alignment(wrap_text=True)
                ws.freeze_panes = ws.cell(row=start + 2, column=1)
                ws.print_title_rows = f"{start + 1}:{start + 1}"
    # openpyxl stamps creation/modification times into docProps/core.xml; that is the only
    # non-reproducible part of the file and carries no result.
    return path


# ---------------------------------------------------------------------------------------------
# County exit assessment report pieces



def _guarantees() -> list[str]:
    from .config import load_policy

    return list(load_policy().section("indicators")["guarantees"])


def verdict_label(v: str, lang: str = "zh") -> str:
    """Label of a verdict ('pass' / 'fail' / 'borderline')."""
    return label(f"verdict_{v}", lang)


def register_glance(households: pd.DataFrame, year: int, lang: str = "zh") -> pd.DataFrame:
    """The county register at a glance in ``year``: households and persons by register status."""
    from .survey import household_strata

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
    out["share"] = [pct(x) for x in out["persons_n"] / max(int(size.sum()), 1)]
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
        "weighted_households": g["weight"].sum().round(1),
    })
    if villages is not None:
        vs = villages.assign(stratum=np.where(villages["is_poverty_village"].astype(bool),
                                              "poverty_village", "non_poverty_village"))
        out["villages_in_frame"] = vs.groupby("stratum").size().reindex(out.index).fillna(0).astype(int)
    hh = fs.pivot_table(index="stratum", columns="hh_stratum", values="household_id", aggfunc="count",
                        fill_value=0, observed=True)
    hh.columns = [code_label_safe("hh_stratum", c, lang) for c in hh.columns]
    out = out.join(hh)
    out.index = pd.Index([label(i, lang) for i in out.index], name=label("village_stratum", lang))
    return fmt_table(out, lang)


def code_label_safe(list_name: str, code: str, lang: str) -> str:
    from .dictionary import code_label

    try:
        return code_label(list_name, code, lang)
    except KeyError:
        return str(code)


def criteria_table(crit: pd.DataFrame, lang: str = "zh") -> pd.DataFrame:
    """The four criteria as a readable table (percentages, verdicts in ``lang``)."""
    rows = []
    for c in _CRITERIA:
        r = crit.loc[c]
        rows.append({
            "criterion": label(c, lang), "est": pct(r["est"]), "lci": pct(r["lci"]), "uci": pct(r["uci"]),
            "se": pct(r["se"], 3), "n": int(r["n"]), "df": int(r["df"]),
            "threshold": f"{label('direction_' + r['direction'], lang)} {pct(r['threshold'], 0)}",
            "verdict": verdict_label(r["verdict"], lang),
            "official_verdict": verdict_label(r["official_verdict"], lang),
        })
    return fmt_table(pd.DataFrame(rows).set_index("criterion"), lang).rename_axis(label("criterion", lang))


_VERDICT_COLORS = {"pass": "#2a9d4b", "borderline": "#e0a100", "fail": "#c0392b"}


def plot_criteria(crit: pd.DataFrame, lang: str = "zh", confidence: float | None = None):
    """One chart: each criterion's estimate and CI against its threshold, colored by verdict."""
    fig, axes = new_figure((12, 3.4), 1, 4)
    for ax, c in zip(axes, _CRITERIA):
        r = crit.loc[c]
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
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_ylabel("%")
        ax.set_xlabel(verdict_label(r["verdict"], lang), color=col, fontsize=10)
    lvl = f" ({100 * confidence:.0f}% {label('confidence_interval', lang)})" if confidence else ""
    fig.suptitle(label("h_criteria", lang) + lvl, fontsize=11)
    fig.set_layout_engine("tight")
    return fig


def guarantee_shortfalls(field_survey: pd.DataFrame, lang: str = "zh") -> pd.DataFrame:
    """Weighted share and count of sampled households failing each guarantee, by household stratum."""
    fs = field_survey
    guar = _guarantees()
    fail = pd.DataFrame({g: ~fs[g].astype(bool) for g in guar})
    n = fail.groupby(fs["hh_stratum"]).sum().T
    share = fail.mul(fs["weight"], axis=0).groupby(fs["hh_stratum"]).sum().T / fs.groupby("hh_stratum")["weight"].sum()
    out = pd.DataFrame({code_label_safe("hh_stratum", hs, lang): [f"{int(a)} ({pct(b)})" for a, b in zip(n[hs], share[hs])]
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
        trans[u] = "；".join(dict.fromkeys(names)) if lang == "zh" else "; ".join(dict.fromkeys(names))
    return codes.fillna("").astype(str).map(trans)


def followup_list(flags: pd.DataFrame, members: pd.DataFrame | None, villages: pd.DataFrame | None,
                  lang: str = "zh") -> pd.DataFrame:
    """疑似问题核实清单: suspected wrongly-exited and missed households, names and IDs masked.

    ``flags`` is :func:`evalkit.exit.criterion_flags` output (one row per sampled household).
    """
    from .privacy import masked_heads

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


def exit_results(crit: pd.DataFrame, dec: dict, county: dict, year: int, thresholds: dict,
                 data_sha256: str) -> dict:
    """The ``results.json`` content of a county exit assessment (issue schema)."""
    from . import __version__

    out: dict[str, Any] = {
        "county_code": county["county_code"], "county_name": county["county_name"], "year": int(year),
        "region": county["region"],
        "thresholds": {k: {"value": v["value"], "direction": v["direction"]} for k, v in thresholds.items()},
    }
    for c in _CRITERIA:
        r = crit.loc[c]
        vals = {k: r[k] for k in ("est", "se", "lci", "uci")}
        for k, v in vals.items():
            if v is None or not math.isfinite(float(v)):
                raise ValueError(f"{c}.{k} is not a finite number; the report refuses a silent NaN")
        out[c] = {**{k: float(v) for k, v in vals.items()}, "n": int(r["n"]), "df": int(r["df"]),
                  "verdict": str(r["verdict"])}
    out["decision"] = {"overall": dec["overall"], "official_point_rule": dec["official_point_rule"]}
    out["data_sha256"] = data_sha256
    out["evalkit_version"] = __version__
    return out


# ---------------------------------------------------------------------------------------------
# Narrative (generated so that it follows ``lang`` and the actual numbers)


def county_intro(a, lang: str = "zh") -> str:
    """Title and one-paragraph summary of a county assessment."""
    c = a.county
    d = a.decision
    if lang == "zh":
        return (f"# {c['county_name']}（{c['county_code']}）{a.year}年{label('title_county_exit', lang)}\n\n"
                f"区域：{code_label_safe('region', c['region'], lang)}；置信水平 {100 * a.confidence:.0f}%。"
                f"考虑抽样不确定性的结论：**{verdict_label(d['overall'], lang)}**；"
                f"按官方点估计规则：**{verdict_label(d['official_point_rule'], lang)}**。")
    return (f"# {c['county_name']} ({c['county_code']}) {a.year}: {label('title_county_exit', lang)}\n\n"
            f"Region: {code_label_safe('region', c['region'], lang)}; confidence level {100 * a.confidence:.0f}%. "
            f"Decision with sampling uncertainty: **{verdict_label(d['overall'], lang)}**; "
            f"official point-estimate rule: **{verdict_label(d['official_point_rule'], lang)}**.")


def sample_narrative(a, lang: str = "zh") -> str:
    """How the sample was drawn and how it is analysed."""
    fs = a.field_survey
    nv, nh = fs["village_code"].nunique(), len(fs)
    src = {"field_survey": {"zh": "评估组实地调查数据", "en": "the evaluators' field survey"},
           "drawn_from_truth": {"zh": "按设计从合成数据中抽取的样本", "en": "a sample drawn by design from the synthetic truth"}}
    s = src.get(a.survey_source, {"zh": a.survey_source, "en": a.survey_source})[lang]
    single = a.criteria.attrs.get("singleton_strata") or []
    method = a.criteria.attrs.get("singleton_method")
    if lang == "zh":
        txt = (f"数据来源：{s}。以行政村为初级抽样单元，按贫困村/非贫困村分层抽取 {nv} 个村，"
               f"村内按已脱贫户、未脱贫户、非建档立卡户分层抽取 {nh} 户。"
               "各项比率以设计权数加权估计（错退率、漏评率以人口为单位），方差按分层整群设计以泰勒线性化计算（svy）。")
        if single:
            txt += f" 注意：抽样层 {', '.join(map(str, single))} 只有一个样本村，采用 “{method}” 方法处理。"
    else:
        txt = (f"Source: {s}. Villages are the primary units, stratified by poverty / non-poverty village: "
               f"{nv} villages; within villages, households stratified by exited / still poor / non-registered: "
               f"{nh} households. Rates are design-weighted ratios (persons for the two error rates), with "
               "Taylor-linearized variances for the stratified cluster design (svy).")
        if single:
            txt += f" Note: stratum {', '.join(map(str, single))} has a single sampled village, handled by '{method}'."
    for n in a.notes:
        txt += f"\n\n> {n}"
    return txt


def decision_narrative(a, lang: str = "zh") -> str:
    """The decision with its certainty, criterion by criterion."""
    crit, d = a.criteria, a.decision
    lines = []
    for c in _CRITERIA:
        r = crit.loc[c]
        if lang == "zh":
            lines.append(f"- {label(c, lang)}：{pct(r['est'])}（{100 * a.confidence:.0f}%置信区间 {pct(r['lci'])}–{pct(r['uci'])}），"
                         f"标准{label('direction_' + r['direction'], lang)}{pct(r['threshold'], 0)}，"
                         f"判定 **{verdict_label(r['verdict'], lang)}**（官方规则：{verdict_label(r['official_verdict'], lang)}）")
        else:
            lines.append(f"- {label(c, lang)}: {pct(r['est'])} ({100 * a.confidence:.0f}% CI {pct(r['lci'])}–{pct(r['uci'])}), "
                         f"threshold {label('direction_' + r['direction'], lang)} {pct(r['threshold'], 0)}: "
                         f"**{verdict_label(r['verdict'], lang)}** (official rule: {verdict_label(r['official_verdict'], lang)})")
    if lang == "zh":
        head = (f"**{label('decision_overall', lang)}：{verdict_label(d['overall'], lang)}**；"
                f"{label('decision_official', lang)}：{verdict_label(d['official_point_rule'], lang)}。")
        if d["overall"] == "borderline":
            head += " 至少一项指标的置信区间跨越标准线：样本不足以确定结论，建议扩大样本或重点核实。"
    else:
        head = (f"**{label('decision_overall', lang)}: {verdict_label(d['overall'], lang)}**; "
                f"{label('decision_official', lang)}: {verdict_label(d['official_point_rule'], lang)}.")
        if d["overall"] == "borderline":
            head += " At least one interval straddles its threshold: the sample cannot settle the decision."
    return head + "\n\n" + "\n".join(lines)


def followup_narrative(followup: pd.DataFrame, path, lang: str = "zh") -> str:
    """One sentence about the follow-up list and where its ledger is."""
    n = len(followup)
    if lang == "zh":
        return (f"共 {n} 户需要实地核实（姓名、身份证号已脱敏）。台账已写入 `{Path(path).name}`。"
                if n else "样本中未发现疑似错退或漏评户。")
    return (f"{n} households need verification (names and ID numbers masked). Ledger: `{Path(path).name}`."
            if n else "No suspected wrongly-exited or missed household in the sample.")


# ---------------------------------------------------------------------------------------------
# Return-to-poverty risk report pieces

def model_label(name: str, lang: str = "zh") -> str:
    """Label of a risk model."""
    return label(f"model_{name}", lang)


def model_comparison(metrics: pd.DataFrame, lang: str = "zh") -> pd.DataFrame:
    """Model comparison table (AUC, PR-AUC, Brier, recall@k, precision@k), rule first."""
    m = metrics.set_index("model")
    order = ["rule"] + [x for x in m.index if x != "rule"]
    out = pd.DataFrame({
        "ROC-AUC": m.loc[order, "auc"].round(3).to_numpy(),
        "PR-AUC": m.loc[order, "pr_auc"].round(3).to_numpy(),
        "Brier": m.loc[order, "brier"].round(4).to_numpy(),
        label("recall_at_k", lang): [pct(x, 1) for x in m.loc[order, "recall_at_k"]],
        label("precision_at_k", lang): [pct(x, 1) for x in m.loc[order, "precision_at_k"]],
    }, index=pd.Index([model_label(x, lang) for x in order], name=label("model", lang)))
    return out


def effects_table(effects: pd.DataFrame, lang: str = "zh") -> pd.DataFrame:
    """Logit effects: coefficient, clustered SE, odds ratio with its CI, p-value; labelled rows."""
    e = effects.drop(index=[i for i in effects.index if str(i).startswith("C(")], errors="ignore")
    names = [_feature_label(t, lang) for t in e.index]
    out = pd.DataFrame({"coef": e["coef"].round(3).to_numpy(), "se": e["se"].round(3).to_numpy(),
                        label("odds_ratio", lang): [f"{a:.2f} [{b:.2f}, {c:.2f}]" for a, b, c in
                                                    zip(e["odds_ratio"], e["or_ci_low"], e["or_ci_high"])],
                        "p": e["p_value"].map(lambda p: "<0.001" if p < 0.001 else f"{p:.3f}").to_numpy()},
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
    ax.set_yticks(y, [_feature_label(t, lang) for t in e.index], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(label("odds_ratio", lang))
    ax.set_title(label("h_effects", lang))
    fig.set_layout_engine("tight")
    return fig


def stability_table(stability: pd.DataFrame, lang: str = "zh") -> pd.DataFrame:
    """County stability: mean, sd, min and max of each metric across counties."""
    s = stability.copy()
    s["model"] = [model_label(x, lang) for x in s["model"]]
    for c in ("mean", "sd", "min", "max", "iqr"):
        s[c] = s[c].round(3)
    return s.set_index(["model", "metric"])[["n_counties", "mean", "sd", "min", "max"]].rename_axis(
        [label("model", lang), ""])


def red_list_by_village(watch: pd.DataFrame, lang: str = "zh") -> pd.DataFrame:
    """Red-list summary: households on the red and yellow lists per village."""
    w = watch.assign(red=watch["warning_level"].eq("red"), yellow=watch["warning_level"].eq("yellow"))
    keys = [c for c in ("county_code", "township_name", "village_name", "village_code") if c in w.columns]
    out = w.groupby(keys, dropna=False).agg(red=("red", "sum"), yellow=("yellow", "sum")).reset_index()
    out = out.sort_values(["red", "yellow"], ascending=False, kind="stable").set_index(keys)
    out.index.names = [label(k, lang) for k in keys]
    return out.rename(columns={"red": code_label_safe("warning_level", "red", lang),
                               "yellow": code_label_safe("warning_level", "yellow", lang)})


def risk_intro(run, lang: str = "zh") -> str:
    """One paragraph: what was validated and what the current list holds."""
    m = run.validation.metrics.set_index("model")
    best, rule = m.loc[run.best_model], m.loc["rule"]
    n_red = int((run.warnings["level"] == "red").sum())
    sy = getattr(run, "selection_year", None)
    sel_zh = f"，按 {sy} 年选择" if sy is not None else "，无更早年份可供选择，默认"
    sel_en = f", selected on {sy}" if sy is not None else ", default: no earlier year to select on"
    if lang == "zh":
        return (f"以 {min(run.train_years)}–{max(run.train_years)} 年训练、{run.test_year} 年样本外检验"
                f"（标签为下一年是否低于监测线或“三保障”未达标）。每村跟进 {run.capacity_k} 户时，"
                f"选定模型（{model_label(run.best_model, lang)}{sel_zh}）捕获 {pct(best['recall_at_k'], 1)} 的返贫户，"
                f"现行政策规则捕获 {pct(rule['recall_at_k'], 1)}。{run.score_year} 年已脱贫户中红色预警 {n_red} 户。")
    return (f"Trained on {min(run.train_years)}-{max(run.train_years)}, tested out of time on {run.test_year} "
            f"(label: below the monitoring line or a guarantee failing the next year). With {run.capacity_k} "
            f"households followed up per village, the chosen model ({model_label(run.best_model, lang)}{sel_en}) captures "
            f"{pct(best['recall_at_k'], 1)} of returners, the policy rule {pct(rule['recall_at_k'], 1)}. "
            f"Red list in {run.score_year}: {n_red} exited households.")


def returns_table(returns: pd.DataFrame, lang: str = "zh") -> pd.DataFrame:
    """Observed returns by population and year with labelled index and columns."""
    pop_codes = {"exited": "exited", "non_registered": "non_registered"}
    out = returns.rename(index=lambda v: code_label_safe("hh_stratum", pop_codes.get(v, v), lang)
                         if isinstance(v, str) else v)
    out.index = out.index.set_names([label("population", lang), label("panel.year", lang)])
    return fmt_table(out, lang)
