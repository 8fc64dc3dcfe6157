"""Validation of register tables: coercion of raw values, pandera schemas, cross-row and cross-table rules.

Every value read from a file goes through two steps.

1. **Coercion** turns the raw value (a string from CSV/Excel, a number from an Excel cell, or an
   already-typed Parquet value) into the canonical dtype of its column. A value that cannot be
   parsed becomes a :class:`Problem` and its row is quarantined.
2. **Validation** runs a pandera ``DataFrameSchema`` built from the data dictionary on the coerced
   frame (``lazy=True``): dtype, nullability ("missing value"), code lists, ranges, string patterns
   and the ID-number check digit, then the cross-column rules. Duplicate keys and links between
   tables (member -> household -> village -> county) are checked afterwards.

Valid data is never silently altered. The only transformations are these documented parsings:

- headers: NFKC (full-width -> half-width), trimming, removal of inner spaces, unified brackets,
  Chinese headers and listed variants mapped to canonical names (:func:`dictionary.header_map`);
- text files: encoding detected (UTF-8 with or without BOM, GB18030, then charset-normalizer),
  separator detected (``,`` tab ``;`` ``|``), title rows above the header skipped;
- every non-``string`` value: NFKC (full-width digits and letters -> ASCII) and trimmed; an empty
  value is null; ``string`` values are only trimmed;
- ``codeN`` / ``id16``: an Excel number (``610602`` or ``610602.0``, also the text ``"610602.0"``)
  becomes the digit string ``"610602"``; nothing is ever padded, so a code that lost its leading
  zeros is an error, not a repair;
- ``id18``: upper-case ``x``; a number or scientific notation is an error (precision is lost);
- ``money``: spaces, thousands separators (``,`` ``，``) and ``元`` ``¥`` ``￥`` removed;
- ``int``: thousands separators removed, ``12.0`` -> 12; ``year``: a trailing ``年`` removed;
- ``bool``: 是/否, 有/无, Y/N, yes/no, true/false, T/F, 1/0, √/× (also ✓/✗), case-insensitive;
- ``category:LIST``: any accepted spelling (code, Chinese, English, listed variant) -> the code.

Severities: ``fatal`` (a file or table could not be read; exit code 2), ``error`` (the row is
quarantined), ``warning`` (the row is kept), ``notice`` (information: blank rows skipped, unknown
columns kept, encoding used...). Problem values of ``name`` and ``id_number`` are masked.

Canonical dtypes of a typed table: codes, ids, strings and categories ``str``; money and float
``float64``; int and year ``int64`` (``Int64`` when the column is optional); bool ``bool``
(``boolean`` when optional).
"""
from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow as pyarrow_
import pyarrow.compute as pc
from pandera.errors import SchemaErrors

from . import dictionary
from .privacy import mask_id_number, mask_name

__all__ = [
    "Problem", "ValidationReport", "TableInput", "ValidationResult", "PROBLEM_COLUMNS",
    "SEVERITIES", "check_digit", "valid_id_number", "coerce_series", "coerce_frame",
    "table_schema", "validate_frame", "duplicate_problems", "reference_problems",
    "validate_tables", "empty_problems", "canonical_dtype",
]

log = logging.getLogger(__name__)

SEVERITIES = ("fatal", "error", "warning", "notice")
PROBLEM_COLUMNS = ["file", "table", "row", "column", "header", "value", "reason", "severity", "rule"]
PII = {"name": mask_name, "id_number": mask_id_number}

# Tables are validated parents first so that a quarantined parent can be seen by its children.
TABLE_ORDER = ("counties", "villages", "households", "members", "panel", "truth", "field_survey")
# (child table, child column, parent table, parent column, noun used in the reason)
REFERENCES = (
    ("villages", "county_code", "counties", "county_code", "county"),
    ("households", "village_code", "villages", "village_code", "village"),
    ("members", "household_id", "households", "household_id", "household"),
    ("panel", "household_id", "households", "household_id", "household"),
    ("truth", "household_id", "households", "household_id", "household"),
    ("field_survey", "household_id", "households", "household_id", "household"),
)

MSG_ID_NUMBER = ("ID number was stored as a number and lost precision (Excel); re-export as text"
                 " — not repaired")
MSG_LONG_NUMBER = ("was stored as a number with more than 15 digits, which Excel cannot hold exactly;"
                   " re-export the column as text — not repaired")
MSG_SCI = ("was stored as a number in scientific notation and lost digits (Excel); re-export the"
           " column as text — not repaired")
MSG_LEADING = "leading zeros may have been lost in Excel; re-export the column as text"
MSG_MISSING = "missing value"

_SCI_RE = r"[+-]?[0-9]+(?:\.[0-9]*)?[eE][+-]?[0-9]+"
_FLOATISH_ID_RE = r"[+-]?[0-9]+\.[0-9]*(?:E[+-]?[0-9]+)?|[+-]?[0-9]+E[+-]?[0-9]+"
_BOOL = {
    "是": True, "否": False, "有": True, "无": False, "y": True, "n": False, "yes": True,
    "no": False, "true": True, "false": False, "t": True, "f": False, "1": True, "0": False,
    "1.0": True, "0.0": False, "√": True, "×": False, "✓": True, "✔": True, "✗": False, "✘": False,
}
_MAX_EXACT = 1e15  # Excel keeps 15 significant digits
_BAD = object()  # sentinel: a value that does not parse


