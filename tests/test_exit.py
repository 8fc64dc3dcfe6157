"""Tests of evalkit.assessment: flags, the four criteria against R's survey package, verdicts, bad input,
and the operating characteristic."""
from __future__ import annotations

import copy
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from evalkit.assessment import (
    CRITERIA,
    CriteriaResult,
    assess_sample,
    county_context,
    criterion_flags,
    decision,
    estimate_criteria,
    operating_characteristic,
    register_totals,
    replicate_criteria,
    stack_samples,
    true_rates,
    verdicts,
)
from evalkit.config import Policy, load_policy
from evalkit.errors import ExitAssessmentError
from evalkit.report.exit import plot_operating_characteristic
from evalkit.survey import SampleDesign, draw_sample, fill_survey, survey_from_truth, truth_index
from evalkit.text import render_notes
from frames import frame_county

FIX = Path(__file__).parent / "fixtures_r"
POLICY = load_policy()


def estimate(*args, **kw) -> CriteriaResult:
    """estimate_criteria under the base policy unless a test gives its own."""
    kw.setdefault("policy", POLICY)
    return estimate_criteria(*args, **kw)
IDS = {"household_id": str, "village_code": str, "county_code": str}
GUAR = ["food_clothing_ok", "education_ok", "medical_ok", "housing_ok", "water_ok"]


# ---------------------------------------------------------------------------------------------
# R cross-check (tests/fixtures_r: fixture.csv + register.csv -> crosscheck.R -> output)
# ---------------------------------------------------------------------------------------------
def _fixture():
    fs = pd.read_csv(FIX / "fixture.csv", dtype=IDS)
    reg = pd.read_csv(FIX / "register.csv", dtype=IDS)
    for c in ("registration_year", "exit_year"):
        reg[c] = reg[c].astype("Int64")
    return fs, reg


REGISTERS: list[dict] = []


def _r_output() -> tuple[dict, dict, dict, dict]:
    crit, cov, register, kg = {}, {}, {}, {}
    for line in (FIX / "crosscheck_R_output.txt").read_text().splitlines():
        kv = dict(re.findall(r"(\w+)=(\S+)", line))
        if line.startswith("kg "):  # svyciprop(method="beta"); NaN bounds where the variance is 0
            kg[(kv["design"], kv["criterion"])] = {k: float(kv[k]) for k in ("est", "se", "lci", "uci", "df",
                                                                             "n", "neff")}
        elif line.startswith("register"):  # the first one is fixture.csv's; later ones the fpc cases'
            REGISTERS.append({k: float(v) for k, v in kv.items()})
            register = REGISTERS[0]
        elif "criterion" in kv:
            crit[(kv["design"], kv["criterion"])] = {k: float(kv[k]) for k in ("est", "se", "lci", "uci", "df")}
        elif line.startswith("design=") and " cov " in line:
            cov[kv["design"]] = {k: float(v) for k, v in kv.items() if k != "design"}
    return crit, cov, register, kg


R_CRIT, R_COV, R_REGISTER, R_KG = _r_output()
R_RURAL = 5000  # rural population used by crosscheck.R
R_CASES = {"full": None, "singleton_certainty": "certainty", "singleton_adjust": "adjust",
           "singleton_average": "average", "near_zero": None, "zero": None}
RATES = ("wrongly_exited_rate", "missed_poor_rate", "approval_rate")


def _singleton_subset(fs: pd.DataFrame) -> pd.DataFrame:
    # as in crosscheck.R: keep only the first village of the deep_poverty_village stratum
    first = sorted(fs.loc[fs["stratum"] == "deep_poverty_village", "village_code"].unique())[0]
    return fs[(fs["stratum"] != "deep_poverty_village") | (fs["village_code"] == first)]


def _rare(fs: pd.DataFrame, keep: int) -> pd.DataFrame:
    # as rare() in crosscheck.R: every failing exited (non-registered) household except the first
    # `keep` in household_id order is made to meet the standard (income 10 x line, guarantees hold)
    fs = fs.copy()
    line = 2995
    meets = (fs["surveyed_income_per_capita"] > line) & fs[GUAR].all(axis=1)
    for hs in ("exited", "non_registered"):
        failing = sorted(fs.loc[(fs["hh_stratum"] == hs) & ~meets, "household_id"])
        fix = fs["household_id"].isin(failing[keep:])
        fs.loc[fix, "surveyed_income_per_capita"] = 10 * line
        fs.loc[fix, GUAR] = True
    return fs


def _r_case(case: str) -> pd.DataFrame:
    fs, _ = _fixture()
    if case.startswith("singleton"):
        return _singleton_subset(fs)
    return {"full": fs, "near_zero": _rare(fs, 1), "zero": _rare(fs, 0)}[case]


COUNTIES_R = pd.DataFrame({"county_code": ["610102"], "rural_population": [R_RURAL]})


def test_r_output_parsed():
    assert len(R_CRIT) == 40 and len(R_COV) == 10 and len(R_KG) == 27 and len(REGISTERS) == 4
    assert load_policy().poverty_line(2018) == 2995  # the line hard-coded in crosscheck.R
    # R's svyciprop(method="beta") has no interval when the variance is 0
    assert np.isnan(R_KG[("zero", "wrongly_exited_rate")]["uci"])


def test_register_totals_match_r():
    _, reg = _fixture()
    tot = register_totals(reg, "610102", 2018, pd.DataFrame({"county_code": ["610102"], "rural_population": [R_RURAL]}))
    assert (tot["remaining_poor_persons"], tot["exited_persons"], tot["non_registered_persons"],
            tot["rural_population"]) == (R_REGISTER["P"], R_REGISTER["E"], R_REGISTER["N"], R_REGISTER["R"])
    assert tot["rural_population_source"] == "counties.rural_population"


@pytest.mark.parametrize("case", list(R_CASES))
def test_agrees_with_r_survey(case):
    fs, reg = _fixture()
    fs = _r_case(case)
    res = estimate(fs, reg, "610102", 2018, singleton=R_CASES[case], counties=COUNTIES_R, ci_method="wald")
    assert res.ci_method == dict.fromkeys(CRITERIA, "wald")
    for c in CRITERIA:
        r = R_CRIT[(case, c)]
        for f in ("est", "se", "lci", "uci", "df"):
            assert res.table.loc[c, f] == pytest.approx(r[f], rel=1e-6, abs=1e-15), (case, c, f)
    V = np.array(res.covariance)
    assert res.covariance_keys == ["wrongly_exited_rate", "missed_poor_rate", "approval_rate"]
    rc = R_COV[case]
    want = np.array([[rc["we_we"], rc["we_mp"], rc["we_ap"]],
                     [rc["we_mp"], rc["mp_mp"], rc["mp_ap"]],
                     [rc["we_ap"], rc["mp_ap"], rc["ap_ap"]]])
    np.testing.assert_allclose(V, want, rtol=1e-6, atol=1e-15)
    if not case.startswith("singleton"):
        assert res.singleton_strata == []
    else:
        assert res.singleton_strata == ["deep_poverty_village"]
        assert res.singleton_method == R_CASES[case]


