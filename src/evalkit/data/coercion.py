"""Coercion: raw values of a column (text, Excel numbers, typed Parquet) into its dictionary dtype.

The only transformations applied to valid data are these documented parsings (real exports are
full of them):

- codes and ID numbers: Excel's text markers (a leading ``'``, a ``="…"`` wrapper) and zero-width
  or BOM characters are removed, each with a row notice (``text_marker``); exact integers of a
  typed (Parquet) column are taken as their digits, floats that lost digits are refused;
- every non-``string`` value: NFKC (full-width digits and letters -> ASCII) and trimmed; an empty
  value is null; ``string`` values are only trimmed;
- ``codeN`` / ``id16``: an Excel number (``610602`` or ``610602.0``, also the text ``"610602.0"``)
  becomes the digit string ``"610602"``; nothing is ever padded, so a code that lost its leading
  zeros is an error, not a repair;
- ``id18``: upper-case ``x``; a number or scientific notation is an error (precision is lost);
- ``money``: spaces, thousands separators (``,`` ``，``) and ``元`` ``¥`` ``￥`` removed;
- ``int``: thousands separators removed, ``12.0`` -> 12; ``year``: a trailing ``年`` removed;
- ``bool``: 是/否, 有/无, Y/N, yes/no, true/false, T/F, 1/0, √/× (also ✓/✗), case-insensitive;
- ``category:LIST``: any accepted spelling (code, Chinese, English, listed variant) -> the code;
- :data:`NOT_IN_EXPORT`: a cell of a column the national export does not have (set by
  :mod:`evalkit.data.layouts` only) is null, i.e. unknown, with a notice (``not_in_export``), so
  that an income-only household list still gives panel rows instead of quarantining them for a
  "missing value".

A value that cannot be parsed becomes null and a row finding (its row is quarantined later).

Canonical dtypes of a typed table: codes, ids, strings and categories ``str``; money and float
``float64``; int and year ``int64`` (``Int64`` when the column is optional); bool ``bool``
(``boolean`` when optional).
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from functools import lru_cache

import numpy as np
import pandas as pd

from evalkit import dictionary
from evalkit.data.problems import RowFindings
from evalkit.errors import ParameterError

__all__ = [
    "MSG_ID_NUMBER", "MSG_MARKER", "MSG_LONG_NUMBER", "MSG_SCI", "MSG_LEADING", "canonical_dtype",
    "validation_dtype", "ascii_digits", "null_series", "coerce_series", "coerce_frame",
    "POVERTY_ATTRIBUTES", "parse_poverty_attribute", "NOT_IN_EXPORT", "MSG_NOT_IN_EXPORT",
]

MSG_ID_NUMBER = ("ID number was stored as a number and lost precision (Excel); re-export as text"
                 " — not repaired")
MSG_LONG_NUMBER = ("was stored as a number with more than 15 digits, which Excel cannot hold exactly;"
                   " re-export the column as text — not repaired")
MSG_SCI = ("was stored as a number in scientific notation and lost digits (Excel); re-export the"
           " column as text — not repaired")
MSG_LEADING = "leading zeros may have been lost in Excel; re-export the column as text"
#: Marks the cells of a column the national export does not have (see the module docstring).
NOT_IN_EXPORT = "（导出无此列）"
MSG_NOT_IN_EXPORT = "not in the export: unknown (left empty)"

_SCI_RE = r"[+-]?[0-9]+(?:\.[0-9]*)?[eE][+-]?[0-9]+"
_FLOATISH_ID_RE = r"[+-]?[0-9]+\.[0-9]*(?:E[+-]?[0-9]+)?|[+-]?[0-9]+E[+-]?[0-9]+"
_BOOL = {
    "是": True, "否": False, "有": True, "无": False, "y": True, "n": False, "yes": True,
    "no": False, "true": True, "false": False, "t": True, "f": False, "1": True, "0": False,
    "1.0": True, "0.0": False, "√": True, "×": False, "✓": True, "✔": True, "✗": False, "✘": False,
}
_MAX_EXACT = 1e15  # Excel keeps 15 significant digits
_BAD = object()  # sentinel: a value that does not parse


def ascii_digits(s: pd.Series, width: int | None = None) -> pd.Series:
    """True where a value is ASCII digits only (of ``width`` if given); null -> False.

    Plain string kernels instead of a regex: several times faster on millions of rows.
    """
    m = s.str.isascii() & s.str.isdigit()
    if width is not None:
        m &= s.str.len() == width
    return m.fillna(False).astype(bool)


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


def validation_dtype(col: dictionary.Column) -> str:
    """dtype of a column while it is validated: nullable, since a value that failed to parse is null."""
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


def null_series(n: int, index: pd.Index, dtype: str) -> pd.Series:
    """A Series of ``n`` nulls of ``dtype`` (an absent column or unparsable values)."""
    return pd.Series(pd.array([None] * n, dtype=dtype) if dtype not in ("str", "float64")
                     else np.full(n, np.nan), index=index, dtype=dtype)


def _int_text(v: np.ndarray) -> np.ndarray:
    return v.astype(np.int64).astype(str)


#: Zero-width and BOM characters that exporters and copy-paste leave inside codes.
_INVISIBLE = "[\u200b\u200c\u200d\u2060\ufeff\u00ad]"
MSG_MARKER = "Excel text marker or invisible character removed"


def _int_exact(s: pd.Series) -> pd.Series | None:
    """Digits of an integer-typed column (Parquet int64 is exact), else None."""
    if pd.api.types.is_integer_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        v = s.astype("Int64")
        return v.astype("str").where(v.notna())
    return None


def _strip_markers(t: pd.Series, col: str, errs: RowFindings) -> pd.Series:
    """Remove ``'…``, ``="…"`` and invisible characters from codes, with a row notice."""
    if t.isna().all():
        return t
    # ``t`` is trimmed (_norm), so a marker can only be the first character; testing that first keeps
    # the per-value regex to the few candidates (it was half of a large county's load time).
    has = t.str.contains(_INVISIBLE, regex=True).fillna(False).to_numpy(dtype=bool, copy=True)
    first = t.str.startswith(("'", "=")).fillna(False).to_numpy(dtype=bool)
    if first.any():
        idx = np.flatnonzero(first)
        marked = t.iloc[idx].str.contains(r"^(?:'|=\s*\")", regex=True).fillna(False).to_numpy(dtype=bool)
        has[idx] |= marked
    if not has.any():
        return t
    sub = t[has].str.replace(_INVISIBLE, "", regex=True).str.strip()
    sub = sub.str.replace(r'^=\s*"(.*)"$', r"\1", regex=True).str.replace(r"^'", "", regex=True)
    errs.add(has, col, MSG_MARKER, "text_marker", "notice")
    t = t.copy()
    t[has] = sub.to_numpy()
    return t


