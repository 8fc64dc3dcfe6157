"""The monthly monitoring cycle: department data, linkage, case store, check, review ledger.

Checked against the generator's truth (which person each department record belongs to, which
households had an illness shock or a failing guarantee) and hand-made examples (ID numbers,
ledgers with illegal transitions and unknown cases, bad department files).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evalkit.config import load_policy
from evalkit.errors import InputError
from evalkit.monitoring import store
from evalkit.monitoring.check import quarterly_summary
from evalkit.monitoring.cycle import import_month
from evalkit.monitoring.intake import DepartmentInputError, read_month
from evalkit.monitoring.linkage import load_key, normalize_ids, pseudonymize
from evalkit.monitoring.review import apply_review
from evalkit.synth import generate
from evalkit.text import label
from evalkit.workflows import monthly

COUNTIES = ["610631", "610632"]
M1, M2 = "2025-01", "2025-02"


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mon") / "data"
    return generate("demo", seed=5, out=out, scale=0.03, counties=COUNTIES, field_survey=False,
                    policy=load_policy(), departments=[M1, M2])


@pytest.fixture(scope="module")
def base_store(data, tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("store")
    db, key = d / "cases.duckdb", d / "keys" / "pseudo.key"
    import_month(db, data, M1, key, load_policy())
    return db, key


def _copy(base: tuple[Path, Path], tmp_path: Path) -> Path:
    db = tmp_path / "cases.duckdb"
    shutil.copyfile(base[0], db)
    return db


def _contents(db: Path) -> dict[str, pd.DataFrame]:
    with store.connect_read(db) as con:
        return {t: store.table_frame(con, t) for t in store.TABLES}


def _same(a: dict, b: dict) -> None:
    for t in store.TABLES:
        pd.testing.assert_frame_equal(a[t], b[t], check_dtype=False)


def _truth(data: Path, month: str) -> pd.DataFrame:
    t = pd.read_parquet(data / "departments_truth" / f"{month}.parquet")
    return t.rename(columns={"table": "table_name"})


# -- generator --------------------------------------------------------------------------------

def test_existing_tables_unchanged_by_departments(data, tmp_path):
    plain = generate("demo", seed=5, out=tmp_path / "plain", scale=0.03, counties=COUNTIES, field_survey=False,
                     policy=load_policy())
    a = json.loads((plain / "manifest.json").read_text())["files"]
    b = json.loads((data / "manifest.json").read_text())["files"]
    assert a and all(b[f] == sha for f, sha in a.items())
    assert any(f.startswith("departments/") for f in b)


def test_department_records_follow_the_truth(data):
    truth = _truth(data, M1)
    hosp = pd.read_csv(data / "departments" / M1 / "dept_hospital.csv", encoding="gbk", dtype=str)
    assert list(hosp.columns[:6]) == ["记录编号", "身份证号", "姓名", "出生日期", "村代码", "入院日期"]
    assert pd.to_datetime(hosp["入院日期"]).dt.strftime("%Y-%m").eq(M1).all()
    hosp = hosp.merge(truth, left_on="记录编号", right_on="record_id")
    panel = pd.read_parquet(data / "panel", filters=[("year", "==", 2025)])
    severe = hosp[hosp["个人自付费用"].astype(float) >= 10000].dropna(subset=["household_id"])
    ill = set(panel.loc[panel["shock_illness"], "household_id"])
    assert len(severe) >= 3 and severe["household_id"].isin(ill).mean() >= 0.9
    # noise: some IDs missing, some 15-digit, the rest 18 characters
    ids = pd.concat([pd.read_csv(f, encoding="gbk", dtype=str)["身份证号"]
                     for f in (data / "departments" / M1).glob("*.csv")])
    lens = ids.str.len()
    assert 0 < ids.isna().mean() < 0.1 and 0 < (lens == 15).mean() < 0.1 and (lens == 18).mean() > 0.8


# -- linkage ----------------------------------------------------------------------------------

def test_normalize_ids_by_hand():
    s = pd.Series(["11010519491231002X", "110105491231002", " 11010519491231002x ", "110105194912310021",
                   None, "12345", "1.10105E+17"])
    norm, status = normalize_ids(s)
    assert status.tolist() == ["valid", "valid", "valid", "bad_check", "missing", "malformed", "malformed"]
    assert norm.tolist()[:3] == ["11010519491231002X"] * 3 and norm.iloc[3:].isna().all()


def test_pseudonym_is_keyed_and_key_private(tmp_path):
    k1 = load_key(tmp_path / "k1")
    assert (tmp_path / "k1").stat().st_mode & 0o777 == 0o600 and load_key(tmp_path / "k1") == k1
    ids = pd.Series(["11010519491231002X", None])
    p1 = pseudonymize(ids, k1)
    import hashlib
    import hmac
    assert p1.iloc[0] == hmac.new(k1, ids.iloc[0].encode(), hashlib.sha256).hexdigest()[:32] and pd.isna(p1.iloc[1])
    assert pseudonymize(ids, load_key(tmp_path / "k2")).iloc[0] != p1.iloc[0]


def test_linkage_precision_recall_against_truth(data, base_store):
    with store.connect_read(base_store[0]) as con:
        m = con.execute("SELECT * FROM dept_matches WHERE month = ?", [M1]).df()
    t = _truth(data, M1).merge(m, on=["table_name", "record_id"], suffixes=("_true", ""))
    linked = t[t["person_id"].notna()]
    precision = (linked["person_id"] == linked["person_id_true"]).mean()
    right = t["person_id"].notna() & (t["person_id"] == t["person_id_true"])
    recall = right.sum() / t["person_id_true"].notna().sum()
    assert precision >= 0.99 and recall >= 0.95
    assert (linked["match_type"] == "probabilistic").sum() >= 1  # the noisy IDs were linked too
    # urban residents outside the population are never linked
    assert t.loc[t["person_id_true"].isna(), "person_id"].isna().all()


# -- store --------------------------------------------------------------------------------------

def test_import_is_idempotent(base_store, data, tmp_path):
    db = _copy(base_store, tmp_path)
    before, raw = _contents(db), db.read_bytes()
    res = import_month(db, data, M1, base_store[1], load_policy())
    assert res.already and db.read_bytes() == raw
    _same(before, _contents(db))
    assert len(before["cases"]) > 0 and len(before["flags"]) >= len(before["cases"])


def test_failed_import_leaves_store_as_it_was(base_store, data, tmp_path, monkeypatch):
    db = _copy(base_store, tmp_path)
    before = _contents(db)

    def boom(*a, **k):
        raise RuntimeError("injected failure after the month's rows were written")

    monkeypatch.setattr(store, "record_import", boom)
    with pytest.raises(RuntimeError, match="injected"):
        import_month(db, data, M2, base_store[1], load_policy())
    _same(before, _contents(db))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cases.duckdb", "cases.duckdb.lock"]  # no temporary


def _bad_month(data: Path, tmp_path: Path) -> Path:
    d = tmp_path / "bad" / "departments" / M1
    shutil.copytree(data / "departments" / M1, d)
    f = d / "dept_disaster.csv"
    df = pd.read_csv(f, encoding="gbk", dtype=str)
    df.loc[0, "受灾日期"] = "2025-03-05"
    df.loc[1, "身份证号"] = "6106311990"
    df = pd.concat([df, df.iloc[[2]]], ignore_index=True)
    df["车牌号"] = ""
    df.to_csv(f, index=False, encoding="gbk")
    return tmp_path / "bad"


def test_bad_department_files_reported_and_nothing_written(base_store, data, tmp_path):
    bad = _bad_month(data, tmp_path)
    with pytest.raises(DepartmentInputError) as e:
        read_month(bad, M1)
    p = e.value.problems
    assert set(p["file"]) == {"dept_disaster.csv"} and "unknown column" in set(p["reason"])
    # after the unknown column is dropped the row-level problems show, each with its row
    f = bad / "departments" / M1 / "dept_disaster.csv"
    pd.read_csv(f, encoding="gbk", dtype=str).drop(columns="车牌号").to_csv(f, index=False, encoding="gbk")
    with pytest.raises(DepartmentInputError) as e:
        read_month(bad, M1)
    got = set(map(tuple, e.value.problems[["row", "column", "reason"]].astype(str).to_numpy()))
    n = len(pd.read_csv(f, encoding="gbk"))
    assert got == {("2", "event_date", "outside the month 2025-01"), ("3", "id_number", "malformed ID number"),
                   (str(n + 1), "record_id", "duplicate record")}
    assert "6106311990" not in str(e.value)
    db = _copy(base_store, tmp_path)
    before = _contents(db)
    with pytest.raises(InputError):
        import_month(db, bad, M1, base_store[1], load_policy())
    with pytest.raises(InputError, match="YYYY-MM"):
        import_month(db, data, "2025-13", base_store[1], load_policy())
    _same(before, _contents(db))


# -- the full cycle -------------------------------------------------------------------------------

def _ledger(rows: list[tuple[str, str]], path: Path, verify: dict | None = None) -> Path:
    df = pd.DataFrame({"案件编号": [c for c, _ in rows], "审核决定": [d for _, d in rows]})
    for k, v in (verify or {}).items():
        df[k] = [v] + [None] * (len(rows) - 1)
    df.to_excel(path, index=False)
    return path


def test_full_cycle_import_check_review_close(base_store, data, tmp_path):
    db = _copy(base_store, tmp_path)
    policy = load_policy()
    reader = store.connect_read(db)  # opened before the import: sees the store as it was
    n_before = reader.execute("SELECT count(*) FROM dept_matches").fetchone()[0]
    run = monthly.run_monthly(data, M2, db, policy, key_path=base_store[1], generate_missing=False)
    assert not run.imported.already and reader.execute("SELECT count(*) FROM dept_matches").fetchone()[0] == n_before
    reader.close()
    with store.connect_read(db) as con:
        assert con.execute("SELECT count(*) FROM dept_matches").fetchone()[0] > n_before
    chk = run.check
    assert len(chk.red_list) and chk.red_list["due_date"].min() > pd.Timestamp("2025-02-28")
    out = tmp_path / "out"
    files = monthly.write_monthly_outputs(chk, out, "zh", key_path=base_store[1])
    book = pd.read_excel(files[0], sheet_name=None, dtype=str, engine="openpyxl")
    review = book["审核台账"]
    assert {"核实结果", "核实人", "核实日期", "整改情况", "备注", "审核决定"} <= set(review.columns)
    # privacy: no full ID number and no member name anywhere in the ledger
    names = set(pd.read_parquet(data / "members", columns=["name"])["name"])
    cells = pd.concat([b.astype(str).stack() for b in book.values()])
    assert not cells.str.contains(r"[0-9]{17}[0-9X]").any() and not cells.isin(names).any()
    assert not any(base_store[1].name == p.name for p in out.rglob("*"))
    case, other = review["案件编号"].iloc[0], review["案件编号"].iloc[-1]
    fill = ["帮扶中", "属实", "王小明", "2025-02-20"]
    review.loc[review.index[0], ["审核决定", "核实结果", "核实人", "核实日期"]] = fill
    review.loc[review.index[-1], "审核决定"] = "已销号"  # identified -> closed: not allowed
    extra = pd.DataFrame({"案件编号": ["999999-202501-00001"], "审核决定": ["帮扶中"]})
    back = tmp_path / "back.xlsx"
    pd.concat([review, extra], ignore_index=True).to_excel(back, index=False)
    r = monthly.review_ledger(back, db, M2)
    assert r.applied["to_state"].tolist() == ["assisted"] and r.visits == 1
    rej = r.rejected.set_index("case_id")["reason"].to_dict()
    assert (other == case or rej[other] == "illegal_transition") and rej["999999-202501-00001"] == "unknown_case"
    assert monthly.review_ledger(back, db, M2).already
    steps = ["申请风险消除", "村级评议通过", "乡镇审核通过", "县级审定通过", "省级备案", "已销号"]
    r2 = monthly.review_ledger(_ledger([(case, s) for s in steps], tmp_path / "chain.xlsx"), db, "2025-03")
    assert len(r2.rejected) == 0 and r2.applied["to_state"].iloc[-1] == "closed"
    with store.connect_read(db) as con:
        hist = con.execute("SELECT to_state FROM case_history WHERE case_id = ? ORDER BY seq", [case]).df()
        open_flags = con.execute("SELECT count(*) FROM flags WHERE case_id = ? AND cleared_month IS NULL",
                                 [case]).fetchone()[0]
        visitor = con.execute("SELECT visitor FROM visits").df()["visitor"].tolist()
        q = quarterly_summary(con, "2025-Q1")
    assert hist["to_state"].tolist() == ["identified", "assisted", "elimination_proposed", "village_approved",
                                         "township_approved", "county_approved", "province_filed", "closed"]
    assert open_flags == 0 and visitor == ["王*明"]
    opened = int(case.split("-")[1][4:])  # case numbers carry the month they were opened
    assert q.by_county["closed_cases"].sum() == 1 and q.closure_months["months_to_closure"].tolist() == [3 - opened]
    # a new severe event of the closed household in 2025-03 reopens the case with a new red flag
    hh = review.loc[review["案件编号"] == case, "户编号"].iloc[0]
    m = pd.read_parquet(data / "members", filters=[("household_id", "==", hh)]).iloc[0]
    d = tmp_path / "m3" / "departments" / "2025-03"
    d.mkdir(parents=True)
    pd.DataFrame({"记录编号": ["X1"], "身份证号": [m["id_number"]], "姓名": [m["name"]],
                  "出生日期": [f"{m['id_number'][6:10]}-{m['id_number'][10:12]}-{m['id_number'][12:14]}"],
                  "村代码": [hh[:12]], "受灾日期": ["2025-03-10"], "灾害类型": ["洪涝"], "直接经济损失": ["50000"]}
                 ).to_csv(d / "dept_disaster.csv", index=False, encoding="gbk")
    shutil.copytree(data / "members", tmp_path / "m3" / "members")
    for sub in ("households", "panel"):
        shutil.copytree(data / sub, tmp_path / "m3" / sub)
    res = import_month(db, tmp_path / "m3", "2025-03", base_store[1], policy)
    assert res.changes["reopened"] == 1 and res.changes["new_cases"] == 0 and res.changes["flags"] == 1
    with store.connect_read(db) as con:
        assert con.execute("SELECT state FROM cases WHERE case_id = ?", [case]).fetchone()[0] == "reopened"
        due = con.execute("SELECT due_date FROM flags WHERE case_id = ? AND cleared_month IS NULL", [case]).fetchone()
    assert str(due[0]) == "2025-04-30"  # end of March + 30 days for a disaster (policy)
    old = tmp_path / "m3" / "departments" / "2024-12"
    old.mkdir()
    pd.read_csv(d / "dept_disaster.csv", encoding="gbk", dtype=str).assign(受灾日期="2024-12-10").to_csv(
        old / "dept_disaster.csv", index=False, encoding="gbk")
    with pytest.raises(InputError, match="before the last imported month"):
        import_month(db, tmp_path / "m3", "2024-12", base_store[1], policy)


def test_review_rejects_line_by_line(base_store, tmp_path):
    db = _copy(base_store, tmp_path)
    with store.connect_read(db) as con:
        cases = con.execute("SELECT case_id FROM cases ORDER BY case_id LIMIT 2").df()["case_id"].tolist()
    led = pd.DataFrame({"case_id": [cases[0], cases[1], "nope", cases[0], cases[1]],
                        "decision": ["已销号", "帮扶中", "帮扶中", "不存在的状态", "申请风险消除"],
                        "verify_date": [None, "2025-13-45", None, None, None]})
    r = apply_review(db, led, "hand.xlsx", "h" * 64, M1)
    assert r.rejected[["row", "reason"]].values.tolist() == [[2, "illegal_transition"], [3, "bad_date"],
                                                            [4, "unknown_case"], [5, "unknown_decision"],
                                                            [6, "illegal_transition"]]
    assert len(r.applied) == 0
    led2 = led.assign(verify_date=None)
    r2 = apply_review(db, led2, "hand2.xlsx", "g" * 64, M1)
    assert r2.applied["case_id"].tolist() == [cases[1], cases[1]] and len(r2.rejected) == 3
    with store.connect_read(db) as con:
        st = dict(con.execute("SELECT case_id, state FROM cases WHERE case_id IN (?, ?)", cases).fetchall())
    assert st == {cases[0]: "identified", cases[1]: "elimination_proposed"}
    assert np.array_equal(r2.rejected["row"].to_numpy(), [2, 4, 5])


def test_quarter_map_colours_each_county_by_its_own_count():
    # open cases and overdue flags on the real boundaries: each county's polygon takes the colour of
    # its own number (the largest count the darkest), the counties without data stay light grey
    from evalkit.report.monthly import plot_quarter_map

    by_county = pd.DataFrame({"county_code": ["610621", "610622", "610630"], "open_cases": [5, 50, 20],
                              "overdue_flags": [9, 1, 4]})
    fig = plot_quarter_map(by_county, lang="zh")
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == [label("mon_open_cases", "zh"), label("mon_overdue_flags", "zh")]
    for ax, key in zip([a for a in fig.axes if a.get_title()], ("open_cases", "overdue_flags")):
        coloured = ax.collections[1]  # 0: the counties without data, 1: the three counties
        values = np.asarray(coloured.get_array())
        assert sorted(values.tolist()) == sorted(by_county[key].tolist())


# -- realistic noise, monthly risk scoring, the monthly map ---------------------------------------

def test_record_noise_kinds_against_truth(data):
    # every kind of exchange noise appears, recognised against the person the record truly belongs to
    from evalkit.synth.departments import id18_to_15

    recs = pd.concat([pd.read_csv(f, encoding="gbk", dtype=str).iloc[:, :3].set_axis(["record_id", "id", "name"],
                                                                                     axis=1)
                      for m in (M1, M2) for f in (data / "departments" / m).glob("*.csv")], ignore_index=True)
    truth = pd.concat([_truth(data, m) for m in (M1, M2)]).dropna(subset=["person_id"])
    mem = pd.read_parquet(data / "members", columns=["person_id", "id_number", "name"])
    t = recs.merge(truth, on="record_id").merge(mem, on="person_id")
    t = t[t["id_number"].str.slice(0, 6) == t["id_number"].str.slice(0, 6)]
    ids, true = t["id"].fillna(""), t["id_number"]
    diff = pd.DataFrame({i: ids.str.slice(i, i + 1) != true.str.slice(i, i + 1) for i in range(18)})
    n_diff = diff.sum(axis=1).where(ids.str.len() == 18)
    adjacent = pd.Series([any(r[i] and r[i + 1] for i in range(17)) for r in diff.to_numpy()], index=t.index)
    kinds = {"missing": (ids == "").mean(), "id_15": (ids == id18_to_15(true)).mean(),
             "typo": (n_diff == 1).mean(), "transposed": ((n_diff == 2) & adjacent).mean()}
    assert all(v > 0 for v in kinds.values()), kinds
    assert 0.08 <= sum(kinds.values()) <= 0.22  # 14% of records by default
    name, tn = t["name_x"].fillna(""), t["name_y"]
    dropped = (name.str.len() == tn.str.len() - 1) & (name == tn.str.slice(0, 2))
    spaced = name.str.replace(" ", "", regex=False).eq(tn) & name.ne(tn)
    other = name.ne(tn) & ~dropped & ~spaced
    assert dropped.any() and spaced.any() and other.mean() > 0.03  # homophones and traditional characters


def test_monthly_risk_scoring_against_rule(base_store, data, tmp_path):
    # two months imported: the logit is fitted at the first on one county, scored at the second on the
    # other, at the rule's capacity; rule and label worked out again from the store and the panel
    db = _copy(base_store, tmp_path)
    policy = load_policy()
    import_month(db, data, M2, base_store[1], policy)
    res = monthly.compare_risk_with_rule(data, db, 2025, policy)
    assert res.train_month == M1 and res.train_counties == ["610631"] and res.test_counties == ["610632"]
    t = res.table.set_index("method")
    assert list(res.table["month"].unique()) == [M2] and t.loc["rule", "flagged"] == t.loc["logit", "flagged"]
    panel = pd.read_parquet(data / "panel", filters=[("year", "in", [2024, 2025])])
    p24, p25 = panel[panel["year"] == 2024], panel[panel["year"] == 2025].set_index("household_id")
    hh = pd.read_parquet(data / "households").set_index("household_id")
    at_risk = p24[(p24["county_code"] == "610632") & (p24["register_status"] != "poor")
                  & p24["income_per_capita"].notna()]["household_id"]
    # registered households that had not exited by 2024 are not at risk of *returning* (make_labels)
    reg = hh.loc[at_risk, "registered"].to_numpy() & ~(hh.loc[at_risk, "exit_year"].fillna(9999) <= 2024).to_numpy()
    at_risk = at_risk[~reg]
    guar = ["food_clothing_ok", "education_ok", "medical_ok", "housing_ok", "water_ok"]
    y25 = p25.loc[at_risk]
    event = (y25["income_per_capita"] < policy.monitoring_line("61", 2025)) | ~y25[guar].astype(bool).all(axis=1)
    with store.connect_read(db) as con:
        cases = set(con.execute("SELECT household_id FROM cases WHERE opened_month <= ?", [M2]).df()["household_id"])
    flagged = at_risk.isin(cases).to_numpy()
    assert t.loc["rule", "positives"] == int(event.sum()) and t.loc["rule", "flagged"] == int(flagged.sum())
    assert t.loc["rule", "captured"] == int((event.to_numpy() & flagged).sum())
    # nothing after the month enters its features
    last = pd.DataFrame({"household_id": ["h1", "h2"], "county_code": "610632", "village_code": "v",
                         "register_status": ["exited", "not_registered"], "income_per_capita": [6000.0, 12000.0],
                         "shock_illness": False, "shock_disaster": False, "shock_job_loss": False, "assistance": 0})
    ev = pd.DataFrame({"household_id": ["h1", "h1", "h2"], "risk": ["illness", "illness", "asset"],
                       "severe": [True, True, False], "month": [M1, M2, M2]})
    f1, f2 = (monthly.monthly_risk_features(last, ev, m, 6000.0) for m in (M1, M2))
    assert f1.loc["h1", "illness"] == 1 and f2.loc["h1", "illness"] == 2 and f1.loc["h2", "asset"] == 0
    assert f2.loc["h2", "asset"] == 1 and f1.loc["h1", "exited"] == 1 and f1.loc["h1", "log_income_ratio"] == 0


def test_monthly_map_counts_villages_by_hand():
    from types import SimpleNamespace

    from evalkit.report.monthly import plot_check_map, village_flag_counts

    red = pd.DataFrame({"county_code": "610627", "village_code": ["610627001001", "610627001001", "610627001002",
                                                                  "610627001001"],
                        "case_id": ["a", "b", "c", "a"], "overdue": [True, False, False, True]})
    chk = SimpleNamespace(red_list=red)
    c = village_flag_counts(chk, "610627").set_index("village_code")
    assert c.loc["610627001001"].tolist() == [2, 1] and c.loc["610627001002"].tolist() == [1, 0]
    pts = pd.DataFrame({"village_code": ["610627001001", "610627001002", "610627001003"],
                        "longitude": [109.3, 109.4, 109.5], "latitude": [36.2, 36.3, 36.25]})
    fig = plot_check_map(chk, pts, "610627")
    axes = [a for a in fig.axes if a.get_title()]
    assert [a.get_title() for a in axes] == [f"{label('mon_red_cases', 'zh')} (3)",
                                            f"{label('mon_overdue_cases', 'zh')} (1)"]
    sizes = [sorted(np.asarray(a.collections[-1].get_sizes()).tolist()) for a in axes]
    assert sizes == [[22.0, 32.0], [22.0]]  # 12 + 10 per case


def test_monthly_notebook_runs_in_a_kernel(data, base_store, tmp_path):
    """The monthly check notebook runs through papermill: inside a Jupyter kernel DuckDB behaves
    differently (it refuses to change its progress-bar setting without ipywidgets)."""
    import nbformat
    import papermill as pm

    nb_dir = Path(__file__).resolve().parents[1] / "notebooks"
    out = tmp_path / "ledgers"
    pm.execute_notebook(str(nb_dir / "monthly_check.ipynb"), str(tmp_path / "run.ipynb"),
                        parameters={"data_dir": str(data), "output_dir": str(out), "month": M2,
                                    "db_file": str(_copy(base_store, tmp_path)),
                                    "key_file": str(base_store[1]), "lang": "en"},
                        cwd=str(nb_dir), progress_bar=False, kernel_name="python3")
    executed = nbformat.read(tmp_path / "run.ipynb", as_version=4)
    errors = [o for c in executed.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    assert sorted(p.suffix for p in out.rglob("*.xlsx"))