@pytest.mark.parametrize("case", list(R_CASES))
def test_korn_graubard_agrees_with_r_svyciprop_beta(case):
    _, reg = _fixture()
    res = estimate(_r_case(case), reg, "610102", 2018, singleton=R_CASES[case], counties=COUNTIES_R,
                   ci_method="korn_graubard")
    assert res.ci_method_requested == "korn_graubard"
    assert res.ci_method == {**dict.fromkeys(RATES, "korn_graubard"),
                             "comprehensive_poverty_rate": "korn_graubard_of_share_above_register_floor"}
    for c in RATES:
        r = R_KG[(case, c)]
        # R's person-weighted domain proportion = our ratio (estimate and SE); R's n = our n
        assert res.table.loc[c, "est"] == pytest.approx(r["est"], rel=1e-9, abs=1e-15), (case, c)
        assert res.table.loc[c, "se"] == pytest.approx(r["se"], rel=1e-9, abs=1e-15), (case, c)
        assert (res.table.loc[c, "n"], res.table.loc[c, "df"]) == (r["n"], r["df"])
        if np.isfinite(r["uci"]):
            assert res.table.loc[c, "lci"] == pytest.approx(r["lci"], rel=1e-6), (case, c)
            assert res.table.loc[c, "uci"] == pytest.approx(r["uci"], rel=1e-6), (case, c)
            assert res.n_eff[c] == pytest.approx(r["neff"], rel=1e-9)
        else:  # var = 0 at p = 0: R gives NaN; ours uses n_eff = sampled households x the df factor
            assert r["est"] == 0 and res.table.loc[c, "lci"] == 0
            f = (stats.t.ppf(0.025, r["n"] - 1) / stats.t.ppf(0.025, r["df"])) ** 2
            n_eff = r["n"] * f
            assert res.n_eff[c] == pytest.approx(n_eff, rel=1e-12)
            assert res.table.loc[c, "uci"] == pytest.approx(1 - 0.025 ** (1 / n_eff), rel=1e-9)
    # the comprehensive incidence: P/R + (1 - P/R) q, q's Korn-Graubard interval by hand (scipy's
    # beta quantiles) from se_q = se / (1 - P/R), n = exited + non-registered households, design df
    reg_t = res.register
    P, R = reg_t["remaining_poor_persons"], reg_t["rural_population"]
    fl = P / R
    wald = R_CRIT[(case, "comprehensive_poverty_rate")]
    assert res.table.loc["comprehensive_poverty_rate", "se"] == pytest.approx(wald["se"], rel=1e-6, abs=1e-15)
    assert res.wald_ci["comprehensive_poverty_rate"] == pytest.approx([wald["lci"], wald["uci"]], rel=1e-6)
    q, se_q = (wald["est"] - fl) / (1 - fl), wald["se"] / (1 - fl)
    n = res.table.loc["wrongly_exited_rate", "n"] + res.table.loc["missed_poor_rate", "n"]
    ne = (q * (1 - q) / se_q**2 if se_q > 0 else n) * (stats.t.ppf(0.025, n - 1) / stats.t.ppf(0.025, wald["df"])) ** 2
    lo = stats.beta.ppf(0.025, ne * q, ne * (1 - q) + 1) if q > 0 else 0.0
    hi = stats.beta.ppf(0.975, ne * q + 1, ne * (1 - q))
    assert res.table.loc["comprehensive_poverty_rate", "lci"] == pytest.approx(fl + (1 - fl) * lo, rel=1e-9)
    assert res.table.loc["comprehensive_poverty_rate", "uci"] == pytest.approx(fl + (1 - fl) * hi, rel=1e-9)
    assert res.table.loc["comprehensive_poverty_rate", "lci"] >= fl     # never below the register floor
    if case == "zero":
        # both error rates 0 in the sample: the Wald interval collapses to P/R; this one does not
        assert wald["lci"] == wald["uci"] == pytest.approx(P / R)
        assert res.table.loc["comprehensive_poverty_rate", "uci"] > P / R + 0.005


def test_ci_method_from_policy_and_argument():
    fs, reg = _fixture()
    assert POLICY.survey.ci_method == "korn_graubard_fpc"
    raw = copy.deepcopy(load_policy().raw)
    raw["survey"]["ci_method"] = "wald"
    res = estimate(fs, reg, "610102", 2018, policy=Policy(raw=raw, sources=("test",)))
    assert res.ci_method_requested == "wald"
    assert res.table.loc["approval_rate", "uci"] == pytest.approx(R_CRIT[("full", "approval_rate")]["uci"], rel=1e-6)
    res = estimate(fs, reg, "610102", 2018, policy=Policy(raw=raw, sources=("test",)),
                            ci_method="korn_graubard")
    assert res.ci_method_requested == "korn_graubard"
    with pytest.raises(ExitAssessmentError, match="unknown ci_method"):
        estimate(fs, reg, "610102", 2018, ci_method="agresti")


def test_deff1_caps_the_effective_size_at_the_sampled_households():
    # Korn-Graubard with the design effect truncated at 1: n_eff <= n x the df factor, so the
    # interval is at least as wide as the untruncated one and as Clopper-Pearson on n households
    fs, reg = _fixture()
    a = estimate(_rare(fs, 1), reg, "610102", 2018, counties=COUNTIES_R, ci_method="korn_graubard")
    b = estimate(_rare(fs, 1), reg, "610102", 2018, counties=COUNTIES_R, ci_method="korn_graubard_deff1")
    for c in RATES:
        r = R_KG[("near_zero", c)]
        f = (stats.t.ppf(0.025, r["n"] - 1) / stats.t.ppf(0.025, r["df"])) ** 2
        assert b.n_eff[c] == pytest.approx(min(r["neff"], r["n"] * f), rel=1e-9)
        assert b.table.loc[c, "uci"] >= a.table.loc[c, "uci"] - 1e-15
    # '_fpc': the cap is n / (1 - n/N) with N the register households of the domain
    c = estimate(_rare(fs, 1), reg, "610102", 2018, counties=COUNTIES_R, ci_method="korn_graubard_fpc")
    hs = reg.assign(x=np.where(reg["registered"] & (reg["exit_year"].fillna(9999) <= 2018), "exited",
                               np.where(reg["registered"], "poor", "non_registered")))["x"].value_counts()
    for c_, big in (("wrongly_exited_rate", hs["exited"]), ("missed_poor_rate", hs["non_registered"])):
        r = R_KG[("near_zero", c_)]
        f = (stats.t.ppf(0.025, r["n"] - 1) / stats.t.ppf(0.025, r["df"])) ** 2
        assert c.n_eff[c_] == pytest.approx(min(r["neff"], r["n"] * big / (big - r["n"]) * f), rel=1e-9)
    p, ne = R_KG[("near_zero", "missed_poor_rate")]["est"], b.n_eff["missed_poor_rate"]
    assert b.table.loc["missed_poor_rate", "uci"] == pytest.approx(stats.beta.ppf(0.975, ne * p + 1, ne * (1 - p)),
                                                                   rel=1e-9)


# ---------------------------------------------------------------------------------------------
# two stages without replacement (fixture_fpc.csv: 14 of 15 poverty villages, 4 of 10 others)
# ---------------------------------------------------------------------------------------------
def _fixture_fpc(take_all: bool = False):
    fs = pd.read_csv(FIX / "fixture_fpc.csv", dtype=IDS).drop(columns=["N_villages", "N_households"])
    reg = pd.read_csv(FIX / "register_fpc.csv", dtype=IDS)
    vil = pd.read_csv(FIX / "villages_fpc.csv", dtype=IDS)
    for c in ("registration_year", "exit_year"):
        reg[c] = reg[c].astype("Int64")
    if take_all:  # as crosscheck.R: the register's non-poverty villages are the 4 sampled ones
        keep = set(vil.loc[vil["is_poverty_village"], "village_code"]) | set(
            fs.loc[fs["stratum"] == "non_poverty_village", "village_code"])
        vil, reg = vil[vil["village_code"].isin(keep)], reg[reg["village_code"].isin(keep)]
    return fs, reg, vil


