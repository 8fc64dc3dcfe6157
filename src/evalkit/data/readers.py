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
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd

from evalkit import dictionary
from evalkit.data.discovery import (
    EXCEL_EXTS,
    HTML_EXTS,
    PARQUET_EXTS,
    TABLE_EXTS,
    TEXT_EXTS,
    table_from_name,
)
from evalkit.data.layouts import detect_layout, split_layout
from evalkit.data.problems import problem, problems_frame
from evalkit.data.raw import (
    HEADER_SCAN_ROWS,
    RawTable,
    TableGuess,
    build_raw_table,
    cell_text,
    combine_header,
    guess_header,
    header_cells,
)
from evalkit.errors import InputError

__all__ = ["decode_bytes", "read_tables", "read_table", "is_html", "Sheet"]

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
    first_err: UnicodeDecodeError | None = None
    for enc in ("utf-8-sig", "utf-8", "gb18030"):
        try:
            return data.decode(enc), enc
        except UnicodeDecodeError as e:
            first_err = first_err or e
            continue
    mixed = _mixed_encoding(data)
    if mixed is not None:
        raise InputError(f"{name}: {mixed}")
    from charset_normalizer import from_bytes  # only for the rare file no common encoding decodes

    best = from_bytes(data).best()
    if best is not None:
        return str(best), best.encoding
    raise InputError(f"{name}: cannot decode the file (tried UTF-8, GB18030 and detection);"
                     " save it as UTF-8 CSV")


def _mixed_encoding(data: bytes) -> str | None:
    """A file whose start is valid UTF-8 (with non-ASCII text) but which breaks later, or whose
    start is GB18030 and breaks later: the encoding changes part-way (two exports pasted)."""
    for enc, other in (("utf-8", "gb18030"), ("gb18030", "utf-8")):
        try:
            data.decode(enc)
            return None
        except UnicodeDecodeError as e:
            start = e.start
        head = data[:start]
        if head.isascii():
            continue  # nothing but ASCII before the failure: the file is simply not this encoding
        line = head.count(b"\n") + 1
        try:
            data[start - (start - head.rfind(b"\n") - 1):].decode(other)
            tail = f"; from there on it decodes as {other}"
        except UnicodeDecodeError:
            tail = ""
        return (f"the encoding changes part-way: the file reads as {enc} up to line {line}, byte"
                f" {start} (0-based offset), where decoding fails{tail}; save the whole file in one"
                " encoding (UTF-8)")
    return None


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


def _finish(data: pd.DataFrame, rownum: np.ndarray, *, table: str, file: str, path: Path,
            header: list, problems: list[dict], sheet: str | None = None, encoding: str | None = None,
            errors: pd.DataFrame | None = None, year: int | None = None) -> list[RawTable]:
    """The raw tables of a grid: a national layout split into its tables, else one table."""
    split = split_layout(data, rownum, header, file=file, path=path, problems=problems,
                         sheet=sheet, encoding=encoding, year=year, errors=errors)
    if split is not None:
        return split
    return [build_raw_table(data, rownum, table=table, file=file, path=path, header_cells=header,
                            problems=problems, sheet=sheet, encoding=encoding, errors=errors)]


def _two_row_notice(file: str, table: str, g: TableGuess, problems: list[dict]) -> None:
    if g.two_rows:
        problems.append(problem(file, table, f"two-row header: rows {g.row}–{g.row + 1} read as one"
                                " (a group row over sub-headers)", "notice", row=g.row, rule="two_row_header"))


