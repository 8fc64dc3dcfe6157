"""Village data, village assessment and the village workflow (issue 12)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from evalkit.assessment.village import VillageCriteria, conditions_met, village_verdicts
from evalkit.config import load_policy
from evalkit.data import load_dataset
from evalkit.errors import ExitAssessmentError
from evalkit.sae.ebp import area_indicators
from evalkit.sae.estimates import estimate_villages
from evalkit.synth.village_indicators import village_indicators
from evalkit.workflows import village


def test_village_indicators_table_is_generated_and_validated(small_province):
    ds = load_dataset(small_province, tables=["counties", "villages", "village_indicators"])
    assert ds.report.exit_code() == 0
    vi, v = ds["village_indicators"], ds["villages"]
    assert sorted(vi["village_code"]) == sorted(v["village_code"])
    assert vi[["hard_road", "power", "tap_water", "broadband", "bus_service", "clinic"]].dtypes.eq(bool).all()
    assert (vi["collective_income"] >= 0).all()
    # every village lies inside its county's bounding area (Yan'an: 107-111 E, 35-38 N)
    assert vi["longitude"].between(107, 111.5).all() and vi["latitude"].between(35, 38.5).all()


def test_village_indicators_have_their_own_stream():
    codes = np.array([f"610625001{i:03d}" for i in range(1, 41)])
    u = np.linspace(-0.5, 0.5, 40)
    a = village_indicators("610625", codes, u, u < -0.2, 2018, seed=3, coordinates=False)
    b = village_indicators("610625", codes, u, u < -0.2, 2018, seed=3, coordinates=False)
    pd.testing.assert_frame_equal(a, b)
    # richer villages (larger u) have more facilities: the process the generator claims
    fac = a[["hard_road", "power", "tap_water", "broadband", "bus_service", "clinic"]].sum(axis=1)
    assert fac[u > 0].mean() >= fac[u < -0.2].mean()


def test_bad_village_indicator_rows_are_quarantined(small_province, tmp_path):
    vi = pd.read_parquet(small_province / "village_indicators.parquet")
    vi.loc[0, "village_code"] = "999999001001"   # no such village
    vi.loc[1, "collective_income"] = np.nan      # required
    d = tmp_path / "vi"
    d.mkdir()
    for f in ("counties.parquet", "villages.parquet"):
        (d / f).write_bytes((small_province / f).read_bytes())
    vi.to_parquet(d / "village_indicators.parquet")
    ds = load_dataset(d, tables=["counties", "villages", "village_indicators"])
    q = ds.quarantine["village_indicators"]
    assert len(q) == 2 and len(ds["village_indicators"]) == len(vi) - 2
    assert q["_reasons"].str.contains("village").any() and q["_reasons"].str.contains("missing").any()


def test_village_criteria_and_verdicts():
    pol = load_policy()
    crit = VillageCriteria.from_policy(pol)
    assert crit.threshold("west") == 0.03 and crit.threshold("central") == 0.02
    ind = pd.DataFrame({"village_code": ["a", "b", "c"], "hard_road": [True, True, False], "power": True,
                        "tap_water": True, "broadband": True, "bus_service": True, "clinic": True,
                        "collective_income": [50000.0, 10000.0, 50000.0]})
    cond = conditions_met(ind, pd.Index(["a", "b", "c", "d"]), crit)
    assert cond["conditions_ok"].tolist()[:3] == [True, False, False] and pd.isna(cond["conditions_ok"].iloc[3])
    ok = pd.Series([True, True, True, True], dtype="boolean")
    v, o = village_verdicts(np.array([0.0, 0.01, 0.035, 0.0]), np.array([0.02, 0.04, 0.05, 0.01]),
                            np.array([0.01, 0.025, 0.04, np.nan]), ok, 0.03)
    assert v.tolist() == ["pass", "borderline", "fail", "unknown"]
    assert o.tolist() == ["pass", "pass", "fail", "unknown"]


def test_area_indicators_by_hand():
    # village 0: exited (2 persons, poor), non-registered (3, not poor), registered poor (1)
    area = np.array([0, 0, 0, 1])
    size = np.array([2, 3, 1, 4])
    group = np.array([0, 2, 1, 2])
    poor = np.array([[1.0], [0.0], [0.0], [1.0]])
    inc = np.array([[1000.0], [5000.0], [2000.0], [3000.0]])
    r = area_indicators(area, size, group, poor, inc, 2)
    np.testing.assert_allclose(r["poverty_incidence"][:, 0], [(1 + 2) / 6, 1.0])
    np.testing.assert_allclose(r["wrongly_exited_rate"][0, 0], 1.0)
    assert np.isnan(r["wrongly_exited_rate"][1, 0])
    np.testing.assert_allclose(r["mean_income"][:, 0], [(2000 + 15000 + 2000) / 6, 3000])


@pytest.fixture(scope="module")
def assessed(small_province):
    return village.assess_villages(small_province, "610632", method="ebp", policy=load_policy(), B=20, seed=1)


def test_village_workflow_writes_one_object_per_village(assessed, tmp_path):
    a = assessed
    paths = village.write_outputs(a, tmp_path, "zh")
    res = json.loads(paths["results"].read_text(encoding="utf-8"))
    assert len(res["villages"]) == len(a.villages)
    one = res["villages"][0]
    assert {"village_code", "village_name", "exit_verdict", "poverty_incidence", "mean_income"} <= set(one)
    assert set(one["poverty_incidence"]) == {"est", "mse", "lci", "uci", "cv", "method"}
    # every village gets a model estimate, sampled or not
    assert all(v["poverty_incidence"]["est"] is not None for v in res["villages"])
    assert paths["villages"].exists()


@pytest.mark.parametrize("method", ["ebp", "fh", "direct"])
def test_estimates_are_inside_their_intervals(assessed, method):
    est = estimate_villages(assessed.units, assessed.field_survey, method, B=20, seed=2)
    for k, f in est.frames.items():
        ok = f["est"].notna()
        e = f.loc[ok, "est"]
        assert (f.loc[ok, "lci"] <= e + 1e-9).all() and (e <= f.loc[ok, "uci"] + 1e-9).all()
        assert (f.loc[ok, "mse"] >= 0).all()
        if method != "direct":
            assert ok.all(), k
    # the direct estimate of a sampled village equals the weighted ratio computed here by hand
    fs = assessed.field_survey
    v = est.direct.est.index[0]
    s = fs[(fs["village_code"] == v)]
    w = s["household_size"] / s["prob_household"]
    np.testing.assert_allclose(est.direct.est.at[v, "mean_income"],
                               (w * s["surveyed_income_per_capita"]).sum() / w.sum(), rtol=1e-9)


def test_benchmarked_ebp_adds_up_to_the_county_direct_estimate_and_has_its_own_mse(assessed):
    cu, fs = assessed.units, assessed.field_survey
    est = estimate_villages(cu, fs, "ebp", B=20, seed=2)
    # the county's direct estimates by hand: Hajek ratios with the survey weights (both stages) and persons
    w = fs["weight"].to_numpy(float) * fs["household_size"].to_numpy(float)
    y = fs["surveyed_income_per_capita"].to_numpy(float)
    ex = (fs["hh_stratum"] == "exited").to_numpy()
    we = (w * ex * cu.poor_sample).sum() / (w * ex).sum()
    pers = cu.persons.sum()
    eb = est.ebp
    for k, target, pop in (("mean_income", (w * y).sum() / w.sum(), cu.persons.sum(axis=1)),
                           ("wrongly_exited_rate", we, cu.persons["exited"])):
        b = eb.est_benchmarked[k]
        ok = pop.to_numpy() > 0
        np.testing.assert_allclose((b[ok] * pop[ok]).sum() / pop[ok].sum(), target, rtol=1e-9)
        assert np.all(np.isfinite(eb.mse_benchmarked[k][ok])) and np.all(eb.mse_benchmarked[k][ok] >= 0)
    assert pers.sum() > 0
    f = est.frames["poverty_incidence"]
    assert {"mse_benchmarked", "lci_benchmarked", "uci_benchmarked"} <= set(f.columns)
    assert ((f["lci_benchmarked"] <= f["est_benchmarked"] + 1e-12) & (f["est_benchmarked"] <= f["uci_benchmarked"]
                                                                      + 1e-12)).all()
    # a direct estimate is preferred only with at least DIRECT_MIN_N sampled households
    from evalkit.sae.estimates import DIRECT_MIN_N
    for k, fr in est.frames.items():
        n = est.direct.n[k].reindex(fr.index).fillna(0)
        assert (n[fr["method"] == "direct"] >= DIRECT_MIN_N).all(), k


def test_a_county_without_a_field_survey_is_named(small_province, tmp_path):
    # a non-poverty county has no evaluators' sample: the error says so instead of "missing table"
    d = tmp_path / "nosurvey"
    d.mkdir()
    for p in small_province.iterdir():
        if p.name != "field_survey":
            (d / p.name).symlink_to(p)
    with pytest.raises(ExitAssessmentError, match="no field survey of county 610632"):
        village.assess_villages(d, "610632", method="ebp", policy=load_policy(), B=5, seed=1)