def _ascii_digits(s: pd.Series, width: int | None = None) -> pd.Series:
    """True where a value is ASCII digits only (of ``width`` if given); null -> False.

    Plain string kernels instead of a regex: several times faster on millions of rows.
    """
    m = s.str.isascii() & s.str.isdigit()
    if width is not None:
        m &= s.str.len() == width
    return m.fillna(False).astype(bool)


def _isin(a: pd.Series, values: pd.Series) -> np.ndarray:
    """``a.isin(values)`` through Arrow's hash kernel (pandas' is slow for Arrow strings)."""
    try:
        vs = pd.Series(values).dropna().drop_duplicates()
        res = pc.is_in(pyarrow_.array(a), value_set=pyarrow_.array(vs))
        return res.fill_null(False).to_numpy(zero_copy_only=False).astype(bool)
    except (pyarrow_.ArrowException, TypeError, ValueError):
        return a.isin(values).to_numpy(dtype=bool)


# ---------------------------------------------------------------------------------------------
# Problems
# ---------------------------------------------------------------------------------------------
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


def empty_problems() -> pd.DataFrame:
    """An empty problems frame with the standard columns."""
    return _problems_frame([])


def _problems_frame(records: Iterable[Problem | dict]) -> pd.DataFrame:
    rows = [asdict(r) if isinstance(r, Problem) else r for r in records]
    df = pd.DataFrame(rows, columns=PROBLEM_COLUMNS)
    return _problem_dtypes(df)


def _problem_dtypes(df: pd.DataFrame) -> pd.DataFrame:
    df = df.reindex(columns=PROBLEM_COLUMNS)
    for c in PROBLEM_COLUMNS:
        if c == "row":
            df[c] = pd.to_numeric(df[c], errors="coerce").astype("Int64")
        else:
            df[c] = df[c].astype("str")
    return df


class _Errs:
    """Position-based findings of one table, collected as small frames (vectorized)."""

    def __init__(self) -> None:
        self.parts: list[pd.DataFrame] = []

    def add(self, mask, column: str, reason: str | np.ndarray | pd.Series, rule: str,
            severity: str = "error", value: np.ndarray | pd.Series | None = None) -> None:
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
        if len(pos) == 0:
            return
        part = pd.DataFrame({"pos": np.asarray(pos, dtype=np.int64), "column": column,
                             "reason": reason, "rule": rule, "severity": severity})
        if value is not None:
            part["value"] = value
        self.parts.append(part)

    def frame(self) -> pd.DataFrame:
        cols = ["pos", "column", "reason", "rule", "severity", "value"]
        if not self.parts:
            return pd.DataFrame({c: pd.Series(dtype="int64" if c == "pos" else object) for c in cols})
        return pd.concat(self.parts, ignore_index=True).reindex(columns=cols)


# ---------------------------------------------------------------------------------------------
# ID numbers
# ---------------------------------------------------------------------------------------------
_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2], dtype=np.int64)
_CHECK_CHARS = np.array(list("10X98765432"))


def check_digit(id17: pd.Series) -> pd.Series:
    """ISO 7064 MOD 11-2 check character of 17-digit strings (vectorized).

    Parameters
    ----------
    id17 : Series of str
        The first 17 characters of ID numbers. Values that are not exactly 17 ASCII digits give null.

    Returns
    -------
    Series of str
        ``'10X98765432'[sum(d_i * w_i) mod 11]`` with weights 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2.
    """
    s = id17 if isinstance(id17, pd.Series) else pd.Series(id17, dtype="str")
    if not isinstance(s.dtype, pd.StringDtype):
        s = s.astype("str")
    ok = s.str.fullmatch(r"[0-9]{17}").fillna(False).to_numpy(dtype=bool)
    out = np.full(len(s), np.nan, dtype=object)
    if ok.any():
        raw = s.to_numpy(dtype=object)[ok].astype("S17")
        digits = np.frombuffer(raw.tobytes(), dtype=np.uint8).reshape(-1, 17).astype(np.int64) - 48
        out[ok] = _CHECK_CHARS[(digits @ _WEIGHTS) % 11]
    return pd.Series(out, index=s.index, dtype="str")


def valid_id_number(s: pd.Series) -> pd.Series:
    """True where a value is an 18-character ID number with a correct check character.

    Surrounding spaces are ignored and a lower-case ``x`` is accepted; nulls are False.
    """
    s = s if isinstance(s, pd.Series) else pd.Series(s)
    t = s.astype("str").str.strip().str.upper()
    shape = t.str.fullmatch(r"[0-9]{17}[0-9X]").fillna(False)
    cd = check_digit(t.str.slice(0, 17).where(shape))
    return (shape & (cd == t.str.slice(17, 18)).fillna(False)).astype(bool)


# ---------------------------------------------------------------------------------------------
# Coercion
# ---------------------------------------------------------------------------------------------
def canonical_dtype(col: dictionary.Column, *, nullable: bool | None = None) -> str:
    """pandas dtype of a column in a typed table (``nullable`` defaults to ``not col.required``)."""
    nullable = (not col.required) if nullable is None else nullable
    d = col.dtype
    if d in ("money", "float"):
        return "float64"
    if d in ("int", "year"):
        return "Int64" if nullable else "int64"
    if d == "bool":
        return "boolean" if nullable else "bool"
    return "str"


