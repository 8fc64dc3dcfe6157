"""Execute the jobs of a plan: one county per worker process, locally or on a Dask cluster.

Each run writes into a private temporary directory ``OUT/.tmp-<code>-<random>/`` that is renamed
to ``OUT/<code>/`` only once it is complete (or recorded as failed), so nothing unfinished ever
looks finished. A lock on OUT keeps a second batch out while stale temporaries are cleaned.
"""
from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import secrets
import shutil
import signal
import sys
import time
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from evalkit.errors import BatchError

try:  # POSIX only; without it two batches into one OUT are not prevented
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

__all__ = ["THREAD_ENV", "now", "stderr_to", "run_county", "run_local", "run_dask", "batch_lock", "clean_stale"]

#: Thread pools inside a kernel are pinned to 1 unless the caller set them: one county per
#: process is the parallelism, and BLAS reductions then do not depend on the core count.
THREAD_ENV: tuple[str, ...] = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def now() -> str:
    """The current UTC time, ISO 8601 with milliseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _error_message(e: BaseException, timeout: int) -> str:
    from nbclient.exceptions import CellTimeoutError, DeadKernelError  # heavy; loaded in workers anyway
    from papermill.exceptions import PapermillExecutionError

    if isinstance(e, PapermillExecutionError):
        msg = f"{e.ename}: {e.evalue} (cell [{e.exec_count}])"
    elif isinstance(e, CellTimeoutError):
        msg = f"timeout: a cell ran longer than {timeout} s (papermill execution_timeout)"
    elif isinstance(e, DeadKernelError):
        msg = f"kernel died (killed or crashed): {e}"
    else:
        msg = f"{type(e).__name__}: {e}"
    return _ANSI.sub("", msg).strip()


@contextlib.contextmanager
def stderr_to(path: Path) -> Iterator[None]:
    """Send file descriptor 2 (inherited by the kernel) to ``path``: kernel noise stays out of the bar."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "ab") as f:
        os.dup2(f.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def _export_html(nb: Any, path: Path, title: str, resources_path: str) -> None:
    from nbconvert import HTMLExporter  # heavy; preloaded by the fork server

    ex = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True,
                      embed_images=True)
    body, _ = ex.from_notebook_node(nb, resources={"metadata": {"path": resources_path, "name": title}})
    path.write_text(body, encoding="utf-8")


def _promote(tmp: Path, final: Path) -> None:
    """Rename ``tmp`` onto ``final``; an older ``final`` is moved aside first and then removed."""
    old = None
    if final.exists() or final.is_symlink():
        old = final.parent / f".tmp-old-{final.name}-{secrets.token_hex(4)}"
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _record(job: Mapping[str, Any], status: str, duration: float, error: str | None, started: str,
            notebook: str | None, html_name: str | None) -> dict[str, Any]:
    return {
        "county_code": job["code"], "county_name": job["name"], "status": status,
        "duration_s": round(duration, 3), "error": error, "input_hash": job["input_hash"],
        "params": {k: v for k, v in job["params"].items() if k != "output_dir"},
        "notebook": notebook, "html": html_name, "kernel_name": job["kernel_name"],
        "started_at": started, "finished_at": now(), "host": platform.node(), "pid": os.getpid(),
    }


def _write_run_json(tmp: Path, rec: Mapping[str, Any]) -> None:
    (tmp / "run.json").write_text(json.dumps(rec, ensure_ascii=False, indent=2, sort_keys=True) + "\n",
                                  encoding="utf-8")


def _finish_failed(job: Mapping[str, Any], tmp: Path, error: str, t0: float, started: str) -> dict[str, Any]:
    """Record a failure in ``tmp/run.json`` and move ``tmp`` to ``OUT/<code>/`` (no results.json there)."""
    tmp.mkdir(parents=True, exist_ok=True)
    res = tmp / "results.json"
    if res.exists():  # written before a later cell failed: keep it, but never as a finished result
        os.replace(res, tmp / "results.partial.json")
    nb_name = f"{job['stem']}.ipynb"
    rec = _record(job, "failed", time.perf_counter() - t0, error, started,
                  nb_name if (tmp / nb_name).exists() else None, None)
    _write_run_json(tmp, rec)
    _promote(tmp, Path(job["out"]) / job["code"])
    return rec


def _reject_constant(name: str) -> Any:
    raise ValueError(f"results.json holds {name}: write null for a missing number")


def _execute(job: Mapping[str, Any], tmp: Path) -> None:
    """Run the notebook into ``tmp``, check its results.json and export the HTML report."""
    import papermill  # heavy; preloaded by the fork server

    params = dict(job["params"])
    params["output_dir"] = str(tmp)
    stem = job["stem"]
    log = stderr_to(tmp / "kernel.log") if job.get("capture_stderr") else contextlib.nullcontext()
    with log:
        nb = papermill.execute_notebook(
            job["notebook"], str(tmp / f"{stem}.ipynb"), parameters=params, kernel_name=job["kernel_name"],
            progress_bar=False, log_output=False, cwd=job["cwd"], execution_timeout=job["timeout"],
            start_timeout=120)
    res = tmp / "results.json"
    if not res.is_file():
        raise FileNotFoundError("the notebook finished but wrote no results.json into output_dir")
    # a truncated or invalid file is a failure, and so is NaN/Infinity: evalkit never writes a
    # silent NaN (outputs.to_jsonable), and NaN != NaN would make every verify "differ"
    json.loads(res.read_text(encoding="utf-8"), parse_constant=_reject_constant)
    title = f"{stem} · {job['code']} {job['name']}".strip()
    _export_html(nb, tmp / f"{stem}.html", title, job["cwd"])


