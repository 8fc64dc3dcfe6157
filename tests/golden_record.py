"""The golden record's files and comparison, shared by tests/test_golden.py and tests/test_golden_risk.py.

``tests/golden/demo/`` holds the ``results.json`` of every county exit assessment, of the risk run
and of the province roll-up of the demo province (seed 20201). The tests regenerate the demo province
and recompute them through the same workflow calls the notebooks make; floats are compared exactly.
Notes are prose and may be reworded; everything else must be identical. A change that moves numbers
on purpose updates the golden files in the same commit and says why.
"""
from __future__ import annotations

import json
from pathlib import Path

from evalkit.config import load_policy
from evalkit.outputs import to_jsonable
from evalkit.synth import generate
from evalkit.workflows.data import DEMO_SEED

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
    return generate("demo", seed=DEMO_SEED, out=out, policy=load_policy())
