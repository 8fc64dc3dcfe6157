"""Return-to-poverty monitoring as one call: validate models out of time, then score the latest year.

The risk notebook calls :func:`run_monitoring` and only displays what it returns
(:mod:`evalkit.report.risk`); :func:`write_outputs` writes its files.

Honest model choice: the model that scores the current list is chosen on a *selection year*
(the last training year, with models fitted on the years before it) and the metrics reported
are those of the *test year*, which plays no part in the choice. The chosen model is then
refitted on every labelled year exactly as :func:`evalkit.risk.out_of_time` fits it
(:func:`evalkit.risk.fit_model`).

Nothing is dropped silently: the input is validated (:func:`evalkit.data.load_dataset`),
quarantined rows are counted in :attr:`MonitoringRun.notes` and written by :func:`write_outputs`
to ``quarantine/``; every choice made for the user (fallback model, counties without a returner)
is a note as well (:class:`evalkit.text.Note`, rendered in the report's language).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import pandas as pd

from evalkit import __version__, risk
from evalkit.config import Policy
from evalkit.data import Dataset, load_dataset, write_quarantine
from evalkit.data.selection import ALL, parse_selection, select_counties
from evalkit.errors import InputError, RiskModelError
from evalkit.outputs import write_json
from evalkit.report.risk import write_watchlist_xlsx
from evalkit.text import Note, check_lang, render_notes

__all__ = ["MonitoringRun", "run_monitoring", "write_outputs", "MODEL_NAMES", "DATA_TABLES"]

MODEL_NAMES = ("rule", "logit", "boosting", "vulnerability")
#: Tables a monitoring run reads (``results.json`` ``data_sha256`` is their fingerprint, see
#: :func:`evalkit.data.dataset_fingerprint`).
DATA_TABLES = ("counties", "villages", "households", "members", "panel")
_METRICS = {"roc_auc": "auc", "pr_auc": "pr_auc", "brier": "brier", "recall_at_k": "recall_at_k",
            "precision_at_k": "precision_at_k"}


def _model_note(name: str) -> Note:
    """A model's name as a note field (rendered in the note's language)."""
    return Note(f"model_{name}")


@dataclass
class MonitoringRun:
    """Everything the risk report shows.

    ``validation`` holds the test-year metrics of every model; ``selection`` the selection-year
    metrics on which ``best_model`` was chosen (None when there was no earlier year to choose on).
    ``closure`` is :func:`evalkit.risk.case_closure` of the panel (one row per monitoring case).
    ``notes`` are :class:`~evalkit.text.Note` objects, rendered by
    :func:`evalkit.report.risk.notes_section` and in ``results.json``.
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
    policy: Policy = field(repr=False)
    selection_year: int | None = None
    selection: pd.DataFrame | None = None
    closure: pd.DataFrame = field(default_factory=pd.DataFrame)
    counties: list[str] | None = None
    notes: list[Note] = field(default_factory=list)
    quarantined_rows: dict[str, int] = field(default_factory=dict)
    dataset: Dataset | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        sel = "none" if self.selection_year is None else self.selection_year
        return (f"MonitoringRun(best_model={self.best_model!r} chosen on {sel}, test_year={self.test_year}, "
                f"score_year={self.score_year}, red={int((self.warnings['level'] == 'red').sum())}, "
                f"cases={len(self.closure)}, notes={len(self.notes)})")

    # -- results.json --------------------------------------------------------------------------
    def results(self, lang: str = "zh") -> dict:
        """``results.json``: ``test_year``, one object per model, ``rule_baseline``, ``capacity_k``, ...

        Every model object holds ``roc_auc, pr_auc, brier, recall_at_k, precision_at_k`` on the
        held-out year; ``rule_baseline`` is the policy rule scored the same way. ``best_model`` was
        chosen by recall@k on ``selection_year`` (None: no earlier year, fallback model; see
        ``notes``, rendered in ``lang``). ``closed_cases`` / ``open_cases``: monitoring cases
        cleared (销号) during the score year / still open at its end. A metric that is not a
        finite number raises :class:`~evalkit.errors.RiskModelError` naming the model and the metric.
        """
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
        out["notes"] = render_notes(self.notes, lang)
        out["data_sha256"] = self.data_sha256
        out["evalkit_version"] = __version__
        return out

    @staticmethod
    def _finite(v: Any, metric: str, model: str, year: int | None) -> float:
        f = float(v)
        if not math.isfinite(f):
            raise RiskModelError(
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
        """Monitoring cases by year up to the score year (:func:`evalkit.risk.closure_by_year`)."""
        return risk.closure_by_year(self.closure, self.score_year)


def _selected(data_dir: str | Path, counties: Any) -> list[str] | None:
    """County codes of the selection, or None for every county (resolved on the counties table)."""
    if parse_selection(counties) == ALL:
        return None
    table = load_dataset(data_dir, tables=["counties"], validate=True)
    if "counties" not in table:
        raise InputError(f"{data_dir}: no counties table to resolve the county selection {counties!r}")
    return select_counties(table["counties"], counties)


def _load(data_dir: str | Path, cs: list[str] | None) -> Dataset:
    """Load and validate; raise when a table cannot be read."""
    ds = load_dataset(data_dir, tables=DATA_TABLES, counties=cs, validate=True)
    if ds.report.exit_code() == 2:
        p = ds.report.problems
        fatal = p[p["severity"] == "fatal"]
        why = "; ".join(f"{t or '?'}: {r}" for t, r in zip(fatal["table"], fatal["reason"]))
        raise InputError(f"{data_dir}: the input cannot be read ({why}); run `evalkit validate "
                         f"{data_dir}` for the full report")
    return ds


def _quarantine_notes(quarantined: dict[str, int]) -> list[Note]:
    return [Note("note_risk_quarantined_one" if n == 1 else "note_risk_quarantined_many", {"table": t, "n": n})
            for t, n in quarantined.items()]


def _selection_metrics(run_args: dict, chosen: dict, sel: int, sel_train: list[int], notes: list[Note]
                       ) -> tuple[pd.DataFrame | None, Note | None]:
    """Metrics of the candidates on the selection year; a model that cannot be fitted is left out."""
    kw = dict(run_args, train_years=sel_train, test_year=sel)
    try:
        return risk.out_of_time(**kw, models=chosen).metrics, None
    except RiskModelError as e:
        parts = []
        for m in [m for m in chosen if m != "rule"]:  # one model may need more years than the window has
            try:
                parts.append(risk.out_of_time(**kw, models={"rule": chosen["rule"], m: chosen[m]}).metrics)
            except RiskModelError as e2:
                notes.append(Note("note_risk_not_candidate", {"model": _model_note(m), "first": sel_train[0],
                                                              "last": sel_train[-1], "year": sel, "error": str(e2)}))
        if not parts:
            return None, Note("note_risk_fallback_unscored", {"year": sel, "error": str(e)})
        return pd.concat(parts, ignore_index=True).drop_duplicates("model").reset_index(drop=True), None


def _choose_model(run_args: dict, chosen: dict, train_years: list[int], h: int, notes: list[Note]
                  ) -> tuple[str, int | None, pd.DataFrame | None]:
    """Best model by recall@k on the last training year, fitted on the years before it.

    Returns the model name, the selection year and the selection-year metrics (None, None when
    there is no year to choose on: then logit, or the first candidate, with a note).
    """
    candidates = [m for m in chosen if m != "rule"]
    if not candidates:
        notes.append(Note("note_risk_only_rule"))
        return "rule", None, None
    fallback = "logit" if "logit" in candidates else candidates[0]
    sel = train_years[-1] if train_years else None
    sel_train = [y for y in train_years if sel is not None and y + h <= sel]
    if len(train_years) < 2 or not sel_train:
        why = Note("note_risk_fallback_few_years", {"n": len(train_years), "first": train_years[0],
                                                    "last": train_years[-1]})
    else:
        sm, why = _selection_metrics(run_args, chosen, sel, sel_train, notes)
        if sm is not None:
            rec = sm.set_index("model")["recall_at_k"].drop(index="rule", errors="ignore")
            if rec.notna().any():
                return str(rec.idxmax()), int(sel), sm  # ties: the first in the model order
            why = Note("note_risk_fallback_no_returner", {"year": sel})
    notes.append(Note(why.key, {**why.fields, "model": _model_note(fallback)}))
    return fallback, None, None


def _current_list(chosen_model: Any, labels: pd.DataFrame, feats: pd.DataFrame, hh: pd.DataFrame,
                  score_year: int, policy: Policy) -> pd.DataFrame:
    """Early warnings of the exited households in ``score_year``, scored by the chosen model refitted
    on every labelled year exactly as out_of_time fits it."""
    model = risk.fit_model(chosen_model, risk.labelled_frame(labels, feats), feats.columns)
    exited = hh.loc[hh["exit_year"].notna() & (hh["exit_year"] <= score_year), "household_id"]
    cur = feats[(feats["year"] == score_year) & feats["household_id"].isin(exited)].copy()
    cur["score"] = model.predict_proba(cur[list(feats.columns)])[:, 1]
    return risk.early_warning(cur, policy)


def _years(labels: pd.DataFrame, train_years: Iterable[int] | None, test_year: int | None, h: int
           ) -> tuple[list[int], int]:
    years = sorted(int(y) for y in labels["year"].unique())
    if not years:
        raise RiskModelError("the panel gives no labelled household-year (need at least two years)")
    ty = int(test_year) if test_year is not None else int(years[-1])
    train = sorted({int(y) for y in (train_years if train_years is not None else [y for y in years if y + h <= ty])})
    return train, ty


def run_monitoring(data_dir: str | Path, counties: Sequence[str] | str | None = "all",
                   train_years: Sequence[int] | None = None, test_year: int | None = None,
                   models: Sequence[str] = MODEL_NAMES, capacity_k: int = 5, *, policy: Policy,
                   population: str = "exited") -> MonitoringRun:
    """Validate the risk models out of time and produce the current early-warning list.

    Parameters
    ----------
    data_dir : path
    counties : 'all', None, codes or county names (a list or a comma-separated string)
        Resolved by :func:`evalkit.data.select_counties`.
    train_years : list of int, optional
        Years t used for training (labels at t+h); default every labelled year before ``test_year``.
        The last of them is the selection year on which the best model is chosen.
    test_year : int, optional
        Held-out year t; default the last labelled year. Its metrics are reported, never used to choose.
    models : names among :data:`MODEL_NAMES`
    capacity_k : int
        Households each village can follow up (list size for capture@k).
    policy : Policy
        Lines, label definition and warning thresholds.
    population : {'exited', 'non_registered', 'both'}

    Raises
    ------
    evalkit.errors.InputError
        A table cannot be read (validation exit code 2).
    evalkit.errors.ParameterError
        Unknown county.
    evalkit.errors.RiskModelError
        Unknown model, too few labelled years.
    """
    unknown = sorted(set(models) - set(MODEL_NAMES))
    if unknown:
        raise RiskModelError(f"unknown model(s) {unknown}; choose from {list(MODEL_NAMES)}")
    if "rule" not in models:
        models = ["rule", *models]  # every model is compared with what offices do today
    cs = _selected(data_dir, counties)
    ds = _load(data_dir, cs)
    quarantined = {t: int(n) for t, n in ds.report.n_quarantined.items() if n}
    notes = _quarantine_notes(quarantined)
    panel, hh, mem = ds["panel"], ds["households"], ds["members"]
    labels = risk.make_labels(panel, hh, policy, population=population)
    _, _, h = risk.label_definition(policy)
    train_years, test_year = _years(labels, train_years, test_year, h)
    all_models = risk.default_models()
    chosen = {m: all_models[m] for m in models}
    feats = risk.build_features(panel, hh, mem, policy)
    run_args = dict(panel=panel, households=hh, members=mem, policy=policy, population=population,
                    features=feats, labels=labels, k=capacity_k)
    vr = risk.out_of_time(**run_args, models=chosen, train_years=train_years, test_year=test_year)
    best, selection_year, svr = _choose_model(run_args, chosen, train_years, h, notes)
    no_pos = vr.by_county.loc[vr.by_county["n_positives"] == 0, "county_code"].drop_duplicates().astype(str)
    notes += [Note("note_risk_county_no_returner", {"county": cc, "year": test_year}) for cc in no_pos]
    score_year = int(panel["year"].max())
    warnings = _current_list(chosen[best], labels, feats, hh, score_year, policy)
    watch = risk.watchlist(warnings, hh, mem, villages=ds["villages"], k=None)
    eff = vr.models["logit"].effects() if "logit" in vr.models else pd.DataFrame()
    return MonitoringRun(validation=vr, labels=labels, features=feats, warnings=warnings, watch=watch, effects=eff,
                         best_model=best, score_year=score_year, capacity_k=int(capacity_k), test_year=test_year,
                         train_years=train_years, data_sha256=ds.sha256, villages=ds["villages"], policy=policy,
                         selection_year=selection_year, selection=svr,
                         closure=risk.case_closure(panel, policy), counties=cs, notes=notes,
                         quarantined_rows=quarantined, dataset=ds)


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
    """Write ``results.json`` (notes in ``lang``), ``watchlist.xlsx`` (masked, in ``lang``),
    ``red_share_by_county.csv`` and, when rows were quarantined, ``quarantine/``
    (``<table>.quarantine.csv`` masked, ``validation_report.csv``)."""
    check_lang(lang)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    res = run.results(lang)  # raises before anything is written if a number is undefined
    paths: dict[str, Path] = {}
    qdir = out / "quarantine"
    _clear_quarantine(qdir)
    if run.dataset is not None and run.dataset.report.n_quarantined_total:
        write_quarantine(run.dataset, qdir)
        paths["quarantine"] = qdir
    paths["results"] = write_json(res, out / "results.json")
    paths["watchlist"] = write_watchlist_xlsx(run.watch, out / "watchlist.xlsx", lang=lang, policy=run.policy)
    rs = run.red_share_by_county()
    p = out / "red_share_by_county.csv"
    rs.to_csv(p, index=False, encoding="utf-8-sig")
    paths["red_share"] = p
    return paths
