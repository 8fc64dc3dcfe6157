"""The risk models on a whole province: out-of-time validation over the county store with DuckDB.

The store (:mod:`evalkit.risk.store`) holds the features and labels of every exited household,
one Parquet file per county. Each model is fitted the cheapest way that leaves it (nearly)
unchanged — docs/methods.md §6 gives the measured differences:

* **logit** — on sufficient statistics: DuckDB collapses the training rows into cells of
  identical (county, village, features) with counts n and positives k, and
  :class:`~evalkit.risk.models.cells.CellLogitModel` fits the cells. Lossless: the estimates and
  village-clustered SEs are those of the row-level fit. ``income_grid`` optionally rounds
  ``log_income_ratio`` to a grid first (fewer cells, a small approximation).
* **boosting** — on a stratified sample: the booster sees a proportional sample of the years
  before the calibration year, stratified by county × year × label (every stratum keeps the
  same share, so no weights are needed), and is calibrated on a county-stratified sample of
  the held-out calibration year, drawn without regard to the label.
* **vulnerability** — on every training row (three least-squares passes; only its columns are read).
* **rule** — nothing to fit.

Sampling uses the store's ``u`` column (drawn per county from the run's seed), so a run is
reproducible whatever the order in which counties were processed.
"""
from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from evalkit.errors import RiskModelError
from evalkit.risk.labels import LABEL_COLUMNS
from evalkit.risk.metrics import calibration_table, capture_curve, metric_row, metrics_by_county, stability
from evalkit.risk.models import BoostingModel, PolicyRuleModel, RiskModel, VulnerabilityModel
from evalkit.risk.models.cells import CellLogitModel
from evalkit.risk.panel import KEYS
from evalkit.risk.validation import ValidationResult

__all__ = ["STORE_ONLY", "connect", "store_columns", "input_columns", "labelled_years", "year_rows", "logit_cells",
           "fit_logit", "sample_fractions", "fit_boosting", "fit_vulnerability", "fit_models", "evaluate",
           "province_models"]

#: Store columns that are neither features nor labels (the sampling draw).
STORE_ONLY = frozenset({"u"})
#: Rows a model may use: labelled, with a known income (a missing income leaves features undefined).
_USABLE = "label IS NOT NULL AND log_income_ratio IS NOT NULL"


def connect(threads: int = 2, memory_limit: str = "4GB") -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with bounded threads and memory (it spills to disk beyond)."""
    con = duckdb.connect()
    con.execute(f"SET threads = {int(threads)}")
    con.execute(f"SET memory_limit = '{memory_limit}'")
    con.execute("SET preserve_insertion_order = false")
    return con


def _src(glob: str) -> str:
    return "read_parquet('" + str(glob).replace("'", "''") + "')"


def _in(years: Iterable[int]) -> str:
    ys = sorted({int(y) for y in years})
    if not ys:
        raise RiskModelError("no years given")
    return "(" + ", ".join(str(y) for y in ys) + ")"


def _frame(con: duckdb.DuckDBPyConnection, sql: str) -> pd.DataFrame:
    return con.sql(sql).to_arrow_table().to_pandas()


def store_columns(con: duckdb.DuckDBPyConnection, glob: str) -> list[str]:
    """The store's columns, in order."""
    return [r[0] for r in con.sql(f"DESCRIBE SELECT * FROM {_src(glob)}").fetchall()]


def input_columns(columns: Sequence[str]) -> list[str]:
    """Columns a model may be given: the store's minus labels and the sampling draw.

    The same list as ``features.columns`` of the in-memory path (ids and lines are there too;
    each model selects its own inputs from them).
    """
    return [c for c in columns if c not in LABEL_COLUMNS and c not in STORE_ONLY]


def labelled_years(con: duckdb.DuckDBPyConnection, glob: str) -> pd.DataFrame:
    """Labelled rows, positives and usable rows per year t."""
    return _frame(con, f"SELECT year, count(*) AS n, sum(label)::BIGINT AS positives, "
                       f"count(log_income_ratio) AS usable FROM {_src(glob)} WHERE label IS NOT NULL "
                       "GROUP BY year ORDER BY year")


