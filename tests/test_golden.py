"""Golden record: the demo's numbers must not move under a restructure.

``tests/golden/demo/`` holds the ``results.json`` of every county exit assessment, of the risk run
and of the province roll-up, as ``evalkit demo`` (seed 20201) wrote them on main before the
architecture restructure. This test regenerates the demo province and recomputes them through the
same workflow calls the notebooks make; floats are compared exactly. Notes are prose and may be
reworded; everything else must be identical. A change that moves numbers on purpose updates the
golden files in the same commit and says why.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalkit.workflows import province
from golden_record import GOLDEN, assert_same, county_results, demo_province, exit_counties, golden

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory) -> Path:
    return demo_province(tmp_path_factory.mktemp("golden") / "demo")


@pytest.fixture(scope="module")
def county_runs(demo_data, tmp_path_factory) -> Path:
    return county_results(demo_data, tmp_path_factory.mktemp("golden_exit"))


def test_every_county_exit_result_is_unchanged(demo_data, county_runs):
    files = sorted((GOLDEN / "county_exit").glob("*.json"))
    # the demo's six real poverty counties (exit 2017, 2018, 2019), each with its record
    assert [f.stem for f in files] == exit_counties(demo_data) and len(files) == 6
    for f in files:
        got = json.loads((county_runs / f.stem / "results.json").read_text(encoding="utf-8"))
        assert_same(got, golden(f"county_exit/{f.name}"))


def test_roll_up_is_unchanged(county_runs):
    res = province.collect_exit_results(county_runs)
    assert_same(province.province_results(res), golden("province.json"))
