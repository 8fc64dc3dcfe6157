"""Reading a ledger (台账) a township filled in and sent back.

A ledger written by :func:`evalkit.report.ledger.write_ledger` has, on each sheet that lists
households, the fill-in columns 核实结果 (属实 / 不属实 / 待核实), 核实人, 核实日期, 整改情况 and
备注. :func:`read_returned_ledger` finds those sheets (headers in Chinese or English), checks the
fill-in columns and returns every row with its canonical values, the progress and, for each bad
cell, the file, sheet, Excel row, column and reason. Bad rows are set aside as problems, never
dropped: every row of the file is in ``rows``.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from evalkit import dictionary
from evalkit.errors import InputError
from evalkit.text import check_lang, label, text

__all__ = ["FILL_IN", "VERIFY_RESULTS", "ReturnedLedger", "read_returned_ledger", "PROBLEM_COLUMNS"]

#: Canonical names of the fill-in columns (labels ``ledger_<name>``).
FILL_IN: tuple[str, ...] = ("verify_result", "verifier", "verify_date", "rectification", "remarks")
#: Codes of 核实结果 (code list ``verify_result``): 属实, 不属实, 待核实.
VERIFY_RESULTS: tuple[str, ...] = ("confirmed", "not_confirmed", "pending")
#: Columns of :attr:`ReturnedLedger.problems`.
PROBLEM_COLUMNS = ["file", "sheet", "row", "column", "value", "reason"]


@dataclass
class ReturnedLedger:
    """A returned ledger: its rows (canonical fill-in values), problems and progress."""

    path: Path
    rows: pd.DataFrame  #: sheet, row (Excel row), the key, the fill-in columns (canonical), valid
    problems: pd.DataFrame  #: PROBLEM_COLUMNS, one row per bad cell

    def progress(self) -> dict[str, int]:
        """Counts: ``total``, ``verified`` (属实 or 不属实), ``confirmed`` (属实, problems found),
        ``not_confirmed``, ``pending`` (待核实 or empty) and ``invalid`` (rows with a problem)."""
        r = self.rows["verify_result"]
        return {"total": int(len(r)), "verified": int(r.isin(["confirmed", "not_confirmed"]).sum()),
                "confirmed": int((r == "confirmed").sum()), "not_confirmed": int((r == "not_confirmed").sum()),
                "pending": int((r == "pending").sum()), "invalid": int((~self.rows["valid"]).sum())}


def _header_map(columns: Sequence[object], key: str, fill_in: Sequence[str]) -> dict[str, str]:
    """Sheet header -> canonical name, for the key and the fill-in columns (zh or en labels)."""
    want = {key: [label(key, lg) for lg in ("zh", "en")] + [key]}
    want.update({k: [label(f"ledger_{k}", lg) for lg in ("zh", "en")] + [k] for k in fill_in})
    norm = {str(c).strip().lower(): str(c) for c in columns}
    out = {}
    for canon, names in want.items():
        for n in names:
            if n.strip().lower() in norm:
                out[norm[n.strip().lower()]] = canon
                break
    return out


def _problems(file: str, sheet: str, rows: pd.Series, column: str, values: pd.Series, reason: str) -> pd.DataFrame:
    return pd.DataFrame({"file": file, "sheet": sheet, "row": rows.to_numpy(), "column": column,
                         "value": values.astype(str).to_numpy(), "reason": reason})


def _blank(s: pd.Series) -> pd.Series:
    return s.isna() | s.astype(str).str.strip().isin(["", "nan", "NaT", "None"])


def _check_sheet(df: pd.DataFrame, hmap: dict[str, str], file: str, sheet: str, key: str,
                 lang: str) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    inv = {v: k for k, v in hmap.items()}
    excel_row = pd.Series(df.index.to_numpy() + 2, index=df.index)  # header on row 1
    probs: list[pd.DataFrame] = []
    out = pd.DataFrame({"sheet": sheet, "row": excel_row})
    out[key] = df[inv[key]].astype("string").str.strip() if key in inv else pd.NA
    # 核实结果: any spelling of the code list (属实, Confirmed ...); empty means pending
    raw = df[inv["verify_result"]]
    lookup = dictionary.code_lookup("verify_result")
    uniq = {v: lookup.get(dictionary.normalize_header(v).lower()) for v in raw.dropna().astype(str).unique()}
    code = raw.astype(str).map(uniq)
    empty = _blank(raw)
    bad_res = ~empty & code.isna()
    opts = label("list_sep_short", lang).join(dictionary.code_label("verify_result", c, lang) for c in VERIFY_RESULTS)
    if bad_res.any():
        probs.append(_problems(file, sheet, excel_row[bad_res], inv["verify_result"], raw[bad_res],
                               text("ledger_bad_result", lang, options=opts)))
    out["verify_result"] = code.where(~empty, "pending").where(~bad_res, pd.NA)
    for c in ("verifier", "rectification", "remarks"):
        out[c] = df[inv[c]].where(~_blank(df[inv[c]]), pd.NA).astype("string") if c in inv else pd.NA
    # 核实日期: an Excel date or a text date
    if "verify_date" in inv:
        d = df[inv["verify_date"]]
        dblank = _blank(d)
        iso = (d.astype(str).str.strip().str.replace(r"[年月/.]", "-", regex=True)
               .str.replace("日", "", regex=False).str.slice(0, 10))
        parsed = pd.to_datetime(iso, errors="coerce", format="%Y-%m-%d")
        bad_d = ~dblank & parsed.isna()
        if bad_d.any():
            probs.append(_problems(file, sheet, excel_row[bad_d], inv["verify_date"], d[bad_d],
                                   label("ledger_bad_date", lang)))
        out["verify_date"] = parsed.dt.strftime("%Y-%m-%d").where(~bad_d & ~dblank, pd.NA).astype("string")
    else:
        out["verify_date"], bad_d = pd.NA, pd.Series(False, index=df.index)
    done = out["verify_result"].isin(["confirmed", "not_confirmed"])
    for c, why in (("verifier", "ledger_missing_verifier"), ("verify_date", "ledger_missing_date")):
        miss = done & out[c].isna()
        if c == "verify_date":
            miss &= ~bad_d  # already reported as a bad date
        if miss.any():
            col = inv.get(c, label(f"ledger_{c}", lang))
            probs.append(_problems(file, sheet, excel_row[miss], col, pd.Series("", index=df.index)[miss],
                                   label(why, lang)))
    if key in inv:
        kmiss = out[key].isna() | (out[key] == "")
        if kmiss.any():
            probs.append(_problems(file, sheet, excel_row[kmiss], inv[key], df[inv[key]][kmiss],
                                   label("ledger_missing_key", lang)))
    return out, probs


def read_returned_ledger(path: str | Path, *, key: str = "household_id",
                         fill_in: Sequence[str] = FILL_IN, lang: str = "zh") -> ReturnedLedger:
    """Read a ledger returned by a township and check its fill-in columns.

    Parameters
    ----------
    path : path-like
        The .xlsx file (as :func:`evalkit.report.ledger.write_ledger` wrote it, filled in).
    key : str
        Canonical name of the column identifying a row (its header may be the zh or en label).
    fill_in : sequence of str
        Canonical fill-in columns; a sheet holding the first one (``verify_result``) is a ledger
        sheet, the others are optional.
    lang : {'zh', 'en'}
        Language of the problems' reasons.

    Returns
    -------
    ReturnedLedger
        ``rows``: one per data row of every ledger sheet (sheet, Excel row, key, canonical fill-in
        values, ``valid``); ``problems``: file, sheet, row, column, value, reason.

    Raises
    ------
    InputError
        The file cannot be read, or no sheet has the fill-in columns.
    """
    check_lang(lang)
    p = Path(path)
    try:
        book = pd.read_excel(p, sheet_name=None, dtype=object, engine="openpyxl")
    except Exception as e:  # noqa: BLE001 - openpyxl/zipfile raise many types for a bad file
        raise InputError(f"{p}: cannot be read as an Excel workbook ({type(e).__name__}: {e})") from None
    parts, probs = [], []
    for sheet, df in book.items():
        hmap = _header_map(df.columns, key, fill_in)
        if fill_in[0] not in hmap.values():
            continue
        rows, pr = _check_sheet(df.reset_index(drop=True), hmap, p.name, str(sheet), key, lang)
        parts.append(rows)
        probs += pr
    if not parts:
        raise InputError(text("ledger_no_sheet", lang, file=p.name, column=label(f"ledger_{fill_in[0]}", lang)))
    rows = pd.concat(parts, ignore_index=True)
    problems = (pd.concat(probs, ignore_index=True) if probs else pd.DataFrame(columns=PROBLEM_COLUMNS))
    dup = rows[key].notna() & rows.duplicated([key], keep=False)
    if dup.any():
        problems = pd.concat([problems, _problems(p.name, "", rows.loc[dup, "row"], label(key, lang),
                                                  rows.loc[dup, key], label("ledger_duplicate_key", lang))
                              .assign(sheet=rows.loc[dup, "sheet"].to_numpy())], ignore_index=True)
    bad = pd.MultiIndex.from_frame(problems[["sheet", "row"]].astype({"row": int})) if len(problems) else None
    here = pd.MultiIndex.from_frame(rows[["sheet", "row"]].astype({"row": int}))
    rows["valid"] = ~here.isin(bad) if bad is not None else True
    return ReturnedLedger(p, rows, problems[PROBLEM_COLUMNS].reset_index(drop=True))
