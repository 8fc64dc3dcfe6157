"""Validation of register tables: coercion, schemas, duplicate keys and links between tables.

:func:`validate_tables` takes the raw rows of each table (:class:`TableInput`), coerces them
(:mod:`evalkit.data.coercion`), runs the schemas (:mod:`evalkit.data.schemas`), then finds
duplicate keys and references to parents that do not exist or were quarantined (the links of
:data:`evalkit.data.rules.REFERENCES`). Rows with an ``error`` finding are quarantined with their
original raw values; the others are returned typed. Valid data is never silently altered.
Problem values of ``name`` and ``id_number`` are masked.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pyarrow_
import pyarrow.compute as pc

from evalkit import dictionary
from evalkit.data.coercion import canonical_dtype, coerce_frame
from evalkit.data.problems import RowFindings, empty_problems, problem_dtypes
from evalkit.data.rules import REFERENCES, TABLE_ORDER
from evalkit.data.schemas import validate_frame
from evalkit.data.validation_report import ValidationReport
from evalkit.privacy import mask_id_number, mask_name

__all__ = [
    "TableInput", "ValidationResult", "duplicate_problems", "reference_problems",
    "table_problems", "validate_tables", "plausibility_problems", "household_size_problems",
]

log = logging.getLogger(__name__)

#: Columns holding personal data, and their masker (findings show masked values only).
PII = {"name": mask_name, "id_number": mask_id_number}


def _isin(a: pd.Series, values: pd.Series) -> np.ndarray:
    """``a.isin(values)`` through Arrow's hash kernel (pandas' is slow for Arrow strings)."""
    try:
        vs = pd.Series(values).dropna().drop_duplicates()
        res = pc.is_in(pyarrow_.array(a), value_set=pyarrow_.array(vs))
        return res.fill_null(False).to_numpy(zero_copy_only=False).astype(bool)
    except (pyarrow_.ArrowException, TypeError, ValueError):
        return a.isin(values).to_numpy(dtype=bool)


def _where(files: np.ndarray, rows: np.ndarray, pos: np.ndarray, same_file: str) -> list[str]:
    return [f"{rows[p]}" if files[p] == same_file else f"{rows[p]} ({files[p]})" for p in pos]


def duplicate_problems(typed: pd.DataFrame, table: str, files: np.ndarray,
                       rows: np.ndarray) -> pd.DataFrame:
    """Duplicate keys: exact copies after the first, and every row of a conflicting key.

    Parameters
    ----------
    typed : DataFrame
        Coerced frame (RangeIndex); rows whose key did not parse are ignored.
    table : str
    files, rows : arrays
        File label and file row number of each row, for the messages.
    """
    errs = RowFindings()
    key = list(dictionary.table(table).key)
    kdf = typed[key]
    has_key = kdf.notna().all(axis=1).to_numpy()
    dup = np.zeros(len(typed), dtype=bool)
    dup[has_key] = kdf[has_key].duplicated(keep=False).to_numpy()
    if not dup.any():
        return errs.frame()
    sub = typed[dup]
    # Unknown columns keep raw Excel values of mixed types, which cannot be hashed as they are.
    sub = sub.astype({c: "str" for c in sub.columns if sub[c].dtype == object})
    group = pd.util.hash_pandas_object(sub[key], index=False).to_numpy()
    whole = pd.util.hash_pandas_object(sub, index=False).to_numpy()
    g = pd.DataFrame({"pos": np.flatnonzero(dup), "group": group, "whole": whole})
    n_versions = g.groupby("group")["whole"].transform("nunique").to_numpy()
    label = "+".join(key)
    exact = g[n_versions == 1]
    if len(exact):
        first = exact.groupby("group")["pos"].transform("min").to_numpy()
        later = exact["pos"].to_numpy() != first
        p, f = exact["pos"].to_numpy()[later], first[later]
        reasons = ["exact duplicate of row " + _where(files, rows, np.array([fp]), files[pp])[0]
                   for pp, fp in zip(p, f)]
        errs.add_pos(p, key[0], reasons, "duplicate_exact")
    conf = g[n_versions > 1]
    for _, grp in conf.groupby("group", sort=False):
        pos = grp["pos"].to_numpy()
        more = f", ... ({len(pos)} rows)" if len(pos) > 10 else ""
        reasons = [f"duplicate {label} with conflicting values: rows "
                   + ", ".join(_where(files, rows, pos[:10], files[p])) + more for p in pos]
        errs.add_pos(pos, key[0], reasons, "duplicate_conflict")
    return errs.frame()


def reference_problems(child: pd.Series, parent_keys: pd.Series, parent_ok: np.ndarray,
                       noun: str, parent_table: str, parent_files: np.ndarray | None = None,
                       parent_rows: np.ndarray | None = None) -> pd.DataFrame:
    """Rows whose ``child`` key is missing from the parent table, or whose parent was quarantined.

    Parameters
    ----------
    child : Series
        Coerced foreign key of the child table (RangeIndex); nulls are ignored.
    parent_keys : Series
        Coerced key of every parent row (valid and quarantined).
    parent_ok : bool array
        True for parent rows that were kept.
    noun : str
        ``'household'``, ``'village'`` or ``'county'``: the reason reads "household does not exist".
    """
    errs = RowFindings()
    col = child.name
    has = child.notna().to_numpy()
    exists = _isin(child, parent_keys)
    errs.add(has & ~exists, col, f"{noun} does not exist", "reference_missing")
    kept = _isin(child, parent_keys[np.asarray(parent_ok, dtype=bool)])
    orphan = has & exists & ~kept
    if orphan.any():
        where = pd.Series(parent_keys.index, index=parent_keys.to_numpy())
        where = where[~where.index.duplicated()]
        first = where.reindex(child[orphan].to_numpy()).to_numpy()
        prow = (np.asarray(parent_rows)[first] if parent_rows is not None else first + 1)
        pfile = np.asarray(parent_files)[first] if parent_files is not None else np.full(len(first), "")
        reason = [f"{noun} is quarantined in {parent_table} (row {r} of {f})" for r, f in zip(prow, pfile)]
        full = np.empty(len(child), dtype=object)
        full[orphan] = reason
        errs.add(orphan, col, full, "reference_quarantined")
    return errs.frame()


@dataclass
class TableInput:
    """Raw rows of one table gathered from one or more files.

    ``frame`` holds raw values under canonical (or, for unknown columns, original) names with a
    RangeIndex; ``files``/``rows`` give each row's file label and file row number; ``headers``
    maps file label -> canonical column -> original header; ``errors`` are row findings made while
    reading (e.g. too many fields); ``complete`` is False when a file of the table was unreadable.
    """

    table: str
    frame: pd.DataFrame
    files: np.ndarray
    rows: np.ndarray
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    errors: pd.DataFrame | None = None
    complete: bool = True


@dataclass
class ValidationResult:
    """Output of :func:`validate_tables`."""

    tables: dict[str, pd.DataFrame]
    quarantine: dict[str, pd.DataFrame]
    report: ValidationReport


def table_problems(table: str, inp: TableInput, errs: pd.DataFrame) -> pd.DataFrame:
    """Row findings of one table as a problems frame (file, row, original header, masked value)."""
    if errs.empty:
        return empty_problems()
    pos = errs["pos"].to_numpy(dtype=np.int64)
    files = inp.files[pos]
    out = pd.DataFrame({
        "file": files, "table": table, "row": inp.rows[pos], "column": errs["column"].to_numpy(),
        "reason": errs["reason"].to_numpy(), "severity": errs["severity"].to_numpy(),
        "rule": errs["rule"].to_numpy(),
    })
    value = (errs["value"].to_numpy(dtype=object).copy() if "value" in errs
             else np.full(len(errs), None, object))
    for col in out["column"].unique():
        sel = (out["column"] == col).to_numpy() & pd.isna(value)
        if col in inp.frame.columns and sel.any():
            raw = inp.frame[col].iloc[pos[sel]]
            value[sel] = raw.astype(object).where(raw.notna(), "").astype(str).to_numpy()
    value = pd.Series(value, dtype=object).where(pd.notna(value), "")
    for col, fn in PII.items():
        sel = (out["column"] == col).to_numpy()
        if sel.any():
            masked = fn(pd.Series(value[sel].to_numpy(), dtype="str"))
            value[sel] = masked.fillna("").to_numpy()
    out["value"] = value.to_numpy()
    hdr = pd.DataFrame([(f, c, h) for f, m in inp.headers.items() for c, h in m.items()],
                       columns=["file", "column", "header"])
    out = out.merge(hdr, on=["file", "column"], how="left")
    out["header"] = out["header"].fillna(out["column"])
    return problem_dtypes(out)


def _finalize_types(typed: pd.DataFrame, table: str) -> pd.DataFrame:
    out = typed.reset_index(drop=True)
    for c in dictionary.table(table).columns:
        # Nulls left in a required column (validate=False) keep the nullable dtype.
        want = canonical_dtype(c, nullable=(not c.required) or bool(out[c.name].isna().any()))
        if str(out[c.name].dtype) != want:
            out[c.name] = out[c.name].astype(want)
    return out


def plausibility_problems(typed: pd.DataFrame, table: str) -> pd.DataFrame:
    """Warnings for values outside a column's plausible range (``plausible`` in the dictionary)."""
    errs = RowFindings()
    for c in dictionary.table(table).columns:
        if c.plausible is None or c.name not in typed.columns:
            continue
        lo, hi = c.plausible
        v = pd.to_numeric(typed[c.name], errors="coerce").astype("float64").to_numpy()
        with np.errstate(invalid="ignore"):
            out = ~np.isnan(v) & ((v < lo) | (v > hi))
        if out.any():
            txt = pd.Series(v[out]).map(lambda x: f"{x:,.0f}" if float(x).is_integer() else f"{x:,.2f}")
            reason = np.full(len(v), None, dtype=object)
            reason[out] = (txt + f" is outside the plausible range {lo:,g} to {hi:,g} ({c.plausible_source})"
                           ).to_numpy()
            errs.add(out, c.name, reason, "plausible", "warning")
    return errs.frame()


