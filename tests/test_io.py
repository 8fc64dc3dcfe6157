"""Loaders: encodings, Excel sheets, Parquet layout, and one malformed file per trap.

Every fixture is built in tmp_path. Expected row numbers are those a person sees in the file:
header = row 1, first data row = row 2 (sheet rows for Excel).
"""
from __future__ import annotations

import numpy as np
import openpyxl
import pandas as pd
import pytest

from evalkit import dictionary
from evalkit.data import Dataset, dataset_sha256, load_dataset, read_table, write_quarantine
from evalkit.errors import InputError
from evalkit.provenance import sha256_file

ID_1949 = "11010519491231002X"  # check digits worked out by hand in test_schema.py
ID_1980 = "610602198001011234"
LOST = ("ID number was stored as a number and lost precision (Excel); re-export as text"
        " — not repaired")

HH = ["户编号", "村代码", "县代码", "家庭人口数", "是否建档立卡", "贫困户属性", "主要致贫原因",
      "识别年度", "脱贫年度"]
MEM = ["人员编号", "户编号", "姓名", "身份证号", "性别", "出生年份", "与户主关系", "劳动技能",
       "是否残疾", "是否患慢性病", "是否在校生", "是否义务教育阶段辍学", "是否参加城乡居民基本医疗保险"]


def hh(n: int, size="3", reg="是", ptype="低保户", cause="因病", ry="2014", ey="2016",
       village="610602001001", county="610602") -> list[str]:
    return [f"{village}{n:04d}", village, county, size, reg, ptype, cause, ry, ey]


def mem(hh_n: int, k: int, idn=ID_1980, by="1980", name="张三", village="610602001001") -> list[str]:
    hid = f"{village}{hh_n:04d}"
    return [f"{hid}{k:02d}", hid, name, idn, "男", by, "户主", "普通劳动力", "否", "否", "否",
            "否", "是"]


def write_csv(path, header, rows, encoding="utf-8-sig", sep=","):
    """Rows are lists of cells; ``None`` writes a blank line."""
    lines = [sep.join(header)] + ["" if r is None else sep.join(r) for r in rows]
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode(encoding))
    return path


def errors(ds: Dataset, table: str) -> pd.DataFrame:
    p = ds.report.problems
    return p[(p["table"] == table) & (p["severity"] == "error")]


def assert_nothing_lost(ds: Dataset, table: str, n: int):
    rep = ds.report
    assert rep.n_rows[table] == n
    assert rep.n_valid[table] + rep.n_quarantined[table] == n
    assert len(ds.tables[table]) == rep.n_valid[table]
    assert len(ds.quarantine[table]) == rep.n_quarantined[table]


# -- encodings and headers -------------------------------------------------------------------
MESSY_HH = ["户 编 号", "村代码\u3000", "县（市、区）代码", "ｈｏｕｓｅｈｏｌｄ＿ｓｉｚｅ", " 是否建档立卡 ",
            "贫困户属性", "主要致贫原因", "识别年度", "脱贫年度"]


@pytest.mark.parametrize("encoding, notice", [("gbk", True), ("utf-8-sig", False)])
def test_csv_encodings_and_messy_headers(tmp_path, encoding, notice):
    f = write_csv(tmp_path / "农户.csv", MESSY_HH,
                  [hh(1, ey="2016年"), hh(2, reg="否", ptype="", cause="", ry="", ey="")],
                  encoding=encoding)
    ds = load_dataset(f)
    t = ds["households"]
    assert list(t.columns) == dictionary.table("households").names
    assert t["household_id"].tolist() == ["6106020010010001", "6106020010010002"]
    assert t["household_size"].tolist() == [3, 3]
    assert t["registered"].tolist() == [True, False]
    assert t["poverty_type"].iloc[0] == "dibao" and t["main_cause"].iloc[0] == "illness"
    assert t["exit_year"].iloc[0] == 2016 and pd.isna(t["exit_year"].iloc[1])
    assert ds.report.exit_code() == 0
    enc = ds.report.problems[ds.report.problems["rule"] == "encoding"]
    assert (len(enc) == 1) is notice


