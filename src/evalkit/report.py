"""Report building blocks: labels, CJK fonts, reproducible JSON, atomic files and Excel ledgers.

Every user-facing string comes from the bilingual data dictionary (:func:`evalkit.dictionary.label`);
``lang`` is ``'zh'`` (default) or ``'en'``.
"""
from __future__ import annotations

import importlib.util
import json
import math
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from .dictionary import label

__all__ = ["setup_cjk_font", "label", "to_jsonable", "write_json", "atomic_path", "write_ledger_xlsx",
           "pct", "fmt_table"]

_FONT_FILE = "NotoSansCJKsc-Regular.otf"
_FONT_FAMILY = "Noto Sans CJK SC"


def setup_cjk_font() -> str:
    """Register the Noto Sans CJK SC font shipped in the ``mplfonts`` wheel and make it the default.

    In-process only (no download, nothing written into site-packages); idempotent.
    Returns the family name.
    """
    import matplotlib
    from matplotlib import font_manager

    spec = importlib.util.find_spec("mplfonts")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("mplfonts is not installed: it ships the CJK font used in plots")
    path = Path(next(iter(spec.submodule_search_locations))) / "fonts" / _FONT_FILE
    if not any(f.fname == str(path) for f in font_manager.fontManager.ttflist):
        font_manager.fontManager.addfont(str(path))
    matplotlib.rcParams["font.family"] = "sans-serif"
    sans = [f for f in matplotlib.rcParams["font.sans-serif"] if f != _FONT_FAMILY]
    matplotlib.rcParams["font.sans-serif"] = [_FONT_FAMILY, *sans]
    matplotlib.rcParams["axes.unicode_minus"] = False  # the CJK font lacks U+2212
    matplotlib.rcParams["svg.hashsalt"] = "evalkit"  # reproducible SVG ids
    return _FONT_FAMILY


def to_jsonable(obj: Any) -> Any:
    """Convert numpy/pandas scalars and containers to plain JSON types; refuse NaN/inf.

    A report never carries a silent NaN: a missing number must be ``None`` on purpose.
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
    return obj


def write_json(obj: Any, path: str | Path) -> Path:
    """Write JSON deterministically (sorted keys, UTF-8, trailing newline), atomically."""
    text = json.dumps(to_jsonable(obj), ensure_ascii=False, indent=2, sort_keys=True) + "\n"
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


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


def pct(x: float | None, digits: int = 2) -> str:
    """Format a share as a percentage string ('—' for None)."""
    return "—" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{100 * x:.{digits}f}%"


def fmt_table(df: pd.DataFrame, lang: str = "zh", keys: dict[str, str] | None = None) -> pd.DataFrame:
    """Rename columns to their labels in ``lang`` (``keys`` maps column -> label key)."""
    keys = keys or {}
    ren = {}
    for c in df.columns:
        k = keys.get(c, c)
        try:
            ren[c] = label(k, lang)
        except KeyError:
            ren[c] = c
    return df.rename(columns=ren)


def write_ledger_xlsx(sheets: dict[str, pd.DataFrame], path: str | Path, lang: str = "zh",
                      title: str | None = None, keys: dict[str, str] | None = None) -> Path:
    """Write a printable ledger (one or more sheets) to Excel, atomically.

    Columns named ``name`` or ``id_number`` must already be masked: this function refuses
    anything that still looks like a full 18-digit ID number.
    """
    from openpyxl.styles import Alignment, Font

    for sname, df in sheets.items():
        for c in df.columns:
            if df[c].dtype == object or str(df[c].dtype).startswith("string"):
                s = df[c].dropna().astype(str)
                if s.str.fullmatch(r"\d{17}[\dXx]").any():
                    raise ValueError(f"sheet {sname!r} column {c!r} holds a full ID number: mask it first")
    path = Path(path)
    with atomic_path(path) as tmp:
        with pd.ExcelWriter(tmp, engine="openpyxl") as xw:
            for sname, df in sheets.items():
                out = fmt_table(df, lang, keys)
                start = 2 if title else 0
                out.to_excel(xw, sheet_name=sname[:31], index=False, startrow=start)
                ws = xw.sheets[sname[:31]]
                if title:
                    ws.cell(row=1, column=1, value=title).font = Font(bold=True, size=13)
                for j, col in enumerate(out.columns, start=1):
                    width = max([len(str(col))] + [len(str(v)) for v in out[col].head(200)]) + 2
                    ws.column_dimensions[ws.cell(row=start + 1, column=j).column_letter].width = min(max(width * 1.3, 8), 40)
                    ws.cell(row=start + 1, column=j).alignment = Alignment(wrap_text=True)
                ws.freeze_panes = ws.cell(row=start + 2, column=1)
                ws.print_title_rows = f"{start + 1}:{start + 1}"
    # openpyxl stamps creation/modification times into docProps/core.xml; that is the only
    # non-reproducible part of the file and carries no result.
    return path
