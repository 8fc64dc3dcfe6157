"""pandera schemas of the register tables, built from the data dictionary, and their findings.

A schema checks a coerced frame (see :func:`evalkit.data.coercion.coerce_frame`): the dtype,
nullability ("missing value"), code lists, ranges (:mod:`evalkit.data.rules`), code widths, the
ID-number shape and check character (:mod:`evalkit.ids`), then the cross-column rules. Each pandera
failure is translated into a row finding with the reason a person reads in the report.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from evalkit import dictionary
from evalkit.data.coercion import MSG_LEADING, ascii_digits, validation_dtype
from evalkit.data.problems import RowFindings
from evalkit.data.rules import cross_rules, range_checks
from evalkit.ids import check_digit

__all__ = ["MSG_MISSING", "table_schema", "validate_frame"]

MSG_MISSING = "missing value"


def _pattern_reason(width: int, what: str) -> Callable[[pd.Series], np.ndarray]:
    def reason(v: pd.Series) -> np.ndarray:
        t = v.astype("str")
        k = t.str.len().fillna(0).astype(int).astype(str)
        digits = t.str.fullmatch(r"[0-9]+").fillna(False)
        shorter = digits & (t.str.len() < width)
        longer = digits & (t.str.len() > width)
        out = np.full(len(t), f"is not a {width}-digit {what}", dtype=object)
        out[shorter.to_numpy()] = (
            "has " + k[shorter] + f" digits, expected {width}: {MSG_LEADING}").to_numpy()
        out[longer.to_numpy()] = ("has " + k[longer] + f" digits, expected {width}").to_numpy()
        return out
    return reason


def _id18_reason(v: pd.Series) -> np.ndarray:
    t = v.astype("str")
    n = t.str.len().fillna(0).astype(int)
    out = np.full(len(t), "contains characters other than digits and a final X", dtype=object)
    wrong = (n != 18).to_numpy()
    out[wrong] = ("has " + n.astype(str)[wrong] + " characters, expected 18").to_numpy()
    return out


def _id18_check_digit(s: pd.Series) -> pd.Series:
    shape = s.str.fullmatch(r"[0-9]{17}[0-9X]").fillna(False)
    return ~shape | (check_digit(s.str.slice(0, 17).where(shape)) == s.str.slice(17, 18)).fillna(False)


@lru_cache(maxsize=None)
def _column_check_meta(table: str) -> dict[tuple[str, str], tuple[str, object]]:
    """(column, check name) -> (rule, reason: str or function of failure values)."""
    meta: dict[tuple[str, str], tuple[str, object]] = {}
    for c in dictionary.table(table).columns:
        meta[(c.name, "not_nullable")] = ("missing", MSG_MISSING)
        for name, _, reason in range_checks(c):
            meta[(c.name, name)] = ("range", reason)
        m = re.fullmatch(r"code([0-9]+)", c.dtype)
        if m or c.dtype == "id16":
            width = int(m.group(1)) if m else 16
            what = "code" if m else "household number"
            meta[(c.name, f"pattern:{c.dtype}")] = ("code_length", _pattern_reason(width, what))
        if c.dtype == "id18":
            meta[(c.name, "pattern:id18")] = ("id_format", _id18_reason)
            meta[(c.name, "check_digit")] = (
                "check_digit", "check digit does not match the first 17 digits (ISO 7064 MOD 11-2)")
        if c.code_list:
            accepted = ", ".join(f"{k}/{v['zh']}" for k, v in dictionary.codes(c.code_list).items())
            meta[(c.name, f"isin:{c.code_list}")] = (
                "code_list", f"not in code list {c.code_list} (accepted: {accepted})")
    return meta


@lru_cache(maxsize=None)
def table_schema(table: str, severity: str = "error") -> pa.DataFrameSchema:
    """pandera schema of a table, built from the data dictionary.

    Parameters
    ----------
    table : str
        Canonical table name.
    severity : {'error', 'warning'}
        ``'error'``: dtypes, nullability of required columns, code lists, ranges, patterns, the
        check digit and the error-level cross-column rules. ``'warning'``: only the warning-level
        cross-column rules (rows failing them are kept).

    Returns
    -------
    pandera.DataFrameSchema
        To be applied to a coerced frame (see :func:`coerce_frame`); it does not coerce.
    """
    spec = dictionary.table(table)
    rules = [r for r in cross_rules(table) if r.severity == severity]
    wide = [pa.Check(lambda d, r=r: pd.Series(r.ok(d), index=d.index), name=f"rule:{r.name}")
            for r in rules]
    if severity == "warning":
        return pa.DataFrameSchema(checks=wide, name=f"{table} (warnings)")
    columns = {}
    for c in spec.columns:
        checks = [pa.Check(fn, name=name) for name, fn, _ in range_checks(c)]
        m = re.fullmatch(r"code([0-9]+)", c.dtype)
        if m or c.dtype == "id16":
            width = int(m.group(1)) if m else 16
            checks.append(pa.Check(lambda s, w=width: ascii_digits(s, w), name=f"pattern:{c.dtype}"))
        if c.dtype == "id18":
            checks.append(pa.Check(lambda s: s.str.fullmatch(r"[0-9]{17}[0-9X]"), name="pattern:id18"))
            checks.append(pa.Check(_id18_check_digit, name="check_digit"))
        if c.code_list:
            allowed = list(dictionary.codes(c.code_list))
            checks.append(pa.Check(lambda s, a=tuple(allowed): s.isin(a), name=f"isin:{c.code_list}"))
        columns[c.name] = pa.Column(validation_dtype(c), checks=checks, nullable=not c.required,
                                    required=True)
    return pa.DataFrameSchema(columns, checks=wide, strict=False, name=table)


def _run_schema(schema: pa.DataFrameSchema, df: pd.DataFrame) -> pd.DataFrame:
    try:
        schema.validate(df, lazy=True, inplace=True)
    except SchemaErrors as e:
        fc = e.failure_cases
        bad = fc["index"].isna()
        if bad.any():  # a failure without a row means a dtype or check bug, not bad data
            raise RuntimeError(
                f"schema {schema.name!r} failed structurally:\n{fc[bad].to_string()}") from None
        return fc
    return pd.DataFrame(columns=["schema_context", "column", "check", "failure_case", "index"])


def validate_frame(typed: pd.DataFrame, table: str) -> pd.DataFrame:
    """Run the pandera schemas of ``table`` on a coerced frame.

    Returns
    -------
    DataFrame
        Findings with ``pos``, ``column``, ``reason``, ``rule``, ``severity`` (error or warning).
    """
    errs = RowFindings()
    meta = _column_check_meta(table)
    rules = {f"rule:{r.name}": r for r in cross_rules(table)}
    canon = dictionary.table(table).names
    for severity in ("error", "warning"):
        schema = table_schema(table, severity)
        if severity == "warning" and not schema.checks:
            continue
        fc = _run_schema(schema, typed[canon] if severity == "error" else typed)
        if fc.empty:
            continue
        col_fc = fc[fc["schema_context"] == "Column"]
        for (col, check), g in col_fc.groupby(["column", "check"], sort=False):
            rule, reason = meta.get((col, check), ("schema", str(check)))
            pos = g["index"].to_numpy(dtype=np.int64)
            r = reason(g["failure_case"].reset_index(drop=True)) if callable(reason) else reason
            errs.add_pos(pos, col, r, rule, severity)
        wide_fc = fc[fc["schema_context"] == "DataFrameSchema"]
        for check, g in wide_fc.groupby("check", sort=False):
            rule = rules[check]
            pos = np.unique(g["index"].to_numpy(dtype=np.int64))
            reason = rule.reason if isinstance(rule.reason, str) else \
                np.asarray(rule.reason(typed.iloc[pos]), dtype=object)
            errs.add_pos(pos, rule.column, reason, rule.name, rule.severity)
    return errs.frame()