def test_utf16_tab_separated_text_export(tmp_path):
    # Excel's "Unicode text" export: UTF-16 with BOM, tab separated
    f = write_csv(tmp_path / "export.txt", HH, [hh(1)], encoding="utf-16", sep="\t")
    ds = load_dataset(f)
    assert ds["households"]["household_id"].tolist() == ["6106020010010001"]


def test_title_rows_above_header_keep_row_numbers(tmp_path):
    text = "某某县建档立卡贫困户信息表\r\n\r\n" + ",".join(HH) + "\r\n" + ",".join(hh(1)) + "\r\n" \
        + ",".join(hh(2, size="-1")) + "\r\n"
    f = tmp_path / "households.csv"
    f.write_text(text, encoding="utf-8")
    ds = load_dataset(f)
    e = errors(ds, "households")
    # title = line 1, blank = line 2, header = line 3, data = lines 4 and 5
    assert e[["row", "column"]].values.tolist() == [[5, "household_size"]]


# -- Excel -----------------------------------------------------------------------------------
def test_excel_sheets_and_ids_stored_as_numbers(tmp_path):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "农户"
    ws.append(["某某县农户信息"])            # sheet row 1: title
    ws.append(HH)                            # row 2: header
    for n in (1, 2):
        r = hh(n)
        r[2] = 610602                        # county code typed as a number: accepted
        ws.append(r)                         # rows 3, 4
    ws2 = wb.create_sheet("members")
    ws2.append(MEM)
    ws2.append(mem(1, 1))                                                    # row 2: ok
    r = mem(1, 2, name="李四")
    r[3] = 610602198001011234                                                # row 3: int
    ws2.append(r)
    r = mem(2, 1, name="王五")
    r[3] = 1.1010519491231e17                                                # row 4: float
    ws2.append(r)
    ws2.append(mem(2, 2, idn=ID_1949, by="1949", name="赵六"))              # row 5: ok
    wb.create_sheet("说明").append(["本表由系统导出"])
    f = tmp_path / "book.xlsx"
    wb.save(f)

    ds = load_dataset(f)
    assert ds["households"]["county_code"].tolist() == ["610602", "610602"]
    assert ds["members"]["person_id"].tolist() == ["610602001001000101", "610602001001000202"]
    e = errors(ds, "members")
    assert e[["file", "row", "column", "header"]].values.tolist() == [
        ["book.xlsx[members]", 3, "id_number", "身份证号"],
        ["book.xlsx[members]", 4, "id_number", "身份证号"]]
    assert set(e["reason"]) == {LOST}
    assert all("*" in v for v in e["value"])
    assert_nothing_lost(ds, "members", 4)
    assert_nothing_lost(ds, "households", 2)
    q = ds.quarantine["members"]
    assert q["_row"].tolist() == [3, 4] and q["name"].tolist() == ["李四", "王五"]
    assert ds.report.exit_code() == 1
    # read_table picks the sheet of the requested table
    assert read_table(f, "members").sheet == "members"


# -- traps: one malformed file each --------------------------------------------------------------
def test_trap_ids_as_floats_and_scientific_notation(tmp_path):
    f = write_csv(tmp_path / "members.csv", MEM, [
        mem(1, 1),                                          # row 2 ok
        mem(1, 2, idn="6.10602198001011e+17"),              # row 3 scientific notation
        mem(1, 3, idn="610602198001011234.0"),              # row 4 float text
        mem(1, 4, idn="610602198001011000"),                # row 5 last digits zeroed: check digit
    ])
    ds = load_dataset(f)
    e = errors(ds, "members")
    assert e[["file", "row", "column"]].values.tolist() == [
        ["members.csv", 3, "id_number"], ["members.csv", 4, "id_number"],
        ["members.csv", 5, "id_number"]]
    assert e["reason"].tolist()[:2] == [LOST, LOST]
    # 17 digits 61060219800101100: sum 184 - 2*4 - 3*2 = 170, 170 mod 11 = 5 -> '7', not '0'
    assert e["reason"].iloc[2].startswith("check digit does not match")
    assert_nothing_lost(ds, "members", 4)