@pytest.mark.parametrize("case", ["fpc_full", "fpc_take_all"])
def test_two_stage_fpc_agrees_with_r(case):
    fs, reg, vil = _fixture_fpc(case == "fpc_take_all")
    res = estimate(fs, reg, "610103", 2018, villages=vil, ci_method="wald")
    for c in CRITERIA:
        r = R_CRIT[(case, c)]
        for f in ("est", "se", "lci", "uci", "df"):
            assert res.table.loc[c, f] == pytest.approx(r[f], rel=1e-8, abs=1e-15), (case, c, f)
    rc = R_COV[case]
    want = np.array([[rc["we_we"], rc["we_mp"], rc["we_ap"]],
                     [rc["we_mp"], rc["mp_mp"], rc["mp_ap"]],
                     [rc["we_ap"], rc["mp_ap"], rc["ap_ap"]]])
    np.testing.assert_allclose(np.array(res.covariance), want, rtol=1e-8, atol=1e-15)
    # Korn-Graubard intervals on the same design (svyciprop(method="beta") on a subset)
    kg = estimate(fs, reg, "610103", 2018, villages=vil, ci_method="korn_graubard")
    for c in RATES:
        r = R_KG[(case, c)]
        assert kg.table.loc[c, "se"] == pytest.approx(r["se"], rel=1e-8), (case, c)
        assert (kg.table.loc[c, "n"], kg.table.loc[c, "df"]) == (r["n"], r["df"])
        assert kg.table.loc[c, "lci"] == pytest.approx(r["lci"], rel=1e-8), (case, c)
        assert kg.table.loc[c, "uci"] == pytest.approx(r["uci"], rel=1e-8), (case, c)


def test_domain_degrees_of_freedom_agree_with_r_svyciprop():
    # as crosscheck.R: no exited household sampled in the first two non-poverty villages and the
    # first poverty village; R's subset df is 13 for the wrongly-exited rate (16 for the design)
    fs, reg, vil = _fixture_fpc()
    nv = sorted(fs.loc[fs["stratum"] == "non_poverty_village", "village_code"].unique())[:2]
    pv = sorted(fs.loc[fs["stratum"] == "poverty_village", "village_code"].unique())[:1]
    fs = fs[~((fs["hh_stratum"] == "exited") & fs["village_code"].isin(nv + pv))]
    kg = estimate(fs, reg, "610103", 2018, villages=vil, ci_method="korn_graubard")
    for c in RATES:
        r = R_KG[("fpc_domain", c)]
        assert kg.table.loc[c, "df"] == r["df"]
        for f in ("est", "se", "lci", "uci"):
            assert kg.table.loc[c, f] == pytest.approx(r[f], rel=1e-8), (c, f)
    assert kg.table.loc["wrongly_exited_rate", "df"] == 13 and kg.table.loc["comprehensive_poverty_rate", "df"] == 16
    # the Wald interval of a rate uses the same domain df: est -/+ qt(0.975, 13) se
    wald = estimate(fs, reg, "610103", 2018, villages=vil, ci_method="wald")
    r = R_CRIT[("fpc_domain", "wrongly_exited_rate")]
    q = stats.t.ppf(0.975, 13)
    assert wald.table.loc["wrongly_exited_rate", "se"] == pytest.approx(r["se"], rel=1e-8)
    assert wald.table.loc["wrongly_exited_rate", "lci"] == pytest.approx(r["est"] - q * r["se"], rel=1e-8)


def test_fpc_shrinks_the_variance_of_a_near_census():
    # 14 of 15 poverty villages sampled: with replacement (no villages table) overstates the SE of
    # the wrongly-exited rate (R: 0.0641 against 0.0481 with the corrections)
    fs, reg, vil = _fixture_fpc()
    wr = estimate(fs, reg, "610103", 2018, ci_method="wald")
    fpc = estimate(fs, reg, "610103", 2018, villages=vil, ci_method="wald")
    assert wr.table.loc["wrongly_exited_rate", "se"] == pytest.approx(
        R_CRIT[("fpc_wr", "wrongly_exited_rate")]["se"], rel=1e-8)
    assert fpc.table.loc["wrongly_exited_rate", "se"] < 0.8 * wr.table.loc["wrongly_exited_rate", "se"]
    # a village stratum of the sample without register villages is an error naming it
    bad = fs.assign(stratum=np.where(fs["stratum"] == "poverty_village", "deep_poverty_village", fs["stratum"]))
    with pytest.raises(ExitAssessmentError, match="deep_poverty_village"):
        estimate(bad, reg, "610103", 2018, villages=vil)


def test_default_singleton_rule_is_the_policy_one():
    fs, reg = _fixture()
    res = estimate(_singleton_subset(fs), reg, "610102", 2018)
    assert res.singleton_method == POLICY.survey.singleton_method == "certainty"
    assert res.singleton_method_svy == "skip"
    assert res.table.loc["wrongly_exited_rate", "se"] == pytest.approx(
        R_CRIT[("singleton_certainty", "wrongly_exited_rate")]["se"], rel=1e-6)


# ---------------------------------------------------------------------------------------------
# hand-worked comprehensive incidence
# ---------------------------------------------------------------------------------------------
def _hand_survey() -> pd.DataFrame:
    # Two strata A, B with two villages each; one exited and one non-registered household per village.
    # weights: households of A villages 10, of B villages 20.
    rows = [  # village, stratum, hh_stratum, weight, size, income, failed guarantee, approves
        ("a1", "A", "exited", 10, 4, 1000, None, True),        # wrongly exited (income)
        ("a1", "A", "non_registered", 10, 2, 5000, None, False),
        ("a2", "A", "exited", 10, 2, 5000, None, True),
        ("a2", "A", "non_registered", 10, 3, 5000, "housing_ok", True),  # missed (housing)
        ("b1", "B", "exited", 20, 3, 5000, None, True),
        ("b1", "B", "non_registered", 20, 5, 5000, None, True),
        ("b2", "B", "exited", 20, 1, 5000, "water_ok", True),      # wrongly exited (water)
        ("b2", "B", "non_registered", 20, 4, 5000, None, True),
    ]
    fs = pd.DataFrame(rows, columns=["village_code", "stratum", "hh_stratum", "weight", "household_size",
                                     "surveyed_income_per_capita", "_fail", "approves"])
    fs["county_code"], fs["survey_year"] = "610101", 2018
    fs["household_id"] = [f"h{i}" for i in range(len(fs))]
    fs["prob_village"], fs["prob_household"] = 1.0, 1 / fs["weight"]
    for g in GUAR:
        fs[g] = fs["_fail"] != g
    return fs.drop(columns="_fail")


