"""Loaders for register exports: CSV/TXT, Excel and Parquet, one file or a whole dataset directory.

Reading never asks the user anything: the encoding (UTF-8 with or without BOM, GB18030, then
charset-normalizer; UTF-16 when a BOM says so), the separator (``,`` tab ``;`` ``|``), the header
row (title rows above it are skipped) and the table (from the file, directory or sheet name, or by
the best overlap of the headers with the data dictionary) are detected, and each detection that is
not the default is reported as a notice. Every cell of a text file is read as a string so that
nothing is typed behind the validator's back; Parquet written by the generator is already typed
and is validated as it is (no round trip through strings).

Row numbers are those a person sees when opening the file: the header is row 1 and the first data
row is row 2 (title rows shift both; blank rows keep their numbers and are skipped with a notice);
Excel rows are sheet rows; Parquet rows are 1-based record numbers.

See :mod:`evalkit.schema` for the parsings applied to values and the checks.
"""
from __future__ import annotations

import csv
import hashlib
import io as _io
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import dictionary
from .privacy import mask_frame
from .schema import TableInput, ValidationReport, _problems_frame, coerce_series, validate_tables

__all__ = [
    "EvalkitInputError", "RawTable", "InputFile", "Dataset", "read_table", "read_tables",
    "load_dataset", "write_quarantine", "default_quarantine_dir", "sha256_file", "dataset_sha256",
    "dataset_files", "dataset_fingerprint",
    "table_from_name", "decode_bytes",
]

log = logging.getLogger(__name__)

TEXT_EXTS = (".csv", ".txt", ".tsv")
EXCEL_EXTS = (".xlsx", ".xlsm")
PARQUET_EXTS = (".parquet", ".pq")
TABLE_EXTS = TEXT_EXTS + EXCEL_EXTS + PARQUET_EXTS
PARTITIONED = ("households", "members", "panel", "truth", "field_survey")
HEADER_SCAN_ROWS = 20
_SEPS = (",", "\t", ";", "|")


class EvalkitInputError(Exception):
    """Input that cannot be read at all; the message names the file and the reason."""


# ---------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------
def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class InputFile:
    """One input file: label relative to the dataset root, SHA-256, tables read from it."""

    path: str
    sha256: str
    tables: tuple[str, ...] = ()


def dataset_sha256(files: Iterable[str | Path | InputFile], root: str | Path | None = None) -> str:
    """SHA-256 over the sorted ``(relative path, file sha256)`` pairs of a dataset.

    Parameters
    ----------
    files : iterable of path or InputFile
        Paths are hashed and made relative to ``root`` (default: their common directory);
        :class:`InputFile` entries are used as they are.
    root : path, optional
    """
    items = list(files)
    paths = [Path(f) for f in items if not isinstance(f, InputFile)]
    if root is None and paths:
        root = Path(*_common_parts([p.resolve().parent for p in paths]))
    pairs = []
    for f in items:
        if isinstance(f, InputFile):
            pairs.append((f.path, f.sha256))
        else:
            p = Path(f).resolve()
            pairs.append((p.relative_to(Path(root).resolve()).as_posix(), sha256_file(p)))
    h = hashlib.sha256()
    for rel, sha in sorted(pairs):
        h.update(f"{rel}\t{sha}\n".encode())
    return h.hexdigest()


def _common_parts(dirs: Sequence[Path]) -> tuple[str, ...]:
    parts = dirs[0].parts
    for d in dirs[1:]:
        n = 0
        for a, b in zip(parts, d.parts):
            if a != b:
                break
            n += 1
        parts = parts[:n]
    return parts or ("/",)


def table_from_name(name: str) -> str | None:
    """Table whose English or Chinese name is ``name`` (normalized, case-insensitive), else None."""
    key = dictionary.normalize_header(name).lower()
    for t in dictionary.tables().values():
        if key in (t.name.lower(), dictionary.normalize_header(t.zh).lower()):
            return t.name
    return None