def _validation_dtype(col: dictionary.Column) -> str:
    # During validation every column may hold nulls (values that failed to parse).
    return canonical_dtype(col, nullable=True)


def _split(s: pd.Series) -> tuple[pd.Series | None, pd.Series | None]:
    """Split raw values into text (str dtype) and numbers (float64); nulls are NaN in both."""
    if isinstance(s.dtype, pd.CategoricalDtype):  # dictionary-encoded Parquet column
        s = s.astype(s.cat.categories.dtype)
    if pd.api.types.is_bool_dtype(s.dtype):
        return s.astype(object).where(s.notna()).map({True: "True", False: "False"}).astype("str"), None
    if pd.api.types.is_numeric_dtype(s.dtype):
        return None, s.astype("float64")
    if isinstance(s.dtype, pd.StringDtype):
        return s, None
    arr = s.to_numpy(dtype=object)
    isnum = np.fromiter(
        (isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))
         for v in arr), dtype=bool, count=len(arr))
    null = pd.isna(arr)
    text = pd.Series(np.where(isnum | null, None, arr), index=s.index, dtype=object)
    text = text.where(text.isna(), text.astype(str)).astype("str")
    if not isnum.any():
        return text, None
    num = pd.Series(np.where(isnum & ~null, arr, np.nan).astype("float64"), index=s.index)
    return text, num


def _norm(t: pd.Series) -> pd.Series:
    """NFKC (only where needed: it is a no-op on ASCII), trim, empty -> NaN."""
    nonascii = ~t.str.isascii().fillna(True).to_numpy(dtype=bool)
    nonascii &= t.notna().to_numpy()
    if nonascii.any():
        t = t.copy()
        t[nonascii] = t[nonascii].str.normalize("NFKC")
    t = t.str.strip()
    return t.where(t != "")


def _map_uniques(t: pd.Series, fn: Callable[[str], object]) -> np.ndarray:
    """Apply ``fn`` to the distinct values only; nulls map to None."""
    codes, uniques = pd.factorize(t, use_na_sentinel=True)
    mapped = np.array([fn(u) for u in uniques] + [None], dtype=object)
    return mapped[codes]  # code -1 picks the trailing None


def _empty(n: int, index: pd.Index, dtype: str) -> pd.Series:
    return pd.Series(pd.array([None] * n, dtype=dtype) if dtype not in ("str", "float64")
                     else np.full(n, np.nan), index=index, dtype=dtype)


def _int_text(v: np.ndarray) -> np.ndarray:
    return v.astype(np.int64).astype(str)


def _c_code(s: pd.Series, col: str, errs: _Errs) -> pd.Series:
    text, num = _split(s)
    out = _norm(text) if text is not None else _empty(len(s), s.index, "str")
    if text is not None:
        rest = (~_ascii_digits(out) & out.notna()).to_numpy()
        if rest.any():  # the rare values that are not plain digit strings
            sub = out[rest]
            sci = sub.str.fullmatch(_SCI_RE).fillna(False).to_numpy(dtype=bool)
            flt = sub.str.fullmatch(r"[0-9]+\.0*").fillna(False).to_numpy(dtype=bool)
            full_sci = np.zeros(len(out), dtype=bool)
            full_sci[np.flatnonzero(rest)[sci]] = True
            errs.add(full_sci, col, MSG_SCI, "number_precision")
            out = out.copy()
            out[full_sci] = np.nan
            if flt.any():
                idx = np.flatnonzero(rest)[flt]
                out[idx] = sub[flt].str.replace(r"\.0*$", "", regex=True).to_numpy()
    if num is not None:
        v = num.to_numpy()
        m = ~np.isnan(v)
        with np.errstate(invalid="ignore"):
            frac = m & (~np.isfinite(v) | (np.floor(v) != v) | (v < 0))
            big = m & ~frac & (np.abs(v) >= _MAX_EXACT)
        ok = m & ~frac & ~big
        errs.add(frac, col, "is a number with a fraction or sign, not a digit code", "code_format")
        errs.add(big, col, MSG_LONG_NUMBER, "number_precision")
        if ok.any():
            out = out.copy()
            out[ok] = _int_text(v[ok])
    return out


def _c_id18(s: pd.Series, col: str, errs: _Errs) -> pd.Series:
    text, num = _split(s)
    if num is not None:
        errs.add(~np.isnan(num.to_numpy()), col, MSG_ID_NUMBER, "id_precision")
    if text is None:
        return _empty(len(s), s.index, "str")
    out = _norm(text).str.upper()
    floaty = out.str.fullmatch(_FLOATISH_ID_RE).fillna(False)
    errs.add(floaty, col, MSG_ID_NUMBER, "id_precision")
    return out.where(~floaty)


