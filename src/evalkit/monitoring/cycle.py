"""The monthly import: department files -> linkage -> new and reopened cases, red flags -> store.

:func:`import_month` reads and checks the month's files (:mod:`~evalkit.monitoring.intake`),
links them to the rural population of the dataset (:mod:`~evalkit.monitoring.linkage`), finds
the month's monitoring objects (:mod:`~evalkit.monitoring.cases`) and writes everything in one
transaction of the store (:mod:`~evalkit.monitoring.store`), with its audit row.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from evalkit.config import Policy
from evalkit.errors import InputError
from evalkit.monitoring import store
from evalkit.monitoring.cases import MonitoringPolicy, identify, month_end, risk_events
from evalkit.monitoring.intake import MonthFiles, read_month
from evalkit.monitoring.linkage import LinkagePolicy, connect, link_records, load_key

__all__ = ["ImportResult", "population", "population_sql", "household_status", "month_matches", "import_month",
           "AMOUNT_COLUMNS"]

#: The amount column kept of each department table (no personal data).
AMOUNT_COLUMNS = {"dept_hospital": "out_of_pocket", "dept_assistance": "amount", "dept_disaster": "loss",
                  "dept_vehicle": "vehicle_price", "dept_business": "registered_capital",
                  "dept_property": "floor_area", "dept_payroll": "monthly_salary", "dept_water": "outage_days"}


@dataclass
class ImportResult:
    """What an import did: ``already`` when the month was imported before with the same files."""

    month: str
    already: bool
    changes: dict[str, int] = field(default_factory=dict)


def _glob(data: Path, table: str) -> str:
    return str(data / table / "*.parquet")


def _dataset(data: str | Path) -> Path:
    d = Path(data)
    if not (d / "members").is_dir() or not (d / "panel").is_dir():
        raise InputError(f"{d} is not a dataset directory with members/ and panel/ (evalkit generate)")
    return d


def population_sql(data: str | Path) -> str:
    """A DuckDB query of the persons (:data:`~evalkit.monitoring.linkage.PERSON_COLUMNS`) of a
    dataset, read from its files where it runs: the population never becomes a Python frame."""
    d = _dataset(data)
    return f"""
        SELECT m.person_id, m.household_id, m.id_number, m.name,
               substr(m.id_number, 7, 4) || '-' || substr(m.id_number, 11, 2) || '-' || substr(m.id_number, 13, 2)
                 AS birth_date, h.village_code
        FROM read_parquet('{_glob(d, "members")}') m
        JOIN read_parquet('{_glob(d, "households")}') h USING (household_id)"""


def household_status(con: duckdb.DuckDBPyConnection, data: str | Path, year: int,
                     households: list[str] | None = None) -> pd.DataFrame:
    """The households' last known year before ``year`` (all, or only ``households``).

    Returns household_id, county_code, village_code, register_status, income_per_capita.
    """
    d = _dataset(data)
    panel = f"read_parquet('{_glob(d, 'panel')}')"
    last = con.execute(f"SELECT max(year) FROM {panel} WHERE year < {int(year)}").fetchall()[0][0]
    where = ""
    if households is not None:
        con.register("_want_hh", pd.DataFrame({"household_id": pd.Series(households, dtype=object)}))
        where = "AND household_id IN (SELECT household_id FROM _want_hh)"
    return con.execute(f"""
        SELECT household_id, county_code, village_code, register_status, income_per_capita FROM {panel}
        WHERE year = {int(last) if last is not None else -1} {where} ORDER BY household_id""").df()


def population(data: str | Path, year: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Persons (linkage columns) and the households' last known year before ``year`` as frames
    (for small datasets and studies; the import keeps them in the database, :func:`population_sql`).

    Returns
    -------
    (DataFrame, DataFrame)
        persons: person_id, household_id, id_number, name, birth_date, village_code; status:
        household_id, county_code, village_code, register_status, income_per_capita.
    """
    con = connect()
    try:
        persons = con.execute(population_sql(data) + " ORDER BY m.person_id").to_arrow_table().to_pandas(
            types_mapper=pd.ArrowDtype)
        status = household_status(con, data, year)
    finally:
        con.close()
    return persons, status


