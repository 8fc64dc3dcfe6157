"""Real register data: the national systems' layouts, old and odd Excel, and the real-export traps.

Every file is written here, small. For each file the rows in it equal the rows loaded plus the
rows quarantined; reasons are asserted exactly. The end-to-end test writes the small synthetic
province's register in the national layouts (GBK CSV, .xls, HTML saved as .xls, .xlsx) and checks
that the canonical tables come back equal to the generator's, and that the county assessment on
them gives the same result as on the generator's Parquet.
"""
from __future__ import annotations

import shutil

import numpy as np
import openpyxl
import pandas as pd
import pytest
import xlwt

from evalkit import dictionary
from evalkit.config import load_policy
from evalkit.data import load_dataset, rotate_quarantine, write_quarantine
from evalkit.workflows.county_exit import assess_county

ID_A = "610602198001011234"  # check digit worked out in test_io.py / test_schema.py
ID_B = "11010519491231002X"
VIL = "610602001001"

PERSON = ["省", "市", "县", "乡镇", "村", "行政区划代码", "村代码", "户编号", "人编号", "姓名", "证件号码",
          "性别", "出生年份", "与户主关系", "家庭人口数", "贫困户属性", "主要致贫原因", "识别年度", "脱贫年度",
          "劳动技能", "是否残疾", "健康状况", "在校生状况", "是否义务教育阶段辍学", "是否参加城乡居民基本医疗保险"]


def person_row(h: int, k: int, size="2", idn=ID_A, by="1980", rel="户主", ptype="一般贫困户"):
    hid = f"{VIL}{h:04d}"
    return ["陕西省", "延安市", "宝塔区", "某镇", "某村", "610602", VIL, hid, f"{hid}{k:02d}", "张三", idn,
            "男", by, rel, size, ptype, "因病", "2014", "2016", "普通劳动力", "否", "否", "否", "否", "是"]


HOUSE = ["户编号", "行政区划代码", "村代码", "家庭人口数", "人均纯收入", "贫困户属性", "主要致贫原因", "脱贫年度"]


def house_row(h: int, size="2", inc="5200"):
    return [f"{VIL}{h:04d}", "610602", VIL, size, inc, "低保户", "因残", "2016"]


def _q(v: str) -> str:
    return f'"{v}"' if "," in v else v


def write_csv(path, header, rows, encoding="gbk"):
    lines = [",".join(header)] + [",".join(_q(v) for v in r) for r in rows]
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode(encoding))
    return path


def write_xls(path, header_rows, rows, merges=()):
    wb = xlwt.Workbook(encoding="utf-8")
    ws = wb.add_sheet("Sheet1")
    for r, row in enumerate(list(header_rows) + list(rows)):
        for c, v in enumerate(row):
            if v is not None:
                ws.write(r, c, v)
    for r0, r1, c0, c1 in merges:  # the merged cell's value sits in its top-left cell only
        ws.merge(r0, r1, c0, c1)
    wb.save(str(path))
    return path


def write_xlsx(path, header_rows, rows, merges=()):
    wb = openpyxl.Workbook()
    ws = wb.active
    for row in list(header_rows) + list(rows):
        ws.append(row)
    for m in merges:
        ws.merge_cells(m)
    wb.save(path)
    return path


def html_table(header, rows, rowspans=None) -> str:
    """An HTML table as web systems export it (GBK meta charset); ``rowspans``: {(row, col): n}."""
    rowspans = rowspans or {}
    covered = {(r + d, c) for (r, c), n in rowspans.items() for d in range(1, n)}
    out = ['<html><head><meta http-equiv="Content-Type" content="text/html; charset=gbk"></head><body>',
           "<table border=1>", "<tr>" + "".join(f"<th>{h}</th>" for h in header) + "</tr>"]
    for r, row in enumerate(rows):
        cells = []
        for c, v in enumerate(row):
            if (r, c) in covered:
                continue
            span = f' rowspan="{rowspans[(r, c)]}"' if (r, c) in rowspans else ""
            cells.append(f"<td{span}>{v}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table></body></html>")
    return "\n".join(out)


def problems(ds, rule=None):
    p = ds.report.problems
    return p[p["rule"] == rule] if rule else p


def assert_nothing_lost(ds, table, n_in):
    assert len(ds.tables[table]) + len(ds.quarantine[table]) == n_in


# --- 1. the national layouts ------------------------------------------------------------------

