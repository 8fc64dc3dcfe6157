"""The golden record's files and comparison, shared by tests/test_golden.py and tests/test_golden_risk.py.

``tests/golden/demo/`` holds the ``results.json`` of every county exit assessment, of the risk run
and of the province roll-up of the demo province (seed 20201). The tests regenerate the demo province
and recompute them through the same workflow calls the notebooks make; floats are compared exactly.
Notes are prose and may be reworded; everything else must be identical. A change that moves numbers
on purpose updates the golden files in the same commit and says why:
``python tests/golden_record.py --write`` rewrites them.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from evalkit.config import load_policy
from evalkit.outputs import to_jsonable
from evalkit.synth import generate
from evalkit.workflows.data import DEMO_PROFILE, DEMO_SEED

GOLDEN = Path(__file__).parent / "golden" / "demo"
# Keys that are prose or describe the software rather than the numbers.
IGNORED = {"notes", "evalkit_version"}


def strip(obj):
    """``obj`` without the ignored keys, at every depth."""
    if isinstance(obj, dict):
        return {k: strip(v) for k, v in obj.items() if k not in IGNORED}
    if isinstance(obj, list):
        return [strip(v) for v in obj]
    return obj


def assert_same(got: dict, want: dict) -> None:
    """``got`` (as written to results.json) equals the golden ``want``, ignored keys aside."""
    got, want = strip(json.loads(json.dumps(to_jsonable(got)))), strip(want)
    assert got == want


def golden(name: str) -> dict:
    """A golden file, e.g. ``risk.json`` or ``county_exit/610621.json``."""
    return json.loads((GOLDEN / name).read_text(encoding="utf-8"))


def demo_province(out: Path) -> Path:
    """The demo province as ``evalkit demo`` generates it, into ``out``."""
    return generate(DEMO_PROFILE, seed=DEMO_SEED, out=out, policy=load_policy())


def exit_counties(data: Path) -> list[str]:
    """The demo's poverty counties with a planned exit year: those ``evalkit demo`` assesses."""
    c = pd.read_parquet(data / "counties.parquet")
    return sorted(c.loc[c["is_poverty_county"] & c["planned_exit_year"].notna(), "county_code"])


def county_results(data: Path, run_dir: Path) -> Path:
    """Every exit county's results.json under ``run_dir/<code>/``, as the county notebook computes it."""
    from evalkit.workflows import county_exit

    policy = load_policy()
    for code in exit_counties(data):
        a = county_exit.assess_county(data, code, policy=policy)
        (run_dir / code).mkdir(parents=True, exist_ok=True)
        (run_dir / code / "results.json").write_text(
            json.dumps(to_jsonable(a.results()), ensure_ascii=False), encoding="utf-8")
    return run_dir


def risk_results(data: Path) -> dict:
    """The risk run's results, single-threaded (BLAS threads change the last bits)."""
    from threadpoolctl import threadpool_limits

    from evalkit.workflows import monitoring

    with threadpool_limits(limits=1):
        return monitoring.run_monitoring(data, counties="all", policy=load_policy()).results()


def _write(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_jsonable(obj), ensure_ascii=False, indent=2, sort_keys=True) + "\n",
                    encoding="utf-8")


def write_golden(work: Path) -> None:
    """Recompute and rewrite every golden file (a deliberate change of the numbers)."""
    from evalkit.workflows import province

    data = demo_province(work / "demo")
    runs = county_results(data, work / "county_exit")
    for old in (GOLDEN / "county_exit").glob("*.json"):
        old.unlink()
    for f in sorted(runs.glob("*/results.json")):
        _write(GOLDEN / "county_exit" / f"{f.parent.name}.json", json.loads(f.read_text(encoding="utf-8")))
    _write(GOLDEN / "province.json", province.province_results(province.collect_exit_results(runs)))
    _write(GOLDEN / "risk.json", risk_results(data))


if __name__ == "__main__":
    import sys
    import tempfile

    if sys.argv[1:] != ["--write"]:
        raise SystemExit("usage: python tests/golden_record.py --write")
    with tempfile.TemporaryDirectory() as tmp:
        write_golden(Path(tmp))
