"""Readers of register exports: CSV/TXT, Excel and Parquet files into :class:`RawTable` objects.

Reading never asks the user anything: the encoding (UTF-8 with or without BOM, GB18030, then
charset-normalizer; UTF-16 when a BOM says so), the separator (``,`` tab ``;`` ``|``), the header
row (title rows above it are skipped) and the table (from the file, directory or sheet name, or by
the best overlap of the headers with the data dictionary) are detected, and each detection that is
not the default is reported as a notice. Every cell of a text file is read as a string so that
nothing is typed behind the validator's back; Parquet written by the generator is already typed
and is validated as it is (no round trip through strings).
"""
from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd

from evalkit import dictionary
from evalkit.data.discovery import EXCEL_EXTS, PARQUET_EXTS, TABLE_EXTS, TEXT_EXTS, table_from_name
from evalkit.data.problems import problem, problems_frame
from evalkit.data.raw import HEADER_SCAN_ROWS, RawTable, TableGuess, build_raw_table, cell_text, guess_header
from evalkit.errors import InputError

__all__ = ["decode_bytes", "read_tables", "read_table"]

_SEPS = (",", "\t", ";", "|")


def decode_bytes(data: bytes, name: str = "<bytes>") -> tuple[str, str]:
    """Decode a text file: UTF-16 by BOM, then UTF-8 (BOM or not), GB18030, charset-normalizer.

    Returns
    -------
    text, encoding
    Raises
    ------
    InputError
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
    from charset_normalizer import from_bytes  # only for the rare file no common encoding decodes

    best = from_bytes(data).best()
    if best is not None:
        return str(best), best.encoding
    raise InputError(f"{name}: cannot decode the file (tried UTF-8, GB18030 and detection);"
                     " save it as UTF-8 CSV")


def _title_msg(n: int) -> str:
    return "row 1 above the header skipped" if n == 1 else f"rows 1–{n} above the header skipped"


def _no_table(file: str) -> InputError:
    return InputError(
        f"{file}: no recognizable table (no header row matches the data dictionary; expected e.g."
        " 户编号/household_id, 县代码/county_code)")


def _split_lines(text: str, n: int) -> list[str]:
    return re.split(r"\r\n|\r|\n", text[: 1 << 16])[:n]


def _sniff(text: str, suffix: str, table: str | None) -> tuple[str, TableGuess]:
    """Separator and header guess giving the best match with the dictionary."""
    preview = _split_lines(text, HEADER_SCAN_ROWS + 1)
    seps = ("\t",) + tuple(s for s in _SEPS if s != "\t") if suffix == ".tsv" else _SEPS
    best: tuple[tuple, str, TableGuess] | None = None
    for sep in seps:
        rows = list(csv.reader(preview, delimiter=sep))
        g = guess_header(rows, table)
        rank = (g.score[1], g.score[0])
        if best is None or rank > best[0]:
            best = (rank, sep, g)
    _, sep, g = best
    return sep, g


def _read_text(path: Path, table: str | None, label: str) -> RawTable:
    data = path.read_bytes()
    text, enc = decode_bytes(data, label)
    problems: list[dict] = []
    sep, g = _sniff(text, path.suffix.lower(), table)
    if table is None and (g.table is None or g.score[0] < 0.5):
        raise _no_table(label)
    if g.table is None:
        g = TableGuess(0, table, (0.0, 0))
    t = g.table
    if enc not in ("utf-8-sig", "utf-8"):
        problems.append(problem(label, t, f"file decoded as {enc}", "notice", rule="encoding"))
    if sep != ",":
        problems.append(problem(label, t, f"separator {sep!r} detected", "notice", rule="separator"))
    if g.row > 0:
        problems.append(problem(label, t, _title_msg(g.row), "notice", row=1, rule="title_rows"))
    errors = None
    try:
        # pandas parses UTF-8 bytes fastest; other encodings were decoded once already.
        buf = data if enc in ("utf-8", "utf-8-sig") else text.encode("utf-8")
        grid = pd.read_csv(io.BytesIO(buf), sep=sep, header=None, skiprows=g.row, dtype=str,
                           keep_default_na=False, skip_blank_lines=False, engine="c",
                           encoding="utf-8-sig")
    except pd.errors.EmptyDataError:
        raise InputError(f"{label}: the file is empty") from None
    except pd.errors.ParserError:
        grid, errors = _read_ragged(text, sep, g.row)
    header = grid.iloc[0].tolist()
    data = grid.iloc[1:].reset_index(drop=True)
    rownum = np.arange(len(data), dtype=np.int64) + g.row + 2
    if errors is not None:
        errors = errors.assign(pos=errors["pos"] - 1)
    return build_raw_table(data, rownum, table=t, file=label, path=path, header_cells=header,
                           problems=problems, encoding=enc, errors=errors)


def _read_ragged(text: str, sep: str, skip: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Slow path for rows with more fields than the header: keep them, flag them."""
    lines = io.StringIO(text)
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