def test_person_export_gbk_is_split_and_implies_registered(tmp_path):
    rows = [person_row(1, 1), person_row(1, 2, idn=ID_B, by="1949", rel="配偶"), person_row(2, 1, size="1")]
    write_csv(tmp_path / "贫困人口明细.csv", PERSON, rows)
    ds = load_dataset(tmp_path)
    assert ds.report.exit_code() == 0
    assert_nothing_lost(ds, "members", 3)
    h = ds["households"]
    assert h["household_id"].tolist() == [f"{VIL}0001", f"{VIL}0002"]
    assert h["registered"].tolist() == [True, True]
    assert h["household_size"].tolist() == [2, 1]
    assert h["poverty_type"].tolist() == ["general", "general"]
    m = ds["members"]
    assert m["id_number"].tolist() == [ID_A, ID_B, ID_A]
    assert m["relation_to_head"].tolist() == ["head", "spouse", "head"]
    imp = problems(ds, "layout_implied")
    assert imp["reason"].tolist() == ["registered not in the export: '是' for every household (a"
                                      " 建档立卡贫困人口明细（一人一行） lists registered households only)"]
    assert problems(ds, "layout")["reason"].tolist() == [
        "national layout recognized: person_detail (建档立卡贫困人口明细（一人一行）); split into members, households"]
    assert "panel" not in ds.tables  # no income columns


def test_person_export_conflicting_household_attributes_are_reported_with_rows(tmp_path):
    rows = [person_row(1, 1, size="2"), person_row(1, 2, size="3", rel="配偶"), person_row(2, 1, size="1")]
    write_csv(tmp_path / "人员.csv", PERSON, rows)
    ds = load_dataset(tmp_path)
    q = ds.quarantine["households"]
    assert q["household_id"].tolist() == [f"{VIL}0001"]
    assert q["_reasons"].tolist() == [
        "household_size: household attribute household_size differs between the household's rows:"
        " 2 in row 2; 3 in row 3"]
    assert ds["households"]["household_id"].tolist() == [f"{VIL}0002"]
    # the members of a quarantined household follow it, with the household's row named
    assert ds.quarantine["members"]["_reasons"].tolist() == [
        "household_id: household is quarantined in households (row 2 of 人员.csv)"] * 2
    assert_nothing_lost(ds, "members", 3)


def test_household_list_income_only_gives_panel_rows_with_the_rest_unknown(tmp_path):
    rows = [house_row(1), house_row(2, size="4"), house_row(3, inc="3100")]
    rows[1][HOUSE.index("脱贫年度")] = ""      # not exited
    rows[2][HOUSE.index("脱贫年度")] = "2020"  # exits after the list's year
    write_csv(tmp_path / "花名册2019.csv", HOUSE, rows)
    ds = load_dataset(tmp_path)
    assert ds.report.exit_code() == 0
    assert ds["households"]["registered"].tolist() == [True, True, True]
    assert ds["households"]["household_size"].tolist() == [2, 4, 2]
    p = ds["panel"]
    assert_nothing_lost(ds, "panel", 3)
    assert p["year"].tolist() == [2019] * 3
    assert p["income_per_capita"].tolist() == [5200.0, 5200.0, 3100.0]
    # 脱贫年度 2016 <= 2019: exited; empty: poor; 2020 > 2019: still poor in 2019
    assert p["register_status"].tolist() == ["exited", "poor", "poor"]
    assert p["income_wage"].isna().all() and p["housing_ok"].isna().all() and p["assistance"].isna().all()
    w = problems(ds, "layout_panel_incomplete")
    assert w["severity"].tolist() == ["warning"]
    assert w["reason"].iloc[0].startswith("income columns (人均纯收入) loaded as panel rows; not in the export,"
                                          " left unknown: income_wage (人均工资性收入), income_business")
    n = problems(ds, "not_in_export")
    assert len(n) == 3 * 17 and set(n["severity"]) == {"notice"}
    assert problems(ds, "layout")["reason"].tolist() == [
        "national layout recognized: household_list (建档立卡贫困户花名册（一户一行）); split into households, panel"]


def test_household_list_components_without_total_income_give_no_panel_rows(tmp_path):
    header = [h if h != "人均纯收入" else "工资性收入" for h in HOUSE]
    write_csv(tmp_path / "花名册2019.csv", header, [house_row(1)])
    ds = load_dataset(tmp_path)
    assert "panel" not in ds.tables
    assert problems(ds, "layout_panel_incomplete")["reason"].iloc[0].startswith(
        "income columns (工资性收入) not loaded as panel rows: a panel row needs at least income_per_capita")


