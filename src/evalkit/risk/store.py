"""Province-scale features and labels, out of core: one Parquet partition per county.

Every feature and label of a household is a function of that household's own rows, its
register record, its members and the context of its village and county in the same year
(:func:`evalkit.risk.build_features`); none crosses a county border. A province is therefore
processed county by county — each county's panel is read, its features and labels computed and
written to ``<store>/features/<county_code>.parquet`` — and the whole panel is never one frame.
The later steps (:mod:`evalkit.risk.large`) read the store with DuckDB.

Only the rows the return-to-poverty models use are kept: households exited by t (the
``exited`` population of :func:`evalkit.risk.make_labels`), with their label and outcome where
the window t+1..t+h is observed. Their features are built from those households alone, with the
village and county context of every household (:func:`evalkit.risk.context_features`) and the
dataset's first year as the baseline, so they equal the in-memory features of the same rows
(``tests/test_risk.py``).
"""
from __future__ import annotations

import os
import time
import zlib
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from evalkit import privacy
from evalkit.config import Policy
from evalkit.errors import RiskModelError
from evalkit.risk.features import build_features, context_features
from evalkit.risk.labels import make_labels
from evalkit.risk.panel import KEYS
from evalkit.risk.warning import case_closure, closure_by_year

__all__ = ["Store", "HOUSEHOLD_COLUMNS", "MEMBER_COLUMNS", "dataset_counties", "dataset_years",
           "county_partition", "build_store"]

#: Columns of the households and members tables the risk features read.
HOUSEHOLD_COLUMNS = ("household_id", "village_code", "county_code", "household_size", "registered", "poverty_type",
                     "registration_year", "exit_year")
MEMBER_COLUMNS = ("person_id", "household_id", "name", "id_number", "relation_to_head", "birth_year",
                  "labour_capacity", "disability", "chronic_illness", "in_school")
_TABLES = ("panel", "households", "members")


@dataclass
class Store:
    """A built store: where it is, which counties and years, and what each county held.

    ``summary`` has one row per county: ``panel_rows, households, exited_households, store_rows,
    labelled, positives, income_missing, seconds`` and ``closure`` the monitoring cases by year
    summed over counties (:func:`evalkit.risk.closure_by_year`).
    """

    path: Path
    counties: list[str]
    first_year: int
    last_year: int
    summary: pd.DataFrame
    closure: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def features_glob(self) -> str:
        """The Parquet files of the features, for DuckDB's ``read_parquet``."""
        return str(self.path / "features" / "*.parquet")

    data_dir: Path | None = None

    def masked_heads(self, household_ids: pd.Series, threads: int = 2) -> pd.DataFrame:
        """:func:`evalkit.privacy.masked_heads` of these households, read from the dataset's members.

        Only the listed households' members are read (DuckDB semi-join over the members partitions
        of the store's counties); names and ID numbers are masked before they leave this function.
        """
        import duckdb  # only the watch list needs it here

        if self.data_dir is None:
            raise RiskModelError("the store does not know its dataset; build it with build_store")
        files = [str(_partition(self.data_dir, "members", c)) for c in self.counties]
        con = duckdb.connect()
        con.execute(f"SET threads = {int(threads)}")
        ids = pd.DataFrame({"household_id": pd.Series(household_ids).astype(str).unique()})
        con.register("listed_ids", ids)
        cols = ", ".join(("person_id", "household_id", "name", "id_number", "relation_to_head"))
        mem = con.sql(f"SELECT {cols} FROM read_parquet({files!r}) WHERE household_id IN "
                      "(SELECT household_id FROM listed_ids)").to_arrow_table().to_pandas()
        con.close()
        return privacy.masked_heads(mem)


def _partition(data_dir: Path, table: str, county: str) -> Path:
    f = data_dir / table / f"{county}.parquet"
    if not f.exists():
        raise RiskModelError(f"{f}: missing; the province risk run reads the partitioned layout "
                             f"({table}/<county_code>.parquet, as written by `evalkit generate`)")
    return f