def _read_text(path: Path, table: str | None, label: str, year: int | None = None) -> list[RawTable]:
    data = path.read_bytes()
    text, enc = decode_bytes(data, label)
    problems: list[dict] = []
    sep, g = _sniff(text, path.suffix.lower(), table)
    if table is None and (g.table is None or g.score[0] < 0.5):
        rows = list(csv.reader(_split_lines(text, HEADER_SCAN_ROWS + 1), delimiter=sep))
        if g.table is None or detect_layout(header_cells(rows, g)) is None:
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
    if g.two_rows:
        upper = list(csv.reader(_split_lines(text, g.row + 1), delimiter=sep))[g.row - 1]
        header = combine_header(upper, header)
        _two_row_notice(label, t, g, problems)
    data = grid.iloc[1:].reset_index(drop=True)
    rownum = np.arange(len(data), dtype=np.int64) + g.row + 2
    if errors is not None:
        errors = errors.assign(pos=errors["pos"] - 1)
    return _finish(data, rownum, table=t, file=label, path=path, header=header, problems=problems,
                   encoding=enc, errors=errors, year=year)


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


@dataclass
class Sheet:
    """One sheet of a workbook (or one table of an HTML export): its rows and merged ranges
    (``((first_row, first_col), (last_row, last_col))``, 0-based, inclusive)."""

    title: str
    rows: list[tuple]
    merged: list = field(default_factory=list)


def _openpyxl_sheets(path: Path, label: str) -> list[Sheet]:
    import openpyxl  # heavy; only needed for Excel input

    try:
        # a file object: openpyxl refuses a workbook by its extension (an .xlsx named .xls)
        wb = openpyxl.load_workbook(io.BytesIO(path.read_bytes()), read_only=True, data_only=True)
    except Exception as e:  # openpyxl raises many types for broken files
        raise InputError(f"{label}: cannot open as an Excel workbook ({e})") from None
    try:
        out = []
        for ws in wb.worksheets:
            ws.reset_dimensions()  # exporters often write a wrong <dimension>, which truncates reading
            out.append(Sheet(ws.title, [tuple(r) for r in ws.iter_rows(min_row=1, min_col=1, values_only=True)]))
    finally:
        wb.close()
    merged = _calamine_merged(path)
    for sh in out:
        sh.merged = merged.get(sh.title, [])
    return out


def _calamine_merged(path: Path) -> dict[str, list]:
    """Merged ranges by sheet (openpyxl's read-only mode does not give them)."""
    from python_calamine import CalamineWorkbook

    try:
        wb = CalamineWorkbook.from_filelike(io.BytesIO(path.read_bytes()))  # by content, not extension
        return {n: list(wb.get_sheet_by_name(n).merged_cell_ranges or []) for n in wb.sheet_names}
    except Exception:  # merged ranges are a help, not a requirement  # noqa: BLE001
        return {}


def _calamine_sheets(path: Path, label: str) -> list[Sheet]:
    """An old binary .xls workbook (python-calamine)."""
    from python_calamine import CalamineWorkbook

    try:
        wb = CalamineWorkbook.from_filelike(io.BytesIO(path.read_bytes()))  # by content, not extension
    except Exception as e:  # calamine raises its own error types
        raise InputError(f"{label}: cannot open as an Excel workbook (.xls or .xlsx: {e})") from None
    out = []
    for n in wb.sheet_names:
        ws = wb.get_sheet_by_name(n)
        r0, c0 = ws.start or (0, 0)
        rows = [tuple([None] * c0 + [None if v == "" else v for v in r]) for r in ws.to_python()]
        rows = [tuple()] * r0 + rows
        out.append(Sheet(n, rows, list(ws.merged_cell_ranges or [])))
    return out