def test_poverty_attribute_becomes_register_status_and_exit_year(tmp_path):
    header = [h if h != "脱贫年度" else "脱贫属性" for h in HOUSE]
    i = header.index("脱贫属性")
    vals = ["2017年脱贫", "未脱贫", "已脱贫（享受政策）", "返贫", "脱贫监测户", "脱了"]
    rows = [house_row(k + 1) for k in range(len(vals))]
    for r, v in zip(rows, vals):
        r[i] = v
    write_csv(tmp_path / "花名册2019.csv", header, rows)
    ds = load_dataset(tmp_path)
    assert_nothing_lost(ds, "households", 6)
    h = ds["households"]
    assert h["exit_year"].iloc[0] == 2017 and h["exit_year"].iloc[1:].isna().all()
    q = ds.quarantine["households"]
    assert q["_row"].tolist() == [7]
    assert q["_reasons"].tolist() == [
        "脱贫属性: '脱了' is not a poverty attribute (accepted: 未脱贫, 返贫, 已脱贫, 2017年脱贫, 享受政策的脱贫户,"
        " 不享受政策的脱贫户, 脱贫监测户, 边缘户, 非贫困户)"]
    p = ds["panel"]
    assert p["register_status"].tolist() == ["exited", "poor", "exited", "poor", "monitored"]
    assert_nothing_lost(ds, "panel", 6)
    assert ds.quarantine["panel"]["_reasons"].tolist() == [
        "register_status: missing value; household_id: household is quarantined in households (row 7 of"
        " 花名册2019.csv)"]
    # one 已脱贫 without a year: exit_year stays empty, with a warning saying how many
    w = problems(ds, "layout_attribute")
    assert sorted(w["severity"]) == ["error", "warning"]
    assert ("exit_year not in the export: taken from 脱贫属性 where it states a year; 1 row(s) marked exited"
            " without a year keep exit_year empty (add a 脱贫年度 column)") in w["reason"].tolist()


PANEL_EXTRA = ["工资性收入", "生产经营性收入", "财产性收入", "转移性收入", "不愁吃不愁穿", "义务教育有保障",
               "基本医疗有保障", "住房安全有保障", "饮水安全有保障", "当年因病", "当年新增残疾", "当年因灾",
               "当年意外事故", "当年产业失败", "当年务工就业不稳", "当年享受帮扶", "人均帮扶金额", "户状态"]
PANEL_VALUES = ["3000", "1200", "0", "1000", "是", "是", "是", "是", "是", "否", "否", "否", "否", "否", "否",
                "是", "800", "已脱贫"]


def full_house(tmp_path, name):
    return write_csv(tmp_path / name, HOUSE + PANEL_EXTRA,
                     [house_row(1) + PANEL_VALUES, house_row(2) + PANEL_VALUES])


def test_household_list_income_year_from_file_name(tmp_path):
    full_house(tmp_path, "花名册2019.csv")
    ds = load_dataset(tmp_path)
    assert ds.report.exit_code() == 0
    p = ds["panel"]
    assert p["year"].tolist() == [2019, 2019]
    assert p["income_per_capita"].tolist() == [5200.0, 5200.0]
    assert p["register_status"].tolist() == ["exited", "exited"]
    assert problems(ds, "layout_year")["reason"].tolist() == ["income year 2019 taken from the file name"]
    assert problems(ds, "layout")["reason"].tolist() == [
        "national layout recognized: household_list (建档立卡贫困户花名册（一户一行）); split into households, panel"]


def test_household_list_year_ambiguous_or_missing(tmp_path):
    full_house(tmp_path, "花名册2019-2020.csv")
    ds = load_dataset(tmp_path)
    f = problems(ds, "layout_year")
    assert f["severity"].tolist() == ["fatal"]
    assert f["reason"].tolist() == ["the year of the income columns is ambiguous: the file name holds 2019,"
                                    " 2020; add a 年度 column or rename the file"]
    assert ds["households"]["household_id"].tolist() == [f"{VIL}0001", f"{VIL}0002"]  # still loads
    other = tmp_path / "b"
    other.mkdir()
    full_house(other, "花名册.csv")
    assert "pass --year" in problems(load_dataset(other), "layout_year")["reason"].iloc[0]
    ds = load_dataset(other, year=2018)
    assert ds["panel"]["year"].tolist() == [2018, 2018]
    assert problems(ds, "layout_year")["reason"].tolist() == [
        "income year 2018 taken from the year given to the loader (--year)"]


