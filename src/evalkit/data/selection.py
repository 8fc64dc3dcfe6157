"""County selection: the one place that turns ``'all'``, ``'poverty'``, codes or names into codes.

A selection names counties of a ``counties`` table (columns ``county_code``, optionally
``county_name``, ``is_poverty_county`` and ``planned_exit_year``). It may be

* ``None``, ``''`` or ``'all'``: every county of the table;
* ``'poverty'``: the counties an exit assessment applies to, poverty counties with a planned exit
  year (``is_poverty_county`` true and ``planned_exit_year`` not missing);
* a comma-separated string (``"610621,610622"``), a JSON list written as a string
  (``'["610621"]'``, as papermill parameters may arrive), or any iterable of codes (str or int);
* county names as written in the table (``延长县``), alone or mixed with codes.
"""
from __future__ import annotations

import json
from collections.abc import Iterable

import pandas as pd

from evalkit.errors import ParameterError

__all__ = ["ALL", "POVERTY", "parse_selection", "select_counties"]

#: Selection keyword for every county of the table.
ALL = "all"
#: Selection keyword for poverty counties with a planned exit year.
POVERTY = "poverty"
#: How many known counties an error message lists (a province has over a hundred).
_LISTED = 30


def parse_selection(spec: str | int | Iterable[str | int] | None) -> str | list[str]:
    """Normalize a selection without looking at any table.

    Returns
    -------
    str or list of str
        ``'all'`` or ``'poverty'`` for the keywords (``None`` and an empty selection are
        ``'all'``), else the stripped, non-empty entries in the given order (duplicates kept).

    Raises
    ------
    ParameterError
        A value that is neither a string nor an iterable, or an invalid JSON list.
    """
    if spec is None:
        return ALL
    if isinstance(spec, str):
        s = spec.strip()
        if s.lower() in (ALL, POVERTY):
            return s.lower()
        if s.startswith("["):
            try:
                parsed = json.loads(s)
            except json.JSONDecodeError as e:
                raise ParameterError(f"counties={spec!r}: not a valid list ({e})") from None
            return parse_selection(parsed if isinstance(parsed, list) else [parsed])
        items = [p.strip() for p in s.split(",")]
    elif isinstance(spec, (int, float)) and not isinstance(spec, bool):
        items = [str(int(spec))]
    elif isinstance(spec, Iterable):
        items = [str(c).strip() for c in spec]
    else:
        raise ParameterError(f"counties must be 'all', 'poverty', a list or a comma-separated string, "
                             f"got {spec!r}")
    items = [c for c in items if c]
    if not items or [c.lower() for c in items] == [ALL]:
        return ALL
    if [c.lower() for c in items] == [POVERTY]:
        return POVERTY
    return items


def _known(counties: pd.DataFrame) -> tuple[list[str], dict[str, str]]:
    """Codes of the table (sorted, unique) and ``{name: code}`` of the named ones."""
    if "county_code" not in counties.columns:
        raise ParameterError("the counties table has no county_code column")
    names = counties["county_name"] if "county_name" in counties.columns else [None] * len(counties)
    codes: set[str] = set()
    by_name: dict[str, str] = {}
    for c, n in zip(counties["county_code"], names):
        if pd.isna(c) or not str(c).strip():
            continue
        code = str(c).strip()
        codes.add(code)
        if n is not None and not pd.isna(n) and str(n).strip():
            by_name[str(n).strip()] = code
    return sorted(codes), by_name


def _poverty(counties: pd.DataFrame) -> list[str]:
    if "is_poverty_county" not in counties.columns:
        raise ParameterError("counties 'poverty' needs the column is_poverty_county in the counties table")
    sel = counties["is_poverty_county"].fillna(False).astype(bool)
    if "planned_exit_year" in counties.columns:
        sel &= counties["planned_exit_year"].notna()
    chosen = sorted({str(c).strip() for c in counties.loc[sel, "county_code"] if not pd.isna(c)})
    if not chosen:
        raise ParameterError("no poverty county with a planned exit year in the counties table")
    return chosen


def select_counties(counties: pd.DataFrame,
                    selection: str | int | Iterable[str | int] | None) -> list[str]:
    """County codes of ``counties`` named by ``selection`` (see the module docstring).

    Parameters
    ----------
    counties : pandas.DataFrame
        The counties table (``county_code``; ``county_name`` to select by name;
        ``is_poverty_county`` and ``planned_exit_year`` for ``'poverty'``).
    selection : str, iterable or None
        ``'all'``/None, ``'poverty'``, codes or names (a list or a comma-separated string).

    Returns
    -------
    list of str
        Sorted, duplicate-free county codes.

    Raises
    ------
    ParameterError
        Entries that are neither a code nor a name of the table (the message names them and lists
        the known counties), or ``'poverty'`` on a table without poverty counties.
    """
    spec = parse_selection(selection)
    codes, by_name = _known(counties)
    if spec == ALL:
        return codes
    if spec == POVERTY:
        return _poverty(counties)
    known = set(codes)
    chosen: set[str] = set()
    unknown: list[str] = []
    for item in spec:
        if item in known:
            chosen.add(item)
        elif item in by_name:
            chosen.add(by_name[item])
        else:
            unknown.append(item)
    if unknown:
        pairs = [f"{c} {n}".strip() for c, n in _code_names(codes, by_name)]
        listed = ", ".join(pairs[:_LISTED]) + (f" and {len(pairs) - _LISTED} more" if len(pairs) > _LISTED else "")
        raise ParameterError(f"unknown county code(s) {', '.join(unknown)}: neither a code nor a name of the "
                             f"counties table ({len(codes)} counties: {listed})")
    return sorted(chosen)


def _code_names(codes: list[str], by_name: dict[str, str]) -> list[tuple[str, str]]:
    name_of = {c: n for n, c in by_name.items()}
    return [(c, name_of.get(c, "")) for c in codes]