class _HTMLTables(HTMLParser):
    """The tables of an HTML page as rows of cell text (rowspan/colspan repeated into each cell)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[tuple[list[list[str]], list]] = []
        self._rows: list[list[str]] | None = None
        self._spans: dict[tuple[int, int], str] = {}
        self._merged: list = []
        self._cell: list[str] | None = None
        self._span = (1, 1)
        self._r = -1

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self._rows, self._spans, self._merged, self._r = [], {}, [], -1
        elif tag == "tr" and self._rows is not None:
            self._rows.append([])
            self._r += 1
        elif tag in ("td", "th") and self._rows is not None:
            if not self._rows:
                self._rows.append([])
                self._r = 0
            self._cell = []
            self._span = (_int_attr(a.get("rowspan")), _int_attr(a.get("colspan")))
        elif tag == "br" and self._cell is not None:
            self._cell.append(" ")

    def _place(self, text: str) -> None:
        row = self._rows[self._r]
        while (self._r, len(row)) in self._spans:
            row.append(self._spans.pop((self._r, len(row))))
        c = len(row)
        rs, cs = self._span
        for dc in range(cs):
            row.append(text)
        for dr in range(1, rs):
            for dc in range(cs):
                self._spans[(self._r + dr, c + dc)] = text
        if rs > 1 or cs > 1:
            self._merged.append(((self._r, c), (self._r + rs - 1, c + cs - 1)))

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._place(re.sub(r"\s+", " ", "".join(self._cell)).strip())
            self._cell = None
        elif tag == "tr" and self._rows is not None and self._rows:
            row = self._rows[self._r]
            while (self._r, len(row)) in self._spans:
                row.append(self._spans.pop((self._r, len(row))))
        elif tag == "table" and self._rows is not None:
            self.tables.append((self._rows, self._merged))
            self._rows = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _int_attr(v: str | None) -> int:
    try:
        return max(1, int(str(v).strip()))
    except (TypeError, ValueError):
        return 1


def is_html(data: bytes) -> bool:
    """True when a file (named .xls/.xlsx by a web system) is in fact an HTML page."""
    head = data[:2048].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith((b"<", b"<!doctype")) and (b"<table" in data[:1 << 20].lower()
                                                      or b"<html" in head)


def _html_sheets(path: Path, data: bytes, label: str) -> tuple[list[Sheet], str]:
    """The tables of an HTML export (decoded by its meta charset, else detected)."""
    m = re.search(rb"charset\s*=\s*[\"']?([A-Za-z0-9_-]+)", data[:4096])
    enc = m.group(1).decode("ascii").lower() if m else None
    try:
        text = data.decode(enc) if enc else None
    except (LookupError, UnicodeDecodeError):
        text = None
    if text is None:
        text, enc = decode_bytes(data, label)
    p = _HTMLTables()
    p.feed(text)
    p.close()
    sheets = [Sheet(f"table{i + 1}", [tuple(r) for r in rows], merged)
              for i, (rows, merged) in enumerate(p.tables) if rows]
    if not sheets:
        raise InputError(f"{label}: an HTML page without a table")
    return sheets, enc


def _cell_name(r: int, c: int) -> str:
    name, c1 = "", c + 1
    while c1:
        c1, rem = divmod(c1 - 1, 26)
        name = chr(65 + rem) + name
    return f"{name}{r + 1}"


def _fill_merged(sh: Sheet, header_row: int) -> list[str]:
    """Fill vertically merged cells below the header with their top value; the ranges filled."""
    done = []
    rows = [list(r) for r in sh.rows]
    for (r0, c0), (r1, c1) in sorted(sh.merged):
        if r1 <= r0 or r0 <= header_row:
            continue
        for c in range(c0, c1 + 1):
            top = rows[r0][c] if c < len(rows[r0]) else None
            for r in range(r0 + 1, min(r1, len(rows) - 1) + 1):
                row = rows[r]
                if c >= len(row):
                    row.extend([None] * (c + 1 - len(row)))
                if not cell_text(row[c]).strip():
                    row[c] = top
        done.append(f"{_cell_name(r0, c0)}:{_cell_name(r1, c1)}")
    sh.rows = [tuple(r) for r in rows]
    return done


def _pick_sheets(sheets: list[Sheet], sheet: str | int | None, label: str) -> list[Sheet]:
    if sheet is None:
        return sheets
    try:
        return [sheets[sheet]] if isinstance(sheet, int) else [next(s for s in sheets if s.title == sheet)]
    except (StopIteration, IndexError):
        names = ", ".join(s.title for s in sheets)
        raise InputError(f"{label}: no sheet {sheet!r} (sheets: {names})") from None


def _sheet_table(sh: Sheet, hint: str | None, force: bool, single: bool) -> tuple[str | None, TableGuess]:
    """A sheet's table: ``hint`` when ``force``; else from the sheet name, else from its headers;
    else ``hint`` (the file name's table) when the workbook has a single sheet."""
    rows = sh.rows
    t = hint if force else table_from_name(sh.title)
    g = guess_header(rows, t)
    if t is None:
        if g.table is not None and (g.score[0] >= 0.5 or detect_layout(header_cells(rows, g))):
            t = g.table
        elif hint is not None and single:
            t, g = hint, guess_header(rows, hint)
    return t, g


def _sheet_raw(sh: Sheet, t: str, g: TableGuess, path: Path, label: str, kind: str,
               year: int | None) -> list[RawTable]:
    flabel = f"{label}[{sh.title}]"
    problems: list[dict] = []
    if kind != "xlsx":
        problems.append(problem(flabel, t, {"xls": "old Excel format .xls read",
                                            "html": "an HTML table saved as an Excel file: read as HTML"}[kind],
                                "notice", rule="file_format"))
    filled = _fill_merged(sh, g.row)
    if filled:
        problems.append(problem(flabel, t, "merged cells filled down with their top value: "
                                + ", ".join(filled[:20]) + (" ..." if len(filled) > 20 else ""),
                                "notice", rule="merged_cells"))
    rows = sh.rows
    width = max((len(r) for r in rows), default=0)
    grid = pd.DataFrame([tuple(r) + (None,) * (width - len(r)) for r in rows[g.row:]], dtype=object)
    if g.row > 0:
        problems.append(problem(flabel, t, _title_msg(g.row), "notice", row=1, rule="title_rows"))
    _two_row_notice(flabel, t, g, problems)
    header = header_cells([tuple(r) + (None,) * (width - len(r)) for r in rows], g)
    data = grid.iloc[1:].reset_index(drop=True)
    rownum = np.arange(len(data), dtype=np.int64) + g.row + 2
    return _finish(data, rownum, table=t, file=flabel, path=path, header=header, problems=problems,
                   sheet=sh.title, year=year)


def _read_excel(path: Path, hint: str | None, sheet: str | int | None, label: str, *,
                force: bool = False, year: int | None = None) -> list[RawTable]:
    """Read the recognized sheets of a workbook (.xlsx, old .xls, or an HTML table saved as Excel)."""
    data = path.read_bytes()
    # By content: web systems name HTML pages .xls, and .xls/.xlsx are swapped often enough.
    if is_html(data):
        sheets, _ = _html_sheets(path, data, label)
        kind = "html"
    elif data[:2] == b"PK":
        sheets, kind = _openpyxl_sheets(path, label), "xlsx"
    else:
        sheets, kind = _calamine_sheets(path, label), "xls"
    out: list[RawTable] = []
    skipped: list[str] = []
    sheets = _pick_sheets(sheets, sheet, label)
    for sh in sheets:
        if not any(any(cell_text(c).strip() for c in r) for r in sh.rows):
            continue
        t, g = _sheet_table(sh, hint, force, len(sheets) == 1)
        if t is None:
            skipped.append(sh.title)
            continue
        out.extend(_sheet_raw(sh, t, g, path, label, kind, year))
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


def read_tables(path: str | Path, table: str | None = None, *, label: str | None = None,
                year: int | None = None) -> list[RawTable]:
    """Read every table of a file: one for CSV/TXT/Parquet, one per recognized sheet for Excel.

    Parameters
    ----------
    path : path
    table : str, optional
        Force the table (else from the file name, sheet name or headers).
    label : str, optional
        Name of the file in findings (default: the file name).
    year : int, optional
        Year of the income columns of a national household or person list that has no 年度 column
        and no year in its file name (see :mod:`evalkit.data.layouts`).

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
        return _read_text(path, hint, label, year)
    if ext in EXCEL_EXTS or ext in HTML_EXTS:
        return _read_excel(path, hint, None, label, force=table is not None, year=year)
    if ext in PARQUET_EXTS:
        return [_read_parquet(path, hint, label)]
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
    if path.suffix.lower() in EXCEL_EXTS + HTML_EXTS and path.is_file():
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
