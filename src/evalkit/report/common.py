"""What every report shares: the CJK font, figures, number formats, labelled tables and ledgers.

Every user-facing string comes from :mod:`evalkit.text`; ``lang`` is ``'zh'`` (default) or ``'en'``.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd

from evalkit import dictionary
from evalkit.report import style
from evalkit.report.ledger import write_ledger
from evalkit.text import Note, label, render_notes

__all__ = ["setup_cjk_font", "new_figure", "feature_label", "pct", "fmt_table", "verdict_label",
           "notes_markdown", "code_label", "write_ledger_xlsx"]

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


def new_figure(figsize: tuple[float, float], nrows: int = 1, ncols: int = 1, **kw):
    """A matplotlib Figure (not registered with pyplot, so never shown twice) with the CJK font set."""
    from matplotlib.figure import Figure

    setup_cjk_font()
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, **kw)


def feature_label(term: object, lang: str) -> str:
    """Label of a model feature or term (its name when the dictionary has none)."""
    try:
        return label(f"feat_{term}", lang)
    except KeyError:  # a feature without a label keeps its name
        return str(term)


def pct(x: float | None, digits: int = 2) -> str:
    """Format a share as a percentage string ('—' for None); see :mod:`evalkit.report.style`."""
    return style.pct(x, digits)


def _column_unit(col: str) -> str:
    """Unit of a dictionary column ('' when none or unknown)."""
    for t in dictionary.tables().values():
        for c in t.columns:
            if c.name == col:
                return c.unit
    return ""


def fmt_table(df: pd.DataFrame, lang: str = "zh", keys: dict[str, str] | None = None) -> pd.DataFrame:
    """Rename columns to their labels in ``lang`` (``keys`` maps column -> label key); a money
    column of the data dictionary (unit yuan) carries its unit: ``调查人均纯收入（元）``."""
    keys = keys or {}
    ren = {}
    for c in df.columns:
        k = keys.get(c, c)
        try:
            ren[c] = label(k, lang)
        except KeyError:
            ren[c] = c
            continue
        if isinstance(c, str) and _column_unit(c).startswith("yuan"):
            ren[c] += style.unit_of("yuan", lang)
    return df.rename(columns=ren)


def notes_markdown(notes: list[Note | str], lang: str = "zh") -> str:
    """Notes as Markdown block quotes, each after a blank line (empty string when there is none)."""
    return "".join(f"\n\n> {n}" for n in render_notes(notes, lang))


def code_label(list_name: str, code: str, lang: str = "zh") -> str:
    """Label of a code of a dictionary code list; the code itself when the list does not know it."""
    try:
        return dictionary.code_label(list_name, code, lang)
    except KeyError:
        return str(code)


def verdict_label(v: str, lang: str = "zh") -> str:
    """Label of a verdict ('pass' / 'fail' / 'borderline')."""
    return label(f"verdict_{v}", lang)


def write_ledger_xlsx(sheets: dict[str, pd.DataFrame], path: str | Path, lang: str = "zh",
                      title: str | None = None, keys: dict[str, str] | None = None,
                      raw_sheets: tuple[str, ...] = (), about: str | None = None,
                      fill_in: bool | None = None, number_formats: dict[str, str] | None = None) -> Path:
    """Write a ledger (台账) to Excel, atomically: :func:`evalkit.report.ledger.write_ledger`.

    Column headers are translated to ``lang`` (money columns with their unit) except in
    ``raw_sheets``; sheets listing households get the fill-in columns (核实结果 ...) unless
    ``fill_in`` says otherwise; a 汇总 and a 说明 sheet follow. ``number_formats`` maps a
    canonical column (or a translated header) to an Excel format. Columns holding names or ID
    numbers must already be masked: :func:`evalkit.outputs.write_xlsx` refuses anything that still
    looks like a full ID number.
    """
    flat = {s: (df.reset_index() if not isinstance(df.index, pd.RangeIndex) else df) for s, df in sheets.items()}
    fmts: dict[str, str] = {}
    out = {}
    for s, df in flat.items():
        t = df if s in raw_sheets else fmt_table(df, lang, keys)
        for c, h in zip(df.columns, t.columns):
            if number_formats and c in number_formats:
                fmts[str(h)] = number_formats[c]
            elif isinstance(c, str) and _column_unit(c).startswith("yuan"):
                fmts[str(h)] = "#,##0"
        out[s] = t
    return write_ledger(out, path, lang, title=title, about=about, fill_in=fill_in, number_formats=fmts)
