"""Monthly department data of the synthetic province (部门数据比对), consistent with its truth.

Ten departments send a file per month, keyed by resident ID number with the noise real exchanges
carry (missing, mistyped or 15-digit IDs, name variants, a wrong village now and then):

- hardship events from the panel's truth of the month's year — hospital stays with out-of-pocket
  cost (illness shock), 低保/特困/临时救助 decisions (poverty type, risk events), disaster losses
  (disaster shock), school dropouts, dangerous-house findings and drinking-water outages (the true
  education, housing and water guarantees failing);
- records contradicting poverty — vehicle, business registration, urban property, public payroll —
  far more likely the higher the household's true income relative to the monitoring line, plus
  urban residents who are not in the rural population at all.

Each yearly event gets its month from a stream of ``(seed, STREAM, year)``, the month's records
and noise from ``(seed, STREAM, year, month)``: the existing tables' streams are never touched, so
the rest of the dataset stays byte-identical. Files are GBK CSV with the Chinese headers of the
data dictionary (``departments/YYYY-MM/<table>.csv``, what a county office receives); the truth
of every record (person and household it belongs to) goes to ``departments_truth/YYYY-MM.parquet``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from evalkit import dictionary
from evalkit.config import Policy
from evalkit.ids import check_digits
from evalkit.synth.people import draw_names

__all__ = ["STREAM", "DEPARTMENTS", "NOISE", "department_month", "write_departments", "id18_to_15"]

#: Constant of the departments' own random streams.
STREAM = 1313
#: Department tables (data dictionary names), in writing order.
DEPARTMENTS = ("dept_hospital", "dept_assistance", "dept_disaster", "dept_dropout", "dept_housing",
               "dept_water", "dept_vehicle", "dept_business", "dept_property", "dept_payroll")
#: Record noise (shares of records): generator parameters, not policy.
NOISE = {"id_missing": 0.03, "id_15": 0.03, "id_typo": 0.03, "name_variant": 0.04, "village_wrong": 0.02}
#: Share of department records about urban residents outside the rural population.
_URBAN = {"dept_hospital": 0.3, "dept_vehicle": 1.5, "dept_business": 1.0, "dept_property": 1.5,
          "dept_payroll": 2.0}
#: Yearly probability of an asset record: logistic(a + b * ln(true income / monitoring line)).
_ASSET = {"dept_vehicle": (-4.2, 1.6), "dept_business": (-5.0, 1.5), "dept_property": (-5.2, 1.6),
          "dept_payroll": (-5.5, 1.6)}
_VARIANT = str.maketrans("伟芳娜敏静丽强磊军洋勇艳杰娟涛明", "玮芬那民菁莉蔷雷君阳永燕洁涓滔铭")


def id18_to_15(ids: pd.Series) -> pd.Series:
    """The old 15-digit form of 18-digit ID numbers (no century, no check character)."""
    return ids.str.slice(0, 6) + ids.str.slice(8, 17)


def _people(data_dir: Path, year: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Members (with village and birth date) and the households' year (panel + truth) of ``year``."""
    cols = ["person_id", "household_id", "name", "id_number", "sex", "birth_year"]
    mem = pd.read_parquet(data_dir / "members", columns=cols)
    hh = pd.read_parquet(data_dir / "households", columns=["household_id", "village_code", "county_code",
                                                            "registered", "poverty_type"])
    panel = pd.read_parquet(data_dir / "panel", filters=[("year", "==", year)],
                            columns=["household_id", "shock_illness", "shock_disaster", "register_status"])
    truth = pd.read_parquet(data_dir / "truth", filters=[("year", "==", year)])
    hy = hh.merge(panel, on="household_id").merge(truth.drop(columns=["year", "county_code"]), on="household_id")
    hy = hy.sort_values("household_id", kind="stable").reset_index(drop=True)
    mem = mem.merge(hh[["household_id", "village_code"]], on="household_id").sort_values("person_id", kind="stable")
    mem["birth_date"] = pd.to_datetime(mem["id_number"].str.slice(6, 14), format="%Y%m%d")
    return mem.reset_index(drop=True), hy