def _open_workbook(path: Path, label: str):
    import openpyxl  # heavy; only needed for Excel input

    try:
        return openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as e:  # openpyxl raises many types for broken files
        raise InputError(f"{label}: cannot open as an Excel workbook ({e})") from None


def _select_sheets(wb, sheet: str | int | None, label: str) -> list:
    if sheet is None:
        return wb.worksheets
    try:
        return [wb.worksheets[sheet]] if isinstance(sheet, int) else [wb[sheet]]
    except (KeyError, IndexError):
        raise InputError(f"{label}: no sheet {sheet!r} (sheets: {', '.join(wb.sheetnames)})") from None


def _sheet_table(ws, rows: list[tuple], hint: str | None, force: bool,
                 single: bool) -> tuple[str | None, TableGuess]:
    """A sheet's table: ``hint`` when ``force``; else from the sheet name, else from its headers;
    else ``hint`` (the file name's table) when the workbook has a single sheet."""
    t = hint if force else table_from_name(ws.title)
    g = guess_header(rows, t)
    if t is None:
        if g.table is not None and g.score[0] >= 0.5:
            t = g.table
        elif hint is not None and single:
            t, g = hint, guess_header(rows, hint)
    return t, g


def _sheet_raw(ws, rows: list[tuple], t: str, g: TableGuess, path: Path, label: str) -> RawTable:
    width = max((len(r) for r in rows), default=0)
    grid = pd.DataFrame([tuple(r) + (None,) * (width - len(r)) for r in rows[g.row:]], dtype=object)
    flabel = f"{label}[{ws.title}]"
    problems: list[dict] = []
    if g.row > 0:
        problems.append(problem(flabel, t, _title_msg(g.row), "notice", row=1, rule="title_rows"))
    header = grid.iloc[0].tolist()
    data = grid.iloc[1:].reset_index(drop=True)
    rownum = np.arange(len(data), dtype=np.int64) + g.row + 2
    return build_raw_table(data, rownum, table=t, file=flabel, path=path, header_cells=header,
                           problems=problems, sheet=ws.title)


def _read_excel(path: Path, hint: str | None, sheet: str | int | None, label: str, *,
                force: bool = False) -> list[RawTable]:
    """Read the recognized sheets of a workbook (see :func:`_sheet_table`)."""
    wb = _open_workbook(path, label)
    out: list[RawTable] = []
    skipped: list[str] = []
    try:
        sheets = _select_sheets(wb, sheet, label)
        for ws in sheets:
            rows = _excel_rows(ws)
            if not any(any(cell_text(c).strip() for c in r) for r in rows):
                continue
            t, g = _sheet_table(ws, rows, hint, force, len(sheets) == 1)
            if t is None:
                skipped.append(ws.title)
                continue
            out.append(_sheet_raw(ws, rows, t, g, path, label))
    finally:
        wb.close()
    if not out:
        raise _no_table(label + (f" (sheets: {', '.join(skipped)})" if skipped else ""))
    if skipped:
        out[0].problems = pd.concat([out[0].problems, problems_frame([problem(
            label, "", f"sheet {s!r} skipped: no recognizable table", "notice",
            rule="sheet_skipped") for s in skipped])], ignore_index=True)
    return out


def _read_parquet(path: Path, table: str | None, label: str) -> RawTable:
    try:
        df = pd.read_parquet(path)
    except Exception as e:  # pyarrow raises many types for broken files
        raise InputError(f"{label}: cannot read as Parquet ({e})") from None
    df = df.reset_index(drop=True)
    t = table
    if t is None:
        g = guess_header([list(df.columns)], None)
        if g.table is None or g.score[0] < 0.5:
            raise _no_table(label)
        t = g.table
    return build_raw_table(df, np.arange(len(df), dtype=np.int64) + 1, table=t, file=label,
                           path=path, header_cells=None, problems=[])


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
    InputError
        File not found, unknown format, cannot decode, or no recognizable table.
    """
    path = Path(path)
    label = label or path.name
    if not path.is_file():
        raise InputError(f"{label}: file not found ({path})")
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
        raise InputError(f"{label}: old Excel format .xls is not supported; save it as .xlsx or CSV")
    raise InputError(f"{label}: unknown format {ext or '(no extension)'!r}; expected one of"
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
    label : str, optional
        Name of the file in findings (default: the file name).

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
        raise InputError(f"{label}: no sheet holds the {table} table ({dictionary.table(table).zh})")
    return read_tables(path, table, label=label)[0]
