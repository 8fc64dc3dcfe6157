"""The case store: one DuckDB file with cases, their history, flags, visits and department matches.

Tables: ``cases`` (one row per monitoring case, its current state), ``case_history`` (every
transition, with its source), ``flags`` (a red flag per risk with its due date and when it was
cleared), ``visits``, ``dept_matches`` (every department record of a month and what it was linked
to; no ID number or name), ``review_pairs`` (the clerical-review list), ``month_households``
(register status and last known income of the households a month concerns) and ``imports`` (the
audit: what was imported from which files or ledger, its hash, when, and what changed).

Every write is one transaction on a *copy* of the file, moved over the store with an atomic
rename only after it committed: a failed import or review leaves the store exactly as it was,
and a reader (who opens the store read-only, :func:`connect_read`) sees the whole store before or
after a write, never half of it. Writers take turns (a lock file beside the store). Importing a
month already imported with the same files changes nothing at all (not even the audit); the same
month with different files is refused.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pandas as pd

from evalkit.errors import InputError

__all__ = ["SCHEMA", "TABLES", "connect_read", "writing", "table_frame", "imported", "record_import",
           "insert_frame", "StoreError"]

#: DDL of every table.
SCHEMA = {
    "imports": "import_id INTEGER, kind VARCHAR, month VARCHAR, source VARCHAR, files VARCHAR, "
               "content_sha256 VARCHAR, imported_at TIMESTAMP, changes VARCHAR",
    "cases": "case_id VARCHAR PRIMARY KEY, household_id VARCHAR, county_code VARCHAR, village_code VARCHAR, "
             "monitor_type VARCHAR, opened_month VARCHAR, state VARCHAR, risks VARCHAR",
    "case_history": "case_id VARCHAR, seq INTEGER, month VARCHAR, from_state VARCHAR, to_state VARCHAR, "
                    "source VARCHAR, note VARCHAR",
    "flags": "case_id VARCHAR, risk VARCHAR, flagged_month VARCHAR, due_date DATE, cleared_month VARCHAR",
    "visits": "case_id VARCHAR, visit_date DATE, result VARCHAR, visitor VARCHAR, rectification VARCHAR, "
              "source VARCHAR",
    "dept_matches": "month VARCHAR, table_name VARCHAR, record_id VARCHAR, person_id VARCHAR, household_id VARCHAR, "
                    "match_type VARCHAR, match_weight DOUBLE, match_probability DOUBLE, amount DOUBLE, kind VARCHAR",
    "review_pairs": "month VARCHAR, table_name VARCHAR, record_id VARCHAR, person_id VARCHAR, household_id VARCHAR, "
                    "match_weight DOUBLE, match_probability DOUBLE",
    "month_households": "month VARCHAR, household_id VARCHAR, county_code VARCHAR, village_code VARCHAR, "
                        "register_status VARCHAR, income_per_capita DOUBLE, monitoring_line DOUBLE",
}
#: Table names in a fixed order.
TABLES = tuple(SCHEMA)
#: Sort keys that make a table's content comparable.
_ORDER = {"imports": "import_id", "cases": "case_id", "case_history": "case_id, seq",
          "flags": "case_id, risk, flagged_month", "visits": "case_id, visit_date, source",
          "dept_matches": "month, table_name, record_id", "review_pairs": "month, table_name, record_id, person_id",
          "month_households": "month, household_id"}


class StoreError(InputError):
    """A store that cannot be used (not a case store, a month imported with other files)."""


def connect_read(path: str | Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the store (it must exist)."""
    p = Path(path)
    if not p.exists():
        raise StoreError(f"case store {p} does not exist: import a month first")
    return duckdb.connect(str(p), read_only=True)


def _create(con: duckdb.DuckDBPyConnection) -> None:
    for t, ddl in SCHEMA.items():
        con.execute(f"CREATE TABLE IF NOT EXISTS {t} ({ddl})")


@contextmanager
def writing(path: str | Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection inside one transaction on a copy of the store; the copy replaces the store
    only if the block succeeds (created with every table when the store does not exist)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p.with_name(p.name + ".lock"), "a") as lock:
        # one writer at a time: two writers copying the same store would lose one's changes
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield from _write_copy(p)


def _write_copy(p: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{p.name}.", dir=p.parent)
    os.close(fd)
    tmp_p = Path(tmp)
    tmp_p.unlink()  # duckdb creates the file itself
    if p.exists():
        shutil.copyfile(p, tmp_p)
    con = duckdb.connect(str(tmp_p))
    try:
        _create(con)
        con.execute("BEGIN TRANSACTION")
        yield con
        con.execute("COMMIT")
        con.execute("CHECKPOINT")
        con.close()
        os.replace(tmp_p, p)
    except BaseException:
        con.close()
        raise
    finally:
        for f in (tmp_p, Path(str(tmp_p) + ".wal")):
            if f.exists():
                f.unlink()


def table_frame(con: duckdb.DuckDBPyConnection, table: str) -> pd.DataFrame:
    """A whole table, sorted by its key (for comparisons and reports)."""
    if table not in SCHEMA:
        raise KeyError(table)
    return con.execute(f"SELECT * FROM {table} ORDER BY {_ORDER[table]}").df()


def imported(con: duckdb.DuckDBPyConnection, kind: str, month: str | None = None) -> pd.DataFrame:
    """Audit rows of ``kind`` ('month' or 'ledger'), optionally of one month."""
    q = "SELECT * FROM imports WHERE kind = ?" + (" AND month = ?" if month else "") + " ORDER BY import_id"
    return con.execute(q, [kind] + ([month] if month else [])).df()


def insert_frame(con: duckdb.DuckDBPyConnection, table: str, df: pd.DataFrame) -> int:
    """Append ``df`` (columns in the table's order) to ``table``; returns the rows added."""
    if not len(df):
        return 0
    cols = [c.split()[0] for c in SCHEMA[table].split(", ")]
    con.register("_frame_in", df[cols].reset_index(drop=True))
    con.execute(f"INSERT INTO {table} SELECT * FROM _frame_in")
    con.unregister("_frame_in")
    return len(df)


def record_import(con: duckdb.DuckDBPyConnection, kind: str, month: str, source: str, files: dict[str, str],
                  content_sha256: str, changes: dict) -> int:
    """Append the audit row of an import or review; returns its id."""
    nxt = con.execute("SELECT coalesce(max(import_id), 0) + 1 FROM imports").fetchone()[0]
    con.execute("INSERT INTO imports VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [nxt, kind, month, source, json.dumps(files, sort_keys=True, ensure_ascii=False), content_sha256,
                 datetime.now(timezone.utc).replace(tzinfo=None), json.dumps(changes, sort_keys=True)])
    return int(nxt)
