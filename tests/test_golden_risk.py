"""Golden record of the risk run (see tests/golden_record.py); a module of its own so that it runs
beside the county assessments of tests/test_golden.py on another worker."""
from __future__ import annotations

import pytest
from threadpoolctl import threadpool_limits

from evalkit.config import load_policy
from evalkit.workflows import monitoring
from golden_record import assert_same, demo_province, golden

pytestmark = pytest.mark.slow


def test_risk_result_is_unchanged(tmp_path):
    data = demo_province(tmp_path / "demo")
    with threadpool_limits(limits=1):
        run = monitoring.run_monitoring(data, counties="all", policy=load_policy())
    assert_same(run.results(), golden("risk.json"))
