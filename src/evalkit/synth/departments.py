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

The data are generated county by county (the memory of one county at a time, so a 17-million
person province fits): each county's yearly events get their months from a stream of ``(seed,
STREAM, year, county)``, its month's records and noise from ``(seed, STREAM, year, month,
county)``: the existing tables' streams are never touched, so the rest of the dataset stays
byte-identical. The noise (:data:`NOISE`) and the rate of routine hospital stays are parameters.
Files are GBK CSV with the Chinese headers of the data dictionary (``departments/YYYY-MM/<table>.csv``,
what a county office receives); the truth of every record (person and household it belongs to)
goes to ``departments_truth/YYYY-MM.parquet``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from evalkit import dictionary
from evalkit.config import Policy
from evalkit.ids import check_digits
from evalkit.synth.people import draw_names

__all__ = ["STREAM", "DEPARTMENTS", "NOISE", "ROUTINE_STAY_RATE", "department_month", "write_departments",
           "id18_to_15", "counties_of"]

#: Constant of the departments' own random streams.
STREAM = 1313
#: Department tables (data dictionary names), in writing order.
DEPARTMENTS = ("dept_hospital", "dept_assistance", "dept_disaster", "dept_dropout", "dept_housing",
               "dept_water", "dept_vehicle", "dept_business", "dept_property", "dept_payroll")
#: Record noise (shares of records; generator parameters, not policy). IDs: missing, in the old
#: 15-digit form, one digit mistyped, two adjacent digits transposed; names: a homophone of a
#: given-name character (同音字), traditional characters (繁体), a given-name character missing,
#: a stray space; a wrong village code; a birth date with day and month swapped or a day off.
NOISE = {"id_missing": 0.05, "id_15": 0.04, "id_typo": 0.03, "id_transposed": 0.02,
         "name_homophone": 0.04, "name_traditional": 0.03, "name_missing_char": 0.02, "name_space": 0.01,
         "village_wrong": 0.03, "birth_date_wrong": 0.02}
#: Routine hospital stays (any person, small bills) per person and month: about 19% of rural
#: residents are admitted once a year (assumption in line with national inpatient rates).
ROUTINE_STAY_RATE = 0.016
#: Share of department records about urban residents outside the rural population.
_URBAN = {"dept_hospital": 0.3, "dept_vehicle": 1.5, "dept_business": 1.0, "dept_property": 1.5,
          "dept_payroll": 2.0}
#: Yearly probability of an asset record: logistic(a + b * ln(true income / monitoring line)).
_ASSET = {"dept_vehicle": (-4.2, 1.6), "dept_business": (-5.0, 1.5), "dept_property": (-5.2, 1.6),
          "dept_payroll": (-5.5, 1.6)}
#: Same-sounding characters of the given-name pool (同音字).
_HOMOPHONE = str.maketrans("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀英华平刚桂兰玉霞建国文辉力永红梅志林海燕春金凤云鹏宇浩东亮琴斌兵晶飞荣新利清波宁俊峰健凯德成亚",  # noqa: E501
                           "玮方那民菁莉蔷垒君阳永燕洁涓滔铭潮绣莹桦萍钢贵岚钰侠健果雯晖立勇宏玫智琳凯艳椿锦峰芸朋雨皓冬靓芹彬冰菁菲蓉鑫莉青博柠骏锋建铠得诚娅")  # noqa: E501
#: Simplified -> traditional characters of the name pools (繁体).
_TRADITIONAL = str.maketrans("伟丽强军杰涛华刚兰国辉红凤云鹏东飞荣宁凯亚张刘陈杨赵吴马郑谢韩冯邓许苏叶吕卢钟谭陆贾韦邹龙贺顾龚万钱严汤罗孙",  # noqa: E501
                             "偉麗強軍傑濤華剛蘭國輝紅鳳雲鵬東飛榮寧凱亞張劉陳楊趙吳馬鄭謝韓馮鄧許蘇葉呂盧鍾譚陸賈韋鄒龍賀顧龔萬錢嚴湯羅孫")  # noqa: E501


