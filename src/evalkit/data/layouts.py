"""The national systems' export layouts, recognized from their headers and split into canonical tables.

A register export is not one canonical table: the person-level detail (贫困人口明细) has one row
per person with the household's attributes repeated on each of its rows; the household list
(贫困户花名册) has one row per household with its income of the year. :func:`split_layout`
recognizes them (``config/layouts.toml``) and splits a file's rows into

- ``members`` (person layout): every row, under the member columns;
- ``households``: one row per household (its first row in the file), with ``registered`` implied
  (a register export lists registered households only); household attributes repeated on a
  household's rows must agree: a conflict quarantines the household with every row and value
  named (never averaged, never taken from the first row);
- ``panel``: the income columns as that year's panel row, the year from a 年度 column, else the
  file name, else the ``year`` passed to the loader (in that order; two years in the file name is
  an error that says so). An export that carries 人均纯收入 but not the rest of a panel row (the
  income components, 两不愁三保障, shocks, assistance) still gives panel rows: ``register_status``
  comes from 脱贫属性, else from 脱贫年度 and the year (the export lists registered households);
  every other absent column is unknown (null, with a warning naming them), never invented.
- 脱贫属性 (未脱贫, 已脱贫, 2017年脱贫, 享受政策的脱贫户, 脱贫监测户, 返贫, ...) is parsed into
  register status codes (:func:`evalkit.data.coercion.parse_poverty_attribute`); the exit year it
  states fills ``exit_year`` when the export has no 脱贫年度; a value that is no poverty attribute
  quarantines the household with the value named.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from evalkit import dictionary
from evalkit.data.coercion import NOT_IN_EXPORT, parse_poverty_attribute
from evalkit.data.problems import problem, problems_frame
from evalkit.data.raw import RawTable, blank_rows, build_raw_table, cell_text

__all__ = ["ATTRIBUTE_HEADERS", "ATTRIBUTE_EXAMPLES", "Layout", "layouts", "layout_header_map", "detect_layout",
           "split_layout", "year_from_name"]

#: Headers of the poverty attribute (脱贫属性) of a national export, parsed into register status codes.
ATTRIBUTE_HEADERS = ("脱贫属性", "户脱贫属性", "脱贫标志", "脱贫状态")
#: The spellings named when a 脱贫属性 value is not recognized (all of them: coercion.POVERTY_ATTRIBUTES).
ATTRIBUTE_EXAMPLES = ("未脱贫", "返贫", "已脱贫", "2017年脱贫", "享受政策的脱贫户", "不享受政策的脱贫户", "脱贫监测户",
                      "边缘户", "非贫困户")

#: The canonical tables a layout is split into.
TARGETS = ("households", "members", "panel")


@dataclass(frozen=True)
class Layout:
    """One export layout of ``config/layouts.toml``."""

    name: str
    zh: str
    needs_all: tuple[str, ...]
    needs_any_member: tuple[str, ...]
    needs_any_household: tuple[str, ...]
    primary: str
    implies: dict


@lru_cache(maxsize=1)
def _raw() -> dict:
    text = resources.files("evalkit.config").joinpath("layouts.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


@lru_cache(maxsize=1)
def layouts() -> dict[str, Layout]:
    """The layouts of ``config/layouts.toml``, by name (tried in file order)."""
    return {k: Layout(k, v["zh"], tuple(v.get("needs_all", ())), tuple(v.get("needs_any_member", ())),
                      tuple(v.get("needs_any_household", ())), v["primary"], dict(v.get("implies", {})))
            for k, v in _raw()["layouts"].items()}


@lru_cache(maxsize=None)
def layout_header_map(table: str) -> dict[str, str]:
    """Accepted header -> column of ``table``: the dictionary's headers plus the layouts' extras."""
    out = dict(dictionary.header_map(table))
    for key, heads in _raw().get("extra_headers", {}).items():
        t, col = key.split(".", 1)
        if t == table:
            for h in heads:
                out[dictionary.normalize_header(h).lower()] = col
    return out


def _columns(header: list[str]) -> dict[str, dict[int, str]]:
    """Target table -> {header position: canonical column} (first header of a column wins)."""
    out: dict[str, dict[int, str]] = {}
    for t in TARGETS:
        hm = layout_header_map(t)
        got: dict[int, str] = {}
        for i, h in enumerate(header):
            c = hm.get(dictionary.normalize_header(h).lower()) if h.strip() else None
            if c is not None and c not in got.values():
                got[i] = c
        out[t] = got
    return out


def detect_layout(header_cells: list) -> Layout | None:
    """The national layout whose signature the header matches, else None (a canonical table)."""
    header = [cell_text(h) for h in header_cells]
    mon = dictionary.header_map("monitoring_cases")
    if any(mon.get(dictionary.normalize_header(h).lower()) == "monitor_type" for h in header):
        return None  # the monitoring system's export: its own canonical table, monitoring_cases
    cols = _columns(header)
    hh, mem = set(cols["households"].values()), set(cols["members"].values())
    pan = set(cols["panel"].values())
    have = hh | mem | pan
    for lay in layouts().values():
        if not set(lay.needs_all) <= have:
            continue
        if lay.needs_any_member and not (set(lay.needs_any_member) & mem):
            continue
        if not lay.needs_any_member and (mem - hh) & {"person_id", "id_number", "name"}:
            continue
        if lay.needs_any_household and not (set(lay.needs_any_household) & (hh | pan) - {"household_id"}):
            continue
        income = "income_per_capita" in pan
        if lay.primary == "households" and "registered" in hh and not income:
            continue  # the canonical households table itself
        return lay
    return None


def year_from_name(name: str) -> list[int]:
    """Distinct years (2000–2099) written in a file name, in order."""
    return list(dict.fromkeys(int(y) for y in re.findall(r"(?<![0-9])(20[0-9]{2})(?![0-9])", Path(name).stem)))


def _norm_text(s: pd.Series) -> pd.Series:
    """Raw cells as trimmed text (empty for null), whole-column."""
    return s.astype("str").where(s.notna(), "").str.strip()


def _agreement(sub: pd.DataFrame, key: pd.Series, rownum: np.ndarray, names: dict[int, str],
               what: str) -> tuple[np.ndarray, pd.DataFrame, int]:
    """First row of each key; an error per key whose stated attributes differ between its rows;
    the number of cells of first rows filled from the household's other rows.

    An empty cell is "not stated" (an attribute written on the household's first row only, as a
    merged cell saved to CSV): it is filled from the one value the other rows state (counted, for
    a notice). Two different stated values are a conflict, reported with every row and value.
    """
    has = (key != "").to_numpy()
    first = ~key.duplicated().to_numpy() | ~has
    errs = []
    n_filled = 0
    if has.any():
        k = key[has].to_numpy()
        where = np.flatnonzero(has)
        groups = None
        for pos, col in names.items():
            if col == "household_id":
                continue
            v = _norm_text(sub[pos])[has].replace("", np.nan)
            n = v.groupby(k).nunique()
            bad = n.index[n.to_numpy() > 1]
            stated = v.groupby(k).transform("first")
            fill = where[(first[has] & v.isna() & stated.notna()).to_numpy()]
            if len(fill):
                sub.loc[sub.index[fill], pos] = stated.to_numpy()[np.searchsorted(where, fill)]
                n_filled += len(fill)
            if len(bad) and groups is None:
                groups = pd.Series(where).groupby(k).agg(list)
            for hid in bad:
                idx = np.asarray(groups[hid])
                vals = _norm_text(sub[pos]).iloc[idx]
                parts = "; ".join(f"{val or '(empty)'} in row{'s' if len(g) > 1 else ''} "
                                  + ", ".join(str(rownum[i]) for i in g[:10])
                                  for val, g in pd.Series(idx).groupby(vals.to_numpy()).agg(list).items())
                errs.append({"hid": hid, "column": col,
                             "reason": f"{what} attribute {col} differs between the household's rows: {parts}"})
    if not errs:
        return first, pd.DataFrame(columns=["pos", "column", "reason", "rule", "severity"]), n_filled
    e = pd.DataFrame(errs)
    firstpos = pd.Series(np.flatnonzero(first & has), index=key[first & has].to_numpy())
    e["pos"] = firstpos.reindex(e["hid"]).to_numpy()
    e["rule"], e["severity"] = "household_conflict", "error"
    return first, e[["pos", "column", "reason", "rule", "severity"]], n_filled


def _part(grid: pd.DataFrame, rownum: np.ndarray, header: list[str], names: dict[int, str],
          keep_rows: np.ndarray, extra: dict[str, str], *, table: str, file: str, path: Path,
          problems: list[dict], errors: pd.DataFrame | None, sheet: str | None,
          encoding: str | None, unknown: list[int]) -> RawTable:
    pos = list(names) + unknown
    sub = grid.loc[keep_rows, pos].reset_index(drop=True)
    heads = [header[i] for i in pos]
    sub.columns = range(sub.shape[1])
    for col, val in extra.items():
        sub[sub.shape[1]] = val
        heads.append(col)
    if errors is not None and len(errors):
        newpos = np.full(len(keep_rows), -1)
        newpos[keep_rows] = np.arange(int(keep_rows.sum()))
        errors = errors.assign(pos=newpos[errors["pos"].to_numpy(dtype=np.int64)])
    return build_raw_table(sub, rownum[keep_rows], table=table, file=file, path=path,
                           header_cells=heads, problems=problems, sheet=sheet, encoding=encoding,
                           errors=errors)


def _from_id_number(grid: pd.DataFrame, names: dict[int, str], header: list[str]) -> list[str]:
    """Add sex and birth_year from the 18-digit ID number when the export lacks them (in place:
    new grid columns registered in ``names``); the columns derived."""
    have = set(names.values())
    pos = next((i for i, c in names.items() if c == "id_number"), None)
    want = [c for c in ("sex", "birth_year") if c not in have]
    if pos is None or not want:
        return []
    idn = _norm_text(grid[pos]).str.replace(r"[^0-9Xx]", "", regex=True)
    ok = idn.str.fullmatch(r"[0-9]{17}[0-9Xx]").fillna(False).to_numpy(dtype=bool)
    for c in want:
        if c == "birth_year":
            v = idn.str.slice(6, 10)
        else:
            odd = pd.to_numeric(idn.str.slice(16, 17), errors="coerce") % 2 == 1
            v = pd.Series(np.where(odd, "男", "女"), index=grid.index)
        new = grid.shape[1]
        grid[new] = v.where(ok, "")
        names[new] = c
        header.append(dictionary.table("members").column(c).zh)
    return want


def _derive(grid: pd.DataFrame, names: dict[int, str], header: list[str], table: str, col: str,
            values: np.ndarray) -> None:
    """Append a derived column to the grid (in place) under ``col`` of ``table``."""
    new = grid.shape[1]
    grid[new] = values
    names[new] = col
    header.append(dictionary.table(table).column(col).zh)


def _poverty_attribute(grid: pd.DataFrame, header: list[str], cols: dict[str, dict[int, str]],
                       file: str) -> tuple[np.ndarray, pd.Series, list[dict]]:
    """脱贫属性 parsed into ``register_status`` (panel) and, when the export has no 脱贫年度, the
    ``exit_year`` it states (households): derived columns added in place.

    Returns
    -------
    (bad, values, notices)
        Rows whose non-empty attribute is not recognized, the raw attribute text, and findings.
    """
    mapped = set().union(*(set(c) for c in cols.values()))
    heads = {dictionary.normalize_header(h) for h in ATTRIBUTE_HEADERS}
    pos = next((i for i, h in enumerate(header) if i not in mapped and dictionary.normalize_header(h) in heads),
               None)
    if pos is None:
        return np.zeros(len(grid), dtype=bool), pd.Series(dtype=str), []
    status, year, bad = parse_poverty_attribute(grid[pos])
    notes = []
    if "register_status" not in cols["panel"].values():
        _derive(grid, cols["panel"], header, "panel", "register_status", status.fillna("").to_numpy(dtype=object))
    if "exit_year" not in cols["households"].values():
        _derive(grid, cols["households"], header, "households", "exit_year",
                year.astype("string").fillna("").to_numpy(dtype=object))
        no_year = int(((status == "exited") & year.isna()).sum())
        msg = f"exit_year not in the export: taken from {header[pos]} where it states a year"
        if no_year:
            msg += f"; {no_year} row(s) marked exited without a year keep exit_year empty (add a 脱贫年度 column)"
        notes.append(problem(file, "households", msg, "warning" if no_year else "notice", column="exit_year",
                             header=header[pos], rule="layout_attribute"))
    return bad, _norm_text(grid[pos]), notes


def _attribute_errors(bad: np.ndarray, values: pd.Series, key: pd.Series, first: np.ndarray,
                      header: str) -> pd.DataFrame:
    """An error on the household's row for each household with an unrecognized 脱贫属性."""
    cols = ["pos", "column", "reason", "rule", "severity"]
    if not bad.any():
        return pd.DataFrame(columns=cols)
    k = key.where(key != "", pd.Series(np.arange(len(key)), index=key.index).astype(str) + "#")
    bad_val = values[bad].groupby(k[bad].to_numpy()).first()
    rows = np.flatnonzero(first & k.isin(bad_val.index).to_numpy())
    accepted = ", ".join(ATTRIBUTE_EXAMPLES)
    reason = [f"'{v}' is not a poverty attribute (accepted: {accepted})" for v in bad_val.reindex(k.iloc[rows])]
    return pd.DataFrame({"pos": rows, "column": header, "reason": reason, "rule": "layout_attribute",
                         "severity": "error"})


