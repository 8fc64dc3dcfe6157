"""Reading and checking one month of department files (部门数据) before anything is stored.

A month is a folder ``<data>/departments/YYYY-MM/`` with one file per department table of the
data dictionary (``dept_*``): CSV (GBK as exchanged, or UTF-8) or Parquet, Chinese or English
headers. :func:`read_month` maps the headers, and collects every problem — unknown or missing
columns, a record dated outside the month, a duplicate record, a malformed ID number (not 15 or
18 characters of digits; a wrong check character is *not* malformed, linkage handles it) — with
file, row, column and reason. Any problem and :class:`DepartmentInputError` is raised with the
whole report: the import writes nothing.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from evalkit import dictionary
from evalkit.errors import InputError
from evalkit.privacy import Masker

__all__ = ["DEPARTMENT_TABLES", "DepartmentInputError", "MonthFiles", "month_dir", "read_month", "check_month"]

#: Department tables of the data dictionary.
DEPARTMENT_TABLES = tuple(t for t in dictionary.tables() if t.startswith("dept_"))
_PROBLEM_COLUMNS = ["file", "row", "column", "reason"]


class DepartmentInputError(InputError):
    """A month's department files that cannot be imported; ``problems`` lists every finding."""

    def __init__(self, message: str, problems: pd.DataFrame) -> None:
        super().__init__(message)
        self.problems = problems


@dataclass
class MonthFiles:
    """The records of one month per table (canonical columns, text), and each file's SHA-256."""

    month: str
    tables: dict[str, pd.DataFrame]
    sha256: dict[str, str]

    @property
    def content_sha256(self) -> str:
        """One hash of the month's content: file names and their hashes, sorted."""
        h = hashlib.sha256()
        for name in sorted(self.sha256):
            h.update(f"{name}:{self.sha256[name]}\n".encode())
        return h.hexdigest()


def check_month(month: str) -> str:
    """``month`` if it is 'YYYY-MM'; else :class:`InputError`."""
    if not re.fullmatch(r"20[0-9]{2}-(0[1-9]|1[0-2])", str(month)):
        raise InputError(f"month {month!r} is not YYYY-MM")
    return str(month)


def month_dir(data: str | Path, month: str) -> Path:
    """The folder of ``month``: ``data/departments/YYYY-MM`` or ``data/YYYY-MM`` or ``data`` itself."""
    data = Path(data)
    for d in (data / "departments" / month, data / month):
        if d.is_dir():
            return d
    if data.is_dir() and any(data.glob("dept_*")):
        return data
    raise InputError(f"no department files for {month} under {data}")


def _read(path: Path) -> pd.DataFrame:
    if path.suffix.lower() == ".parquet":
        return pd.read_parquet(path).astype("string")
    for enc in ("utf-8-sig", "gbk"):
        try:
            return pd.read_csv(path, dtype="string", encoding=enc, keep_default_na=False, na_values=[""])
        except UnicodeDecodeError:
            continue
    raise InputError(f"{path}: neither UTF-8 nor GBK text")


def _problems(file: str, rows: np.ndarray, column: str, reason: str) -> pd.DataFrame:
    return pd.DataFrame({"file": file, "row": rows + 2, "column": column, "reason": reason})  # +2: header, 1-based


def _check_table(name: str, file: str, raw: pd.DataFrame, month: str) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    """Canonical columns of one file and its problems."""
    spec = dictionary.table(name)
    hmap = dictionary.header_map(name)
    found = {c: hmap.get(dictionary.normalize_header(c)) for c in raw.columns}
    probs = [_problems(file, np.array([-1]), str(c), "unknown column") for c, k in found.items() if k is None]
    df = raw.rename(columns={c: k for c, k in found.items() if k is not None})
    missing = [c.name for c in spec.columns if c.name not in df.columns]
    probs += [_problems(file, np.array([-1]), c, "missing column") for c in missing]
    if probs:
        return df, probs
    idn = df["id_number"].str.strip()
    bad_id = idn.notna() & ~idn.str.fullmatch(r"[0-9]{15}|[0-9]{17}[0-9Xx]").fillna(False)
    probs.append(_problems(file, np.flatnonzero(bad_id.to_numpy()), "id_number", "malformed ID number"))
    when = pd.to_datetime(df["event_date"], errors="coerce", format="%Y-%m-%d")
    bad_date = when.isna().to_numpy()
    probs.append(_problems(file, np.flatnonzero(bad_date), "event_date", "not a date YYYY-MM-DD"))
    wrong = ~bad_date & (when.dt.strftime("%Y-%m") != month).to_numpy()
    probs.append(_problems(file, np.flatnonzero(wrong), "event_date", f"outside the month {month}"))
    dup = df["record_id"].duplicated(keep="first").to_numpy()
    probs.append(_problems(file, np.flatnonzero(dup), "record_id", "duplicate record"))
    blank = df["record_id"].isna().to_numpy()
    probs.append(_problems(file, np.flatnonzero(blank), "record_id", "missing record number"))
    return df[spec.names], probs


def read_month(data: str | Path, month: str) -> MonthFiles:
    """Read and check every department file of ``month``.

    Raises
    ------
    DepartmentInputError
        Any problem (file, row, column, reason in ``problems``; the message names the first ones,
        personal data masked).
    """
    month = check_month(month)
    d = month_dir(data, month)
    tables, shas, probs = {}, {}, []
    for path in sorted(d.iterdir()):
        if path.name.startswith((".", "~$")) or path.suffix.lower() not in (".csv", ".parquet"):
            continue
        name = path.stem
        if name not in DEPARTMENT_TABLES:
            probs.append(_problems(path.name, np.array([-1]), "-", "not a department table"))
            continue
        df, p = _check_table(name, path.name, _read(path), month)
        probs += p
        tables[name] = df.assign(record_id=df["record_id"].str.strip())
        shas[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
    problems = pd.concat(probs, ignore_index=True) if probs else pd.DataFrame(columns=_PROBLEM_COLUMNS)
    problems = problems.astype({"row": "int64"}) if len(problems) else problems
    if len(problems):
        first = "; ".join(f"{r.file} row {r.row} {r.column}: {r.reason}"
                          for r in problems.head(5).itertuples())
        raise DepartmentInputError(Masker().text(f"{len(problems)} problem(s) in {d}: {first}") or "", problems)
    if not tables:
        raise InputError(f"no department files for {month} in {d}")
    return MonthFiles(month, tables, shas)