def id18_to_15(ids: pd.Series) -> pd.Series:
    """The old 15-digit form of 18-digit ID numbers (no century, no check character)."""
    return ids.str.slice(0, 6) + ids.str.slice(8, 17)


def _people(data_dir: Path, year: int, county: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Members (with village and birth date) and the households' year (panel + truth) of ``year``
    (of one county when given: the county's files, or the rows of it)."""
    def read(table: str, **kw) -> pd.DataFrame:
        f = data_dir / table / f"{county}.parquet"
        if county is not None and f.exists():
            return pd.read_parquet(f, **kw)
        df = pd.read_parquet(data_dir / table, **kw)
        if county is not None and "county_code" in df:
            df = df[df["county_code"].astype(str) == county]
        return df

    cols = ["person_id", "household_id", "name", "id_number", "sex", "birth_year"]
    hh = read("households", columns=["household_id", "village_code", "county_code", "registered", "poverty_type"])
    mem = read("members", columns=cols)
    if county is not None:
        mem = mem[mem["household_id"].isin(hh["household_id"])]
    panel = read("panel", filters=[("year", "==", year)],
                 columns=["household_id", "county_code", "shock_illness", "shock_disaster", "register_status"])
    truth = read("truth", filters=[("year", "==", year)])
    hy = hh.merge(panel.drop(columns="county_code"), on="household_id").merge(
        truth.drop(columns=["year", "county_code"]), on="household_id")
    hy = hy.sort_values("household_id", kind="stable").reset_index(drop=True)
    mem = mem.merge(hh[["household_id", "village_code"]], on="household_id").sort_values("person_id", kind="stable")
    mem["birth_date"] = pd.to_datetime(mem["id_number"].str.slice(6, 14), format="%Y%m%d")
    return mem.reset_index(drop=True), hy


def counties_of(data_dir: str | Path) -> list[str]:
    """County codes of a dataset, sorted."""
    hh = pd.read_parquet(Path(data_dir) / "households", columns=["county_code"])
    return sorted(hh["county_code"].astype(str).unique())


def _event_months(hy: pd.DataFrame, seed: int, year: int, county: int) -> dict[str, np.ndarray]:
    """Month (1-12) of each household's yearly event per department; 0 = no event this year."""
    rng = np.random.default_rng([seed, STREAM, year, county])
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


def _edit_ids(ids: np.ndarray, rng: np.random.Generator, transpose: bool) -> np.ndarray:
    """18-character IDs with one digit of the date or sequence part changed, or two adjacent
    digits of it swapped (``transpose``); whole arrays of characters, no loop over records."""
    n = len(ids)
    if n == 0:
        return ids
    ch = np.array(ids.astype("U18")).view("U1").reshape(n, 18).copy()
    pos = rng.integers(6, 16 if transpose else 17, n)
    r = np.arange(n)
    if transpose:
        a, b = ch[r, pos].copy(), ch[r, pos + 1].copy()
        same = a == b  # swapping equal digits changes nothing: mistype one instead
        ch[r, pos], ch[r, pos + 1] = b, a
        ch[r[same], pos[same]] = ((ch[r[same], pos[same]].astype(int) + 1) % 10).astype(str)
    else:
        ch[r, pos] = ((ch[r, pos].astype(int) + rng.integers(1, 10, n)) % 10).astype(str)
    return ch.view("U18").ravel().astype(object)


def _name_noise(names: pd.Series, rng: np.random.Generator, noise: dict[str, float]) -> pd.Series:
    """Names with homophones, traditional characters, a missing given-name character or a space."""
    u = rng.random(len(names))
    cuts = np.cumsum([noise["name_homophone"], noise["name_traditional"], noise["name_missing_char"],
                      noise["name_space"]])
    kind = np.searchsorted(cuts, u, side="right")  # 0..3 = the noises above, 4 = none
    homo = names.str.slice(0, 1) + names.str.slice(1).str.translate(_HOMOPHONE)
    trad = names.str.translate(_TRADITIONAL)
    # a given-name character dropped from three-character names; two-character names get a homophone
    short = names.str.len() >= 3
    drop = (names.str.slice(0, 2)).where(short, homo)
    space = names.str.slice(0, 1) + " " + names.str.slice(1)
    out = np.select([kind == 0, kind == 1, kind == 2, kind == 3], [homo, trad, drop, space], names)
    return pd.Series(out, index=names.index, dtype=object)


def _noisy(rec: pd.DataFrame, rng: np.random.Generator, noise: dict[str, float]) -> pd.DataFrame:
    """Apply the exchange noise (:data:`NOISE` shares) to ID numbers, names, villages, birth dates."""
    n = len(rec)
    ids = rec["id_number"].astype(object).to_numpy().copy()
    u = rng.random(n)
    cuts = np.cumsum([noise["id_missing"], noise["id_15"], noise["id_typo"], noise["id_transposed"]])
    kind = np.searchsorted(cuts, u, side="right")
    for k, transpose in ((2, False), (3, True)):
        ids[kind == k] = _edit_ids(ids[kind == k], rng, transpose)
    ids[kind == 1] = id18_to_15(pd.Series(ids[kind == 1], dtype=object)).to_numpy()
    ids[kind == 0] = None
    names = _name_noise(rec["name"].astype(str), rng, noise)
    vil = rec["village_code"].astype(str)
    wrong = rng.random(n) < noise["village_wrong"]
    other = vil.str.slice(0, 9) + ((vil.str.slice(9).astype(int) % 30) + 1).astype(str).str.zfill(3)
    bd = pd.to_datetime(rec["birth_date"])
    bad = rng.random(n) < noise["birth_date_wrong"]
    swapped = pd.to_datetime((bd.dt.year * 10000 + bd.dt.day * 100 + bd.dt.month).astype(str), format="%Y%m%d",
                             errors="coerce")
    off = bd + pd.to_timedelta(np.where(rng.random(n) < 0.5, 1, -1), unit="D")
    # day and month swapped where that is a date (day <= 12 and differs), else a day off
    wrong_bd = swapped.where(swapped.notna() & (swapped != bd), off)
    return rec.assign(id_number=ids, name=names.to_numpy(), village_code=vil.where(~wrong, other).to_numpy(),
                      birth_date=bd.where(~bad, wrong_bd))


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


def _record_ids(dept: str, year: int, month: int, start: int, n: int) -> np.ndarray:
    """``DDYYYYMM`` + a 7-digit running number from ``start`` (unique within the month's file)."""
    seq = pd.Series(start + np.arange(n)).astype(str).str.zfill(7)
    return (f"{DEPARTMENTS.index(dept):02d}{year}{month:02d}" + seq).to_numpy(dtype=object)


def _county_month(mem: pd.DataFrame, hy: pd.DataFrame, month: str, seed: int, county: str,
                  noise: dict[str, float], routine_rate: float) -> dict[str, pd.DataFrame]:
    """Every department's records of one county and month (canonical columns, no record_id)."""
    year, m = int(month[:4]), int(month[5:7])
    ev = _event_months(hy, seed, year, int(county))
    rng = np.random.default_rng([seed, STREAM, year, m, int(county)])
    out = {}
    for dept in DEPARTMENTS:
        if dept == "dept_assistance":
            rec = _assistance(ev, mem, hy, m, year, rng)
        else:
            idx = np.flatnonzero(ev[dept] == m)
            sev = np.ones(len(idx), bool) if dept == "dept_hospital" else None
            rec = _dept_records(dept, idx, mem, hy, m, year, rng, sev)
            if dept == "dept_hospital":  # routine stays of anyone, small bills
                extra = rng.choice(len(hy), min(len(hy), int(round(routine_rate * len(mem)))), replace=False)
                rec = pd.concat([rec, _dept_records(dept, np.sort(extra), mem, hy, m, year, rng)], ignore_index=True)
        out[dept] = _noisy(rec.reset_index(drop=True), rng, noise)
    return out


def department_month(data_dir: str | Path, month: str, seed: int, policy: Policy,
                     people: dict[str, tuple[pd.DataFrame, pd.DataFrame]] | None = None,
                     noise: dict[str, float] | None = None, routine_stay_rate: float = ROUTINE_STAY_RATE
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
    people : dict, optional
        county -> ``(members, household-year)`` of the month's year, to reuse across months
        (default: read county by county).
    noise : dict, optional
        Shares of :data:`NOISE` to override.
    routine_stay_rate : float
        Routine hospital stays per person and month.

    Returns
    -------
    (dict of DataFrame, DataFrame)
        Records per department table (``record_id`` first) and the truth: ``table, record_id,
        person_id, household_id`` (null for urban residents).
    """
    year, m = int(month[:4]), int(month[5:7])
    nz = {**NOISE, **(noise or {})}
    parts: dict[str, list[pd.DataFrame]] = {d: [] for d in DEPARTMENTS}
    for county in counties_of(data_dir):
        mem, hy = (people or {}).get(county) or _people(Path(data_dir), year, county)
        hy = hy.assign(mline=policy.monitoring_line(county[:2], year))
        for dept, rec in _county_month(mem, hy, month, seed, county, nz, routine_stay_rate).items():
            parts[dept].append(rec)
    tables, truth = {}, []
    for dept in DEPARTMENTS:
        rec = pd.concat(parts[dept], ignore_index=True)
        rec.insert(0, "record_id", _record_ids(dept, year, m, 0, len(rec)))
        truth.append(pd.DataFrame({"table": dept, "record_id": rec["record_id"], "person_id": rec["person_id"],
                                   "household_id": rec["household_id"]}))
        cols = ["record_id"] + [c for c in dictionary.table(dept).names if c != "record_id"]
        rec["birth_date"] = rec["birth_date"].dt.strftime("%Y-%m-%d")
        rec["event_date"] = rec["event_date"].dt.strftime("%Y-%m-%d")
        tables[dept] = rec[cols]
    return tables, pd.concat(truth, ignore_index=True)


def write_departments(data_dir: str | Path, months: list[str], seed: int, policy: Policy,
                      noise: dict[str, float] | None = None, routine_stay_rate: float = ROUTINE_STAY_RATE,
                      out_dir: str | Path | None = None) -> list[Path]:
    """Write ``departments/YYYY-MM/<table>.csv`` (GBK, Chinese headers) and the records' truth.

    ``out_dir`` (default ``data_dir``) receives ``departments/`` and ``departments_truth/``, so a
    read-only dataset can get department files elsewhere.

    Returns
    -------
    list of Path
        The files written, in order.
    """
    from evalkit.synth.dataset import write_parquet

    data_dir = Path(data_dir)
    out_dir = Path(out_dir) if out_dir is not None else data_dir
    written = []
    for month in months:
        tables, truth = department_month(data_dir, month, seed, policy, noise=noise,
                                         routine_stay_rate=routine_stay_rate)
        d = out_dir / "departments" / month
        d.mkdir(parents=True, exist_ok=True)
        for t, df in tables.items():
            spec = dictionary.table(t)
            out = df.rename(columns={c.name: c.zh for c in spec.columns})
            out.to_csv(d / f"{t}.csv", index=False, encoding="gbk")
            written.append(d / f"{t}.csv")
        tp = out_dir / "departments_truth" / f"{month}.parquet"
        write_parquet(truth, tp)
        written.append(tp)
    return written
