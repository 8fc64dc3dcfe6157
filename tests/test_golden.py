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
from threadpoolctl import threadpool_limits

from evalkit.config import load_policy
from evalkit.outputs import to_jsonable
from evalkit.synth import generate
from evalkit.workflows import county_exit, monitoring, province
from evalkit.workflows.data import DEMO_SEED

GOLDEN = Path(__file__).parent / "golden" / "demo"
# Keys that are prose or describe the software rather than the numbers.
_IGNORED = {"notes", "evalkit_version"}

pytestmark = pytest.mark.slow


def _strip(obj):
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in _IGNORED}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def _same(got: dict, want: dict) -> None:
    got, want = _strip(json.loads(json.dumps(to_jsonable(got)))), _strip(want)
    assert got == want


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory) -> Path:
    return generate("demo", seed=DEMO_SEED, out=tmp_path_factory.mktemp("golden") / "demo", policy=load_policy())


@pytest.fixture(scope="module")
def county_runs(demo_data, tmp_path_factory) -> Path:
    policy = load_policy()
    run_dir = tmp_path_factory.mktemp("golden_exit")
    for f in sorted((GOLDEN / "county_exit").glob("*.json")):
        a = county_exit.assess_county(demo_data, f.stem, policy=policy)
        (run_dir / f.stem).mkdir()
        (run_dir / f.stem / "results.json").write_text(
            json.dumps(to_jsonable(a.results()), ensure_ascii=False), encoding="utf-8")
    return run_dir


def test_every_county_exit_result_is_unchanged(county_runs):
    files = sorted((GOLDEN / "county_exit").glob("*.json"))
    assert len(files) == 13
    for f in files:
        got = json.loads((county_runs / f.stem / "results.json").read_text(encoding="utf-8"))
        _same(got, json.loads(f.read_text(encoding="utf-8")))


def test_roll_up_is_unchanged(county_runs):
    res = province.collect_exit_results(county_runs)
    _same(province.province_results(res), json.loads((GOLDEN / "province.json").read_text(encoding="utf-8")))


def test_risk_result_is_unchanged(demo_data):
    with threadpool_limits(limits=1):
        run = monitoring.run_monitoring(demo_data, counties="all", policy=load_policy())
    _same(run.results(), json.loads((GOLDEN / "risk.json").read_text(encoding="utf-8")))
