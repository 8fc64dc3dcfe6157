"""Ledgers (台账): written for a township to fill in, read back when it returns them.

Hand-made frames and hand-filled cells; the expected counts and problems are worked out here.
"""
from __future__ import annotations

import openpyxl
import pandas as pd
import pytest

from evalkit.cli import main
from evalkit.data.ledger import read_returned_ledger
from evalkit.errors import InputError
from evalkit.report.common import write_ledger_xlsx
from evalkit.report.ledger import sheet_name
from evalkit.report.risk import write_watchlist_xlsx

IDS = ["6106310010010001", "6106310010010002", "6106310010010003", "6106310010010004"]


def _followup() -> pd.DataFrame:
    return pd.DataFrame({"problem_type": ["疑似错退", "疑似漏评", "疑似漏评", "疑似漏评"],
                         "township_name": ["甲镇", "乙镇", "乙镇", "乙镇"], "household_id": IDS,
                         "head_id_number_masked": ["610631**********12"] * 4,
                         "surveyed_income_per_capita": [2747.0, 3100.5, 12000.0, 15.0]})


@pytest.fixture
def ledger(tmp_path):
    return write_ledger_xlsx({"疑似问题核实清单": _followup()}, tmp_path / "followup.xlsx", lang="zh",
                             title="黄龙县 2018 疑似问题核实清单", about="说明文字")


def test_a_ledger_is_a_taizhang(ledger):
    wb = openpyxl.load_workbook(ledger)
    assert wb.sheetnames == ["疑似问题核实清单", "汇总", "说明"]
    ws = wb["疑似问题核实清单"]
    head = [c.value for c in ws[1]]
    assert head == ["问题类型", "乡镇", "户编号", "户主身份证号（已脱敏）", "调查人均纯收入（元）",
                    "核实结果", "核实人", "核实日期", "整改情况", "备注"]
    assert ws.freeze_panes == "A2" and ws.auto_filter.ref == "A1:J5"
    assert ws["E2"].value == 2747 and ws["E2"].number_format == "#,##0"  # a number, shown with separators
    dv = {str(v.sqref): v for v in ws.data_validations.dataValidation}
    assert dv["F2:F5"].type == "list" and dv["F2:F5"].formula1 == '"属实,不属实,待核实"'
    assert dv["H2:H5"].type == "date"
    assert ws.column_dimensions["E"].width >= 20  # 调查人均纯收入（元）: CJK characters count double
    about = pd.read_excel(ledger, sheet_name="说明", dtype=str, engine="openpyxl")
    assert "黄龙县 2018 疑似问题核实清单" in about.iloc[0].tolist() and "说明文字" in about["内容"].tolist()
    summ = openpyxl.load_workbook(ledger)["汇总"]
    formulas = [c.value for row in summ.iter_rows() for c in row if isinstance(c.value, str) and c.value[:1] == "="]
    assert any("COUNTIF('疑似问题核实清单'!F2:F5" in f for f in formulas)  # live counts as it is filled in


def test_sheet_names_are_never_cut_mid_word():
    assert sheet_name("Follow-up list of suspected problems") == "Follow-up list of suspected"
    assert sheet_name("Follow-up list of suspected problems", short="Follow-up list") == "Follow-up list"
    assert sheet_name("a/b:c") == "a b c"


def _fill(path, cells: dict[str, str]):
    wb = openpyxl.load_workbook(path)
    ws = wb.worksheets[0]
    for ref, v in cells.items():
        ws[ref] = v
    wb.save(path)


def test_a_returned_ledger_is_read_checked_and_counted(ledger):
    # row 2 confirmed and complete; row 3 'Not confirmed' in English, no verifier (a problem);
    # row 4 an answer outside the list (a problem); row 5 empty (pending)
    _fill(ledger, {"F2": "属实", "G2": "李四", "H2": "2021-03-15", "I2": "已纳入监测",
                   "F3": "Not confirmed", "H3": "2021年3月16日", "F4": "可能", "G4": "王五"})
    led = read_returned_ledger(ledger)
    assert len(led.rows) == 4  # bad rows are set aside as problems, not dropped
    assert led.rows["verify_result"].tolist()[:2] == ["confirmed", "not_confirmed"]
    assert led.rows["verify_date"].tolist()[:2] == ["2021-03-15", "2021-03-16"]
    assert led.progress() == {"total": 4, "verified": 2, "confirmed": 1, "not_confirmed": 1, "pending": 1,
                              "invalid": 2}
    p = led.problems.set_index("row")
    assert p.loc[3, "column"] == "核实人" and "核实人" in p.loc[3, "reason"]
    assert p.loc[4, "column"] == "核实结果" and p.loc[4, "value"] == "可能" and "属实" in p.loc[4, "reason"]
    assert set(led.problems["file"]) == {"followup.xlsx"} and set(led.problems["sheet"]) == {"疑似问题核实清单"}


def test_ledger_import_writes_into_the_run_and_masks(ledger, tmp_path, capsys):
    _fill(ledger, {"F2": "属实", "G2": "李四", "H2": "2021-03-15", "J2": "身份证 610602198001011234"})
    run = tmp_path / "run"
    run.mkdir()
    assert main(["ledger", "import", str(ledger), "--run", str(run), "--lang", "en"]) == 0
    out = capsys.readouterr().out
    assert "4 households, 1 verified (1 confirmed problems, 0 not confirmed), 3 pending, 0 with errors" in out
    ver = (run / "returns" / "610631" / "verification.csv").read_text(encoding="utf-8-sig")
    assert "610602198001011234" not in ver and "610602**********34" in ver
    prog = pd.read_csv(run / "returns" / "progress.csv", dtype={"name": str})
    assert prog[["name", "total", "verified", "confirmed", "pending"]].values.tolist() == [["610631", 4, 1, 1, 3]]
    _fill(ledger, {"F3": "maybe"})
    assert main(["ledger", "import", str(ledger), "--run", str(run)]) == 1  # a problem: listed, exit 1
    assert "row 3" in capsys.readouterr().out
    assert len(pd.read_csv(run / "returns" / "progress.csv")) == 1  # the same ledger again: replaced


def test_a_file_without_fill_in_columns_is_refused(tmp_path):
    pd.DataFrame({"a": [1]}).to_excel(tmp_path / "x.xlsx", index=False)
    with pytest.raises(InputError, match="x.xlsx"):
        read_returned_ledger(tmp_path / "x.xlsx")


def test_watchlist_sheets_carry_county_names_and_scores_have_three_decimals(tmp_path):
    wl = pd.DataFrame({"county_code": ["610631", "610632"], "village_code": ["610631001001", "610632001001"],
                       "household_id": ["6106310010010001", "6106320010010001"],
                       "risk_score": [0.5225758710293235, 0.31], "warning_level": ["red", "red"]})
    p = write_watchlist_xlsx(wl, tmp_path / "wl.xlsx", lang="zh")
    wb = openpyxl.load_workbook(p)
    assert wb.sheetnames == ["黄龙县（610631）", "黄陵县（610632）", "汇总", "说明"]
    ws = wb["黄龙县（610631）"]
    col = [c.value for c in ws[1]].index("风险评分") + 1
    assert ws.cell(2, col).value == 0.523 and ws.cell(2, col).number_format == "0.000"