def _numeric_text(t: pd.Series, strip_re: str | None) -> np.ndarray:
    """Parse numbers; only values that fail as they are get the documented characters removed."""
    v = pd.to_numeric(t, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    retry = (t.notna().to_numpy() & np.isnan(v))
    if strip_re and retry.any():
        v = v.copy()
        v[retry] = pd.to_numeric(t[retry].str.replace(strip_re, "", regex=True),
                                 errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    return v


def _c_number(s: pd.Series, col: str, errs: _Errs, kind: str) -> pd.Series:
    """money, float, int and year."""
    text, num = _split(s)
    if text is None and kind in ("int", "year") and pd.api.types.is_integer_dtype(s.dtype):
        return s.astype("Int64")  # typed fast path (Parquet)
    v = num.to_numpy(copy=True) if num is not None else np.full(len(s), np.nan)
    if text is not None:
        t = _norm(text)
        strip = {"money": r"[\s,，元¥￥]", "int": r"[\s,，]", "year": r"年$"}.get(kind)
        tv = _numeric_text(t, strip)
        has_t = t.notna().to_numpy()
        v = np.where(has_t, tv, v)
        what = {"money": "is not an amount in yuan", "float": "is not a number",
                "int": "is not a whole number", "year": "is not a year"}[kind]
        errs.add(has_t & np.isnan(tv), col, what, "not_number")
    with np.errstate(invalid="ignore"):
        inf = np.isinf(v)
        errs.add(inf, col, "is not a finite number", "not_number")
        v = np.where(inf, np.nan, v)
        if kind in ("int", "year"):
            frac = ~np.isnan(v) & (np.floor(v) != v)
            errs.add(frac, col, "is not a whole number", "not_integer")
            v = np.where(frac, np.nan, v)
            return pd.Series(v, index=s.index).astype("Int64")
    return pd.Series(v, index=s.index, dtype="float64")


def _text_key(u: str) -> str:
    return unicodedata.normalize("NFKC", u).strip()


def _c_bool(s: pd.Series, col: str, errs: _Errs) -> pd.Series:
    if pd.api.types.is_bool_dtype(s.dtype):
        return s.astype("boolean")
    text, num = _split(s)
    out = np.full(len(s), None, dtype=object)
    msg = "is not a yes/no value (是/否, 有/无, Y/N, 1/0, √/×)"
    if text is not None:
        # Few distinct spellings: normalize those, not every row.
        codes, uniques = pd.factorize(text, use_na_sentinel=True)
        keys = [_text_key(u) for u in uniques]
        vals = [_BOOL.get(k.lower(), _BAD) if k else None for k in keys]
        bad_u = np.array([v is _BAD for v in vals] + [False], dtype=bool)
        val_u = np.array([None if v is _BAD else v for v in vals] + [None], dtype=object)
        errs.add(bad_u[codes], col, msg, "not_bool")
        mapped = val_u[codes]
        has_t = text.notna().to_numpy()
        out = np.where(has_t, mapped, out)
    if num is not None:
        v = num.to_numpy()
        m = ~np.isnan(v)
        bad = m & (v != 0) & (v != 1)
        errs.add(bad, col, msg, "not_bool")
        ok = m & ~bad
        out[ok] = v[ok] == 1
    return pd.Series(pd.array(out, dtype="boolean"), index=s.index)


def _c_category(s: pd.Series, col: str, list_name: str) -> pd.Series:
    lookup = dictionary.code_lookup(list_name)
    text, num = _split(s)
    t = text if text is not None else _empty(len(s), s.index, "str")
    if num is not None:
        v = num.to_numpy()
        m = ~np.isnan(v)
        integral = m & np.isfinite(v) & (np.floor(v) == v)
        t = t.copy()
        t[integral] = _int_text(v[integral])
        other = m & ~integral
        t[other] = v[other].astype(str)

    def spell(u: str) -> str | None:
        u = u.strip()
        return lookup.get(dictionary.normalize_header(u).lower(), u) if u else None

    return pd.Series(_map_uniques(t, spell), index=s.index, dtype="str")


def _c_string(s: pd.Series, col: str, errs: _Errs) -> pd.Series:
    text, num = _split(s)
    out = text.str.strip() if text is not None else _empty(len(s), s.index, "str")
    out = out.where(out != "")
    if num is not None:
        v = num.to_numpy()
        m = ~np.isnan(v)
        with np.errstate(invalid="ignore"):
            big = m & (np.abs(v) >= _MAX_EXACT)
            integral = m & ~big & np.isfinite(v) & (np.floor(v) == v)
        errs.add(big, col, MSG_LONG_NUMBER, "number_precision")
        out = out.copy()
        out[integral] = _int_text(v[integral])
        other = m & ~big & ~integral
        out[other] = v[other].astype(str)
    return out


def coerce_series(s: pd.Series, dtype: str, column: str = "") -> tuple[pd.Series, pd.DataFrame]:
    """Parse raw values of one column into a dictionary dtype.

    Parameters
    ----------
    s : Series
        Raw values: strings (CSV/Excel), Excel numbers, or already-typed Parquet values.
    dtype : str
        Dictionary dtype (``code6``, ``id16``, ``id18``, ``money``, ``int``, ``float``, ``year``,
        ``bool``, ``category:LIST``, ``string``).
    column : str
        Column name used in the findings.

    Returns
    -------
    values : Series
        Parsed values (nullable dtype; null where the value was empty or could not be parsed).
    errors : DataFrame
        One row per value that could not be parsed: ``pos`` (0-based position), ``column``,
        ``reason``, ``rule``, ``severity``.
    """
    s = s.reset_index(drop=True)
    errs = _Errs()
    if dtype == "id18":
        out = _c_id18(s, column, errs)
    elif dtype == "id16" or re.fullmatch(r"code[0-9]+", dtype):
        out = _c_code(s, column, errs)
    elif dtype in ("money", "float", "int", "year"):
        out = _c_number(s, column, errs, dtype)
    elif dtype == "bool":
        out = _c_bool(s, column, errs)
    elif dtype.startswith("category:"):
        out = _c_category(s, column, dtype.split(":", 1)[1])
    elif dtype == "string":
        out = _c_string(s, column, errs)
    else:
        raise ValueError(f"unknown dictionary dtype {dtype!r} for column {column!r}")
    return out, errs.frame().sort_values("pos", kind="stable").reset_index(drop=True)


def coerce_frame(raw: pd.DataFrame, table: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Coerce every canonical column of ``raw`` (absent optional columns become null).

    Columns not in the dictionary are kept unchanged after the canonical ones.

    Returns
    -------
    typed : DataFrame
        Canonical columns in dictionary order with validation dtypes (all nullable), RangeIndex.
    errors : DataFrame
        Parse failures as in :func:`coerce_series`.
    """
    spec = dictionary.table(table)
    raw = raw.reset_index(drop=True)
    n = len(raw)
    cols: dict[str, pd.Series] = {}
    parts = []
    for c in spec.columns:
        if c.name in raw.columns:
            v, e = coerce_series(raw[c.name], c.dtype, c.name)
            cols[c.name] = v.astype(_validation_dtype(c))
            parts.append(e)
        else:
            cols[c.name] = _empty(n, raw.index, _validation_dtype(c))
    for c in raw.columns:
        if c not in cols:
            cols[c] = raw[c]
    typed = pd.DataFrame(cols, index=raw.index)
    errors = pd.concat(parts, ignore_index=True) if parts else _Errs().frame()
    return typed, errors


# ---------------------------------------------------------------------------------------------
# pandera schemas
# ---------------------------------------------------------------------------------------------
def _year_range(col: str) -> tuple[int, int]:
    return (1900, 2030) if col == "birth_year" else (2014, 2030)


# Column checks whose limits are not implied by the dtype: name -> (check, reason, rule).
def _range_checks(col: dictionary.Column) -> list[tuple[str, Callable, str]]:
    n = col.name
    if col.dtype == "year":
        lo, hi = _year_range(n)
        return [(f"range:{lo}-{hi}", lambda s, lo=lo, hi=hi: (s >= lo) & (s <= hi),
                 f"year outside {lo}–{hi}")]
    if n == "household_size":
        return [("min:household_size", lambda s: s >= 1, "household size must be at least 1"),
                ("max:household_size", lambda s: s <= 30, "household size above 30")]
    if n == "rural_population":
        return [("min:rural_population", lambda s: s >= 0, "population cannot be negative")]
    if n in ("prob_village", "prob_household"):
        return [("prob:(0,1]", lambda s: (s > 0) & (s <= 1), "probability outside (0, 1]")]
    if n == "true_risk_prob":
        return [("prob:[0,1]", lambda s: (s >= 0) & (s <= 1), "probability outside [0, 1]")]
    if n == "weight":
        return [("min:weight", lambda s: s > 0, "design weight must be greater than 0")]
    return []


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


@dataclass(frozen=True)
class _Rule:
    """A cross-column rule: rows where ``ok`` is False get ``reason`` on ``column``."""

    name: str
    column: str
    ok: Callable[[pd.DataFrame], np.ndarray]
    reason: Callable[[pd.DataFrame], object]
    severity: str = "error"


def _b(x: pd.Series, fill: bool) -> np.ndarray:
    return x.fillna(fill).to_numpy(dtype=bool)


def _prefix_ok(df: pd.DataFrame, long: str, short: str) -> np.ndarray:
    a, b = df[long], df[short]
    both = (a.notna() & b.notna()).to_numpy()
    ok = np.ones(len(df), dtype=bool)
    if both.any():
        aa, bb = a[both], b[both]
        w = bb.str.len()
        # Codes have one width per column, so a per-width loop is at most one iteration.
        res = np.zeros(len(aa), dtype=bool)
        for width in w.unique():
            sel = (w == width).to_numpy()
            res[sel] = (aa[sel].str.slice(0, int(width)) == bb[sel]).to_numpy(dtype=bool)
        ok[both] = res
    return ok


def _cross_rules(table: str) -> list[_Rule]:
    names = set(dictionary.table(table).names)
    rules: list[_Rule] = []
    if {"village_code", "county_code"} <= names:
        rules.append(_Rule(
            "village_in_county", "village_code", lambda d: _prefix_ok(d, "village_code", "county_code"),
            lambda d: "village_code does not start with county_code " + d["county_code"].astype(str)))
    if table == "counties":
        rules.append(_Rule(
            "province_of_county", "province_code", lambda d: _prefix_ok(d, "county_code", "province_code"),
            lambda d: "province_code differs from the first two digits of county_code "
                      + d["county_code"].astype(str)))
        rules.append(_Rule(
            "city_of_county", "city_code", lambda d: _prefix_ok(d, "county_code", "city_code"),
            lambda d: "city_code differs from the first four digits of county_code "
                      + d["county_code"].astype(str)))
    if table == "households":
        for c in ("poverty_type", "main_cause", "registration_year", "exit_year"):
            rules.append(_Rule(
                f"unregistered_{c}", c,
                lambda d, c=c: ~(_b(d["registered"] == False, False) & d[c].notna().to_numpy()),  # noqa: E712
                f"household is not registered (是否建档立卡 = 否) but {c} is filled"))
        rules.append(_Rule(
            "registered_poverty_type", "poverty_type",
            lambda d: ~(_b(d["registered"], False) & d["poverty_type"].isna().to_numpy()),
            "registered household without poverty_type"))
        rules.append(_Rule(
            "exit_after_registration", "exit_year",
            lambda d: _b(d["exit_year"] >= d["registration_year"], True),
            lambda d: "exit_year " + d["exit_year"].astype(str) + " is before registration_year "
                      + d["registration_year"].astype(str)))
        rules.append(_Rule(
            "household_in_village", "household_id",
            lambda d: _prefix_ok(d, "household_id", "village_code"),
            "household_id does not start with village_code (relocated household?)", "warning"))
    if table == "members":
        rules.append(_Rule(
            "birth_year_matches_id", "birth_year", _birth_year_ok,
            "birth_year differs from the year of birth in the ID number", "warning"))
        rules.append(_Rule(
            "person_in_household", "person_id", lambda d: _prefix_ok(d, "person_id", "household_id"),
            "person_id does not start with household_id", "warning"))
    if table == "panel":
        rules.append(_Rule("income_components", "income_per_capita", _income_ok, _income_reason,
                           "warning"))
    if table == "field_survey":
        rules.append(_Rule(
            "weight_is_inverse_probability", "weight", _weight_ok,
            "weight differs by more than 1% from 1 / (prob_village × prob_household)", "warning"))
    return rules


def _birth_year_ok(d: pd.DataFrame) -> np.ndarray:
    ids = d["id_number"]
    shape = ids.str.fullmatch(r"[0-9]{17}[0-9X]").fillna(False)
    y = pd.to_numeric(ids.str.slice(6, 10).where(shape), errors="coerce").to_numpy(dtype=float)
    b = d["birth_year"].astype("float64").to_numpy()
    return np.isnan(y) | np.isnan(b) | (y == b)


_INCOME_PARTS = ("income_wage", "income_business", "income_property", "income_transfer")


def _income_gap(d: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    total = d[list(_INCOME_PARTS)].sum(axis=1, min_count=len(_INCOME_PARTS))
    return total, (total - d["income_per_capita"]).abs()


def _income_ok(d: pd.DataFrame) -> np.ndarray:
    _, gap = _income_gap(d)
    gap = gap.to_numpy(dtype=float)
    tol = np.maximum(1.0, 0.01 * d["income_per_capita"].abs().to_numpy(dtype=float))
    return np.isnan(gap) | (gap <= tol)  # NaN: a part is missing or failed to parse


def _income_reason(d: pd.DataFrame) -> pd.Series:
    total, _ = _income_gap(d)
    return ("income components sum to " + total.round(2).astype(str) + ", not income_per_capita "
            + d["income_per_capita"].round(2).astype(str) + " (difference > max(1 yuan, 1%))")


def _weight_ok(d: pd.DataFrame) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        expect = 1.0 / (d["prob_village"] * d["prob_household"]).to_numpy(dtype=float)
        gap = np.abs(d["weight"].to_numpy(dtype=float) - expect)
        return ~np.isfinite(gap) | (gap <= 0.01 * np.abs(expect))


@lru_cache(maxsize=None)
def _column_check_meta(table: str) -> dict[tuple[str, str], tuple[str, object]]:
    """(column, check name) -> (rule, reason: str or function of failure values)."""
    meta: dict[tuple[str, str], tuple[str, object]] = {}
    for c in dictionary.table(table).columns:
        meta[(c.name, "not_nullable")] = ("missing", MSG_MISSING)
        for name, _, reason in _range_checks(c):
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
    rules = [r for r in _cross_rules(table) if r.severity == severity]
    wide = [pa.Check(lambda d, r=r: pd.Series(r.ok(d), index=d.index), name=f"rule:{r.name}")
            for r in rules]
    if severity == "warning":
        return pa.DataFrameSchema(checks=wide, name=f"{table} (warnings)")
    columns = {}
    for c in spec.columns:
        checks = [pa.Check(fn, name=name) for name, fn, _ in _range_checks(c)]
        m = re.fullmatch(r"code([0-9]+)", c.dtype)
        if m or c.dtype == "id16":
            width = int(m.group(1)) if m else 16
            checks.append(pa.Check(lambda s, w=width: _ascii_digits(s, w), name=f"pattern:{c.dtype}"))
        if c.dtype == "id18":
            checks.append(pa.Check(lambda s: s.str.fullmatch(r"[0-9]{17}[0-9X]"), name="pattern:id18"))
            checks.append(pa.Check(_id18_check_digit, name="check_digit"))
        if c.code_list:
            allowed = list(dictionary.codes(c.code_list))
            checks.append(pa.Check(lambda s, a=tuple(allowed): s.isin(a), name=f"isin:{c.code_list}"))
        columns[c.name] = pa.Column(_validation_dtype(c), checks=checks, nullable=not c.required,
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
    errs = _Errs()
    meta = _column_check_meta(table)
    rules = {f"rule:{r.name}": r for r in _cross_rules(table)}
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


# ---------------------------------------------------------------------------------------------
# Cross-row and cross-table
# ---------------------------------------------------------------------------------------------
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
    errs = _Errs()
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
    errs = _Errs()
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


# ---------------------------------------------------------------------------------------------
# Whole dataset
# ---------------------------------------------------------------------------------------------
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
    report: "ValidationReport"


def _finalize(table: str, inp: TableInput, errs: pd.DataFrame) -> pd.DataFrame:
    """Position-based findings -> problems frame (file, row, header, masked value)."""
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
    return _problem_dtypes(out)


def _finalize_types(typed: pd.DataFrame, table: str) -> pd.DataFrame:
    out = typed.reset_index(drop=True)
    for c in dictionary.table(table).columns:
        # Nulls left in a required column (validate=False) keep the nullable dtype.
        want = canonical_dtype(c, nullable=(not c.required) or bool(out[c.name].isna().any()))
        if str(out[c.name].dtype) != want:
            out[c.name] = out[c.name].astype(want)
    return out


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
            verr = validate_frame(typed, t)
            # A value that failed to parse is null now; its "missing value" would be a duplicate.
            if len(verr) and len(perr):
                known = pd.MultiIndex.from_frame(perr[["pos", "column"]])
                here = pd.MultiIndex.from_frame(verr[["pos", "column"]])
                verr = verr[~(here.isin(known) & (verr["rule"] == "missing").to_numpy())]
            found.append(verr)
            found.append(duplicate_problems(typed, t, inp.files, inp.rows))
            for child, ccol, parent, pcol, noun in REFERENCES:
                if child != t or parent not in typed_all or not inputs[parent].complete:
                    continue
                pin = inputs[parent]
                found.append(reference_problems(
                    typed[ccol], typed_all[parent][pcol], ~bad_all[parent], noun, parent,
                    pin.files, pin.rows))
        errs = pd.concat([f for f in found if len(f)], ignore_index=True) if any(len(f) for f in found) \
            else _Errs().frame()
        bad = np.zeros(len(typed), dtype=bool)
        is_err = (errs["severity"] == "error").to_numpy()
        bad[errs["pos"].to_numpy(dtype=np.int64)[is_err]] = True
        typed_all[t], bad_all[t] = typed, bad
        tables[t] = _finalize_types(typed[~bad], t)
        q = inp.frame[bad].copy()
        q["_file"] = inp.files[bad]
        q["_row"] = inp.rows[bad]
        e = errs[is_err]
        col = e["column"].astype(str)
        txt = (col.where(col == "", col + ": ") + e["reason"].astype(str)).groupby(
            e["pos"].to_numpy()).agg("; ".join)
        q["_reasons"] = txt.reindex(np.flatnonzero(bad)).to_numpy()
        quarantine[t] = q.reset_index(drop=True)
        parts.append(_finalize(t, inp, errs))
        n_rows[t], n_valid[t], n_quar[t] = len(typed), int((~bad).sum()), int(bad.sum())
        log.info("%s: %d rows, %d valid, %d quarantined", t, n_rows[t], n_valid[t], n_quar[t])
    allp = pd.concat([p for p in parts if len(p)], ignore_index=True) if any(len(p) for p in parts) \
        else empty_problems()
    report = ValidationReport(_problem_dtypes(allp), n_rows, n_valid, n_quar)
    return ValidationResult(tables, quarantine, report)


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------
_SEV_RANK = {s: i for i, s in enumerate(SEVERITIES)}


@dataclass
class ValidationReport:
    """All findings of a load, and row counts per table.

    Attributes
    ----------
    problems : DataFrame
        One row per finding, columns :data:`PROBLEM_COLUMNS`; values of names and ID numbers are
        masked.
    n_rows, n_valid, n_quarantined : dict
        Per table: non-blank data rows read, rows kept, rows quarantined.
    """

    problems: pd.DataFrame
    n_rows: dict[str, int] = field(default_factory=dict)
    n_valid: dict[str, int] = field(default_factory=dict)
    n_quarantined: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        p = self.problems
        if len(p):
            rank = p["severity"].map(_SEV_RANK).fillna(9)
            trank = p["table"].map({t: i for i, t in enumerate(TABLE_ORDER)}).fillna(99)
            p = p.assign(_s=rank.to_numpy(), _t=trank.to_numpy(), _r=p["row"].fillna(0).to_numpy())
            p = p.sort_values(["_s", "_t", "file", "_r"], kind="stable").drop(columns=["_s", "_t", "_r"])
        self.problems = p.reset_index(drop=True)

    def records(self) -> list[Problem]:
        """The findings as :class:`Problem` records."""
        return [Problem(**{k: (None if pd.isna(v) else (int(v) if k == "row" else v))
                           for k, v in r.items()}) for r in self.problems.to_dict("records")]

    def exit_code(self) -> int:
        """0 clean (warnings and notices allowed), 1 rows quarantined, 2 a file or table unreadable."""
        if (self.problems["severity"] == "fatal").any():
            return 2
        if self.n_quarantined_total > 0:
            return 1
        return 0

    def summary(self) -> pd.DataFrame:
        """Per table: rows, valid, quarantined, warnings, notices."""
        tabs = [t for t in dict.fromkeys(list(self.n_rows) + self.problems["table"].dropna().tolist()) if t]
        sev = self.problems.groupby(["table", "severity"]).size()
        rows = []
        for t in tabs:
            rows.append({"table": t, "rows": self.n_rows.get(t, 0), "valid": self.n_valid.get(t, 0),
                         "quarantined": self.n_quarantined.get(t, 0),
                         "warnings": int(sev.get((t, "warning"), 0)),
                         "notices": int(sev.get((t, "notice"), 0)),
                         "fatal": int(sev.get((t, "fatal"), 0))})
        return pd.DataFrame(rows, columns=["table", "rows", "valid", "quarantined", "warnings",
                                           "notices", "fatal"])

    def counts(self) -> pd.DataFrame:
        """Number of findings by severity, table, column and rule, with one example reason."""
        p = self.problems
        if p.empty:
            return pd.DataFrame(columns=["severity", "table", "column", "rule", "n", "example"])
        g = p.groupby(["severity", "table", "column", "rule"], sort=False, dropna=False)
        out = g.agg(n=("reason", "size"), example=("reason", "first")).reset_index()
        out["_s"] = out["severity"].map(_SEV_RANK)
        return out.sort_values(["_s", "n"], ascending=[True, False]).drop(columns="_s").reset_index(drop=True)

    _STATUS = {0: "clean", 1: "rows quarantined", 2: "unreadable input"}

    def _shown(self, max_rows: int) -> pd.DataFrame:
        return self.problems.head(max_rows)

    def to_text(self, max_rows: int = 50) -> str:
        """Plain-text report: counts per table, counts by reason, the first ``max_rows`` findings."""
        code = self.exit_code()
        lines = [f"Validation report: exit code {code} ({self._STATUS[code]})", ""]
        lines.append(self.summary().to_string(index=False))
        c = self.counts()
        if len(c):
            lines += ["", "Counts by reason:"]
            for r in c.itertuples(index=False):
                where = ".".join(x for x in (r.table, r.column) if x) or "-"
                lines.append(f"  {r.n:>7}  {r.severity:<7} {where} [{r.rule}] {r.example}")
        if len(self.problems):
            shown = self._shown(max_rows)
            lines += ["", f"Findings (first {len(shown)} of {len(self.problems)}):"]
            for r in shown.itertuples(index=False):
                row = "" if pd.isna(r.row) else f" row {r.row}"
                col = f" {r.header}" if r.header else ""
                val = f" value {r.value!r}" if r.value else ""
                lines.append(f"  {r.severity:<7} {r.file}{row}{col}{val}: {r.reason}")
            if len(self.problems) > len(shown):
                lines.append(f"  ... {len(self.problems) - len(shown)} more (write the report with to_csv)")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()

    @property
    def n_quarantined_total(self) -> int:
        """Quarantined rows over all tables."""
        return int(sum(self.n_quarantined.values()))

    def render(self, max_rows: int = 25, console=None) -> None:
        """Print the report with rich (about 50 lines): table counts, the 10 most frequent reasons
        and the first ``max_rows`` findings, one line each.

        Parameters
        ----------
        max_rows : int
            Findings shown (all of them are in :meth:`to_csv`).
        console : rich.console.Console, optional
            Default: a new console on standard output (HTML in Jupyter).
        """
        from rich.console import Console

        (console or Console()).print(self.renderable(max_rows))

    def renderable(self, max_rows: int = 25):
        """The rich renderable printed by :meth:`render` (a ``rich.console.Group``)."""
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        code = self.exit_code()
        style = {0: "green", 1: "yellow", 2: "bold red"}[code]
        parts: list = [Text(f"Validation report: exit code {code} ({self._STATUS[code]})", style=style)]
        summ = Table(title="Tables", show_edge=False)
        s = self.summary()
        for col in s.columns:
            summ.add_column(col, justify="left" if col == "table" else "right")
        for r in s.itertuples(index=False):
            summ.add_row(*[str(v) for v in r])
        parts.append(summ)
        c = self.counts()
        if len(c):
            ct = Table(title=f"Counts by reason ({min(len(c), 10)} of {len(c)})", show_edge=False)
            for col in ("n", "severity", "table", "column", "example"):
                ct.add_column(col, no_wrap=True, overflow="ellipsis")
            for r in c.head(10).itertuples(index=False):
                ct.add_row(str(r.n), r.severity, r.table, r.column, r.example)
            parts.append(ct)
        if len(self.problems):
            shown = self._shown(max_rows)
            pt = Table(title=f"Findings (first {len(shown)} of {len(self.problems)};"
                             " all of them with to_csv)", show_edge=False)
            for col in ("severity", "file", "row", "header", "value", "reason"):
                pt.add_column(col, no_wrap=True, overflow="ellipsis")
            for r in shown.itertuples(index=False):
                pt.add_row(r.severity, r.file, "" if pd.isna(r.row) else str(r.row), r.header,
                           r.value, r.reason)
            parts.append(pt)
        return Group(*parts)

    def __rich__(self):
        return self.renderable()

    def to_csv(self, path: str | Path) -> Path:
        """Write every finding to ``path`` (UTF-8 with BOM, so Excel shows Chinese correctly)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.problems.to_csv(path, index=False, encoding="utf-8-sig")
        return path