def _c_code(s: pd.Series, col: str, errs: RowFindings) -> pd.Series:
    exact = _int_exact(s)
    if exact is not None:
        return exact
    text, num = _split(s)
    out = _strip_markers(_norm(text), col, errs) if text is not None else null_series(len(s), s.index, "str")
    if text is not None:
        rest = (~ascii_digits(out) & out.notna()).to_numpy()
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


def _c_id18(s: pd.Series, col: str, errs: RowFindings) -> pd.Series:
    exact = _int_exact(s)
    if exact is not None:
        return exact
    text, num = _split(s)
    if num is not None:
        errs.add(~np.isnan(num.to_numpy()), col, MSG_ID_NUMBER, "id_precision")
    if text is None:
        return null_series(len(s), s.index, "str")
    out = _strip_markers(_norm(text), col, errs).str.upper()
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


def _c_number(s: pd.Series, col: str, errs: RowFindings, kind: str) -> pd.Series:
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


def _c_bool(s: pd.Series, col: str, errs: RowFindings) -> pd.Series:
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
    t = text if text is not None else null_series(len(s), s.index, "str")
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


def _c_string(s: pd.Series, col: str, errs: RowFindings) -> pd.Series:
    exact = _int_exact(s)
    if exact is not None:
        return exact
    text, num = _split(s)
    out = text.str.strip() if text is not None else null_series(len(s), s.index, "str")
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
    errs = RowFindings()
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
        raise ParameterError(f"unknown dictionary dtype {dtype!r} for column {column!r}")
    return out, errs.frame().sort_values("pos", kind="stable").reset_index(drop=True)


@lru_cache(maxsize=None)
def _markable(table: str) -> frozenset[str]:
    """Columns data.layouts may fill with NOT_IN_EXPORT: the panel columns an income-only list lacks."""
    if table != "panel":
        return frozenset()
    keys = ("household_id", "year", "county_code", "village_code", "income_per_capita")
    return frozenset(c.name for c in dictionary.table(table).columns if c.name not in keys)


