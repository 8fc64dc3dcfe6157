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

Content, not columns: :class:`Masker` (and :func:`mask_text`) find ID numbers anywhere in any text
(18 or 15 digits, check digit valid or not, with or without spaces/hyphens between the groups) and
the names it was given (those of the members table being processed), so a name or ID in the
wrong column or in free text (a 备注 column, an error message, a notebook's output) is masked too.
Every writer of something that leaves the data owner's directory passes it through one Masker.
"""
from __future__ import annotations

import re
from typing import overload

import numpy as np
import pandas as pd

from evalkit import dictionary

__all__ = ["mask_id_number", "mask_name", "mask_frame", "pii_columns", "masked_heads", "mask_text", "Masker",
           "ID_PATTERN", "known_names"]

#: An ID number by content: 18 characters (17 digits + digit or X) or 15 digits, optionally split
#: into the usual groups (6 region, 8 or 6 birth date, 3 sequence, 1 check) by one space or hyphen.
#: Digits right before or after the match exclude it (a longer number is not an ID), and so does a
#: decimal point right before it (the fraction digits of a float such as ``0.123456789012345``).
ID_PATTERN = re.compile(
    r"(?<![0-9])(?<![0-9]\.)(?:[0-9]{6}[ \-]?[0-9]{8}[ \-]?[0-9]{3}[ \-]?[0-9Xx]|[0-9]{6}[ \-]?[0-9]{6}[ \-]?[0-9]{3})"
    r"(?![0-9Xx])")
#: Shortest name masked by content (one character would mask every occurrence of a common word).
_MIN_NAME = 2


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


def mask_frame(df: pd.DataFrame, names=()) -> pd.DataFrame:
    """Copy of ``df`` with personal data masked in every column.

    Name and ID-number columns recognized by header (see :func:`pii_columns`) are masked cell by
    cell as a whole; every other cell is masked by content (:class:`Masker`): ID numbers anywhere
    in it (text, or a number of 15+ digits), and the names of ``names`` plus those found in the
    frame's own name columns (a name shifted into the wrong column or quoted in a remark). Names
    are then also masked inside the header-recognized columns (a name left in an ID column).
    """
    out = df.copy()
    by_header = pii_columns(out.columns)
    own = known_names(*[out[c] for c, kind in by_header.items() if kind == "name"])
    for col, kind in by_header.items():
        out[col] = mask_name(out[col]) if kind == "name" else mask_id_number(out[col])
    m = Masker(list(names) + own)
    for col in out.columns:
        out[col] = m.series(out[col])
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


def _name_ok(n: str) -> bool:
    # ASCII-only names are skipped by content (they could hit base64 images or markup); names
    # with a CJK character are what the register holds.
    return len(n) >= _MIN_NAME and not n.isascii() and not ID_PATTERN.search(n)


def known_names(*columns: pd.Series | None) -> list[str]:
    """Distinct, stripped names (2+ characters, not pure ASCII) from name columns, longest first."""
    vals: set[str] = set()
    for c in columns:
        if c is None or len(c) == 0:
            continue
        t = _to_text(pd.Series(c, dtype=object)).dropna()
        vals.update(v for v in t.unique().tolist() if isinstance(v, str) and _name_ok(v))
    return sorted(vals, key=lambda v: (-len(v), v))


#: A run of non-ASCII characters: where a name (2+ characters, not pure ASCII) can be.
_WIDE_RUN = re.compile(r"[^\x00-\x7f]{2,}")


class Masker:
    """One masker for everything that leaves the data owner's directory.

    Parameters
    ----------
    names : iterable of str, optional
        Names to mask wherever they appear (usually every ``name`` of the members table being
        processed, see :func:`known_names`); ID numbers are found by content (:data:`ID_PATTERN`).

    Names are looked up in a set, not a regex of alternatives: runs of non-ASCII text are scanned
    left to right, longest name first, so the cost grows with the text, not with the number of
    names (a province has hundreds of thousands). Names holding an ASCII character go through a
    (small) regex.
    """

    def __init__(self, names=()) -> None:
        self.names = known_names(pd.Series(list(names), dtype=object))
        wide = [n for n in self.names if not any(c.isascii() for c in n)]
        self._set = frozenset(wide)
        self._lengths = sorted({len(n) for n in wide}, reverse=True)
        mixed = [n for n in self.names if any(c.isascii() for c in n)]
        self._mixed_re = re.compile("|".join(re.escape(n) for n in mixed)) if mixed else None

    @staticmethod
    def _mask_id(m: re.Match) -> str:
        t = m.group(0)  # the rule of mask_id_number, in plain Python: one call per hit in long text
        return t[:6] + "*" * (len(t) - 8) + t[-2:] if len(t) > 8 else "*" * len(t)

    @staticmethod
    def _star_name(t: str) -> str:
        # the rule of mask_name for a stripped, non-empty name, in plain Python
        return t[0] + "*" * (len(t) - 2) + t[-1] if len(t) >= 3 else (t[0] + "*" if len(t) == 2 else "*")

    def _mask_name(self, m: re.Match) -> str:
        return self._star_name(m.group(0))

    def _names_in_run(self, m: re.Match) -> str:
        s = m.group(0)
        out, i, n = [], 0, len(s)
        while i < n:
            for k in self._lengths:
                if k <= n - i and s[i:i + k] in self._set:
                    out.append(self._star_name(s[i:i + k]))
                    i += k
                    break
            else:
                out.append(s[i])
                i += 1
        return "".join(out)

    def _names(self, s: str) -> str:
        if self._set:
            s = _WIDE_RUN.sub(self._names_in_run, s)
        if self._mixed_re is not None:
            s = self._mixed_re.sub(self._mask_name, s)
        return s

    def text(self, s: str | None) -> str | None:
        """``s`` with every ID number and known name masked (None stays None)."""
        if s is None or not isinstance(s, str):
            return s
        return self._names(ID_PATTERN.sub(self._mask_id, s))

    def series(self, s: pd.Series) -> pd.Series:
        """Text values of ``s`` masked by content (numbers of 15+ digits become masked text)."""
        if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
            v = pd.to_numeric(s, errors="coerce").abs()
            if not (v >= 1e14).any():
                return s
            return mask_id_number(s).where(v >= 1e14, s.astype(object))  # an ID Excel turned into a number
        if not (s.dtype == object or isinstance(s.dtype, pd.StringDtype)):
            return s
        isstr = s.map(lambda v: isinstance(v, str), na_action="ignore").fillna(False).astype(bool)
        if not isstr.any():
            return s
        masked = s[isstr].astype(str).str.replace(ID_PATTERN, self._mask_id, regex=True)
        if self._set:
            masked = masked.str.replace(_WIDE_RUN, self._names_in_run, regex=True)
        if self._mixed_re is not None:
            masked = masked.str.replace(self._mixed_re, self._mask_name, regex=True)
        out = s.astype(object).copy()
        out[isstr] = masked.to_numpy()
        return out

    def frame(self, df: pd.DataFrame) -> pd.DataFrame:
        """Copy of ``df``: name/ID columns masked (:func:`mask_frame`), then every text cell by content."""
        return mask_frame(df, names=self.names)


def mask_text(s: str | None, names=()) -> str | None:
    """``s`` with every ID number (by content) and every one of ``names`` masked."""
    return Masker(names).text(s)
