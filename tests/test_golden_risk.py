"""Golden record of the risk run (see tests/golden_record.py); a module of its own so that it runs
beside the county assessments of tests/test_golden.py on another worker."""
from __future__ import annotations

import pytest

from golden_record import assert_same, demo_province, golden, risk_results

pytestmark = pytest.mark.slow


def test_risk_result_is_unchanged(tmp_path):
    assert_same(risk_results(demo_province(tmp_path / "demo")), golden("risk.json"))
