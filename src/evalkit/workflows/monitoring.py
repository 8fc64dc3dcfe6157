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
import time
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

__all__ = ["MonitoringRun", "run_monitoring", "write_outputs", "run_province_risk", "results_json", "MODEL_NAMES",
           "DATA_TABLES", "PROVINCE_SAMPLE_ROWS", "PROVINCE_CALIBRATION_ROWS"]

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
        cy = self.closure_by_year()
        row = cy.loc[self.score_year] if self.score_year in cy.index else pd.Series({"cleared": 0, "open": 0})
        return results_json(self.validation.metrics, self.test_year, self.train_years, self.capacity_k,
                            self.best_model, self.selection_year, self.selection, self.score_year,
                            self.warnings, row, self.counties, self.quarantined_rows, self.notes,
                            self.data_sha256, lang)

    @staticmethod
    def finite(v: Any, metric: str, model: str, year: int | None) -> float:
        """``v`` as a float; a metric that is not a finite number raises :class:`RiskModelError`."""
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


# -- the whole province, out of core ------------------------------------------------------------
#: Booster rows sampled for the province (of the years before the calibration year) and
#: calibration-year rows: docs/methods.md §6 shows the AUC they cost against the full fit.
PROVINCE_SAMPLE_ROWS = 300_000
PROVINCE_CALIBRATION_ROWS = 100_000


def _province_fit(con: Any, glob: str, years: list[int], models: dict, cols: list[str], kw: dict) -> tuple:
    from evalkit.risk import large

    return large.fit_models(con, glob, years, models, cols, **kw)


def _province_choice(con: Any, glob: str, models: dict, train_years: list[int], h: int, cols: list[str],
                     kw: dict, k: int, notes: list[Note]) -> tuple[str, int | None, pd.DataFrame | None]:
    """:func:`run_monitoring`'s honest choice on the province store: recall@k on the last training
    year, the candidates fitted on the years before it; a model that cannot be fitted there is left out."""
    from evalkit.risk import large

    fallback = "logit" if "logit" in models else next(m for m in models if m != "rule")
    sel = train_years[-1]
    sel_train = [y for y in train_years if y + h <= sel]
    if len(train_years) < 2 or not sel_train:
        notes.append(Note("note_risk_fallback_few_years", {"n": len(train_years), "first": train_years[0],
                                                           "last": train_years[-1], "model": _model_note(fallback)}))
        return fallback, None, None
    fitted, info = {}, {}
    for name, m in models.items():  # one model may need more years than the window has
        try:
            f1, i1 = _province_fit(con, glob, sel_train, {name: m}, cols, kw)
        except RiskModelError as e:
            notes.append(Note("note_risk_not_candidate", {"model": _model_note(name), "first": sel_train[0],
                                                          "last": sel_train[-1], "year": sel, "error": str(e)}))
            continue
        fitted.update(f1)
        info.update(i1)
    vr = large.evaluate(fitted, large.year_rows(con, glob, sel), cols, info, sel_train, sel, k=k, detail=False)
    rec = vr.metrics.set_index("model")["recall_at_k"].drop(index="rule", errors="ignore")
    if rec.notna().any():
        return str(rec.idxmax()), int(sel), vr.metrics
    notes.append(Note("note_risk_fallback_no_returner", {"year": sel, "model": _model_note(fallback)}))
    return fallback, None, None


