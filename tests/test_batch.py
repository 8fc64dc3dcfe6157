"""evalkit.runner: per-county papermill runs, isolation, atomic outputs, resume, verify, Dask path.

The notebooks are the tiny ones in tests/notebooks/ (county_stats: one county's households with
a seeded bootstrap; province_stats: no county_code, runs once).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from evalkit import provenance, synth
from evalkit import runner as batch
from evalkit.assessment.result import CRITERIA, CriterionResult, ExitResult
from evalkit.cli import main
from evalkit.config import load_policy
from evalkit.errors import BatchError
from evalkit.report.summary import read_summary
from evalkit.runner import NotebookParam, plan_batch, resolve_counties
from evalkit.runner.demo import exit_results, summary_text
from evalkit.runner.execute import batch_lock
from evalkit.runner.params import absolute_paths
from evalkit.runner.plan import county_inputs

NB_DIR = Path(__file__).resolve().parent / "notebooks"
COUNTY_EXIT_NB = Path(__file__).resolve().parents[1] / "notebooks" / "county_exit_assessment.ipynb"
COUNTY_NB = NB_DIR / "county_stats.ipynb"
PROVINCE_NB = NB_DIR / "province_stats.ipynb"
CODES = ["610627", "610631", "610632"]
#: The real evalkit source hash (the module fixture below pins provenance.source_sha256).
REAL_SOURCE_SHA256 = provenance.source_sha256


@pytest.fixture(scope="module", autouse=True)
def _stable_source_hash():
    """Pin the evalkit source hash for this module: the input hash covers src/evalkit, and edits to
    it by someone else during a test session must not turn a resume or a verify into a re-run.
    Tests of the source hash patch it themselves."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(provenance, "source_sha256", lambda value=REAL_SOURCE_SHA256(): value)
        yield


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("batchdata")
    return synth.generate("demo", seed=1, out=out, scale=0.02, counties=CODES, field_survey=False,
                          policy=load_policy())


@pytest.fixture
def data_copy(data, tmp_path) -> Path:
    """A private copy for tests that alter an input file."""
    return Path(shutil.copytree(data, tmp_path / "data"))


@pytest.fixture(scope="module")
def clean_run(data, tmp_path_factory) -> batch.BatchResult:
    out = tmp_path_factory.mktemp("clean") / "out"
    return batch.run_batch(COUNTY_NB, data, "all", workers=2, out=out, progress=False)


def _results(out: Path, code: str) -> dict:
    return json.loads((out / code / "results.json").read_text(encoding="utf-8"))


def _cli(*args: str) -> int:
    """``evalkit ARGS`` in this process (the public entry point of the command line)."""
    return main([str(a) for a in args])


# ---------------------------------------------------------------------------------------------
# Checked before anything runs (no kernel)


def test_parameters_and_counties_are_checked_before_running(data, tmp_path, capsys):
    out = tmp_path / "out"
    with pytest.raises(BatchError, match=r"unknown parameter 'yeer'.*accepts .*year.*alpha"):
        batch.run_batch(COUNTY_NB, data, params={"yeer": "2019"}, out=out, progress=False)
    with pytest.raises(BatchError, match=r"'year' expects int.*'abc'"):
        batch.run_batch(COUNTY_NB, data, params={"year": "abc"}, out=out, progress=False)
    with pytest.raises(BatchError, match=r"'alpha' expects float"):
        batch.run_batch(COUNTY_NB, data, params={"alpha": "five percent"}, out=out, progress=False)
    with pytest.raises(BatchError, match=r"'county_code' is set by the batch.*--counties"):
        batch.run_batch(COUNTY_NB, data, params={"county_code": "610631"}, out=out, progress=False)
    with pytest.raises(BatchError, match=r"unknown county code\(s\) 999999"):
        batch.run_batch(COUNTY_NB, data, counties="610631,999999", out=out, progress=False)
    with pytest.raises(BatchError, match="runs once"):
        batch.run_batch(PROVINCE_NB, data, counties="610631", out=out, progress=False)
    with pytest.raises(BatchError, match="counties.parquet is missing"):
        batch.run_batch(COUNTY_NB, tmp_path, out=out, progress=False)
    assert not out.exists(), "nothing may run (or be created) before the checks pass"
    out.mkdir()
    with batch_lock(out), pytest.raises(BatchError, match="another batch is writing"):
        batch.run_batch(COUNTY_NB, data, out=out, progress=False)
    assert not list(out.iterdir())[1:], "only the lock file"
    # the CLI: exit code 2 and a clear message
    code = _cli("batch", COUNTY_NB, "--data", data, "--out", tmp_path / "o2", "--param", "yeer=1")
    assert code == 2 and "unknown parameter 'yeer'" in capsys.readouterr().err
    with pytest.raises(BatchError, match="KEY=VALUE"):
        batch.parse_param_args(["year"])