def year_rows(con: duckdb.DuckDBPyConnection, glob: str, year: int, labelled: bool = True,
              columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Every store row of ``year`` (labelled and usable ones only with ``labelled``), in household order."""
    cols = "* EXCLUDE (u)" if columns is None else ", ".join(f'"{c}"' for c in columns)
    cond = _USABLE if labelled else "log_income_ratio IS NOT NULL"
    df = _frame(con, f"SELECT {cols} FROM {_src(glob)} WHERE year = {int(year)} AND {cond} "
                     "ORDER BY county_code, household_id")
    if "label" in df.columns and labelled:
        df["label"] = df["label"].astype(np.int8)
    return df


def logit_cells(con: duckdb.DuckDBPyConnection, glob: str, train_years: Iterable[int], features: Sequence[str],
                cluster: str = "village_code", county_col: str = "county_code",
                income_grid: float | None = None) -> pd.DataFrame:
    """Training rows collapsed into cells: ``county_col, cluster``, the features, ``n`` and ``k``.

    With ``income_grid`` the log income ratio is rounded to multiples of it before collapsing.
    """
    sel = []
    for f in features:
        expr = f'"{f}"::DOUBLE'
        if f == "log_income_ratio" and income_grid:
            expr = f"round({expr} / {float(income_grid)!r}) * {float(income_grid)!r}"
        sel.append(f'{expr} AS "{f}"')
    return _frame(con, f"SELECT {county_col}, {cluster}, {', '.join(sel)}, count(*)::DOUBLE AS n, "
                       f"sum(label)::DOUBLE AS k FROM {_src(glob)} WHERE {_USABLE} AND year IN {_in(train_years)} "
                       f"GROUP BY ALL ORDER BY {county_col}, {cluster}")


def fit_logit(con: duckdb.DuckDBPyConnection, glob: str, train_years: Iterable[int], model: CellLogitModel,
              income_grid: float | None = None) -> tuple[CellLogitModel, dict[str, Any]]:
    """Fit ``model`` (a clone) on the cells of the training years; returns it and the cell counts."""
    m = model.__class__(**model.get_params())
    cols = list(m.features or m.default_features)
    cells = logit_cells(con, glob, train_years, cols, m.cluster, m.county_col, income_grid)
    m.fit_cells(cells, cols)
    return m, {"rows": int(m.n_obs_), "cells": int(m.n_cells_), "clusters": int(m.n_clusters_),
               "income_grid": income_grid}


def fit_vulnerability(con: duckdb.DuckDBPyConnection, glob: str, train_years: Iterable[int],
                      model: VulnerabilityModel) -> tuple[VulnerabilityModel, dict[str, Any]]:
    """Fit the panel form of ``model`` (a clone) on every usable training row (its columns only)."""
    m = model.__class__(**model.get_params())
    cols = list(m.features or m.default_features)
    d = _frame(con, f"SELECT {', '.join(chr(34) + c + chr(34) for c in cols)}, label, outcome FROM {_src(glob)} "
                    f"WHERE {_USABLE} AND year IN {_in(train_years)} ORDER BY county_code, household_id, year")
    m.fit(d[cols], d["label"].to_numpy(dtype=np.int64), outcome=d["outcome"].to_numpy(dtype=float))
    return m, {"rows": len(d)}


def _sample_sql(glob: str, years: list[int], frac: str) -> str:
    """Rows of ``years`` whose draw ``u`` is below ``frac`` (an SQL expression of the stratum)."""
    return f"SELECT * EXCLUDE (u) FROM {_src(glob)} WHERE {_USABLE} AND year IN {_in(years)} AND u < {frac}"


def _count(con: duckdb.DuckDBPyConnection, glob: str, years: list[int]) -> tuple[int, int]:
    """Usable rows and positives of ``years``."""
    r = con.sql(f"SELECT count(*), coalesce(sum(label), 0) FROM {_src(glob)} WHERE {_USABLE} "
                f"AND year IN {_in(years)}").fetchall()[0]
    return int(r[0]), int(r[1])


def sample_fractions(n: int, positives: int, sample_rows: int | None) -> tuple[float, float]:
    """Sampling fractions of positives and negatives for a booster sample of ``sample_rows`` rows.

    Positives are kept whole up to half the sample, negatives fill the rest (case-control); with
    more rows allowed than there are, everything is kept.
    """
    if sample_rows is None or sample_rows >= n:
        return 1.0, 1.0
    neg = n - positives
    fp = min(1.0, 0.5 * sample_rows / max(positives, 1))
    fn = min(1.0, (sample_rows - fp * positives) / max(neg, 1))
    return fp, fn


def fit_boosting(con: duckdb.DuckDBPyConnection, glob: str, train_years: Iterable[int], model: BoostingModel,
                 columns: Sequence[str], sample_rows: int | None = 300_000, calibration_rows: int | None = 100_000
                 ) -> tuple[BoostingModel, dict[str, Any]]:
    """Fit ``model`` (a clone) on a stratified sample; ``None`` sizes use every row.

    A row of the booster's years (all training years but the last ``calibration_years``) is kept
    when its draw ``u`` is below its label's rate (:func:`sample_fractions`: every positive up to
    half the sample); a row of the calibration years when ``u`` is below one common rate, so the
    calibrator sees the label's true frequency and undoes the booster's shifted base rate. ``u``
    is uniform and independent of everything else, so within every county × year × label stratum
    the sample is a Bernoulli sample at that rate (sizes proportional in expectation), read by a
    filter DuckDB pushes into the Parquet scan.
    """
    m = model.__class__(**model.get_params())
    ty = sorted({int(y) for y in train_years})
    k = int(m.calibration_years)
    if len(ty) <= k:
        raise RiskModelError(f"BoostingModel needs more than {k} training year(s); got {ty}")
    boost_y, cal_y = ty[:-k], ty[-k:]
    (nb, pb), (nc, _) = _count(con, glob, boost_y), _count(con, glob, cal_y)
    fp, fn = sample_fractions(nb, pb, sample_rows)
    fc = 1.0 if calibration_rows is None else min(1.0, calibration_rows / max(nc, 1))
    by_label = f"CASE WHEN label = 1 THEN {fp!r} ELSE {fn!r} END"
    sql = (f"{_sample_sql(glob, boost_y, by_label)} UNION ALL {_sample_sql(glob, cal_y, repr(fc))} "
           "ORDER BY county_code, household_id, year")
    d = _frame(con, sql)
    m.fit(d[list(columns)], d["label"].to_numpy(dtype=np.int64))
    cal = d["year"].isin(cal_y).to_numpy()
    return m, {"rows": nb + nc, "booster_rows": int((~cal).sum()), "booster_of": nb, "positive_fraction": fp,
               "negative_fraction": fn, "calibration_rows": int(cal.sum()), "calibration_of": nc,
               "calibration_fraction": fc}


def province_models(seed: int = 0, n_threads: int | None = 2) -> dict[str, RiskModel]:
    """The four models of :func:`evalkit.risk.default_models`, the logit in its cell form."""
    return {"rule": PolicyRuleModel(), "logit": CellLogitModel(county_effects=True),
            "boosting": BoostingModel(random_state=seed, n_threads=n_threads), "vulnerability": VulnerabilityModel()}


def fit_models(con: duckdb.DuckDBPyConnection, glob: str, train_years: Iterable[int], models: dict[str, Any],
               columns: Sequence[str], *, sample_rows: int | None = 300_000, calibration_rows: int | None = 100_000,
               income_grid: float | None = None) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Fit every model on the training years the way the module docstring says.

    Returns the fitted models and, per model, what it was fitted on and its ``fit_seconds``.
    """
    fitted, info = {}, {}
    for name, mdl in models.items():  # loop over models
        t0 = time.perf_counter()
        if isinstance(mdl, CellLogitModel):
            fitted[name], info[name] = fit_logit(con, glob, train_years, mdl, income_grid)
        elif isinstance(mdl, BoostingModel):
            fitted[name], info[name] = fit_boosting(con, glob, train_years, mdl, columns, sample_rows,
                                                    calibration_rows)
        elif isinstance(mdl, VulnerabilityModel):
            fitted[name], info[name] = fit_vulnerability(con, glob, train_years, mdl)
        elif isinstance(mdl, PolicyRuleModel):
            fitted[name], info[name] = mdl.__class__(**mdl.get_params()), {"rows": 0}
            fitted[name].classes_ = np.array([0, 1])  # nothing to learn
        else:
            raise RiskModelError(f"model {name!r} ({type(mdl).__name__}) has no province-scale fit")
        info[name]["fit_seconds"] = time.perf_counter() - t0
    return fitted, info


