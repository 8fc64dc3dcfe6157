"""Poverty measures with design-based uncertainty, against independently worked numbers.

Expected SEs are computed here with the with-replacement formula of a stratified cluster sample
(PSUs with replacement within strata, as R ``survey``'s default and tests/test_design.py):
var(total) = sum_h n_h/(n_h - 1) sum_i (z_hi - mean_h z)^2 with z_hi the weighted PSU totals of a
unit score z. A person-weighted mean R = sum w m t / sum w m has the score w m (t - R) / sum w m.
The Gini's score is its numerical derivative in each design weight (finite differences of
``evalkit.measures.gini``), and a delete-one-PSU jackknife written here checks it again.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from evalkit.errors import MeasureError, SurveyError
from evalkit.measures import alkire_foster, gini, poverty_measures
from evalkit.survey import SurveyDesign
from evalkit.survey.poverty import alkire_foster_design, poverty_measures_design

Z = 3000.0
# Two strata; stratum A has 3 PSUs, B has 2; two households per PSU.
# Population weights w x m = [2, 6, 6, 12, 1, 2, 12, 4, 10, 10], total 65.
# Poor (y <= 3000): 1000 (2), 2000 (6), 2500 (1), 3000 (2), 500 (12), 2900 (10) -> 33 persons;
# FGT0 = 33/65; with poor_if="lt" the household on the line (2 persons) is not poor: 31/65.
DATA = pd.DataFrame({
    "stratum": ["A"] * 6 + ["B"] * 4,
    "psu": ["a1", "a1", "a2", "a2", "a3", "a3", "b1", "b1", "b2", "b2"],
    "w": [2.0, 2.0, 3.0, 3.0, 1.0, 1.0, 4.0, 4.0, 5.0, 5.0],
    "m": [1, 3, 2, 4, 1, 2, 3, 1, 2, 2],
    "y": [1000.0, 3500.0, 2000.0, 4000.0, 2500.0, 3000.0, 500.0, 6000.0, 2900.0, 5000.0],
    "g": ["u", "v", "u", "u", "v", "v", "u", "v", "v", "u"],
    "edu": [True, True, False, True, False, True, False, True, False, True],
    "health": [True, False, False, True, True, True, False, True, True, False],
    "house": [True, True, True, False, False, True, False, True, True, True],
})
W = DATA["w"].to_numpy()
M = DATA["m"].to_numpy(dtype=float)
Y = DATA["y"].to_numpy()


def _var_total(z_unit: np.ndarray, data: pd.DataFrame = DATA) -> float:
    """With-replacement variance of a weighted total from unit scores (already weighted)."""
    v = 0.0
    for _, sub in data.assign(z=z_unit).groupby("stratum"):
        zt = sub.groupby("psu")["z"].sum().to_numpy()
        n = len(zt)
        v += n / (n - 1) * ((zt - zt.mean()) ** 2).sum()
    return v


def _se_person_mean(t: np.ndarray, dom: np.ndarray | None = None) -> tuple[float, float]:
    """(estimate, SE) of sum w m t / sum w m over a domain, by the ratio's linearized score."""
    d = np.ones(len(t), dtype=bool) if dom is None else dom
    wm = W * M * d
    r = (wm * t).sum() / wm.sum()
    return r, math.sqrt(_var_total(wm * (t - r) / wm.sum()))