def _hand_register() -> pd.DataFrame:
    # P = 50 remaining poor persons, E = 300 exited persons, N = 1000 + 1 non-registered persons;
    # one household in each sampled village so that every sample village is in the frame.
    return pd.DataFrame({
        "household_id": ["r1", "r2", "r3", "r4"], "village_code": ["a1", "a2", "b1", "b2"],
        "county_code": "610101", "household_size": [50, 300, 1000, 1],
        "registered": [True, True, False, False],
        "registration_year": pd.array([2014, 2014, None, None], dtype="Int64"),
        "exit_year": pd.array([None, 2017, None, None], dtype="Int64"),
    })


def test_comprehensive_incidence_by_hand():
    fs, reg = _hand_survey(), _hand_register()
    counties = pd.DataFrame({"county_code": ["610101"], "rural_population": [2000]})
    res = estimate(fs, reg, "610101", 2018, counties=counties)
    # exited persons, weighted:        10*4 + 10*2 + 20*3 + 20*1 = 140
    # wrongly exited persons, weighted: 10*4 + 20*1             = 60   -> r_we = 60/140 = 3/7
    assert res.table.loc["wrongly_exited_rate", "est"] == pytest.approx(3 / 7, rel=1e-12)
    # non-registered persons, weighted: 10*2 + 10*3 + 20*5 + 20*4 = 230
    # missed persons, weighted:         10*3                      = 30   -> r_mp = 30/230 = 3/23
    assert res.table.loc["missed_poor_rate", "est"] == pytest.approx(3 / 23, rel=1e-12)
    # approval: weighted households 4*10 + 4*20 = 120, disapproving 10 -> 110/120
    assert res.table.loc["approval_rate", "est"] == pytest.approx(110 / 120, rel=1e-12)
    # register: P = 50, E = 300, R = 2000 (counties.rural_population); the register lists 1001
    # non-registered persons, but docs/policy.md §4 applies the missed-poor rate to every non-registered
    # rural person: N = R - P - E = 2000 - 50 - 300 = 1650
    # C = (50 + 300 * 3/7 + 1650 * 3/23) / 2000
    #   = (50 + 128.5714286 + 215.2173913) / 2000 = 393.7888199 / 2000 = 0.1968944099
    c = (50 + 300 * 3 / 7 + 1650 * 3 / 23) / 2000
    assert c == pytest.approx(0.1968944099, rel=1e-9)
    assert res.table.loc["comprehensive_poverty_rate", "est"] == pytest.approx(c, rel=1e-12)
    assert res.register["non_registered_persons"] == 1650
    assert any("1,650" in n and "1,001" in n for n in render_notes(res.notes, "en"))
    # its SE: a' V a with a = (E/R, N/R) on svy's joint covariance of the two rates
    a = np.array([300 / 2000, 1650 / 2000])
    V = np.array(res.covariance)[:2, :2]
    assert res.table.loc["comprehensive_poverty_rate", "se"] == pytest.approx(np.sqrt(a @ V @ a), rel=1e-10)
    # n: sampled households in the denominators; df = 4 villages - 2 strata
    assert res.table["n"].tolist() == [4, 4, 8, 8]
    assert (res.table["df"] == 2).all()
    # without counties the rural population is the register's persons: 50 + 300 + 1000 + 1 = 1351,
    # N = 1351 - 350 = 1001: C = (50 + 128.5714286 + 130.5652174) / 1351 = 0.2288206
    res2 = estimate(fs, reg, "610101", 2018)
    assert res2.table.loc["comprehensive_poverty_rate", "est"] == pytest.approx(
        (50 + 300 * 3 / 7 + 1001 * 3 / 23) / 1351, rel=1e-12)


def test_korn_graubard_at_zero_and_one_by_hand():
    fs, reg = _hand_survey(), _hand_register()
    # no wrongly-exited household: a1's exited household gets a high income, b2's its water back
    fs.loc[0, "surveyed_income_per_capita"] = 5000
    fs.loc[6, "water_ok"] = True
    # every household approves: approval p = 1
    fs["approves"] = True
    res = estimate(fs, reg, "610101", 2018)
    we, ap = res.table.loc["wrongly_exited_rate"], res.table.loc["approval_rate"]
    assert we["est"] == 0 and we["se"] == 0 and ap["est"] == 1 and ap["se"] == 0
    # p = 0, var = 0: n_eff = the 4 sampled exited households (not the 10 persons: members share
    # their household's status), times the df factor with design df = 4 villages - 2 strata = 2:
    #   qt(0.025, 3) = -3.182446305, qt(0.025, 2) = -4.302652730
    #   factor = (3.182446305 / 4.302652730)^2 = 0.7396456^2 = 0.5470784
    #   n_eff  = 4 * 0.5470784 = 2.1883137
    #   upper  = 1 - 0.025^(1/2.1883137) = 1 - exp(-3.6888795 / 2.1883137)
    #          = 1 - exp(-1.6857203) = 1 - 0.1853114 = 0.8146886;   lower = 0
    assert res.n_persons["wrongly_exited_rate"] == 10
    assert res.n_eff["wrongly_exited_rate"] == pytest.approx(2.188313656258, rel=1e-10)
    assert (we["lci"], we["uci"]) == (0, pytest.approx(0.814688646841, rel=1e-10))
    # p = 1 (approval, households): n_eff = 8 households x (qt(.025, 7) / qt(.025, 2))^2, lower = 0.025^(1/n_eff)
    n_eff = 8 * (stats.t.ppf(0.025, 7) / stats.t.ppf(0.025, 2)) ** 2
    assert n_eff == pytest.approx(8 * (2.364624252 / 4.302652730) ** 2, rel=1e-9)
    assert (ap["lci"], ap["uci"]) == (pytest.approx(0.025 ** (1 / n_eff), rel=1e-10), 1)
    assert set(res.zero_se) >= {"wrongly_exited_rate", "approval_rate"}
    assert any("Korn–Graubard" in n for n in render_notes(res.notes, "en"))
    # the Wald interval of the same sample collapses to the point
    wald = estimate(fs, reg, "610101", 2018, ci_method="wald")
    assert wald.table.loc["wrongly_exited_rate", ["lci", "uci"]].tolist() == [0, 0]


def _zero_county():
    """Survey of 30 exited households of 4 persons (120 persons) and 18 non-registered households
    of 3 persons in 6 villages (2 strata x 3), nobody wrongly exited or missed; and its register
    with P = 10, E = 300 and 1000 listed non-registered persons (rural population 10000 through
    `counties`, so N = R - P - E = 9690)."""
    rows = []
    for st, w in (("A", 10.0), ("B", 20.0)):
        for v in range(3):
            vc = f"{st.lower()}{v + 1}"
            rows += [(vc, st, "exited", w, 4) for _ in range(5)] + [(vc, st, "non_registered", w * 2, 3)
                                                                    for _ in range(3)]
    fs = pd.DataFrame(rows, columns=["village_code", "stratum", "hh_stratum", "weight", "household_size"])
    fs["county_code"], fs["survey_year"], fs["surveyed_income_per_capita"] = "610101", 2018, 8000.0
    fs["household_id"] = [f"h{i}" for i in range(len(fs))]
    fs["approves"] = np.arange(len(fs)) % 10 != 0
    for g in GUAR:
        fs[g] = True
    reg = pd.DataFrame({
        "household_id": [f"r{i}" for i in range(6)], "village_code": ["a1", "a2", "a3", "b1", "b2", "b3"],
        "county_code": "610101", "household_size": [10, 150, 150, 400, 300, 300],
        "registered": [True, True, True, False, False, False],
        "registration_year": pd.array([2014, 2014, 2014, None, None, None], dtype="Int64"),
        "exit_year": pd.array([None, 2016, 2017, None, None, None], dtype="Int64"),
    })
    return fs, reg, pd.DataFrame({"county_code": ["610101"], "rural_population": [10000]})


