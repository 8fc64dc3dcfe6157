"""Tests of evalkit.survey: strata, two-stage selection, weights, survey filling, sample size."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from evalkit.config import load_policy
from evalkit.survey import (
    FIELD_SURVEY_COLUMNS,
    SAMPLE_COLUMNS,
    SampleDesign,
    draw_sample,
    household_strata,
    plan_sample_size,
    power_at,
    survey_from_truth,
)

YEAR = 2018


def make_county(seed: int = 0, county: str = "610101", n_villages: int = 30, share_poverty: float = 0.3,
                mean_hh: int = 60, year: int = YEAR) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """A small random county in the canonical model: villages, households, truth of ``year``."""
    rng = np.random.default_rng(seed)
    vcode = np.array([f"{county}{i:06d}" for i in range(1, n_villages + 1)])
    villages = pd.DataFrame({"village_code": vcode, "county_code": county, "township_name": "t",
                             "village_name": vcode, "is_poverty_village": rng.random(n_villages) < share_poverty})
    nh = rng.integers(mean_hh // 3, 2 * mean_hh, n_villages)
    v = np.repeat(vcode, nh)
    n = v.size
    pov = np.repeat(villages["is_poverty_village"].to_numpy(), nh)
    registered = rng.random(n) < np.where(pov, 0.35, 0.12)
    exit_year = np.where(registered & (rng.random(n) < 0.8), rng.integers(2015, 2020, n), -1)
    households = pd.DataFrame({
        "household_id": [f"{county}{i:010d}" for i in range(n)], "village_code": v, "county_code": county,
        "household_size": rng.integers(1, 7, n), "registered": registered,
        "poverty_type": "general", "main_cause": "illness",
        "registration_year": pd.array(np.where(registered, 2014, 0), dtype="Int64"),
        "exit_year": pd.array(exit_year, dtype="Int64"),
    })
    households.loc[households["exit_year"] < 0, "exit_year"] = pd.NA
    households.loc[~households["registered"], "registration_year"] = pd.NA
    truth = pd.DataFrame({"household_id": households["household_id"], "year": year, "county_code": county,
                          "true_income_per_capita": rng.lognormal(np.log(6000), 0.5, n)})
    for g in ("food_clothing", "education", "medical", "housing", "water"):
        truth[f"true_{g}_ok"] = rng.random(n) > 0.01
    truth["true_poor"] = False
    truth["true_approves"] = rng.random(n) < 0.95
    return villages, households, truth


@pytest.fixture(scope="module")
def county():
    return make_county()


# ---------------------------------------------------------------------------------------------
# design and strata
# ---------------------------------------------------------------------------------------------
def test_design_defaults_come_from_policy():
    sec = load_policy().section("survey")
    d = SampleDesign()
    assert d.villages_per_stratum == sec["villages_per_stratum"]
    assert d.households_per_village == sec["households_per_village"]
    assert d.village_selection == sec["village_selection"]
    assert d.confidence_level == sec["confidence_level"]
    assert d.singleton_method == sec["singleton_method"]
    with pytest.raises(ValueError, match="village_selection"):
        SampleDesign(village_selection="cluster")
    with pytest.raises(ValueError, match="keys"):
        SampleDesign(households_per_village={"exited": 1})
    with pytest.raises(ValueError, match="non-negative"):
        SampleDesign(villages_per_stratum={"poverty_village": -1, "non_poverty_village": 2})


def test_household_strata():
    hh = pd.DataFrame({
        "registered": [True, True, True, False, True, True],
        "exit_year": pd.array([2016, 2018, 2019, 2017, None, 2016], dtype="Int64"),
        "registration_year": pd.array([2014, 2014, 2014, None, 2014, 2019], dtype="Int64"),
    })
    # exited by 2018 / exited in 2018 / exits after 2018 / never registered (exit_year ignored) /
    # registered, never exited / registered only in 2019 (not on the register in 2018)
    assert household_strata(hh, 2018).tolist() == ["exited", "exited", "poor", "non_registered", "poor",
                                                   "non_registered"]


# ---------------------------------------------------------------------------------------------
# selection
# ---------------------------------------------------------------------------------------------
def test_draw_is_deterministic_and_order_free(county):
    villages, households, _ = county
    a = draw_sample(households, villages, YEAR, seed=7)
    b = draw_sample(households.sample(frac=1, random_state=1), villages.iloc[::-1], YEAR, seed=7)
    c = draw_sample(households, villages, YEAR, seed=8)
    pd.testing.assert_frame_equal(a, b)
    assert not a["household_id"].equals(c["household_id"])
    assert list(a.columns) == list(SAMPLE_COLUMNS)
    assert a["household_id"].is_unique
    np.testing.assert_allclose(a["weight"], 1 / (a["prob_village"] * a["prob_household"]))


def test_sizes_are_capped_per_village_and_stratum(county):
    villages, households, _ = county
    d = SampleDesign()
    s = draw_sample(households, villages, YEAR, d, seed=3)
    st = household_strata(households, YEAR)
    avail = households.assign(hh_stratum=st).groupby(["village_code", "hh_stratum"]).size()
    got = s.groupby(["village_code", "hh_stratum"]).size()
    want = np.minimum(avail.loc[got.index].to_numpy(), got.index.get_level_values(1).map(d.households_per_village))
    np.testing.assert_array_equal(got.to_numpy(), want)
    # conditional probability = m / M in the village x household stratum
    m_over_M = (got / avail.loc[got.index]).rename("p")
    chk = s.join(m_over_M, on=["village_code", "hh_stratum"])
    np.testing.assert_allclose(chk["prob_household"], chk["p"])
    nv = s.groupby("stratum")["village_code"].nunique()
    for stratum, n in d.villages_per_stratum.items():
        n_frame = int((villages["is_poverty_village"] == (stratum == "poverty_village")).sum())
        assert nv[stratum] == min(n, n_frame)


def _tiny():
    """Five villages: poverty v1 (6 households), v2 (4); non-poverty v3 (5), v4 (5), v5 (10)."""
    sizes = {"v1": 6, "v2": 4, "v3": 5, "v4": 5, "v5": 10}
    villages = pd.DataFrame({"village_code": list(sizes), "county_code": "610101",
                             "township_name": "t", "village_name": list(sizes),
                             "is_poverty_village": [True, True, False, False, False]})
    v = np.repeat(list(sizes), list(sizes.values()))
    # in every village: households 0-2 exited, 3 poor, the rest non-registered
    k = pd.Series(v).groupby(v).cumcount().to_numpy()
    households = pd.DataFrame({
        "household_id": [f"{x}-{i:02d}" for x, i in zip(v, k)], "village_code": v, "county_code": "610101",
        "household_size": 2, "registered": k <= 3,
        "exit_year": pd.array(np.where(k <= 2, 2017, 0), dtype="Int64").astype("Int64"),
    })
    households.loc[k > 2, "exit_year"] = pd.NA
    return villages, households


@pytest.mark.parametrize("selection", ["pps", "srs"])
def test_probabilities_by_hand_tiny_frame(selection):
    villages, households = _tiny()
    d = SampleDesign(villages_per_stratum={"poverty_village": 5, "non_poverty_village": 1},
                     households_per_village={"exited": 2, "poor": 1, "non_registered": 2},
                     village_selection=selection)
    s = draw_sample(households, villages, YEAR, d, seed=11)
    # poverty stratum: 5 requested, 2 exist -> both taken with certainty (take-all stratum)
    pv = s[s["stratum"] == "poverty_village"]
    assert set(pv["village_code"]) == {"v1", "v2"} and (pv["prob_village"] == 1).all()
    assert s.attrs["take_all_strata"] == [{"county_code": "610101", "stratum": "poverty_village", "n_villages": 2}]
    # non-poverty stratum: one village of v3 (5 households), v4 (5), v5 (10); total size 20
    npv = s[s["stratum"] == "non_poverty_village"]
    assert npv["village_code"].nunique() == 1
    chosen = npv["village_code"].iloc[0]
    expected = {"v3": 5 / 20, "v4": 5 / 20, "v5": 10 / 20} if selection == "pps" else {x: 1 / 3 for x in
                                                                                          ("v3", "v4", "v5")}
    np.testing.assert_allclose(npv["prob_village"], expected[chosen])
    # households: 3 exited (take 2: 2/3), 1 poor (1/1), M - 4 non-registered (take 2)
    M = households.groupby("village_code").size()
    for _, r in s.iterrows():
        m_non = M[r["village_code"]] - 4
        want = {"exited": 2 / 3, "poor": 1.0}.get(r["hh_stratum"]) or min(2, m_non) / m_non
        assert r["prob_household"] == pytest.approx(want)
        assert r["weight"] == pytest.approx(1 / (r["prob_village"] * want))
    # 2 exited + 1 poor + min(2, M - 4) non-registered per village
    assert s.groupby("village_code").size().to_dict() == {"v1": 5, "v2": 3, chosen: 3 + min(2, M[chosen] - 4)}


def test_pps_weights_are_self_weighting_for_household_count(county):
    # PPS on the number of households: sum of weights = households in the frame, in every draw.
    villages, households, _ = county
    for seed in range(3):
        s = draw_sample(households, villages, YEAR, seed=seed)
        assert s["weight"].sum() == pytest.approx(len(households))


@pytest.mark.parametrize("selection", ["pps", "srs"])
def test_weighted_totals_are_unbiased(selection):
    villages, households, _ = make_county(seed=5, n_villages=20, mean_hh=40)
    d = SampleDesign(village_selection=selection)
    st = household_strata(households, YEAR)
    truth = np.array([len(households), (st == "exited").sum(), households["household_size"].sum()], float)
    R = 300
    est = np.empty((R, 3))
    for r in range(R):
        s = draw_sample(households, villages, YEAR, d, seed=r)
        w = s["weight"].to_numpy()
        est[r] = [w.sum(), (w * (s["hh_stratum"] == "exited")).sum(), (w * s["household_size"]).sum()]
    mean, se = est.mean(0), est.std(0, ddof=1) / np.sqrt(R)
    # within 4 Monte Carlo standard errors (or exact, where the design makes the total fixed)
    assert np.all(np.abs(mean - truth) <= 4 * se + 1e-6 * truth), (mean, se, truth)


def test_several_counties_are_sampled_apart():
    v1, h1, _ = make_county(seed=1, county="610101", n_villages=12)
    v2, h2, _ = make_county(seed=2, county="610102", n_villages=8)
    s = draw_sample(pd.concat([h1, h2]), pd.concat([v1, v2]), YEAR, seed=0)
    per = s.groupby(["county_code", "stratum"])["village_code"].nunique()
    for (c, stratum), n in per.items():
        vv = v1 if c == "610101" else v2
        n_frame = int((vv["is_poverty_village"] == (stratum == "poverty_village")).sum())
        assert n == min(SampleDesign().villages_per_stratum[stratum], n_frame)


def test_unknown_village_is_an_error(county):
    villages, households, _ = county
    with pytest.raises(ValueError, match="not in villages"):
        draw_sample(households, villages.iloc[1:], YEAR)


# ---------------------------------------------------------------------------------------------
# survey from truth
# ---------------------------------------------------------------------------------------------
def test_survey_from_truth(county):
    villages, households, truth = county
    s = draw_sample(households, villages, YEAR, seed=2)
    fs = survey_from_truth(s, truth, YEAR)
    assert list(fs.columns) == list(FIELD_SURVEY_COLUMNS)
    assert (fs["survey_year"] == YEAR).all() and len(fs) == len(s)
    t = truth.set_index("household_id").loc[fs["household_id"]]
    np.testing.assert_array_equal(fs["surveyed_income_per_capita"], t["true_income_per_capita"])
    np.testing.assert_array_equal(fs["housing_ok"], t["true_housing_ok"])
    np.testing.assert_array_equal(fs["approves"], t["true_approves"])
    with pytest.raises(ValueError, match="no truth row"):
        survey_from_truth(s, truth[~truth["household_id"].isin(s["household_id"].iloc[:3])], YEAR)
    with pytest.raises(ValueError, match="no truth row"):
        survey_from_truth(s, truth, YEAR + 1)


# ---------------------------------------------------------------------------------------------
# sample size and power
# ---------------------------------------------------------------------------------------------
def test_plan_sample_size_matches_closed_form():
    p, t, conf, pw, deff = 0.005, 0.02, 0.95, 0.8, 2.0
    plan = plan_sample_size(p, t, conf, pw, deff, households_per_village=10, mean_household_size=3.2)
    zc, zp = norm.ppf(0.975), norm.ppf(0.8)  # upper limit of the two-sided 95% CI
    exact = deff * p * (1 - p) * (zc + zp) ** 2 / (t - p) ** 2
    # svy rounds each step up, so n can exceed ceil(exact) by one or two
    assert np.ceil(exact) <= plan["n_persons"] <= np.ceil(exact) + 2
    assert plan["n_households"] == np.ceil(plan["n_persons"] / 3.2)
    assert plan["n_villages"] == np.ceil(plan["n_households"] / 10)
    assert plan["power_achieved"] >= pw and plan["power_achieved"] == pytest.approx(pw, abs=0.01)
    one = plan_sample_size(p, t, conf, pw, deff, two_sided=False)
    assert one["n_persons"] < plan["n_persons"]
    # approval: a minimum rate, expected above the threshold
    ap = plan_sample_size(0.95, 0.90, conf, pw, deff)
    assert ap["power_achieved"] == pytest.approx(pw, abs=0.01)
    with pytest.raises(ValueError):
        plan_sample_size(0.02, 0.02)


def test_power_at_is_monotone():
    ns = [100, 400, 1600, 6400]
    pw = [power_at(n, 0.005, 0.02, 0.95, 2.0) for n in ns]
    assert all(a < b for a, b in zip(pw, pw[1:]))
    assert power_at(400, 0.0, 0.02) == 1.0  # zero variance: degenerate, documented
    plan = plan_sample_size(0.01, 0.02, 0.95, 0.9, 1.5)
    assert power_at(plan["n_persons"], 0.01, 0.02, 0.95, 1.5) == pytest.approx(0.9, abs=0.01)
