"""Project-level invariants: environment files in step, dictionary rendered, config overrides."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml

from evalkit.config import ConfigError, load_policy
from evalkit.dictionary import render_markdown

ROOT = Path(__file__).resolve().parents[1]


def _norm(req: str) -> str:
    return re.sub(r"\s+", "", req).lower().replace("_", "-")


def _pyproject_deps() -> list[str]:
    d = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return d["project"]["dependencies"] + d["project"]["optional-dependencies"]["test"]


def test_environment_yml_mirrors_pyproject():
    env = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))
    deps = env["dependencies"]
    assert "python=3.11" in deps
    pip = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    pip = [p for p in pip if not p.startswith("-e")]
    assert sorted(map(_norm, pip)) == sorted(map(_norm, _pyproject_deps()))
    req_py = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert "3.11" in req_py


def test_constraints_pin_every_dependency():
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, ver = line.partition("==")
            pins[name.lower().replace("_", "-")] = ver
    for req in _pyproject_deps():
        name = re.split(r"[<>=\[ ]", req, maxsplit=1)[0].lower().replace("_", "-")
        assert name in pins, f"{name} is not pinned in constraints.txt"


def test_data_readme_is_the_rendered_dictionary():
    assert (ROOT / "data" / "README.md").read_text(encoding="utf-8") == render_markdown(), (
        "data/README.md is out of date: run `evalkit dictionary --write data/README.md`")


def test_policy_values_and_sources():
    pol = load_policy()
    assert pol.poverty_line(2014) == 2800 and pol.poverty_line(2020) == 4000
    assert pol.monitoring_line("34", 2020) == 5000  # Anhui, docs/policy.md [D4]
    assert pol.monitoring_line("61", 2021) == 6000  # national 2021
    assert pol.monitoring_line("61", 2019) == pytest.approx(1.5 * 3218)  # default factor
    assert pol.region("610602") == "west" and pol.region("34") == "central" and pol.region("44") == "east"
    th = pol.exit_thresholds("west")
    assert th["comprehensive_poverty_rate"]["value"] == 0.03
    assert pol.exit_thresholds("central")["comprehensive_poverty_rate"]["value"] == 0.02
    assert th["approval_rate"] == {"value": 0.9, "direction": "at_least"}
    for sec in ("poverty_line", "monitoring_line", "exit_criteria", "regions", "household_classes"):
        assert pol.raw[sec].get("source"), f"[{sec}] has no source"


def test_policy_override_file(tmp_path):
    f = tmp_path / "mine.toml"
    f.write_text('[poverty_line.values]\n2013 = 2736\n[monitoring_line.province."61"]\n2020 = 5500\n'
                 '[exit_criteria]\nmissed_poor_rate_max = 0.01\n', encoding="utf-8")
    pol = load_policy(f)
    assert pol.poverty_line(2013) == 2736
    assert pol.poverty_line(2014) == 2800  # untouched values stay
    assert pol.monitoring_line("61", 2020) == 5500
    assert pol.exit_thresholds("west")["missed_poor_rate"]["value"] == 0.01
    with pytest.raises(ConfigError, match="2013"):
        load_policy().poverty_line(2013)
    with pytest.raises(ConfigError, match="not found"):
        load_policy(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="east"):
        load_policy().exit_thresholds("east")


def test_no_threshold_literals_outside_config():
    # The exit thresholds and lines live in policy.toml only.
    src = ROOT / "src" / "evalkit"
    pat = re.compile(r"\b(2800|2855|2952|2995|3218|0\.02\b|0\.03\b|0\.90?\b)")
    offenders = []
    for p in src.rglob("*.py"):
        if "synth" in p.relative_to(src).parts:  # generator parameters are not policy thresholds
            continue
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
            code, _, comment = line.partition("#")
            if pat.search(code) and "policy" not in code.lower() and "not a threshold" not in comment:
                offenders.append(f"{p.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not offenders, "threshold-like literals outside config:\n" + "\n".join(offenders)