# --- 2. old and odd Excel ---------------------------------------------------------------------

def test_true_xls_with_merged_household_cells(tmp_path):
    rows = [person_row(1, 1), person_row(1, 2, idn=ID_B, by="1949", rel="配偶"), person_row(2, 1, size="1")]
    # 村代码, 户编号 and 家庭人口数 of household 1 merged over its two rows (rows 2-3 of the sheet)
    for c in (PERSON.index("村代码"), PERSON.index("户编号"), PERSON.index("家庭人口数")):
        rows[1][c] = None
    merges = [(1, 2, c, c) for c in (PERSON.index("村代码"), PERSON.index("户编号"), PERSON.index("家庭人口数"))]
    write_xls(tmp_path / "明细.xls", [PERSON], rows, merges)
    ds = load_dataset(tmp_path)
    assert ds.report.exit_code() == 0
    assert_nothing_lost(ds, "members", 3)
    assert ds["members"]["household_id"].tolist() == [f"{VIL}0001", f"{VIL}0001", f"{VIL}0002"]
    assert ds["households"]["household_size"].tolist() == [2, 1]
    assert problems(ds, "merged_cells")["reason"].tolist() == [
        "merged cells filled down with their top value: G2:G3, H2:H3, O2:O3"]
    assert problems(ds, "file_format")["reason"].tolist() == ["old Excel format .xls read"]


def test_html_saved_as_xls_is_read_not_skipped(tmp_path):
    rows = [person_row(1, 1), person_row(1, 2, idn=ID_B, by="1949", rel="配偶"), person_row(2, 1, size="1")]
    page = html_table(PERSON, rows, {(0, PERSON.index("户编号")): 2})
    (tmp_path / "households.xls").write_bytes(page.encode("gbk"))
    ds = load_dataset(tmp_path)
    assert ds.report.exit_code() == 0
    assert_nothing_lost(ds, "members", 3)
    assert ds["households"]["household_id"].tolist() == [f"{VIL}0001", f"{VIL}0002"]
    assert problems(ds, "file_format")["reason"].tolist() == [
        "an HTML table saved as an Excel file: read as HTML"]


def test_two_row_header_and_merged_codes_in_xlsx(tmp_path):
    group = ["户编号", "行政区划代码", "村代码", "家庭人口数", "贫困户属性", "主要致贫原因", "脱贫年度",
             "收入情况", None, None, None, None, "两不愁三保障", None, None, None, None]
    sub = [None] * 7 + ["人均纯收入", "工资性收入", "生产经营性收入", "财产性收入", "转移性收入",
                        "不愁吃不愁穿", "义务教育有保障", "基本医疗有保障", "住房安全有保障", "饮水安全有保障"]
    rows = [[f"{VIL}{h:04d}", "610602" if h == 1 else None, VIL if h == 1 else None, "3", "低保户", "因残",
             "2016", 5200, 3000, 1200, 0, 1000, "是", "是", "是", "是", "是"] for h in range(1, 4)]
    merges = ["A1:A2", "B1:B2", "C1:C2", "D1:D2", "E1:E2", "F1:F2", "G1:G2", "H1:L1", "M1:Q1", "B3:B5", "C3:C5"]
    write_xlsx(tmp_path / "户表.xlsx", [group, sub], rows, merges)
    ds = load_dataset(tmp_path)
    assert ds.report.exit_code() == 0
    assert_nothing_lost(ds, "households", 3)
    h = ds["households"]
    assert h["county_code"].tolist() == ["610602"] * 3 and h["village_code"].tolist() == [VIL] * 3
    assert problems(ds, "merged_cells")["reason"].tolist() == [
        "merged cells filled down with their top value: B3:B5, C3:C5"]
    assert problems(ds, "two_row_header")["reason"].tolist() == [
        "two-row header: rows 1–2 read as one (a group row over sub-headers)"]
    # income without the shock columns and without a year: a household list still, no panel rows
    assert problems(ds, "layout_year")["severity"].tolist() == ["warning"]
    assert "panel" not in ds.tables


# --- 2b. Excel text markers and invisible characters ------------------------------------------

