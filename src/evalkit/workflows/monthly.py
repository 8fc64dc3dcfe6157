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
from dataclasses import dataclass
from pathlib import Path

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
           "run_quarterly", "write_quarterly_outputs", "read_review_ledger", "review_ledger", "check_only"]


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
