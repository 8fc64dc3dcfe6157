"""Region rules: Guangdong's relative exit standard and the province's rural income in the classes.

Every expected number is worked out by hand below from the rule in docs/policy.md §2.1 / §3.5:

- Guangdong 2016 (sourced, 14512): line = 0.45 x 14512 = 6530.40; income 6530.40 reaches it.
- Guangdong 2018 (assumed): 14617 x 14512 / 12363 = 17157.80 -> 17158; line 0.45 x 17158 = 7721.10.
- Shaanxi 2017 (sourced, 10265): not-enjoying-policy boundary 0.9 x 10265 = 9238.50
  (the national 13432 would give 12088.80).
- Shaanxi 2018 (assumed): ratio 10265/13432 = 0.764220 (2017), 14745/18931 = 0.778881 (2021);
  2018 is a quarter of the way: 0.764220 + 0.25 x 0.014661 = 0.767885; x 14617 = 11224.2 -> 11224.
"""
from __future__ import annotations

import pandas as pd
import pytest

from evalkit.config import ConfigError, load_policy
from evalkit.errors import MeasureError
from evalkit.measures import classify_households, household_indicators
from evalkit.measures.exit_standard import exit_lines

POLICY = load_policy()
OK = {g: True for g in ["food_clothing_ok", "education_ok", "medical_ok", "housing_ok", "water_ok"]}


def panel(rows):
    """rows: (household_id, county_code, year, income)."""
    df = pd.DataFrame(rows, columns=["household_id", "county_code", "year", "income_per_capita"])
    return df.assign(**OK)


def test_guangdong_relative_rule_at_its_boundary():
    p = panel([("a", "440232", 2016, 6530.40), ("b", "440232", 2016, 6530.39),
               ("c", "610621", 2016, 2952.00), ("d", "610621", 2016, 2952.01),
               ("e", "440232", 2018, 7721.10), ("f", "440232", 2018, 7721.09)])
    out = household_indicators(p, POLICY)
    assert out["line"].tolist() == [6530.40, 6530.40, 2952.0, 2952.0, 7721.10, 7721.10]
    # Guangdong: at least the line passes; national: strictly above
    assert out["meets_exit_standard"].tolist() == [True, False, False, True, True, False]
    assert out["fail_reasons"].tolist() == ["", "income_below_line", "income_below_line", "", "",
                                            "income_below_line"]
    gd = POLICY.rural_income(2018, "44")
    assert (gd.value, gd.basis, gd.assumed) == (17158.0, "province_ratio", True)


def test_rule_can_be_forced_or_switched_off_in_policy(tmp_path):
    p = panel([("a", "440232", 2016, 3000.0)])
    assert household_indicators(p, POLICY)["line"].tolist() == [6530.40]
    assert household_indicators(p, POLICY, rule="national")["line"].tolist() == [2952.0]
    # the relative rule on a Shaanxi household: 0.45 x Shaanxi's 2017 income 10265 = 4619.25
    q = panel([("b", "610621", 2017, 4619.25)])
    out = household_indicators(q, POLICY, rule="guangdong_relative")
    assert out["line"].tolist() == [4619.25] and out["meets_exit_standard"].tolist() == [True]
    f = tmp_path / "off.toml"
    f.write_text('[exit_standard.province]\n"44" = "national"\n', encoding="utf-8")
    assert household_indicators(p, load_policy(f))["line"].tolist() == [2952.0]
    with pytest.raises(ConfigError, match="unknown exit rule"):
        household_indicators(p, POLICY, rule="zhejiang_common_prosperity")
    with pytest.raises(MeasureError, match="needs? the province|pass province_code"):
        exit_lines(p.drop(columns="county_code"), POLICY, rule="guangdong_relative")
    # without a county code or province the national rule applies
    assert exit_lines(p.drop(columns="county_code"), POLICY)["line"].tolist() == [2952.0]


def test_households_without_labour_pass_through_dibao_under_the_relative_rule():
    p = panel([("a", "440232", 2016, 3000.0), ("b", "440232", 2016, 3000.0),
               ("c", "440232", 2016, 3000.0), ("d", "610621", 2016, 3000.0)])
    p["able_bodied"] = [False, False, True, False]
    p["dibao_or_tekun"] = [True, False, True, False]
    out = household_indicators(p, POLICY, able_bodied_col="able_bodied", support_col="dibao_or_tekun")
    # a: no labour, 低保 -> passes; b: no labour, no support -> fails; c: able-bodied, 3000 < 6530.40
    # -> fails; d: Shaanxi, national rule, 3000 > 2952 -> passes whatever its labour
    assert out["meets_exit_standard"].tolist() == [True, False, False, True]
    with pytest.raises(MeasureError, match="support_col"):
        household_indicators(p, POLICY, able_bodied_col="able_bodied")


def test_guangdong_identification_line():
    r = POLICY.exit_rule("440232")
    assert (r.name, r.share, r.comparison) == ("guangdong_relative", 0.45, "at_least")
    assert (r.identification_line, r.identification_income_year) == (4000.0, 2015)
    assert POLICY.exit_rule("61").name == "national" and POLICY.exit_rule().kind == "poverty_line"


def test_provincial_rural_income_sourced_assumed_or_national():
    s17, s18 = POLICY.rural_income(2017, "61"), POLICY.rural_income(2018, "61")
    assert (s17.value, s17.basis, s17.assumed) == (10265.0, "province", False)
    assert (s18.value, s18.basis, s18.assumed) == (11224.0, "province_ratio", True)
    assert "assumption" in s18.source
    ah = POLICY.rural_income(2020, "34")  # Anhui: no sourced provincial value
    assert (ah.value, ah.basis, ah.assumed) == (17131.0, "national", True)
    assert POLICY.rural_income(2026).assumed and not POLICY.rural_income(2020).assumed


def test_classes_use_the_province_rural_income():
    df = pd.DataFrame({
        "county_code": ["610621", "610621", "610621", "610621"],
        "year": [2017, 2017, 2018, 2018],
        # 0.9 x 10265 = 9238.50 (2017); 0.9 x 11224 = 10101.60 (2018, assumed)
        "income_per_capita": [9238.50, 9238.49, 10101.60, 10101.59],
        "registered": True, "exited": True, "risk": False,
    })
    out = classify_households(df, policy=POLICY, risk_col="risk")
    assert out.astype(str).tolist() == ["not_enjoying_policy", "enjoying_policy",
                                        "not_enjoying_policy", "enjoying_policy"]