def _gini_score(y: np.ndarray, w: np.ndarray, m: np.ndarray, dom: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """w_k dG/dw_k by central differences of evalkit.measures.gini on the domain (0 outside)."""
    out = np.zeros(len(y))
    for k in np.flatnonzero(dom):
        up, dn = w.copy(), w.copy()
        up[k] *= 1 + h
        dn[k] *= 1 - h
        out[k] = (gini(y[dom], (up * m)[dom]) - gini(y[dom], (dn * m)[dom])) / (2 * h)
    return out


def _design(data: pd.DataFrame = DATA) -> SurveyDesign:
    return SurveyDesign(data, weight="w", strata="stratum", psu="psu")


def _by_hand_terms(y: np.ndarray, z: float, strict: bool = False) -> dict[str, np.ndarray]:
    poor = (y < z) if strict else (y <= z)
    gap = np.where(poor, (z - y) / z, 0.0)
    return {"fgt0": poor.astype(float), "fgt1": gap, "fgt2": gap ** 2,
            "watts": np.where(poor, np.log(z / np.where(poor & (y > 0), y, 1.0)), 0.0)}


# ---------------------------------------------------------------------------------------------
# FGT, Watts: estimates and SEs by hand
# ---------------------------------------------------------------------------------------------
def test_fgt_watts_se_by_hand_overall_and_by_domain():
    d = _design()
    out = poverty_measures_design(d, DATA, "y", Z, weight="w", persons="m").set_index("measure")
    assert out.loc["fgt0", "est"] == pytest.approx(33 / 65, rel=1e-12)
    q = stats.t.ppf(0.975, 3)  # df = 5 PSUs - 2 strata
    for meas, t in _by_hand_terms(Y, Z).items():
        est, se = _se_person_mean(t)
        row = out.loc[meas]
        assert row["est"] == pytest.approx(est, rel=1e-12)
        assert row["se"] == pytest.approx(se, rel=1e-9)
        assert row["df"] == 3 and row["n"] == 10
        assert row["lci"] == pytest.approx(est - q * se, rel=1e-9)
        assert row["uci"] == pytest.approx(est + q * se, rel=1e-9)
    by = poverty_measures_design(d, DATA, "y", Z, weight="w", persons="m", by="g")
    assert list(by.columns) == ["g", "measure", "est", "se", "lci", "uci", "df", "n", "deff"]
    assert by["g"].tolist() == ["u"] * 5 + ["v"] * 5
    for g in ("u", "v"):
        dom = (DATA["g"] == g).to_numpy()
        sub = by[by["g"] == g].set_index("measure")
        for meas, t in _by_hand_terms(Y, Z).items():
            est, se = _se_person_mean(t, dom)
            assert sub.loc[meas, "est"] == pytest.approx(est, rel=1e-12)
            assert sub.loc[meas, "se"] == pytest.approx(se, rel=1e-9)
        assert (sub["n"] == dom.sum()).all()


def test_point_estimates_identical_to_the_measures():
    d = _design()
    for by in (None, "g", ["g", "stratum"]):
        for poor_if in ("le", "lt"):
            des = poverty_measures_design(d, DATA, "y", Z, weight="w", persons="m", by=by, poor_if=poor_if)
            pm = poverty_measures(DATA, "y", Z, by=by, weight="w", persons="m", poor_if=poor_if)
            assert des["est"].to_numpy().tolist() == pm["value"].to_numpy().tolist()  # exactly
            assert des["measure"].tolist() == pm["measure"].tolist()
    # Missing keys form their own group, in the same order as poverty_measures
    data = DATA.assign(g=DATA["g"].where(DATA.index % 3 != 0, None), k=[2, 1, 2, 1, np.nan, 1, 2, 2, 1, 2])
    des = poverty_measures_design(_design(data), data, "y", Z, weight="w", persons="m", by=["k", "g"])
    pm = poverty_measures(data, "y", Z, by=["k", "g"], weight="w", persons="m")
    assert des[["k", "g", "measure"]].equals(pm[["k", "g", "measure"]])
    np.testing.assert_array_equal(des["est"].to_numpy(), pm["value"].to_numpy())
    af = alkire_foster_design(d, DATA, ["edu", "health", "house"], k=1 / 3, weight="w", persons="m", by="g")
    ref = alkire_foster(DATA, ["edu", "health", "house"], k=1 / 3, by="g", weight="w", persons="m")
    for g in ("u", "v"):
        for meas in ("H", "A", "M0"):
            got = af.loc[(af["g"] == g) & (af["measure"] == meas), "est"].item()
            assert got == ref.loc[(ref["g"] == g) & (ref["measure"] == meas), "value"].item()


def test_poor_if_strict_option():
    # The household at y = 3000 = z (w 1, m 2) is poor by default (docs/policy.md §2: income must be
    # strictly above the line) and not poor with poor_if="lt": FGT0 33/65 -> 31/65.
    d = _design()
    lt = poverty_measures_design(d, DATA, "y", Z, weight="w", persons="m", poor_if="lt").set_index("measure")
    assert lt.loc["fgt0", "est"] == pytest.approx(31 / 65, rel=1e-12)
    est, se = _se_person_mean(_by_hand_terms(Y, Z, strict=True)["fgt0"])
    assert lt.loc["fgt0", "se"] == pytest.approx(se, rel=1e-9)
    with pytest.raises(MeasureError, match="poor_if"):
        poverty_measures_design(d, DATA, "y", Z, weight="w", poor_if="<")


# ---------------------------------------------------------------------------------------------
# Gini
# ---------------------------------------------------------------------------------------------
def test_gini_se_equals_the_numerical_linearization():
    d = _design()
    out = poverty_measures_design(d, DATA, "y", Z, weight="w", persons="m", by="g")
    allrow = poverty_measures_design(d, DATA, "y", Z, weight="w", persons="m").set_index("measure").loc["gini"]
    everyone = np.ones(len(DATA), dtype=bool)
    assert allrow["est"] == pytest.approx(gini(Y, W * M), rel=1e-12)
    assert allrow["se"] == pytest.approx(math.sqrt(_var_total(_gini_score(Y, W, M, everyone))), rel=1e-5)
    for g in ("u", "v"):
        dom = (DATA["g"] == g).to_numpy()
        row = out[(out["g"] == g) & (out["measure"] == "gini")].iloc[0]
        assert row["est"] == pytest.approx(gini(Y[dom], (W * M)[dom]), rel=1e-12)
        assert row["se"] == pytest.approx(math.sqrt(_var_total(_gini_score(Y, W, M, dom))), rel=1e-5)


def _jackknife_gini_se(data: pd.DataFrame) -> float:
    """Delete-one-PSU jackknife (JKn): PSU j of stratum h dropped, the others of h reweighted n_h/(n_h - 1)."""
    y, w, m = data["y"].to_numpy(), data["w"].to_numpy(), data["m"].to_numpy(dtype=float)
    v = 0.0
    for h in data["stratum"].unique():
        in_h = (data["stratum"] == h).to_numpy()
        psus = data.loc[in_h, "psu"].unique()
        n_h = len(psus)
        reps = []
        for p in psus:
            drop = (data["psu"] == p).to_numpy()
            wr = np.where(in_h, w * n_h / (n_h - 1), w)
            wr = np.where(drop, 0.0, wr)
            reps.append(gini(y, wr * m))
        reps = np.array(reps)
        v += (n_h - 1) / n_h * ((reps - reps.mean()) ** 2).sum()
    return math.sqrt(v)


def test_gini_se_close_to_a_delete_one_psu_jackknife():
    # 3 strata x 15 PSUs x 8 households: linearization and jackknife agree to a few per cent
    # (they differ at second order only).
    rng = np.random.default_rng(11)
    n_psu, per = 45, 8
    psu = np.repeat(np.arange(n_psu), per)
    data = pd.DataFrame({
        "stratum": (psu % 3).astype(str), "psu": psu.astype(str),
        "w": np.repeat(rng.uniform(10, 40, n_psu), per),
        "m": rng.integers(1, 7, n_psu * per),
        "y": np.repeat(rng.lognormal(0, 0.3, n_psu), per) * rng.lognormal(8.3, 0.7, n_psu * per),
    })
    row = poverty_measures_design(_design(data), data, "y", Z, weight="w", persons="m") \
        .set_index("measure").loc["gini"]
    jk = _jackknife_gini_se(data)
    assert row["se"] == pytest.approx(jk, rel=0.05)


# ---------------------------------------------------------------------------------------------
# Alkire-Foster
# ---------------------------------------------------------------------------------------------
def test_alkire_foster_se_by_hand():
    # Deprived (False): scores c = (number of failed dimensions)/3; k = 1/3 -> poor if any failure.
    d = _design()
    dims = ["edu", "health", "house"]
    out = alkire_foster_design(d, DATA, dims, k=1 / 3, weight="w", persons="m").set_index("measure")
    c = (~DATA[dims]).sum(axis=1).to_numpy() / 3
    poor = (c >= 1 / 3).astype(float)
    for meas, t in (("H", poor), ("M0", c * poor)):
        est, se = _se_person_mean(t)
        assert out.loc[meas, "est"] == pytest.approx(est, rel=1e-12)
        assert out.loc[meas, "se"] == pytest.approx(se, rel=1e-9)
    # A = sum w m c poor / sum w m poor: ratio score w m (c poor - A poor) / sum w m poor
    wm = W * M
    a = (wm * c * poor).sum() / (wm * poor).sum()
    assert out.loc["A", "est"] == pytest.approx(a, rel=1e-12)
    assert out.loc["A", "se"] == pytest.approx(math.sqrt(_var_total(wm * (c * poor - a * poor) / (wm * poor).sum())),
                                               rel=1e-9)
    assert out.index.tolist() == ["H", "A", "M0"]


def test_alkire_foster_group_without_poor_has_nan_intensity_and_a_note():
    d = _design()
    data = DATA.assign(edu=True, health=True, house=True)
    data.loc[DATA["g"] == "u", "edu"] = False  # only domain u has poor households
    out = alkire_foster_design(d, data, ["edu", "health", "house"], k=1 / 3, weight="w", by="g")
    v = out[out["g"] == "v"].set_index("measure")
    assert v.loc["H", "est"] == 0.0 and v.loc["H", "se"] == 0.0 and v.loc["M0", "est"] == 0.0
    assert np.isnan(v.loc["A", "est"]) and np.isnan(v.loc["A", "se"])
    u = out[out["g"] == "u"].set_index("measure")
    assert u.loc["A", "est"] == pytest.approx(1 / 3) and u.loc["A", "se"] == pytest.approx(0.0, abs=1e-12)
    assert [n.key for n in out.attrs["notes"]] == ["note_af_intensity_undefined_groups"]
    assert out.attrs["notes"][0].fields["groups"] == ["v"]


# ---------------------------------------------------------------------------------------------
# Undefined measures, degenerate samples, bad input
# ---------------------------------------------------------------------------------------------
def test_zero_income_makes_watts_alone_nan_in_its_domain():
    d = _design()
    data = DATA.assign(y=DATA["y"].where(DATA.index != 0, 0.0))  # household 0 (domain u) has no income
    out = poverty_measures_design(d, data, "y", Z, weight="w", persons="m", by="g")
    u = out[out["g"] == "u"].set_index("measure")
    v = out[out["g"] == "v"].set_index("measure")
    assert np.isnan(u.loc["watts", ["est", "se", "lci", "uci"]].astype(float)).all()
    assert u.loc[["fgt0", "fgt1", "fgt2", "gini"], "se"].notna().all()
    assert v["se"].notna().all()
    dom = (DATA["g"] == "v").to_numpy()
    assert v.loc["watts", "se"] == pytest.approx(_se_person_mean(_by_hand_terms(Y, Z)["watts"], dom)[1], rel=1e-9)
    y0 = data["y"].to_numpy()
    udom = (DATA["g"] == "u").to_numpy()
    assert u.loc["fgt1", "se"] == pytest.approx(_se_person_mean(_by_hand_terms(y0, Z)["fgt1"], udom)[1], rel=1e-9)
    notes = out.attrs["notes"]
    assert [n.key for n in notes] == ["note_watts_undefined_groups"]
    assert notes[0].fields == {"n": 1, "groups": ["u"]}
    assert "Watts" in notes[0].render("en") and "Watts" in notes[0].render("zh")


def test_no_poor_household_gives_zero_with_zero_se():
    # svy cannot compute a design effect for a variable without variation; the measure is then
    # exact (SE 0) and its df/n are svy's for the same domains.
    d = _design()
    out = poverty_measures_design(d, DATA, "y", 100.0, weight="w", persons="m", by="g")
    pov = out[out["measure"] != "gini"]
    assert (pov["est"] == 0).all() and (pov["se"] == 0).all() and (pov["lci"] == 0).all()
    assert out["n"].tolist() == [5] * 10
    assert out[out["measure"] == "gini"]["se"].gt(0).all()


def test_the_data_must_be_the_designs_sample():
    d = _design()
    with pytest.raises(SurveyError, match="rows"):
        poverty_measures_design(d, DATA.iloc[:5], "y", Z, weight="w")
    with pytest.raises(SurveyError, match="weight"):
        poverty_measures_design(d, DATA, "y", Z, weight="m")
    with pytest.raises(SurveyError, match="lacks"):
        poverty_measures_design(d, DATA, "y", Z, weight="nope")


# ---------------------------------------------------------------------------------------------
# Coverage on a synthetic population
# ---------------------------------------------------------------------------------------------
def _population(rng: np.random.Generator) -> pd.DataFrame:
    n_strata, psus, per = 4, 40, 12
    n = n_strata * psus * per
    psu = np.repeat(np.arange(n_strata * psus), per)
    village = rng.lognormal(0, 0.35, n_strata * psus)[psu]
    return pd.DataFrame({
        "stratum": (psu // psus).astype(str), "psu": psu.astype(str),
        "m": rng.integers(1, 7, n),
        "y": village * rng.lognormal(8.1, 0.6, n) * np.repeat([0.8, 0.9, 1.0, 1.2], psus * per),
        "edu": rng.random(n) > 0.2, "health": rng.random(n) > 0.3, "house": rng.random(n) > 0.25,
    })


@pytest.mark.slow
def test_interval_coverage_by_simulation():
    # 200 stratified cluster samples (8 of 40 villages per stratum, all 12 households); PSUs drawn
    # without replacement, the variance computed with replacement (slightly conservative).
    rng = np.random.default_rng(2026)
    pop = _population(rng)
    truth = poverty_measures(pop, "y", Z, persons="m").set_index("measure")["value"]
    af_truth = alkire_foster(pop, ["edu", "health", "house"], k=1 / 3, persons="m").set_index("measure")["value"]
    hits: dict[str, int] = {}
    reps = 200
    for _ in range(reps):
        chosen = np.concatenate([rng.choice(np.unique(pop.loc[pop["stratum"] == s, "psu"]), 8, replace=False)
                                 for s in "0123"])
        smp = pop[pop["psu"].isin(chosen)].reset_index(drop=True).assign(w=40 / 8)
        d = _design(smp)
        res = pd.concat([
            poverty_measures_design(d, smp, "y", Z, weight="w", persons="m"),
            alkire_foster_design(d, smp, ["edu", "health", "house"], k=1 / 3, weight="w", persons="m"),
        ]).set_index("measure")
        for meas, true in [*truth.items(), *((k, af_truth[k]) for k in ("H", "A", "M0"))]:
            hits[meas] = hits.get(meas, 0) + int(res.loc[meas, "lci"] <= true <= res.loc[meas, "uci"])
    cover = {k: v / reps for k, v in hits.items()}
    # Binomial SE of a 95% coverage over 200 samples is 1.5 points: accept 0.90..0.995.
    assert all(0.90 <= c <= 0.995 for c in cover.values()), cover


# ---------------------------------------------------------------------------------------------
# R survey cross-check (numbers committed; the test does not need R)
# ---------------------------------------------------------------------------------------------
# R 4.x, survey 4.1-1, on DATA with z = 3000 (poor: y <= z; AF scores c = failed dimensions / 3,
# k = 1/3):
#   des <- svydesign(ids=~psu, strata=~stratum, weights=~w, data=d)
#   svyratio(~I(m * t), ~m, des)   for t = FGT0, FGT1, FGT2, Watts, AF poor, AF censored score
#   svyratio(~M0, ~H, des)         for A (M0, H the person-weighted numerators)
#   svyby(~f1, ~g, des, svyratio, denominator=~m)
R_SURVEY = {  # measure: (estimate, SE)
    "fgt0": (0.507692307692, 0.0893609459619), "fgt1": (0.212820512821, 0.163268362178),
    "fgt2": (0.152735042735, 0.139908184069), "watts": (0.410037937389, 0.35585283915),
    "H": (0.876923076923, 0.0883585515968), "M0": (0.451282051282, 0.111629804406),
    "A": (0.514619883041, 0.1674435521),
}
R_FGT1_BY_G = {"u": (0.3174603174603, 0.2434895064105), "v": (0.0217391304348, 0.0124279035434)}


def test_against_r_survey_numbers():
    d = _design()
    res = pd.concat([
        poverty_measures_design(d, DATA, "y", Z, weight="w", persons="m"),
        alkire_foster_design(d, DATA, ["edu", "health", "house"], k=1 / 3, weight="w", persons="m"),
    ]).set_index("measure")
    for meas, (est, se) in R_SURVEY.items():
        assert res.loc[meas, "est"] == pytest.approx(est, rel=1e-10)
        assert res.loc[meas, "se"] == pytest.approx(se, rel=1e-9)
    by = poverty_measures_design(d, DATA, "y", Z, weight="w", persons="m", by="g")
    for g, (est, se) in R_FGT1_BY_G.items():
        row = by[(by["g"] == g) & (by["measure"] == "fgt1")].iloc[0]
        assert (row["est"], row["se"]) == (pytest.approx(est, rel=1e-10), pytest.approx(se, rel=1e-9))