def split_layout(grid: pd.DataFrame, rownum: np.ndarray, header_cells: list, *, file: str,
                 path: Path, problems: list[dict], sheet: str | None = None,
                 encoding: str | None = None, year: int | None = None,
                 errors: pd.DataFrame | None = None) -> list[RawTable] | None:
    """Split a national export into canonical raw tables, or None when the header is no layout.

    Parameters
    ----------
    grid : DataFrame
        Data rows below the header, raw values, columns 0..n-1.
    rownum : ndarray
        File row number of each grid row.
    header_cells : list
        The header row.
    problems : list of dict
        Reading findings so far (attached to the primary table).
    year : int, optional
        Year of the income columns when neither a 年度 column nor the file name gives one.
    errors : DataFrame, optional
        Row errors found while reading (e.g. too many fields), by grid position: they go with the
        primary table (members of a person list, households of a household list).
    """
    lay = detect_layout(header_cells)
    if lay is None:
        return None
    header = [cell_text(h) for h in header_cells]
    grid = grid.copy()
    grid.columns = range(grid.shape[1])
    cols = _columns(header)
    mapped = set().union(*(set(c) for c in cols.values()))
    unknown = [i for i, h in enumerate(header) if i not in mapped]
    out: list[RawTable] = []
    base = dict(file=file, path=path, sheet=sheet, encoding=encoding)
    nonblank = ~blank_rows(grid)
    probs = list(problems)
    hid_pos = next(i for i, c in cols["households"].items() if c == "household_id")
    key = _norm_text(grid[hid_pos]).str.normalize("NFKC")
    bad_attr, attr_values, attr_notes = _poverty_attribute(grid, header, cols, file)
    probs += attr_notes
    if lay.primary == "members":
        derived = _from_id_number(grid, cols["members"], header)
        if derived:
            probs.append(problem(file, "members", f"{', '.join(derived)} not in the export: derived from the"
                                 " ID number (证件号码: digits 7–10 the year of birth, digit 17 odd for men)",
                                 "notice", column=", ".join(derived), rule="layout_derived"))
        out.append(_part(grid, rownum, header, cols["members"], np.ones(len(grid), dtype=bool), {},
                         table="members", problems=probs, errors=errors, unknown=unknown, **base))
        probs_h: list[dict] = []
        hh_unknown: list[int] = []
    else:
        probs_h, hh_unknown = probs, unknown
    first, conflicts, n_filled = _agreement(grid, key, rownum, cols["households"], "household")
    first &= nonblank
    if bad_attr.any():
        attr_head = next(h for h in header if dictionary.normalize_header(h) in
                         {dictionary.normalize_header(a) for a in ATTRIBUTE_HEADERS})
        conflicts = pd.concat([conflicts, _attribute_errors(bad_attr, attr_values, key, first, attr_head)],
                              ignore_index=True)
    if n_filled:
        probs_h = probs_h + [problem(file, "households", f"{n_filled} empty household cell(s) filled from the"
                                     " value the household's other rows state (merged cells saved as text)",
                                     "notice", rule="layout_filled")]
    if lay.primary == "households" and errors is not None and len(errors):
        # a household row with a reading error is kept (as its own row) so that it is quarantined
        first |= np.isin(np.arange(len(grid)), errors["pos"].to_numpy(dtype=np.int64))
        conflicts = pd.concat([conflicts, errors[conflicts.columns]], ignore_index=True)
    implied = {}
    for col, val in lay.implies.items():
        if col not in cols["households"].values():
            implied[dictionary.table("households").column(col).zh] = val
            probs_h = probs_h + [problem(file, "households", f"{col} not in the export: '{val}' for every"
                                         f" household (a {lay.zh} lists registered households only)",
                                         "notice", column=col, rule="layout_implied")]
    out.append(_part(grid, rownum, header, cols["households"], first, implied, table="households",
                     problems=probs_h, errors=conflicts, unknown=hh_unknown, **base))
    exit_pos = next((i for i, c in cols["households"].items() if c == "exit_year"), None)
    for rt in _panel_part(grid, rownum, header, cols["panel"], key, nonblank, file, path, sheet, encoding,
                          year, exit_pos):
        if rt.fatal or len(rt.frame.columns):
            out.append(rt)
        else:  # a warning only: reported with the primary table, no panel rows
            out[0].problems = pd.concat([out[0].problems, rt.problems], ignore_index=True)
    parts = ", ".join(dict.fromkeys(rt.table for rt in out if not rt.fatal))
    out[0].problems = pd.concat([problems_frame([problem(
        file, lay.primary, f"national layout recognized: {lay.name} ({lay.zh}); split into {parts}",
        "notice", rule="layout")]), out[0].problems], ignore_index=True)
    return out


