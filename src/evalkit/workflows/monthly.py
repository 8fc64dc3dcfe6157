"""The monthly monitoring cycle as single calls: import + check, the quarterly report, the review.

``monthly_check.ipynb`` calls :func:`run_monthly` and writes each county's ledger with
:func:`write_monthly_outputs`; ``quarterly_report.ipynb`` calls :func:`run_quarterly`; ``evalkit
monitor review`` calls :func:`review_ledger`. On the synthetic province a missing month of
department data is generated first (:func:`ensure_departments`), like the demo data itself.

The pseudonymization key defaults to a file beside the case store (``<store>.key``), never inside
an output folder: :func:`write_monthly_outputs` refuses an output folder that holds it.
"""
from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from evalkit.config import Policy
from evalkit.errors import InputError, ParameterError
from evalkit.monitoring import store
from evalkit.monitoring.check import MonthlyCheck, QuarterSummary, monthly_check, quarter_months, quarterly_summary
from evalkit.monitoring.cycle import ImportResult, import_month
from evalkit.monitoring.intake import check_month
from evalkit.monitoring.review import LEDGER_COLUMNS, ReviewResult, apply_review
from evalkit.outputs import write_json, write_xlsx
from evalkit.report.monthly import (
    closure_table,
    ledger_header_map,
    quarter_table,
    reasons_table,
    write_check_ledger,
)
from evalkit.text import label

__all__ = ["MonthlyRun", "default_key_path", "ensure_departments", "run_monthly", "write_monthly_outputs",
           "run_quarterly", "write_quarterly_outputs", "read_review_ledger", "review_ledger", "check_only",
           "RiskComparison", "RISK_FEATURES", "monthly_risk_features", "compare_risk_with_rule", "village_points",
           "risk_comparison_or_none", "quarter_months"]


@dataclass
class MonthlyRun:
    """One month of the cycle: what the import did and the check."""

    month: str
    imported: ImportResult
    check: MonthlyCheck
    key_path: Path


def default_key_path(db: str | Path) -> Path:
    """The pseudonymization key beside the store: ``<store>.key``."""
    p = Path(db)
    return p.with_name(p.name + ".key")


def ensure_departments(data_dir: str | Path, months: list[str], policy: Policy) -> None:
    """Generate the synthetic department files of ``months`` that are missing (synthetic datasets only)."""
    from evalkit.synth.departments import write_departments  # the generator only when data is missing

    d = Path(data_dir)
    missing = [m for m in months if not (d / "departments" / m).is_dir()]
    if not missing:
        return
    man = d / "manifest.json"
    if not man.exists():
        raise InputError(f"no department files for {', '.join(missing)} under {d}")
    write_departments(d, missing, int(json.loads(man.read_text(encoding="utf-8"))["seed"]), policy)


def run_monthly(data_dir: str | Path, month: str, db: str | Path, policy: Policy,
                key_path: str | Path | None = None, generate_missing: bool = True) -> MonthlyRun:
    """Import ``month`` into the store (idempotent) and check it.

    Parameters
    ----------
    data_dir : path
        Dataset directory with ``departments/YYYY-MM/``.
    month : str
        'YYYY-MM'.
    db : path
        The case store (DuckDB file).
    policy : Policy
    key_path : path, optional
        Pseudonymization key (default :func:`default_key_path`).
    generate_missing : bool
        Generate the month's synthetic department files when they are missing.
    """
    month = check_month(month)
    key = Path(key_path) if key_path else default_key_path(db)
    if generate_missing:
        ensure_departments(data_dir, [month], policy)
    res = import_month(db, data_dir, month, key, policy)
    with store.connect_read(db) as con:
        chk = monthly_check(con, month, policy)
    return MonthlyRun(month, res, chk, key)


def check_only(db: str | Path, month: str, policy: Policy) -> MonthlyCheck:
    """The check of an imported month (read-only)."""
    with store.connect_read(db) as con:
        if not len(store.imported(con, "month", check_month(month))):
            raise InputError(f"month {month} has not been imported into {db}")
        return monthly_check(con, month, policy)