def test_no_wrongly_exited_in_sample_is_no_longer_a_certain_pass():
    fs, reg, counties = _zero_county()
    wald = estimate(fs, reg, "610101", 2018, counties=counties, ci_method="wald")
    res = estimate(fs, reg, "610101", 2018, counties=counties)
    we = res.table.loc["wrongly_exited_rate"]
    assert (we["est"], we["se"], we["n"], we["df"]) == (0, 0, 30, 4)
    # Wald: the interval is [0, 0] and the verdict is a 'pass' with certainty
    assert wald.table.loc["wrongly_exited_rate", ["lci", "uci", "verdict"]].tolist() == [0, 0, "pass"]
    # Korn-Graubard, n = 30 exited households (120 persons sharing 30 statuses), df = 6 - 2 = 4:
    #   factor = (qt(.025, 29) / qt(.025, 4))^2 = (2.0452296 / 2.7764451)^2 = 0.5426327
    #   n_eff  = 30 * 0.5426327 = 16.27898
    #   upper  = 1 - 0.025^(1/16.27898) = 1 - exp(-3.6888795 / 16.27898) = 0.2027634 > 0.02
    # (a sample with no case passes only from n_eff > ln 0.025 / ln 0.98 = 182.6, i.e. about 337
    # exited households at this df factor)
    assert res.n_eff["wrongly_exited_rate"] == pytest.approx(16.27898148652285, rel=1e-10)
    assert (we["lci"], we["uci"]) == (0, pytest.approx(0.2027634341969683, rel=1e-9))
    assert (we["verdict"], we["official_verdict"]) == ("borderline", "pass")
    assert res.decision()["overall"] != "pass"
    # missed: 54 persons in 18 households; comprehensive: Wald collapses to P/R = 0.001
    mp = res.table.loc["missed_poor_rate"]
    n_eff_mp = 18 * (stats.t.ppf(0.025, 17) / stats.t.ppf(0.025, 4)) ** 2
    assert mp["uci"] == pytest.approx(1 - 0.025 ** (1 / n_eff_mp), rel=1e-9)
    assert wald.table.loc["comprehensive_poverty_rate", ["lci", "uci"]].tolist() == pytest.approx([0.001, 0.001])
    comp = res.table.loc["comprehensive_poverty_rate"]
    assert comp["lci"] == pytest.approx(0.001)
    # the share above the floor q = 0 with se 0: n_eff = 30 + 18 households x (qt(.025, 47)/qt(.025, 4))^2,
    # upper q = 1 - 0.025^(1/n_eff); incidence upper = P/R + (1 - P/R) q = 0.001 + 0.999 q
    n_eff_q = 48 * (stats.t.ppf(0.025, 47) / stats.t.ppf(0.025, 4)) ** 2
    assert comp["uci"] == pytest.approx(0.001 + 0.999 * (1 - 0.025 ** (1 / n_eff_q)), rel=1e-12)


def test_criterion_flags_and_reasons():
    fs = _hand_survey()
    line = load_policy().poverty_line(2018)
    fs.loc[2, "surveyed_income_per_capita"] = line          # exactly at the line: not above it
    fs.loc[4, "education_ok"] = False
    fs.loc[4, "surveyed_income_per_capita"] = line - 1
    f = criterion_flags(fs, POLICY, 2018)
    assert f["wrongly_exited"].tolist() == [True, False, True, False, True, False, True, False]
    assert f["missed"].tolist() == [False, False, False, True, False, False, False, False]
    assert f["reasons"].tolist() == ["income_below_line", "", "income_below_line", "housing",
                                     "income_below_line;education", "", "water", ""]
    assert f["wrongly_exited_persons"].sum() == 4 + 2 + 3 + 1
    assert f["missed_persons"].sum() == 3
    assert (f["follow_up"] == (f["wrongly_exited"] | f["missed"])).all()
    # the estimation path: the same flags by hand, without the reason strings
    g = criterion_flags(fs, POLICY, 2018, reasons=False)
    assert "reasons" not in g.columns
    assert g["wrongly_exited"].tolist() == [True, False, True, False, True, False, True, False]
    assert g["missed"].tolist() == [False, False, False, True, False, False, False, False]
    pd.testing.assert_frame_equal(g, f.drop(columns="reasons"))


# ---------------------------------------------------------------------------------------------
# verdicts
# ---------------------------------------------------------------------------------------------
def test_verdicts_at_the_boundaries():
    t = 0.02
    # max-rate ('below'): pass only when the whole CI is strictly below the threshold
    cases = [  # est, lci, uci, verdict, official
        (0.010, 0.000, 0.0199, "pass", "pass"),
        (0.010, 0.000, 0.020, "borderline", "pass"),   # CI touches the threshold: the touching point fails
        (0.020, 0.010, 0.030, "borderline", "fail"),   # point estimate at the threshold fails (strict <)
        (0.030, 0.020, 0.040, "fail", "fail"),         # lower bound at the threshold: whole CI fails
        (0.030, 0.0199, 0.040, "borderline", "fail"),
    ]
    v, o = verdicts(*zip(*[c[:3] for c in cases]), [t] * len(cases), ["below"] * len(cases))
    assert list(v) == [c[3] for c in cases] and list(o) == [c[4] for c in cases]
    t = 0.9
    cases = [  # min-rate ('at_least'): passes at the threshold
        (0.95, 0.90, 0.99, "pass", "pass"),            # lower bound at the threshold passes
        (0.90, 0.85, 0.95, "borderline", "pass"),      # point estimate at the threshold passes (>=)
        (0.88, 0.85, 0.90, "borderline", "fail"),      # upper bound at the threshold: not wholly failing
        (0.88, 0.85, 0.8999, "fail", "fail"),
    ]
    v, o = verdicts(*zip(*[c[:3] for c in cases]), [t] * len(cases), ["at_least"] * len(cases))
    assert list(v) == [c[3] for c in cases] and list(o) == [c[4] for c in cases]
    with pytest.raises(ValueError):
        verdicts([0.1], [0], [0.2], [0.5], ["above"])


def test_decision():
    def crit(v, o):
        return pd.DataFrame({"verdict": v, "official_verdict": o}, index=list(CRITERIA))
    assert decision(crit(["pass"] * 4, ["pass"] * 4)) == {"overall": "pass", "official_point_rule": "pass"}
    assert decision(crit(["pass", "borderline", "pass", "pass"], ["pass"] * 4))["overall"] == "borderline"
    assert decision(crit(["pass", "borderline", "fail", "pass"], ["pass", "pass", "fail", "pass"])) == {
        "overall": "fail", "official_point_rule": "fail"}


def _policy_with(**exit_criteria) -> Policy:
    raw = copy.deepcopy(load_policy().raw)
    raw["exit_criteria"].update(exit_criteria)
    return Policy(raw=raw, sources=("test",))


