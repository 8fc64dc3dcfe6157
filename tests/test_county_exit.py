"""The county exit workflow: nothing dropped silently, region consistent with the verdicts, and the
user's policy file reaching every threshold (guarantees, sample sizes)."""
from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from evalkit.assessment import criterion_flags
from evalkit.config import load_policy
from evalkit.errors import ExitAssessmentError
from evalkit.report.exit import guarantee_shortfalls
from evalkit.survey import SampleDesign
from evalkit.text import label
from evalkit.workflows import county_exit, data

POLICY = load_policy()


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def test_quarantined_rows_are_reported_and_kept_aside(small_province, tmp_path):
    d = _copy(small_province, tmp_path / "d")
    f = d / "households" / "610631.parquet"
    hh = pd.read_parquet(f)
    # a non-registered household with an impossible size: quarantined, not used, and said so
    bad = hh.index[~hh["registered"]][0]
    hh.loc[bad, "household_size"] = -3
    hh.to_parquet(f, index=False)
    a = county_exit.assess_county(d, "610631", policy=POLICY)
    res = a.results("en")
    assert any("quarantined" in n and "households 1" in n for n in res["notes"]), res["notes"]
    assert any("隔离" in n and "农户 1" in n for n in a.results("zh")["notes"])
    assert hh.loc[bad, "household_id"] not in set(a.households["household_id"])
    paths = county_exit.write_outputs(a, tmp_path / "out")
    q = pd.read_csv(paths["quarantine"] / "households.quarantine.csv", dtype=str, encoding="utf-8-sig")
    assert q["household_id"].tolist() == [hh.loc[bad, "household_id"]]
    written = json.loads(paths["results"].read_text(encoding="utf-8"))
    assert any("隔离" in n for n in written["notes"])


def test_region_follows_the_policy(small_province, tmp_path):
    d = _copy(small_province, tmp_path / "d")
    c = pd.read_parquet(d / "counties.parquet")
    c["region"] = "central"  # wrong for Shaanxi (61, west)
    c.to_parquet(d / "counties.parquet", index=False)
    a = county_exit.assess_county(d, "610631", policy=POLICY)
    res = a.results("en")
    assert res["region"] == "west" and res["thresholds"]["comprehensive_poverty_rate"]["value"] == 0.03
    assert a.criteria.table.loc["comprehensive_poverty_rate", "threshold"] == 0.03
    assert any("'central'" in n and "'west'" in n for n in res["notes"])


def test_unknown_county_and_unreadable_data(small_province, tmp_path):
    with pytest.raises(ExitAssessmentError, match="999999 is not in .*610631"):
        county_exit.assess_county(small_province, "999999", policy=POLICY)
    d = tmp_path / "empty"
    d.mkdir()
    (d / "households.csv").write_text("foo,bar\n1,2\n", encoding="utf-8")
    with pytest.raises(ExitAssessmentError, match="cannot be read"):
        county_exit.assess_county(d, "610631", policy=POLICY)


def test_policy_file_reaches_guarantees_and_sample_sizes(small_province, tmp_path):
    # A user's policy file that drops the drinking-water guarantee and changes one sample size.
    f = tmp_path / "mine.toml"
    f.write_text('[indicators]\nguarantees = ["food_clothing_ok", "education_ok", "medical_ok", "housing_ok"]\n'
                 '[survey.villages_per_stratum]\npoverty_village = 7\nnon_poverty_village = 4\n', encoding="utf-8")
    mine = load_policy(f)
    base = county_exit.assess_county(small_province, "610631", policy=POLICY)
    a = county_exit.assess_county(small_province, "610631", policy=mine)
    # the shortfall table lists the file's guarantees, not the base policy's
    assert len(guarantee_shortfalls(a.field_survey, mine.guarantees, "en")) == 4
    assert label("water_ok", "en") not in guarantee_shortfalls(a.field_survey, mine.guarantees, "en").index
    assert len(guarantee_shortfalls(base.field_survey, POLICY.guarantees, "en")) == 5
    # a household failing only the water guarantee is flagged under the base policy, not under the file's
    fs = base.field_survey.copy()
    ok = base.flags["meets_standard"].to_numpy() & (fs["hh_stratum"] == "exited").to_numpy()
    hid = fs.loc[ok, "household_id"].iloc[0]
    fs.loc[fs["household_id"] == hid, "water_ok"] = False
    for policy, flagged in ((POLICY, True), (mine, False)):
        f = criterion_flags(fs, policy, a.year).set_index("household_id")
        assert bool(f.at[hid, "wrongly_exited"]) is flagged
    # overriding one size on top of the file keeps the file's other sizes (not the base file's)
    kw = data.design_overrides(mine, households_exited=12)
    design = SampleDesign(**kw)
    assert design.villages_per_stratum == {"poverty_village": 7, "non_poverty_village": 4}
    assert design.households_per_village == {**POLICY.survey.households_per_village, "exited": 12}


def test_the_data_are_read_and_validated_once(small_province, monkeypatch):
    # the counties table is read (and validated) with the county's tables, not a second time
    calls = []
    real = county_exit.load_dataset

    def counting(*args, **kwargs):
        calls.append(kwargs.get("tables"))
        return real(*args, **kwargs)

    monkeypatch.setattr(county_exit, "load_dataset", counting)
    a = county_exit.assess_county(small_province, "610631", policy=POLICY)
    assert len(calls) == 1 and "counties" in calls[0]
    assert a.county["county_code"] == "610631"
