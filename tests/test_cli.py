"""The command line: generate, validate (exit codes 0/1/2), dictionary, errors as one line + exit 2."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from evalkit.cli import main


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "evalkit.cli", *args], capture_output=True, text=True)


def test_generate_then_validate_is_clean(tmp_path):
    out = tmp_path / "d"
    assert main(["generate", "--profile", "demo", "--seed", "5", "--scale", "0.02", "--counties", "610631",
                 "--out", str(out), "--quiet"]) == 0
    r = run("validate", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "exit code 0" in r.stdout
    assert not (out / "quarantine").exists()


def test_validate_quarantines_and_names_the_problem(tmp_path):
    f = tmp_path / "农户.csv"
    f.write_text("户编号,村代码,县代码,家庭人口数,是否建档立卡,贫困户属性,主要致贫原因,识别年度,脱贫年度\n"
                 "6106310010010001,610631001001,610631,3,是,一般贫困户,因病,2014,2016\n"
                 "6106310010010002,610631001001,610631,-2,否,,,,\n", encoding="gbk")
    r = run("validate", str(f), "--out", str(tmp_path / "q"))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "农户.csv row 3 家庭人口数 value '-2': household size must be at least 1" in r.stdout
    q = pd.read_csv(tmp_path / "q" / "households.quarantine.csv", dtype=str, encoding="utf-8-sig")
    assert q["household_id"].tolist() == ["6106310010010002"] and q["_row"].tolist() == ["3"]


def test_validate_unreadable_input_exits_2(tmp_path):
    r = run("validate", str(tmp_path / "missing.csv"))
    assert r.returncode == 2
    assert "missing.csv" in r.stderr
    bad = tmp_path / "households.csv"
    bad.write_text("foo,bar\n1,2\n", encoding="utf-8")
    r = run("validate", str(bad))
    assert r.returncode == 2


def test_dictionary_command(tmp_path):
    p = tmp_path / "dict.md"
    assert main(["dictionary", "--write", str(p)]) == 0
    text = p.read_text(encoding="utf-8")
    for h in ("户编号", "身份证号", "人均纯收入", "是否参加城乡居民基本医疗保险", "劳动技能"):
        assert h in text


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {err!r}"
    assert lines[0].startswith("error: ")
    return lines[0]


def test_an_evalkit_error_is_one_line_and_exit_2(tmp_path, capsys):
    # ParameterError from the county selection: nothing is generated
    assert main(["generate", "--profile", "demo", "--counties", "999999", "--out", str(tmp_path / "d"),
                 "--quiet"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "999999" in line and "Traceback" not in line
    assert not (tmp_path / "d").exists()
    # InputError from the loader
    assert main(["validate", str(tmp_path / "missing.csv")]) == 2
    assert "missing.csv" in _one_error_line(capsys.readouterr().err)
    # ConfigError from a policy file that does not exist, given to a batch: it stops before any work
    nb = tmp_path / "nb.ipynb"
    assert main(["batch", str(nb), "--data", str(tmp_path), "--out", str(tmp_path / "o"),
                 "--param", f"policy_file={tmp_path / 'nope.toml'}"]) == 2
    _one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("cmd", [["verify", "somewhere"], ["batch", "nb.ipynb", "--data", "d", "--out", "o"],
                                 ["validate", "x.csv"]])
def test_an_unknown_language_stops_before_any_work(tmp_path, capsys, cmd):
    assert main([*cmd, "--lang", "fr"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "'fr'" in line and "zh" in line and "en" in line


def test_newcomer_mistakes_get_one_bilingual_line(small_province, tmp_path):
    """year=2030 and a non-poverty county: what is wrong, in both languages (hand-made data)."""
    import shutil

    from evalkit.config import load_policy
    from evalkit.errors import ExitAssessmentError
    from evalkit.workflows import county_exit

    pol = load_policy()
    with pytest.raises(ExitAssessmentError) as e:
        county_exit.assess_county(small_province, "610632", year=2030, policy=pol)
    msg = str(e.value)
    exit_year = int(pd.read_parquet(small_province / "counties.parquet").set_index("county_code")
                    .at["610632", "planned_exit_year"])
    assert "no survey for 2030" in msg and f"the county exited in {exit_year}" in msg
    assert "没有 2030 年的调查数据" in msg and f"{exit_year} 年退出" in msg
    data = Path(shutil.copytree(small_province, tmp_path / "d"))
    c = pd.read_parquet(data / "counties.parquet")
    c.loc[c["county_code"] == "610627", ["is_poverty_county", "planned_exit_year"]] = [False, None]
    c.to_parquet(data / "counties.parquet")
    with pytest.raises(ExitAssessmentError, match="is not a poverty county.*不是贫困县"):
        county_exit.assess_county(data, "610627", policy=pol)


def test_batch_help_describes_options_and_lists_notebook_parameters(capsys):
    with pytest.raises(SystemExit):
        main(["batch", "--help"])
    out = capsys.readouterr().out
    assert "--resume" in out and "reuse counties whose notebook, parameters, inputs" in out
    assert "notebooks/county_exit_assessment.ipynb:" in out and "oc_reps = 0" in out
    assert "notebooks/province_rollup.ipynb:" in out and "risk_dir = None" in out


def test_verdicts_print_in_both_languages():
    from evalkit.runner.index import verdict_both

    assert verdict_both("pass", "en") == "pass / 通过"
    assert verdict_both("borderline", "zh") == "临界（不确定） / borderline"
    assert verdict_both(None, "zh") == "—"