def test_estimate_equal_to_threshold_uses_official_rule():
    fs, reg = _hand_survey(), _hand_register()
    base = estimate(fs, reg, "610101", 2018)
    # thresholds set exactly at the point estimates: max-rates fail (strict <), approval passes (>=)
    pol = _policy_with(wrongly_exited_rate_max=float(base.table.loc["wrongly_exited_rate", "est"]),
                       approval_rate_min=float(base.table.loc["approval_rate", "est"]))
    res = estimate(fs, reg, "610101", 2018, policy=pol)
    assert res.table.loc["wrongly_exited_rate", "official_verdict"] == "fail"
    assert res.table.loc["wrongly_exited_rate", "verdict"] == "borderline"
    assert res.table.loc["approval_rate", "official_verdict"] == "pass"
    assert res.table.loc["approval_rate", "verdict"] == "borderline"
    # bounds outside [0, 1] are reported as computed, and listed in attrs
    assert res.ci_below_zero == res.table.index[res.table["lci"] < 0].tolist()
    assert res.ci_above_one == res.table.index[res.table["uci"] > 1].tolist()


def test_bounds_outside_unit_interval_are_not_clipped():
    fs, reg = _fixture()
    res = estimate(_singleton_subset(fs), reg, "610102", 2018, singleton="average", ci_method="wald")
    assert res.table.loc["approval_rate", "uci"] > 1          # R gives 1.00525 too (see crosscheck output)
    assert res.ci_above_one == ["approval_rate"]
    assert any("above 1" in n for n in render_notes(res.notes, "en"))
    # the Korn-Graubard interval stays in [0, 1] (R: 0.98791)
    kg = estimate(_singleton_subset(fs), reg, "610102", 2018, singleton="average")
    assert kg.table.loc["approval_rate", "uci"] < 1 and kg.ci_above_one == []


def test_thresholds_come_from_policy():
    fs, reg = _fixture()
    res = estimate(fs, reg, "610102", 2018)
    th = load_policy().exit_thresholds("west")
    for c in CRITERIA:
        assert res.table.loc[c, "threshold"] == th[c]["value"] and res.table.loc[c, "direction"] == th[c]["direction"]
    assert res.region == "west"
    assert res.register["rural_population_source"] == "sum of household_size of the register"


# ---------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------
@pytest.fixture()
def fx():
    return _fixture()


def test_county_not_in_data(fx):
    fs, reg = fx
    with pytest.raises(ExitAssessmentError, match="county 610103 is not in the households"):
        estimate(fs, reg, "610103", 2018)
    with pytest.raises(ExitAssessmentError, match="county 610103 is not in the field survey"):
        estimate(fs, reg.assign(county_code="610103"), "610103", 2018)
    with pytest.raises(ExitAssessmentError, match="no field survey for year 2019"):
        estimate(fs, reg, "610102", 2019)


def test_no_exited_households(fx):
    fs, reg = fx
    with pytest.raises(ExitAssessmentError, match="no exited households"):
        estimate(fs[fs["hh_stratum"] != "exited"], reg, "610102", 2018)
    with pytest.raises(ExitAssessmentError, match="no non-registered households"):
        estimate(fs[fs["hh_stratum"] != "non_registered"], reg, "610102", 2018)


def test_singleton_fail_rule_and_no_df(fx):
    fs, reg = fx
    with pytest.raises(ExitAssessmentError, match=r"\['deep_poverty_village'\].*single sampled village"):
        estimate(_singleton_subset(fs), reg, "610102", 2018, singleton="fail")
    with pytest.raises(ExitAssessmentError, match="unknown singleton method"):
        estimate(fs, reg, "610102", 2018, singleton="guess")
    one_each = fs[fs["village_code"].isin(fs.groupby("stratum")["village_code"].min())]
    with pytest.raises(ExitAssessmentError, match="no usable interval"):
        estimate(one_each, reg, "610102", 2018)


@pytest.mark.parametrize("bad", [np.nan, 0.0, -1.0])
def test_missing_or_zero_weights(fx, bad):
    fs, reg = fx
    fs = fs.copy()
    fs.loc[[3, 7], "weight"] = bad
    ids = fs.loc[[3, 7], "household_id"].tolist()
    with pytest.raises(ExitAssessmentError, match=rf"2 row\(s\) with missing, zero or negative weight.*{ids[0]}"):
        estimate(fs, reg, "610102", 2018)


def test_sample_villages_not_in_frame(fx):
    fs, reg = fx
    gone = sorted(fs["village_code"].unique())[:2]
    with pytest.raises(ExitAssessmentError, match=rf"2 sampled village\(s\).*{gone[0]}.*{gone[1]}"):
        estimate(fs, reg[~reg["village_code"].isin(gone)], "610102", 2018)


def test_year_without_line_or_region_without_threshold(fx):
    fs, reg = fx
    with pytest.raises(ExitAssessmentError, match="year 2013"):
        estimate(fs.assign(survey_year=2013), reg, "610102", 2013)
    raw = copy.deepcopy(load_policy().raw)
    del raw["exit_criteria"]["comprehensive_poverty_rate_max"]["west"]
    with pytest.raises(ExitAssessmentError, match="county 610102.*west"):
        estimate(fs, reg, "610102", 2018, policy=Policy(raw=raw))


def test_missing_survey_values(fx):
    fs, reg = fx
    fs = fs.copy()
    fs["housing_ok"] = fs["housing_ok"].astype("boolean")
    fs.loc[5, "housing_ok"] = pd.NA
    with pytest.raises(ExitAssessmentError, match="1 missing value.*housing_ok"):
        estimate(fs, reg, "610102", 2018)
    fs2, _ = _fixture()
    fs2.loc[5, "surveyed_income_per_capita"] = np.nan
    with pytest.raises(ExitAssessmentError, match="surveyed_income_per_capita"):
        estimate(fs2, reg, "610102", 2018)
    fs3, _ = _fixture()
    with pytest.raises(ExitAssessmentError, match="duplicated household_id"):
        estimate(pd.concat([fs3, fs3.iloc[[0]]]), reg, "610102", 2018)


def test_village_in_two_strata(fx):
    fs, reg = fx
    fs = fs.copy()
    v = fs["village_code"].iloc[0]
    fs.loc[fs.index[fs["village_code"] == v][:2], "stratum"] = ["poverty_village", "non_poverty_village"]
    with pytest.raises(ExitAssessmentError, match=f"{v}.*more than one stratum"):
        estimate(fs, reg, "610102", 2018)


def test_error_is_a_value_error():
    assert issubclass(ExitAssessmentError, ValueError)


# ---------------------------------------------------------------------------------------------
# truth and operating characteristic
# ---------------------------------------------------------------------------------------------
def make_county(seed: int = 0, county: str = "610101", n_villages: int = 40, mean_hh: int = 80, year: int = 2018):
    """A random county with its truth (rates as in tests/test_survey.py, richer and fewer failures)."""
    return frame_county(seed, county, n_villages, share_poverty=0.35, mean_hh=mean_hh, year=year,
                        income_median=8000.0, income_sigma=0.3, guarantee_fail=0.002, approval=0.96)


@pytest.fixture(scope="module")
def synth_county():
    return make_county()


