"""Fault injection: kills, tampering, full disks, unwritable outputs, closed pipes, two batches.

Each test states the outcome the README's batch section promises and fails if it regresses. The
notebook is the tiny ``tests/notebooks/county_stats.ipynb`` (its ``sleep_on`` / ``kill_on``
parameters make a county slow or kill its kernel).
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from evalkit import provenance, synth
from evalkit import runner as batch
from evalkit.cli import main
from evalkit.config import load_policy
from evalkit.outputs import file_mode, neutralize_formulas, write_csv, write_xlsx
from evalkit.report.summary import read_summary
from evalkit.runner import CountyResult, write_index
from evalkit.runner.execute import descendants

NB = Path(__file__).resolve().parent / "notebooks" / "county_stats.ipynb"
CODES = ["610627", "610631", "610632"]
SOURCE_SHA256_NOW = provenance.source_sha256  # the real function (the fixture below pins the module's)
SOURCE_SHA256 = SOURCE_SHA256_NOW()


@pytest.fixture(scope="module", autouse=True)
def _stable_source_hash():
    """The input hash covers src/evalkit: edits by others during the session must not force re-runs."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(provenance, "source_sha256", lambda: SOURCE_SHA256)
        yield


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("faultdata")
    return synth.generate("demo", seed=1, out=out, scale=0.02, counties=CODES, field_survey=False,
                          policy=load_policy())


@pytest.fixture(scope="module")
def done(data, tmp_path_factory) -> Path:
    """A finished two-county batch (copied by the tests that tamper with it)."""
    out = tmp_path_factory.mktemp("done") / "out"
    res = batch.run_batch(NB, data, "610627,610631", workers=2, out=out, progress=False)
    assert res.exit_code == 0
    return out


def _start(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "evalkit.cli", "batch", *map(str, args)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)


def _run(args: list[str]) -> int:
    """``evalkit batch ARGS`` in a child process, to the end (the same evalkit source hash as a
    ``_start`` process: pinned hashes of this module do not reach a child)."""
    return _start(args).wait(timeout=300)


def _reused(out: Path) -> dict[str, bool]:
    return {k: v["reused"] for k, v in json.loads((out / "manifest.json").read_text(encoding="utf-8"))["runs"].items()}


def _source(out: Path) -> str:
    return json.loads((out / "manifest.json").read_text(encoding="utf-8"))["evalkit_source_sha256"]


def _expect_reused(out: Path, before: str, reused: dict[str, bool]) -> None:
    """``reused`` as the manifest says; but when the evalkit source changed between the runs (others
    editing the tree during the test) nothing may be reused: the input hash covers the source."""
    want = reused if _source(out) == before else {k: False for k in reused}
    assert _reused(out) == want


def _wait_for(cond, timeout: float = 90.0) -> None:
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError("timed out waiting")
        time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        st = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return st.rsplit(")", 1)[1].split()[0] not in ("Z", "X")  # a zombie has ended


@contextlib.contextmanager
def _tmpfs(path: Path, opts: str):
    """A tmpfs mounted at ``path`` (tests run as root in CI); skips loudly when mounting is impossible."""
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip()}): run as root to test this fault")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


# ---------------------------------------------------------------------------------------------
# Kills


@pytest.mark.slow
def test_sigkill_leaves_no_process_and_nothing_published_then_resume_completes(data, tmp_path):
    out = tmp_path / "out"
    before = SOURCE_SHA256_NOW()  # what the batch below hashes, unless someone edits src meanwhile
    p = _start([NB, "--data", data, "--out", out, "--counties", "610631,610632", "--workers", "2",
                "--param", "sleep_on=610632", "--param", "sleep_s=4"])
    try:
        _wait_for(lambda: (out / "610631" / "results.json").exists()
                  and list(out.glob(".tmp-610632-*/county_stats.ipynb")))
        started = descendants(p.pid)  # fork server, workers, kernels, resource tracker
        assert len(started) >= 2
        os.kill(p.pid, signal.SIGKILL)  # the batch process only: its children must follow by themselves
        p.wait()
        time.sleep(5.0)
        left = [q for q in started if _alive(q)]
        assert left == [], f"processes of the killed batch still alive 5 s later: {left}"
        time.sleep(2.0)  # the sleeping county would have finished by now had its worker survived
        assert not (out / "610632").exists(), "a county was published after its batch died"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)
    assert _run([NB, "--data", data, "--out", out, "--counties", "610631,610632", "--resume",
                 "--param", "sleep_on=610632", "--param", "sleep_s=4"]) == 0
    _expect_reused(out, before, {"610631": True, "610632": False})
    assert not list(out.glob(".tmp-*"))


