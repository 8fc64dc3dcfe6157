"""Return-to-poverty monitoring as one call: validate models out of time, then score the latest year.

The risk notebook calls :func:`run_monitoring` and only displays what it returns.

Honest model choice: the model that scores the current list is chosen on a *selection year*
(the last training year, with models fitted on the years before it) and the metrics reported
are those of the *test year*, which plays no part in the choice. The chosen model is then
refitted on every labelled year exactly as :func:`evalkit.risk.out_of_time` fits it
(:func:`evalkit.risk.fit_model`).

Nothing is dropped silently: the input is validated (:func:`evalkit.io.load_dataset`),
quarantined rows are counted in :attr:`MonitoringRun.notes` and written by :func:`write_outputs`
to ``quarantine/``; every choice made for the user (fallback model, counties without a returner)
is a note as well.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import pandas as pd

from . import io, risk
from .config import Policy, load_policy
from .report import write_json

__all__ = ["MonitoringRun", "run_monitoring", "write_outputs", "parse_counties", "MODEL_NAMES", "DATA_TABLES"]

MODEL_NAMES = ("rule", "logit", "boosting", "vulnerability")
#: Tables a monitoring run reads (``results.json`` ``data_sha256`` is their fingerprint, see
#: :func:`evalkit.io.dataset_fingerprint`).
DATA_TABLES = ("counties", "villages", "households", "members", "panel")
_METRICS = {"roc_auc": "auc", "pr_auc": "pr_auc", "brier": "brier", "recall_at_k": "recall_at_k",
            "precision_at_k": "precision_at_k"}
_COUNTY = re.compile(r"[0-9]{6}")


def parse_counties(counties: Any) -> list[str] | None:
    """County selection → list of 6-digit codes, or None for every county.

    Accepts ``'all'``, ``None``, an empty string, a comma-separated string (``"610631,610632"`` or
    ``"610631"``), a JSON list written as a string (``'["610631", "610632"]'``, as papermill
    parameters may arrive), or any iterable of codes (str or int).
    """
    if counties is None:
        return None
    if isinstance(counties, str):
        text = counties.strip()
        if text.startswith("["):
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError as e:
                raise risk.RiskModelError(f"counties={counties!r}: not a valid list ({e})") from None
            return parse_counties(parsed if isinstance(parsed, list) else [parsed])
        items = [p.strip() for p in text.split(",")]
    elif isinstance(counties, int):
        items = [str(counties)]
    elif isinstance(counties, Iterable):
        items = [str(c).strip() for c in counties]
    else:
        raise risk.RiskModelError(f"counties must be 'all', a list or a comma-separated string, got {counties!r}")
    items = [c for c in items if c]
    if not items or [c.lower() for c in items] == ["all"]:
        return None
    bad = [c for c in items if not _COUNTY.fullmatch(c)]
    if bad:
        raise risk.RiskModelError(f"counties: {bad} are not 6-digit county codes (got {counties!r}); "
                                  "give 'all', a list, or codes separated by commas")
    return list(dict.fromkeys(items))


def _fmt_pct(x: float) -> str:
    return "—" if x is None or not math.isfinite(float(x)) else f"{100 * float(x):.1f}%"


@dataclass
class MonitoringRun:
    """Everything the risk report shows.

    ``validation`` holds the test-year metrics of every model; ``selection`` the selection-year
    metrics on which ``best_model`` was chosen (None when there was no earlier year to choose on).
    ``closure`` is :func:`evalkit.risk.case_closure` of the panel (one row per monitoring case).
    ``notes`` are English sentences (also in ``results.json``), ``notes_zh`` the same in Chinese.
    """

    validation: risk.ValidationResult
    labels: pd.DataFrame
    features: pd.DataFrame
    warnings: pd.DataFrame
    watch: pd.DataFrame
    effects: pd.DataFrame
    best_model: str
    score_year: int
    capacity_k: int
    test_year: int
    train_years: list[int]
    data_sha256: str
    villages: pd.DataFrame
    selection_year: int | None = None
    selection: pd.DataFrame | None = None
    closure: pd.DataFrame = field(default_factory=pd.DataFrame)
    counties: list[str] | None = None
    notes: list[str] = field(default_factory=list)
    notes_zh: list[str] = field(default_factory=list)
    quarantined_rows: dict[str, int] = field(default_factory=dict)
    dataset: io.Dataset | None = field(default=None, repr=False)
    policy: Policy | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        sel = "none" if self.selection_year is None else self.selection_year
        return (f"MonitoringRun(best_model={self.best_model!r} chosen on {sel}, test_year={self.test_year}, "
                f"score_year={self.score_year}, red={int((self.warnings['level'] == 'red').sum())}, "
                f"cases={len(self.closure)}, notes={len(self.notes)})")

    def note(self, en: str, zh: str) -> None:
        """Record a note (English for ``results.json``, Chinese for the zh report)."""
        self.notes.append(en)
        self.notes_zh.append(zh)

    # -- results.json --------------------------------------------------------------------------
    def results(self) -> dict:
        """``results.json``: ``test_year``, one object per model, ``rule_baseline``, ``capacity_k``, ...

        Every model object holds ``roc_auc, pr_auc, brier, recall_at_k, precision_at_k`` on the
        held-out year; ``rule_baseline`` is the policy rule scored the same way. ``best_model`` was
        chosen by recall@k on ``selection_year`` (None: no earlier year, fallback model; see
        ``notes``). ``closed_cases`` / ``open_cases``: monitoring cases cleared (销号) during the
        score year / still open at its end. A metric that is not a finite number raises
        :class:`~evalkit.risk.RiskModelError` naming the model and the metric.
        """
        from . import __version__

        m = self.validation.metrics.set_index("model")
        out: dict = {"test_year": int(self.test_year), "capacity_k": int(self.capacity_k),
                     "train_years": [int(y) for y in self.train_years], "best_model": self.best_model,
                     "selection_year": None if self.selection_year is None else int(self.selection_year),
                     "score_year": int(self.score_year), "models": []}
        for name, r in m.iterrows():
            vals = {key: self._finite(r[col], key, str(name), self.test_year) for key, col in _METRICS.items()}
            if name == "rule":
                out["rule_baseline"] = vals
            else:
                out[name] = vals
                out["models"].append(name)
        if self.selection is not None:
            sm = self.selection.set_index("model")
            out["selection_recall_at_k"] = {str(n): self._finite(v, "recall_at_k", str(n), self.selection_year)
                                            for n, v in sm["recall_at_k"].items()}
        out["red_households"] = int((self.warnings["level"] == "red").sum())
        cy = self.closure_by_year()
        row = cy.loc[self.score_year] if self.score_year in cy.index else pd.Series({"cleared": 0, "open": 0})
        out["closed_cases"] = int(row["cleared"])
        out["open_cases"] = int(row["open"])
        out["counties"] = self.counties if self.counties is not None else "all"
        out["quarantined_rows"] = {t: int(n) for t, n in self.quarantined_rows.items()}
        out["notes"] = list(self.notes)
        out["data_sha256"] = self.data_sha256
        out["evalkit_version"] = __version__
        return out

    @staticmethod
    def _finite(v: Any, metric: str, model: str, year: int | None) -> float:
        f = float(v)
        if not math.isfinite(f):
            raise risk.RiskModelError(
                f"metric {metric!r} of model {model!r} on year {year} is not a number ({f}): the year has "
                "no returning household (or no village to list) in the selected counties; choose other "
                "years or more counties")
        return f

    # -- tables for the report ------------------------------------------------------------------
    def red_share_by_county(self) -> pd.DataFrame:
        """Share of monitored households on the red list, per county (for the province map)."""
        out = (self.warnings.assign(red=self.warnings["level"].eq("red"))
               .groupby("county_code").agg(households=("red", "size"), red=("red", "sum")).reset_index())
        out["red_share"] = out["red"] / out["households"]
        return out

    def returns_by_year(self) -> pd.DataFrame:
        """Observed returns: labelled households and the share that returned, by year t (event at t+1)."""
        g = self.labels.groupby(["population", "year"])["label"]
        return pd.DataFrame({"n": g.size(), "events": g.sum(), "rate": g.mean().round(4)})

    def closure_by_year(self) -> pd.DataFrame:
        """Monitoring cases by year: ``opened`` (cases starting that year), ``cleared`` (销号 that
        year) and ``open`` (opened by then and not cleared at the year's end)."""
        c = self.closure
        if not len(c):
            return pd.DataFrame({"opened": [], "cleared": [], "open": []}, dtype="int64").rename_axis("year")
        opened = c["opened"].astype("int64")
        closed = c["closure_year"].astype("Float64")
        first = int(opened.min())
        last = max(int(self.score_year), int(closed.max()) if closed.notna().any() else first)
        rows = []
        for y in range(first, last + 1):  # loop over years
            still = (opened <= y) & (closed.isna() | (closed > y)).fillna(True).astype(bool)
            rows.append({"year": y, "opened": int((opened == y).sum()),
                         "cleared": int((closed == y).fillna(False).sum()), "open": int(still.sum())})
        return pd.DataFrame(rows).set_index("year")

    def closure_table(self, lang: str = "zh") -> pd.DataFrame:
        """:meth:`closure_by_year` with labelled columns."""
        names = ({"opened": "新纳入监测", "cleared": "当年销号", "open": "年末仍在监测"} if lang == "zh"
                 else {"opened": "Cases opened", "cleared": "Cleared (销号)", "open": "Open at year end"})
        return self.closure_by_year().rename(columns=names).rename_axis("年份" if lang == "zh" else "Year")

    def closure_text(self, lang: str = "zh") -> str:
        """One sentence on case closure in the score year."""
        cy = self.closure_by_year()
        y = self.score_year
        r = cy.loc[y] if y in cy.index else pd.Series({"opened": 0, "cleared": 0, "open": 0})
        pol = load_policy() if self.policy is None else self.policy
        cfg = pol.section("risk")
        k, line = int(cfg["closure_periods"]), str(cfg["label_line"])
        if lang == "zh":
            zline = "监测线" if line == "monitoring" else "贫困线"
            return (f"{y} 年新纳入监测 {int(r['opened'])} 例，销号 {int(r['cleared'])} 例，年末仍在监测 "
                    f"{int(r['open'])} 例（连续 {k} 年人均纯收入不低于{zline}且各项保障均达标即销号）。")
        return (f"In {y}, {int(r['opened'])} monitoring cases were opened, {int(r['cleared'])} cleared (销号) and "
                f"{int(r['open'])} remained open at the year's end (a case is cleared after {k} consecutive years "
                f"with income at or above the {line} line and every guarantee met).")

    def selection_text(self, lang: str = "zh") -> str:
        """How the model was chosen (selection year, recall@k of each model there)."""
        from .report import model_label

        if self.selection is None:
            return ("未另设选型年份，采用" + model_label(self.best_model, lang) + "（见说明）。" if lang == "zh"
                    else f"No separate selection year: {model_label(self.best_model, lang)} was used (see notes).")
        sm = self.selection.set_index("model")["recall_at_k"]
        lo, hi = int(self.selection["train_start"].min()), int(self.selection["train_end"].max())
        parts = [f"{model_label(n, lang)} {_fmt_pct(v)}" for n, v in sm.items() if n != "rule"]
        if lang == "zh":
            return (f"模型在 {self.selection_year} 年选定（以 {lo}–{hi} 年训练），按每村跟进 "
                    f"{self.capacity_k} 户的捕获率：" + "，".join(parts) + f"；选用{model_label(self.best_model, lang)}。"
                    f"上表为 {self.test_year} 年的样本外结果，该年未参与选型。")
        return (f"The model was chosen on {self.selection_year} (trained on {lo}-{hi}) by the share of "
                f"returners captured with {self.capacity_k} households per village: " + ", ".join(parts)
                + f"; {model_label(self.best_model, lang)} was chosen. The table reports {self.test_year}, "
                "which played no part in the choice.")

    def stability_table(self, lang: str = "zh") -> pd.DataFrame:
        """:func:`evalkit.report.stability_table` with undefined values shown as '—'."""
        from .report import stability_table

        t = stability_table(self.validation.stability, lang)
        return t.astype(object).where(t.notna(), "—")

    def notes_markdown(self, lang: str = "zh") -> str:
        """The notes as a Markdown list ('' when there is none)."""
        notes = self.notes_zh if lang == "zh" else self.notes
        if not notes:
            return ""
        head = "**说明**" if lang == "zh" else "**Notes**"
        return head + "\n\n" + "\n".join(f"- {n}" for n in notes)


def _load(data_dir: str | Path, cs: list[str] | None) -> io.Dataset:
    """Load and validate; raise when a table cannot be read or a requested county is absent."""
    ds = io.load_dataset(data_dir, tables=DATA_TABLES, counties=cs, validate=True)
    if cs is not None and "counties" in ds:
        missing = sorted(set(cs) - set(ds["counties"]["county_code"].astype(str)))
        if missing:
            raise risk.RiskModelError(f"county code(s) {missing} are not in {data_dir} (counties table)")
    if ds.report.exit_code() == 2:
        p = ds.report.problems
        fatal = p[p["severity"] == "fatal"]
        why = "; ".join(f"{t or '?'}: {r}" for t, r in zip(fatal["table"], fatal["reason"]))
        raise io.EvalkitInputError(f"{data_dir}: the input cannot be read ({why}); run `evalkit validate "
                                   f"{data_dir}` for the full report")
    return ds


def _choose_model(run_args: dict, chosen: dict, train_years: list[int], h: int, note
                  ) -> tuple[str, int | None, pd.DataFrame | None]:
    """Best model by recall@k on the last training year, fitted on the years before it.

    Returns the model name, the selection year and the selection-year metrics (None, None when
    there is no year to choose on: then logit, or the first candidate, with a note).
    """
    candidates = [m for m in chosen if m != "rule"]
    if not candidates:
        note("only the policy rule was requested: it scores the list", "仅要求政策规则，名单按政策规则评分")
        return "rule", None, None
    fallback = "logit" if "logit" in candidates else candidates[0]
    sel = train_years[-1] if train_years else None
    sel_train = [y for y in train_years if sel is not None and y + h <= sel]
    why_en = why_zh = ""
    sm = None
    if len(train_years) < 2 or not sel_train:
        why_en = (f"only {len(train_years)} training year(s) ({', '.join(map(str, train_years))}): no earlier year "
                  "to choose the model on")
        why_zh = f"训练年份仅 {len(train_years)} 个（{'、'.join(map(str, train_years))}），没有更早的年份可用于选型"
    else:
        kw = dict(run_args, train_years=sel_train, test_year=sel)
        try:
            sm = risk.out_of_time(**kw, models=chosen).metrics
        except risk.RiskModelError as e:
            parts = []
            for m in candidates:  # one model may need more years than the selection window has
                try:
                    parts.append(risk.out_of_time(**kw, models={"rule": chosen["rule"], m: chosen[m]}).metrics)
                except risk.RiskModelError as e2:
                    note(f"{m} cannot be fitted on {sel_train[0]}-{sel_train[-1]} to be scored on the selection "
                         f"year {sel} ({e2}); it is not a candidate",
                         f"{_zh_model(m)}无法以 {sel_train[0]}–{sel_train[-1]} 年训练并在选型年份 {sel} 评估（{e2}），"
                         "未参与选型")
            if parts:
                sm = pd.concat(parts, ignore_index=True).drop_duplicates("model").reset_index(drop=True)
            else:
                why_en, why_zh = f"the selection year {sel} could not be scored ({e})", f"选型年份 {sel} 无法评估（{e}）"
        if sm is not None:
            rec = sm.set_index("model")["recall_at_k"].drop(index="rule", errors="ignore")
            if rec.notna().any():
                return str(rec.idxmax()), int(sel), sm  # ties: the first in the model order
            why_en = f"the selection year {sel} has no returning household"
            why_zh = f"选型年份 {sel} 没有返贫户"
    note(f"{why_en}; the {fallback} model is used without a data-driven choice.",
         f"{why_zh}；直接采用{_zh_model(fallback)}，未经数据选型。")
    return fallback, None, None


def _zh_model(name: str) -> str:
    from .report import model_label

    return model_label(name, "zh")


def run_monitoring(data_dir: str | Path, counties: Sequence[str] | str | None = "all",
                   train_years: Sequence[int] | None = None, test_year: int | None = None,
                   models: Sequence[str] = MODEL_NAMES, capacity_k: int = 5, policy: Policy | None = None,
                   population: str = "exited") -> MonitoringRun:
    """Validate the risk models out of time and produce the current early-warning list.

    Parameters
    ----------
    data_dir : path
    counties : 'all', None, a list of county codes, or a comma-separated string of them
    train_years : list of int, optional
        Years t used for training (labels at t+h); default every labelled year before ``test_year``.
        The last of them is the selection year on which the best model is chosen.
    test_year : int, optional
        Held-out year t; default the last labelled year. Its metrics are reported, never used to choose.
    models : names among :data:`MODEL_NAMES`
    capacity_k : int
        Households each village can follow up (list size for capture@k).

    Raises
    ------
    evalkit.io.EvalkitInputError
        A table cannot be read (validation exit code 2).
    evalkit.risk.RiskModelError
        Unknown model or county, too few labelled years.
    """
    policy = policy or load_policy()
    unknown = sorted(set(models) - set(MODEL_NAMES))
    if unknown:
        raise risk.RiskModelError(f"unknown model(s) {unknown}; choose from {list(MODEL_NAMES)}")
    if "rule" not in models:
        models = ["rule", *models]  # every model is compared with what offices do today
    cs = parse_counties(counties)
    notes: list[tuple[str, str]] = []
    note = lambda en, zh: notes.append((en, zh))  # noqa: E731
    ds = _load(data_dir, cs)
    quarantined = {t: int(n) for t, n in ds.report.n_quarantined.items() if n}
    for t, n in quarantined.items():
        rows = "1 row" if n == 1 else f"{n} rows"
        note(f"{rows} of table {t} quarantined (failed validation): see quarantine/; the analysis uses the "
             "remaining rows", f"{t} 表有 {n} 行未通过校验，已隔离（见 quarantine/），分析使用其余各行")
    panel, hh, mem = ds["panel"], ds["households"], ds["members"]
    labels = risk.make_labels(panel, hh, policy=policy, population=population)
    years = sorted(int(y) for y in labels["year"].unique())
    if not years:
        raise risk.RiskModelError("the panel gives no labelled household-year (need at least two years)")
    _, _, h = risk._label_definition(policy, None, None, None)
    test_year = int(test_year) if test_year is not None else int(years[-1])
    train_years = sorted({int(y) for y in (train_years if train_years is not None
                                            else [y for y in years if y + h <= test_year])})
    all_models = risk.default_models()
    chosen = {m: all_models[m] for m in models}
    feats = risk.build_features(panel, hh, mem, policy=policy)
    run_args = dict(panel=panel, households=hh, members=mem, policy=policy, population=population,
                    features=feats, labels=labels, k=capacity_k)
    vr = risk.out_of_time(**run_args, models=chosen, train_years=train_years, test_year=test_year)
    best, selection_year, svr = _choose_model(run_args, chosen, train_years, h, note)
    no_pos = vr.by_county.loc[vr.by_county["n_positives"] == 0, "county_code"].drop_duplicates().astype(str)
    for cc in no_pos:
        note(f"county {cc} has no returning household in the test year {test_year}: its ROC-AUC, PR-AUC and "
             "recall@k are undefined there and left out of the county stability table",
             f"{cc} 县在检验年份 {test_year} 没有返贫户，该县的 ROC-AUC、PR-AUC 和捕获率无定义，未计入分县稳定性表")
    # Current list: refit the chosen model on every labelled year exactly as out_of_time fits it,
    # then score the latest panel year.
    score_year = int(panel["year"].max())
    model = risk.fit_model(chosen[best], risk.labelled_frame(labels, feats), feats.columns)
    exited = hh.loc[hh["exit_year"].notna() & (hh["exit_year"] <= score_year), "household_id"]
    cur = feats[(feats["year"] == score_year) & feats["household_id"].isin(exited)].copy()
    cur["score"] = model.predict_proba(cur[list(feats.columns)])[:, 1]
    warnings = risk.early_warning(cur, policy=policy)
    watch = risk.watchlist(warnings, hh, mem, villages=ds["villages"], k=None)
    eff = vr.models["logit"].effects() if "logit" in vr.models else pd.DataFrame()
    closure = risk.case_closure(panel, policy=policy)
    run = MonitoringRun(validation=vr, labels=labels, features=feats, warnings=warnings, watch=watch, effects=eff,
                        best_model=best, score_year=score_year, capacity_k=int(capacity_k), test_year=test_year,
                        train_years=train_years, data_sha256=ds.sha256, villages=ds["villages"],
                        selection_year=selection_year, selection=svr, closure=closure, counties=cs,
                        quarantined_rows=quarantined, dataset=ds, policy=policy)
    for en, zh in notes:
        run.note(en, zh)
    return run


def _clear_quarantine(qdir: Path) -> None:
    """Remove the files a previous run wrote to ``qdir`` (only those), so none is left stale."""
    if not qdir.is_dir():
        return
    for f in qdir.iterdir():
        if f.is_file() and (f.name.endswith(".quarantine.csv") or f.name == "validation_report.csv"):
            f.unlink()
    if not any(qdir.iterdir()):
        qdir.rmdir()


def write_outputs(run: MonitoringRun, output_dir: str | Path, lang: str = "zh") -> dict[str, Path]:
    """Write ``results.json``, ``watchlist.xlsx`` (masked), ``red_share_by_county.csv`` and, when
    rows were quarantined, ``quarantine/`` (``<table>.quarantine.csv`` masked, ``validation_report.csv``)."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    res = run.results()  # raises before anything is written if a number is undefined
    paths: dict[str, Path] = {}
    qdir = out / "quarantine"
    _clear_quarantine(qdir)
    if run.dataset is not None and run.dataset.report.n_quarantined_total:
        io.write_quarantine(run.dataset, qdir)
        paths["quarantine"] = qdir
    paths["results"] = write_json(res, out / "results.json")
    paths["watchlist"] = risk.write_watchlist_xlsx(run.watch, out / "watchlist.xlsx", lang=lang)
    rs = run.red_share_by_county()
    p = out / "red_share_by_county.csv"
    rs.to_csv(p, index=False, encoding="utf-8-sig")
    paths["red_share"] = p
    return paths
