"""Writing result files: atomic renames, deterministic JSON and styled Excel workbooks.

Nothing here decides what a file says; the report layer builds the (translated, masked) tables and
this module writes them so that a killed run never leaves a complete-looking partial file.
"""
from __future__ import annotations

import json
import math
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

__all__ = ["to_jsonable", "write_json", "atomic_path", "write_xlsx", "write_csv", "neutralize_formulas",
           "file_mode", "FORMULA_START", "display_width", "excel_sheet_name"]

#: First characters that make a spreadsheet read a text cell as a formula (CSV/formula injection;
#: tab and carriage return too, as OWASP recommends).
FORMULA_START: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r")


def file_mode() -> int:
    """Permission bits of a new output file: ``0o666`` minus the process umask (as ``open`` gives).

    ``tempfile.mkstemp`` creates files ``0o600``; every output is given this mode instead, so
    run-level files and reports have the same permissions.
    """
    try:  # Linux: read the umask without changing it (os.umask is process-wide, not thread-safe)
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def neutralize_formulas(df: pd.DataFrame) -> pd.DataFrame:
    """Copy of ``df`` whose text cells starting with ``= + - @`` (or tab/CR) get a leading ``'``.

    Excel and LibreOffice then show them as text instead of evaluating them. Only text is
    touched: a negative number stored as a number stays a number.
    """
    out = df.copy()
    for c in out.columns:
        s = out[c]
        if not (s.dtype == object or isinstance(s.dtype, pd.StringDtype)):
            continue
        risky = s.map(lambda v: isinstance(v, str) and v.startswith(FORMULA_START), na_action="ignore")
        risky = risky.fillna(False).astype(bool)
        if risky.any():
            s = s.astype(object).copy()
            s[risky] = "'" + s[risky].astype(str)
            out[c] = s
    return out


def write_csv(df: pd.DataFrame, path: str | Path, **kwargs: Any) -> Path:
    """Write ``df`` as CSV (UTF-8 with BOM, so Excel shows Chinese), formulas neutralized, atomically."""
    path = Path(path)
    kwargs.setdefault("index", False)
    kwargs.setdefault("encoding", "utf-8-sig")
    with atomic_path(path) as tmp:
        neutralize_formulas(df).to_csv(tmp, **kwargs)
    return path