def run_county(job: dict[str, Any]) -> dict[str, Any]:
    """Execute the notebook for one county into a private temporary directory, then publish it.

    Runs in a worker process (or on a Dask worker). Never raises for a failing notebook: the
    failure is the returned record (``status='failed'``), which is also the run's ``run.json``.
    """
    t0, started = time.perf_counter(), now()
    for k in THREAD_ENV:
        os.environ.setdefault(k, "1")
    out = Path(job["out"])
    tmp = out / job["tmp"]
    tmp.mkdir(parents=True)
    try:
        _execute(job, tmp)
    except Exception as e:  # noqa: BLE001 - isolation: any failure of one county is recorded, not raised
        return _finish_failed(job, tmp, _error_message(e, job["timeout"]), t0, started)
    stem = job["stem"]
    rec = _record(job, "ok", time.perf_counter() - t0, None, started, f"{stem}.ipynb", f"{stem}.html")
    _write_run_json(tmp, rec)
    _promote(tmp, out / job["code"])
    return rec


def _worker_init() -> None:
    # The batch process decides on Ctrl-C (it kills the pool). A worker whose parent (the fork
    # server, which exits with the batch process) dies is killed by Linux, and the worker's
    # notebook kernel then exits through ipykernel's parent poller: a killed batch leaves no
    # process behind that could still publish a county.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except Exception:  # noqa: BLE001 - best effort only
            pass


def _crash_record(job: Mapping[str, Any], error: str) -> dict[str, Any]:
    """A run whose worker died: publish whatever partial notebook it left as a failed county."""
    tmp = Path(job["out"]) / job["tmp"]
    return _finish_failed(job, tmp, error, time.perf_counter(), now())


def _kill_pool(ex: Any) -> None:
    for p in list(getattr(ex, "_processes", {}).values()):  # no public kill before Python 3.14
        with contextlib.suppress(Exception):
            p.kill()
    ex.shutdown(wait=True, cancel_futures=True)


def run_local(jobs: list[dict[str, Any]], workers: int) -> Iterator[dict[str, Any]]:
    """Run ``jobs`` in a local process pool; yield each run record as it finishes.

    A worker that dies fails its county (and the pool's pending ones: ``--resume`` reruns them).
    Closing the generator (Ctrl-C, SIGTERM) kills the workers.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    if not jobs:
        return
    # forkserver, not fork: the parent has threads (progress bar, Dask) and forking those can
    # deadlock. The server process imports papermill/nbconvert once, so workers start in
    # milliseconds instead of re-importing everything (about 2 s each under spawn).
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["evalkit.runner.execute", "papermill", "nbconvert", "pandas"])
    ex = ProcessPoolExecutor(max_workers=max(1, min(workers, len(jobs))), mp_context=ctx,
                             initializer=_worker_init)
    try:
        futs = {ex.submit(run_county, j): j for j in jobs}
        for f in as_completed(futs):
            j = futs[f]
            try:
                yield f.result()
            except BrokenProcessPool as e:
                yield _crash_record(j, f"worker process died, the worker pool broke ({e}); rerun with --resume")
            except Exception as e:  # noqa: BLE001
                yield _crash_record(j, f"{type(e).__name__}: {e}")
    except BaseException:
        # Ctrl-C / SIGTERM / consumer gone: kill the workers now rather than wait for their notebooks.
        _kill_pool(ex)
        raise
    ex.shutdown(wait=True)


def run_dask(jobs: list[dict[str, Any]], scheduler: str) -> Iterator[dict[str, Any]]:
    """Run ``jobs`` on the Dask cluster at ``scheduler``; yield each run record as it finishes."""
    from distributed import Client, as_completed  # optional heavy dependency, only with --scheduler

    if not jobs:
        return
    jobs = [{**j, "capture_stderr": False} for j in jobs]  # Dask workers run tasks in threads
    token = secrets.token_hex(4)
    with Client(scheduler, set_as_default=False) as client:
        futs = client.map(run_county, jobs, pure=False, retries=0,
                          key=[f"evalkit-batch-{j['code']}-{token}" for j in jobs])
        by_key = {f.key: j for f, j in zip(futs, jobs)}
        try:
            for f in as_completed(futs, loop=client.loop):  # the client is not the default one
                j = by_key[f.key]
                try:
                    yield f.result()
                except Exception as e:  # noqa: BLE001 - e.g. the worker died too often
                    yield _crash_record(j, f"dask task failed: {type(e).__name__}: {e}")
        except BaseException:
            client.cancel(futs, force=True)
            raise


@contextlib.contextmanager
def batch_lock(out: Path) -> Iterator[None]:
    """Exclusive lock on OUT: stale ``.tmp-*`` cleaning is only safe when no other batch writes there.

    Raises
    ------
    BatchError
        Another batch holds the lock.
    """
    if fcntl is None:  # pragma: no cover
        yield
        return
    f = open(out / ".batch.lock", "a+")
    try:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BatchError(f"another batch is writing into {out} (it holds {out / '.batch.lock'})") from None
        yield
    finally:
        f.close()  # releases the lock; the kernel releases it too if this process is killed


def clean_stale(out: Path) -> list[str]:
    """Remove the ``.tmp-*`` entries of OUT (runs killed or interrupted); return their names."""
    gone = []
    for d in out.glob(".tmp-*"):
        shutil.rmtree(d, ignore_errors=True) if d.is_dir() else d.unlink(missing_ok=True)
        gone.append(d.name)
    return gone