@pytest.mark.slow
def test_sigterm_rewrites_the_run_files_and_marks_counties_of_other_parameters(data, tmp_path):
    out = tmp_path / "out"
    assert _run([NB, "--data", data, "--out", out, "--counties", "610631,610632", "--param", "seed=7"]) == 0
    # a re-run with new parameters, interrupted after one county
    p = _start([NB, "--data", data, "--out", out, "--counties", "610631,610632", "--workers", "1",
                "--param", "seed=8", "--param", "sleep_on=610632", "--param", "sleep_s=6"])
    try:
        _wait_for(lambda: json.loads((out / "610631" / "run.json").read_text())["params"]["seed"] == 8
                  and list(out.glob(".tmp-610632-*/county_stats.ipynb")))
        time.sleep(0.5)
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=60) == 130
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    before = _source(out)
    summ = read_summary(out / "summary.csv").set_index("county_code")
    assert summ.loc["610631", "current"] == "True" and summ.loc["610632", "current"] == "False"
    man = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert man["interrupted"] is True and man["parameters"]["given"]["seed"] == 8
    assert man["runs"]["610632"]["current"] is False and man["runs"]["610631"]["current"] is True
    assert "other inputs or parameters" in (out / "index.html").read_text(encoding="utf-8") or \
        "参数或输入不同" in (out / "index.html").read_text(encoding="utf-8")
    # --resume with the new parameters runs exactly the stale county
    assert _run([NB, "--data", data, "--out", out, "--counties", "610631,610632", "--resume",
                 "--param", "seed=8", "--param", "sleep_on=610632", "--param", "sleep_s=6"]) == 0
    _expect_reused(out, before, {"610631": True, "610632": False})
    assert read_summary(out / "summary.csv")["current"].tolist() == ["True", "True"]


@pytest.mark.slow
def test_a_killed_kernel_fails_its_county_and_resume_reruns_it(data, tmp_path):
    out = tmp_path / "out"
    res = batch.run_batch(NB, data, "610627,610631", out=out, progress=False, params={"kill_on": "610631"})
    assert res.exit_code == 1 and res["610631"].status == "failed" and "kernel died" in res["610631"].error
    again = batch.run_batch(NB, data, "610627,610631", out=out, resume=True, progress=False)
    assert again["610627"].status == "ok" and again["610631"].status == "ok" and not again["610631"].reused


# ---------------------------------------------------------------------------------------------
# Tampering