def test_true_rates_by_hand(synth_county):
    villages, households, truth = synth_county
    line = load_policy().poverty_line(2018)
    t = truth.set_index("household_id").loc[households["household_id"]]
    ok = (t["true_income_per_capita"] > line).to_numpy() & t[[f"true_{g}" for g in GUAR]].all(axis=1).to_numpy()
    size = households["household_size"].to_numpy()
    ex = households["registered"].to_numpy() & (households["exit_year"].fillna(9999) <= 2018).to_numpy()
    nr = ~households["registered"].to_numpy()
    tr = true_rates(households, truth, "610101", 2018, POLICY)
    assert tr["wrongly_exited_rate"] == pytest.approx((size * (ex & ~ok)).sum() / size[ex].sum())
    assert tr["missed_poor_rate"] == pytest.approx((size * (nr & ~ok)).sum() / size[nr].sum())
    assert tr["approval_rate"] == pytest.approx(t["true_approves"].mean())
    poor = households["registered"].to_numpy() & ~ex
    assert tr["comprehensive_poverty_rate"] == pytest.approx(
        (size[poor].sum() + (size * (ex & ~ok)).sum() + (size * (nr & ~ok)).sum()) / size.sum())


def test_estimates_track_truth(synth_county):
    # design-based estimates are unbiased-ish: the mean over draws is near the true rates
    villages, households, truth = synth_county
    tr = true_rates(households, truth, "610101", 2018, POLICY)
    # a moderate design keeps the 40 svy estimates fast; unbiasedness does not depend on it
    design = SampleDesign.from_policy(POLICY, villages_per_stratum={"poverty_village": 20, "non_poverty_village": 10},
                                      households_per_village={"exited": 30, "poor": 5, "non_registered": 15})
    ests = [estimate(survey_from_truth(draw_sample(households, villages, 2018, design, seed=s), truth, 2018),
                     households, "610101", 2018).table["est"] for s in range(40)]
    e = pd.concat(ests, axis=1)
    se = e.std(axis=1) / np.sqrt(e.shape[1])
    assert (np.abs(e.mean(axis=1) - tr) <= 4 * se + 1e-3).all(), (e.mean(axis=1), tr)


def test_operating_characteristic_separates_good_and_bad_counties():
    # A county and a design large enough for the uncertainty-aware rule to have power (about 1,200
    # exited households sampled). With ~300 households even a sample holding one or two cases
    # cannot show a rate below 2% (Clopper-Pearson for 2/300 already reaches 2.4%), which is
    # exactly what the operating characteristic is there to reveal.
    villages, households, truth = make_county(seed=2, n_villages=120, mean_hh=120)
    big = SampleDesign.from_policy(POLICY, villages_per_stratum={"poverty_village": 30, "non_poverty_village": 20},
                                   households_per_village={"exited": 40, "poor": 3, "non_registered": 10})
    oc = operating_characteristic(households, villages, truth, "610101", 2018, policy=POLICY, n_reps=60,
                                  design=big, set_rates={"wrongly_exited_rate": [0.005, 0.03]}, seed=1)
    we = oc[(oc["varied"] == "wrongly_exited_rate") & (oc["criterion"] == "wrongly_exited_rate")].set_index(
        "target_rate")
    # the truth was set as asked (households are indivisible: within a household's persons)
    assert we.loc[0.005, "true_rate"] == pytest.approx(0.005, abs=0.002)
    assert we.loc[0.03, "true_rate"] == pytest.approx(0.03, abs=0.002)
    assert we.loc[0.005, "p_official_pass"] - we.loc[0.03, "p_official_pass"] > 0.4
    assert we.loc[0.005, "p_pass"] > we.loc[0.03, "p_pass"] + 0.3
    probs = oc[["p_pass", "p_borderline", "p_fail", "p_error"]].sum(axis=1)
    np.testing.assert_allclose(probs, 1.0)
    assert set(oc["criterion"]) == {*CRITERIA, "overall"}
    assert oc.attrs["thresholds"]["wrongly_exited_rate"]["value"] == 0.02
    fig = plot_operating_characteristic(oc, lang="en")
    assert len(fig.axes) == 1