def decode_bytes(data: bytes, name: str = "<bytes>") -> tuple[str, str]:
    """Decode a text file: UTF-16 by BOM, then UTF-8 (BOM or not), GB18030, charset-normalizer.

    Returns
    -------
    text, encoding
    Raises
    ------
    EvalkitInputError
        When no encoding decodes the bytes.
    """
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError:
            pass
    for enc in ("utf-8-sig", "utf-8", "gb18030"):
        try:
            return data.decode(enc), enc
        except UnicodeDecodeError:
            continue
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is not None:
        return str(best), best.encoding
    raise EvalkitInputError(f"{name}: cannot decode the file (tried UTF-8, GB18030 and detection);"
                            " save it as UTF-8 CSV")


def _problem(file: str, table: str, reason: str, severity: str, *, row=None, column: str = "",
             header: str = "", rule: str = "", value: str = "") -> dict:
    return {"file": file, "table": table, "row": row, "column": column, "header": header,
            "value": value, "reason": reason, "severity": severity, "rule": rule}


# ---------------------------------------------------------------------------------------------
# Raw tables
# ---------------------------------------------------------------------------------------------
@dataclass
class RawTable:
    """Raw rows of one table from one file (or sheet), before coercion.

    Attributes
    ----------
    table : str
        Canonical table name.
    file : str
        Label used in findings (``book.xlsx[农户]`` for a sheet).
    frame : DataFrame
        Non-blank data rows, raw values, canonical column names (unknown columns keep their
        header), RangeIndex.
    rows : ndarray
        Row number in the file of each frame row.
    headers : dict
        Column -> original header.
    problems : DataFrame
        Notices, warnings and fatal findings made while reading.
    errors : DataFrame
        Row errors found while reading (``pos``, ``column``, ``reason``, ``rule``, ``severity``).
    """

    table: str
    file: str
    path: Path
    frame: pd.DataFrame
    rows: np.ndarray
    headers: dict[str, str]
    problems: pd.DataFrame
    errors: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        columns=["pos", "column", "reason", "rule", "severity"]))
    sheet: str | None = None
    encoding: str | None = None

    @property
    def fatal(self) -> bool:
        """True when the table cannot be used (e.g. a required column is missing)."""
        return bool((self.problems["severity"] == "fatal").any())

    def subset(self, keep: np.ndarray) -> "RawTable":
        """Only the rows where ``keep`` is True (findings renumbered)."""
        keep = np.asarray(keep, dtype=bool)
        newpos = np.cumsum(keep) - 1
        err = self.errors
        if len(err):
            k = keep[err["pos"].to_numpy(dtype=np.int64)]
            err = err[k].assign(pos=newpos[err["pos"].to_numpy(dtype=np.int64)[k]])
        return RawTable(self.table, self.file, self.path, self.frame[keep].reset_index(drop=True),
                        self.rows[keep], self.headers, self.problems, err, self.sheet, self.encoding)


def _cell_text(v) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return ""
    return str(v)


@dataclass(frozen=True)
class _Guess:
    row: int
    table: str | None
    score: tuple[float, int]


def _score(cells: Sequence, table: str) -> tuple[float, int]:
    hm = dictionary.header_map(table)
    found = {hm.get(dictionary.normalize_header(_cell_text(c)).lower()) for c in cells} - {None}
    req = {c.name for c in dictionary.table(table).columns if c.required}
    return len(found & req) / len(req), len(found)


def _guess(rows: Sequence[Sequence], table: str | None) -> _Guess:
    """Header row and table: the row matching most dictionary headers, then the best table."""
    cands = [table] if table else list(dictionary.tables())
    best = _Guess(0, None, (0.0, 0))
    best_matched = 0
    for i, cells in enumerate(rows[:HEADER_SCAN_ROWS]):
        scores = {t: _score(cells, t) for t in cands}
        t = max(scores, key=lambda k: scores[k])
        matched = max(s[1] for s in scores.values())
        if matched > best_matched:
            best_matched, best = matched, _Guess(i, t, scores[t])
    return best


def _blank_mask(g: pd.DataFrame) -> np.ndarray:
    """Rows whose cells are all empty or whitespace."""
    blank = np.ones(len(g), dtype=bool)
    for c in g.columns:
        idx = np.flatnonzero(blank)  # only rows still blank: shrinks fast on real data
        if len(idx) == 0:
            break
        s = g[c].iloc[idx]
        if not isinstance(s.dtype, pd.StringDtype):
            s = s.astype(object).where(s.notna(), "").astype(str)
        b = s.isna() | (s.str.strip() == "")
        blank[idx] = b.to_numpy(dtype=bool)
    return blank