def test_values_are_typed_by_the_declared_default():
    decl = batch.notebook_parameters(COUNTY_NB)
    assert decl["year"].type == "int" and decl["alpha"].type == "float" and decl["fail_on"].type == "str"
    got = batch.coerce_params(batch.parse_param_args(["year=2019", "alpha=0.1", "fail_on=123", "n_boot=7"]), decl)
    assert got == {"year": 2019, "alpha": 0.1, "fail_on": "123", "n_boot": 7}
    assert isinstance(got["year"], int) and isinstance(got["alpha"], float)
    extra = {"flag": NotebookParam("flag", False, "bool"), "codes": NotebookParam("codes", [], "list"),
             "opts": NotebookParam("opts", {}, "dict"), "any": NotebookParam("any", None, "unknown")}
    got = batch.coerce_params({"flag": "yes", "codes": '["610631", "610632"]', "opts": '{"a": 1}',
                               "any": "x y"}, extra)
    assert got == {"flag": True, "codes": ["610631", "610632"], "opts": {"a": 1}, "any": "x y"}
    with pytest.raises(BatchError, match="'codes' expects list"):
        batch.coerce_params({"codes": '{"a": 1}'}, extra)
    with pytest.raises(BatchError, match="'flag' expects bool"):
        batch.coerce_params({"flag": "maybe"}, extra)


def test_compare_json_is_exact_by_default_and_says_where():
    a = {"x": {"est": 0.1, "n": 3, "v": "pass"}, "l": [1, 2.5], "b": True}
    assert batch.compare_json(a, json.loads(json.dumps(a))) == []
    b = {"x": {"est": 0.1 * (1 + 1e-15), "n": 3, "v": "fail"}, "l": [1, 2.5, 3], "b": 1, "new": 1}
    diffs = {k for k, _, _ in batch.compare_json(a, b)}
    assert diffs == {"x.est", "x.v", "l[len]", "b", "new"}
    assert {k for k, _, _ in batch.compare_json(a, b, rtol=1e-12)} == {"x.v", "l[len]", "b", "new"}
    assert batch.key_results({"county_code": "1", "data_sha256": "f", "n": 2,
                              "wrongly_exited_rate": {"est": 0.01, "se": 0.1, "lci": 0, "uci": 0.02,
                                                      "verdict": "pass"},
                              "decision": {"overall": "pass", "official_point_rule": "pass"},
                              "thresholds": {"x": {"value": 0.02}}}) == {
        "n": 2, "wrongly_exited_rate.est": 0.01, "wrongly_exited_rate.lci": 0, "wrongly_exited_rate.uci": 0.02,
        "wrongly_exited_rate.verdict": "pass", "decision.overall": "pass", "decision.official_point_rule": "pass"}


# ---------------------------------------------------------------------------------------------
# Runs


@pytest.mark.slow
def test_failing_counties_are_isolated_and_recorded(data, tmp_path, capsys):
    out = tmp_path / "out"
    t0 = time.perf_counter()
    assert _cli("batch", COUNTY_NB, "--data", data, "--out", out, "--timeout", "3", "--param", "fail_on=610627",
                "--param", "sleep_on=610632", "--param", "sleep_s=60") == 1
    assert time.perf_counter() - t0 < 40, "the timeout must stop the sleeping county"
    printed = capsys.readouterr().out
    assert "2 failed" in printed
    assert "exit code 1: 2 of 3 run(s) failed" in printed
    summary = read_summary(out / "summary.csv")
    assert summary.set_index("county_code")["status"].to_dict() == {
        "610627": "failed", "610631": "ok", "610632": "failed"}
    runs = {c: json.loads((out / c / "run.json").read_text()) for c in CODES}
    assert "RuntimeError: deliberate failure for 610627" in runs["610627"]["error"]
    assert "timeout" in runs["610632"]["error"]
    for c in ("610627", "610632"):
        assert not (out / c / "results.json").exists(), "a failed county must not look finished"
        assert (out / c / runs[c]["notebook"]).is_file(), "the partial executed notebook is kept"
        assert runs[c]["status"] == "failed" and runs[c]["html"] is None
    partial = json.loads((out / "610627" / "county_stats.ipynb").read_text())
    assert any(o.get("ename") == "RuntimeError" for cell in partial["cells"] for o in cell.get("outputs", []))
    assert _results(out, "610631")["county_code"] == "610631"
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "失败" in index and "610627/county_stats.ipynb" in index and "610631/county_stats.html" in index
    assert not list(out.glob(".tmp-*"))