@pytest.mark.slow
def test_verify_reports_changed_missing_and_extra_outputs(done, tmp_path, capsys):
    run = Path(shutil.copytree(done, tmp_path / "run"))
    html = run / "610627" / "county_stats.html"
    html.write_text(html.read_text(encoding="utf-8").replace("RESULT_HEADING", "EDITED"), encoding="utf-8")
    (run / "610631" / "followup.csv").unlink()
    (run / "610631" / "extra.json").write_text("{}", encoding="utf-8")
    code = main(["verify", str(run), "--workers", "2"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 1 and lines[0].startswith("outputs changed")
    assert "output changed: 610627/county_stats.html (sha256 differs)" in lines
    assert "output changed: 610631/followup.csv (missing)" in lines
    assert "output changed: 610631/extra.json (extra file)" in lines


@pytest.mark.slow
def test_verify_is_identical_on_an_untouched_run(done, capsys):
    assert main(["verify", str(done), "--workers", "2"]) == 0
    assert capsys.readouterr().out.startswith("identical")


def test_resume_reruns_a_county_whose_outputs_were_tampered_with(done, data, tmp_path):
    run = Path(shutil.copytree(done, tmp_path / "run"))
    res_json = run / "610631" / "results.json"
    r = json.loads(res_json.read_text(encoding="utf-8"))
    r["registered_share"]["est"] = 0.0
    res_json.write_text(json.dumps(r), encoding="utf-8")
    again = batch.run_batch(NB, data, "610627,610631", out=run, resume=True, progress=False)
    assert again["610627"].reused and not again["610631"].reused
    assert again["610631"].results["registered_share"]["est"] != 0.0


def test_resume_reruns_a_county_whose_input_changed(done, data, tmp_path):
    d = Path(shutil.copytree(data, tmp_path / "data"))
    run = Path(shutil.copytree(done, tmp_path / "run"))
    hh = pd.read_parquet(d / "households" / "610631.parquet")
    hh.iloc[:-1].to_parquet(d / "households" / "610631.parquet")
    again = batch.run_batch(NB, d, "610627,610631", out=run, resume=True, progress=False)
    assert again["610627"].reused and not again["610631"].reused


# ---------------------------------------------------------------------------------------------
# Unwritable outputs, full disks, closed pipes


def _bad_dataset(data: Path, dst: Path, n_bad: int = 300) -> Path:
    """A CSV dataset whose households table has ``n_bad`` unreadable sizes (a big quarantine)."""
    dst.mkdir(parents=True)
    for t in ("counties", "villages", "households", "members"):
        single = data / f"{t}.parquet"
        parts = [single] if single.is_file() else sorted((data / t).glob("*.parquet"))
        f = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True).astype(object)
        if t == "households":
            f.loc[: n_bad - 1, "household_size"] = "unknown"
        f.to_csv(dst / f"{t}.csv", index=False)
    return dst


def _one_error_line(err: str, *needles: str) -> None:
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in lines[0], (n, lines[0])


def test_out_below_a_regular_file_is_one_line_and_exit_2(data, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    bad = _bad_dataset(data, tmp_path / "bad", n_bad=3)
    assert main(["validate", str(bad), "--out", str(blocker / "q")]) == 2
    _one_error_line(capsys.readouterr().err, str(blocker), "Not a directory")
    assert main(["batch", str(NB), "--data", str(data), "--out", str(blocker / "out"), "--counties", "610631"]) == 2
    _one_error_line(capsys.readouterr().err, str(blocker), "Not a directory")


def test_a_read_only_output_directory_is_one_line_and_exit_2(data, tmp_path, capsys):
    bad = _bad_dataset(data, tmp_path / "bad", n_bad=3)
    with _tmpfs(tmp_path / "ro", "ro,size=64k") as ro:
        assert main(["validate", str(bad), "--out", str(ro / "q")]) == 2
        _one_error_line(capsys.readouterr().err, str(ro / "q"), "Read-only file system")
        assert main(["batch", str(NB), "--data", str(data), "--out", str(ro / "out"), "--counties", "610631"]) == 2
        _one_error_line(capsys.readouterr().err, str(ro / "out"), "Read-only file system")


def test_validate_on_a_full_disk_leaves_nothing_truncated(data, tmp_path, capsys):
    bad = _bad_dataset(data, tmp_path / "bad")
    with _tmpfs(tmp_path / "full", "size=8k") as full:
        code = main(["validate", str(bad), "--out", str(full / "q")])
        err = capsys.readouterr().err
        assert code == 2
        _one_error_line(err, str(full / "q"), "No space left on device")
        left = sorted(p.name for p in (full / "q").iterdir())
        assert "validation_report.csv" not in left and not [n for n in left if n.startswith(".tmp-")], left


def test_validate_with_enospc_injected_at_the_write_leaves_nothing_truncated(data, tmp_path, capsys, monkeypatch):
    # the same fault without a mount: the disk fills half-way through writing the report
    bad = _bad_dataset(data, tmp_path / "bad", n_bad=3)
    real = pd.DataFrame.to_csv

    def half_then_full(self, path=None, *a, **k):
        real(self.head(1), path, *a, **k)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(pd.DataFrame, "to_csv", half_then_full)
    q = tmp_path / "q"
    assert main(["validate", str(bad), "--out", str(q)]) == 2
    _one_error_line(capsys.readouterr().err, "No space left on device")
    assert sorted(p.name for p in q.iterdir()) == []


def test_a_closed_pipe_ends_quietly(data, tmp_path):
    bad = _bad_dataset(data, tmp_path / "bad", n_bad=200)
    # The reader is gone before evalkit writes (Python takes far longer to start than `true`), so the
    # write always meets a closed pipe; `| head -1` raced: 5 KB fit in the pipe before head exited.
    cmd = f"{sys.executable} -m evalkit.cli validate {bad} --out {tmp_path / 'q'} | true"
    r = subprocess.run(["bash", "-c", f"set -o pipefail; {cmd}"], capture_output=True, text=True, timeout=120)
    assert r.stdout == ""
    assert "Traceback" not in r.stderr and "BrokenPipe" not in r.stderr, r.stderr
    assert r.returncode in (0, 141)


def test_two_batches_on_the_same_out(data, tmp_path, capsys):
    out = tmp_path / "out"
    p = _start([NB, "--data", data, "--out", out, "--counties", "610631", "--workers", "1",
                "--param", "sleep_on=*", "--param", "sleep_s=6"])
    try:
        _wait_for(lambda: list(out.glob(".tmp-610631-*/county_stats.ipynb")))
        assert main(["batch", str(NB), "--data", str(data), "--out", str(out), "--counties", "610631"]) == 2
        _one_error_line(capsys.readouterr().err, "another batch is writing into", str(out))
        assert p.wait(timeout=120) == 0, p.stderr.read().decode()
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    assert json.loads((out / "610631" / "run.json").read_text())["status"] == "ok"


# ---------------------------------------------------------------------------------------------
# Outputs safe to open, with one set of permissions


def test_every_output_has_the_umask_permissions(done):
    want = file_mode()
    modes = {p.relative_to(done).as_posix(): stat.S_IMODE(p.stat().st_mode)
             for p in done.rglob("*") if p.is_file() and p.name != ".batch.lock"}
    assert {k: oct(v) for k, v in modes.items() if v != want} == {}
    assert modes["summary.csv"] == modes["610627/county_stats.html"] == want


def test_formula_injection_is_neutralized_in_csv_and_excel(tmp_path):
    df = pd.DataFrame({"village": ["=HYPERLINK(\"http://x\")", "+1", "-2+3", "@SUM(A1)", "东村"],
                       "n": [-1, 2, -3, 4, 5]})
    got = neutralize_formulas(df)
    assert got["village"].tolist() == ["'=HYPERLINK(\"http://x\")", "'+1", "'-2+3", "'@SUM(A1)", "东村"]
    assert got["n"].tolist() == [-1, 2, -3, 4, 5]  # numbers stay numbers
    write_csv(df, tmp_path / "a.csv")
    back = pd.read_csv(tmp_path / "a.csv", encoding="utf-8-sig")
    assert back["village"].str[0].tolist() == ["'", "'", "'", "'", "东"] and back["n"].tolist() == [-1, 2, -3, 4, 5]
    write_xlsx({"s": df}, tmp_path / "a.xlsx")
    ws = openpyxl.load_workbook(tmp_path / "a.xlsx").active
    cells = [ws.cell(row=r, column=1) for r in range(2, 7)]
    assert all(c.data_type == "s" for c in cells)  # text, never a formula
    assert [ws.cell(row=r, column=2).value for r in range(2, 7)] == [-1, 2, -3, 4, 5]


def test_index_escapes_every_data_value(tmp_path):
    c = CountyResult("610631", "<script>alert(1)</script>", "failed", 1.0, "<img src=x onerror=alert(1)>",
                     tmp_path, None, None, "h")
    doc = write_index(tmp_path / "index.html", [c], Path("nb.ipynb"), "en").read_text(encoding="utf-8")
    assert "<script>" not in doc and "<img" not in doc
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in doc