def household_size_problems(households: pd.DataFrame, members: pd.DataFrame) -> pd.DataFrame:
    """A warning per household whose household_size differs from its number of members.

    Parameters
    ----------
    households, members : DataFrame
        Coerced tables (every row, valid or not); positions refer to ``households``.
    """
    errs = RowFindings()
    n = members["household_id"].dropna().value_counts()
    have = n.reindex(households["household_id"].to_numpy()).fillna(0).to_numpy(dtype=np.int64)
    size = pd.to_numeric(households["household_size"], errors="coerce").astype("float64").to_numpy()
    differ = households["household_id"].notna().to_numpy() & ~np.isnan(size) & (size != have)
    if differ.any():
        reason = np.full(len(households), None, dtype=object)
        reason[differ] = [f"household_size {int(s)} but {k} member(s) listed in members"
                          for s, k in zip(size[differ], have[differ])]
        errs.add(differ, "household_size", reason, "household_size_members", "warning")
    return errs.frame()


def _table_findings(t: str, inp: TableInput, typed: pd.DataFrame, parse_errors: pd.DataFrame,
                    inputs: dict[str, TableInput], typed_all: dict[str, pd.DataFrame],
                    bad_all: dict[str, np.ndarray]) -> list[pd.DataFrame]:
    """Schema, duplicate and reference findings of one coerced table (parents already done)."""
    found = []
    verr = validate_frame(typed, t)
    # A value that failed to parse is null now; its "missing value" would be a duplicate.
    if len(verr) and len(parse_errors):
        known = pd.MultiIndex.from_frame(parse_errors[["pos", "column"]])
        here = pd.MultiIndex.from_frame(verr[["pos", "column"]])
        verr = verr[~(here.isin(known) & (verr["rule"] == "missing").to_numpy())]
    found.append(verr)
    found.append(plausibility_problems(typed, t))
    found.append(duplicate_problems(typed, t, inp.files, inp.rows))
    for child, ccol, parent, pcol, noun in REFERENCES:
        if child != t or parent not in typed_all or not inputs[parent].complete:
            continue
        pin = inputs[parent]
        found.append(reference_problems(
            typed[ccol], typed_all[parent][pcol], ~bad_all[parent], noun, parent,
            pin.files, pin.rows))
    return found


