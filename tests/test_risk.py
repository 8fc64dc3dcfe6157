"""Tests of evalkit.risk and the watch-list workbook of evalkit.report.risk: hand-built labels,
no leakage, model interfaces, metrics worked by hand, known truth on the synthetic province,
early warning, closure, watch list and errors.

Lines are read from the policy config (the expected labels are written relative to them, so a
change of the configured lines does not silently change what is tested).
"""
from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm
from sklearn.base import clone

from evalkit import dictionary, risk, synth
from evalkit.config import load_policy
from evalkit.errors import RiskModelError
from evalkit.report import risk as report_risk
from evalkit.risk import large, store
from evalkit.risk.models import cells
from evalkit.text import label

POL = load_policy()
GUARANTEES = ["food_clothing_ok", "education_ok", "medical_ok", "housing_ok", "water_ok"]
SHOCKS = ["shock_illness", "shock_disability", "shock_disaster", "shock_accident", "shock_project_failure",
          "shock_job_loss"]
C1, C2 = "610602", "610603"  # province 61: the monitoring line is the configured default for Shaanxi


def ML(y: int) -> float:
    return POL.monitoring_line("61", y)


def PL(y: int) -> float:
    return POL.poverty_line(y)


# ---------------------------------------------------------------------------------------------
# a small hand-built register
# ---------------------------------------------------------------------------------------------
def _row(hh, year, income, county=C1, **kw):
    r = {"household_id": hh, "year": year, "county_code": county, "village_code": county + "001001",
         "income_per_capita": income, "income_wage": 0.5 * income if income == income else np.nan,
         "income_business": 0.3 * income if income == income else np.nan, "income_property": 0.0,
         "income_transfer": 0.2 * income if income == income else np.nan,
         **{g: True for g in GUARANTEES}, **{s: False for s in SHOCKS},
         "assistance": False, "assistance_amount": 0.0, "register_status": "not_registered"}
    r.update(kw)
    return r