def dataset_counties(data_dir: str | Path) -> list[str]:
    """County codes of the panel's partitions (``panel/<county_code>.parquet``)."""
    d = Path(data_dir) / "panel"
    codes = sorted(f.stem for f in d.glob("*.parquet")) if d.is_dir() else []
    if not codes:
        raise RiskModelError(f"{d}: no panel/<county_code>.parquet partitions")
    return codes


def dataset_years(data_dir: str | Path, counties: Iterable[str]) -> tuple[int, int]:
    """First and last year of the panel partitions (from the Parquet statistics where present)."""
    lo, hi = None, None
    for c in counties:  # loop over files, reading one column
        y = pq.read_table(_partition(Path(data_dir), "panel", c), columns=["year"]).column("year")
        a, b = pa.compute.min(y).as_py(), pa.compute.max(y).as_py()
        if a is None:
            continue
        lo, hi = (a, b) if lo is None else (min(lo, a), max(hi, b))
    if lo is None:
        raise RiskModelError(f"{data_dir}: the panel has no rows")
    return int(lo), int(hi)


def _read(data_dir: Path, county: str) -> tuple[pa.Table, pd.DataFrame, pa.Table]:
    """The county's panel (Arrow, every column), households (the columns the features use) and
    members (Arrow)."""
    panel = pq.read_table(_partition(data_dir, "panel", county))
    hh = pq.read_table(_partition(data_dir, "households", county)).to_pandas()
    mem = pq.read_table(_partition(data_dir, "members", county))
    for name, cols, have in (("households", HOUSEHOLD_COLUMNS, hh.columns), ("members", MEMBER_COLUMNS,
                                                                                mem.column_names)):
        missing = [c for c in cols if c not in have and c != "household_size"]
        if missing:
            raise RiskModelError(f"{data_dir / name / (county + '.parquet')}: missing column(s) {missing}")
    return panel, hh[[c for c in HOUSEHOLD_COLUMNS if c in hh.columns]], mem.select(list(MEMBER_COLUMNS))


def _rows_of(table: pa.Table, ids: pd.Series) -> pd.DataFrame:
    """Rows of an Arrow table whose household is in ``ids``, as a frame (filtered in Arrow)."""
    keep = pc.is_in(table["household_id"], value_set=pa.array(ids.astype(str).to_numpy(dtype=object)))
    return table.filter(keep).to_pandas()


def _rng(seed: int, county: str) -> np.random.Generator:
    """The sampling stream of one county: its own, whatever the order counties are processed in."""
    return np.random.default_rng([int(seed), zlib.crc32(county.encode())])


def _closure_counts(panel: pa.Table, policy: Policy, last_year: int) -> pd.DataFrame:
    """Monitoring cases by year of one county (none when the panel has no register status).

    Only households with a monitoring spell have cases: :func:`evalkit.risk.case_closure` runs on them.
    """
    if "register_status" not in panel.column_names:
        return pd.DataFrame()
    mon = pc.is_in(panel["register_status"], value_set=pa.array(["monitored", "edge"]))
    ids = pc.unique(panel.filter(mon)["household_id"]).to_pandas()
    if not len(ids):
        return pd.DataFrame()
    return closure_by_year(case_closure(_rows_of(panel, ids), policy), last_year).reset_index()


