"""Ledgers (台账) a township can fill in and send back: fill-in columns, validation lists, 说明, 汇总.

:func:`write_ledger` writes data sheets through :func:`evalkit.outputs.write_xlsx` (header on row
1, frozen, filtered, widths, print setup, full-ID check) and adds:

* the fill-in columns (核实结果, 核实人, 核实日期, 整改情况, 备注) on every sheet that lists
  households, with a drop-down list on 核实结果 (属实 / 不属实 / 待核实) and a date check on 核实日期;
* a summary sheet (汇总): rows per sheet and per group, and live formulas counting the verified,
  confirmed and pending rows as the township fills the ledger in;
* an explanation sheet (说明): what the ledger is, how to fill it in, what each column means.

:func:`evalkit.data.ledger.read_returned_ledger` reads such a ledger back.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from evalkit import dictionary
from evalkit.data.ledger import FILL_IN, VERIFY_RESULTS
from evalkit.outputs import excel_sheet_name, write_xlsx
from evalkit.text import check_lang, label, text

__all__ = ["write_ledger", "sheet_name", "fill_in_headers", "FILL_IN"]


def sheet_name(name: str, short: str | None = None) -> str:
    """A valid Excel sheet name: ``name`` when it fits 31 characters, else ``short`` (never a word
    cut in the middle: the text is cut at the last space or separator that fits)."""
    return excel_sheet_name(name, short)


def fill_in_headers(lang: str = "zh") -> list[str]:
    """Headers of the fill-in columns in ``lang``."""
    return [label(f"ledger_{k}", lang) for k in FILL_IN]


def _add_fill_in(df: pd.DataFrame, lang: str) -> pd.DataFrame:
    out = df.copy()
    for h in fill_in_headers(lang):
        if h not in out.columns:
            out[h] = ""
    return out


def _lists_households(df: pd.DataFrame, lang: str) -> bool:
    return any(c in df.columns for c in ("household_id", label("household_id", lang)))


def _group_column(df: pd.DataFrame, lang: str) -> str | None:
    for c in ("problem_type", "warning_level"):
        for name in (c, label(c, lang)):
            if name in df.columns:
                return name
    return None


def _summary_rows(sheets: Mapping[str, pd.DataFrame], filled: Sequence[str], lang: str) -> pd.DataFrame:
    rows = []
    for s, df in sheets.items():
        g = _group_column(df, lang)
        rows.append({"sheet": s, "group": label("ledger_all_rows", lang), "n": len(df)})
        if g is not None:
            for k, n in df[g].astype(str).value_counts(sort=False).sort_index().items():
                rows.append({"sheet": s, "group": f"{g}: {k}", "n": int(n)})
    out = pd.DataFrame(rows, columns=["sheet", "group", "n"])
    return out.rename(columns={"sheet": label("ledger_sheet", lang), "group": label("ledger_group", lang),
                               "n": label("ledger_rows", lang)})


def _explanation(about: str | None, columns: Mapping[str, str], lang: str, title: str | None,
                 filled: bool) -> pd.DataFrame:
    lines: list[tuple[str, str]] = []
    if title:
        lines.append((label("ledger_title", lang), title))
    if about:
        lines.append((label("ledger_about", lang), about))
    if filled:
        opts = label("list_sep_short", lang).join(dictionary.code_label("verify_result", c, lang)
                                                  for c in VERIFY_RESULTS)
        lines.append((label("ledger_how", lang), text("ledger_how_text", lang, options=opts)))
        lines.append((label("ledger_return", lang), label("ledger_return_text", lang)))
    for h, desc in columns.items():
        lines.append((h, desc))
    return pd.DataFrame(lines, columns=[label("ledger_item", lang), label("ledger_content", lang)])


def _column_help(sheets: Mapping[str, pd.DataFrame], lang: str, extra: Mapping[str, str]) -> dict[str, str]:
    help_: dict[str, str] = {}
    fill = dict(zip(fill_in_headers(lang), FILL_IN))
    for df in sheets.values():
        for c in df.columns:
            if c in help_:
                continue
            if c in fill:
                help_[c] = label(f"ledger_help_{fill[c]}", lang)
            elif c in extra:
                help_[c] = extra[c]
    return help_


def _finisher(filled: dict[str, int], lang: str, n_cols: dict[str, int]):
    """Drop-down list on 核实结果, date check on 核实日期, formulas on the summary sheet."""
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter
    from openpyxl.worksheet.datavalidation import DataValidation

    opts = ",".join(dictionary.code_label("verify_result", c, lang) for c in VERIFY_RESULTS)
    heads = fill_in_headers(lang)

    def finish(wb: Any) -> None:
        about = wb[label("ledger_sheet_about", lang)]
        about.column_dimensions["B"].width = 90
        for (cell,) in about.iter_rows(min_row=2, min_col=2, max_col=2):
            cell.alignment = Alignment(wrap_text=True, vertical="top")
        summary_ws = wb[label("ledger_sheet_summary", lang)] if label("ledger_sheet_summary", lang) in wb else None
        row = None
        for sname, n in filled.items():
            ws = wb[sname]
            cols = {ws.cell(row=1, column=j).value: get_column_letter(j) for j in range(1, n_cols[sname] + 1)}
            last = max(n + 1, 2)
            res, date = cols[heads[0]], cols[heads[2]]
            dv = DataValidation(type="list", formula1=f'"{opts}"', allow_blank=True, showErrorMessage=True,
                                errorTitle=heads[0], error=text("ledger_list_error", lang, options=opts))
            dv.add(f"{res}2:{res}{last}")
            dd = DataValidation(type="date", operator="greaterThan", formula1="36526", allow_blank=True,
                                showErrorMessage=True, errorTitle=heads[2], error=label("ledger_date_error", lang))
            dd.add(f"{date}2:{date}{last}")
            ws.add_data_validation(dv)
            ws.add_data_validation(dd)
            for r in range(2, last + 1):
                ws[f"{date}{r}"].number_format = "yyyy-mm-dd"
            if summary_ws is not None:  # live counts as the township fills the ledger in
                row = (summary_ws.max_row + 2) if row is None else row + 1
                rng = f"'{sname}'!{res}2:{res}{last}"
                yes, no, pend = (dictionary.code_label("verify_result", c, lang) for c in VERIFY_RESULTS)
                if row == summary_ws.max_row + 2:
                    for j, k in enumerate(("ledger_sheet", "ledger_verified", "ledger_confirmed",
                                           "ledger_pending"), start=1):
                        summary_ws.cell(row=row, column=j, value=label(k, lang)).font = Font(bold=True)
                    row += 1
                summary_ws.cell(row=row, column=1, value=sname)
                summary_ws.cell(row=row, column=2, value=f'=COUNTIF({rng},"{yes}")+COUNTIF({rng},"{no}")')
                summary_ws.cell(row=row, column=3, value=f'=COUNTIF({rng},"{yes}")')
                summary_ws.cell(row=row, column=4, value=f"={n}-COUNTIF({rng},\"{yes}\")-COUNTIF({rng},\"{no}\")")
    return finish


def write_ledger(sheets: Mapping[str, pd.DataFrame], path: str | Path, lang: str = "zh", *,
                 title: str | None = None, about: str | None = None, fill_in: bool | None = None,
                 column_help: Mapping[str, str] | None = None,
                 number_formats: Mapping[str, str] | None = None) -> Path:
    """Write a ledger: data sheets (headers already in ``lang``), then 汇总 and 说明 sheets.

    Parameters
    ----------
    sheets : mapping of sheet name -> DataFrame
        Translated, masked tables; names are made valid with :func:`sheet_name`.
    path : path-like
    lang : {'zh', 'en'}
    title : str, optional
        The ledger's title (printed page header, first line of 说明).
    about : str, optional
        What the ledger is for (说明).
    fill_in : bool, optional
        Add the fill-in columns to every sheet. Default: to the sheets that list households.
    column_help : mapping, optional
        Header -> explanation shown on 说明.
    number_formats : mapping, optional
        Header -> Excel number format (``'0.0%'``, ``'#,##0'``, ``'0.000'``).

    Returns
    -------
    Path
    """
    check_lang(lang)
    data: dict[str, pd.DataFrame] = {}
    filled: dict[str, int] = {}
    for s, df in sheets.items():
        name = sheet_name(s)
        add = _lists_households(df, lang) if fill_in is None else fill_in
        data[name] = _add_fill_in(df, lang) if add else df
        if add:
            filled[name] = len(df)
    out: dict[str, pd.DataFrame] = dict(data)
    out[label("ledger_sheet_summary", lang)] = _summary_rows(data, list(filled), lang)
    out[label("ledger_sheet_about", lang)] = _explanation(about, _column_help(data, lang, column_help or {}),
                                                         lang, title, bool(filled))
    n_cols = {s: len(df.columns) for s, df in out.items()}
    return write_xlsx(out, path, title=title, number_formats=number_formats,
                      finish=_finisher(filled, lang, n_cols))