def write_monthly_outputs(check: MonthlyCheck, out: str | Path, lang: str = "zh",
                          key_path: str | Path | None = None) -> list[Path]:
    """One ledger per county (``<county>/monthly_check_<month>.xlsx``) and ``results.json`` (counts)."""
    out = Path(out)
    if key_path is not None and Path(key_path).resolve().is_relative_to(out.resolve()):
        raise ParameterError(f"output folder {out} would hold the pseudonymization key: choose another")
    files = []
    counties = sorted(set(check.red_list["county_code"]) | set(check.suspicions["county_code"])
                      | set(check.missed_poor["county_code"]) | set(check.new_cases["county_code"]))
    for c in counties:
        files.append(write_check_ledger(check, out / c / f"monthly_check_{check.month}.xlsx", c, lang))
    counts = check.counts()
    # results.json: what `evalkit batch` / `verify` read and compare (no paths, no timestamps)
    files.append(write_json({"month": check.month, "counts": counts.to_dict(orient="records")}, out / "results.json"))
    return files


def run_quarterly(data_dir: str | Path, quarter: str, db: str | Path, policy: Policy,
                  key_path: str | Path | None = None) -> QuarterSummary:
    """Import the quarter's months not yet in the store (in order), then summarize the quarter."""
    for m in quarter_months(quarter):
        run_monthly(data_dir, m, db, policy, key_path)
    with store.connect_read(db) as con:
        return quarterly_summary(con, quarter)


def write_quarterly_outputs(summary: QuarterSummary, out: str | Path, lang: str = "zh") -> list[Path]:
    """``quarterly_report_<quarter>.xlsx`` (per county, reasons, closures) and ``results.json`` (its numbers)."""
    out = Path(out)
    sheets = {label("mon_cases", lang): quarter_table(summary.by_county, lang),
              label("mon_risks", lang): reasons_table(summary.reasons, lang).reset_index(),
              label("mon_closed_cases", lang): closure_table(summary.closure_months, lang)}
    x = write_xlsx(sheets, out / f"quarterly_report_{summary.quarter}.xlsx")
    j = write_json({"quarter": summary.quarter, "by_county": summary.by_county.to_dict(orient="records"),
                    "reasons": summary.reasons.to_dict(orient="records"),
                    "closure_months": summary.closure_months.to_dict(orient="records")},
                   out / "results.json")
    return [x, j]


def read_review_ledger(path: str | Path) -> tuple[pd.DataFrame, str]:
    """The review sheet(s) of a returned ledger as :data:`LEDGER_COLUMNS`, and the file's SHA-256."""
    p = Path(path)
    try:
        book = pd.read_excel(p, sheet_name=None, dtype=object, engine="openpyxl")
    except Exception as e:  # noqa: BLE001 - openpyxl/zipfile raise many types for a bad file
        raise InputError(f"{p.name}: cannot be read as an Excel workbook ({type(e).__name__})") from None
    parts = []
    for df in book.values():
        hmap = ledger_header_map(list(df.columns))
        if "case_id" in hmap.values() and "decision" in hmap.values():
            parts.append(df.rename(columns=hmap).reindex(columns=list(LEDGER_COLUMNS)))
    if not parts:
        raise InputError(f"{p.name}: no sheet with a case number and a decision column")
    sha = hashlib.sha256(p.read_bytes()).hexdigest()
    return pd.concat(parts, ignore_index=True), sha


def review_ledger(ledger: str | Path, db: str | Path, month: str | None = None) -> ReviewResult:
    """Apply a returned ledger; ``month`` dates the transitions (default: the last imported month)."""
    df, sha = read_review_ledger(ledger)
    if month is None:
        with store.connect_read(db) as con:
            done = store.imported(con, "month")
        if not len(done):
            raise InputError(f"{db} holds no imported month")
        month = str(done["month"].max())
    return apply_review(db, df, Path(ledger).name, sha, check_month(month))


# -- monthly risk scoring against the rule ------------------------------------------------------

_EVENT_RISKS = ("illness", "disaster", "schooling", "housing", "water", "rigid_expenditure")
_GUARANTEE_EVENTS = ("schooling", "housing", "water")
#: Features of the logit known at the end of a month: last year's panel row and the month-to-date
#: department events. A failing guarantee (dropout, dangerous house, water outage) is an event by
#: the label's own definition and separates the classes: such households rank first instead.
RISK_FEATURES = ("log_income_ratio", "exited", "shock_illness", "shock_disaster", "shock_job_loss", "assistance",
                 "severe", "illness", "disaster", "rigid_expenditure", "asset")