def test_trap_codes_lost_leading_zeros(tmp_path):
    f = write_csv(tmp_path / "households.csv", HH, [
        hh(1),                                                   # row 2 ok
        hh(2, county="10602"),                                   # row 3
        hh(3, village="61060200101"),                            # row 4 (11 digits)
        hh(4, county="610602.0"),                                # row 5 Excel float text: ok
    ])
    ds = load_dataset(f)
    e = errors(ds, "households")
    got = {(r, c): why for r, c, why in e[["row", "column", "reason"]].values}
    msg = "leading zeros may have been lost in Excel; re-export the column as text"
    assert got[(3, "county_code")] == f"has 5 digits, expected 6: {msg}"
    assert got[(4, "village_code")] == f"has 11 digits, expected 12: {msg}"
    assert {r for r, _ in got} == {3, 4}
    assert ds["households"]["county_code"].tolist() == ["610602", "610602"]
    assert_nothing_lost(ds, "households", 4)


def test_trap_incomes_with_separators_and_fullwidth(tmp_path):
    spec = dictionary.table("panel")
    header = [c.zh for c in spec.columns]

    def prow(year, total, wage):
        d = {"household_id": "6106020010010001", "year": str(year), "county_code": "610602",
             "village_code": "610602001001", "income_per_capita": total, "income_wage": wage,
             "income_business": "0", "income_property": "0", "income_transfer": "0",
             "assistance_amount": "0", "register_status": "已脱贫"}
        return [d.get(c.name, "是") for c in spec.columns]

    f = write_csv(tmp_path / "panel.csv", header, [
        prow(2018, '"1,234元"', "1234"),        # row 2: quoted because of the comma
        prow(2019, "１２３４", "1234"),          # row 3: full-width digits
        prow(2020, "abc", "1234"),              # row 4
    ])
    ds = load_dataset(f)
    assert ds["panel"]["income_per_capita"].tolist() == [1234.0, 1234.0]
    e = errors(ds, "panel")
    assert e[["row", "column", "reason", "value"]].values.tolist() == [
        [4, "income_per_capita", "is not an amount in yuan", "abc"]]
    assert ds.quarantine["panel"]["income_per_capita"].tolist() == ["abc"]
    assert_nothing_lost(ds, "panel", 3)


def test_trap_blank_rows(tmp_path):
    f = write_csv(tmp_path / "households.csv", HH, [
        hh(1),                 # row 2
        None,                  # row 3 blank
        hh(2),                 # row 4
        None, None,            # rows 5-6 blank
        hh(3, size="-4"),      # row 7
        [""] * len(HH),        # row 8: only separators
        hh(4),                 # row 9
    ])
    ds = load_dataset(f)
    notes = ds.report.problems[ds.report.problems["rule"] == "blank_row"]
    assert notes[["row", "severity"]].values.tolist() == [[3, "notice"], [5, "notice"],
                                                           [8, "notice"]]
    assert notes["reason"].iloc[1] == "blank rows 5–6 skipped (2 rows)"
    e = errors(ds, "households")
    assert e[["row", "column"]].values.tolist() == [[7, "household_size"]]
    assert_nothing_lost(ds, "households", 4)
    assert ds.report.exit_code() == 1


def test_trap_duplicate_household_ids(tmp_path):
    f = write_csv(tmp_path / "households.csv", HH, [
        hh(1),               # row 2
        hh(2),               # row 3
        hh(1),               # row 4 exact copy of row 2
        hh(2, size="5"),     # row 5 conflicts with row 3
    ])
    ds = load_dataset(f)
    e = errors(ds, "households")
    assert e[["row", "column", "reason"]].values.tolist() == [
        [3, "household_id", "duplicate household_id with conflicting values: rows 3, 5"],
        [4, "household_id", "exact duplicate of row 2"],
        [5, "household_id", "duplicate household_id with conflicting values: rows 3, 5"]]
    assert ds["households"]["household_id"].tolist() == ["6106020010010001"]
    assert_nothing_lost(ds, "households", 4)