def month_matches(mf: MonthFiles, persons: pd.DataFrame | str, key: bytes, lp: LinkagePolicy,
                  con: duckdb.DuckDBPyConnection | None = None) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """Link every record of the month: (dept_matches rows, review_pairs rows, linkage counts).

    ``persons`` is a frame or a query (:func:`population_sql`) that ``con`` runs."""
    recs = []
    for t, df in mf.tables.items():
        amount = pd.to_numeric(df[AMOUNT_COLUMNS[t]], errors="coerce") if t in AMOUNT_COLUMNS else np.nan
        kind = df["assistance_kind"] if "assistance_kind" in df else None
        recs.append(pd.DataFrame({"record_key": t + ":" + df["record_id"], "table_name": t,
                                  "record_id": df["record_id"], "id_number": df["id_number"], "name": df["name"],
                                  "birth_date": df["birth_date"], "village_code": df["village_code"],
                                  "amount": amount, "kind": kind}))
    rec = pd.concat(recs, ignore_index=True)
    res = link_records(rec, persons, key, lp, con)
    m = rec[["record_key", "table_name", "record_id", "amount", "kind"]].merge(res.links, on="record_key", how="left")
    matches = m.assign(month=mf.month)[["month", "table_name", "record_id", "person_id", "household_id",
                                        "match_type", "match_weight", "match_probability", "amount", "kind"]]
    rv = res.review.merge(rec[["record_key", "table_name", "record_id"]], on="record_key")
    review = rv.assign(month=mf.month)[["month", "table_name", "record_id", "person_id", "household_id",
                                        "match_weight", "match_probability"]]
    return matches, review, res.counts


def _prior(con: duckdb.DuckDBPyConnection, month: str, sha: str) -> bool:
    """True when ``month`` was imported with the same content; refuses other files or an older month."""
    done = store.imported(con, "month")
    same = done[done["month"] == month]
    if len(same):
        if (same["content_sha256"] == sha).any():
            return True
        raise store.StoreError(f"month {month} was already imported from other files "
                               f"(import {int(same['import_id'].iloc[-1])}); corrections come with a later month")
    if len(done) and done["month"].max() > month:
        raise store.StoreError(f"month {month} is before the last imported month {done['month'].max()}")
    return False


def _cases_update(con: duckdb.DuckDBPyConnection, objs: pd.DataFrame, status: pd.DataFrame, month: str,
                  mp: MonitoringPolicy) -> dict[str, int]:
    """New cases, reopened cases and red flags of the month's monitoring objects."""
    cases = con.execute("SELECT case_id, household_id, state FROM cases").df()
    known = objs.merge(cases, on="household_id", how="left")
    new = known[known["case_id"].isna()].merge(status[["household_id", "county_code", "village_code"]],
                                              on="household_id", how="left").sort_values("household_id")
    seq = new.groupby("county_code").cumcount().to_numpy() + 1
    new = new.assign(case_id=[f"{c}-{month.replace('-', '')}-{s:05d}" for c, s in zip(new["county_code"], seq)])
    store.insert_frame(con, "cases", new.assign(opened_month=month, state="identified",
                                                risks=new["risks"].map(",".join)))
    hist = [new.assign(seq=1, from_state=None, to_state="identified")]
    reopen = known[known["state"] == "closed"]
    if len(reopen):
        con.register("_reopen", reopen[["case_id"]])
        con.execute("UPDATE cases SET state = 'reopened' WHERE case_id IN (SELECT case_id FROM _reopen)")
        nseq = con.execute("SELECT case_id, max(seq) + 1 AS seq FROM case_history GROUP BY case_id").df()
        hist.append(reopen.drop(columns="state").merge(nseq, on="case_id").assign(from_state="closed",
                                                                                 to_state="reopened"))
    h = pd.concat(hist, ignore_index=True).assign(month=month, source=f"import:{month}", note=None)
    store.insert_frame(con, "case_history", h)
    both = pd.concat([new[["case_id", "risks"]], known[known["case_id"].notna()][["case_id", "risks"]]])
    fl = both.explode("risks").rename(columns={"risks": "risk"}).dropna()
    openf = con.execute("SELECT case_id, risk FROM flags WHERE cleared_month IS NULL").df()
    fl = fl.merge(openf.assign(_o=1), on=["case_id", "risk"], how="left")
    fl = fl[fl["_o"].isna()].drop(columns="_o").drop_duplicates()
    end = month_end(month)
    due = end + pd.to_timedelta(fl["risk"].map(mp.deadline_days).fillna(30).astype(int), unit="D")
    store.insert_frame(con, "flags", fl.assign(flagged_month=month, due_date=due.dt.date, cleared_month=None))
    return {"new_cases": len(new), "reopened": len(reopen), "flags": len(fl)}