def county_partition(data_dir: str | Path, county: str, policy: Policy, out: str | Path, *,
                     first_year: int, last_year: int, seed: int = 0) -> dict[str, Any]:
    """Features and labels of the exited households of one county, written to the store.

    Writes ``<out>/features/<county>.parquet`` (keys, the features of
    :func:`~evalkit.risk.build_features`, ``label`` (null where not labelled), ``outcome`` and ``u``, a
    uniform draw of the county's own stream for sampling). Returns the county's counts.
    """
    t0 = time.perf_counter()
    data_dir, out = Path(data_dir), Path(out)
    panel, hh, mem = _read(data_dir, county)
    cols = [c for c in ("household_id", "year", "county_code", "village_code", "income_per_capita", "shock_disaster")
            if c in panel.column_names]
    ctx = context_features(panel.select(cols).to_pandas(), policy)
    closure = _closure_counts(panel, policy, last_year)
    ever = hh.loc[hh["exit_year"].notna(), "household_id"]
    sub = _rows_of(panel, ever)
    counts = {"county_code": county, "panel_rows": panel.num_rows, "households": len(hh),
              "exited_households": len(ever)}
    del panel
    msub = _rows_of(mem, ever)
    hsub = hh[hh["exit_year"].notna().to_numpy()]
    if not len(sub):  # no exited household: nothing to model, nothing written
        counts.update(store_rows=0, labelled=0, positives=0, income_missing=0,
                      seconds=time.perf_counter() - t0, closure=closure)
        return counts
    f = build_features(sub, hsub, msub, policy, first_year=first_year, context=ctx)
    f = f[f["exited"].to_numpy(dtype=bool)]
    lab = make_labels(sub, hsub, policy, population="exited")
    f = f.merge(lab[[*KEYS, "label", "outcome"]], on=KEYS, how="left", validate="one_to_one")
    f["label"] = f["label"].astype("Int8")
    f["u"] = _rng(seed, county).random(len(f))  # drawn in household-year order
    (out / "features").mkdir(parents=True, exist_ok=True)
    # by year in small row groups, so a query for one year skips the others' groups (Parquet
    # statistics); lz4: the store is read a few times and deleted, stronger codecs cost more CPU
    f = f.sort_values(["year", "household_id"], kind="stable", ignore_index=True)
    pq.write_table(pa.Table.from_pandas(f, preserve_index=False), out / "features" / f"{county}.parquet",
                   compression="lz4", row_group_size=65_536)
    counts.update(store_rows=len(f), labelled=int(f["label"].notna().sum()), positives=int(f["label"].fillna(0).sum()),
                  income_missing=int(f["log_income_ratio"].isna().sum()), seconds=time.perf_counter() - t0,
                  closure=closure)
    return counts


def _run(args: tuple) -> dict[str, Any]:
    data_dir, county, policy, out, first_year, last_year, seed = args
    return county_partition(data_dir, county, policy, out, first_year=first_year, last_year=last_year, seed=seed)


def build_store(data_dir: str | Path, out: str | Path, policy: Policy, counties: Iterable[str] | None = None, *,
                workers: int = 2, seed: int = 0) -> Store:
    """Build the store of ``counties`` (default every county of the panel) with ``workers`` processes.

    Counties are processed largest first (by panel file size) so the workers finish together;
    each county's result depends only on its own data and ``seed``, not on the order.
    """
    data_dir, out = Path(data_dir), Path(out)
    have = dataset_counties(data_dir)
    cs = have if counties is None else sorted({str(c) for c in counties})
    absent = [c for c in cs if c not in have]
    if absent:
        raise RiskModelError(f"county/counties {absent} have no panel partition in {data_dir / 'panel'}")
    first, last = dataset_years(data_dir, have)
    order = sorted(cs, key=lambda c: -os.path.getsize(_partition(data_dir, "panel", c)))
    jobs = [(data_dir, c, policy, out, first, last, seed) for c in order]
    if workers <= 1:
        res = [_run(j) for j in jobs]
    else:
        # fork: the workers need no re-import of the caller's main module (notebooks, scripts
        # without a __main__ guard); the parent holds no DuckDB connection or thread pool yet.
        ctx = get_context("fork" if "fork" in get_all_start_methods() else "spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as ex:
            res = list(ex.map(_run, jobs))
    closures = [r.pop("closure") for r in res]
    summary = pd.DataFrame(res).sort_values("county_code", ignore_index=True)
    cl = [c for c in closures if len(c)]
    closure = (pd.concat(cl).groupby("year", as_index=True)[["opened", "cleared", "open"]].sum()
               if cl else pd.DataFrame())
    return Store(path=out, counties=cs, first_year=first, last_year=last, summary=summary, closure=closure,
                 data_dir=data_dir)