def _runs(rows: np.ndarray) -> list[tuple[int, int]]:
    if len(rows) == 0:
        return []
    cut = np.flatnonzero(np.diff(rows) != 1) + 1
    return [(int(r[0]), int(r[-1])) for r in np.split(rows, cut)]


def _build(grid: pd.DataFrame, row_numbers: np.ndarray, *, table: str, file: str, path: Path,
           header_cells: Sequence | None, problems: list[dict], sheet: str | None = None,
           encoding: str | None = None, errors: pd.DataFrame | None = None) -> RawTable:
    """Map headers, drop blank rows and check required columns.

    ``header_cells`` None means the grid already has its headers as column names (Parquet).
    """
    spec = dictionary.table(table)
    hm = dictionary.header_map(table)
    headers_in = list(grid.columns) if header_cells is None else [_cell_text(h) for h in header_cells]
    grid = grid.copy()
    grid.columns = range(grid.shape[1])
    blank = _blank_mask(grid) if header_cells is not None else grid.isna().all(axis=1).to_numpy()
    for a, b in _runs(row_numbers[blank]):
        problems.append(_problem(file, table, "blank row skipped" if a == b else
                                 f"blank rows {a}–{b} skipped ({b - a + 1} rows)", "notice",
                                 row=a, rule="blank_row"))
    names: list[str] = []
    headers: dict[str, str] = {}
    drop: list[int] = []
    for i, h in enumerate(headers_in):
        col = grid[i]
        canon = hm.get(dictionary.normalize_header(h).lower()) if h.strip() else None
        if not h.strip():
            if _blank_mask(col.to_frame()).all():
                drop.append(i)  # trailing or spacer column without header or data
                names.append(f"_empty_{i}")
                continue
            name = f"column_{i + 1}"
            problems.append(_problem(file, table, f"column {i + 1} has no header; kept as {name}",
                                     "notice", column=name, rule="unknown_column"))
        elif canon is not None and canon not in headers:
            name = canon
        elif canon is not None:
            name = h
            problems.append(_problem(
                file, table, f"second column for {canon} (first: '{headers[canon]}'); the first is"
                f" used and this one is kept as '{h}'", "warning", column=canon, header=h,
                rule="duplicate_column"))
        else:
            name = h
            problems.append(_problem(file, table, "unknown column kept as text (not in the data"
                                     f" dictionary for {table})", "notice", column=h, header=h,
                                     rule="unknown_column"))
        while name in names:
            name += "_"
        names.append(name)
        headers[name] = h
    grid.columns = names
    grid = grid.drop(columns=[names[i] for i in drop])
    missing = [c for c in spec.columns if c.required and c.name not in grid.columns]
    if missing:
        cols = ", ".join(f"{c.name} ({c.zh})" for c in missing)
        problems.append(_problem(
            file, table, f"{file}: required column(s) missing: {cols}; the {table} table"
            f" ({spec.zh}) in this file cannot be used", "fatal",
            column=", ".join(c.name for c in missing), header=", ".join(c.zh for c in missing),
            rule="missing_column"))
    for c in spec.columns if not missing else ():
        if not c.required and c.name not in grid.columns:
            problems.append(_problem(file, table, f"optional column {c.name} ({c.zh}) absent; left"
                                     " empty", "notice", column=c.name, rule="absent_column"))
    keep = ~blank
    err = errors if errors is not None else None
    frame = grid[keep].reset_index(drop=True)
    if err is not None and len(err):
        newpos = np.cumsum(keep) - 1
        err = err.assign(pos=newpos[err["pos"].to_numpy(dtype=np.int64)])
    rt = RawTable(table, file, path, frame, row_numbers[keep], headers,
                  _problems_frame(problems), sheet=sheet, encoding=encoding)
    if err is not None and len(err):
        rt.errors = err
    return rt


def _title_msg(n: int) -> str:
    return "row 1 above the header skipped" if n == 1 else f"rows 1–{n} above the header skipped"


def _no_table(file: str) -> EvalkitInputError:
    return EvalkitInputError(
        f"{file}: no recognizable table (no header row matches the data dictionary; expected e.g."
        " 户编号/household_id, 县代码/county_code)")


def _split_lines(text: str, n: int) -> list[str]:
    return re.split(r"\r\n|\r|\n", text[: 1 << 16])[:n]


