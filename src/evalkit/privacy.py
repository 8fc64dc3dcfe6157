"""Masking of personal data (names and resident ID numbers).

Register records carry names and 18-character ID numbers. Nothing that leaves the analysis
(reports, ledgers, logs, validation reports, quarantine files) may show either in full, so every
writer passes values through these functions first.

- ID numbers keep their first 6 characters (the county of registration) and their last 2; every
  character in between becomes ``*``. Values of 8 characters or fewer are masked entirely,
  because keeping 6 + 2 of them would reveal the whole value.
- Names: 1 character -> ``*``; 2 -> first + ``*``; 3 or more -> first + ``*`` x (n-2) + last.

Nulls stay null. Both functions accept a scalar or a :class:`pandas.Series` and are vectorized
with the pandas ``.str`` accessor.
"""
from __future__ import annotations

import re
from typing import overload

import numpy as np
import pandas as pd

from evalkit import dictionary

__all__ = ["mask_id_number", "mask_name", "mask_frame", "pii_columns", "masked_heads"]


def _to_text(s: pd.Series) -> pd.Series:
    """Series as the pandas string dtype; numbers (e.g. IDs read from Excel) become their text."""
    if isinstance(s.dtype, pd.StringDtype):
        return s.str.strip()
    null = s.isna()
    out = s.astype(object).where(null, s.astype(str)).astype("str")
    return out.str.strip()


def _on_scalar(fn, s):
    """Apply a Series masker to one value (nulls stay as they are)."""
    if s is None or s is pd.NA or (isinstance(s, float) and np.isnan(s)):
        return s
    return fn(pd.Series([s], dtype=object)).iloc[0]


def _stars(part: pd.Series) -> pd.Series:
    return part.str.replace(r".", "*", regex=True)


@overload
def mask_id_number(s: pd.Series) -> pd.Series: ...
@overload
def mask_id_number(s: str | None) -> str | None: ...


def mask_id_number(s):
    """Mask ID numbers: keep the first 6 and last 2 characters, ``*`` in between.

    Parameters
    ----------
    s : Series or str
        ID numbers (any content: malformed values are masked too). Nulls stay null.

    Returns
    -------
    Series or str
        Same shape as ``s``; values of 8 characters or fewer are fully masked.
    """
    if not isinstance(s, pd.Series):
        return _on_scalar(mask_id_number, s)
    t = _to_text(s)
    n = t.str.len()
    keep = t.str.slice(0, 6) + _stars(t.str.slice(6, -2)) + t.str.slice(-2)
    out = keep.where(n > 8, _stars(t))
    return out.where(~s.isna())


@overload
def mask_name(s: pd.Series) -> pd.Series: ...
@overload
def mask_name(s: str | None) -> str | None: ...


def mask_name(s):
    """Mask personal names: ``张*``, ``张*丰``, ``欧**锋``; one character becomes ``*``.

    Parameters
    ----------
    s : Series or str
        Names; surrounding spaces are dropped before masking. Nulls stay null.

    Returns
    -------
    Series or str
    """
    if not isinstance(s, pd.Series):
        return _on_scalar(mask_name, s)
    t = _to_text(s)
    n = t.str.len()
    first = t.str.slice(0, 1)
    long_ = first + _stars(t.str.slice(1, -1)) + t.str.slice(-1)
    out = long_.where(n >= 3, (first + "*").where(n == 2, _stars(t)))
    return out.where(~s.isna())


_NAME_HEADER = re.compile(r"(姓名|名字|联系人|^name$|head_name|person_name|contact)", re.IGNORECASE)
_NOT_A_PERSON = re.compile(r"(village|township|county|city|province|乡|镇|村|县|市|省|model|sheet|file)", re.IGNORECASE)
_ID_HEADER = re.compile(r"(身份证|证件号|身份号码|id_number|idcard|id_card)", re.IGNORECASE)
_FULL_ID = r"\d{17}[\dXx]"


def pii_columns(columns, frame: pd.DataFrame | None = None) -> dict[str, str]:
    """Columns holding personal data: ``{column: 'name' | 'id_number'}``.

    Recognized by header in any table (canonical names, every header the dictionary accepts,
    and any header mentioning 姓名 / 身份证 / 证件号 / name / id_number, such as ``户主姓名`` or
    ``户主身份证号``) and, when ``frame`` is given, by content: a column in which any value looks
    like a full 18-character ID number (or a number of 17+ digits, an ID that Excel turned into a
    float) is treated as ID numbers whatever its header.
    """
    hm = dictionary.header_map("members")
    out: dict[str, str] = {}
    for c in columns:
        h = dictionary.normalize_header(c)
        canon = hm.get(h.lower())
        if canon in ("name", "id_number"):
            out[c] = canon
        elif _ID_HEADER.search(h):
            out[c] = "id_number"
        elif _NAME_HEADER.search(h) and not _NOT_A_PERSON.search(h):
            out[c] = "name"
    if frame is not None:
        for c in frame.columns:
            if c in out:
                continue
            s = frame[c]
            if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
                v = pd.to_numeric(s, errors="coerce").abs()
                if (v >= 1e16).any():
                    out[c] = "id_number"
            elif s.dtype == object or isinstance(s.dtype, pd.StringDtype):
                if s.dropna().astype(str).str.strip().str.fullmatch(_FULL_ID).any():
                    out[c] = "id_number"
    return out


def mask_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Copy of ``df`` with name and ID-number columns masked (see :func:`pii_columns`, by header
    and by content)."""
    out = df.copy()
    for col, kind in pii_columns(out.columns, out).items():
        out[col] = mask_name(out[col]) if kind == "name" else mask_id_number(out[col])
    return out


def masked_heads(members: pd.DataFrame) -> pd.DataFrame:
    """One row per household: ``household_id, head_name_masked, head_id_number_masked``.

    The head is the member whose ``relation_to_head`` is ``head``, else the first member by
    ``person_id``; name and ID number are masked here, so callers never hold them in clear.
    """
    m = members.assign(_nothead=(members["relation_to_head"].astype(str) != "head"))
    sort_cols = ["household_id", "_nothead"] + (["person_id"] if "person_id" in m.columns else [])
    head = m.sort_values(sort_cols, kind="stable").drop_duplicates("household_id")
    return pd.DataFrame({"household_id": head["household_id"].to_numpy(),
                         "head_name_masked": mask_name(head["name"]).to_numpy(),
                         "head_id_number_masked": mask_id_number(head["id_number"]).to_numpy()})
