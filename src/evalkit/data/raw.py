"""Raw tables: the rows of one table from one file or sheet, before any value is parsed.

The header row is found by matching the first rows against the data dictionary's accepted
headers (title rows above it are skipped); headers are mapped to canonical column names; blank
rows are dropped with a notice; a missing required column makes the table unusable ('fatal').

Row numbers are those a person sees when opening the file: the header is row 1 and the first data
row is row 2 (title rows shift both; blank rows keep their numbers); Excel rows are sheet rows;
Parquet rows are 1-based record numbers.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from evalkit import dictionary
from evalkit.data.problems import problem, problems_frame

__all__ = [
    "HEADER_SCAN_ROWS", "RawTable", "TableGuess", "cell_text", "guess_header", "build_raw_table",
    "combine_header", "header_cells", "blank_rows",
]

#: Rows searched for the header (title rows above it are skipped).
HEADER_SCAN_ROWS = 20


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


def cell_text(v) -> str:
    """Text of a raw cell; None and NaN give ``""``."""
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return ""
    return str(v)


@dataclass(frozen=True)
class TableGuess:
    """Header row (0-based in the rows searched), table, and score
    (share of required columns found, number of columns recognized); ``two_rows`` when the header
    spans this row and the one above (a group row such as 收入情况 over sub-headers, with the other
    headers merged vertically over both)."""

    row: int
    table: str | None
    score: tuple[float, int]
    two_rows: bool = False


def combine_header(upper: Sequence, lower: Sequence) -> list:
    """A two-row header: each column's lower cell, or the upper one where the lower is empty."""
    n = max(len(upper), len(lower))
    up = list(upper) + [None] * (n - len(upper))
    lo = list(lower) + [None] * (n - len(lower))
    return [b if cell_text(b).strip() else a for a, b in zip(up, lo)]


def header_cells(rows: Sequence[Sequence], g: TableGuess) -> list:
    """The header of a guess (combined with the row above for a two-row header)."""
    return combine_header(rows[g.row - 1], rows[g.row]) if g.two_rows else list(rows[g.row])


def _score(cells: Sequence, table: str) -> tuple[float, int]:
    hm = dictionary.header_map(table)
    found = {hm.get(dictionary.normalize_header(cell_text(c)).lower()) for c in cells} - {None}
    req = {c.name for c in dictionary.table(table).columns if c.required}
    return len(found & req) / len(req), len(found)


def guess_header(rows: Sequence[Sequence], table: str | None) -> TableGuess:
    """Header row and table: the row matching most dictionary headers, then the best table.

    Parameters
    ----------
    rows : sequence of sequences
        The first rows of a file or sheet (only :data:`HEADER_SCAN_ROWS` are searched).
    table : str, optional
        Only this table; else every table of the dictionary.
    """
    cands = [table] if table else list(dictionary.tables())
    best = TableGuess(0, None, (0.0, 0))
    best_matched = 0
    for i, cells in enumerate(rows[:HEADER_SCAN_ROWS]):
        options = [(cells, False)]
        if i > 0 and any(not cell_text(c).strip() for c in cells):
            options.append((combine_header(rows[i - 1], cells), True))
        for cand, two in options:
            scores = {t: _score(cand, t) for t in cands}
            t = max(scores, key=lambda k: scores[k])
            matched = max(s[1] for s in scores.values())
            if matched > best_matched:
                best_matched, best = matched, TableGuess(i, t, scores[t], two)
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


def blank_rows(g: pd.DataFrame) -> np.ndarray:
    """Rows of a raw grid whose cells are all empty or whitespace (True = blank)."""
    return _blank_mask(g)


def _runs(rows: np.ndarray) -> list[tuple[int, int]]:
    if len(rows) == 0:
        return []
    cut = np.flatnonzero(np.diff(rows) != 1) + 1
    return [(int(r[0]), int(r[-1])) for r in np.split(rows, cut)]