def _quarantine_rows(inp: TableInput, bad: np.ndarray, errs: pd.DataFrame) -> pd.DataFrame:
    """Raw values of the rows in error with ``_file``, ``_row`` and ``_reasons``."""
    q = inp.frame[bad].copy()
    q["_file"] = inp.files[bad]
    q["_row"] = inp.rows[bad]
    e = errs[(errs["severity"] == "error").to_numpy()]
    col = e["column"].astype(str)
    txt = (col.where(col == "", col + ": ") + e["reason"].astype(str)).groupby(
        e["pos"].to_numpy()).agg("; ".join)
    q["_reasons"] = txt.reindex(np.flatnonzero(bad)).to_numpy()
    return q.reset_index(drop=True)


def _concat(frames: list[pd.DataFrame], empty: pd.DataFrame) -> pd.DataFrame:
    frames = [f for f in frames if f is not None and len(f)]
    return pd.concat(frames, ignore_index=True) if frames else empty


def validate_tables(inputs: dict[str, TableInput], *, validate: bool = True,
                    problems: pd.DataFrame | None = None) -> ValidationResult:
    """Coerce, validate and cross-check several tables; split valid rows from quarantined ones.

    Parameters
    ----------
    inputs : dict
        Table name -> :class:`TableInput`.
    validate : bool
        False: parse values only (rows that cannot be parsed are still quarantined); skip the
        schema, duplicate and cross-table checks.
    problems : DataFrame, optional
        Findings made while reading (notices, fatal problems) to include in the report.

    Returns
    -------
    ValidationResult
        ``tables`` (typed valid rows, canonical column order), ``quarantine`` (raw rows with
        ``_file``, ``_row``, ``_reasons``) and the :class:`ValidationReport`.
    """
    order = [t for t in TABLE_ORDER if t in inputs] + [t for t in inputs if t not in TABLE_ORDER]
    typed_all: dict[str, pd.DataFrame] = {}
    bad_all: dict[str, np.ndarray] = {}
    tables: dict[str, pd.DataFrame] = {}
    quarantine: dict[str, pd.DataFrame] = {}
    parts = [problems] if problems is not None and len(problems) else []
    n_rows, n_valid, n_quar = {}, {}, {}
    for t in order:
        inp = inputs[t]
        inp.frame = inp.frame.reset_index(drop=True)
        typed, perr = coerce_frame(inp.frame, t)
        found = [perr] + ([inp.errors] if inp.errors is not None and len(inp.errors) else [])
        if validate:
            found += _table_findings(t, inp, typed, perr, inputs, typed_all, bad_all)
        errs = _concat(found, RowFindings().frame())
        bad = np.zeros(len(typed), dtype=bool)
        is_err = (errs["severity"] == "error").to_numpy()
        bad[errs["pos"].to_numpy(dtype=np.int64)[is_err]] = True
        typed_all[t], bad_all[t] = typed, bad
        tables[t] = _finalize_types(typed[~bad], t)
        quarantine[t] = _quarantine_rows(inp, bad, errs)
        parts.append(table_problems(t, inp, errs))
        n_rows[t], n_valid[t], n_quar[t] = len(typed), int((~bad).sum()), int(bad.sum())
        log.info("%s: %d rows, %d valid, %d quarantined", t, n_rows[t], n_valid[t], n_quar[t])
    if validate and "households" in inputs and "members" in inputs and inputs["members"].complete:
        hs = household_size_problems(typed_all["households"], typed_all["members"])
        parts.append(table_problems("households", inputs["households"], hs))
    allp = _concat(parts, empty_problems())
    report = ValidationReport(problem_dtypes(allp), n_rows, n_valid, n_quar)
    return ValidationResult(tables, quarantine, report)
