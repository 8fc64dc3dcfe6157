"""A real Dask cluster: a scheduler and two workers as separate processes on localhost.

The batch with ``--scheduler`` must give the same results as a local run, and a worker killed
while it runs a county must not lose that county: the scheduler hands it to the other worker.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evalkit import runner as batch
from evalkit import synth
from evalkit.config import load_policy
from evalkit.runner.execute import descendants

NB = Path(__file__).resolve().parent / "notebooks" / "county_stats.ipynb"
CODES = ["610627", "610631", "610632"]
DASK = Path(sys.executable).with_name("dask")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(cond, timeout: float = 90.0) -> None:
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError("timed out waiting")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("daskdata")
    return synth.generate("demo", seed=3, out=out, scale=0.02, counties=CODES, field_survey=False,
                          policy=load_policy())


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """``dask scheduler`` and two ``dask worker`` processes (no nanny: a killed worker stays dead)."""
    tmp = tmp_path_factory.mktemp("dask")
    addr = f"tcp://127.0.0.1:{_free_port()}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    logs = {n: open(tmp / f"{n}.log", "w") for n in ("scheduler", "wA", "wB")}
    procs = {"scheduler": subprocess.Popen(
        [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", addr.rsplit(":", 1)[1], "--no-dashboard"],
        env=env, stdout=logs["scheduler"], stderr=subprocess.STDOUT, start_new_session=True)}
    try:
        for name in ("wA", "wB"):
            procs[name] = subprocess.Popen(
                [str(DASK), "worker", addr, "--name", name, "--nthreads", "1", "--no-nanny", "--no-dashboard",
                 "--local-directory", str(tmp / name)],
                env=env, stdout=logs[name], stderr=subprocess.STDOUT, start_new_session=True)
        from distributed import Client

        with Client(addr, timeout=60, set_as_default=False) as c:
            c.wait_for_workers(2, timeout=90)
        yield addr, procs
    finally:
        for p in procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        for f in logs.values():
            f.close()


@pytest.fixture(scope="module")
def local_run(data, tmp_path_factory):
    res = batch.run_batch(NB, data, ",".join(CODES), workers=2, out=tmp_path_factory.mktemp("local") / "out",
                          progress=False, params={"sleep_on": "610632", "sleep_s": 0})
    assert res.exit_code == 0
    return res


def _results(out: Path, code: str) -> dict:
    return json.loads((out / code / "results.json").read_text(encoding="utf-8"))


@pytest.mark.slow
def test_a_batch_on_a_real_cluster_equals_the_local_run_even_when_a_worker_dies(cluster, data, local_run, tmp_path):
    addr, procs = cluster
    out = tmp_path / "dask"
    killed: list[str] = []

    def kill_the_worker_running_the_slow_county() -> None:
        _wait_for(lambda: list(out.glob(".tmp-610632-*/county_stats.ipynb")))
        time.sleep(1.0)  # the other counties are quick: after this only the slow one is running
        # the kernel of the slow county runs under its worker: that worker has a child process
        _wait_for(lambda: any(descendants(procs[n].pid) for n in ("wA", "wB")), timeout=30)
        name = next(n for n in ("wA", "wB") if descendants(procs[n].pid))
        os.kill(procs[name].pid, signal.SIGKILL)
        killed.append(name)

    import threading

    t = threading.Thread(target=kill_the_worker_running_the_slow_county, daemon=True)
    t.start()
    res = batch.run_batch(NB, data, ",".join(CODES), out=out, scheduler=addr, progress=False,
                          params={"sleep_on": "610632", "sleep_s": 8})
    t.join(timeout=5)
    assert len(killed) == 1, "the slow county's worker was not found"
    assert procs[killed[0]].wait(timeout=10) == -signal.SIGKILL
    assert res.exit_code == 0 and res.n_ok == 3, [(c.county_code, c.status, c.error) for c in res.counties]
    for c in CODES:
        assert batch.compare_json(_results(local_run.out, c), _results(out, c)) == []
    man = json.loads(res.manifest.read_text(encoding="utf-8"))
    assert man["executor"]["scheduler"] == addr
    assert not list(out.glob(".tmp-*"))