@pytest.mark.slow
def test_a_killed_kernel_and_a_nan_result_are_failed_counties(data, tmp_path):
    out = tmp_path / "out"
    res = batch.run_batch(COUNTY_NB, data, counties="610631,610632", workers=2, out=out, progress=False,
                          params={"kill_on": "610631", "nan_on": "610632", "lang": "en"})
    assert res.exit_code == 1 and res.n_failed == 2
    killed, nan = res["610631"], res["610632"]
    assert "kernel died" in killed.error and killed.notebook is not None and killed.notebook.is_file()
    assert "NaN" in nan.error and (out / "610632" / "results.partial.json").is_file()
    assert not (out / "610632" / "results.json").exists()
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "Batch report index" in index and "failed" in index and "黄龙县 (610631)" in index


@pytest.mark.slow
def test_a_dead_worker_process_is_a_failed_county(data, tmp_path):
    out = tmp_path / "out"
    res = batch.run_batch(COUNTY_NB, data, counties="610631", workers=1, out=out, progress=False,
                          params={"kill_worker_on": "610631"})
    assert res.exit_code == 1 and "worker process died" in res["610631"].error
    assert json.loads((out / "610631" / "run.json").read_text())["status"] == "failed"
    assert not (out / "610631" / "results.json").exists() and not list(out.glob(".tmp-*"))


@pytest.mark.slow
def test_html_report_has_no_code_and_has_the_headings(clean_run):
    assert clean_run.exit_code == 0 and clean_run.n_ok == 3
    for c in clean_run.counties:
        page = c.html.read_text(encoding="utf-8")
        assert '<meta charset="utf-8"' in page.lower()
        assert "县级测试报告 TEST_HEADING" in page and "RESULT_HEADING" in page
        assert "CODE_MARKER_7f3a" not in page and "read_parquet" not in page, "code reached the report"
        assert "hl-ipython3" not in page and 'class="jp-InputPrompt' not in page
        # every code cell is rendered without its input area (markdown cells keep theirs: that is their text)
        for chunk in page.split('<div class="jp-Cell jp-CodeCell')[1:]:
            head = chunk.split('<div class="jp-Cell ', 1)[0]
            assert "jp-mod-noInput" in head[:200] and "jp-InputArea" not in head
        assert {p.name for p in c.out_dir.iterdir()} >= {
            "county_stats.ipynb", "county_stats.html", "results.json", "run.json", "followup.csv"}


@pytest.mark.slow
def test_summary_index_and_manifest(clean_run, data):
    out = clean_run.out
    raw = pd.read_csv(out / "summary.csv", dtype=str, encoding="utf-8-sig")  # what a reader opens in Excel
    assert list(raw.columns[:6]) == ["县代码", "县（市、区）", "状态", "用时（秒）", "错误信息", "本次运行结果"]
    assert set(raw["状态"]) == {"完成"} and set(raw["退出结论（考虑不确定性）"]) <= {"通过", "未通过", "临界（不确定）"}
    df = read_summary(out / "summary.csv")  # the machine keys back
    assert list(df.columns[:5]) == ["county_code", "county_name", "status", "duration_s", "error"]
    assert {"decision.overall", "registered_share.est", "registered_share.lci", "registered_share.uci",
            "registered_share.verdict", "n_households"} <= set(df.columns)
    assert list(df["county_code"]) == CODES and set(df["status"]) == {"ok"} and set(df["current"]) == {"True"}
    row = df.set_index("county_code").loc["610631"]
    est = _results(out, "610631")["registered_share"]["est"]
    assert float(row["registered_share.est"]) == round(est, 4) and row["n_households"].isdigit()
    index = (out / "index.html").read_text(encoding="utf-8")
    assert '<meta charset="utf-8">' in index and "批量评估报告索引" in index and "通过" in index
    hrefs = re.findall(r'<a href="([^"]+)"', index)
    assert sum(h.endswith("/county_stats.html") for h in hrefs) == 3  # one report per county ...
    assert sum(h.endswith("/followup.csv") for h in hrefs) == 3  # ... its files ...
    assert {"summary.csv", "manifest.json"} <= set(hrefs)  # ... and the run's
    assert all((out / h).exists() for h in hrefs), hrefs
    report = (out / "610631" / "county_stats.html").read_text(encoding="utf-8")
    assert 'href="../index.html"' in report and 'id="evalkit-style"' in report  # back link, shared style
    man = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    for rel, sha in man["inputs"].items():
        assert provenance.sha256_file(data / rel) == sha
    assert {"counties.parquet", "villages.parquet", "households/610631.parquet", "members/610632.parquet"} \
        <= set(man["inputs"])
    assert man["notebook"]["sha256"] == provenance.sha256_file(COUNTY_NB)
    assert man["seeds"] == {"seed": 7} and man["parameters"]["per_county"]["610631"]["county_code"] == "610631"
    assert {"pandas", "numpy", "svy", "statsmodels", "scikit-learn", "papermill", "python"} <= set(man["packages"])
    assert "git_commit" in man and man["started_at"] <= man["finished_at"]
    for c in CODES:  # timestamps live in run.json/manifest only
        run = json.loads((out / c / "run.json").read_text())
        assert run["status"] == "ok" and run["input_hash"] == man["runs"][c]["input_hash"]
        text = (out / c / "results.json").read_text()
        assert man["started_at"][:10] not in text and ".tmp-" not in text


