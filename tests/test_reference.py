"""Reference facts shipped with the package, and the profiles that take poverty status from them.

Expected numbers are the published ones (docs/policy.md §6, [R1]-[R3]), typed here by hand from
the releases: Shaanxi's exit batches 4 + 23 + 29 = 56, the national counts 28, 125, 283, 344, 52.
"""
from __future__ import annotations

from collections import Counter

import pytest

from evalkit import geo, reference, synth
from evalkit.config import load_policy
from evalkit.errors import ParameterError

POLICY = load_policy()

BATCH_2017 = {"610621": "延长县", "610825": "定边县", "610803": "横山区", "610730": "佛坪县"}
# Yan'an's three national poverty counties and Tongchuan's three (人民网 2019-05-07; 2020-02-27).
YANAN = {"610621": 2017, "610622": 2018, "610630": 2018}
TONGCHUAN = {"610222": 2018, "610203": 2019, "610204": 2019}


def test_shaanxi_poverty_counties_batches_and_codes():
    pc = reference.poverty_counties("61")
    assert len(pc) == 56 and pc["county_code"].is_unique
    assert Counter(pc["exit_year"]) == {2017: 4, 2018: 23, 2019: 29}
    first = pc[pc["exit_year"] == 2017]
    assert dict(zip(first["county_code"], first["county_name"])) == BATCH_2017
    exits = reference.poverty_county_exits("61")
    assert {c: exits[c] for c in YANAN} == YANAN
    assert {c: exits[c] for c in TONGCHUAN} == TONGCHUAN
    assert "610102" not in exits and "610104" not in exits  # 新城区, 莲湖区: central Xi'an
    assert "610626" not in exits  # 吴起: removed from the list in 2012
    # every code is a real county-level unit of the administrative index, under its current name
    units = geo.county_table("61").set_index("county_code")["county_name"]
    assert pc["county_code"].isin(units.index).all()
    assert (units.reindex(pc["county_code"]).to_numpy() == pc["county_name"].to_numpy()).all()
    assert (pc["source"].str.len() > 20).all()
    assert reference.poverty_counties("44").empty  # not shipped: unknown, not "none"


def test_national_exit_counts_sum_to_832():
    n = reference.national_exit_counts()
    assert n["exit_year"].tolist() == [2016, 2017, 2018, 2019, 2020]
    assert n["counties"].tolist() == [28, 125, 283, 344, 52]
    assert n["counties"].sum() == 832
    assert n["cumulative"].tolist() == [28, 153, 436, 780, 832]
    assert (n["source"].str.len() > 20).all()


def test_exit_thresholds_agree_with_the_default_policy():
    t = reference.exit_thresholds()
    county = t[t["level"] == "county"]
    assert len(county) == 5  # incidence (central, west), wrongly exited, missed, approval
    for region in ("central", "west"):
        pol = POLICY.exit_thresholds(region)
        rows = county[county["region"].isin([region, "all"])]
        got = {r.criterion: {"value": r.value, "direction": r.direction} for r in rows.itertuples()}
        assert got == pol
    assert (t["source"].str.len() > 10).all()


def test_rural_income_and_poverty_lines_agree_with_the_policy():
    nat = reference.rural_income("CN")
    assert dict(zip(nat["year"], nat["value"])) == {
        2014: 10489, 2015: 11422, 2016: 12363, 2017: 13432, 2018: 14617, 2019: 16021, 2020: 17131, 2021: 18931}
    for r in nat.itertuples():
        got = POLICY.rural_income(r.year)
        assert (got.value, got.basis, got.assumed) == (r.value, "national", False)
    prov = reference.rural_income()
    prov = prov[prov["area_code"] != "CN"]
    assert len(prov) == 7
    for r in prov.itertuples():
        got = POLICY.rural_income(r.year, r.area_code)
        assert (got.value, got.basis, got.assumed) == (r.value, "province", False), r
    for r in reference.poverty_lines().itertuples():
        assert POLICY.poverty_line(r.year) == r.value


def test_unknown_reference_table():
    with pytest.raises(ParameterError, match="unknown reference table"):
        reference.reference_table("counties_of_atlantis")


def test_shaanxi_profile_takes_poverty_counties_from_the_reference():
    prof = synth.profile_counties("shaanxi", seed=3)
    pov = {s.county_code: s.planned_exit_year for s in prof.counties if s.is_poverty_county}
    assert pov == reference.poverty_county_exits("61")
    assert Counter(pov.values()) == {2017: 4, 2018: 23, 2019: 29}
    assert all(s.planned_exit_year is None for s in prof.counties if not s.is_poverty_county)
    # the same for any seed: status is real, not drawn
    other = synth.profile_counties("shaanxi", seed=4)
    assert {s.county_code for s in other.counties if s.is_poverty_county} == set(pov)


def test_demo_real_profile_has_all_three_batches_and_demo_is_unchanged():
    prof = synth.profile_counties("demo_real")
    assert len(prof.counties) == 17
    assert [s.county_code[:4] for s in prof.counties] == ["6106"] * 13 + ["6102"] * 4
    pov = {s.county_code: s.planned_exit_year for s in prof.counties if s.is_poverty_county}
    assert pov == {**YANAN, **TONGCHUAN}
    assert set(pov.values()) == {2017, 2018, 2019}
    # the demo keeps its synthetic status (demo_real is the real one): every Yan'an unit assessed
    demo = synth.profile_counties("demo")
    assert len(demo.counties) == 13 and all(s.is_poverty_county for s in demo.counties)