def hand_panel() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Households A-F of the docstring of test_labels_h1 (years 2018-2021)."""
    rows = [
        # A: exited 2018; below the monitoring line in 2020 only
        _row("A", 2018, ML(2018) * 1.2), _row("A", 2019, ML(2019) * 1.1, shock_disability=True),
        _row("A", 2020, ML(2020) - 1), _row("A", 2021, ML(2021) * 1.3),
        # B: registered 2014, exited 2019; housing fails in 2021
        _row("B", 2018, ML(2018) * 2), _row("B", 2019, ML(2019) * 2), _row("B", 2020, ML(2020) * 2),
        _row("B", 2021, ML(2021) * 2, housing_ok=False),
        # C: never registered; exactly on the line in 2019 (not below), below in 2020
        _row("C", 2018, ML(2018) - 100), _row("C", 2019, ML(2019)), _row("C", 2020, ML(2020) - 1),
        _row("C", 2021, ML(2021) * 2),
        # D: registered in 2020 (non-registered in 2018-2019), below in 2019
        _row("D", 2018, ML(2018) * 1.1), _row("D", 2019, ML(2019) - 500), _row("D", 2020, ML(2020) * 1.1),
        _row("D", 2021, ML(2021) * 1.1),
        # E: exited 2018, no 2020 row
        _row("E", 2018, ML(2018) * 1.5), _row("E", 2019, ML(2019) * 1.5), _row("E", 2021, ML(2021) * 1.5),
        # F: exited 2018; income unknown in 2019; 2021 below the poverty line with water unknown
        _row("F", 2018, ML(2018) * 1.5), _row("F", 2019, np.nan), _row("F", 2020, ML(2020) * 1.5),
        _row("F", 2021, PL(2021) - 1, water_ok=None),
    ]
    panel = pd.DataFrame(rows)
    panel["water_ok"] = panel["water_ok"].astype("boolean")
    households = pd.DataFrame({
        "household_id": list("ABCDEF"), "village_code": C1 + "001001", "county_code": C1,
        "household_size": [2, 1, 1, 1, 1, 1],
        "registered": [True, True, False, True, True, True],
        "poverty_type": ["general", "general", None, "dibao", "general", "general"],
        "registration_year": pd.array([2014, 2014, None, 2020, 2014, 2014], dtype="Int64"),
        "exit_year": pd.array([2018, 2019, None, None, 2018, 2018], dtype="Int64"),
    })
    members = pd.DataFrame({
        "person_id": ["A01", "A02", "B01", "C01", "D01", "E01", "F01"],
        "household_id": ["A", "A", "B", "C", "D", "E", "F"],
        "name": ["张三丰", "张小", "李四", "王五", "赵六", "钱七", "孙八"],
        "id_number": ["610602198001011234", "610602201001015678", "610602197001011111", "610602196001012222",
                      "610602195001013333", "610602194001014444", "610602193001015555"],
        "relation_to_head": ["head", "child", "head", "head", "head", "head", "head"],
        "birth_year": [1978, 2008, 1970, 1960, 1950, 1940, 1930],
        "labour_capacity": ["able", "none", "able", "able", "none", "weak", "none"],
        "disability": [False, False, False, False, True, False, False],
        "chronic_illness": [True, False, False, False, False, False, False],
        "in_school": [False, True, False, False, False, False, False],
    })
    return panel, households, members


def _labels_dict(df: pd.DataFrame) -> dict[tuple[str, int], int]:
    return {(h, int(y)): int(v) for h, y, v in zip(df["household_id"], df["year"], df["label"])}


# ---------------------------------------------------------------------------------------------
# 1. labels on the hand-built panel
# ---------------------------------------------------------------------------------------------
def test_labels_h1():
    panel, hh, _ = hand_panel()
    lab = risk.make_labels(panel, hh, POL, horizon=1, population="both")
    # A exited 2018: 2019 above, 2020 below (ML-1), 2021 above. 2021 itself: t+1 beyond the panel.
    # B exited 2019 (2018: registered poor -> no label); 2021 housing fails -> event.
    # C never registered: 2019 income == line is NOT below (strict); 2020 below.
    # D non-registered in 2018/2019 (registered 2020): 2019 below; registered poor from 2020 -> no label.
    # E: 2019's window (2020) is missing -> not labelled.
    # F: 2018's window (2019) has unknown income -> not labelled; 2021 below the poverty line is an
    #    event even with water unknown.
    expected = {
        ("A", 2018): 0, ("A", 2019): 1, ("A", 2020): 0,
        ("B", 2019): 0, ("B", 2020): 1,
        ("C", 2018): 0, ("C", 2019): 1, ("C", 2020): 0,
        ("D", 2018): 1, ("D", 2019): 0,
        ("E", 2018): 0,
        ("F", 2019): 0, ("F", 2020): 1,
    }
    assert _labels_dict(lab) == expected
    pops = dict(zip(zip(lab["household_id"], lab["year"]), lab["population"]))
    assert pops[("A", 2018)] == "exited" and pops[("C", 2018)] == "non_registered"
    assert pops[("D", 2019)] == "non_registered" and pops[("B", 2019)] == "exited"
    assert lab["label"].notna().all() and lab["year"].max() == 2020
    # the continuous outcome of A at 2019 is ln(income 2020 / line 2020)
    a = lab[(lab.household_id == "A") & (lab.year == 2019)]["outcome"].iloc[0]
    assert a == pytest.approx(math.log((ML(2020) - 1) / ML(2020)))
    # population filters
    ex = risk.make_labels(panel, hh, POL, horizon=1, population="exited")
    assert set(ex["household_id"]) == {"A", "B", "E", "F"}
    nr = risk.make_labels(panel, hh, POL, horizon=1, population="non_registered")
    assert _labels_dict(nr) == {k: v for k, v in expected.items() if k[0] in "CD"}


def test_labels_horizon_line_and_guarantee_options():
    panel, hh, _ = hand_panel()
    lab2 = risk.make_labels(panel, hh, POL, horizon=2, population="both")
    # window t+1..t+2 must lie in the panel (t <= 2019); E's windows contain the missing 2020;
    # F 2018: {2019 unknown, 2020 no event} -> unknown, dropped; F 2019: {2020 no, 2021 yes} -> 1.
    assert _labels_dict(lab2) == {
        ("A", 2018): 1, ("A", 2019): 1, ("B", 2019): 1, ("C", 2018): 1, ("C", 2019): 1,
        ("D", 2018): 1, ("D", 2019): 0, ("F", 2019): 1,
    }
    # income-only label: B's housing failure no longer counts
    inc_only = _labels_dict(risk.make_labels(panel, hh, POL, horizon=1, guarantees=[], population="both"))
    assert inc_only[("B", 2020)] == 0 and inc_only[("A", 2019)] == 1
    # poverty line: A's 2020 income (monitoring line - 1) is above the poverty line
    pov = _labels_dict(risk.make_labels(panel, hh, POL, horizon=1, line="poverty", population="both"))
    assert ML(2020) - 1 >= PL(2020)
    assert pov[("A", 2019)] == 0 and pov[("F", 2020)] == 1


def test_label_defaults_come_from_config(tmp_path):
    panel, hh, _ = hand_panel()
    cfg = POL.risk
    default = risk.make_labels(panel, hh, POL, population="both")
    explicit = risk.make_labels(panel, hh, POL, population="both", line=cfg.label_line,
                                guarantees=cfg.label_guarantees, horizon=cfg.horizon)
    pd.testing.assert_frame_equal(default, explicit)
    f = tmp_path / "p.toml"
    f.write_text("[risk]\nhorizon = 2\n", encoding="utf-8")
    over = risk.make_labels(panel, hh, policy=load_policy(f), population="both")
    assert _labels_dict(over) == _labels_dict(risk.make_labels(panel, hh, POL, horizon=2, population="both"))
    assert over.attrs["definition"]["horizon"] == 2


# ---------------------------------------------------------------------------------------------
# 2. features
# ---------------------------------------------------------------------------------------------
def test_features_hand_values():
    panel, hh, mem = hand_panel()
    f = risk.build_features(panel, hh, mem, POL).set_index(["household_id", "year"])
    a = f.loc["A"]
    assert a.loc[2018, "log_income_ratio"] == pytest.approx(math.log(1.2))
    assert a.loc[2018, "household_size"] == 2 and a.loc[2018, "n_able"] == 1 and not a.loc[2018, "no_labour"]
    assert a.loc[2018, "chronic_illness"] and a.loc[2018, "school_age_children"] == 1
    # child born 2008: under 16 through 2023 -> 1 dependant of 2; head of working age
    assert a.loc[2018, "dependent_share"] == pytest.approx(0.5) and a.loc[2018, "dependency_ratio"] == 1.0
    # disability onset recorded in 2019: absent in 2018, present from 2019 on
    assert list(a["disability"]) == [False, True, True, True]
    assert list(a["years_since_exit"]) == [0, 1, 2, 3] and a["exited"].all()
    assert a.loc[2019, "income_growth"] == pytest.approx(math.log(ML(2019) * 1.1) - math.log(ML(2018) * 1.2))
    # D is registered (dibao) only from 2020: the poverty type is invisible before
    d = f.loc["D"]
    assert list(d["type_dibao"]) == [False, False, True, True]
    assert list(d["registered"]) == [False, False, True, True] and d.loc[2018, "no_labour"]
    assert d["disability"].all()  # disabled at registration
    b = f.loc["B"]
    assert list(b["poor"]) == [True, False, False, False] and b.loc[2021, "fail_housing"]
    assert b.loc[2021, "n_guarantee_fail"] == 1
    # village context: mean log ratio of the six households at t (E has no 2020 row)
    v = f.xs(2020, level="year")
    assert v["village_mean_log_income_ratio"].iloc[0] == pytest.approx(v["log_income_ratio"].mean())


def _perturb_future(panel: pd.DataFrame, hh: pd.DataFrame, t0: int, seed: int = 0):
    """Change every panel value of years > t0 and every register event dated after t0."""
    rng = np.random.default_rng(seed)
    p = panel.copy()
    fut = (p["year"] > t0).to_numpy()
    n = int(fut.sum())
    for c in p.columns:
        if c in ("household_id", "year", "county_code"):
            continue
        s = p[c]
        if pd.api.types.is_bool_dtype(s):
            p.loc[fut, c] = rng.random(n) < 0.5
        elif pd.api.types.is_numeric_dtype(s):
            p.loc[fut, c] = s[fut].to_numpy() * rng.uniform(0.2, 3.0, n) + rng.normal(0, 100, n)
        else:
            p.loc[fut, c] = rng.permutation(s[fut].to_numpy())
    h = hh.copy()
    late_exit = (h["exit_year"] > t0).fillna(False).to_numpy()
    h.loc[late_exit, "exit_year"] = pd.array(
        np.where(rng.random(late_exit.sum()) < 0.5, t0 + 1 + rng.integers(0, 5, late_exit.sum()), -1), dtype="Int64")
    h.loc[h["exit_year"] == -1, "exit_year"] = pd.NA
    late_reg = (h["registration_year"] > t0).fillna(False).to_numpy()
    h.loc[late_reg, "registration_year"] = pd.array(t0 + 1 + rng.integers(0, 3, late_reg.sum()), dtype="Int64")
    h.loc[late_reg, "poverty_type"] = rng.choice(["general", "dibao", "tekun"], late_reg.sum())
    return p, h


@pytest.mark.parametrize("t0", [2016, 2019])
def test_no_feature_uses_later_information(demo, demo_features, t0):
    """Perturbing every value of years > t0 (and register events after t0), or dropping those
    years altogether, leaves every feature of every household at t <= t0 unchanged."""
    panel, hh, mem = demo["panel"], demo["households"], demo["members"]
    base = demo_features[demo_features["year"] <= t0].reset_index(drop=True)
    p2, h2 = _perturb_future(panel, hh, t0)
    assert not p2[p2.year > t0]["income_per_capita"].equals(panel[panel.year > t0]["income_per_capita"])
    pert = risk.build_features(p2, h2, mem, POL)
    pd.testing.assert_frame_equal(pert[pert["year"] <= t0].reset_index(drop=True), base)
    trunc = risk.build_features(panel[panel["year"] <= t0], h2, mem, POL)
    pd.testing.assert_frame_equal(trunc.reset_index(drop=True), base)


def test_feature_columns_exclude_ids_and_outcomes(demo_features):
    cols = risk.feature_columns(demo_features.assign(label=1, outcome=0.0))
    assert not {"household_id", "year", "county_code", "village_code", "label", "outcome",
                "monitoring_line"} & set(cols)
    assert set(risk.CORE_FEATURES) <= set(cols)


# ---------------------------------------------------------------------------------------------
# 3. models: interface
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def train_test(demo, demo_features):
    lab = risk.make_labels(demo["panel"], demo["households"], POL, population="exited")
    d = lab.merge(demo_features, on=["household_id", "year"])
    return d[d.year.between(2016, 2020)].reset_index(drop=True), d[d.year == 2021].reset_index(drop=True)


@pytest.mark.parametrize("model", [risk.PolicyRuleModel(), risk.LogitModel(county_effects=True),
                                   risk.BoostingModel(max_iter=40), risk.VulnerabilityModel()],
                         ids=lambda m: type(m).__name__)
def test_model_interface(model, train_test):
    tr, te = train_test
    m = clone(model)
    assert m.get_params() == model.get_params()
    kw = {"outcome": tr["outcome"]} if isinstance(m, risk.VulnerabilityModel) else {}
    assert m.fit(tr, tr["label"], **kw) is m
    p = m.predict_proba(te)
    assert p.shape == (len(te), 2)
    assert np.all((p >= 0) & (p <= 1)) and np.allclose(p.sum(axis=1), 1.0)
    assert list(m.classes_) == [0, 1] and set(np.unique(m.predict(te))) <= {0, 1}
    assert risk.roc_auc(te["label"], p[:, 1]) > 0.55  # better than chance out of time


def test_rule_model_flags_and_ranks():
    X = pd.DataFrame({"log_income_ratio": [-0.5, -0.1, -0.5, 0.3, 0.1],
                      "shock_any": [True, False, False, False, True], "n_guarantee_fail": [0, 1, 0, 0, 0]})
    rule = risk.PolicyRuleModel().fit(X, [1, 0, 0, 0, 1])
    assert list(rule.flag(X)) == [True, True, False, False, False]
    s = rule.predict_proba(X)[:, 1]
    # flagged first, then by income: -0.5 flagged > -0.1 flagged > -0.5 unflagged > 0.1 > 0.3
    assert list(np.argsort(-s)) == [0, 1, 2, 4, 3]


def test_logit_effects_table(train_test):
    tr, _ = train_test
    m = risk.LogitModel().fit(tr, tr["label"])
    e = m.effects()
    assert "exited" in m.dropped_features_  # constant among exited households
    assert {"coef", "se", "p_value", "ci_low", "ci_high", "odds_ratio", "or_ci_low", "or_ci_high"} <= set(e.columns)
    assert np.allclose(e["odds_ratio"], np.exp(e["coef"]))
    assert (e["ci_low"] < e["coef"]).all() and (e["coef"] < e["ci_high"]).all()
    assert m.n_clusters_ == tr["village_code"].nunique()


def test_vulnerability_cross_section_form(train_test):
    tr, te = train_test
    m = risk.VulnerabilityModel().fit(tr, tr["label"])  # no outcome: classical CJS on current income
    assert m.form_ == "cross_section" and "log_income_ratio" not in m.features_
    mu, s2 = m.mean_variance(te)
    # vulnerability = P(ln y < ln z) = Phi((0 - mu) / sigma) on the log-ratio scale
    assert (s2 > 0).all() and np.allclose(m.predict_proba(te)[:, 1], norm.cdf(-mu / np.sqrt(s2)))


# ---------------------------------------------------------------------------------------------
# 4. metrics worked by hand
# ---------------------------------------------------------------------------------------------
def test_metrics_by_hand():
    y = [0, 0, 1, 1]
    s = [0.1, 0.4, 0.35, 0.8]
    # pairs (pos, neg): (0.35,0.1) ok, (0.35,0.4) wrong, (0.8,0.1) ok, (0.8,0.4) ok -> 3/4
    assert risk.roc_auc(y, s) == pytest.approx(0.75)
    # ranked: 0.8(+) P=1 R=.5; 0.4(-); 0.35(+) P=2/3 R=1 -> AP = .5*1 + .5*2/3
    assert risk.pr_auc(y, s) == pytest.approx(0.5 + 1 / 3)
    # (0.01 + 0.16 + 0.4225 + 0.04) / 4
    assert risk.brier(y, s) == pytest.approx(0.158125)
    assert math.isnan(risk.roc_auc([0, 0], [0.1, 0.2]))
    cal = risk.calibration_table([0, 0, 1, 1], [0.1, 0.2, 0.7, 0.9], n_bins=2, strategy="uniform")
    assert list(cal["n"]) == [2, 2] and list(cal["observed_rate"]) == [0, 1]
    assert list(cal["mean_predicted"]) == pytest.approx([0.15, 0.8])


def test_capture_at_k_two_villages():
    df = pd.DataFrame({"village_code": ["a", "a", "a", "b", "b"], "score": [0.9, 0.8, 0.1, 0.7, 0.2],
                       "label": [1, 0, 1, 0, 1]})
    # k=1: lists a:0.9(+), b:0.7(-) -> 1 of 3 positives captured, 1 of 2 listed
    r1 = risk.capture_at_k(df, "score", k=1)
    assert r1["recall_at_k"] == pytest.approx(1 / 3) and r1["precision_at_k"] == pytest.approx(0.5)
    # k=2: a:0.9(+),0.8(-); b:0.7(-),0.2(+) -> 2 of 3, 2 of 4
    r2 = risk.capture_at_k(df, "score", k=2)
    assert r2["recall_at_k"] == pytest.approx(2 / 3) and r2["precision_at_k"] == pytest.approx(0.5)
    assert r2["n_listed"] == 4
    cur = risk.capture_curve(df.assign(rule=[0.1, 0.2, 0.9, 0.8, 0.1]), ["score", "rule"], ks=[1, 2],
                             baseline="rule")
    # rule k=1: a:0.9 (row 3, +), b:0.8 (-) -> 1/3; k=2 adds a:0.2(-), b:0.1(+) -> 2/3
    got = cur.set_index(["model", "k"])
    assert got.loc[("rule", 1), "recall_at_k"] == pytest.approx(1 / 3)
    assert got.loc[("score", 2), "gain"] == pytest.approx(0.0)


# ---------------------------------------------------------------------------------------------
# 5. known truth on the synthetic province
# ---------------------------------------------------------------------------------------------
def test_logit_recovers_true_effects(demo, demo_features):
    """The income-only label of exited and non-registered households is generated by a logit
    with known coefficients (+ a county shift): the logit with the generating features and
    county fixed effects must cover the true effects of chronic illness and disability."""
    truth = synth.TRUE_PARAMS["risk_model"]["coefficients"]
    lab = risk.make_labels(demo["panel"], demo["households"], POL, population="both", guarantees=[],
                           line="monitoring", horizon=1)
    d = lab.merge(demo_features, on=["household_id", "year"])
    m = risk.LogitModel(features=risk.CORE_FEATURES, county_effects=True).fit(d, d["label"])
    e = m.effects()
    for term in ("chronic_illness", "disability"):
        lo, hi = e.loc[term, "ci_low"], e.loc[term, "ci_high"]
        assert lo < truth[term] < hi, f"{term}: true {truth[term]} not in [{lo:.3f}, {hi:.3f}]"
        assert hi - lo < 0.25  # and the interval is informative


def test_best_model_beats_rule_out_of_time(demo, demo_features):
    models = {"rule": risk.PolicyRuleModel(), "logit": risk.LogitModel(county_effects=True),
              "boosting": risk.BoostingModel(max_iter=80)}
    res = risk.rolling_origin(demo["panel"], demo["households"], demo["members"], models, [2021, 2023],
                              policy=POL, population="exited", k=5)
    assert set(res.metrics["test_year"]) == {2021, 2023}
    met = res.metrics.set_index(["test_year", "model"])
    for ty in (2021, 2023):
        best = max(met.loc[(ty, "logit"), "recall_at_k"], met.loc[(ty, "boosting"), "recall_at_k"])
        assert best > met.loc[(ty, "rule"), "recall_at_k"]
        assert met.loc[(ty, "boosting"), "auc"] < 0.99  # an AUC near 1 would mean a leaked outcome
        # training years end h before the test year
        assert met.loc[(ty, "logit"), "train_end"] == ty - 1
    cur = res.curve[res.curve.model == "logit"]
    assert (cur["gain"] > 0).mean() >= 0.8  # beats the rule at most list sizes
    assert {"n_counties", "sd", "iqr"} <= set(res.stability.columns)
    assert res.by_county["county_code"].nunique() == demo["households"]["county_code"].nunique()


# ---------------------------------------------------------------------------------------------
# 6. errors
# ---------------------------------------------------------------------------------------------
def test_errors():
    panel, hh, mem = hand_panel()
    with pytest.raises(RiskModelError, match="outside the panel"):
        risk.out_of_time(panel, hh, mem, [risk.LogitModel()], [2018], 2030, policy=POL)
    with pytest.raises(RiskModelError, match="beyond the panel"):
        risk.out_of_time(panel, hh, mem, [risk.LogitModel()], [2018], 2021, policy=POL)
    with pytest.raises(RiskModelError, match="end the training years"):
        risk.out_of_time(panel, hh, mem, [risk.LogitModel()], [2018, 2019], 2019, policy=POL)
    lab = risk.make_labels(panel, hh, POL, population="exited").assign(label=0)
    with pytest.raises(RiskModelError, match="no positive case"):
        risk.out_of_time(panel, hh, mem, [risk.LogitModel()], [2018], 2019, labels=lab, policy=POL)
    with pytest.raises(RiskModelError, match="all 0"):
        risk.LogitModel().fit(pd.DataFrame({c: [0.0, 1.0] for c in risk.CORE_FEATURES}), [0, 0])
    # a county with no exited households
    other = pd.concat([panel, pd.DataFrame([_row("G", y, ML(y) * 1.2, county=C2) for y in range(2018, 2022)])],
                      ignore_index=True)
    hh2 = pd.concat([hh, pd.DataFrame({"household_id": ["G"], "village_code": [C2 + "001001"], "county_code": [C2],
                                       "household_size": [1], "registered": [False], "poverty_type": [None],
                                       "registration_year": pd.array([None], dtype="Int64"),
                                       "exit_year": pd.array([None], dtype="Int64")})], ignore_index=True)
    with pytest.raises(RiskModelError, match=f"{C2}.*no exited households"):
        risk.make_labels(other, hh2, POL, population="exited", counties=[C2])
    with pytest.raises(RiskModelError, match="no exited households"):
        risk.out_of_time(other, hh2, mem, [risk.LogitModel()], [2018], 2019, counties=[C2], policy=POL)
    with pytest.raises(RiskModelError, match="has exited households"):
        risk.make_labels(other[other.county_code == C2], hh2, POL, population="exited")
    # still fine for falling-into-poverty labels of that county
    assert len(risk.make_labels(other, hh2, POL, population="non_registered", counties=[C2])) == 3
    with pytest.raises(RiskModelError, match="no row in the households table"):
        risk.make_labels(panel, hh[hh.household_id != "A"], POL)


# ---------------------------------------------------------------------------------------------
# 7. early warning, closure, watch list
# ---------------------------------------------------------------------------------------------
def test_early_warning_levels_and_reasons():
    red, yel = POL.risk.red_threshold, POL.risk.yellow_threshold
    s = pd.DataFrame({
        "household_id": list("abcde"), "year": 2021,
        "score": [red, np.nextafter(red, 0), yel, np.nextafter(yel, 0), 0.0],
        "below_monitoring_line": [True, False, False, False, False],
        "chronic_illness": [True, False, False, False, False],
        "shock_disaster": [True, False, False, False, False],
        "no_labour": [False, True, False, False, False],
        "fail_housing": [False, True, False, False, False],
        "fail_education": [False, False, True, False, False],
        "shock_job_loss": [False, False, False, True, False],
    })
    w = risk.early_warning(s, POL)
    assert list(w["level"]) == ["red", "yellow", "yellow", "green", "green"]
    assert w.loc[0, "reasons"] == "illness;disaster;low_income" and w.loc[0, "main_reason"] == "disaster"
    assert w.loc[1, "reasons"] == "lack_labour;housing" and w.loc[1, "main_reason"] == "lack_labour"
    assert w.loc[2, "main_reason"] == "schooling" and w.loc[3, "main_reason"] == "unstable_employment"
    assert w.loc[4, "reasons"] == "" and pd.isna(w.loc[4, "main_reason"]) and w.loc[4, "n_reasons"] == 0
    assert set(risk.REASON_CATEGORIES) <= set(dictionary.codes("risk_category"))


def test_case_closure_by_hand():
    panel, _, _ = hand_panel()
    k = POL.risk.closure_periods
    cases = pd.DataFrame({"household_id": ["A", "C", "B"], "year": [2018, 2018, 2019]})
    c = risk.case_closure(panel, POL, cases=cases, periods=2).set_index("household_id")
    # A: ok 2018, 2019, 2020 below, 2021 ok -> runs after 2018: {2019} then {2021}: never 2 in a row
    assert c.loc["A", "status"] == "open" and pd.isna(c.loc["A", "closure_year"])
    # C: 2019 == line (not below) ok, 2020 below, 2021 ok -> open
    assert c.loc["C", "status"] == "open"
    # B: 2020 ok, 2021 housing fails -> open; with one period it closes in 2020
    assert c.loc["B", "status"] == "open"
    c1 = risk.case_closure(panel, POL, cases=cases, periods=1).set_index("household_id")
    assert c1.loc["A", "closure_year"] == 2019 and c1.loc["B", "closure_year"] == 2020
    c0 = risk.case_closure(panel, POL, cases=pd.DataFrame({"household_id": ["E"], "year": [2018]}), periods=2)
    assert c0.loc[0, "status"] == "open"  # 2019 ok, 2020 missing breaks the run, 2021 ok
    dflt = risk.case_closure(panel, POL, cases=cases)
    assert (dflt["status"] == risk.case_closure(panel, POL, cases=cases, periods=k)["status"]).all()


def test_watchlist_masks_and_excel(tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    panel, hh, mem = hand_panel()
    feats = risk.build_features(panel, hh, mem, POL, years=[2020])
    red = POL.risk.red_threshold
    scores = feats[["household_id", "year"]].assign(score=np.linspace(red, 0, len(feats)))
    w = risk.early_warning(scores, POL, features=feats)
    wl = risk.watchlist(w, hh, mem, levels=("red", "yellow"))
    assert len(wl) >= 1 and (wl["warning_level"].isin(["red", "yellow"])).all()
    a = wl[wl.household_id == "A"].iloc[0]
    assert a["head_name_masked"] == "张*丰" and a["head_id_number_masked"] == "610602**********34"
    assert list(wl["rank_in_village"]) == list(range(1, len(wl) + 1))
    path = report_risk.write_watchlist_xlsx(wl, tmp_path / "wl.xlsx", lang="zh")
    wb = openpyxl.load_workbook(path)
    # one sheet per county named 县名（代码）, then the summary and explanation sheets of a 台账
    assert wb.sheetnames == ["宝塔区（610602）", "汇总", "说明"]
    ws = wb["宝塔区（610602）"]
    header = [c.value for c in ws[1]]
    assert "户编号" in header and "村代码" in header and "预警等级" in header
    text = " ".join(str(c.value) for row in ws.iter_rows() for c in row)
    assert not re.search(r"\d{17}[\dX]", text) and "张三丰" not in text
    assert "红色预警" in text
    with pytest.raises(RiskModelError, match="full ID"):
        report_risk.write_watchlist_xlsx(wl.assign(household_id="610602198001011234"), tmp_path / "bad.xlsx")


def test_watchlist_writes_through_the_shared_ledger_writer(tmp_path, monkeypatch):
    """One masked-Excel writer (report.common.write_ledger_xlsx) with one full-ID check."""
    pytest.importorskip("openpyxl")

    panel, hh, mem = hand_panel()
    feats = risk.build_features(panel, hh, mem, POL, years=[2020])
    scores = feats[["household_id", "year"]].assign(score=1.0)
    wl = risk.watchlist(risk.early_warning(scores, POL, features=feats), hh, mem)
    calls = []
    real = report_risk.write_ledger_xlsx
    monkeypatch.setattr(report_risk, "write_ledger_xlsx",
                        lambda sheets, path, **kw: calls.append(sheets) or real(sheets, path, **kw))
    report_risk.write_watchlist_xlsx(wl, tmp_path / "wl.xlsx", lang="en")
    assert len(calls) == 1 and list(calls[0]) == ["宝塔区 (610602)"]
    got = pd.read_excel(tmp_path / "wl.xlsx", sheet_name="宝塔区 (610602)", dtype=str, engine="openpyxl")
    assert len(got) == len(wl) and got.columns[0] == label("county_code", "en")


# ---------------------------------------------------------------------------------------------
# 8. the whole province: sufficient statistics, the out-of-core store, no leakage
# ---------------------------------------------------------------------------------------------
def test_cell_logit_equals_statsmodels_on_collapsed_rows():
    """Cells with frequency weights give statsmodels' row-level estimates and village-clustered SEs."""
    sm = pytest.importorskip("statsmodels.api")
    rng = np.random.default_rng(7)
    n, n_vil = 6000, 120
    vil = rng.integers(0, n_vil, n)
    county = vil % 3  # villages nest in counties
    X = np.column_stack([rng.integers(0, 2, n), rng.integers(0, 4, n) / 4, rng.integers(0, 2, n)]).astype(float)
    eta = -1.0 + X @ [0.8, -1.2, 0.3] + np.array([0.0, 0.4, -0.3])[county] + rng.normal(0, 0.5, n_vil)[vil]
    y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int)
    D = np.column_stack([(county == c).astype(float) for c in (1, 2)])
    full = sm.Logit(y, np.column_stack([np.ones(n), X, D])).fit(
        method="newton", disp=0, cov_type="cluster", cov_kwds={"groups": vil})
    Xc, nc, kc, cc, lc = cells.collapse_cells(X, y, vil, county)
    assert len(Xc) < n / 3 and nc.sum() == n and kc.sum() == y.sum()
    fit = cells.fit_logit_cells(Xc, nc, kc, cc, features=["a", "b", "c"], level=lc, levels=["c0", "c1", "c2"])
    np.testing.assert_allclose(fit.params.to_numpy(), full.params, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(fit.bse.to_numpy(), full.bse, rtol=1e-9)
    assert fit.n_obs == n and fit.n_clusters == n_vil
    assert list(fit.params.index) == ["const", "a", "b", "c", "county[c1]", "county[c2]"]


def test_cell_logit_model_equals_logit_model(train_test):
    """The province's logit (cells) against statsmodels' on the demo rows: same coefficients,
    clustered SEs, p-values and predictions, county effects included."""
    tr, te = train_test
    a = risk.LogitModel(county_effects=True).fit(tr, tr["label"])
    b = cells.CellLogitModel(county_effects=True).fit(tr, tr["label"])
    ea, eb = a.effects(include_fixed_effects=True), b.effects(include_fixed_effects=True)
    assert list(ea.index) == list(eb.index) and b.dropped_features_ == a.dropped_features_ == ["exited"]
    for col in ("coef", "se", "p_value", "ci_low", "ci_high"):
        np.testing.assert_allclose(eb[col], ea[col], rtol=1e-7, atol=1e-10, err_msg=col)
    np.testing.assert_allclose(b.predict_proba(te), a.predict_proba(te), atol=1e-10)
    assert b.n_clusters_ == a.n_clusters_ and b.n_obs_ == len(tr)


@pytest.fixture(scope="module")
def three_counties(demo):
    return sorted(demo["households"]["county_code"].unique())[:3]


def test_store_equals_in_memory_features_and_labels(demo, demo_dir, three_counties, tmp_path):
    """Features and labels built county by county into the Parquet store equal those of the whole
    panel in memory (every column, the village and county context included); DuckDB's cells hold
    every labelled row."""
    cs = three_counties
    st = store.build_store(demo_dir, tmp_path / "s", POL, cs, workers=1)
    got = pd.read_parquet(tmp_path / "s" / "features").sort_values(["household_id", "year"], ignore_index=True)
    sel = {t: d[d["county_code"].isin(cs)] for t, d in demo.items() if t != "members"}
    mem = demo["members"][demo["members"]["household_id"].isin(sel["households"]["household_id"])]
    f = risk.build_features(sel["panel"], sel["households"], mem, POL)
    exp = f[f["exited"]].reset_index(drop=True)
    assert len(got) == len(exp) == st.summary["store_rows"].sum() > 1000
    pd.testing.assert_frame_equal(got[list(exp.columns)], exp, check_exact=False, rtol=1e-12, atol=1e-12)
    lab = risk.make_labels(sel["panel"], sel["households"], POL, population="exited")
    gl = got.dropna(subset=["label"]).reset_index(drop=True)
    assert gl[["household_id", "year"]].equals(lab[["household_id", "year"]])
    assert (gl["label"].to_numpy() == lab["label"].to_numpy()).all()
    np.testing.assert_allclose(gl["outcome"], lab["outcome"], rtol=1e-12)
    con = large.connect(threads=1)
    c = large.logit_cells(con, st.features_glob, range(2015, 2024), list(risk.CORE_FEATURES))
    assert c["n"].sum() == (lab["year"] < 2024).sum() and c["k"].sum() == lab.loc[lab["year"] < 2024, "label"].sum()


def _write_dataset(tabs: dict[str, pd.DataFrame], out):
    for t, d in tabs.items():
        (out / t).mkdir(parents=True, exist_ok=True)
        for cc, part in d.groupby("county_code"):
            part.to_parquet(out / t / f"{cc}.parquet", index=False)
    return out


def test_store_uses_no_later_information(demo, three_counties, tmp_path):
    """Perturbing every value of years > t0 (and register events after t0) leaves every stored
    feature of t <= t0 unchanged: the store adds no leak of its own (the context included)."""
    t0, cs = 2019, three_counties[:2]
    tabs = {t: d[d["county_code"].isin(cs)] if "county_code" in d.columns else d for t, d in demo.items()}
    tabs["members"] = demo["members"][demo["members"]["household_id"].isin(tabs["households"]["household_id"])]
    tabs["members"] = tabs["members"].assign(county_code=tabs["members"]["household_id"].str[:6])
    p2, h2 = _perturb_future(tabs["panel"], tabs["households"], t0)
    a = _write_dataset(tabs, tmp_path / "a")
    b = _write_dataset({**tabs, "panel": p2, "households": h2}, tmp_path / "b")
    keep = lambda s: s[s["year"] <= t0].drop(columns=["label", "outcome", "u"]).reset_index(drop=True)  # noqa: E731
    sa, sb = (store.build_store(d, d / "store", POL, workers=1) for d in (a, b))
    fa, fb = (keep(pd.read_parquet(s.path / "features")) for s in (sa, sb))
    assert len(fa) > 500
    pd.testing.assert_frame_equal(fa, fb)


def test_province_run_matches_out_of_time_and_feeds_the_rollup(small_province, tmp_path):
    """run_province_risk without sampling reproduces out_of_time's test-year metrics for every
    model (the logit via cells, boosting and vulnerability from the store); training ends h years
    before the test year; the province roll-up reads its red-flag shares."""
    from evalkit.workflows.monitoring import run_province_risk
    from evalkit.workflows.province import collect_risk_shares

    out = run_province_risk(small_province, tmp_path / "r", policy=POL, seed=0, sample_rows=None,
                            calibration_rows=None, workers=1, threads=1)
    res = json.loads((tmp_path / "r" / "results.json").read_text(encoding="utf-8"))
    h, ty = POL.risk.horizon, out["test_year"]
    assert res["train_years"][-1] + h <= ty and res["selection_year"] < ty and res["best_model"] in out["metrics"]
    tabs = {t: pd.read_parquet(small_province / t) for t in ("panel", "households", "members")}
    vr = risk.out_of_time(tabs["panel"], tabs["households"], tabs["members"], None, res["train_years"], ty,
                          policy=POL)
    exp = vr.metrics.set_index("model")
    for m in ("rule", "logit", "boosting", "vulnerability"):
        assert out["metrics"][m]["roc_auc"] == pytest.approx(exp.loc[m, "auc"], rel=1e-9), m
        assert out["metrics"][m]["recall_at_k"] == pytest.approx(exp.loc[m, "recall_at_k"], rel=1e-9), m
    shares, note = collect_risk_shares(tmp_path / "r", small_province)
    assert note is None and len(shares) == 3 and shares["red_share"].between(0, 1).all()
    assert set(out["timings"]) >= {"store_s", "validation_s", "total_s"}


# ---------------------------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """The fits here are small: with shared cores, idle OpenMP / BLAS threads spin and made this
    file several times slower under load, so run single-threaded (results are identical)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory):
    """Directory of the demo province at scale 0.1 (see :func:`demo`)."""
    out = tmp_path_factory.mktemp("risk_demo")
    synth.generate("demo", seed=1, out=out, field_survey=False, scale=0.1, policy=POL)
    return out


@pytest.fixture(scope="session")
def demo(demo_dir):
    """The demo province at scale 0.1 (about 35,000 households; ~2 s to generate).

    Scale and seed are fixed here, not taken from the profile default: the known-truth test is a
    95% interval, so a given dataset misses with probability ~5% per coefficient. Coverage was
    checked across seeds 1-5 at scale 0.1 and seeds 1-3 at scale 0.3 (one miss: seed 1 at 0.3,
    disability 0.724 [0.703, 0.746], z = 2.2) -- as expected of a 95% interval.
    """
    return {t: pd.read_parquet(demo_dir / t) for t in ("panel", "households", "members")}


@pytest.fixture(scope="session")
def demo_features(demo):
    return risk.build_features(demo["panel"], demo["households"], demo["members"], POL)
