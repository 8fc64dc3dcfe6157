"""Tests of evalkit.measures on small examples worked by hand (arithmetic in the comments)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from evalkit.config import ConfigError, load_policy
from evalkit.errors import MeasureError
from evalkit.measures import (
    HOUSEHOLD_CLASSES,
    alkire_foster,
    classify_households,
    fgt,
    gini,
    household_indicators,
    poverty_measures,
    watts,
)
from evalkit.measures.alkire_foster import deprivation_scores
from evalkit.measures.poverty import gini_linearized

POLICY = load_policy()  # tests are entry points: the default policy, passed explicitly
GUARANTEES = ["food_clothing_ok", "education_ok", "medical_ok", "housing_ok", "water_ok"]


def make_panel(rows: list[tuple]) -> pd.DataFrame:
    """rows: (household_id, year, income, food_clothing, education, medical, housing, water)."""
    cols = ["household_id", "year", "income_per_capita", *GUARANTEES]
    return pd.DataFrame(rows, columns=cols)


# ---------------------------------------------------------------------------------------------
# 1. household_indicators
# ---------------------------------------------------------------------------------------------
def test_line_and_strict_income_rule():
    # Lines from policy.toml: 2016 = 2952, 2018 = 2995.
    # Income exactly on the line (2952 in 2016) is NOT above it -> income_below_line.
    p = make_panel([
        ("a", 2016, 2952.0, True, True, True, True, True),
        ("b", 2016, 2952.01, True, True, True, True, True),
        ("c", 2018, 2995.0, True, True, True, True, True),
    ])
    out = household_indicators(p, POLICY)
    assert out["line"].tolist() == [2952.0, 2952.0, 2995.0]
    assert out["income_above_line"].tolist() == [False, True, False]
    assert out["meets_exit_standard"].tolist() == [False, True, False]
    assert out["fail_reasons"].tolist() == ["income_below_line", "", "income_below_line"]
    assert out["n_failed"].tolist() == [1, 0, 1]
    assert out.index.equals(p.index)


def test_stable_years_two_on_three_year_household():
    # Household a: 2016 3000 > 2952 (above); 2017 2900 < 2952 (below); 2018 3100 > 2995 (above).
    # stable_years=2 needs this year and the previous year above:
    #   2016: 2015 not observed          -> not stable -> income_not_stable
    #   2017: below this year            -> income_below_line
    #   2018: above, but 2017 was below  -> income_not_stable
    # Household c above in 2016, 2017, 2018 -> False (2015 unobserved), True, True.
    # Household g observed 2016 and 2018 only, both above -> 2018 not stable (2017 missing).
    p = make_panel([
        ("a", 2016, 3000, True, True, True, True, True),
        ("a", 2017, 2900, True, True, True, True, True),
        ("a", 2018, 3100, True, True, True, True, True),
        ("c", 2016, 3000, True, True, True, True, True),
        ("c", 2017, 3000, True, True, True, True, True),
        ("c", 2018, 3000, True, True, True, True, True),
        ("g", 2016, 3000, True, True, True, True, True),
        ("g", 2018, 3000, True, True, True, True, True),
    ])
    k1 = household_indicators(p, POLICY, stable_years=1)
    assert k1["income_above_line"].tolist() == [True, False, True, True, True, True, True, True]
    k2 = household_indicators(p, POLICY, stable_years=2)
    assert k2["income_above_line"].tolist() == [False, False, False, False, True, True, False, False]
    assert k2["fail_reasons"].tolist() == [
        "income_not_stable", "income_below_line", "income_not_stable",
        "income_not_stable", "", "",
        "income_not_stable", "income_not_stable",
    ]
    # Row order does not matter: shuffle and compare by key.
    shuffled = household_indicators(p.iloc[::-1], POLICY, stable_years=2)
    assert shuffled.sort_index()["income_above_line"].tolist() == k2["income_above_line"].tolist()
    # stable_years=3 on household c: only 2018 has 2016 and 2017 above as well.
    k3 = household_indicators(p, POLICY, stable_years=3)
    assert k3["income_above_line"].tolist()[3:6] == [False, False, True]


def test_default_stable_years_comes_from_policy():
    p = make_panel([("c", 2016, 3000, True, True, True, True, True),
                    ("c", 2017, 3000, True, True, True, True, True)])
    k = POLICY.stable_years
    assert household_indicators(p, POLICY).equals(household_indicators(p, POLICY, stable_years=k))


def test_fail_reasons_order_and_counts():
    # Income 1000 < 2952 (2016) and 两不愁 false, medical false, water false:
    # reasons in the fixed order income_below_line;food;clothing;medical;water -> 5 failures.
    p = make_panel([
        ("a", 2016, 1000, False, True, False, True, False),
        ("b", 2016, 5000, True, False, True, False, True),
        ("c", 2016, 5000, True, True, True, True, True),
    ])
    out = household_indicators(p, POLICY)
    assert out["fail_reasons"].tolist() == [
        "income_below_line;food;clothing;medical;water", "education;housing", ""]
    assert out["n_failed"].tolist() == [5, 2, 0]
    assert out["meets_exit_standard"].tolist() == [False, False, True]
    assert list(out.columns) == [
        "household_id", "year", "income_per_capita", "line", "income_above_line",
        "food_ok", "clothing_ok", "education_ok", "medical_ok", "housing_ok", "water_ok",
        "meets_exit_standard", "n_failed", "fail_reasons"]


def test_separate_food_and_clothing_columns_win():
    p = make_panel([("a", 2016, 5000, True, True, True, True, True)])
    p["food_ok"] = [True]
    p["clothing_ok"] = [False]  # survey recorded them apart: only clothing fails
    out = household_indicators(p, POLICY)
    assert out["food_ok"].tolist() == [True]
    assert out["clothing_ok"].tolist() == [False]
    assert out["fail_reasons"].tolist() == ["clothing"]
    # Without food_clothing_ok at all it still works.
    out2 = household_indicators(p.drop(columns="food_clothing_ok"), POLICY)
    assert out2["fail_reasons"].tolist() == ["clothing"]


def test_missing_values_are_unknown_not_failures():
    # Medical unknown, everything else holds -> meets is NA (unknown), no reason listed.
    # Medical unknown but income below -> meets is False (a known failure decides it).
    p = make_panel([
        ("a", 2016, 5000, True, True, None, True, True),
        ("b", 2016, 1000, True, True, None, True, True),
        ("c", 2016, np.nan, True, True, True, True, True),
    ])
    out = household_indicators(p, POLICY)
    assert out["meets_exit_standard"].isna().tolist() == [True, False, True]
    assert out.loc[1, "meets_exit_standard"] == False  # noqa: E712
    assert out["fail_reasons"].tolist() == ["", "income_below_line", ""]
    assert out["n_failed"].tolist() == [0, 1, 0]


def test_year_missing_from_config_raises():
    p = make_panel([("a", 2013, 5000, True, True, True, True, True)])
    with pytest.raises(ConfigError, match="2013"):
        household_indicators(p, POLICY)


def test_lines_and_guarantees_come_from_the_policy(tmp_path):
    # Override: 2016 line 3500, water no longer part of the standard.
    f = tmp_path / "pol.toml"
    f.write_text('[poverty_line.values]\n2016 = 3500\n[indicators]\nstable_years = 1\n'
                 'guarantees = ["food_clothing_ok", "education_ok", "medical_ok", "housing_ok"]\n')
    pol = load_policy(f)
    p = make_panel([("a", 2016, 3000, True, True, True, True, False)])
    out = household_indicators(p, policy=pol)
    assert out["line"].tolist() == [3500.0]
    assert out["fail_reasons"].tolist() == ["income_below_line"]  # water not checked
    assert "water_ok" not in out.columns


def test_duplicated_household_year_raises():
    p = make_panel([("a", 2016, 3000, True, True, True, True, True)] * 2)
    with pytest.raises(MeasureError, match="duplicated"):
        household_indicators(p, POLICY)


# ---------------------------------------------------------------------------------------------
# 2. classify_households
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def class_policy(tmp_path):
    # Anhui (34) 2020 monitoring line 5000 comes from policy.toml (docs/policy.md [D4]); the average rural
    # disposable income is overridden to a round 20000 so that 0.9 x 20000 = 18000 exactly.
    f = tmp_path / "classes.toml"
    f.write_text("[household_classes]\nnot_enjoying_policy_share_of_average = 0.9\n"
                 "[household_classes.rural_disposable_income]\n2020 = 20000\n")
    pol = load_policy(f)
    assert pol.monitoring_line("34", 2020) == 5000
    return pol


def test_class_boundaries(class_policy):
    # income, registered, exited, risk -> expected class
    cases = [
        (18000.00, True, True, False, "not_enjoying_policy"),  # == 0.9 x average: reaches it
        (17999.99, True, True, False, "enjoying_policy"),
        (5000.00, True, True, True, "enjoying_policy"),        # == monitoring line: not below
        (4999.99, True, True, True, "monitored"),
        (4000.00, True, True, False, "enjoying_policy"),       # below, but no risk
        (1000.00, True, False, True, "poor"),
        (30000.0, True, False, False, "poor"),
        (4999.99, False, False, True, "edge"),
        (5000.00, False, False, True, "not_registered"),
        (3000.00, False, False, False, "not_registered"),
    ]
    df = pd.DataFrame(cases, columns=["income_per_capita", "registered", "exited", "risk", "expected"])
    df["year"] = 2020
    out = classify_households(df, policy=class_policy, province_code="34", risk_col="risk")
    assert isinstance(out.dtype, pd.CategoricalDtype)
    assert list(out.cat.categories) == list(HOUSEHOLD_CLASSES)
    assert out.astype(str).tolist() == df["expected"].tolist()


def test_class_risk_from_shocks_and_guarantees(class_policy):
    # Exited, income 4000 < 5000: monitored if a shock_* flag is true or a guarantee fails.
    base = {"year": 2020, "income_per_capita": 4000.0, "registered": True, "exited": True,
            "shock_illness": False, "shock_disaster": False, **{g: True for g in GUARANTEES}}
    rows = [dict(base), dict(base, shock_illness=True), dict(base, housing_ok=False),
            dict(base, shock_disaster=None)]  # missing flag: no recorded risk
    out = classify_households(pd.DataFrame(rows), policy=class_policy, province_code=34)
    assert out.astype(str).tolist() == ["enjoying_policy", "monitored", "monitored", "enjoying_policy"]


def test_class_from_register_status_and_county_province(class_policy):
    # Province taken per row from county_code: Anhui 341323 has its own 5000 line in 2020;
    # Guizhou 520000 has none, so 1.5 (default_factor) x 4000 (2020 line) = 6000.
    # Income 5500 with a risk: above Anhui's line, below Guizhou's.
    df = pd.DataFrame({
        "county_code": ["341323", "520000", "341323", "341323", "341323"],
        "year": 2020,
        "income_per_capita": [5500.0, 5500.0, 4000.0, 4000.0, np.nan],
        "register_status": ["edge", "not_registered", "monitored", "poor", "exited"],
        "shock_illness": True,
        **{g: True for g in GUARANTEES},
    })
    out = classify_households(df, policy=class_policy)
    # Last row: exited with unknown income -> class unknown (NA).
    assert out.astype(object).where(out.notna(), None).tolist() == [
        "not_registered", "edge", "monitored", "poor", None]


def test_class_inconsistent_register_flags_raise(class_policy):
    df = pd.DataFrame({"year": [2020], "income_per_capita": [1.0], "registered": [False],
                       "exited": [True], "risk": [False]})
    with pytest.raises(MeasureError, match="exited but not registered"):
        classify_households(df, policy=class_policy, province_code="34", risk_col="risk")


# ---------------------------------------------------------------------------------------------
# 3. FGT, Watts, Gini, poverty_measures
# ---------------------------------------------------------------------------------------------
Y = [1000.0, 2000.0, 3000.0, 5000.0]
Z = 2952.0


def test_fgt_by_hand():
    # Poor: 1000 and 2000 (<= 2952). FGT0 = 2/4 = 0.5.
    # Gaps: (2952-1000)/2952 = 1952/2952 = 0.661247; (2952-2000)/2952 = 952/2952 = 0.322493.
    # FGT1 = (0.661247 + 0.322493)/4 = 0.983740/4 = 0.245935.
    # FGT2 = (0.661247^2 + 0.322493^2)/4 = (0.437247 + 0.104002)/4 = 0.541249/4 = 0.135312.
    assert fgt(Y, Z, 0) == pytest.approx(0.5)
    assert fgt(Y, Z, 1) == pytest.approx(((2952 - 1000) / 2952 + (2952 - 2000) / 2952) / 4)
    assert fgt(Y, Z, 1) == pytest.approx(0.245935, abs=1e-6)
    assert fgt(Y, Z, 2) == pytest.approx(0.135312, abs=1e-6)


def test_fgt_income_on_the_line_is_poor():
    # 一超过 needs income strictly above the line, so y == z is poor (gap 0).
    # [2952, 3000]: FGT0 = 1/2; FGT1 = (0 + 0)/2 = 0.
    assert fgt([2952, 3000], 2952, 0) == pytest.approx(0.5)
    assert fgt([2952, 3000], 2952, 1) == 0.0


def test_watts_by_hand():
    # W = (ln(2952/1000) + ln(2952/2000))/4 = (ln 2.952 + ln 1.476)/4
    #   = (1.082483 + 0.389336)/4 = 1.471819/4 = 0.367955 (non-poor contribute 0).
    assert watts(Y, Z) == pytest.approx(0.367955, abs=1e-6)
    assert watts(Y, Z) == pytest.approx((math.log(2.952) + math.log(1.476)) / 4)


def test_watts_raises_on_non_positive_poor_income():
    with pytest.raises(MeasureError, match="income <= 0"):
        watts([0.0, 2000.0, 5000.0], Z)
    with pytest.raises(MeasureError, match="income <= 0"):
        watts([-10.0, 2000.0, 5000.0], Z)


def test_gini_by_hand():
    # [1,2,3,4]: mean 2.5; |xi-xj| over unordered pairs: 1+2+3+1+2+1 = 10, ordered 20;
    # G = 20 / (2 x 4^2 x 2.5) = 20/80 = 0.25.
    assert gini([1, 2, 3, 4]) == pytest.approx(0.25)
    assert gini([4, 1, 3, 2]) == pytest.approx(0.25)  # order-free
    # [1000,2000,3000,5000]: mean 2750; unordered diffs 1000+2000+4000+1000+3000+2000 = 13000,
    # ordered 26000; G = 26000 / (2 x 16 x 2750) = 26000/88000 = 0.295455.
    assert gini(Y) == pytest.approx(26000 / 88000)
    assert gini([5, 5, 5]) == pytest.approx(0.0)


def test_gini_equal_weights_matches_standard_formula():
    rng = np.random.default_rng(1)
    y = np.round(rng.lognormal(8, 0.7, 60), -2)  # rounding makes ties
    brute = np.abs(y[:, None] - y[None, :]).sum() / (2 * len(y) ** 2 * y.mean())
    assert gini(y) == pytest.approx(brute)
    assert gini(y, np.full(len(y), 3.7)) == pytest.approx(brute)  # scale of weights irrelevant


def test_weighted_example_equals_replicated_sample():
    # Household weights [2,1,1,1] x persons [1,3,1,1] -> population weights [2,3,1,1], total 7:
    # the same as persons [1000,1000,2000,2000,2000,3000,5000].
    # FGT0 = (2+3)/7 = 0.714286.
    # FGT1 = (2 x 1952 + 3 x 952)/2952/7 = (3904 + 2856)/20664 = 6760/20664 = 0.327139.
    # FGT2 = (2 x 0.437247 + 3 x 0.104002)/7 = (0.874494 + 0.312006)/7 = 1.186500/7 = 0.169500.
    # Watts = (2 x 1.082483 + 3 x 0.389336)/7 = (2.164966 + 1.168007)/7 = 0.476139.
    # Gini: mean 16000/7; unordered diffs: 1000v2000 6x1000 + 1000v3000 2x2000 + 1000v5000 2x4000
    #   + 2000v3000 3x1000 + 2000v5000 3x3000 + 3000v5000 2000 = 32000, ordered 64000;
    #   G = 64000 / (2 x 49 x 16000/7) = 64000/224000 = 2/7 = 0.285714.
    df = pd.DataFrame({"y": Y, "w": [2.0, 1, 1, 1], "size": [1, 3, 1, 1]})
    res = poverty_measures(df, "y", Z, weight="w", persons="size").set_index("measure")["value"]
    assert res["fgt0"] == pytest.approx(5 / 7)
    assert res["fgt1"] == pytest.approx(6760 / 20664)
    assert res["fgt2"] == pytest.approx(0.169500, abs=1e-6)
    assert res["watts"] == pytest.approx(0.476139, abs=1e-6)
    assert res["gini"] == pytest.approx(2 / 7)
    rep = [1000, 1000, 2000, 2000, 2000, 3000, 5000]
    assert res["fgt2"] == pytest.approx(fgt(rep, Z, 2))
    assert res["watts"] == pytest.approx(watts(rep, Z))
    assert res["gini"] == pytest.approx(gini(rep))
    assert gini(Y, [2, 3, 1, 1]) == pytest.approx(2 / 7)


def test_poverty_measures_tidy_shape():
    df = pd.DataFrame({"y": Y})
    out = poverty_measures(df, "y", Z)
    assert list(out.columns) == ["measure", "value", "n"]
    assert out["measure"].tolist() == ["fgt0", "fgt1", "fgt2", "watts", "gini"]
    assert out["n"].tolist() == [4] * 5
    assert out.set_index("measure")["value"]["fgt1"] == pytest.approx(fgt(Y, Z, 1))


def test_poverty_measures_by_group_equals_each_group_alone():
    rng = np.random.default_rng(7)
    n = 300
    df = pd.DataFrame({
        "county": rng.choice(["c1", "c2", "c3"], n),
        "year": rng.choice([2016, 2018], n),
        "y": rng.lognormal(8.2, 0.6, n),
        "w": rng.uniform(5, 50, n),
        "size": rng.integers(1, 7, n),
    })
    df["z"] = df["year"].map(POLICY.poverty_line)
    grouped = poverty_measures(df, "y", "z", by=["county", "year"], weight="w", persons="size")
    assert list(grouped.columns) == ["county", "year", "measure", "value", "n"]
    for (county, year), part in df.groupby(["county", "year"]):
        alone = poverty_measures(part, "y", "z", weight="w", persons="size")
        got = grouped[(grouped["county"] == county) & (grouped["year"] == year)]
        np.testing.assert_allclose(got["value"].to_numpy(), alone["value"].to_numpy(), rtol=1e-12)
        assert got["n"].tolist() == [len(part)] * 5
        pw = part["w"] * part["size"]
        assert got["value"].iloc[0] == pytest.approx(fgt(part["y"], part["z"], 0, pw))
        assert got["value"].iloc[4] == pytest.approx(gini(part["y"], pw))


def test_poverty_measures_zero_income_makes_watts_alone_nan_with_a_note():
    # [0, 2000, 5000], z = 2952: poor 0 and 2000 -> FGT0 = 2/3;
    # FGT1 = (2952/2952 + 952/2952)/3 = (1 + 0.322493)/3 = 0.440831.
    # Gini: mean 7000/3; unordered diffs 2000 + 5000 + 3000 = 10000, ordered 20000;
    #   G = 20000 / (2 x 9 x 7000/3) = 20000/42000 = 0.476190. Watts needs ln(2952/0): undefined.
    df = pd.DataFrame({"y": [0.0, 2000.0, 5000.0]})
    out = poverty_measures(df, "y", Z)
    v = out.set_index("measure")["value"]
    assert v["fgt0"] == pytest.approx(2 / 3)
    assert v["fgt1"] == pytest.approx((1 + 952 / 2952) / 3)
    assert v["gini"] == pytest.approx(20000 / 42000)
    assert np.isnan(v["watts"])
    assert [n.key for n in out.attrs["notes"]] == ["note_watts_undefined"]
    assert out.attrs["notes"][0].fields == {"n": 1}
    assert "Watts" in out.attrs["notes"][0].render("en")
    # By group: only the group holding the zero income loses its Watts.
    df2 = pd.DataFrame({"y": [0.0, 2000.0, 5000.0, 1000.0, 4000.0], "g": ["a", "a", "a", "b", "b"]})
    got = poverty_measures(df2, "y", Z, by="g")
    w = got[got["measure"] == "watts"].set_index("g")["value"]
    assert np.isnan(w["a"]) and w["b"] == pytest.approx(math.log(2.952) / 2)
    assert out.attrs["notes"][0].key == "note_watts_undefined"
    assert got.attrs["notes"][0].key == "note_watts_undefined_groups"
    assert got.attrs["notes"][0].fields == {"n": 1, "groups": ["a"]}
    assert poverty_measures(pd.DataFrame({"y": Y}), "y", Z).attrs["notes"] == []


def test_poverty_measures_gini_undefined_note():
    # Group b has mean income (-500 + 100)/2 < 0: Gini NaN there alone, with a note.
    df = pd.DataFrame({"y": [1.0, 2.0, 3.0, 4.0, -500.0, 100.0], "g": ["a"] * 4 + ["b"] * 2})
    out = poverty_measures(df, "y", Z, by="g")
    g = out[out["measure"] == "gini"].set_index("g")["value"]
    assert g["a"] == pytest.approx(0.25) and np.isnan(g["b"])
    assert {n.key for n in out.attrs["notes"]} == {"note_watts_undefined_groups", "note_gini_undefined_groups"}


def test_poor_if_strict_option():
    # Default (docs/policy.md §2): income on the line is poor; poor_if="lt": it is not.
    # [2952, 2000, 5000]: default FGT0 = 2/3; "lt" FGT0 = 1/3; FGT1 is the same (the gap at z is 0).
    y = [2952.0, 2000.0, 5000.0]
    assert fgt(y, Z, 0) == pytest.approx(2 / 3)
    assert fgt(y, Z, 0, poor_if="lt") == pytest.approx(1 / 3)
    assert fgt(y, Z, 1, poor_if="lt") == pytest.approx(fgt(y, Z, 1))
    assert watts(y, Z, poor_if="lt") == pytest.approx(watts(y, Z))
    v = poverty_measures(pd.DataFrame({"y": y}), "y", Z, poor_if="lt").set_index("measure")["value"]
    assert v["fgt0"] == pytest.approx(1 / 3)
    with pytest.raises(MeasureError, match="poor_if"):
        poverty_measures(pd.DataFrame({"y": y}), "y", Z, poor_if="below")


def test_gini_linearized_is_the_derivative_in_the_weights():
    # u_k = dG/dw_k: compare with central differences of gini(); ties included; sum_k w_k u_k = 0.
    rng = np.random.default_rng(5)
    y = np.round(rng.lognormal(8, 0.7, 40), -3)  # rounding makes ties
    w = rng.uniform(1, 5, 40)
    g_hat, u = gini_linearized(y, w)
    assert g_hat[0] == pytest.approx(gini(y, w), rel=1e-12)
    h = 1e-6
    num = np.empty(40)
    for k in range(40):
        up, dn = w.copy(), w.copy()
        up[k] += h
        dn[k] -= h
        num[k] = (gini(y, up) - gini(y, dn)) / (2 * h)
    np.testing.assert_allclose(u, num, rtol=1e-5, atol=1e-9)
    assert np.sum(w * u) == pytest.approx(0.0, abs=1e-12)
    # by group: each group's own Gini
    grp = np.repeat([0, 1], 20)
    g2, u2 = gini_linearized(y, w, grp)
    assert g2 == pytest.approx([gini(y[:20], w[:20]), gini(y[20:], w[20:])])
    assert u2[20:] == pytest.approx(gini_linearized(y[20:], w[20:])[1])


def test_poverty_measures_rejects_missing_income():
    df = pd.DataFrame({"y": [1000.0, np.nan]})
    with pytest.raises(MeasureError, match="missing"):
        poverty_measures(df, "y", Z)


# ---------------------------------------------------------------------------------------------
# 4. Alkire-Foster
# ---------------------------------------------------------------------------------------------
# Four households, three "ok" dimensions (False = deprived), weights 1/3 each:
#   h1 deprived in none                      c = 0
#   h2 deprived in edu                       c = 1/3
#   h3 deprived in edu, health               c = 2/3
#   h4 deprived in edu, health, housing      c = 1
AF = pd.DataFrame({
    "hh": ["h1", "h2", "h3", "h4"],
    "edu": [True, False, False, False],
    "health": [True, True, False, False],
    "housing": [True, True, True, False],
})
DIMS = ["edu", "health", "housing"]


def _af_values(out: pd.DataFrame) -> dict:
    return {(m, d): v for m, d, v in zip(out["measure"], out["dimension"], out["value"])}


def test_af_k_one_third_by_hand():
    # Poor (c >= 1/3): h2, h3, h4. H = 3/4.
    # A = (1/3 + 2/3 + 1)/3 = 2/3.  M0 = H x A = 3/4 x 2/3 = 1/2.
    # Censored headcounts: edu h2,h3,h4 = 3/4; health h3,h4 = 2/4; housing h4 = 1/4.
    # Contributions: edu (1/3 x 3/4)/(1/2) = 50%; health (1/3 x 1/2)/(1/2) = 33.33%;
    #   housing (1/3 x 1/4)/(1/2) = 16.67%; total 100%.
    v = _af_values(alkire_foster(AF, DIMS, k=1 / 3))
    assert v[("H", None)] == pytest.approx(0.75)
    assert v[("A", None)] == pytest.approx(2 / 3)
    assert v[("M0", None)] == pytest.approx(0.5)
    assert [v[("censored_headcount", d)] for d in DIMS] == pytest.approx([0.75, 0.5, 0.25])
    assert [v[("contribution_pct", d)] for d in DIMS] == pytest.approx([50, 100 / 3, 50 / 3])


def test_af_k_two_thirds_by_hand():
    # Poor (c >= 2/3): h3, h4. H = 2/4 = 1/2.
    # A = (2/3 + 1)/2 = 5/6.  M0 = 1/2 x 5/6 = 5/12 = 0.416667.
    # Censored headcounts (h2 censored out): edu 2/4, health 2/4, housing 1/4.
    # Contributions: edu (1/3 x 1/2)/(5/12) = (1/6)/(5/12) = 40%; health 40%;
    #   housing (1/3 x 1/4)/(5/12) = (1/12)/(5/12) = 20%.
    out = alkire_foster(AF, DIMS, k=2 / 3)
    v = _af_values(out)
    assert v[("H", None)] == pytest.approx(0.5)
    assert v[("A", None)] == pytest.approx(5 / 6)
    assert v[("M0", None)] == pytest.approx(5 / 12)
    assert [v[("censored_headcount", d)] for d in DIMS] == pytest.approx([0.5, 0.5, 0.25])
    assert [v[("contribution_pct", d)] for d in DIMS] == pytest.approx([40, 40, 20])
    assert list(out.columns) == ["measure", "dimension", "value", "n"]
    assert set(out["n"]) == {4}


def test_af_weighted_dimensions_and_persons():
    # Dimension weights {edu: 2, health: 1, housing: 1} -> 0.5, 0.25, 0.25.
    # c = 0, 0.5, 0.75, 1; k = 0.5 -> poor h2, h3, h4; H = 3/4; A = (0.5+0.75+1)/3 = 0.75;
    # M0 = 0.5625. Contributions: edu 0.5 x 3/4 / 0.5625 = 66.67%; health 0.25 x 2/4 / 0.5625
    # = 22.22%; housing 0.25 x 1/4 / 0.5625 = 11.11%.
    v = _af_values(alkire_foster(AF, {"edu": 2, "health": 1, "housing": 1}, k=0.5))
    assert (v[("H", None)], v[("A", None)], v[("M0", None)]) == pytest.approx((0.75, 0.75, 0.5625))
    assert [v[("contribution_pct", d)] for d in DIMS] == pytest.approx([200 / 3, 200 / 9, 100 / 9])
    # Persons [1,1,1,5], equal dimension weights, k = 1/3: total 8 persons, poor 1+1+5 = 7.
    # H = 7/8; A = (1/3 + 2/3 + 5 x 1)/7 = 6/7; M0 = 7/8 x 6/7 = 6/8 = 0.75.
    v = _af_values(alkire_foster(AF.assign(size=[1, 1, 1, 5]), DIMS, k=1 / 3, persons="size"))
    assert (v[("H", None)], v[("A", None)], v[("M0", None)]) == pytest.approx((7 / 8, 6 / 7, 0.75))
    assert sum(v[("contribution_pct", d)] for d in DIMS) == pytest.approx(100)


def test_af_by_group_equals_each_group_alone():
    rng = np.random.default_rng(3)
    n = 200
    df = pd.DataFrame({d: rng.random(n) > 0.3 for d in DIMS})
    df["g"] = rng.choice(["x", "y", "z"], n)
    df["w"] = rng.uniform(1, 10, n)
    grouped = alkire_foster(df, DIMS, k=0.5, by="g", weight="w")
    for g, part in df.groupby("g"):
        alone = alkire_foster(part, DIMS, k=0.5, weight="w")
        np.testing.assert_allclose(grouped.loc[grouped["g"] == g, "value"].to_numpy(),
                                   alone["value"].to_numpy(), rtol=1e-12)
        c = grouped[(grouped["g"] == g) & (grouped["measure"] == "contribution_pct")]
        assert c["value"].sum() == pytest.approx(100)


def test_af_deprivation_flags_and_defaults():
    # Same data as deprivation flags (True = deprived) gives the same result.
    flags = AF.assign(**{d: ~AF[d] for d in DIMS})
    a = alkire_foster(AF, DIMS, k=1 / 3)
    b = alkire_foster(flags, DIMS, k=1 / 3, deprived_if_false=False)
    np.testing.assert_allclose(a["value"], b["value"])
    # Default dimensions: 5 guarantees of the policy + income_above_line, 1/6 each, on the
    # output of household_indicators (两不愁 = food_ok & clothing_ok).
    # h1 all ok; h2 income 1000 < 2952 only (c = 1/6); h3 income below and housing fails
    # (c = 2/6); k = 1/3 -> poor h3 only: H = 1/3, A = 1/3, M0 = 1/9;
    # contributions: housing and income each (1/6 x 1/3)/(1/9) = 50%.
    p = make_panel([
        ("h1", 2016, 5000, True, True, True, True, True),
        ("h2", 2016, 1000, True, True, True, True, True),
        ("h3", 2016, 1000, True, True, True, False, True),
    ])
    v = _af_values(alkire_foster(household_indicators(p, POLICY), k=1 / 3, policy=POLICY))
    assert (v[("H", None)], v[("A", None)], v[("M0", None)]) == pytest.approx((1 / 3, 1 / 3, 1 / 9))
    assert v[("contribution_pct", "housing_ok")] == pytest.approx(50)
    assert v[("contribution_pct", "income_above_line")] == pytest.approx(50)
    assert v[("contribution_pct", "food_clothing_ok")] == pytest.approx(0)


def test_af_without_poor_gives_nan_intensity_and_a_note():
    # k = 1 with nobody deprived in all three: H = M0 = 0, A undefined (NaN) with a note.
    out = alkire_foster(AF.iloc[:3], DIMS, k=1.0)
    v = _af_values(out)
    assert v[("H", None)] == 0 and v[("M0", None)] == 0 and np.isnan(v[("A", None)])
    assert [n.key for n in out.attrs["notes"]] == ["note_af_intensity_undefined"]
    assert alkire_foster(AF, DIMS, k=1.0).attrs["notes"] == []
    sc = deprivation_scores(AF, DIMS, k=2 / 3)
    assert sc["score"].tolist() == pytest.approx([0, 1 / 3, 2 / 3, 1])
    assert sc["poor"].tolist() == [False, False, True, True]


def test_af_rejects_missing_dimension_values_and_bad_k():
    bad = AF.astype({"edu": "boolean"})
    bad.loc[0, "edu"] = pd.NA
    with pytest.raises(MeasureError, match="missing"):
        alkire_foster(bad, DIMS, k=1 / 3)
    with pytest.raises(MeasureError, match="k must be"):
        alkire_foster(AF, DIMS, k=0)


def test_bad_input_raises_measure_error():
    # A missing column, and AF's default dimensions without the policy that defines them.
    p = make_panel([("a", 2016, 3000, True, True, True, True, True)])
    with pytest.raises(MeasureError, match="income_per_capita"):
        household_indicators(p.drop(columns="income_per_capita"), POLICY)
    with pytest.raises(MeasureError, match="policy"):
        alkire_foster(household_indicators(p, POLICY), k=1 / 3)
