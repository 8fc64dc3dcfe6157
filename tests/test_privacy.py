"""Masking of names and ID numbers: exact masks on hand-written examples."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from evalkit.data import load_dataset, write_quarantine
from evalkit.privacy import mask_frame, mask_id_number, mask_name
from evalkit.report.common import write_ledger_xlsx


def test_mask_id_number_scalar_keeps_6_and_2():
    # 18 characters: 6 kept + 10 stars + 2 kept
    assert mask_id_number("11010519491231002X") == "110105**********2X"
    assert mask_id_number("610602198001011234") == "610602**********34"


def test_mask_id_number_series_and_nulls():
    s = pd.Series(["11010519491231002X", None, np.nan, "1234567", "6106021980"])
    out = mask_id_number(s)
    assert out.iloc[0] == "110105**********2X"
    assert pd.isna(out.iloc[1]) and pd.isna(out.iloc[2])
    assert out.iloc[3] == "*******"  # 8 characters or fewer: nothing kept
    assert out.iloc[4] == "610602**80"  # 10 characters: 6 + 2 stars + 2
    assert mask_id_number(None) is None


def test_mask_id_number_numbers_from_excel():
    out = mask_id_number(pd.Series([6.10602199001011e17], dtype=object))
    # str(6.10602199001011e17) == '6.10602199001011e+17' (20 characters)
    assert out.iloc[0] == "6.1060" + "*" * 12 + "17"


def test_mask_name_rules():
    s = pd.Series(["张", "张三", "张三丰", "欧阳娜娜", None, " 李四 "])
    out = mask_name(s)
    assert out.tolist()[:4] == ["*", "张*", "张*丰", "欧**娜"]
    assert pd.isna(out.iloc[4])
    assert out.iloc[5] == "李*"
    assert mask_name("王五") == "王*"
    assert mask_name(None) is None


def test_mask_frame_copies_and_masks_canonical_and_chinese_headers():
    df = pd.DataFrame({"name": ["张三丰"], "id_number": ["11010519491231002X"], "sex": ["male"]})
    out = mask_frame(df)
    assert out.loc[0, "name"] == "张*丰"
    assert out.loc[0, "id_number"] == "110105**********2X"
    assert out.loc[0, "sex"] == "male"
    assert df.loc[0, "name"] == "张三丰"  # the input is not modified
    zh = mask_frame(pd.DataFrame({"姓名": ["李四"], "身份证号码": ["610602198001011234"]}))
    assert zh.iloc[0].tolist() == ["李*", "610602**********34"]


def test_pii_found_by_header_and_content_in_any_table(tmp_path):
    """Review finding: a households file with 户主身份证号 / 户主姓名 columns (not member-table
    headers) must not reach the quarantine unmasked; nor an ID hidden in a free-text column."""
    f = tmp_path / "households.csv"
    f.write_text("户编号,村代码,县代码,家庭人口数,是否建档立卡,户主姓名,户主身份证号,备注\n"
                 "6106310010010001,610631001001,610631,-1,否,张三丰,610602198001011234,11010519491231002X\n",
                 encoding="utf-8")
    ds = load_dataset(f)
    assert ds.report.exit_code() == 1
    write_quarantine(ds, tmp_path / "q")
    text = (tmp_path / "q" / "households.quarantine.csv").read_text(encoding="utf-8-sig")
    assert "610602198001011234" not in text and "11010519491231002X" not in text
    assert "张三丰" not in text and "张*丰" in text
    assert "610602**********34" in text and "110105**********2X" in text


def test_ledger_refuses_unmasked_ids_anywhere(tmp_path):
    ok = pd.DataFrame({"household_id": ["6106020010010001"], "head_id_number": ["610602**********34"]})
    write_ledger_xlsx({"s": ok}, tmp_path / "ok.xlsx")
    for bad in (pd.DataFrame({"备注": ["610602198001011234"]}),
                pd.DataFrame({"x": [6.10602198001011e17]}),
                pd.DataFrame({"v": [1]}, index=pd.Index(["610602198001011234"], name="id"))):
        with pytest.raises(ValueError, match="full ID"):
            write_ledger_xlsx({"s": bad}, tmp_path / "bad.xlsx")
    assert not (tmp_path / "bad.xlsx").exists()