def evaluate(fitted: dict[str, Any], test: pd.DataFrame, columns: Sequence[str], info: dict[str, dict[str, Any]],
             train_years: list[int], test_year: int, k: int = 5, group: str = "village_code",
             ks: Iterable[int] = range(1, 11), detail: bool = True) -> ValidationResult:
    """Score the test rows with every fitted model and tabulate the metrics of :func:`evalkit.risk.out_of_time`.

    Without ``detail`` only the overall metrics are computed (the choice of a model needs no more);
    the per-county, calibration and capture-curve tables are then empty.
    """
    Xte = test[list(columns)]
    scores = test[[*KEYS, "county_code", "village_code", "label"]].copy()
    scores.insert(4, "population", "exited")
    y = scores["label"].to_numpy(dtype=float)
    rows, cal = [], []
    for name, est in fitted.items():  # loop over models
        scores[name] = est.predict_proba(Xte)[:, 1]
        rows.append({"model": name, **metric_row(y, scores[name].to_numpy(), scores, name, "label", group, k), "k": k,
                     "fit_seconds": info.get(name, {}).get("fit_seconds", np.nan)})
        if detail:
            cal.append(calibration_table(y, scores[name].to_numpy()).assign(model=name))
    if not detail:
        empty = pd.DataFrame()
        return ValidationResult(scores=scores, metrics=pd.DataFrame(rows).assign(
            test_year=test_year, train_start=train_years[0], train_end=train_years[-1]), curve=empty,
            by_county=empty, stability=empty, calibration=empty, models=fitted, train_years=list(train_years),
            test_year=test_year)
    names = list(fitted)
    rule = next(n for n, m in fitted.items() if isinstance(m, PolicyRuleModel))
    by_c = metrics_by_county(scores, names, group=group, k=k)
    return ValidationResult(
        scores=scores, metrics=pd.DataFrame(rows).assign(test_year=test_year, train_start=train_years[0],
                                                         train_end=train_years[-1]),
        curve=capture_curve(scores, names, "label", group, ks, baseline=rule).assign(test_year=test_year),
        by_county=by_c.assign(test_year=test_year), stability=stability(by_c).assign(test_year=test_year),
        calibration=pd.concat(cal, ignore_index=True).assign(test_year=test_year), models=fitted,
        train_years=list(train_years), test_year=test_year)