@pytest.mark.slow
def test_two_runs_are_identical_and_verify_says_so(clean_run, data, tmp_path, capsys):
    again = batch.run_batch(COUNTY_NB, data, workers=1, out=tmp_path / "again", progress=False)
    for c in CODES:
        assert batch.compare_json(_results(clean_run.out, c), _results(again.out, c)) == []
        assert (clean_run.out / c / "results.json").read_bytes() == (again.out / c / "results.json").read_bytes()
    assert _cli("verify", clean_run.out, "--workers", "2") == 0
    assert capsys.readouterr().out.startswith("identical")


@pytest.mark.slow
def test_verify_reports_changed_inputs(data_copy, tmp_path, capsys):
    out = tmp_path / "out"
    batch.run_batch(COUNTY_NB, data_copy, counties="610631", workers=1, out=out, progress=False)
    f = data_copy / "households" / "610631.parquet"
    pd.read_parquet(f).iloc[:-40].to_parquet(f, index=False)
    res = batch.verify(out, workers=1, progress=False)
    assert res.status == "inputs changed" and res.exit_code == 1
    assert any(p.startswith("households/610631.parquet") for p in res.inputs_changed)
    assert any(d.key == "n_households" and d.old - d.new == 40 for d in res.differences)
    assert _cli("verify", out, "--workers", "1") == 1
    text = capsys.readouterr().out
    assert text.startswith("inputs changed") and "610631/n_households: 572 vs 532" in text


@pytest.mark.slow
def test_resume_skips_done_counties_and_reruns_changed_ones(data_copy, tmp_path):
    out = tmp_path / "out"
    first = batch.run_batch(COUNTY_NB, data_copy, workers=2, out=out, progress=False)
    assert first.n_ok == 3
    again = batch.run_batch(COUNTY_NB, data_copy, workers=2, out=out, resume=True, progress=False)
    assert again.n_reused == 3 and again.n_ok == 3
    assert [c.duration_s for c in again.counties] == [c.duration_s for c in first.counties]
    f = data_copy / "households" / "610627.parquet"
    pd.read_parquet(f).iloc[:-10].to_parquet(f, index=False)
    third = batch.run_batch(COUNTY_NB, data_copy, workers=2, out=out, resume=True, progress=False)
    assert {c.county_code: c.reused for c in third.counties} == {"610627": False, "610631": True, "610632": True}
    assert third["610627"].results["n_households"] == first["610627"].results["n_households"] - 10
    # a changed parameter is a changed input too
    fourth = batch.run_batch(COUNTY_NB, data_copy, counties="610631", params={"n_boot": "20"}, workers=1,
                             out=out, resume=True, progress=False)
    assert fourth.n_reused == 0 and fourth.n_ok == 1