def _province_list(con: Any, st: Any, model: Any, cols: list[str], policy: Policy, threads: int
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Warnings of every exited household in the last panel year and the masked village watch list."""
    from evalkit.risk import large

    cur = large.year_rows(con, st.features_glob, st.last_year, labelled=False)
    cur["score"] = model.predict_proba(cur[cols])[:, 1]
    warnings = risk.early_warning(cur, policy)
    listed = warnings.loc[warnings["level"].isin(["red", "yellow"]), "household_id"]
    hh = cur[["household_id", "county_code", "village_code", "household_size"]]
    return warnings, risk.watchlist(warnings, hh, None, heads=st.masked_heads(listed, threads))


def results_json(metrics: pd.DataFrame, test_year: int, train_years: Sequence[int], k: int, best: str,
                 sel_year: int | None, selection: pd.DataFrame | None, score_year: int, warnings: pd.DataFrame,
                 closure_row: pd.Series, counties: list[str] | None, quarantined: dict[str, int],
                 notes: list[Note], sha: str, lang: str) -> dict:
    """``results.json`` of a risk run (in memory or province): see :meth:`MonitoringRun.results`."""
    out: dict = {"test_year": int(test_year), "capacity_k": int(k), "train_years": [int(y) for y in train_years],
                 "best_model": best, "selection_year": None if sel_year is None else int(sel_year),
                 "score_year": int(score_year), "models": []}
    for name, r in metrics.set_index("model").iterrows():  # one row per model
        vals = {key: MonitoringRun.finite(r[col], key, str(name), test_year) for key, col in _METRICS.items()}
        out["rule_baseline" if name == "rule" else name] = vals
        if name != "rule":
            out["models"].append(name)
    if selection is not None:
        out["selection_recall_at_k"] = {str(n): MonitoringRun.finite(v, "recall_at_k", str(n), sel_year)
                                        for n, v in selection.set_index("model")["recall_at_k"].items()}
    out["red_households"] = int((warnings["level"] == "red").sum())
    out["closed_cases"], out["open_cases"] = int(closure_row["cleared"]), int(closure_row["open"])
    out["counties"] = counties if counties is not None else "all"
    out["quarantined_rows"] = {t: int(n) for t, n in quarantined.items()}
    out["notes"] = render_notes(notes, lang)
    out["data_sha256"] = sha
    out["evalkit_version"] = __version__
    return out


def _red_share(warnings: pd.DataFrame) -> pd.DataFrame:
    out = (warnings.assign(red=warnings["level"].eq("red"))
           .groupby("county_code").agg(households=("red", "size"), red=("red", "sum")).reset_index())
    out["red_share"] = out["red"] / out["households"]
    return out


def run_province_risk(data_dir: str | Path, output_dir: str | Path, *, policy: Policy,
                      counties: Sequence[str] | None = None, seed: int = 0, lang: str = "zh", workers: int = 2,
                      sample_rows: int | None = PROVINCE_SAMPLE_ROWS,
                      calibration_rows: int | None = PROVINCE_CALIBRATION_ROWS, capacity_k: int = 5,
                      threads: int = 2) -> dict:
    """The risk models on a whole province, out of core: :func:`run_monitoring` at province scale.

    Features and labels are built county by county into a Parquet store
    (:func:`evalkit.risk.store.build_store`, ``workers`` processes); the models are fitted from it
    with DuckDB (:mod:`evalkit.risk.large`): the logit on cells (sufficient statistics, lossless),
    boosting on a stratified sample of ``sample_rows`` booster rows and ``calibration_rows``
    rows of the held-out calibration year (None: every row), the vulnerability model on every
    row. The model is chosen on the selection year, reported on the test year and refitted on
    every labelled year to score the exited households of the last panel year — as in
    :func:`run_monitoring`. The input is the partitioned Parquet layout (``panel/<county>.parquet``
    ...); it is read as it is, not validated (run ``evalkit validate`` on it first).

    Writes into ``output_dir``: ``results.json`` (the keys of :meth:`MonitoringRun.results`, with
    ``data_sha256`` of the whole dataset), ``red_share_by_county.csv`` (what
    :func:`evalkit.workflows.province.collect_risk_shares` reads), ``metrics.csv``,
    ``metrics_by_county.csv``, ``capture_curve.csv``, ``calibration.csv``, ``logit_effects.csv``,
    ``warnings.parquet``, ``watchlist.parquet`` (masked), ``store_summary.csv`` and the store itself
    under ``store/``.

    Returns
    -------
    dict
        ``timings`` (seconds per stage and ``total_s``), ``paths``, ``metrics`` (per model on the
        test year), ``best_model``, ``test_year``, ``n_rows`` and ``fits`` (what each model was fitted on).
    """
    from evalkit.data import dataset_fingerprint
    from evalkit.risk import large, store

    check_lang(lang)
    t_all = time.perf_counter()
    timings: dict[str, float] = {}
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    sha = dataset_fingerprint(data_dir, DATA_TABLES)
    timings["fingerprint_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    st = store.build_store(data_dir, out / "store", policy, counties, workers=workers, seed=seed)
    timings["store_s"] = time.perf_counter() - t0
    con = large.connect(threads=threads)
    try:
        r = _province_stages(con, st, policy, seed, {"sample_rows": sample_rows, "calibration_rows": calibration_rows},
                             capacity_k, timings)
    finally:
        con.close()
    t0 = time.perf_counter()
    vr = r["vr"]
    closed = st.closure.loc[st.last_year] if st.last_year in st.closure.index else pd.Series({"cleared": 0, "open": 0})
    res = results_json(vr.metrics, vr.test_year, vr.train_years, capacity_k, r["best"], r["sel_year"],
                       r["sel_metrics"], st.last_year, r["warnings"], closed,
                       list(st.counties) if counties is not None else None, {}, r["notes"], sha, lang)
    paths = {**_write_province(out, res, r["vr"], r["vr"].models, r["warnings"], r["watch"], st.summary),
             "store": st.path}
    timings["outputs_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - t_all
    return {"timings": timings, "paths": {k: str(v) for k, v in paths.items()},
            "metrics": {n: res[n] for n in res["models"]} | {"rule": res["rule_baseline"]},
            "best_model": r["best"], "test_year": r["vr"].test_year, "selection_year": r["sel_year"],
            "n_rows": {"panel": int(st.summary["panel_rows"].sum()), "store": int(st.summary["store_rows"].sum()),
                       "labelled": int(st.summary["labelled"].sum()), "counties": len(st.counties),
                       "score_year_households": len(r["warnings"])},
            "fits": {"validation": r["info"], "final": r["final_info"]}}


def _province_stages(con: Any, st: Any, policy: Policy, seed: int, kw: dict, k: int, timings: dict) -> dict:
    """Selection, validation and the final list of :func:`run_province_risk` (timed into ``timings``)."""
    from evalkit.risk import large

    glob = st.features_glob
    cols = large.input_columns(large.store_columns(con, glob))
    _, _, h = risk.label_definition(policy)
    years = [int(y) for y in large.labelled_years(con, glob)["year"]]
    if not years:
        raise RiskModelError(f"{st.path}: no labelled household-year of an exited household")
    test_year = years[-1]
    train_years = [y for y in years if y + h <= test_year]
    models = large.province_models(seed=seed, n_threads=1)
    notes: list[Note] = []
    n_missing = int(st.summary["income_missing"].sum())
    if n_missing:
        notes.append(Note("note_risk_income_missing", {"n": n_missing}))
    t0 = time.perf_counter()
    best, sel_year, sel_metrics = _province_choice(con, glob, models, train_years, h, cols, kw, k, notes)
    timings["selection_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    fitted, info = _province_fit(con, glob, train_years, models, cols, kw)
    vr = large.evaluate(fitted, large.year_rows(con, glob, test_year), cols, info, train_years, test_year, k=k)
    timings["validation_s"] = time.perf_counter() - t0
    no_pos = vr.by_county.loc[vr.by_county["n_positives"] == 0, "county_code"].drop_duplicates().astype(str)
    notes += [Note("note_risk_county_no_returner", {"county": cc, "year": test_year}) for cc in no_pos]
    t0 = time.perf_counter()
    final, final_info = _province_fit(con, glob, years, {best: models[best]}, cols, kw)
    warnings, watch = _province_list(con, st, final[best], cols, policy, int(kw.get("threads", 2)))
    timings["final_s"] = time.perf_counter() - t0
    return {"vr": vr, "info": info, "best": best, "sel_year": sel_year, "sel_metrics": sel_metrics,
            "warnings": warnings, "watch": watch, "notes": notes, "final_info": final_info}


def _write_province(out: Path, res: dict, vr: Any, fitted: dict, warnings: pd.DataFrame, watch: pd.DataFrame,
                    summary: pd.DataFrame) -> dict[str, Path]:
    """The files of :func:`run_province_risk` (tables as UTF-8 CSV with BOM, lists as Parquet)."""
    paths = {"results": write_json(res, out / "results.json")}
    tables = {"red_share": (_red_share(warnings), "red_share_by_county.csv"),
              "metrics": (vr.metrics, "metrics.csv"), "by_county": (vr.by_county, "metrics_by_county.csv"),
              "curve": (vr.curve, "capture_curve.csv"), "calibration": (vr.calibration, "calibration.csv"),
              "store_summary": (summary, "store_summary.csv")}
    if "logit" in fitted:
        tables["effects"] = (fitted["logit"].effects().reset_index(), "logit_effects.csv")
    for key, (df, name) in tables.items():  # loop over files
        df.to_csv(out / name, index=False, encoding="utf-8-sig")
        paths[key] = out / name
    for key, df in (("warnings", warnings), ("watchlist", watch)):
        paths[key] = out / f"{key}.parquet"
        df.assign(**{c: df[c].astype(str) for c in ("level", "warning_level") if c in df.columns}).to_parquet(
            paths[key], index=False)
    return paths
