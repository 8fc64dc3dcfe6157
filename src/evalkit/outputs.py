"""Writing result files: atomic renames, deterministic JSON and styled Excel workbooks.

Nothing here decides what a file says; the report layer builds the (translated, masked) tables and
this module writes them so that a killed run never leaves a complete-looking partial file.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

__all__ = ["to_jsonable", "write_json", "atomic_path", "write_xlsx"]


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

    A run killed half-way leaves at most a ``.tmp-*`` file, never a complete-looking output.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{path.name}.", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
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


def write_xlsx(sheets: dict[str, pd.DataFrame], path: str | Path, title: str | None = None) -> Path:
    """Write printable sheets (headers as given, already translated and masked) to Excel, atomically.

    Each sheet gets column widths from its content, wrapped headers, frozen header row and a
    repeated print title. Refuses a column that still holds full 18-digit ID numbers.
    """
    from openpyxl.styles import Alignment, Font

    from evalkit.privacy import pii_columns

    for sname, df in sheets.items():
        unmasked = [c for c, kind in pii_columns(df.columns, df).items()
                    if kind == "id_number" and df[c].dropna().astype(str).str.contains(r"\d{9}").any()]
        if unmasked:
            raise ValueError(f"sheet {sname!r} column(s) {unmasked} hold full ID numbers: mask them first")
    path = Path(path)
    with atomic_path(path) as tmp:
        with pd.ExcelWriter(tmp, engine="openpyxl") as xw:
            for sname, out in sheets.items():
                start = 2 if title else 0
                out.to_excel(xw, sheet_name=sname[:31], index=False, startrow=start)
                ws = xw.sheets[sname[:31]]
                if title:
                    ws.cell(row=1, column=1, value=title).font = Font(bold=True, size=13)
                for j, col in enumerate(out.columns, start=1):
                    width = max([len(str(col))] + [len(str(v)) for v in out[col].head(200)]) + 2
                    letter = ws.cell(row=start + 1, column=j).column_letter
                    ws.column_dimensions[letter].width = min(max(width * 1.3, 8), 40)
                    ws.cell(row=start + 1, column=j).alignment = Alignment(wrap_text=True)
                ws.freeze_panes = ws.cell(row=start + 2, column=1)
                ws.print_title_rows = f"{start + 1}:{start + 1}"
    # openpyxl stamps creation/modification times into docProps/core.xml; that is the only
    # non-reproducible part of the file and carries no result.
    return path