def _start_cli(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "evalkit.cli", "batch", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def _wait_for(cond, timeout: float = 60.0) -> None:
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError("timed out waiting")
        time.sleep(0.1)


@pytest.mark.slow
def test_a_killed_batch_leaves_nothing_that_looks_finished(data, tmp_path, monkeypatch):
    out = tmp_path / "out"
    args = [str(COUNTY_NB), "--data", str(data), "--out", str(out), "--counties", "610631,610632",
            "--workers", "2", "--param", "sleep_on=610632", "--param", "sleep_s=120"]
    p = _start_cli(args)
    try:
        # 610631 finishes; 610632 is still sleeping in its temporary directory
        _wait_for(lambda: (out / "610631" / "results.json").exists() and list(out.glob(".tmp-610632-*")))
        time.sleep(0.5)
    finally:
        os.killpg(p.pid, signal.SIGKILL)  # the whole process group, as hard as it gets
        p.wait()
    assert not (out / "610632").exists()
    assert [q.parent.name for q in out.glob("*/results.json")] == ["610631"]
    assert list(out.glob(".tmp-610632-*")), "the unfinished county is only a .tmp- directory"
    assert not (out / "summary.csv").exists() and not (out / "manifest.json").exists()
    # the next run cleans the stale temporaries, reuses the finished county; the timeout ends the sleeper
    monkeypatch.setattr(provenance, "source_sha256", REAL_SOURCE_SHA256)  # as the CLI process hashed it
    res = batch.run_batch(COUNTY_NB, data, counties="610631,610632", out=out, resume=True, timeout=2,
                          params={"sleep_on": "610632", "sleep_s": "120"}, progress=False)
    assert res["610631"].reused and res["610632"].status == "failed" and "timeout" in res["610632"].error
    assert not list(out.glob(".tmp-*"))


@pytest.mark.slow
def test_sigterm_stops_the_batch_cleanly(data, tmp_path):
    out = tmp_path / "out"
    p = _start_cli([str(COUNTY_NB), "--data", str(data), "--out", str(out), "--counties", "610631",
                    "--workers", "1", "--param", "sleep_on=*", "--param", "sleep_s=120"])
    try:
        _wait_for(lambda: list(out.glob(".tmp-610631-*/county_stats.ipynb")))
        time.sleep(1.0)
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=30) == 130
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    assert not (out / "610631").exists() and not list(out.glob(".tmp-*"))


@pytest.mark.slow
def test_a_notebook_without_county_code_runs_once(data, tmp_path):
    res = batch.run_batch(PROVINCE_NB, data, out=tmp_path / "prov", progress=False)
    assert [c.county_code for c in res.counties] == [batch.PROVINCE] and res.exit_code == 0
    r = json.loads((tmp_path / "prov" / batch.PROVINCE / "results.json").read_text())
    households = sum(len(pd.read_parquet(f)) for f in (data / "households").glob("*.parquet"))
    assert r == {"decision": {"overall": "pass"}, "n_counties": 3, "n_households": households}
    assert "全省测试汇总 PROVINCE_HEADING" in res[batch.PROVINCE].html.read_text(encoding="utf-8")


@pytest.mark.slow
def test_a_directory_parameter_makes_its_results_inputs(clean_run, data, tmp_path):
    runs = Path(shutil.copytree(clean_run.out, tmp_path / "county_runs"))
    out = tmp_path / "prov"
    first = batch.run_batch(PROVINCE_NB, data, params={"run_dir": str(runs)}, out=out, progress=False)
    r = first[batch.PROVINCE].results
    assert r["rolled_up"] == {"n": 3, "n_households": r["n_households"]}
    man = json.loads(first.manifest.read_text())
    assert {f"@run_dir/{c}/results.json" for c in CODES} <= set(man["inputs"])
    again = batch.run_batch(PROVINCE_NB, data, params={"run_dir": str(runs)}, out=out, resume=True, progress=False)
    assert again.n_reused == 1
    res = json.loads((runs / "610631" / "results.json").read_text())
    res["n_households"] += 1
    (runs / "610631" / "results.json").write_text(json.dumps(res))
    third = batch.run_batch(PROVINCE_NB, data, params={"run_dir": str(runs)}, out=out, resume=True, progress=False)
    assert third.n_reused == 0
    assert third[batch.PROVINCE].results["rolled_up"]["n_households"] == r["n_households"] + 1
    # the demo's helpers: a plain-text table and an index over several batches
    text = batch.summary_table_text(clean_run)
    assert "610631" in text and "done" in text and "3 run(s): 3 done" in text
    index = batch.write_demo_index(tmp_path, clean_run, third).read_text(encoding="utf-8")
    assert index.count("<h2>") == 2 and "prov/province/province_stats.html" in index


# ---------------------------------------------------------------------------------------------
# Any dataset layout; resume keyed on the code too; paths relative to the caller


def _write_csv_dataset(src: Path, dst: Path) -> Path:
    """The Parquet tables of ``src`` as one CSV file per table (the README's real-data layout)."""
    dst.mkdir(parents=True)
    for t in ("counties", "villages", "households", "members", "field_survey", "truth"):
        single = src / f"{t}.parquet"
        parts = [single] if single.is_file() else sorted((src / t).glob("*.parquet"))
        pd.concat([pd.read_parquet(f) for f in parts], ignore_index=True).to_csv(dst / f"{t}.csv", index=False)
    return dst