def test_trap_members_without_household(tmp_path):
    write_csv(tmp_path / "households.csv", HH, [hh(1)])
    write_csv(tmp_path / "members.csv", MEM, [mem(1, 1), mem(7, 1), mem(1, 2)])
    ds = load_dataset(tmp_path)
    e = errors(ds, "members")
    assert e[["file", "row", "column", "reason", "value"]].values.tolist() == [
        ["members.csv", 3, "household_id", "household does not exist", "6106020010010007"]]
    assert_nothing_lost(ds, "members", 3)
    assert [f.path for f in ds.files] == ["households.csv", "members.csv"]


def test_trap_years_outside_range(tmp_path):
    f = write_csv(tmp_path / "households.csv", HH, [
        hh(1), hh(2, ry="2013"), hh(3, ey="2031"), hh(4, ry="1949", ey="")])
    ds = load_dataset(f)
    e = errors(ds, "households")
    assert e[["row", "column", "reason"]].values.tolist() == [
        [3, "registration_year", "year outside 2014–2030"],
        [4, "exit_year", "year outside 2014–2030"],
        [5, "registration_year", "year outside 2014–2030"]]
    assert_nothing_lost(ds, "households", 4)


def test_trap_negative_household_size(tmp_path):
    f = write_csv(tmp_path / "households.csv", HH, [hh(1, size="-3"), hh(2, size="0"), hh(3)])
    ds = load_dataset(f)
    e = errors(ds, "households")
    assert e[["row", "column", "reason", "value"]].values.tolist() == [
        [2, "household_size", "household size must be at least 1", "-3"],
        [3, "household_size", "household size must be at least 1", "0"]]
    assert ds.quarantine["households"]["household_size"].tolist() == ["-3", "0"]
    assert_nothing_lost(ds, "households", 3)


def test_trap_missing_required_column_is_exit_code_2(tmp_path):
    # (a list without 是否建档立卡 is a register export, which implies it: see test_layouts.py)
    cols = [c for c in HH if c != "村代码"]
    rows = [[v for c, v in zip(HH, hh(1)) if c != "村代码"]]
    write_csv(tmp_path / "households.csv", cols, rows)
    write_csv(tmp_path / "members.csv", MEM, [mem(1, 1)])
    ds = load_dataset(tmp_path)
    assert ds.report.exit_code() == 2
    fatal = ds.report.problems[ds.report.problems["severity"] == "fatal"]
    assert len(fatal) == 1
    msg = fatal["reason"].iloc[0]
    assert "households.csv" in msg and "village_code (村代码)" in msg
    assert fatal["file"].iloc[0] == "households.csv"
    with pytest.raises(KeyError, match="village_code"):
        ds["households"]
    assert len(ds["members"]) == 1  # the other table still loads; no cross-check without parent


def test_too_many_fields_row_is_quarantined(tmp_path):
    f = write_csv(tmp_path / "households.csv", HH, [hh(1), hh(2) + ["extra"], hh(3)])
    ds = load_dataset(f)
    e = errors(ds, "households")
    assert e[["row", "reason"]].values.tolist() == [[3, "row has 10 fields but the header has 9"]]
    assert_nothing_lost(ds, "households", 3)


def test_unknown_columns_kept_with_notice(tmp_path):
    f = write_csv(tmp_path / "households.csv", HH + ["备注"], [hh(1) + ["新增户"]])
    ds = load_dataset(f)
    assert ds["households"]["备注"].tolist() == ["新增户"]
    p = ds.report.problems
    assert p[p["rule"] == "unknown_column"][["header", "severity"]].values.tolist() == [
        ["备注", "notice"]]
    assert ds.report.exit_code() == 0