def _not_in_export(s: pd.Series) -> tuple[pd.Series, np.ndarray | None]:
    """Raw values with :data:`NOT_IN_EXPORT` cells nulled, and where they were (None: none)."""
    if not (s.dtype == object or isinstance(s.dtype, pd.StringDtype)):
        return s, None  # typed columns (Parquet) never carry the marker
    m = s.eq(NOT_IN_EXPORT).fillna(False).to_numpy(dtype=bool)
    if not m.any():
        return s, None
    return s.where(~m), m


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
            src, marked = _not_in_export(raw[c.name]) if c.name in _markable(table) else (raw[c.name], None)
            v, e = coerce_series(src, c.dtype, c.name)
            cols[c.name] = v.astype(validation_dtype(c))
            parts.append(e)
            if marked is not None:
                found = RowFindings()
                found.add(marked, c.name, MSG_NOT_IN_EXPORT, "not_in_export", "notice")
                parts.append(found.frame())
        else:
            cols[c.name] = null_series(n, raw.index, validation_dtype(c))
    for c in raw.columns:
        if c not in cols:
            cols[c] = raw[c]
    typed = pd.DataFrame(cols, index=raw.index)
    errors = pd.concat(parts, ignore_index=True) if parts else RowFindings().frame()
    return typed, errors


#: 脱贫属性 of the national register's exports (spelling after NFKC, spaces removed) -> register_status
#: code. The system marks a registered household 未脱贫 or 已脱贫, from 2019 also by class (享受政策 /
#: 不享受政策的脱贫户, 脱贫监测户; docs/policy.md §5.1, [D4]); 返贫 households are poor again.
POVERTY_ATTRIBUTES: dict[str, str] = {
    **dict.fromkeys(["未脱贫", "未脱贫户", "贫困户", "返贫", "返贫户"], "poor"),
    **dict.fromkeys(["已脱贫", "脱贫", "脱贫户", "已脱贫户", "稳定脱贫", "标注脱贫", "已标注脱贫", "享受政策",
                     "不享受政策", "享受政策的脱贫户", "不享受政策的脱贫户", "脱贫享受政策", "脱贫不享受政策",
                     "已脱贫(享受政策)", "已脱贫(不享受政策)", "脱贫(享受政策)", "脱贫(不享受政策)"], "exited"),
    **dict.fromkeys(["脱贫监测户", "脱贫不稳定户", "监测户"], "monitored"),
    **dict.fromkeys(["边缘户", "边缘易致贫户"], "edge"),
    **dict.fromkeys(["非贫困户", "非建档立卡户"], "not_registered"),
}
_ATTR_YEAR = re.compile(r"(20[0-9]{2})年?度?(.*)")


def _attribute_of(u: str) -> tuple[str | None, int | None, bool]:
    """(status code, exit year, recognized) of one distinct 脱贫属性 spelling."""
    k = re.sub(r"\s+", "", unicodedata.normalize("NFKC", u))
    if not k:
        return None, None, True
    if k in POVERTY_ATTRIBUTES:
        return POVERTY_ATTRIBUTES[k], None, True
    m = _ATTR_YEAR.fullmatch(k)
    # '2017年脱贫', '2017年度已脱贫': exited in that year
    if m and POVERTY_ATTRIBUTES.get(m.group(2)) == "exited":
        return "exited", int(m.group(1)), True
    return None, None, False


def parse_poverty_attribute(s: pd.Series) -> tuple[pd.Series, pd.Series, np.ndarray]:
    """Register status codes and exit years from a 脱贫属性 column of a national export.

    Accepted spellings are :data:`POVERTY_ATTRIBUTES` and an exit with its year in front
    (``2017年脱贫``, ``2017年度已脱贫``); full-width characters and spaces do not matter. Only the
    distinct values are parsed.

    Returns
    -------
    status : Series
        ``register_status`` codes (str), null where the cell is empty or not recognized.
    year : Series
        Exit year (Int64) where the value states one, else null.
    bad : ndarray of bool
        True where a non-empty value is not a recognized poverty attribute.
    """
    text = s.astype(object).where(s.notna(), "").astype(str)
    codes, uniques = pd.factorize(text)
    parsed = [_attribute_of(u) for u in uniques]  # distinct spellings only
    status = np.array([p[0] for p in parsed], dtype=object)[codes]
    year = pd.array([p[1] for p in parsed], dtype="Int64")[codes]
    bad = ~np.array([p[2] for p in parsed], dtype=bool)[codes]
    return (pd.Series(status, index=s.index, dtype="str"), pd.Series(year, index=s.index), bad)