@dataclass
class RiskComparison:
    """Capture at the monitoring capacity, model vs rule, on held-out counties and months.

    ``table``: month, method (rule / logit), flagged, positives, captured, capture, precision;
    the capacity of a month is the number of households the rule flags by then.
    """

    year: int
    train_month: str
    train_counties: list[str]
    test_counties: list[str]
    table: pd.DataFrame
    converged: bool = True


def _store_events(db: str | Path, months: list[str], policy: Policy) -> pd.DataFrame:
    """Linked events of ``months`` from the store: household_id, month, risk (assets as 'asset'), severe."""
    from evalkit.monitoring.cases import ASSETS, MonitoringPolicy, risk_events

    with store.connect_read(db) as con:
        con.register("_months", pd.DataFrame({"month": months}))
        m = con.execute("SELECT month, table_name AS \"table\", household_id, amount, kind FROM dept_matches "
                        "WHERE household_id IS NOT NULL AND month IN (SELECT month FROM _months)").df()
    ev = risk_events(m, MonitoringPolicy.from_policy(policy))
    ev = ev.assign(month=m.loc[ev.index, "month"].to_numpy())
    a = m[m["table"].isin(list(ASSETS))]
    assets = pd.DataFrame({"household_id": a["household_id"], "risk": "asset", "severe": False, "month": a["month"]})
    return pd.concat([ev, assets], ignore_index=True)


def monthly_risk_features(last_year: pd.DataFrame, events: pd.DataFrame, month: str, mline: float) -> pd.DataFrame:
    """Features of each household known at the end of ``month`` (:data:`RISK_FEATURES`).

    ``last_year``: the households' panel rows of the year before (household_id, county_code,
    village_code, register_status, income_per_capita, shock_illness, shock_disaster, shock_job_loss,
    assistance); ``events``: :func:`_store_events` rows. Only events dated up to ``month`` enter.
    """
    e = events[events["month"] <= month]
    cnt = pd.crosstab(e["household_id"], e["risk"]).reindex(columns=[*_EVENT_RISKS, "asset"], fill_value=0)
    f = last_year.set_index("household_id").join(cnt).join(e.groupby("household_id")["severe"].any())
    f[[*_EVENT_RISKS, "asset"]] = f[[*_EVENT_RISKS, "asset"]].fillna(0).clip(upper=3)
    f["severe"] = f["severe"].fillna(False).astype(float)
    f["log_income_ratio"] = np.log(np.maximum(f["income_per_capita"].astype(float), 1.0) / mline)
    f["exited"] = f["register_status"].isin(["exited", "monitored"]).astype(float)
    for c in ("shock_illness", "shock_disaster", "shock_job_loss", "assistance"):
        f[c] = f[c].astype(float)
    return f


def _risk_inputs(data_dir: Path, year: int, policy: Policy) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Last year's panel rows of the households at risk (not poor) and their labels (event in ``year``)."""
    from evalkit.risk import make_labels

    panel = pd.read_parquet(data_dir / "panel", filters=[("year", ">=", year - 1), ("year", "<=", year)])
    hh = pd.read_parquet(data_dir / "households")
    lab = make_labels(panel, hh, policy, population="both")
    lab = lab[lab["year"] == year - 1][["household_id", "label"]]
    cols = ["household_id", "county_code", "village_code", "register_status", "income_per_capita",
            "shock_illness", "shock_disaster", "shock_job_loss", "assistance"]
    last = panel[(panel["year"] == year - 1) & (panel["register_status"] != "poor")][cols]
    last = last[last["income_per_capita"].notna()].astype({"household_id": str, "county_code": str})
    return last.merge(lab.astype({"household_id": str}), on="household_id"), lab


def _flag_rows(month: str, method: str, flagged: np.ndarray, y: np.ndarray) -> dict:
    cap = int((flagged & y).sum())
    return {"month": month, "method": method, "flagged": int(flagged.sum()), "positives": int(y.sum()),
            "captured": cap, "capture": cap / max(int(y.sum()), 1), "precision": cap / max(int(flagged.sum()), 1)}


