"""The survey design object against hand-worked design-based formulas.

Stratified cluster sample, PSUs taken with replacement within strata (R ``survey``'s default):
the variance of a total is sum_h n_h/(n_h - 1) sum_i (z_hi - mean_h z)^2 with z_hi the weighted PSU
totals; a ratio's variance is that of the linearized variable (y - R x) / X.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from evalkit.errors import SurveyError
from evalkit.survey import SurveyDesign

# Two strata; stratum A has 3 PSUs, B has 2; two units per PSU.
DATA = pd.DataFrame({
    "stratum": ["A"] * 6 + ["B"] * 4,
    "psu": ["a1", "a1", "a2", "a2", "a3", "a3", "b1", "b1", "b2", "b2"],
    "w": [2.0, 2.0, 3.0, 3.0, 1.0, 1.0, 4.0, 4.0, 5.0, 5.0],
    "y": [1.0, 0.0, 2.0, 4.0, 3.0, 1.0, 0.0, 5.0, 2.0, 2.0],
    "x": [1.0, 1.0, 2.0, 1.0, 2.0, 2.0, 1.0, 3.0, 1.0, 2.0],
    "g": ["u", "v", "u", "u", "v", "v", "u", "v", "v", "u"],
})


def _var_total(z_unit: np.ndarray) -> float:
    """With-replacement variance of a weighted total from unit scores (already weighted)."""
    v = 0.0
    for _, sub in DATA.assign(z=z_unit).groupby("stratum"):
        zt = sub.groupby("psu")["z"].sum().to_numpy()
        n = len(zt)
        v += n / (n - 1) * ((zt - zt.mean()) ** 2).sum()
    return v


def _design(**kw) -> SurveyDesign:
    return SurveyDesign(DATA, weight="w", strata="stratum", psu="psu", **kw)


def test_total_mean_ratio_by_hand():
    d = _design()
    w, y, x = DATA["w"].to_numpy(), DATA["y"].to_numpy(), DATA["x"].to_numpy()
    assert (d.n_psus, d.n_strata, d.n) == (5, 2, 10)
    tot = d.total(DATA["y"])["all"]
    assert tot.est == pytest.approx((w * y).sum(), rel=1e-12)
    assert tot.se == pytest.approx(np.sqrt(_var_total(w * y)), rel=1e-10)
    # df = PSUs - strata; the t interval on it
    assert tot.df == 3
    q = stats.t.ppf(0.975, 3)
    assert (tot.lci, tot.uci) == (pytest.approx(tot.est - q * tot.se), pytest.approx(tot.est + q * tot.se))
    r_hat = (w * y).sum() / (w * x).sum()
    rat = d.ratio(DATA["y"], DATA["x"])["all"]
    assert rat.est == pytest.approx(r_hat, rel=1e-12)
    assert rat.se == pytest.approx(np.sqrt(_var_total(w * (y - r_hat * x) / (w * x).sum())), rel=1e-10)
    mean = d.mean(DATA["y"])["all"]
    m_hat = (w * y).sum() / w.sum()
    assert mean.est == pytest.approx(m_hat, rel=1e-12)
    assert mean.se == pytest.approx(np.sqrt(_var_total(w * (y - m_hat) / w.sum())), rel=1e-10)


def test_domain_estimates_and_joint_ratios():
    d = _design()
    w, y, x = DATA["w"].to_numpy(), DATA["y"].to_numpy(), DATA["x"].to_numpy()
    by = d.ratio(DATA["y"], DATA["x"], by=DATA["g"])
    for g in ("u", "v"):
        m = (DATA["g"] == g).to_numpy()
        r_g = (w * y * m).sum() / (w * x * m).sum()
        assert by[g].est == pytest.approx(r_g, rel=1e-12)
        assert by[g].se == pytest.approx(np.sqrt(_var_total(w * m * (y - r_g * x) / (w * x * m).sum())), rel=1e-10)
    # two ratios of the same sample jointly: the covariance of their linearized scores
    both = d.ratios({"r1": (y, x), "r2": (x, np.ones(len(x)))})
    r1, r2 = (w * y).sum() / (w * x).sum(), (w * x).sum() / w.sum()
    z1, z2 = w * (y - r1 * x) / (w * x).sum(), w * (x - r2) / w.sum()
    cov = (_var_total(z1 + z2) - _var_total(z1) - _var_total(z2)) / 2
    assert both.covariance[0, 1] == pytest.approx(cov, rel=1e-9)
    # a linear combination's SE from the joint covariance
    comb = both.combine({"r1": 2.0, "r2": -1.0}, constant=0.5)
    assert comb.est == pytest.approx(0.5 + 2 * r1 - r2, rel=1e-12)
    assert comb.se == pytest.approx(np.sqrt(_var_total(2 * z1 - z2)), rel=1e-9)


def test_proportion_and_errors():
    d = _design()
    p = d.prop(DATA["y"] > 1)["all"]
    w = DATA["w"].to_numpy()
    assert p.est == pytest.approx((w * (DATA["y"] > 1)).sum() / w.sum(), rel=1e-12)
    with pytest.raises(SurveyError, match="more than one stratum"):
        SurveyDesign(DATA.assign(stratum=["A"] * 5 + ["B"] * 5), weight="w", strata="stratum", psu="psu")
    lone = DATA[DATA["psu"] != "b2"]
    with pytest.raises(SurveyError, match=r"\['B'\].*single sampled"):
        SurveyDesign(lone, weight="w", strata="stratum", psu="psu", singleton="fail")
    assert SurveyDesign(lone, weight="w", strata="stratum", psu="psu").singleton_strata == ["B"]
    with pytest.raises(SurveyError, match="weight"):
        SurveyDesign(DATA.assign(w=0.0), weight="w", strata="stratum", psu="psu")
    with pytest.raises(SurveyError, match="values"):
        d.mean(np.ones(3))


def test_population_sizes_are_checked():
    # two stages without replacement need sensible population sizes; errors name the column
    fs = pd.read_csv(Path(__file__).parent / "fixtures_r" / "fixture_fpc.csv",
                     dtype={"household_id": str, "village_code": str, "county_code": str})
    with pytest.raises(SurveyError, match="pop_ssu .* needs pop_psu"):
        SurveyDesign(fs, weight="weight", strata="stratum", psu="village_code", pop_ssu="N_households")
    with pytest.raises(SurveyError, match="N_villages"):
        SurveyDesign(fs.assign(N_villages=3), weight="weight", strata="stratum", psu="village_code",
                     pop_psu="N_villages")
    with pytest.raises(SurveyError, match="N_households"):
        SurveyDesign(fs.assign(N_households=1), weight="weight", strata="stratum", psu="village_code",
                     pop_psu="N_villages", ssu_strata="hh_stratum", pop_ssu="N_households")
    # a census at both stages has no variance at all
    census = fs.assign(N_villages=fs.groupby("stratum")["village_code"].transform("nunique"),
                       N_households=fs.groupby(["village_code", "hh_stratum"])["household_id"].transform("size"))
    d = SurveyDesign(census, weight="weight", strata="stratum", psu="village_code", pop_psu="N_villages",
                     ssu_strata="hh_stratum", pop_ssu="N_households")
    assert d.finite_population and d.mean(fs["household_size"])["all"].se == 0


def test_a_variable_without_variation_is_estimated_without_a_design_effect():
    # svy refuses a design effect when nothing varies (e.g. no poor household in the sample): the
    # estimate is still exact, with SE 0.
    e = _design().mean(np.zeros(len(DATA)))["all"]
    assert (e.est, e.se, e.deff) == (0.0, 0.0, None)
