"""Shared fixtures: a small synthetic province generated once per test session."""
from __future__ import annotations

import pytest

from evalkit.config import load_policy
from evalkit.synth import generate

SMALL_COUNTIES = ["610627", "610631", "610632"]


@pytest.fixture(scope="session")
def small_province(tmp_path_factory):
    """Three Yan'an counties at scale 0.05, with field surveys (about 1 s to generate)."""
    out = tmp_path_factory.mktemp("small_province")
    return generate("demo", seed=11, out=out, scale=0.05, counties=SMALL_COUNTIES, policy=load_policy())


@pytest.fixture(scope="session")
def rendered_reports(small_province, tmp_path_factory):
    """The county (610631), risk and roll-up reports with the dashboard index, rendered once per
    session in Chinese and in English (side by side): ``{"zh": dir, "en": dir}``. Shared by the
    language and browser tests (tests/rendered.py)."""
    from rendered import render_both

    return render_both(small_province, tmp_path_factory.mktemp("rendered"))
