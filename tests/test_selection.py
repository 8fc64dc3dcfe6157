"""County selection: one parser for 'all', 'poverty', codes and Chinese names."""
from __future__ import annotations

import pandas as pd
import pytest

from evalkit.data.selection import parse_selection, select_counties
from evalkit.errors import EvalkitError, ParameterError


@pytest.fixture()
def counties() -> pd.DataFrame:
    return pd.DataFrame({
        "county_code": ["610622", "610621", "610602", "610625"],
        "county_name": ["延川县", "延长县", "宝塔区", "志丹县"],
        "is_poverty_county": [True, True, False, True],
        "planned_exit_year": pd.array([2019, 2018, None, None], dtype="Int64"),
    })


@pytest.mark.parametrize("sel", [None, "all", " ALL ", "", [], ["all"]])
def test_all_is_every_county_sorted(counties, sel):
    assert select_counties(counties, sel) == ["610602", "610621", "610622", "610625"]


def test_poverty_needs_a_planned_exit_year(counties):
    # 610625 is a poverty county without a planned exit year: no exit assessment applies
    assert select_counties(counties, "poverty") == ["610621", "610622"]


def test_poverty_without_the_column_is_a_parameter_error(counties):
    with pytest.raises(ParameterError, match="is_poverty_county"):
        select_counties(counties.drop(columns="is_poverty_county"), "poverty")


@pytest.mark.parametrize("sel", ["610622,610621", " 610622 , 610621,610622 ", ["610622", "610621", "610621"],
                                 [610621, 610622], '["610622", "610621"]'])
def test_codes_sorted_and_deduplicated(counties, sel):
    assert select_counties(counties, sel) == ["610621", "610622"]


def test_chinese_names_and_mixed_with_codes(counties):
    assert select_counties(counties, "延长县") == ["610621"]
    assert select_counties(counties, ["宝塔区", "610621", "延长县"]) == ["610602", "610621"]
    assert select_counties(counties, "志丹县,610602") == ["610602", "610625"]


def test_unknown_entries_are_named_and_the_known_listed(counties):
    with pytest.raises(ParameterError) as e:
        select_counties(counties, "610621,999999,黄龙县")
    msg = str(e.value)
    assert "999999" in msg and "黄龙县" in msg
    assert "610621 延长县" in msg and "610602 宝塔区" in msg  # what is known
    assert isinstance(e.value, EvalkitError) and isinstance(e.value, ValueError)


def test_parse_selection_keywords_and_lists():
    assert parse_selection(None) == "all"
    assert parse_selection("Poverty") == "poverty"
    assert parse_selection("610621, 610622") == ["610621", "610622"]
    assert parse_selection(610621) == ["610621"]
    with pytest.raises(ParameterError):
        parse_selection("[610621")
    with pytest.raises(ParameterError):
        parse_selection(3.5j)
