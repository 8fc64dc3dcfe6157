"""Check digits, coercion of raw values, pandera schemas and cross-row / cross-table rules."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pytest

from evalkit.data import (
    MSG_ID_NUMBER,
    TableInput,
    ValidationReport,
    coerce_series,
    table_schema,
    validate_tables,
)
from evalkit.ids import check_digit, valid_id_number

# Hand-verified ID numbers (ISO 7064 MOD 11-2, weights 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2):
#
# 11010519491231002X (published example):
#   digits   1  1  0  1  0  5  1  9  4  9  1  2  3  1  0  0  2
#   products 7  9  0  5  0 20  2  9 24 27  7 18 30  5  0  0  4  -> sum 167
#   167 mod 11 = 2 (11*15 = 165) -> '10X98765432'[2] = 'X'
#
# 610602198001011234:
#   digits   6  1  0  6  0  2  1  9  8  0  0  1  0  1  1  2  3
#   products 42 9  0 30  0  8  2  9 48  0  0  9  0  5  8  8  6  -> sum 184
#   184 mod 11 = 8 (11*16 = 176) -> '10X98765432'[8] = '4'
ID_1949 = "11010519491231002X"
ID_1980 = "610602198001011234"


def run(table: str, raw: pd.DataFrame, *, inputs: dict | None = None):
    """Validate one raw frame as file 't.csv' (data rows 2, 3, ...)."""
    raw = raw.reset_index(drop=True)
    ti = TableInput(table, raw, np.full(len(raw), "t.csv", dtype=object),
                    np.arange(len(raw), dtype=np.int64) + 2, {"t.csv": {c: c for c in raw.columns}})
    return validate_tables({**(inputs or {}), table: ti})


def household(**kw) -> dict:
    row = {"household_id": "6106020010010001", "village_code": "610602001001",
           "county_code": "610602", "household_size": "3", "registered": "是",
           "poverty_type": "低保户", "main_cause": "因病", "registration_year": "2014",
           "exit_year": "2016"}
    row.update(kw)
    return row


def member(**kw) -> dict:
    row = {"person_id": "610602001001000101", "household_id": "6106020010010001", "name": "张三",
           "id_number": ID_1980, "sex": "男", "birth_year": "1980", "relation_to_head": "户主",
           "labour_capacity": "普通劳动力", "disability": "否", "chronic_illness": "否",
           "in_school": "否", "compulsory_school_dropout": "否", "medical_insurance": "是"}
    row.update(kw)
    return row


def panel_row(**kw) -> dict:
    row = {"household_id": "6106020010010001", "year": "2018", "county_code": "610602",
           "village_code": "610602001001", "income_per_capita": "5000", "income_wage": "3000",
           "income_business": "1000", "income_property": "200", "income_transfer": "800",
           "assistance_amount": "0", "register_status": "已脱贫"}
    for c in ("food_clothing_ok", "education_ok", "medical_ok", "housing_ok", "water_ok",
              "shock_illness", "shock_disability", "shock_disaster", "shock_accident",
              "shock_project_failure", "shock_job_loss", "assistance"):
        row[c] = "是"
    row.update(kw)
    return row


def problems_of(res, table: str, severity: str | None = None) -> pd.DataFrame:
    p = res.report.problems
    p = p[p["table"] == table]
    return p if severity is None else p[p["severity"] == severity]


# -- check digit -------------------------------------------------------------------------------
def test_check_digit_hand_computed():
    out = check_digit(pd.Series([ID_1949[:17], ID_1980[:17]]))
    assert out.tolist() == ["X", "4"]


def test_check_digit_rejects_non_17_digit_input():
    out = check_digit(pd.Series(["1234", "1101051949123100A", None]))
    assert out.isna().all()


def test_valid_id_number():
    s = pd.Series([ID_1949, ID_1949.lower(), ID_1980, "610602198001011235", "11010519491231002",
                   "6.10602198001011e+17", None])
    assert valid_id_number(s).tolist() == [True, True, True, False, False, False, False]


# -- coercion ----------------------------------------------------------------------------------
def test_coerce_code_from_excel_numbers_and_text():
    s = pd.Series([610602, 610602.0, "610602.0", " ６１０６０２ ", "", None], dtype=object)
    out, err = coerce_series(s, "code6", "county_code")
    assert out.iloc[:4].tolist() == ["610602"] * 4
    assert out.iloc[4:].isna().all()
    assert err.empty


def test_coerce_code_never_pads():
    out, err = coerce_series(pd.Series(["61060", 61060]), "code6", "county_code")
    assert out.tolist() == ["61060", "61060"]  # the schema rejects them, nothing is repaired
    assert err.empty


def test_coerce_code_scientific_and_fraction():
    out, err = coerce_series(pd.Series(["6.10602e+05", 610602.5], dtype=object), "code6", "c")
    assert out.isna().all()
    assert err["pos"].tolist() == [0, 1]
    assert err["rule"].tolist() == ["number_precision", "code_format"]


def test_coerce_id16_number_beyond_excel_precision():
    out, err = coerce_series(pd.Series([6106020010010001], dtype=object), "id16", "household_id")
    assert out.isna().all()
    assert "more than 15 digits" in err["reason"].iloc[0]


def test_coerce_id18():
    s = pd.Series([610602198001011234.0, "6.10602198001011e+17", "  11010519491231002x ",
                   "610602198001011234.0"], dtype=object)
    out, err = coerce_series(s, "id18", "id_number")
    assert out.iloc[2] == ID_1949
    assert err["pos"].tolist() == [0, 1, 3]
    assert set(err["reason"]) == {MSG_ID_NUMBER}
    assert MSG_ID_NUMBER == ("ID number was stored as a number and lost precision (Excel); "
                             "re-export as text — not repaired")


def test_coerce_money():
    s = pd.Series(["1,234元", "１２３４", "¥ 1 234.50", "￥1，234", "-56.5", "abc", "", 12.5],
                  dtype=object)
    out, err = coerce_series(s, "money", "income_per_capita")
    assert out.iloc[:5].tolist() == [1234.0, 1234.0, 1234.5, 1234.0, -56.5]
    assert np.isnan(out.iloc[5]) and np.isnan(out.iloc[6])
    assert out.iloc[7] == 12.5
    assert err["pos"].tolist() == [5]
    assert err["reason"].iloc[0] == "is not an amount in yuan"


def test_coerce_int_and_year():
    out, err = coerce_series(pd.Series(["3", "３", "2.0", "2.5", "x"]), "int", "household_size")
    assert out.iloc[:3].tolist() == [3, 3, 2]
    assert err["pos"].tolist() == [3, 4]
    yr, err = coerce_series(pd.Series(["2016年", "2016", 2017, ""], dtype=object), "year", "exit_year")
    assert yr.iloc[:3].tolist() == [2016, 2016, 2017] and pd.isna(yr.iloc[3])
    assert err.empty
    assert str(yr.dtype) == "Int64"


@pytest.mark.parametrize("true, false", [("是", "否"), ("有", "无"), ("Y", "n"), ("yes", "NO"),
                                         ("True", "false"), ("1", "0"), ("√", "×"), ("T", "F"),
                                         ("Ｙ", "Ｎ")])
def test_coerce_bool_spellings(true, false):
    out, err = coerce_series(pd.Series([true, false, ""]), "bool", "registered")
    assert out.iloc[0] is True or out.iloc[0] == True  # noqa: E712
    assert out.iloc[1] == False  # noqa: E712
    assert pd.isna(out.iloc[2])
    assert err.empty


def test_coerce_bool_rejects_other_values():
    out, err = coerce_series(pd.Series(["也许", 2], dtype=object), "bool", "registered")
    assert out.isna().all()
    assert err["pos"].tolist() == [0, 1]


def test_coerce_category_spellings():
    out, _ = coerce_series(pd.Series(["低保户", "低保贫困户", "dibao", " 一般户 ", "五保户", "其它"]),
                           "category:poverty_type", "poverty_type")
    assert out.tolist() == ["dibao", "dibao", "dibao", "general", "tekun", "其它"]
    sex, _ = coerce_series(pd.Series([1, 2.0, "女", "M"], dtype=object), "category:sex", "sex")
    assert sex.tolist() == ["male", "female", "female", "male"]


def test_coerce_string_strips_and_nulls():
    out, err = coerce_series(pd.Series(["  张三 ", "", "   ", None]), "string", "name")
    assert out.iloc[0] == "张三"
    assert out.iloc[1:].isna().all()
    assert err.empty


# -- schema ------------------------------------------------------------------------------------
def test_table_schema_is_pandera_and_built_from_dictionary():
    sch = table_schema("households")
    assert isinstance(sch, pa.DataFrameSchema)
    assert list(sch.columns)[:3] == ["household_id", "village_code", "county_code"]
    assert sch.columns["household_id"].nullable is False
    assert sch.columns["exit_year"].nullable is True
    names = {c.name for c in sch.columns["poverty_type"].checks}
    assert "isin:poverty_type" in names


def test_valid_households_unchanged_and_typed():
    res = run("households", pd.DataFrame([household(), household(
        household_id="6106020010010002", registered="否", poverty_type="", main_cause="",
        registration_year="", exit_year="")]))
    assert res.report.exit_code() == 0
    t = res.tables["households"]
    assert t["household_id"].tolist() == ["6106020010010001", "6106020010010002"]
    assert t["registered"].tolist() == [True, False]
    assert t["poverty_type"].iloc[0] == "dibao" and pd.isna(t["poverty_type"].iloc[1])
    assert str(t["household_size"].dtype) == "int64"
    assert str(t["registered"].dtype) == "bool"
    assert str(t["exit_year"].dtype) == "Int64"


def test_ranges_and_missing_values():
    res = run("households", pd.DataFrame([
        household(household_size="-2"),                                   # row 2
        household(household_id="6106020010010002", household_size="0"),   # row 3
        household(household_id="6106020010010003", household_size="31"),  # row 4
        household(household_id="6106020010010004", registration_year="2013"),  # row 5
        household(household_id="6106020010010005", exit_year="2031"),     # row 6
        household(household_id="6106020010010006", household_size=""),    # row 7
    ]))
    p = problems_of(res, "households", "error")
    got = sorted(zip(p["row"], p["column"], p["reason"]))
    assert got == [
        (2, "household_size", "household size must be at least 1"),
        (3, "household_size", "household size must be at least 1"),
        (4, "household_size", "household size above 30"),
        (5, "registration_year", "year outside 2014–2030"),
        (6, "exit_year", "year outside 2014–2030"),
        (7, "household_size", "missing value"),
    ]
    assert res.report.n_quarantined["households"] == 6
    assert res.report.exit_code() == 1


def test_code_length_reasons():
    res = run("households", pd.DataFrame([household(county_code="61060"),
                                          household(household_id="6106020010010002",
                                                    village_code="6106020010011")]))
    p = problems_of(res, "households", "error").set_index("row")
    assert p.loc[2, "reason"] == ("has 5 digits, expected 6: leading zeros may have been lost in "
                                  "Excel; re-export the column as text")
    assert p.loc[3, "reason"] == "has 13 digits, expected 12"


def test_household_registration_rules():
    res = run("households", pd.DataFrame([
        household(registered="否"),                                                   # row 2
        household(household_id="6106020010010002", poverty_type=""),                 # row 3
        household(household_id="6106020010010003", registration_year="2018",
                  exit_year="2016"),                                                  # row 4
        household(household_id="6106020010010004", village_code="610603001001"),     # row 5
    ]))
    p = problems_of(res, "households", "error")
    by_row = p.groupby("row")["column"].apply(set).to_dict()
    assert by_row[2] == {"poverty_type", "main_cause", "registration_year", "exit_year"}
    assert by_row[3] == {"poverty_type"}
    assert by_row[4] == {"exit_year"}
    assert p[p["row"] == 4]["reason"].iloc[0] == "exit_year 2016 is before registration_year 2018"
    assert by_row[5] == {"village_code"}
    assert res.report.n_valid["households"] == 0


def test_counties_province_code_must_match():
    base = {"county_code": "610602", "county_name": "宝塔区", "province_code": "61",
            "city_code": "6106", "region": "西部", "is_poverty_county": "是",
            "planned_exit_year": "2019", "rural_population": "200000"}
    res = run("counties", pd.DataFrame([base, {**base, "county_code": "610603", "province_code": "62"}]))
    p = problems_of(res, "counties", "error")
    assert p[["row", "column"]].values.tolist() == [[3, "province_code"]]
    assert res.tables["counties"]["region"].tolist() == ["west"]


def test_member_id_checks_and_birth_year_warning():
    res = run("members", pd.DataFrame([
        member(),                                                                  # row 2 ok
        member(person_id="610602001001000102", id_number="610602198001011235"),     # row 3 check digit
        member(person_id="610602001001000103", id_number="61060219800101123"),      # row 4 length
        member(person_id="610602001001000104", birth_year="1981"),                  # row 5 warning
        member(person_id="610602001001000105", id_number=ID_1949.lower(), birth_year="1949"),
    ]))
    err = problems_of(res, "members", "error").set_index("row")
    assert err.loc[3, "reason"].startswith("check digit does not match")
    assert err.loc[4, "reason"] == "has 17 characters, expected 18"
    warn = problems_of(res, "members", "warning")
    assert warn[["row", "column"]].values.tolist() == [[5, "birth_year"]]
    kept = res.tables["members"]
    assert kept["person_id"].tolist() == ["610602001001000101", "610602001001000104",
                                          "610602001001000105"]
    assert kept["id_number"].iloc[2] == ID_1949  # lower-case x parsed to upper case
    # values of ID numbers are masked in the findings
    assert err.loc[3, "value"] == "610602**********35"


def test_panel_income_components_warning_keeps_row():
    res = run("panel", pd.DataFrame([
        panel_row(),                                            # 3000+1000+200+800 = 5000: exact
        panel_row(year="2019", income_per_capita="5040"),       # gap 40 <= 1% of 5040 (50.4)
        panel_row(year="2020", income_per_capita="5100"),       # gap 100 > 51: warning
        panel_row(year="2021", income_per_capita="1,234元", income_wage="1234", income_business="0",
                  income_property="0", income_transfer="0"),
    ]))
    warn = problems_of(res, "panel", "warning")
    assert warn["row"].tolist() == [4]
    assert res.report.n_valid["panel"] == 4
    assert res.tables["panel"]["income_per_capita"].tolist() == [5000.0, 5040.0, 5100.0, 1234.0]


def test_field_survey_weights_and_probabilities():
    base = {"county_code": "610602", "survey_year": "2019", "household_id": "6106020010010001",
            "village_code": "610602001001", "stratum": "poverty_village", "hh_stratum": "已脱贫户",
            "prob_village": "0.5", "prob_household": "0.1", "weight": "20", "household_size": "3",
            "surveyed_income_per_capita": "6000", "food_clothing_ok": "是", "education_ok": "是",
            "medical_ok": "是", "housing_ok": "是", "water_ok": "是", "approves": "是"}
    rows = [base,
            {**base, "household_id": "6106020010010002", "weight": "0"},
            {**base, "household_id": "6106020010010003", "weight": ""},
            {**base, "household_id": "6106020010010004", "prob_village": "0"},
            {**base, "household_id": "6106020010010005", "prob_household": "1.5"}]
    res = run("field_survey", pd.DataFrame(rows))
    err = problems_of(res, "field_survey", "error")
    assert sorted(zip(err["row"], err["column"], err["reason"])) == [
        (3, "weight", "design weight must be greater than 0"),
        (4, "weight", "missing value"),
        (5, "prob_village", "probability outside (0, 1]"),
        (6, "prob_household", "probability outside (0, 1]"),
    ]
    assert res.report.n_valid["field_survey"] == 1


# -- cross-row and cross-table ------------------------------------------------------------------
def test_duplicates_exact_and_conflicting():
    res = run("households", pd.DataFrame([
        household(),                                                   # row 2
        household(household_id="6106020010010002"),                   # row 3
        household(),                                                   # row 4: exact copy of 2
        household(household_id="6106020010010002", household_size="4"),  # row 5: conflicts with 3
        household(household_id="6106020010010002"),                    # row 6: same as 3, conflict
    ]))
    p = problems_of(res, "households", "error")
    got = dict(zip(p["row"], p["reason"]))
    assert got[4] == "exact duplicate of row 2"
    conflict = "duplicate household_id with conflicting values: rows 3, 5, 6"
    assert got[3] == got[5] == got[6] == conflict
    assert 2 not in got
    assert res.tables["households"]["household_id"].tolist() == ["6106020010010001"]
    assert res.report.n_quarantined["households"] == 4


def test_members_of_missing_or_quarantined_households():
    hh = TableInput("households", pd.DataFrame([household(), household(
        household_id="6106020010010002", household_size="-1")]),
        np.array(["hh.csv"] * 2, dtype=object), np.array([2, 3]), {"hh.csv": {}})
    res = run("members", pd.DataFrame([
        member(),
        member(person_id="610602001001000201", household_id="6106020010010002"),
        member(person_id="610602001001000901", household_id="6106020010010009"),
    ]), inputs={"households": hh})
    p = problems_of(res, "members", "error")
    got = dict(zip(p["row"], p["reason"]))
    assert got == {3: "household is quarantined in households (row 3 of hh.csv)",
                   4: "household does not exist"}
    assert res.report.n_valid == {"households": 1, "members": 1}


def test_cross_table_check_skipped_without_parent():
    res = run("members", pd.DataFrame([member(household_id="6106020010010009")]))
    assert res.report.exit_code() == 0


# -- report ------------------------------------------------------------------------------------
def test_report_masks_and_exports(tmp_path):
    res = run("members", pd.DataFrame([
        member(name="欧阳娜娜", id_number="610602198001011235"),
        member(person_id="610602001001000102", name="王五", id_number=ID_1949, birth_year="1950"),
    ]))
    rep = res.report
    text = rep.to_text()
    for secret in ("610602198001011235", "欧阳娜娜", ID_1949):
        assert secret not in text
    assert "610602**********35" in text
    path = rep.to_csv(tmp_path / "r.csv")
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    back = pd.read_csv(path, encoding="utf-8-sig", dtype=str)
    assert list(back.columns)[:8] == ["file", "table", "row", "column", "header", "value",
                                      "reason", "severity"]
    assert "610602198001011235" not in raw.decode("utf-8-sig")
    from rich.console import Console
    con = Console(record=True, width=200)
    rep.render(console=con)
    shown = con.export_text()
    assert "610602198001011235" not in shown and "Counts by reason" in shown


def test_exit_codes():
    assert ValidationReport(pd.DataFrame(columns=["severity", "table", "row"])).exit_code() == 0
    res = run("households", pd.DataFrame([household(household_size="0")]))
    assert res.report.exit_code() == 1
    fatal = res.report.problems.iloc[:1].assign(severity="fatal")
    assert ValidationReport(fatal, {}, {}, {}).exit_code() == 2


def test_report_headings_follow_the_language():
    res = run("households", pd.DataFrame([household(household_size="0")]))
    en = res.report.to_text()
    assert en.startswith("Validation report: exit code 1 (rows quarantined)\n")
    zh = res.report.to_text(lang="zh")
    assert zh.startswith("数据校验报告：退出码 1（有记录被隔离）\n")
    # the reasons are the validator's exact sentences in both languages
    assert "household size must be at least 1" in en and "household size must be at least 1" in zh
