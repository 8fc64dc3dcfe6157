"""Resident ID numbers (居民身份证号码, GB 11643): the check character and its validation.

One home for the ISO 7064 MOD 11-2 check: the validator of loaded data, the generator of the
synthetic province and the masker all use it.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = ["check_digit", "check_digits", "valid_id_number"]

_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2], dtype=np.int64)
_CHECK_CHARS = np.array(list("10X98765432"))


def check_digits(first17: np.ndarray) -> np.ndarray:
    """Check characters of an array of strings that are exactly 17 ASCII digits each.

    ``'10X98765432'[sum(d_i * w_i) mod 11]`` with weights 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2.
    """
    raw = np.asarray(first17, dtype=object).astype("S17")
    digits = np.frombuffer(raw.tobytes(), dtype=np.uint8).reshape(-1, 17).astype(np.int64) - 48
    return _CHECK_CHARS[(digits @ _WEIGHTS) % 11]


def check_digit(id17: Any) -> pd.Series:
    """Check character of 17-digit strings (vectorized); values that are not 17 ASCII digits give null.

    Parameters
    ----------
    id17 : Series or array-like of str
        The first 17 characters of ID numbers.

    Returns
    -------
    Series of str
    """
    s = id17 if isinstance(id17, pd.Series) else pd.Series(id17, dtype="str")
    if not isinstance(s.dtype, pd.StringDtype):
        s = s.astype("str")
    ok = s.str.fullmatch(r"[0-9]{17}").fillna(False).to_numpy(dtype=bool)
    out = np.full(len(s), np.nan, dtype=object)
    if ok.any():
        out[ok] = check_digits(s.to_numpy(dtype=object)[ok])
    return pd.Series(out, index=s.index, dtype="str")


def valid_id_number(s: Any) -> pd.Series:
    """True where a value is an 18-character ID number with a correct check character.

    Surrounding spaces are ignored and a lower-case ``x`` is accepted; nulls are False.
    """
    s = s if isinstance(s, pd.Series) else pd.Series(s)
    t = s.astype("str").str.strip().str.upper()
    shape = t.str.fullmatch(r"[0-9]{17}[0-9X]").fillna(False)
    cd = check_digit(t.str.slice(0, 17).where(shape))
    return (shape & (cd == t.str.slice(17, 18)).fillna(False)).astype(bool)