def test_inputs_are_the_files_load_dataset_reads(data, tmp_path):
    assert county_inputs(data, "610631") == [
        "counties.parquet", "households/610631.parquet", "members/610631.parquet", "panel/610631.parquet",
        "truth/610631.parquet", "village_indicators.parquet", "villages.parquet"]
    assert "households/610627.parquet" in county_inputs(data, None)
    flat = tmp_path / "flat"
    flat.mkdir()
    for name in ("counties.csv", "农户.xlsx", "members.txt", "truth.parquet", "households.quarantine.csv",
                 "validation_report.csv", "notes.md"):
        (flat / name).write_bytes(b"x")
    (flat / "quarantine").mkdir()
    (flat / "quarantine" / "members.quarantine.csv").write_bytes(b"x")
    want = ["counties.csv", "members.txt", "truth.parquet", "农户.xlsx"]
    assert county_inputs(flat, "610631") == want and county_inputs(flat, None) == want


def test_county_list_from_a_csv_dataset(small_province, tmp_path):
    csv = _write_csv_dataset(small_province, tmp_path / "csv")
    assert resolve_counties(csv, "all", True) == resolve_counties(small_province, "all", True)
    assert [c for c, _ in resolve_counties(csv, "all", True)] == CODES
    with pytest.raises(BatchError, match=r"unknown county code\(s\) 999999"):
        resolve_counties(csv, "610631,999999", True)
    (csv / "counties.csv").unlink()
    with pytest.raises(BatchError, match="no counties table"):
        resolve_counties(csv, "all", True)


@pytest.mark.slow
def test_a_csv_dataset_runs_the_county_notebook_and_resume_notices_csv_changes(small_province, tmp_path):
    csv = _write_csv_dataset(small_province, tmp_path / "csv")
    out = tmp_path / "out"
    first = batch.run_batch(COUNTY_EXIT_NB, csv, counties="610631", workers=1, out=out, progress=False)
    c = first["610631"]
    assert first.exit_code == 0 and c.status == "ok", c.error
    assert c.verdict in ("pass", "fail", "borderline") and c.results["county_code"] == "610631"
    man = json.loads(first.manifest.read_text(encoding="utf-8"))
    tables = ("counties", "villages", "households", "members", "field_survey", "truth")
    assert man["inputs"] == {f"{t}.csv": provenance.sha256_file(csv / f"{t}.csv") for t in tables}
    # the same numbers as from the Parquet partitions (only the data hash differs)
    ref = batch.run_batch(COUNTY_EXIT_NB, small_province, counties="610631", workers=1, out=tmp_path / "pq",
                          progress=False)
    assert [k for k, _, _ in batch.compare_json(ref["610631"].results, c.results)] == ["data_sha256"]
    again = batch.run_batch(COUNTY_EXIT_NB, csv, counties="610631", workers=1, out=out, resume=True,
                            progress=False)
    assert again["610631"].reused
    # another county's rows removed from a shared CSV: the file changed, so the county runs again
    hh = pd.read_csv(csv / "households.csv", dtype=str)
    hh[hh["county_code"] != "610627"].to_csv(csv / "households.csv", index=False)
    third = batch.run_batch(COUNTY_EXIT_NB, csv, counties="610631", workers=1, out=out, resume=True,
                            progress=False)
    assert not third["610631"].reused and third["610631"].status == "ok"
    assert third["610631"].input_hash != c.input_hash


def test_the_input_hash_covers_the_evalkit_version_and_source(data, tmp_path, monkeypatch):
    def hashes() -> dict:
        plan = plan_batch(COUNTY_NB, data, "610631,610632", None, tmp_path / "out", 60, "python3")
        return {j["code"]: j["input_hash"] for j in plan.jobs}

    base = hashes()
    assert hashes() == base
    src = REAL_SOURCE_SHA256()
    assert len(src) == 64 and int(src, 16) >= 0
    monkeypatch.setattr(provenance, "source_sha256", lambda: "0" * 64)
    patched = hashes()
    assert all(patched[c] != base[c] for c in base)
    monkeypatch.setattr(provenance, "evalkit_version", lambda: "0.0.0-other")
    assert all(hashes()[c] != patched[c] for c in base)