# -- Parquet dataset as written by the generator ------------------------------------------------
def _typed_households(county: str) -> pd.DataFrame:
    v = f"{county}001001"
    return pd.DataFrame({
        "household_id": [f"{v}0001", f"{v}0002"], "village_code": [v, v], "county_code": [county] * 2,
        "household_size": np.array([3, 4], dtype="int64"), "registered": [True, False],
        "poverty_type": pd.Series(["dibao", None], dtype="str"),
        "main_cause": pd.Series(["illness", None], dtype="str"),
        "registration_year": pd.array([2014, None], dtype="Int64"),
        "exit_year": pd.array([2016, None], dtype="Int64")})


def _generator_dir(tmp_path):
    root = tmp_path / "ds"
    (root / "households").mkdir(parents=True)
    (root / "members").mkdir()
    pd.DataFrame({"county_code": ["610602", "610603"], "county_name": ["宝塔区", "安塞区"],
                  "province_code": ["61", "61"], "city_code": ["6106", "6106"],
                  "region": ["west", "west"], "is_poverty_county": [True, True],
                  "planned_exit_year": pd.array([2019, 2018], dtype="Int64"),
                  "rural_population": np.array([200000, 120000], dtype="int64")}
                 ).to_parquet(root / "counties.parquet", index=False)
    pd.DataFrame({"village_code": ["610602001001", "610603001001"],
                  "county_code": ["610602", "610603"], "township_name": ["甲镇", "乙镇"],
                  "village_name": ["一村", "二村"], "is_poverty_village": [True, False]}
                 ).to_parquet(root / "villages.parquet", index=False)
    for c in ("610602", "610603"):
        _typed_households(c).to_parquet(root / "households" / f"{c}.parquet", index=False)
    m = pd.DataFrame({
        "person_id": ["610602001001000101", "610602001001000102"],
        "household_id": ["6106020010010001", "6106020010010001"], "name": ["张三", "李四"],
        "id_number": [ID_1980, "610602198001011235"], "sex": ["male", "female"],
        "birth_year": np.array([1980, 1980], dtype="int64"), "relation_to_head": ["head", "spouse"],
        "labour_capacity": ["able", "able"]})
    for c in ("disability", "chronic_illness", "in_school", "compulsory_school_dropout"):
        m[c] = False
    m["medical_insurance"] = True
    m.to_parquet(root / "members" / "610602.parquet", index=False)
    m.iloc[:0].to_parquet(root / "members" / "610603.parquet", index=False)
    (root / "truth_params.json").write_text("{}")
    return root


def test_generator_layout_with_county_filter(tmp_path):
    root = _generator_dir(tmp_path)
    ds = load_dataset(root, counties=["610602"])
    assert sorted(f.path for f in ds.files) == [
        "counties.parquet", "households/610602.parquet", "members/610602.parquet",
        "villages.parquet"]
    assert ds["counties"]["county_code"].tolist() == ["610602"]
    assert ds["villages"]["village_code"].tolist() == ["610602001001"]
    hh_t = ds["households"]
    assert hh_t["household_id"].tolist() == ["6106020010010001", "6106020010010002"]
    assert str(hh_t["household_size"].dtype) == "int64" and str(hh_t["registered"].dtype) == "bool"
    pd.testing.assert_frame_equal(hh_t, _typed_households("610602"), check_dtype=False)
    # the second member has a wrong check digit: Parquet rows are 1-based record numbers
    e = errors(ds, "members")
    assert e[["file", "row", "column", "value"]].values.tolist() == [
        ["members/610602.parquet", 2, "id_number", "610602**********35"]]
    assert ds.report.exit_code() == 1
    full = load_dataset(root)
    assert len(full["households"]) == 4 and full.report.n_rows["counties"] == 2


def test_tables_filter(tmp_path):
    root = _generator_dir(tmp_path)
    ds = load_dataset(root, tables=["counties", "households"])
    assert set(ds.tables) == {"counties", "households"}


