"""A loaded, validated dataset: :func:`load_dataset` reads every table file, validates the tables
together and keeps the valid rows apart from the quarantined ones."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from evalkit import dictionary
from evalkit.data.coercion import coerce_series
from evalkit.data.discovery import InputFile, Source, dataset_sha256, discover, unread_files
from evalkit.data.problems import problem, problems_frame
from evalkit.data.raw import RawTable
from evalkit.data.readers import read_tables
from evalkit.data.validation import TableInput, validate_tables
from evalkit.data.validation_report import ValidationReport
from evalkit.errors import InputError
from evalkit.provenance import sha256_file

__all__ = ["Dataset", "load_dataset", "METADATA_EXTS"]

#: Companion files of a dataset (the generator's manifest, notes): named as notices, not warnings.
METADATA_EXTS = (".json", ".md")


@dataclass
class Dataset:
    """A loaded, validated dataset.

    Attributes
    ----------
    tables : dict
        Table -> typed valid rows (canonical column order, then unknown columns; index reset).
    quarantine : dict
        Table -> invalid rows with their original raw values and ``_file``, ``_row``, ``_reasons``.
    report : ValidationReport
    files : list of InputFile
    root : str
    """

    tables: dict[str, pd.DataFrame]
    quarantine: dict[str, pd.DataFrame]
    report: ValidationReport
    files: list[InputFile]
    root: str = ""

    def __getitem__(self, name: str) -> pd.DataFrame:
        if name in self.tables:
            return self.tables[name]
        dictionary.table(name)
        fatal = self.report.problems[(self.report.problems["table"] == name)
                                     & (self.report.problems["severity"] == "fatal")]
        why = "; ".join(fatal["reason"]) if len(fatal) else "not present in the input"
        raise KeyError(f"table {name!r} was not loaded: {why}")

    def __contains__(self, name: object) -> bool:
        return name in self.tables

    @property
    def sha256(self) -> str:
        """:func:`~evalkit.data.discovery.dataset_sha256` of the input files."""
        return dataset_sha256(self.files)

    def __repr__(self) -> str:
        tabs = ", ".join(f"{t}={len(df)}" for t, df in self.tables.items())
        return f"Dataset({self.root!r}: {tabs}; exit code {self.report.exit_code()})"


def _county_filter(rt: RawTable, counties: set[str]) -> RawTable:
    """Rows of ``counties``, by county code or the first 6 digits of a village/household/person id."""
    for col in ("county_code", "village_code", "household_id", "person_id"):
        if col in rt.frame.columns:
            key = coerce_series(rt.frame[col], "string", col)[0].str.slice(0, 6)
            keep = (key.isna() | key.isin(counties)).to_numpy(dtype=bool)
            return rt if keep.all() else rt.subset(keep)
    return rt


def _read_sources(sources: list[Source], single: bool, wanted: set[str] | None,
                  counties: set[str] | None, year: int | None = None
                  ) -> tuple[list[RawTable], list[pd.DataFrame], list[InputFile]]:
    """Raw tables, reading findings and input files of every source."""
    problems: list[pd.DataFrame] = []
    raws: list[RawTable] = []
    files: list[InputFile] = []
    for src in sources:
        try:
            got = read_tables(src.path, src.table, label=src.label, year=year)
        except InputError as e:
            if single:
                raise
            # A file named after a table must be readable; a stray file is only skipped.
            sev = "fatal" if src.table is not None else "warning"
            problems.append(problems_frame([problem(src.label, src.table or "", str(e), sev,
                                                    rule="unreadable_file")]))
            files.append(InputFile(src.label, sha256_file(src.path), ()))
            continue
        kept = []
        for rt in got:
            if wanted and rt.table not in wanted:
                # e.g. the panel part of a register export when only households are asked for
                continue
            problems.append(rt.problems)
            if counties is not None and not src.by_county:
                rt = _county_filter(rt, counties)
            kept.append(rt)
        raws.extend(kept)
        files.append(InputFile(src.label, sha256_file(src.path),
                               tuple(dict.fromkeys(r.table for r in kept))))
    return raws, problems, files


def _table_inputs(raws: list[RawTable]) -> dict[str, TableInput]:
    """The usable raw tables gathered by table (one table may come from several files)."""
    inputs: dict[str, TableInput] = {}
    for t in dict.fromkeys(r.table for r in raws):
        parts = [r for r in raws if r.table == t]
        usable = [r for r in parts if not r.fatal]
        if not usable:
            continue
        frames, fl, rows, errs, off = [], [], [], [], 0
        for r in usable:
            frames.append(r.frame)
            fl.append(np.full(len(r.frame), r.file, dtype=object))
            rows.append(r.rows)
            if len(r.errors):
                errs.append(r.errors.assign(pos=r.errors["pos"].to_numpy(dtype=np.int64) + off))
            off += len(r.frame)
        frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        inputs[t] = TableInput(
            t, frame, np.concatenate(fl), np.concatenate(rows),
            {r.file: r.headers for r in usable},
            pd.concat(errs, ignore_index=True) if errs else None,
            complete=len(usable) == len(parts))
    return inputs


def load_dataset(path: str | Path, tables: Iterable[str] | None = None,
                 counties: Iterable[str] | None = None, validate: bool = True, *,
                 year: int | None = None) -> Dataset:
    """Load and validate a dataset directory or a single file.

    Parameters
    ----------
    path : path
        A directory as written by the generator (``counties.parquet``, ``villages.parquet``,
        ``households/<county_code>.parquet``...), a directory of CSV/XLSX files named by table
        (English or Chinese name), or one CSV/TXT/XLSX/Parquet file.
    tables : iterable of str, optional
        Only these tables.
    counties : iterable of str, optional
        Only these county codes: partition files are selected by name, other files by the rows'
        county code (or the first 6 digits of village, household or person number).
    validate : bool
        False: parse values only, skip schema, duplicate and cross-table checks.
    year : int, optional
        Year of the income columns of a national household or person list that has neither a
        年度 column nor a year in its file name (``evalkit validate --year``).

    Returns
    -------
    Dataset

    Raises
    ------
    InputError
        The path does not exist, or holds no recognizable table; a single file that cannot be
        read. Unreadable files inside a directory are reported as 'fatal' findings instead (exit
        code 2) so that every problem is listed at once.
    """
    root = Path(path)
    if not root.exists():
        raise InputError(f"{path}: not found")
    wanted = {dictionary.table(t).name for t in tables} if tables is not None else None
    cset = {str(c).strip() for c in counties} if counties is not None else None
    if root.is_file():
        sources, base = [Source(root, None, root.name, False)], root.parent
    else:
        sources, base = discover(root, wanted, cset), root
        unread = unread_files(root)
        if not sources and not unread:
            raise InputError(f"{path}: no table files found (expected e.g. households.csv,"
                             " 农户.xlsx, households/<county>.parquet)")
    raws, problems, files = _read_sources(sources, root.is_file(), wanted, cset, year)
    if not root.is_file():
        problems.append(problems_frame([
            problem(u, "", "not read: metadata (manifest, notes)", "notice", rule="file_not_read")
            if Path(u).suffix.lower() in METADATA_EXTS else
            problem(u, "", "not read: not a table file (expected CSV/TXT, Excel .xlsx/.xls, HTML"
                    " export or Parquet named by table, or a folder named by table)", "warning",
                    rule="file_not_read")
            for u in unread]))
    loaded = {r.table for r in raws}
    for t in sorted(wanted or ()):
        if t not in loaded:
            problems.append(problems_frame([problem(
                str(path), t, f"table {t} ({dictionary.table(t).zh}) not found in {path}", "fatal",
                rule="missing_table")]))
    if not raws and not any((p["severity"] == "fatal").any() for p in problems):
        raise InputError(f"{path}: no recognizable table")
    allp = [p for p in problems if len(p)]
    res = validate_tables(_table_inputs(raws), validate=validate,
                          problems=pd.concat(allp, ignore_index=True) if allp else None)
    return Dataset(res.tables, res.quarantine, res.report, files, str(base))