@pytest.mark.slow
def test_resume_reruns_when_the_evalkit_source_changed(data, tmp_path, monkeypatch):
    out = tmp_path / "out"
    first = batch.run_batch(COUNTY_NB, data, counties="610631", workers=1, out=out, progress=False)
    man = json.loads(first.manifest.read_text())
    assert man["evalkit_source_sha256"] == provenance.source_sha256()
    assert batch.run_batch(COUNTY_NB, data, counties="610631", workers=1, out=out, resume=True,
                           progress=False).n_reused == 1
    real = provenance.source_sha256()  # (pinned for this module)
    monkeypatch.setattr(provenance, "source_sha256", lambda: "f" * 64)  # "a fixed threshold or bug"
    second = batch.run_batch(COUNTY_NB, data, counties="610631", workers=1, out=out, resume=True, progress=False)
    assert second.n_reused == 0 and second.n_ok == 1
    assert json.loads(second.manifest.read_text())["evalkit_source_sha256"] == "f" * 64
    # verify against the real source: the run was made by other code
    monkeypatch.setattr(provenance, "source_sha256", lambda: real)
    res = batch.verify(out, workers=1, progress=False)
    assert res.status == "inputs changed" and res.inputs_changed == ["evalkit source (sha256 differs)"]
    assert res.differences == []