def test_excel_text_markers_and_invisible_characters_are_stripped(tmp_path):
    rows = [person_row(1, 1, idn="'" + ID_A), person_row(1, 2, idn=f'="{ID_B}"', by="1949", rel="配偶"),
            person_row(2, 1, size="1", idn=ID_A[:6] + "\u200b" + ID_A[6:])]
    rows[2][PERSON.index("村代码")] = "\ufeff" + VIL
    write_csv(tmp_path / "明细.csv", PERSON, rows, encoding="utf-8")
    ds = load_dataset(tmp_path)
    assert ds.report.exit_code() == 0
    assert ds["members"]["id_number"].tolist() == [ID_A, ID_B, ID_A]
    marks = problems(ds, "text_marker")
    assert sorted(zip(marks["table"], marks["row"].astype(int), marks["column"])) == [
        ("households", 4, "village_code"), ("members", 2, "id_number"), ("members", 3, "id_number"),
        ("members", 4, "id_number")]
    assert set(marks["reason"]) == {"Excel text marker or invisible character removed"}


# --- 3. every file read or named --------------------------------------------------------------

def test_unrecognized_files_are_named(tmp_path):
    write_csv(tmp_path / "明细.csv", PERSON, [person_row(1, 1, size="1")])
    (tmp_path / "说明.docx").write_bytes(b"PK\x03\x04")
    (tmp_path / "附件").mkdir()
    (tmp_path / "manifest.json").write_text("{}")
    ds = load_dataset(tmp_path)
    f = problems(ds, "file_not_read")
    assert sorted(zip(f["file"], f["severity"])) == [("manifest.json", "notice"), ("说明.docx", "warning"),
                                                     ("附件/", "warning")]


# --- 4. Parquet with numeric IDs --------------------------------------------------------------

def test_parquet_int64_ids_are_exact_floats_are_refused(tmp_path):
    hid = 6106020010010001
    members = pd.DataFrame({
        "person_id": pd.array([hid * 100 + 1, hid * 100 + 2], dtype="int64"),
        "household_id": pd.array([hid, hid], dtype="int64"),
        "name": ["张三", "李四"], "id_number": pd.array([610602198001011234, 610602198001011234], dtype="int64"),
        "sex": ["male", "male"], "birth_year": [1980, 1980], "relation_to_head": ["head", "child"],
        "labour_capacity": ["able", "able"], "disability": False, "chronic_illness": False, "in_school": False,
        "compulsory_school_dropout": False, "medical_insurance": True})
    members.to_parquet(tmp_path / "members.parquet")
    ds = load_dataset(tmp_path / "members.parquet")
    assert ds.report.exit_code() == 0
    assert ds["members"]["id_number"].tolist() == [ID_A, ID_A]
    assert ds["members"]["household_id"].tolist() == [str(hid)] * 2
    members.assign(id_number=[6.10602198001011e17, 610602198001011234.0]).to_parquet(tmp_path / "m2.parquet")
    ds = load_dataset(tmp_path / "m2.parquet", tables=["members"])
    assert ds.quarantine["members"]["_reasons"].tolist() == [
        "id_number: ID number was stored as a number and lost precision (Excel); re-export as text"
        " — not repaired"] * 2
    assert_nothing_lost(ds, "members", 2)


# --- 5. plausibility, header-only, encoding part-way, re-validation ----------------------------

def test_plausibility_and_household_size_warnings(tmp_path):
    rows = [house_row(1, size="2") + PANEL_VALUES, house_row(2, size="3") + PANEL_VALUES]
    rows[0][HOUSE.index("人均纯收入")] = "1000000000000"
    rows[1][len(HOUSE) + PANEL_EXTRA.index("人均帮扶金额")] = "999,999,999,999"
    write_csv(tmp_path / "户2020.csv", HOUSE + PANEL_EXTRA, rows)
    write_csv(tmp_path / "members.csv", ["人员编号", "户编号", "姓名", "身份证号", "性别", "出生年份", "与户主关系",
                                         "劳动技能", "是否残疾", "是否患慢性病", "是否在校生", "是否义务教育阶段辍学",
                                         "是否参加城乡居民基本医疗保险"],
              [[f"{VIL}0001{k:02d}", f"{VIL}0001", "张三", ID_A, "男", "1980", "户主", "普通劳动力", "否", "否",
                "否", "否", "是"] for k in (1, 2)]
              + [[f"{VIL}000201", f"{VIL}0002", "张三", ID_A, "男", "1980", "户主", "普通劳动力", "否", "否",
                  "否", "否", "是"]])
    ds = load_dataset(tmp_path)
    assert ds.report.exit_code() == 0  # warnings keep the rows
    w = problems(ds, "plausible")
    src = dictionary.table("panel").column("income_per_capita").plausible_source
    amt = dictionary.table("panel").column("assistance_amount").plausible_source
    assert list(zip(w["row"].astype(int), w["column"], w["reason"])) == [
        (2, "income_per_capita", f"1,000,000,000,000 is outside the plausible range -20,000 to 300,000 ({src})"),
        (3, "assistance_amount", f"999,999,999,999 is outside the plausible range 0 to 100,000 ({amt})")]
    hs = problems(ds, "household_size_members")
    assert list(zip(hs["row"].astype(int), hs["reason"])) == [(3, "household_size 3 but 1 member(s) listed in"
                                                                   " members")]