def to_jsonable(obj: Any) -> Any:
    """Convert numpy/pandas scalars and containers to plain JSON types; refuse NaN/inf.

    A result file never carries a silent NaN: a missing number must be ``None`` on purpose.
    Objects with a ``to_dict()`` method (the typed results) are converted through it.
    """
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        if not math.isfinite(f):
            raise ValueError("refusing to write a non-finite number (NaN/inf) into a result file")
        return f
    if obj is pd.NA or obj is None:
        return None
    if isinstance(obj, (pd.Timestamp,)):
        return obj.isoformat()
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "to_dict") and not isinstance(obj, (pd.DataFrame, pd.Series)):
        return to_jsonable(obj.to_dict())
    return obj


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only if the block succeeds.

    A run killed half-way leaves at most a ``.tmp-*`` file, never a complete-looking output; a
    failed write (disk full, permission denied) leaves the old file, if any, untouched. The file
    gets :func:`file_mode` permissions (the umask's, like any other output).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{path.name}.", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        try:
            yield tmp_path
            os.chmod(tmp_path, file_mode())
            os.replace(tmp_path, path)
        except OSError as e:
            # name the output, not our temporary (or nothing: a writer's ENOSPC carries no path)
            if e.filename is None or str(e.filename) == str(tmp_path):
                raise OSError(e.errno, e.strerror or str(e), str(path)) from e
            raise
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_json(obj: Any, path: str | Path) -> Path:
    """Write JSON deterministically (sorted keys, UTF-8, trailing newline), atomically."""
    text = json.dumps(to_jsonable(obj), ensure_ascii=False, indent=2, sort_keys=True) + "\n"
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def display_width(value: Any) -> int:
    """Width of ``value`` in character cells: a CJK or full-width character takes two."""
    t = str(value)
    return len(t) + sum(1 for ch in t if ord(ch) >= 0x2E80)


def _check_ids(sheets: dict[str, pd.DataFrame]) -> None:
    from evalkit.privacy import pii_columns

    for sname, df in sheets.items():
        unmasked = [c for c, kind in pii_columns(df.columns, df).items()
                    if kind == "id_number" and df[c].dropna().astype(str).str.contains(r"\d{9}").any()]
        if unmasked:
            raise ValueError(f"sheet {sname!r} column(s) {unmasked} hold full ID numbers: mask them first")


_BAD_SHEET_CHARS = re.compile(r"[\[\]:*?/\\]")


def excel_sheet_name(name: str, short: str | None = None) -> str:
    """A valid Excel sheet name: ``name`` without ``[]:*?/\\`` when it fits 31 characters, else
    ``short``, else ``name`` cut at the last space or bracket that fits (never in a word)."""
    n = _BAD_SHEET_CHARS.sub(" ", str(name)).strip()
    if len(n) <= 31:
        return n
    if short:
        return excel_sheet_name(short)
    cut = n[:31]
    sp = max(cut.rfind(" "), cut.rfind("·"), cut.rfind("（"), cut.rfind("("))
    return (cut[:sp] if sp > 0 else cut).strip()


def _format_sheet(ws: Any, df: pd.DataFrame, number_formats: Mapping[str, str], title: str | None) -> None:
    """Header on row 1 (bold, shaded), widths from content, frozen header, filter, print setup."""
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    head_font, fill = Font(bold=True), PatternFill("solid", fgColor="DDEBF7")
    n = len(df)
    for j, col in enumerate(df.columns, start=1):
        cell = ws.cell(row=1, column=j)
        cell.font, cell.fill = head_font, fill
        cell.alignment = Alignment(vertical="center")
        width = max([display_width(col)] + [display_width(v) for v in df[col].head(300)]) + 2
        letter = get_column_letter(j)
        ws.column_dimensions[letter].width = min(max(width, 8), 48)
        s = df[col]
        fmt = number_formats.get(str(col))
        if fmt is None and pd.api.types.is_integer_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
            fmt = "#,##0"
        elif fmt is None and pd.api.types.is_float_dtype(s.dtype):
            fmt = "#,##0.00"
        if fmt:
            for r in range(2, n + 2):
                ws.cell(row=r, column=j).number_format = fmt
    last = get_column_letter(max(len(df.columns), 1))
    ws.freeze_panes = "A2"
    ws.auto_filter.ref = f"A1:{last}{n + 1}"
    ws.print_title_rows = "1:1"
    ws.page_setup.orientation = "landscape"
    ws.page_setup.fitToWidth, ws.page_setup.fitToHeight = 1, 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    if title:
        ws.oddHeader.center.text = title.replace("&", "&&")
    ws.oddFooter.center.text = "&P / &N"


def write_xlsx(sheets: dict[str, pd.DataFrame], path: str | Path, title: str | None = None,
               number_formats: Mapping[str, str] | None = None,
               finish: Callable[[Any], None] | None = None) -> Path:
    """Write printable sheets (headers as given, already translated and masked) to Excel, atomically.

    Every sheet has its header on row 1 (bold), column widths from its content (CJK characters
    count double), the header row frozen, an autofilter, the header repeated on every printed
    page and ``title`` as the printed page header. Numbers stay numbers: integers get ``#,##0``,
    floats ``#,##0.00`` unless ``number_formats`` (header -> Excel format) says otherwise.
    ``finish(workbook)`` may add sheets, validation or formulas before the file is saved
    (:mod:`evalkit.report.ledger` does). Sheet names are made valid (:func:`excel_sheet_name`).
    Refuses a column that still holds full 18-digit ID numbers. Text cells starting with
    ``= + - @`` are written as text, never as formulas (:func:`neutralize_formulas`).
    """
    _check_ids(sheets)
    sheets = {excel_sheet_name(k): v for k, v in sheets.items()}
    path = Path(path)
    with atomic_path(path) as tmp:
        with pd.ExcelWriter(tmp, engine="openpyxl") as xw:
            for sname, out in sheets.items():
                out = neutralize_formulas(out)
                out.to_excel(xw, sheet_name=sname, index=False)
                _format_sheet(xw.sheets[sname], out, number_formats or {}, title)
            if title:
                xw.book.properties.title = title
            if finish is not None:
                finish(xw.book)
    # openpyxl stamps creation/modification times into docProps/core.xml; that is the only
    # non-reproducible part of the file and carries no result.
    return path
