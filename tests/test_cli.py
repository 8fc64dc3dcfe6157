"""The command line: generate, validate (exit codes 0/1/2), dictionary."""
from __future__ import annotations

import subprocess
import sys

import pandas as pd

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
