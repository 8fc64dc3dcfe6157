"""The county assessment pipeline: nothing dropped silently, region consistent with the verdicts."""
from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from evalkit import assess
from evalkit.exit import ExitAssessmentError


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
    a = assess.assess_county(d, "610631")
    assert any("quarantined" in n and "households 1" in n for n in a.notes), a.notes
    assert hh.loc[bad, "household_id"] not in set(a.households["household_id"])
    paths = assess.write_outputs(a, tmp_path / "out")
    q = pd.read_csv(paths["quarantine"] / "households.quarantine.csv", dtype=str, encoding="utf-8-sig")
    assert q["household_id"].tolist() == [hh.loc[bad, "household_id"]]
    res = json.loads(paths["results"].read_text(encoding="utf-8"))
    assert any("quarantined" in n for n in res["notes"])


def test_region_follows_the_policy(small_province, tmp_path):
    d = _copy(small_province, tmp_path / "d")
    c = pd.read_parquet(d / "counties.parquet")
    c["region"] = "central"  # wrong for Shaanxi (61, west)
    c.to_parquet(d / "counties.parquet", index=False)
    a = assess.assess_county(d, "610631")
    res = a.results()
    assert res["region"] == "west" and res["thresholds"]["comprehensive_poverty_rate"]["value"] == 0.03
    assert a.criteria.loc["comprehensive_poverty_rate", "threshold"] == 0.03
    assert any("central" in n and "west" in n for n in res["notes"])


def test_unknown_county_and_unreadable_data(small_province, tmp_path):
    with pytest.raises(ExitAssessmentError, match="999999"):
        assess.assess_county(small_province, "999999")
    d = tmp_path / "empty"
    d.mkdir()
    (d / "households.csv").write_text("foo,bar\n1,2\n", encoding="utf-8")
    with pytest.raises(ExitAssessmentError, match="cannot be read"):
        assess.assess_county(d, "610631")