def _event_months(hy: pd.DataFrame, seed: int, year: int) -> dict[str, np.ndarray]:
    """Month (1-12) of each household's yearly event per department; 0 = no event this year."""
    rng = np.random.default_rng([seed, STREAM, year])
    n = len(hy)
    mline_ratio = hy["true_income_per_capita"].to_numpy() / max(float(hy["mline"].iloc[0]), 1.0)
    events = {
        "dept_hospital": hy["shock_illness"].to_numpy(),
        "dept_assistance": hy["poverty_type"].isin(["dibao", "tekun"]).to_numpy() & hy["registered"].to_numpy(),
        "dept_disaster": hy["shock_disaster"].to_numpy(),
        "dept_dropout": ~hy["true_education_ok"].to_numpy(),
        "dept_housing": ~hy["true_housing_ok"].to_numpy(),
        "dept_water": ~hy["true_water_ok"].to_numpy(),
    }
    for dept, (a, b) in _ASSET.items():
        z = a + b * np.log(np.maximum(mline_ratio, 0.05))
        events[dept] = rng.random(n) < 1.0 / (1.0 + np.exp(-z))
    temp = hy["true_risk_event"].to_numpy() & (rng.random(n) < 0.5)  # 临时救助 after a risk event
    out = {k: np.where(v, rng.integers(1, 13, n), 0) for k, v in events.items()}
    out["temp_relief"] = np.where(temp, rng.integers(1, 13, n), 0)
    return out


def _pick_member(mem: pd.DataFrame, hh_idx: np.ndarray, hy: pd.DataFrame, rng: np.random.Generator,
                 age_range: tuple[int, int] | None, year: int) -> np.ndarray:
    """Row in ``mem`` of one member of each listed household (within ``age_range`` if given; -1 if none)."""
    hh_ids = hy["household_id"].to_numpy()[hh_idx]
    m = mem[mem["household_id"].isin(hh_ids)]
    if age_range is not None:
        age = year - m["birth_year"]
        m = m[(age >= age_range[0]) & (age <= age_range[1])]
    m = m.assign(_u=rng.random(len(m)))
    first = m.sort_values(["household_id", "_u"], kind="stable").drop_duplicates("household_id")
    pos = pd.Series(first.index.to_numpy(), index=first["household_id"].to_numpy())
    return pos.reindex(hh_ids).fillna(-1).astype(np.int64).to_numpy()