def _read_text(path: Path, table: str | None, label: str) -> RawTable:
    data = path.read_bytes()
    text, enc = decode_bytes(data, label)
    problems: list[dict] = []
    preview = _split_lines(text, HEADER_SCAN_ROWS + 1)
    seps = ("\t",) + tuple(s for s in _SEPS if s != "\t") if path.suffix.lower() == ".tsv" else _SEPS
    best: tuple[tuple, str, _Guess] | None = None
    for sep in seps:
        rows = list(csv.reader(preview, delimiter=sep))
        g = _guess(rows, table)
        rank = (g.score[1], g.score[0])
        if best is None or rank > best[0]:
            best = (rank, sep, g)
    _, sep, g = best
    if table is None and (g.table is None or g.score[0] < 0.5):
        raise _no_table(label)
    if g.table is None:
        g = _Guess(0, table, (0.0, 0))
    t = g.table
    if enc not in ("utf-8-sig", "utf-8"):
        problems.append(_problem(label, t, f"file decoded as {enc}", "notice", rule="encoding"))
    if sep != ",":
        problems.append(_problem(label, t, f"separator {sep!r} detected", "notice", rule="separator"))
    if g.row > 0:
        problems.append(_problem(label, t, _title_msg(g.row), "notice", row=1, rule="title_rows"))
    errors = None
    try:
        # pandas parses UTF-8 bytes fastest; other encodings were decoded once already.
        buf = data if enc in ("utf-8", "utf-8-sig") else text.encode("utf-8")
        grid = pd.read_csv(_io.BytesIO(buf), sep=sep, header=None, skiprows=g.row, dtype=str,
                           keep_default_na=False, skip_blank_lines=False, engine="c",
                           encoding="utf-8-sig")
    except pd.errors.EmptyDataError:
        raise EvalkitInputError(f"{label}: the file is empty") from None
    except pd.errors.ParserError:
        grid, errors = _read_ragged(text, sep, g.row, label)
    header = grid.iloc[0].tolist()
    data = grid.iloc[1:].reset_index(drop=True)
    rownum = np.arange(len(data), dtype=np.int64) + g.row + 2
    if errors is not None:
        errors = errors.assign(pos=errors["pos"] - 1)
    return _build(data, rownum, table=t, file=label, path=path, header_cells=header,
                  problems=problems, encoding=enc, errors=errors)