def _panel_part(grid: pd.DataFrame, rownum: np.ndarray, header: list[str], names: dict[int, str],
                key: pd.Series, nonblank: np.ndarray, file: str, path: Path, sheet: str | None,
                encoding: str | None, year: int | None, exit_pos: int | None) -> list[RawTable]:
    """That year's panel rows from the income columns (see the module docstring)."""
    income = [c for c in names.values() if c.startswith("income_") or c == "assistance_amount"]
    if not income:
        return []
    base = dict(file=file, path=path, sheet=sheet, encoding=encoding)
    spec = dictionary.table("panel")
    missing = [c for c in spec.columns if c.required and c.name not in names.values()
               and c.name not in ("year", "county_code", "village_code")]
    heads = ", ".join(header[i] for i, c in names.items() if c in income)
    if missing and "income_per_capita" not in names.values():
        miss = ", ".join(f"{c.name} ({c.zh})" for c in missing)
        return [_empty_panel(file, path, f"income columns ({heads}) not loaded as panel rows: a panel row"
                             f" needs at least income_per_capita (人均纯收入); missing {miss}", "warning",
                             "layout_panel_incomplete")]
    extra: dict[str, str] = {}
    probs: list[dict] = []
    y = None
    if "year" not in names.values():
        years = year_from_name(file.split("[")[0])
        if len(years) > 1:
            return [_empty_panel(file, path, f"the year of the income columns is ambiguous: the file name"
                                 f" holds {', '.join(map(str, years))}; add a 年度 column or rename the file",
                                 "fatal", "layout_year")]
        if years:
            y, src = years[0], "the file name"
        elif year is not None:
            y, src = int(year), "the year given to the loader (--year)"
        else:
            # an income-only list is a household list first: without a year it still loads, without
            # panel rows; a list with whole panel rows cannot be used without its year
            return [_empty_panel(file, path, f"income columns ({heads}) need a year: add a 年度 column, put"
                                 " the year in the file name, or pass --year", "warning" if missing else "fatal",
                                 "layout_year")]
        extra["年度"] = str(y)
        probs.append(problem(file, "panel", f"income year {y} taken from {src}", "notice",
                             column="year", rule="layout_year"))
    if missing:
        probs += _fill_missing(grid, header, names, [c.name for c in missing], exit_pos, y, file, heads)
    first, conflicts, n_filled = _agreement(grid, key, rownum, names, "panel")
    if n_filled:
        probs.append(problem(file, "panel", f"{n_filled} empty panel cell(s) filled from the value the"
                             " household's other rows state", "notice", rule="layout_filled"))
    first &= nonblank
    return [_part(grid, rownum, header, names, first, extra, table="panel", problems=probs,
                  errors=conflicts, unknown=[], **base)]


