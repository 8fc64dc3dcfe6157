"""Findings about the input: the :class:`Problem` record, the problems frame and row findings.

A finding has a severity: ``fatal`` (a file or table could not be read; exit code 2), ``error``
(the row is quarantined), ``warning`` (the row is kept) or ``notice`` (information: blank rows
skipped, unknown columns kept, encoding used...).

Findings are made in two shapes. While a table is coerced and validated they are *row findings*
(:class:`RowFindings`): a 0-based position in the table, the column, the reason, the rule and the
severity. Once the table is done they become *problems* (:data:`PROBLEM_COLUMNS`): the file, the
row a person sees in it, the original header and the (masked) value.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

__all__ = [
    "SEVERITIES", "PROBLEM_COLUMNS", "ROW_FINDING_COLUMNS", "Problem", "RowFindings", "problem",
    "empty_problems", "problems_frame", "problem_dtypes",
]

SEVERITIES = ("fatal", "error", "warning", "notice")
PROBLEM_COLUMNS = ["file", "table", "row", "column", "header", "value", "reason", "severity", "rule"]
ROW_FINDING_COLUMNS = ["pos", "column", "reason", "rule", "severity", "value"]


@dataclass(frozen=True)
class Problem:
    """One finding about the input.

    ``row`` is the row a person sees in the file (header = row 1, first data row = 2; the sheet
    row for Excel; the 1-based record number for Parquet), None for file- or column-level findings.
    ``value`` is masked for names and ID numbers.
    """

    file: str
    table: str
    row: int | None
    column: str
    header: str
    value: str
    reason: str
    severity: str
    rule: str = ""


def problem(file: str, table: str, reason: str, severity: str, *, row: int | None = None,
            column: str = "", header: str = "", rule: str = "", value: str = "") -> dict:
    """One file- or table-level finding as a record of :data:`PROBLEM_COLUMNS`."""
    return {"file": file, "table": table, "row": row, "column": column, "header": header,
            "value": value, "reason": reason, "severity": severity, "rule": rule}


def empty_problems() -> pd.DataFrame:
    """An empty problems frame with the standard columns."""
    return problems_frame([])


def problems_frame(records: Iterable[Problem | dict]) -> pd.DataFrame:
    """Problems frame (columns :data:`PROBLEM_COLUMNS`) of :class:`Problem` records or dicts."""
    rows = [asdict(r) if isinstance(r, Problem) else r for r in records]
    return problem_dtypes(pd.DataFrame(rows, columns=PROBLEM_COLUMNS))


def problem_dtypes(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with exactly :data:`PROBLEM_COLUMNS`: ``row`` as Int64, the others as strings."""
    df = df.reindex(columns=PROBLEM_COLUMNS)
    for c in PROBLEM_COLUMNS:
        if c == "row":
            df[c] = pd.to_numeric(df[c], errors="coerce").astype("Int64")
        else:
            df[c] = df[c].astype("str")
    return df


class RowFindings:
    """Position-based findings of one table, collected as small frames (vectorized).

    :meth:`frame` returns them with columns :data:`ROW_FINDING_COLUMNS`; ``value`` is filled only
    when a check replaces the raw value (otherwise the raw value is looked up later).
    """

    def __init__(self) -> None:
        self.parts: list[pd.DataFrame] = []

    def add(self, mask, column: str, reason: str | np.ndarray | pd.Series, rule: str,
            severity: str = "error", value: np.ndarray | pd.Series | None = None) -> None:
        """Add a finding for every row where ``mask`` is True (``reason`` a string or per row)."""
        m = np.asarray(pd.Series(mask).fillna(False).to_numpy(dtype=bool) if isinstance(mask, pd.Series)
                       else mask, dtype=bool)
        if not m.any():
            return
        pos = np.flatnonzero(m)
        r = reason if isinstance(reason, str) else np.asarray(reason, dtype=object)[pos]
        part = pd.DataFrame({"pos": pos, "column": column, "reason": r, "rule": rule,
                             "severity": severity})
        if value is not None:
            part["value"] = np.asarray(value, dtype=object)[pos]
        self.parts.append(part)

    def add_pos(self, pos: np.ndarray, column: str, reason, rule: str, severity: str = "error",
                value=None) -> None:
        """Add a finding at each position of ``pos`` (``reason`` a string or one per position)."""
        if len(pos) == 0:
            return
        part = pd.DataFrame({"pos": np.asarray(pos, dtype=np.int64), "column": column,
                             "reason": reason, "rule": rule, "severity": severity})
        if value is not None:
            part["value"] = value
        self.parts.append(part)

    def frame(self) -> pd.DataFrame:
        """All findings so far (an empty frame with the right columns when there are none)."""
        cols = ROW_FINDING_COLUMNS
        if not self.parts:
            return pd.DataFrame({c: pd.Series(dtype="int64" if c == "pos" else object) for c in cols})
        return pd.concat(self.parts, ignore_index=True).reindex(columns=cols)