class _Ticker:
    """Seconds since the last tick, by step, into ``out`` (when given)."""

    def __init__(self, out: dict[str, float] | None) -> None:
        self.out, self.t = out, time.perf_counter()

    def __call__(self, step: str) -> None:
        now = time.perf_counter()
        if self.out is not None:
            self.out[step] = round(now - self.t, 2)
        self.t = now


def _link_month(mf: MonthFiles, data: str | Path, key: bytes, lp: LinkagePolicy
                ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int], pd.DataFrame, str]:
    """Links of the month, the linked households' status, and a county code of the dataset."""
    con = connect()
    try:
        matches, review, counts = month_matches(mf, population_sql(data), key, lp, con)
        status = household_status(con, data, int(mf.month[:4]), list(matches["household_id"].dropna().unique()))
        county = con.execute(f"SELECT min(county_code) FROM read_parquet('{_glob(Path(data), 'households')}')"
                             ).fetchall()[0][0]
    finally:
        con.close()
    return matches, review, counts, status, str(county)


def import_month(db: str | Path, data: str | Path, month: str, key_path: str | Path, policy: Policy,
                 timings: dict[str, float] | None = None) -> ImportResult:
    """Import one month of department data into the case store.

    Parameters
    ----------
    db : path
        The DuckDB case store (created on first import).
    data : path
        The dataset directory (members, households, panel) with ``departments/YYYY-MM/``.
    month : str
        'YYYY-MM'; every record must be dated in it.
    key_path : path
        Pseudonymization key file (created on first use; keep it outside every output folder).
    policy : Policy
    timings : dict, optional
        Receives the seconds of each step (read_files, link, cases_and_store).

    Raises
    ------
    DepartmentInputError
        Problems in the files (nothing written).
    StoreError
        The month was imported from other files, or a later month is already in the store.
    """
    tick = _Ticker(timings)
    mf = read_month(data, month)
    sha = mf.content_sha256
    if Path(db).exists():
        with store.connect_read(db) as con:
            if _prior(con, month, sha):
                return ImportResult(month, True)
    tick("read_files")
    mp, lp = MonitoringPolicy.from_policy(policy), LinkagePolicy.from_policy(policy)
    matches, review, counts, status, province = _link_month(mf, data, load_key(key_path), lp)
    tick("link")
    mline = policy.monitoring_line(str(province)[:2], int(month[:4]))
    objs = identify(risk_events(matches.rename(columns={"table_name": "table"}), mp), status, mline, mp)
    mh = status.assign(month=month, monitoring_line=mline)
    with store.writing(db) as con:
        _prior(con, month, sha)
        changes = _cases_update(con, objs, status, month, mp)
        changes.update({"records": store.insert_frame(con, "dept_matches", matches),
                        "review_pairs": store.insert_frame(con, "review_pairs", review),
                        "households": store.insert_frame(con, "month_households", mh),
                        **{f"link_{k}": int(v) for k, v in counts.items()}})
        store.record_import(con, "month", month, str(Path(data).resolve().name), mf.sha256, sha, changes)
    tick("cases_and_store")
    return ImportResult(month, False, changes)
