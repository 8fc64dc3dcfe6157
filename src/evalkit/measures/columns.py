"""Input checks shared by the household indicators and poverty measures.

Every check raises :class:`evalkit.errors.MeasureError` naming the column and what is wrong.
"""
from __future__ import annotations

from collections.abc import Hashable, Sequence
from functools import partial

import numpy as np
import pandas as pd

from evalkit.errors import MeasureError
from evalkit.errors import require_columns as check_columns

#: Missing columns of a table raise :class:`~evalkit.errors.MeasureError` (one checker for every package).
require_columns = partial(check_columns, error=MeasureError)

__all__ = ["as_list", "require_columns", "as_boolean", "check_finite"]


def as_list(by: Hashable | Sequence[Hashable] | None) -> list[Hashable]:
    """Grouping argument as a list: None -> [], one column name -> [name]."""
    if by is None:
        return []
    if isinstance(by, (str, int)) or not isinstance(by, Sequence):
        return [by]
    return list(by)


def as_boolean(s: pd.Series, name: Hashable) -> pd.Series:
    """Nullable boolean copy; NA stays NA (unknown), anything not boolean-like raises."""
    try:
        return s.astype("boolean")
    except (TypeError, ValueError) as e:
        raise MeasureError(
            f"column {name!r} must hold booleans (True/False, 1/0, or missing); "
            f"map yes/no labels (e.g. in Chinese) to booleans first: {e}"
        ) from None


def check_finite(a: np.ndarray, what: str) -> None:
    """Raise :class:`MeasureError` when ``a`` has missing or infinite values."""
    if not np.all(np.isfinite(a)):
        raise MeasureError(f"{what} has missing or infinite values; drop or impute them first")