def test_relative_path_parameters_resolve_against_the_callers_directory(data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    (tmp_path / "610631").mkdir()  # a county folder: fail_on=610631 is a code, not a path
    (tmp_path / "mine.toml").write_text("")
    plan = plan_batch(PROVINCE_NB, os.path.relpath(data, tmp_path), "all",
                       {"run_dir": "runs", "seed": "4"}, "out", 60, "python3")
    assert plan.given == {"run_dir": str(tmp_path / "runs"), "seed": 4}
    assert plan.jobs[0]["params"]["run_dir"] == str(tmp_path / "runs")
    assert plan.data == Path(data).resolve() and plan.out == tmp_path / "out"
    assert plan.jobs[0]["params"]["data_dir"] == str(Path(data).resolve())
    got = absolute_paths({"run_dir": "runs", "policy_file": "mine.toml", "other": "./runs",
                                 "fail_on": "610631", "missing_dir": "nope", "abs_dir": "/x", "n": 3}, tmp_path)
    assert got == {"run_dir": str(tmp_path / "runs"), "policy_file": str(tmp_path / "mine.toml"),
                   "other": str(tmp_path / "runs"), "fail_on": "610631", "missing_dir": "nope",
                   "abs_dir": "/x", "n": 3}


@pytest.mark.slow
def test_a_relative_run_dir_works_from_the_callers_directory(clean_run, data, tmp_path, monkeypatch):
    shutil.copytree(clean_run.out, tmp_path / "county_runs")
    monkeypatch.chdir(tmp_path)
    res = batch.run_batch(PROVINCE_NB, data, params={"run_dir": "county_runs"}, out="prov", progress=False)
    assert res.exit_code == 0 and res.out == tmp_path / "prov"
    assert res[batch.PROVINCE].results["rolled_up"]["n"] == 3, "run_dir was read from the notebook folder"
    man = json.loads(res.manifest.read_text())
    assert man["parameters"]["given"]["run_dir"] == str(tmp_path / "county_runs")


def test_counties_poverty_selects_the_assessable_counties(tmp_path):
    """`--counties poverty`: poverty counties with a planned exit year, from the counties table."""
    d = synth.generate("shaanxi", seed=1, out=tmp_path / "d", scale=0.005,
                       counties=["610622", "610625", "610630"], field_survey=False, policy=load_policy())
    c = pd.read_parquet(d / "counties.parquet")
    expected = sorted(c.loc[c["is_poverty_county"] & c["planned_exit_year"].notna(), "county_code"])
    got = [code for code, _ in resolve_counties(d, "poverty", True)]
    assert got == expected and 0 < len(got) < 3  # the profile draws some poverty counties, not all


def test_county_names_select_like_codes_and_a_bad_lang_stops_the_batch(data, tmp_path):
    by_code = resolve_counties(data, "610631,610632", True)
    assert by_code[0] == ("610631", "黄龙县")
    assert resolve_counties(data, ["黄龙县", "610632"], True) == by_code
    out = tmp_path / "out"
    with pytest.raises(BatchError, match=r"lang.*'fr'"):
        batch.run_batch(COUNTY_NB, data, params={"lang": "fr"}, out=out, progress=False)
    assert not out.exists()


def _exit_result(code: str, name: str, decision: str, est: float) -> ExitResult:
    crit = {c: CriterionResult(est=est, se=0.01, lci=est - 0.01, uci=est + 0.02, n=100, df=9, verdict=decision)
            for c in CRITERIA}
    thresholds = {c: {"value": 0.03, "direction": "below"} for c in CRITERIA}
    return ExitResult(code, name, 2019, "west", crit, decision, "pass", thresholds, "f" * 64, "0.1.0", ["a note"])


def test_exit_results_are_read_through_exit_result(tmp_path):
    r = _exit_result("610631", "黄龙县", "borderline", 0.025)
    flat = batch.key_results(r.to_dict())
    assert flat["decision.overall"] == "borderline" and flat["decision.official_point_rule"] == "pass"
    assert flat["comprehensive_poverty_rate.est"] == 0.025 and flat["year"] == 2019
    assert {k.split(".")[0] for k in flat} == {"year", "decision", *CRITERIA}
    for rr in (r, _exit_result("610627", "宜川县", "pass", 0.01)):
        (tmp_path / rr.county_code).mkdir()
        (tmp_path / rr.county_code / "results.json").write_text(json.dumps(rr.to_dict(), ensure_ascii=False))
    (tmp_path / "province").mkdir()  # another notebook's results are not exit results
    (tmp_path / "province" / "results.json").write_text('{"decision": {"overall": "pass"}}')
    assert [x.county_code for x in exit_results(tmp_path)] == ["610627", "610631"]
    en = summary_text(tmp_path, "en").splitlines()
    assert en[0].startswith("county") and "comprehensive incidence" in en[0]
    assert "610631 黄龙县" in en[3] and "borderline" in en[3] and "2.50% [1.50%, 4.50%]" in en[3]
    zh = summary_text(tmp_path, "zh")
    assert "临界" in zh and "通过" in zh and "综合贫困发生率" in zh


# ---------------------------------------------------------------------------------------------
# Province scale: names for masking read column-wise, one Masker per process, a deferred import


def test_member_names_are_the_names_the_loader_reads(data, tmp_path):
    from evalkit.data import load_dataset
    from evalkit.privacy import known_names
    from evalkit.runner.plan import member_names

    d = Path(shutil.copytree(data, tmp_path / "mixed"))
    # one partition under the Chinese header with padded names, an ASCII name and a lone character;
    # another as CSV (read as the loader reads it), with a row whose person number cannot be parsed
    a = pd.read_parquet(d / "members" / "610627.parquet")
    a.loc[0, "name"], a.loc[1, "name"], a.loc[2, "name"] = "  欧阳修文\u3000", "Ann Lee", "王"
    a.rename(columns={"name": "姓名"}).to_parquet(d / "members" / "610627.parquet", index=False)
    b = pd.read_parquet(d / "members" / "610631.parquet")
    b.loc[0, "person_id"], b.loc[0, "name"] = "not-a-number", "司马光明"
    (d / "members" / "610631.parquet").unlink()
    b.to_csv(d / "members" / "610631.csv", index=False)
    ds = load_dataset(d, tables=["members"], validate=False)
    want = known_names(*[t["name"] for t in (ds.tables["members"], ds.quarantine.get("members")) if t is not None])
    got = member_names(d)
    assert got == want
    assert "欧阳修文" in got and "司马光明" in got and "Ann Lee" not in got and "王" not in got
    assert len(got) == len(set(got)) > 100 and [len(n) for n in got] == sorted((len(n) for n in got), reverse=True)
    assert member_names(tmp_path / "nothing") == []


def test_one_masker_per_process_and_it_travels_pickled(data):
    import pickle

    from evalkit.privacy import Masker
    from evalkit.runner.execute import masker_for
    from evalkit.runner.plan import member_names

    names = member_names(data)
    m = masker_for(names)
    assert masker_for(list(names)) is m and masker_for(names[:-1]) is not m
    text = f"户主{names[0]}，成员{names[-1]}，身份证 610627199001011234"
    masked = m.text(text)
    assert names[0] not in masked and names[-1] not in masked and "610627199001011234" not in masked
    assert pickle.loads(pickle.dumps(m)).text(text) == masked == Masker(names).text(text)


def test_the_iri_check_of_jsonschema_is_deferred_not_lost():
    code = (
        "import sys, evalkit.runner, papermill\n"
        "stand_in = getattr(sys.modules.get('rfc3987_syntax'), '__evalkit_deferred__', False)\n"
        "import jsonschema\n"
        "fc = jsonschema.FormatChecker()\n"
        "print(stand_in, fc.conforms('http://例子.测试/路径?q=1', 'iri'), fc.conforms('ht tp://x', 'iri'),\n"
        "      fc.conforms('a b', 'iri-reference'), fc.conforms('../路径', 'iri-reference'))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    installed = subprocess.run([sys.executable, "-c", "import rfc3987_syntax"], capture_output=True).returncode == 0
    # with the package installed: papermill did not import it, and the checks give its answers
    assert out.stdout.split() == ([str(installed), "True", "False", "False", "True"] if installed else
                                  ["False", "True", "True", "True", "True"])