def _year_numbers(s: pd.Series) -> pd.Series:
    """Year cells as numbers (NaN where empty or not a year), whole-column."""
    t = _norm_text(s).str.normalize("NFKC").str.replace(r"年$", "", regex=True)
    return pd.to_numeric(t, errors="coerce")


def _fill_missing(grid: pd.DataFrame, header: list[str], names: dict[int, str], missing: list[str],
                  exit_pos: int | None, y: int | None, file: str, heads: str) -> list[dict]:
    """Panel columns an income list lacks (in place): register_status from 脱贫年度 and the year, where
    the export has one (it lists registered households: exited in or before the year, else poor);
    every other column marked :data:`~evalkit.data.coercion.NOT_IN_EXPORT` (unknown)."""
    probs = []
    if "register_status" in missing and exit_pos is not None:
        ypos = next((i for i, c in names.items() if c == "year"), None)
        yr = _year_numbers(grid[ypos]).to_numpy() if ypos is not None else np.full(len(grid), float(y))
        ey = _year_numbers(grid[exit_pos]).to_numpy()
        stated = _norm_text(grid[exit_pos]).to_numpy() != ""
        # an unreadable year leaves the status empty: the panel row is quarantined, not guessed
        ok = ~np.isnan(yr) & (~stated | ~np.isnan(ey))
        with np.errstate(invalid="ignore"):
            status = np.where(~ok, "", np.where(stated & (ey <= yr), "exited", "poor"))
        _derive(grid, names, header, "panel", "register_status", status.astype(object))
        missing = [c for c in missing if c != "register_status"]
        probs.append(problem(file, "panel", "register_status not in the export: from 脱贫年度 and the income"
                             " year (exited in or before the year, else poor; the export lists registered"
                             " households)", "notice", column="register_status", rule="layout_derived"))
    for c in missing:
        _derive(grid, names, header, "panel", c, np.full(len(grid), NOT_IN_EXPORT, dtype=object))
    if missing:
        spec = dictionary.table("panel")
        miss = ", ".join(f"{c} ({spec.column(c).zh})" for c in missing)
        probs.append(problem(file, "panel", f"income columns ({heads}) loaded as panel rows; not in the export,"
                             f" left unknown: {miss}", "warning", column=", ".join(missing),
                             rule="layout_panel_incomplete"))
    return probs


def _empty_panel(file: str, path: Path, reason: str, severity: str, rule: str) -> RawTable:
    """A finding about the panel part with no rows (unusable: no panel rows come from this file)."""
    return RawTable("panel", file, path, pd.DataFrame(), np.zeros(0, dtype=np.int64), {},
                    problems_frame([problem(file, "panel", reason, severity, rule=rule)]))