def test_operating_characteristic_is_reproducible(synth_county):
    villages, households, truth = synth_county
    d = SampleDesign.from_policy(POLICY, villages_per_stratum={"poverty_village": 4, "non_poverty_village": 3})
    a = operating_characteristic(households, villages, truth, "610101", 2018, policy=POLICY, design=d, n_reps=8,
                                 seed=3)
    b = operating_characteristic(households, villages, truth, "610101", 2018, policy=POLICY, design=d, n_reps=8,
                                 seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert a["varied"].isna().all() and len(a) == 5
    fig = plot_operating_characteristic(a, lang="en")
    assert fig.axes
    with pytest.raises(ValueError, match="comprehensive"):
        operating_characteristic(households, villages, truth, "610101", 2018, policy=POLICY, n_reps=2,
                                 set_rates={"comprehensive_poverty_rate": [0.01]})


def test_replicate_criteria_equal_assess_sample_replicate_by_replicate(synth_county):
    # the vectorized operating characteristic estimates exactly what a real assessment does
    villages, households, truth = synth_county
    d = SampleDesign.from_policy(POLICY, villages_per_stratum={"poverty_village": 6, "non_poverty_village": 5})
    samples = [draw_sample(households, villages, 2018, d, seed=s) for s in range(6)]
    big, rep = stack_samples(samples)
    tix = truth_index(truth, 2018)
    for ci in ("korn_graubard_deff1", "wald"):
        ctx = county_context(households, "610101", 2018, POLICY, villages=villages, ci_method=ci)
        rc = replicate_criteria(ctx, fill_survey(big, tix, 2018), rep, len(samples))
        lo, hi = rc.intervals(ci)
        for i, s in enumerate(samples):
            t = assess_sample(ctx, fill_survey(s, tix, 2018)).table
            np.testing.assert_allclose(rc.est[i], t["est"], rtol=1e-10, atol=1e-15)
            np.testing.assert_allclose(rc.se[i], t["se"], rtol=1e-9, atol=1e-15)
            np.testing.assert_array_equal(rc.df[i], t["df"])
            np.testing.assert_allclose(lo[i], t["lci"], rtol=1e-9, atol=1e-15)
            np.testing.assert_allclose(hi[i], t["uci"], rtol=1e-9, atol=1e-15)


def test_vectorized_draws_have_svy_probabilities_and_equal_svy_estimates(synth_county):
    # the NumPy draws (all replicates at once) give every sampled village and household the
    # inclusion probability svy's own draw gives it, and the vectorized estimator equals the
    # SurveyDesign (svy) estimate of the same sample to 1e-10, replicate by replicate
    from evalkit.assessment.simulation import draws_criteria, draws_sample
    from evalkit.survey import build_frame, draw_from_frame
    from evalkit.survey.replicates import draw_replicates
    villages, households, truth = synth_county
    d = SampleDesign.from_policy(POLICY, villages_per_stratum={"poverty_village": 6, "non_poverty_village": 5},
                                 households_per_village={"exited": 8, "poor": 2, "non_registered": 6})
    frame = build_frame(households, villages, 2018, d)
    draws = draw_replicates(frame, 400, np.random.default_rng(5))
    ref = pd.concat([draw_from_frame(frame, np.random.default_rng(s)) for s in range(3)])
    mine = draws_sample(frame, draws)
    both = ref.merge(mine.drop(columns="rep").drop_duplicates("household_id"), on="household_id",
                     suffixes=("", "_np"))
    assert len(both) > 100
    np.testing.assert_allclose(both["prob_village_np"], both["prob_village"], rtol=1e-12)
    np.testing.assert_allclose(both["prob_household_np"], both["prob_household"], rtol=1e-12)
    # every village x household stratum holds min(n, M) sampled households in every replicate
    one = draws_sample(frame, draws, 7)
    cells = one.groupby(["village_code", "hh_stratum"]).size()
    want = households[households["village_code"].isin(one["village_code"])].assign(
        hs=lambda x: np.where(x["registered"] & (x["exit_year"].fillna(9999) <= 2018), "exited",
                              np.where(x["registered"], "poor", "non_registered"))).groupby(
        ["village_code", "hs"]).size().clip(upper=pd.Series({"exited": 8, "poor": 2, "non_registered": 6}).reindex(
            cells.index.get_level_values(1)).to_numpy())
    np.testing.assert_array_equal(cells.to_numpy(), want.to_numpy())
    # villages are selected as often as their probabilities say (PPS with certainty units)
    v = mine[["rep", "village_code", "prob_village"]].drop_duplicates(["rep", "village_code"])
    freq = v.groupby("village_code").agg(k=("rep", "size"), p=("prob_village", "first"))
    z = (freq["k"] / 400 - freq["p"]) / np.sqrt(freq["p"] * (1 - freq["p"]) / 400 + 1e-12)
    assert np.abs(z).max() < 4.5
    tix = truth_index(truth, 2018)
    for ci in ("korn_graubard_fpc", "wald"):
        ctx = county_context(households, "610101", 2018, POLICY, villages=villages, ci_method=ci)
        rc = draws_criteria(ctx, frame, draws, truth[truth["year"] == 2018])
        lo, hi = rc.intervals(ci)
        for r in range(4):
            t = assess_sample(ctx, fill_survey(draws_sample(frame, draws, r), tix, 2018)).table
            np.testing.assert_allclose(rc.est[r], t["est"], rtol=1e-10, atol=1e-15)
            np.testing.assert_allclose(rc.se[r], t["se"], rtol=1e-10, atol=1e-15)
            np.testing.assert_array_equal(rc.df[r], t["df"])
            np.testing.assert_allclose(lo[r], t["lci"], rtol=1e-9, atol=1e-15)
            np.testing.assert_allclose(hi[r], t["uci"], rtol=1e-9, atol=1e-15)


def test_set_truth_on_the_failing_side(synth_county):
    from evalkit.assessment import set_truth
    villages, households, truth = synth_county
    ty = truth[truth["year"] == 2018]
    for crit, target in (("wrongly_exited_rate", 0.02), ("missed_poor_rate", 0.02)):
        t = set_truth(ty, households, 2018, crit, target, np.random.default_rng(1), POLICY, side="failing")
        got = true_rates(households, t, "610101", 2018, POLICY)[crit]
        assert target <= got < target + 0.01
    t = set_truth(ty, households, 2018, "approval_rate", 0.9, np.random.default_rng(1), POLICY, side="failing")
    assert true_rates(households, t, "610101", 2018, POLICY)["approval_rate"] < 0.9


def test_fpc_cap_of_the_effective_size_by_hand():
    # n / (1 - f) with f = n / N of the domain's register households; infinite cap at a census
    from evalkit.assessment.intervals import effective_size_cap
    reg = {"households": {"exited": 400, "poor": 50, "non_registered": 1000}}
    cap, n0 = effective_size_cap("korn_graubard_fpc", np.array([100.0, 200.0, 300.0, 400.0]), reg)
    np.testing.assert_allclose(cap[:3], [100 / (1 - 100 / 400), 200 / (1 - 200 / 1000), 300 / (1 - 300 / 1450)])
    np.testing.assert_allclose(cap[3], 400 / (1 - 400 / 1400))
    assert effective_size_cap("korn_graubard_deff1", np.array([5.0]), reg)[0][0] == 5.0
    assert effective_size_cap("korn_graubard", np.array([5.0]), reg)[0] is None
    c, _ = effective_size_cap("korn_graubard_fpc", np.array([400.0, 10, 10, 10]), reg)
    assert np.isinf(c[0])


def test_a_census_of_the_domain_is_known_not_estimated():
    # every exited household observed (n = N = 400) with SE 0: the interval is the point; 360 of
    # 400 observed with SE 0: Clopper-Pearson on the capped size n / (1 - n/N) = 3600 (times the
    # df factor), by hand with scipy -- so the census never decides worse than the sample
    from evalkit.assessment.intervals import criteria_intervals
    reg = {"households": {"exited": 400, "poor": 50, "non_registered": 1000},
           "remaining_poor_persons": 100.0, "rural_population": 10000.0}
    est = np.array([[0.015, 0.01, 0.95, 0.02], [0.015, 0.01, 0.95, 0.02]])
    se = np.array([[0.0, 0.001, 0.003, 0.001], [0.0, 0.001, 0.003, 0.001]])
    df, n = np.full((2, 4), 20.0), np.array([[400.0, 500, 950, 900], [360.0, 500, 950, 860]])
    lo, hi = criteria_intervals("korn_graubard_fpc", est, se, df, n, reg, 0.05)
    assert lo[0, 0] == hi[0, 0] == 0.015
    ne = 3600 * (stats.t.ppf(0.025, 359) / stats.t.ppf(0.025, 20)) ** 2
    assert hi[1, 0] == pytest.approx(stats.beta.ppf(0.975, ne * 0.015 + 1, ne * 0.985), rel=1e-9)
    assert lo[1, 0] == pytest.approx(stats.beta.ppf(0.025, ne * 0.015, ne * 0.985 + 1), rel=1e-9)
    assert lo[1, 0] < 0.015 < hi[1, 0]
    # the other criteria (not a census, or SE > 0) are untouched by the rule
    np.testing.assert_array_equal(lo[0, 1:], lo[1, 1:3].tolist() + [lo[0, 3]])


def test_calibration_agrees_with_r_calibrate():
    # R survey 4.1.1 calibrate(calfun="linear") + svyratio on tests/fixtures_r/fixture.csv
    # (tests/fixtures_r/calibration.R): calibrated weights, ratios and their SEs to 1e-8
    from evalkit.survey.calibration import calibrated_ratios, register_aux
    fs, _ = _fixture()
    ref = pd.read_csv(FIX / "fixture_calibration.csv", dtype={"name": str})
    cells = fs["stratum"] + ":" + fs["hh_stratum"]
    aux, names = register_aux(cells, fs["household_size"])
    tot = ref[ref["what"] == "total"].set_index("name")["value"].reindex(names)
    assert not tot.isna().any()
    data = fs.assign(wrong=fs["household_size"] * (fs["surveyed_income_per_capita"] <= 3535),
                     persons=fs["household_size"], approve=fs["approves"].astype(float), one=1.0)
    est, w = calibrated_ratios(data, weight="weight", strata="stratum", psu="village_code", aux=aux,
                               totals=tot.to_numpy(), ratios={"income_share": ("wrong", "persons"),
                                                              "approval": ("approve", "one")})
    rw = ref[ref["what"] == "weight"].set_index("name")["value"].reindex(fs["household_id"].astype(str))
    np.testing.assert_allclose(w, rw.to_numpy(), rtol=1e-8)
    np.testing.assert_allclose(aux.T @ w, tot.to_numpy(), rtol=1e-8)
    for name in ("income_share", "approval"):
        r = ref[ref["name"] == name].set_index("what")["value"]
        assert est[name].est == pytest.approx(r["est"], rel=1e-8)
        assert est[name].se == pytest.approx(r["se"], rel=1e-8)
    # calibration moves the weights and changes the SE (it is credited in the variance)
    assert not np.allclose(w, fs["weight"])