def test_write_quarantine_masks_personal_data(tmp_path):
    root = _generator_dir(tmp_path)
    ds = load_dataset(root)
    out = write_quarantine(ds, tmp_path / "out")
    names = sorted(p.name for p in out)
    assert names == ["members.quarantine.csv", "validation_report.csv"]
    q = (tmp_path / "out" / "members.quarantine.csv").read_bytes()
    assert q.startswith(b"\xef\xbb\xbf")
    text = q.decode("utf-8-sig")
    assert "610602198001011235" not in text and "李四" not in text
    assert "610602**********35" in text and "李*" in text
    back = pd.read_csv(tmp_path / "out" / "members.quarantine.csv", encoding="utf-8-sig", dtype=str)
    assert back[["_file", "_row"]].values.tolist() == [["members/610602.parquet", "2"]]


# -- unreadable input ----------------------------------------------------------------------------
def test_input_errors_name_file_and_reason(tmp_path):
    with pytest.raises(InputError, match="nope.csv: not found"):
        load_dataset(tmp_path / "nope.csv")
    doc = tmp_path / "notes.docx"
    doc.write_bytes(b"x")
    with pytest.raises(InputError, match="notes.docx: unknown format"):
        load_dataset(doc)
    junk = write_csv(tmp_path / "junk.csv", ["a", "b"], [["1", "2"]])
    with pytest.raises(InputError, match="junk.csv: no recognizable table"):
        load_dataset(junk)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no table files"):
        load_dataset(empty)


def test_unreadable_file_in_directory_is_fatal(tmp_path):
    write_csv(tmp_path / "households.csv", HH, [hh(1)])
    (tmp_path / "members.xlsx").write_bytes(b"not a zip file")
    ds = load_dataset(tmp_path)
    assert ds.report.exit_code() == 2
    fatal = ds.report.problems[ds.report.problems["severity"] == "fatal"]
    assert fatal["file"].tolist() == ["members.xlsx"]
    assert "cannot open as an Excel workbook" in fatal["reason"].iloc[0]
    assert len(ds["households"]) == 1


# -- hashes -------------------------------------------------------------------------------------
def test_dataset_sha256(tmp_path):
    a = tmp_path / "a.csv"
    b = tmp_path / "sub" / "b.csv"
    b.parent.mkdir()
    a.write_text("x")
    b.write_text("y")
    # sha256("x") is a well-known constant
    assert sha256_file(a) == "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"
    h1 = dataset_sha256([a, b], root=tmp_path)
    assert h1 == dataset_sha256([b, a], root=tmp_path)
    b.write_text("z")
    assert dataset_sha256([a, b], root=tmp_path) != h1


def test_parquet_categorical_and_validate_false(tmp_path):
    df = _typed_households("610602")
    df["poverty_type"] = df["poverty_type"].astype("category")
    df.loc[1, "household_size"] = 0
    f = tmp_path / "households.parquet"
    df.to_parquet(f, index=False)
    ds = load_dataset(f)
    assert ds["households"]["poverty_type"].iloc[0] == "dibao"
    assert errors(ds, "households")[["row", "column"]].values.tolist() == [[2, "household_size"]]
    # validate=False only parses: the out-of-range size is kept
    raw = load_dataset(f, validate=False)
    assert raw["households"]["household_size"].tolist() == [3, 0]
    assert raw.report.exit_code() == 0


def test_generated_province_validates_clean(small_province):
    # contract with the generator: its output passes every check, and counties= selects files
    ds = load_dataset(small_province, counties=["610627"])
    assert ds.report.exit_code() == 0, ds.report.to_text()
    # every table the generator writes (the monitoring system's export is real data only; the
    # departments' monthly files are read by the monitoring cycle, not by load_dataset)
    assert set(ds.tables) == {t for t in dictionary.tables() if not t.startswith("dept_")} - {"monitoring_cases"}
    for t, df in ds.tables.items():
        assert list(df.columns)[:len(dictionary.table(t).names)] == dictionary.table(t).names
        if "county_code" in df:
            assert set(df["county_code"]) == {"610627"}
    assert all("610631" not in f.path for f in ds.files)