def _map_headers(grid: pd.DataFrame, headers_in: list[str], table: str, file: str,
                 problems: list[dict]) -> tuple[list[str], dict[str, str], list[int]]:
    """Column names for the grid's columns, column -> original header, and spacer columns to drop."""
    hm = dictionary.header_map(table)
    names: list[str] = []
    headers: dict[str, str] = {}
    drop: list[int] = []
    for i, h in enumerate(headers_in):
        canon = hm.get(dictionary.normalize_header(h).lower()) if h.strip() else None
        if not h.strip():
            if _blank_mask(grid[i].to_frame()).all():
                drop.append(i)  # trailing or spacer column without header or data
                names.append(f"_empty_{i}")
                continue
            name = f"column_{i + 1}"
            problems.append(problem(file, table, f"column {i + 1} has no header; kept as {name}",
                                    "notice", column=name, rule="unknown_column"))
        elif canon is not None and canon not in headers:
            name = canon
        elif canon is not None:
            name = h
            problems.append(problem(
                file, table, f"second column for {canon} (first: '{headers[canon]}'); the first is"
                f" used and this one is kept as '{h}'", "warning", column=canon, header=h,
                rule="duplicate_column"))
        else:
            name = h
            problems.append(problem(file, table, "unknown column kept as text (not in the data"
                                    f" dictionary for {table})", "notice", column=h, header=h,
                                    rule="unknown_column"))
        while name in names:
            name += "_"
        names.append(name)
        headers[name] = h
    return names, headers, drop


def _column_problems(columns: pd.Index, table: str, file: str, problems: list[dict]) -> None:
    """A fatal finding for missing required columns, else a notice per absent optional column."""
    spec = dictionary.table(table)
    missing = [c for c in spec.columns if c.required and c.name not in columns]
    if missing:
        cols = ", ".join(f"{c.name} ({c.zh})" for c in missing)
        problems.append(problem(
            file, table, f"{file}: required column(s) missing: {cols}; the {table} table"
            f" ({spec.zh}) in this file cannot be used", "fatal",
            column=", ".join(c.name for c in missing), header=", ".join(c.zh for c in missing),
            rule="missing_column"))
        return
    for c in spec.columns:
        if not c.required and c.name not in columns:
            problems.append(problem(file, table, f"optional column {c.name} ({c.zh}) absent; left"
                                    " empty", "notice", column=c.name, rule="absent_column"))


def build_raw_table(grid: pd.DataFrame, row_numbers: np.ndarray, *, table: str, file: str,
                    path: Path, header_cells: Sequence | None, problems: list[dict],
                    sheet: str | None = None, encoding: str | None = None,
                    errors: pd.DataFrame | None = None) -> RawTable:
    """Map headers, drop blank rows and check required columns.

    Parameters
    ----------
    grid : DataFrame
        Data rows (below the header) with raw values.
    row_numbers : ndarray
        Row number in the file of each grid row.
    header_cells : sequence, optional
        The header row; None means the grid already has its headers as column names (Parquet).
    problems : list of dict
        Findings made so far while reading; this function appends its own.
    errors : DataFrame, optional
        Row errors by position in ``grid`` (renumbered once blank rows are dropped).
    """
    headers_in = list(grid.columns) if header_cells is None else [cell_text(h) for h in header_cells]
    grid = grid.copy()
    grid.columns = range(grid.shape[1])
    blank = _blank_mask(grid) if header_cells is not None else grid.isna().all(axis=1).to_numpy()
    for a, b in _runs(row_numbers[blank]):
        problems.append(problem(file, table, "blank row skipped" if a == b else
                                f"blank rows {a}–{b} skipped ({b - a + 1} rows)", "notice",
                                row=a, rule="blank_row"))
    names, headers, drop = _map_headers(grid, headers_in, table, file, problems)
    grid.columns = names
    grid = grid.drop(columns=[names[i] for i in drop])
    _column_problems(grid.columns, table, file, problems)
    keep = ~blank
    if not keep.any():
        problems.append(problem(file, table, "no data rows (the file has a header only)", "notice",
                                rule="no_data_rows"))
    frame = grid[keep].reset_index(drop=True)
    rt = RawTable(table, file, path, frame, row_numbers[keep], headers,
                  problems_frame(problems), sheet=sheet, encoding=encoding)
    if errors is not None and len(errors):
        newpos = np.cumsum(keep) - 1
        rt.errors = errors.assign(pos=newpos[errors["pos"].to_numpy(dtype=np.int64)])
    return rt