def _details(dept: str, n: int, rng: np.random.Generator, sev: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Department-specific columns of ``n`` records (``sev``: severe hardship, e.g. an illness shock)."""
    sev = np.zeros(n, bool) if sev is None else sev
    if dept == "dept_hospital":
        total = np.round(np.where(sev, rng.lognormal(np.log(45000), 0.6, n), rng.lognormal(np.log(4000), 0.7, n)))
        share = np.where(sev, rng.uniform(0.3, 0.6, n), rng.uniform(0.15, 0.4, n))
        return {"total_cost": total, "out_of_pocket": np.round(total * share), "days": rng.integers(2, 30, n)}
    if dept == "dept_disaster":
        kinds = np.array(["洪涝", "干旱", "冰雹", "滑坡", "地震"], dtype=object)
        return {"disaster_kind": kinds[rng.integers(0, 5, n)], "loss": np.round(rng.lognormal(np.log(9000), 0.8, n))}
    if dept == "dept_dropout":
        return {"school_name": np.array([f"第{k}中学" for k in rng.integers(1, 9, n)], dtype=object)}
    if dept == "dept_housing":
        return {"house_grade": np.where(rng.random(n) < 0.4, "D", "C").astype(object)}
    if dept == "dept_water":
        return {"outage_days": rng.integers(7, 61, n)}
    if dept == "dept_vehicle":
        return {"vehicle_price": np.round(rng.lognormal(np.log(110000), 0.5, n), -2)}
    if dept == "dept_business":
        return {"registered_capital": np.round(rng.lognormal(np.log(300000), 1.0, n), -3)}
    if dept == "dept_property":
        return {"floor_area": np.round(rng.uniform(60, 160, n), 1)}
    if dept == "dept_payroll":
        return {"monthly_salary": np.round(rng.uniform(3500, 9000, n))}
    return {}


def _urban_people(n: int, county_codes: np.ndarray, year: int, rng: np.random.Generator) -> pd.DataFrame:
    """Urban residents outside the rural population (valid IDs, community codes of no village)."""
    if n == 0:
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in
                             ("person_id", "household_id", "name", "id_number", "village_code")}
                            ).assign(birth_date=pd.Series([], dtype="datetime64[ns]"))
    cc = county_codes[rng.integers(0, len(county_codes), n)].astype(str)
    by = rng.integers(year - 60, year - 22, n)
    bdate = by * 10000 + rng.integers(1, 13, n) * 100 + rng.integers(1, 29, n)
    seq = np.char.zfill(rng.integers(0, 1000, n).astype(str), 3)
    # the ID's address part is the prefecture's 市辖区 code (xxxx01), never a county of the rural
    # population, so an urban resident's ID cannot coincide with a rural member's
    first17 = np.char.add(np.char.add(np.char.add(np.char.ljust(cc, 4).astype("U4"), "01"), bdate.astype(str)), seq)
    ids = np.char.add(first17, check_digits(first17)).astype(object)
    return pd.DataFrame({
        "person_id": pd.Series([None] * n, dtype=object), "household_id": pd.Series([None] * n, dtype=object),
        "name": draw_names(rng, n), "id_number": ids, "birth_date": pd.to_datetime(bdate.astype(str), format="%Y%m%d"),
        "village_code": np.char.add(np.char.add(cc, "900"), np.char.zfill(rng.integers(1, 40, n).astype(str), 3)
                                    ).astype(object)})


def _noisy(rec: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Apply the exchange noise of :data:`NOISE` to ID numbers, names and village codes."""
    n = len(rec)
    ids = rec["id_number"].astype(object).to_numpy().copy()
    u = rng.random(n)
    c1, c2, c3 = NOISE["id_missing"], NOISE["id_missing"] + NOISE["id_15"], sum(
        NOISE[k] for k in ("id_missing", "id_15", "id_typo"))
    s = pd.Series(ids, dtype=object).astype(str)
    pos = rng.integers(6, 17, n)  # a typo in the birth date or sequence part
    digit = rng.integers(0, 10, n).astype(str)
    typo = np.array([x[:p] + d + x[p + 1:] for x, p, d in zip(s[(u >= c2) & (u < c3)], pos[(u >= c2) & (u < c3)],
                                                                digit[(u >= c2) & (u < c3)])], dtype=object)
    ids[(u >= c2) & (u < c3)] = typo if len(typo) else ids[(u >= c2) & (u < c3)]
    ids[(u >= c1) & (u < c2)] = id18_to_15(s[(u >= c1) & (u < c2)]).to_numpy()
    ids[u < c1] = None
    names = rec["name"].astype(str)
    variant = rng.random(n) < NOISE["name_variant"]
    names = names.where(~variant, names.str.translate(_VARIANT).where(
        names.str.translate(_VARIANT) != names, names + " "))
    vil = rec["village_code"].astype(str).to_numpy().copy()
    wrong = rng.random(n) < NOISE["village_wrong"]
    vil[wrong] = np.array([v[:9] + f"{(int(v[9:]) % 30) + 1:03d}" for v in vil[wrong]], dtype=object)
    return rec.assign(id_number=ids, name=names.to_numpy(), village_code=vil)


def _dept_records(dept: str, hh_idx: np.ndarray, mem: pd.DataFrame, hy: pd.DataFrame, month: int, year: int,
                  rng: np.random.Generator, sev: np.ndarray | None = None) -> pd.DataFrame:
    """Records of one department from the households ``hh_idx`` with an event this month."""
    ages = {"dept_dropout": (6, 15), "dept_vehicle": (20, 65), "dept_business": (20, 65),
            "dept_property": (22, 70), "dept_payroll": (20, 60)}.get(dept)
    rows = _pick_member(mem, hh_idx, hy, rng, ages, year)
    keep = rows >= 0
    who = mem.iloc[rows[keep]][["person_id", "household_id", "name", "id_number", "birth_date", "village_code"]]
    who = who.reset_index(drop=True)
    if dept in _URBAN:
        n_u = int(round(_URBAN[dept] * len(who)))
        who = pd.concat([who, _urban_people(n_u, np.unique(hy["county_code"].to_numpy()), year, rng)],
                        ignore_index=True)
    n = len(who)
    sev_k = np.concatenate([sev[keep], np.zeros(n - int(keep.sum()), bool)]) if sev is not None else None
    det = _details(dept, n, rng, sev_k)
    day = rng.integers(1, 29, n)
    out = who.assign(event_date=pd.to_datetime({"year": np.full(n, year), "month": np.full(n, month), "day": day}),
                     **det)
    return out


def _assistance(ev: dict[str, np.ndarray], mem: pd.DataFrame, hy: pd.DataFrame, month: int, year: int,
                rng: np.random.Generator) -> pd.DataFrame:
    """低保 / 特困 decisions (yearly review month) and 临时救助 after risk events."""
    reg = np.flatnonzero(ev["dept_assistance"] == month)
    tmp = np.flatnonzero(ev["temp_relief"] == month)
    a = _dept_records("dept_assistance", reg, mem, hy, month, year, rng)
    kind_reg = np.where(hy["poverty_type"].to_numpy()[reg] == "tekun", "特困", "低保")
    b = _dept_records("dept_assistance", tmp, mem, hy, month, year, rng)
    kinds = np.concatenate([kind_reg[: len(a)], np.full(len(b), "临时救助")]).astype(object)
    out = pd.concat([a, b], ignore_index=True)
    amount = np.where(kinds == "特困", 4800, np.where(kinds == "低保", 2600, rng.integers(500, 5001, len(out))))
    return out.assign(assistance_kind=kinds, amount=amount.astype(float))


def department_month(data_dir: str | Path, month: str, seed: int, policy: Policy,
                     people: tuple[pd.DataFrame, pd.DataFrame] | None = None
                     ) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Every department's records of ``month`` ('YYYY-MM') in canonical columns, and their truth.

    Parameters
    ----------
    data_dir : path
        A dataset written by :func:`evalkit.synth.generate`.
    month : str
    seed : int
        The dataset's seed.
    policy : Policy
        Monitoring lines (assets depend on true income relative to them).
    people : tuple, optional
        ``(members, household-year)`` of the month's year, to reuse across months.

    Returns
    -------
    (dict of DataFrame, DataFrame)
        Records per department table (``record_id`` first) and the truth: ``table, record_id,
        person_id, household_id`` (null for urban residents).
    """
    year, m = int(month[:4]), int(month[5:7])
    mem, hy = people or _people(Path(data_dir), year)
    hy = hy.assign(mline=policy.monitoring_line(str(hy["county_code"].iloc[0])[:2], year))
    ev = _event_months(hy, seed, year)
    rng = np.random.default_rng([seed, STREAM, year, m])
    tables, truth = {}, []
    for dept in DEPARTMENTS:
        if dept == "dept_assistance":
            rec = _assistance(ev, mem, hy, m, year, rng)
        else:
            idx = np.flatnonzero(ev[dept] == m)
            sev = np.ones(len(idx), bool) if dept == "dept_hospital" else None
            rec = _dept_records(dept, idx, mem, hy, m, year, rng, sev)
            if dept == "dept_hospital":  # routine stays of anyone, small costs
                extra = rng.choice(len(hy), int(0.004 * len(hy)), replace=False)
                rec = pd.concat([rec, _dept_records(dept, np.sort(extra), mem, hy, m, year, rng)], ignore_index=True)
        rec = _noisy(rec.reset_index(drop=True), rng)
        rec.insert(0, "record_id", [f"{DEPARTMENTS.index(dept):02d}{year}{m:02d}{i:07d}" for i in range(len(rec))])
        truth.append(pd.DataFrame({"table": dept, "record_id": rec["record_id"], "person_id": rec["person_id"],
                                   "household_id": rec["household_id"]}))
        cols = ["record_id"] + [c for c in dictionary.table(dept).names if c != "record_id"]
        rec["birth_date"] = rec["birth_date"].dt.strftime("%Y-%m-%d")
        rec["event_date"] = rec["event_date"].dt.strftime("%Y-%m-%d")
        tables[dept] = rec[cols]
    return tables, pd.concat(truth, ignore_index=True)


def write_departments(data_dir: str | Path, months: list[str], seed: int, policy: Policy) -> list[Path]:
    """Write ``departments/YYYY-MM/<table>.csv`` (GBK, Chinese headers) and the records' truth.

    Returns
    -------
    list of Path
        The files written, in order.
    """
    from evalkit.synth.dataset import write_parquet

    data_dir = Path(data_dir)
    written, cache = [], {}
    for month in months:
        year = int(month[:4])
        if year not in cache:
            cache = {year: _people(data_dir, year)}
        tables, truth = department_month(data_dir, month, seed, policy, people=cache[year])
        d = data_dir / "departments" / month
        d.mkdir(parents=True, exist_ok=True)
        for t, df in tables.items():
            spec = dictionary.table(t)
            out = df.rename(columns={c.name: c.zh for c in spec.columns})
            out.to_csv(d / f"{t}.csv", index=False, encoding="gbk")
            written.append(d / f"{t}.csv")
        tp = data_dir / "departments_truth" / f"{month}.parquet"
        write_parquet(truth, tp)
        written.append(tp)
    return written