def _read_ragged(text: str, sep: str, skip: int, label: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Slow path for rows with more fields than the header: keep them, flag them."""
    lines = _io.StringIO(text)
    for _ in range(skip):
        lines.readline()
    rows = list(csv.reader(lines, delimiter=sep))
    width = len(rows[0]) if rows else 0
    maxw = max((len(r) for r in rows), default=0)
    pad = [r + [""] * (maxw - len(r)) for r in rows]
    grid = pd.DataFrame(pad, dtype="str")
    if maxw > width:
        grid.iloc[0, width:] = [f"_extra_{i + 1}" for i in range(maxw - width)]
    over = [i for i, r in enumerate(rows) if len(r) > width and any(x.strip() for x in r[width:])]
    errors = pd.DataFrame({"pos": np.array(over, dtype=np.int64), "column": "",
                           "reason": [f"row has {len(rows[i])} fields but the header has {width}"
                                      for i in over],
                           "rule": "too_many_fields", "severity": "error"})
    return grid, errors


def _excel_rows(ws) -> list[tuple]:
    ws.reset_dimensions()  # exporters often write a wrong <dimension>, which truncates reading
    return [tuple(r) for r in ws.iter_rows(min_row=1, min_col=1, values_only=True)]


def _read_excel(path: Path, hint: str | None, sheet: str | int | None, label: str, *,
                force: bool = False) -> list[RawTable]:
    """Read the recognized sheets of a workbook.

    A sheet's table comes from ``hint`` when ``force``; else from the sheet name, else from its
    headers; else ``hint`` (the file name's table) when the workbook has a single sheet.
    """
    import openpyxl

    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as e:  # openpyxl raises many types for broken files
        raise EvalkitInputError(f"{label}: cannot open as an Excel workbook ({e})") from None
    out: list[RawTable] = []
    skipped: list[str] = []
    try:
        sheets = wb.worksheets
        if sheet is not None:
            try:
                sheets = [wb.worksheets[sheet]] if isinstance(sheet, int) else [wb[sheet]]
            except (KeyError, IndexError):
                raise EvalkitInputError(f"{label}: no sheet {sheet!r} (sheets: "
                                        f"{', '.join(wb.sheetnames)})") from None
        for ws in sheets:
            rows = _excel_rows(ws)
            if not any(any(_cell_text(c).strip() for c in r) for r in rows):
                continue
            t = hint if force else table_from_name(ws.title)
            g = _guess(rows, t)
            if t is None:
                if g.table is not None and g.score[0] >= 0.5:
                    t = g.table
                elif hint is not None and len(sheets) == 1:
                    t, g = hint, _guess(rows, hint)
                else:
                    skipped.append(ws.title)
                    continue
            width = max((len(r) for r in rows), default=0)
            grid = pd.DataFrame([tuple(r) + (None,) * (width - len(r)) for r in rows[g.row:]],
                                dtype=object)
            flabel = f"{label}[{ws.title}]"
            problems: list[dict] = []
            if g.row > 0:
                problems.append(_problem(flabel, t, _title_msg(g.row), "notice", row=1,
                                         rule="title_rows"))
            header = grid.iloc[0].tolist()
            data = grid.iloc[1:].reset_index(drop=True)
            rownum = np.arange(len(data), dtype=np.int64) + g.row + 2
            out.append(_build(data, rownum, table=t, file=flabel, path=path, header_cells=header,
                              problems=problems, sheet=ws.title))
    finally:
        wb.close()
    if not out:
        raise _no_table(label + (f" (sheets: {', '.join(skipped)})" if skipped else ""))
    if skipped:
        out[0].problems = pd.concat([out[0].problems, _problems_frame([_problem(
            label, "", f"sheet {s!r} skipped: no recognizable table", "notice",
            rule="sheet_skipped") for s in skipped])], ignore_index=True)
    return out


def _read_parquet(path: Path, table: str | None, label: str) -> RawTable:
    try:
        df = pd.read_parquet(path)
    except Exception as e:
        raise EvalkitInputError(f"{label}: cannot read as Parquet ({e})") from None
    df = df.reset_index(drop=True)
    t = table
    if t is None:
        g = _guess([list(df.columns)], None)
        if g.table is None or g.score[0] < 0.5:
            raise _no_table(label)
        t = g.table
    return _build(df, np.arange(len(df), dtype=np.int64) + 1, table=t, file=label, path=path,
                  header_cells=None, problems=[])


def read_tables(path: str | Path, table: str | None = None, *, label: str | None = None) -> list[RawTable]:
    """Read every table of a file: one for CSV/TXT/Parquet, one per recognized sheet for Excel.

    Parameters
    ----------
    path : path
    table : str, optional
        Force the table (else from the file name, sheet name or headers).
    label : str, optional
        Name of the file in findings (default: the file name).

    Raises
    ------
    EvalkitInputError
        File not found, unknown format, cannot decode, or no recognizable table.
    """
    path = Path(path)
    label = label or path.name
    if not path.is_file():
        raise EvalkitInputError(f"{label}: file not found ({path})")
    if table is not None:
        dictionary.table(table)
    ext = path.suffix.lower()
    hint = table or table_from_name(path.stem)
    if ext in TEXT_EXTS:
        return [_read_text(path, hint, label)]
    if ext in EXCEL_EXTS:
        return _read_excel(path, hint, None, label, force=table is not None)
    if ext in PARQUET_EXTS:
        return [_read_parquet(path, hint, label)]
    if ext == ".xls":
        raise EvalkitInputError(f"{label}: old Excel format .xls is not supported; save it as .xlsx or CSV")
    raise EvalkitInputError(f"{label}: unknown format {ext or '(no extension)'!r}; expected one of"
                            f" {', '.join(TABLE_EXTS)}")


def read_table(path: str | Path, table: str | None = None, sheet: str | int | None = None, *,
               label: str | None = None) -> RawTable:
    """Read one table from a CSV/TXT, Excel or Parquet file.

    Parameters
    ----------
    path : path
    table : str, optional
        Canonical table name; detected when None.
    sheet : str or int, optional
        Excel sheet; default: the sheet of ``table`` or the first recognized sheet.

    Returns
    -------
    RawTable
        Raw values under canonical column names; a missing required column shows as a 'fatal'
        finding in ``problems``.
    """
    path = Path(path)
    label = label or path.name
    if path.suffix.lower() in EXCEL_EXTS and path.is_file():
        if table is not None:
            dictionary.table(table)
        if sheet is not None:
            return _read_excel(path, table, sheet, label, force=table is not None)[0]
        rts = _read_excel(path, table_from_name(path.stem), None, label)
        if table is None:
            return rts[0]
        for r in rts:
            if r.table == table:
                return r
        raise EvalkitInputError(f"{label}: no sheet holds the {table} table"
                                f" ({dictionary.table(table).zh})")
    return read_tables(path, table, label=label)[0]


# ---------------------------------------------------------------------------------------------
# Dataset
# ---------------------------------------------------------------------------------------------
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
        """:func:`dataset_sha256` of the input files."""
        return dataset_sha256(self.files)

    def __repr__(self) -> str:
        tabs = ", ".join(f"{t}={len(df)}" for t, df in self.tables.items())
        return f"Dataset({self.root!r}: {tabs}; exit code {self.report.exit_code()})"


def _discover(root: Path, wanted: set[str] | None, counties: set[str] | None
              ) -> list[tuple[Path, str | None, str, bool]]:
    """(file, table hint, label, already filtered by county) of a dataset directory."""
    found = []
    for entry in sorted(root.iterdir()):
        if entry.name.startswith((".", "~$")):
            continue
        if entry.is_dir():
            t = table_from_name(entry.name)
            if t is None or (wanted and t not in wanted):
                continue
            for f in sorted(entry.iterdir()):
                if f.suffix.lower() not in TABLE_EXTS or f.name.startswith((".", "~$")):
                    continue
                by_stem = counties is not None and re.fullmatch(r"[0-9]{6}", f.stem) is not None
                if by_stem and f.stem not in counties:
                    continue
                found.append((f, t, f.relative_to(root).as_posix(), by_stem))
        elif entry.suffix.lower() in TABLE_EXTS and not _is_output(entry):
            t = table_from_name(entry.stem)
            if wanted and t is not None and t not in wanted:
                continue
            found.append((entry, t, entry.name, False))
    return found


def dataset_files(path: str | Path, tables: Iterable[str] | None = None,
                  counties: Iterable[str] | None = None) -> list[Path]:
    """The data files a :func:`load_dataset` of ``tables`` and ``counties`` would read (not parsed)."""
    root = Path(path)
    if not root.is_dir():
        return [root]
    wanted = set(tables) if tables else None
    cs = {str(c) for c in counties} if counties else None
    return [f for f, _, _, _ in _discover(root, wanted, cs)]


def dataset_fingerprint(path: str | Path, tables: Iterable[str] | None = None,
                        counties: Iterable[str] | None = None) -> str:
    """The :attr:`Dataset.sha256` that :func:`load_dataset` would give, from the files alone.

    Hashes the files a load of ``tables`` (and ``counties``) would read, without parsing them, so
    a report can check cheaply that another run used the same data.
    """
    root = Path(path)
    if not root.is_dir():
        return dataset_sha256([InputFile(root.name, sha256_file(root), ())])
    files = dataset_files(root, tables, counties)
    return dataset_sha256([InputFile(f.relative_to(root).as_posix(), sha256_file(f), ()) for f in files])


def _is_output(p: Path) -> bool:
    """Files written by :func:`write_quarantine` are never read back as input."""
    return p.name.endswith(".quarantine.csv") or p.name == "validation_report.csv"


def _county_filter(rt: RawTable, counties: set[str]) -> RawTable:
    for col in ("county_code", "village_code", "household_id", "person_id"):
        if col in rt.frame.columns:
            key = coerce_series(rt.frame[col], "string", col)[0].str.slice(0, 6)
            keep = (key.isna() | key.isin(counties)).to_numpy(dtype=bool)
            return rt if keep.all() else rt.subset(keep)
    return rt


def load_dataset(path: str | Path, tables: Iterable[str] | None = None,
                 counties: Iterable[str] | None = None, validate: bool = True) -> Dataset:
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

    Returns
    -------
    Dataset

    Raises
    ------
    EvalkitInputError
        The path does not exist, or holds no recognizable table; a single file that cannot be
        read. Unreadable files inside a directory are reported as 'fatal' findings instead (exit
        code 2) so that every problem is listed at once.
    """
    root = Path(path)
    if not root.exists():
        raise EvalkitInputError(f"{path}: not found")
    wanted = {dictionary.table(t).name for t in tables} if tables is not None else None
    cset = {str(c).strip() for c in counties} if counties is not None else None
    problems: list[pd.DataFrame] = []
    raws: list[RawTable] = []
    files: list[InputFile] = []
    if root.is_file():
        sources = [(root, None, root.name, False)]
        base = root.parent
    else:
        sources = _discover(root, wanted, cset)
        base = root
        if not sources:
            raise EvalkitInputError(f"{path}: no table files found (expected e.g. households.csv,"
                                    " 农户.xlsx, households/<county>.parquet)")
    for f, hint, label, filtered in sources:
        try:
            got = read_tables(f, hint, label=label)
        except EvalkitInputError as e:
            if root.is_file():
                raise
            # A file named after a table must be readable; a stray file is only skipped.
            sev = "fatal" if hint is not None else "warning"
            problems.append(_problems_frame([_problem(label, hint or "", str(e), sev,
                                                      rule="unreadable_file")]))
            files.append(InputFile(label, sha256_file(f), ()))
            continue
        kept = []
        for rt in got:
            problems.append(rt.problems)
            if wanted and rt.table not in wanted:
                continue
            if cset is not None and not filtered:
                rt = _county_filter(rt, cset)
            kept.append(rt)
        raws.extend(kept)
        files.append(InputFile(label, sha256_file(f), tuple(dict.fromkeys(r.table for r in kept))))
    loaded = {r.table for r in raws}
    for t in sorted(wanted or ()):
        if t not in loaded:
            problems.append(_problems_frame([_problem(
                str(path), t, f"table {t} ({dictionary.table(t).zh}) not found in {path}", "fatal",
                rule="missing_table")]))
    if not raws and not any((p["severity"] == "fatal").any() for p in problems):
        raise EvalkitInputError(f"{path}: no recognizable table")
    inputs: dict[str, TableInput] = {}
    for t in dict.fromkeys(r.table for r in raws):
        parts = [r for r in raws if r.table == t]
        usable = [r for r in parts if not r.fatal]
        frames, fl, rows, errs, off = [], [], [], [], 0
        for r in usable:
            frames.append(r.frame)
            fl.append(np.full(len(r.frame), r.file, dtype=object))
            rows.append(r.rows)
            if len(r.errors):
                errs.append(r.errors.assign(pos=r.errors["pos"].to_numpy(dtype=np.int64) + off))
            off += len(r.frame)
        if not usable:
            continue
        frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        inputs[t] = TableInput(
            t, frame, np.concatenate(fl), np.concatenate(rows),
            {r.file: r.headers for r in usable},
            pd.concat(errs, ignore_index=True) if errs else None,
            complete=len(usable) == len(parts))
    allp = [p for p in problems if len(p)]
    res = validate_tables(inputs, validate=validate,
                          problems=pd.concat(allp, ignore_index=True) if allp else None)
    return Dataset(res.tables, res.quarantine, res.report, files, str(base))


def default_quarantine_dir(path: str | Path) -> Path:
    """Where quarantined rows go by default: ``quarantine/`` inside the dataset directory, or
    beside a single input file. Loaders skip that folder."""
    p = Path(path)
    return (p if p.is_dir() else p.parent) / "quarantine"


def write_quarantine(ds: Dataset, out_dir: str | Path, *, mask: bool = True) -> list[Path]:
    """Write ``<table>.quarantine.csv`` for tables with quarantined rows, and ``validation_report.csv``.

    Parameters
    ----------
    ds : Dataset
    out_dir : path
        Created if needed. Files are UTF-8 with BOM (Excel opens them with Chinese intact).
    mask : bool
        Mask names and ID numbers in the quarantined rows (default). The rows are found again in
        the input through ``_file`` and ``_row``.

    Returns
    -------
    list of Path
        The files written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for t, q in ds.quarantine.items():
        if len(q) == 0:
            continue
        p = out / f"{t}.quarantine.csv"
        (mask_frame(q) if mask else q).to_csv(p, index=False, encoding="utf-8-sig")
        written.append(p)
    written.append(ds.report.to_csv(out / "validation_report.csv"))
    return written