def compare_risk_with_rule(data_dir: str | Path, db: str | Path, year: int, policy: Policy,
                           upto: str | None = None) -> RiskComparison:
    """Score households monthly from what is known at each month and compare with the rule.

    What is known at the end of month M of ``year``: the panel of ``year - 1`` and the department
    events of the imported months up to M (the store). The rule flags the households that became
    monitoring cases by M; a logit (:class:`evalkit.risk.LogitModel`) is fitted on every other
    county at the middle imported month (label: the risk package's event in ``year``,
    :func:`evalkit.risk.make_labels`) and flags, on the *other* counties and the *later* months,
    as many households as the rule (the same monitoring capacity). ``upto``: the last month to use.

    Raises
    ------
    InputError
        Fewer than two months of ``year`` imported, or fewer than two counties.
    """
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    from evalkit.risk import LogitModel

    with store.connect_read(db) as con:
        done = store.imported(con, "month")
        cases = con.execute("SELECT household_id, opened_month FROM cases").df()
    months = sorted(m for m in done["month"].unique() if m.startswith(f"{int(year)}-") and (not upto or m <= upto))
    if len(months) < 2:
        raise InputError(f"{db}: monthly risk scoring needs two months of {year} imported ({len(months)} found)")
    last, _ = _risk_inputs(Path(data_dir), int(year), policy)
    counties = sorted(last["county_code"].unique())
    if len(counties) < 2:
        raise InputError("monthly risk scoring needs two counties (train on some, test on the others)")
    train_c, test_c = counties[::2], counties[1::2]
    events = _store_events(db, months, policy)
    mline = policy.monitoring_line(counties[0][:2], int(year))
    train_m = months[(len(months) - 1) // 2]
    f = monthly_risk_features(last, events, train_m, mline)
    tr = f[f["county_code"].isin(train_c)]
    with warnings.catch_warnings():
        # reported as ``converged`` instead: a statsmodels warning would put English in the report
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = LogitModel(features=list(RISK_FEATURES), cluster=None).fit(tr, tr["label"].to_numpy())
    rows = []
    for m in (x for x in months if x > train_m):
        te = monthly_risk_features(last, events, m, mline)
        te = te[te["county_code"].isin(test_c)]
        y = te["label"].to_numpy(dtype=bool)
        rule = te.index.isin(cases.loc[cases["opened_month"] <= m, "household_id"])
        score = model.predict_proba(te)[:, 1] + (te[list(_GUARANTEE_EVENTS)].sum(axis=1) > 0).to_numpy()
        flag = np.zeros(len(te), bool)
        flag[np.argsort(-score, kind="stable")[:int(rule.sum())]] = True
        rows += [_flag_rows(m, "rule", rule, y), _flag_rows(m, "logit", flag, y)]
    return RiskComparison(int(year), train_m, train_c, test_c, pd.DataFrame(rows),
                          bool(model.result_.mle_retvals.get("converged", True)))


def risk_comparison_or_none(data_dir: str | Path, db: str | Path, month: str, policy: Policy
                            ) -> RiskComparison | None:
    """:func:`compare_risk_with_rule` for the year of ``month`` up to it; None until two months are in."""
    with store.connect_read(db) as con:
        done = store.imported(con, "month")
    if ((done["month"] >= f"{month[:4]}-01") & (done["month"] <= month)).sum() < 2:
        return None
    return compare_risk_with_rule(data_dir, db, int(month[:4]), policy, upto=month)


def village_points(data_dir: str | Path, counties: list[str]) -> pd.DataFrame:
    """Village positions (village_code, longitude, latitude) of ``counties`` for the monthly map:
    the dataset's ``village_indicators`` coordinates when it has them, else points drawn inside each
    county's real boundary from a fixed stream (illustrative positions, like the generator's)."""
    d = Path(data_dir)
    ind = d / "village_indicators.parquet"
    if ind.exists():
        v = pd.read_parquet(ind, columns=["village_code", "longitude", "latitude"]).drop_duplicates("village_code")
        v = v[v["village_code"].astype(str).str[:6].isin(counties)]
        if len(v) and v["longitude"].notna().all():
            return v.reset_index(drop=True)
    from evalkit.synth.village_indicators import village_points as draw

    vil = pd.read_parquet(d / "villages.parquet", columns=["village_code", "county_code"])
    parts = []
    for c in counties:
        codes = np.sort(vil.loc[vil["county_code"].astype(str) == c, "village_code"].astype(str).to_numpy())
        lon, lat = draw(c, len(codes), np.random.default_rng([13_13, int(c)]))
        parts.append(pd.DataFrame({"village_code": codes, "longitude": lon, "latitude": lat}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["village_code", "longitude",
                                                                                      "latitude"])