def test_header_only_file_says_no_data_rows(tmp_path):
    write_csv(tmp_path / "households.csv", ["户编号", "村代码", "县代码", "家庭人口数", "是否建档立卡"], [])
    ds = load_dataset(tmp_path)
    assert problems(ds, "no_data_rows")["reason"].tolist() == ["no data rows (the file has a header only)"]


def test_encoding_changing_part_way_names_line_and_byte(tmp_path):
    head = "户编号,村代码,县代码,家庭人口数,是否建档立卡\r\n"
    first = f"{VIL}0001,{VIL},610602,2,是\r\n"
    second = f"{VIL}0002,{VIL},610602,3,否\r\n"
    data = (head + first).encode("utf-8") + second.encode("gbk")
    (tmp_path / "households.csv").write_bytes(data)
    ds = load_dataset(tmp_path)
    f = problems(ds, "unreadable_file")
    byte = len((head + first).encode("utf-8")) + len(f"{VIL}0002,{VIL},610602,3,")
    assert f["reason"].tolist() == [
        f"households.csv: the encoding changes part-way: the file reads as utf-8 up to line 3, byte {byte}"
        " (0-based offset), where decoding fails; from there on it decodes as gb18030; save the whole file"
        " in one encoding (UTF-8)"]
    assert f["severity"].tolist() == ["fatal"]


def test_revalidation_replaces_the_quarantine(tmp_path):
    rows = [person_row(1, 1, size="2"), person_row(1, 2, size="3", rel="配偶")]
    f = write_csv(tmp_path / "明细.csv", PERSON, rows)
    out = tmp_path / "quarantine"
    write_quarantine(load_dataset(tmp_path), out)
    assert (out / "households.quarantine.csv").exists()
    write_csv(f, PERSON, [person_row(1, 1, size="1")])
    written = write_quarantine(load_dataset(tmp_path), out)
    assert [p.name for p in written] == ["validation_report.csv"]
    assert not (out / "households.quarantine.csv").exists()
    prev = list((out / "previous").iterdir())
    assert len(prev) == 1 and sorted(p.name for p in prev[0].iterdir()) == [
        "households.quarantine.csv", "members.quarantine.csv", "validation_report.csv"]
    # what `evalkit validate` calls before a clean run writes nothing
    dest = rotate_quarantine(out)
    assert [p.name for p in dest.iterdir()] == ["validation_report.csv"]
    assert [p.name for p in out.iterdir() if p.is_file()] == []
    assert rotate_quarantine(out) is None


# --- Done-when: the small province in the national layouts ------------------------------------

def _read_dir(d, table):
    return pd.concat([pd.read_parquet(f) for f in sorted((d / table).glob("*.parquet"))], ignore_index=True)


def _zh(list_name, s):
    return s.map(lambda c: dictionary.code_label(list_name, c))


def _yn(s):
    return s.map({True: "是", False: "否"})


def national_person_export(src) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The registered households' members in the person-level layout; the other households and
    members in the canonical model (they are not in the register)."""
    hh, mem = _read_dir(src, "households"), _read_dir(src, "members")
    reg = hh[hh["registered"]]
    m = mem.merge(reg, on="household_id", how="inner")
    out = pd.DataFrame({
        "县": "某县", "行政区划代码": m["county_code"], "村代码": m["village_code"], "户编号": m["household_id"],
        "人编号": m["person_id"], "姓名": m["name"], "证件号码": m["id_number"], "性别": _zh("sex", m["sex"]),
        "出生年份": m["birth_year"].astype(str), "与户主关系": _zh("relation", m["relation_to_head"]),
        "家庭人口数": m["household_size"].astype(str), "贫困户属性": _zh("poverty_type", m["poverty_type"]),
        "主要致贫原因": _zh("main_cause", m["main_cause"]),
        "识别年度": m["registration_year"].astype("Int64").astype(str).replace("<NA>", ""),
        "脱贫年度": m["exit_year"].astype("Int64").astype(str).replace("<NA>", ""),
        "劳动技能": _zh("labour", m["labour_capacity"]), "是否残疾": _yn(m["disability"]),
        "健康状况": _yn(m["chronic_illness"]), "在校生状况": _yn(m["in_school"]),
        "是否义务教育阶段辍学": _yn(m["compulsory_school_dropout"]),
        "是否参加城乡居民基本医疗保险": _yn(m["medical_insurance"])})
    return out, hh[~hh["registered"]], mem[~mem["household_id"].isin(reg["household_id"])]


def _write_format(df: pd.DataFrame, path, fmt: str) -> None:
    rows = df.astype(str).values.tolist()
    if fmt == "csv":
        write_csv(path, list(df.columns), rows, encoding="gbk")
    elif fmt == "xls":
        write_xls(path, [list(df.columns)], rows)
    elif fmt == "html":
        path.write_bytes(html_table(list(df.columns), rows).encode("gbk"))
    else:
        write_xlsx(path, [list(df.columns)], rows)


def build_national_dataset(src, dest, fmt: str) -> None:
    person, other_hh, other_mem = national_person_export(src)
    dest.mkdir()
    for f in ("counties.parquet", "villages.parquet"):
        shutil.copy(src / f, dest / f)
    for t in ("field_survey", "truth"):
        shutil.copytree(src / t, dest / t)
    ext = {"csv": ".csv", "xls": ".xls", "html": ".xls", "xlsx": ".xlsx"}[fmt]
    for code, part in person.groupby("行政区划代码"):
        _write_format(part, dest / f"贫困人口明细_{code}{ext}", fmt)
    (dest / "households").mkdir()
    (dest / "members").mkdir()
    other_hh.to_parquet(dest / "households" / "not_registered.parquet")
    other_mem.to_parquet(dest / "members" / "not_registered.parquet")


def _canon(df, key):
    return df.sort_values(key).reset_index(drop=True)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["csv", "xls", "html", "xlsx"])
def test_small_province_in_national_layout_loads_clean(small_province, tmp_path, fmt):
    dest = tmp_path / fmt
    build_national_dataset(small_province, dest, fmt)
    ds = load_dataset(dest, tables=["counties", "villages", "households", "members"])
    assert ds.report.exit_code() == 0, ds.report.to_text()
    assert ds.report.n_quarantined_total == 0
    for t, key in (("households", "household_id"), ("members", "person_id")):
        want = _canon(_read_dir(small_province, t), key)
        got = _canon(ds.tables[t][want.columns], key)
        pd.testing.assert_frame_equal(got, want, check_dtype=False)
    lay = problems(ds, "layout")
    assert len(lay) == 3  # one person export per county


@pytest.mark.slow
def test_county_assessment_on_national_layout_equals_generator_data(small_province, tmp_path):
    dest = tmp_path / "gbk"
    build_national_dataset(small_province, dest, "csv")
    policy = load_policy()
    a = assess_county(small_province, "610627", policy=policy)
    b = assess_county(dest, "610627", policy=policy)
    assert a.survey_source == b.survey_source
    pd.testing.assert_frame_equal(b.criteria.table, a.criteria.table)
    assert b.decision == a.decision
    assert len(b.households) == len(a.households) and b.criteria.register == a.criteria.register
    assert np.isfinite(b.criteria.table["est"].to_numpy(dtype=float)).all()


def test_monitoring_export_loads_as_its_own_table(tmp_path):
    header = ["户编号", "行政区划代码", "村代码", "家庭人口数", "人均纯收入", "监测对象类型", "风险类型", "识别时间",
              "风险消除时间"]
    rows = [[f"{VIL}0001", "610602", VIL, "3", "5600", "脱贫不稳定户", "因病", "2021-03-15", ""],
            [f"{VIL}0007", "610602", VIL, "2", "4800", "边缘易致贫户", "因灾,因学", "2021-06-01", "2022-06-30"],
            [f"{VIL}0009", "610602", VIL, "4", "3900", "突发严重困难户", "意外事故", "2022-01-10", ""],
            [f"{VIL}0010", "610602", VIL, "4", "3900", "低保户", "意外事故", "2022-01-10", ""]]
    write_csv(tmp_path / "监测对象.csv", header, rows)
    ds = load_dataset(tmp_path)
    m = ds["monitoring_cases"]
    assert m["monitor_type"].tolist() == ["unstable", "marginal", "sudden"]
    assert m["risk_cleared_date"].isna().tolist() == [True, False, True]
    assert m["risk_type"].tolist() == ["因病", "因灾,因学", "意外事故"]
    assert ds.quarantine["monitoring_cases"]["_row"].tolist() == [5]
    assert ds.quarantine["monitoring_cases"]["_reasons"].iloc[0].startswith(
        "monitor_type: not in code list monitor_type (accepted: unstable/脱贫不稳定户, marginal/边缘易致贫户,"
        " sudden/突发严重困难户)")
    assert_nothing_lost(ds, "monitoring_cases", 4)
    assert "households" not in ds.tables  # not mistaken for a household list


def test_person_export_row_with_too_many_fields_is_quarantined(tmp_path):
    lines = [",".join(PERSON), ",".join(person_row(1, 1, size="2")),
             ",".join(person_row(1, 2, size="2", rel="配偶", idn=ID_B, by="1949") + ["extra"])]
    (tmp_path / "明细.csv").write_bytes(("\n".join(lines) + "\n").encode("gbk"))
    ds = load_dataset(tmp_path)
    assert ds.quarantine["members"]["_reasons"].tolist() == [f"row has {len(PERSON) + 1} fields but the header"
                                                             f" has {len(PERSON)}"]
    assert ds["households"]["household_id"].tolist() == [f"{VIL}0001"]
    assert_nothing_lost(ds, "members", 2)


def test_person_export_without_sex_and_birth_year_derives_them_from_the_id(tmp_path):
    drop = [PERSON.index("性别"), PERSON.index("出生年份")]
    header = [h for i, h in enumerate(PERSON) if i not in drop]
    rows = [[v for i, v in enumerate(r) if i not in drop]
            for r in (person_row(1, 1), person_row(1, 2, idn=ID_B, rel="配偶"))]
    write_csv(tmp_path / "明细.csv", header, rows)
    ds = load_dataset(tmp_path)
    assert ds.report.exit_code() == 0
    # ID_A: born 1980, 17th digit 3 (odd) -> male; ID_B: born 1949, 17th digit 2 (even) -> female
    assert ds["members"]["birth_year"].tolist() == [1980, 1949]
    assert ds["members"]["sex"].tolist() == ["male", "female"]
    assert problems(ds, "layout_derived")["column"].tolist() == ["sex, birth_year"]


def test_excel_files_are_read_by_content_not_extension(tmp_path):
    rows = [person_row(1, 1, size="1")]
    write_xlsx(tmp_path / "a.xls", [PERSON], rows)  # an .xlsx named .xls
    write_xls(tmp_path / "b.xlsx", [PERSON], [person_row(2, 1, size="1")])  # and the other way round
    ds = load_dataset(tmp_path)
    assert ds.report.exit_code() == 0
    assert sorted(ds["households"]["household_id"]) == [f"{VIL}0001", f"{VIL}0002"]
    assert problems(ds, "file_format")["file"].tolist() == ["b.xlsx[Sheet1]"]


def test_household_cells_stated_on_the_first_row_only(tmp_path):
    rows = [person_row(1, 1, size="2"), person_row(1, 2, size="", rel="配偶", idn=ID_B, by="1949"),
            person_row(2, 1, size="1")]
    rows[1][PERSON.index("贫困户属性")] = ""
    write_csv(tmp_path / "明细.csv", PERSON, rows)
    ds = load_dataset(tmp_path)
    assert ds.report.exit_code() == 0
    assert ds["households"]["household_size"].tolist() == [2, 1]
    assert ds["households"]["poverty_type"].tolist() == ["general", "general"]
    assert problems(ds, "layout_filled")["reason"].tolist() == []  # the first row states them: nothing filled
    rows = [person_row(1, 1, size=""), person_row(1, 2, size="2", rel="配偶", idn=ID_B, by="1949")]
    write_csv(tmp_path / "明细.csv", PERSON, rows)
    ds = load_dataset(tmp_path)
    assert ds["households"]["household_size"].tolist() == [2]
    assert problems(ds, "layout_filled")["reason"].tolist() == [
        "1 empty household cell(s) filled from the value the household's other rows state (merged cells"
        " saved as text)"]
