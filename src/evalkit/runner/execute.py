"""Execute the jobs of a plan: one county per worker process, locally or on a Dask cluster.

Each run writes into a private temporary directory ``OUT/.tmp-<code>-<random>/`` that is renamed
to ``OUT/<code>/`` only once it is complete (or recorded as failed), so nothing unfinished ever
looks finished. A lock on OUT keeps a second batch out while stale temporaries are cleaned.

Before a run is published, every file of it (notebook, HTML, JSON, CSV, logs, the XML inside
each .xlsx) is masked by content (:class:`evalkit.privacy.Masker`: ID numbers anywhere, names of
the dataset's members), its error message too, and the sha256 of every file is recorded in
``run.json``. A worker publishes only while the batch that started it is alive and holds the
lock on OUT.

Process hygiene (Linux): the fork server dies with the batch process (``PR_SET_PDEATHSIG``, set
when this module is imported in a direct child of the batch), the workers with the fork server
(the same signal) and, as a second line, with a watchdog thread on the batch's pid; a notebook
kernel exits when its worker dies (ipykernel's parent poller, ``JPY_PARENT_PID``).
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
import threading
import time
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from evalkit import provenance
from evalkit.errors import BatchError
from evalkit.outputs import atomic_path
from evalkit.privacy import Masker

try:  # POSIX only; without it two batches into one OUT are not prevented
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

__all__ = ["THREAD_ENV", "BATCH_PID_ENV", "now", "stderr_to", "run_county", "run_local", "run_dask", "batch_lock",
           "clean_stale", "scrub_dir", "output_hashes", "lock_held_by", "set_parent_death_signal", "descendants",
           "RUN_FILE", "masker_for"]

#: Environment variable holding the pid of the batch process (read by its fork server).
BATCH_PID_ENV = "EVALKIT_BATCH_PID"
#: The run record of a county (not part of its own output hashes).
RUN_FILE = "run.json"
#: Suffixes of run files masked as text (everything else a notebook may write is binary: images).
_TEXT_SUFFIXES = (".json", ".ipynb", ".html", ".htm", ".csv", ".txt", ".log", ".md", ".tsv", ".xml")
_ZIP_SUFFIXES = (".xlsx", ".xlsm")
#: The masker of this worker process (set by the pool initializer: the dataset's member names).
_MASKER: Masker | None = None
_LIBC: Any = None
#: Maskers built in this process, by their names (see masker_for); a few at most.
_MASKERS: list[tuple[tuple[str, ...], Masker]] = []
_MASKERS_LOCK = threading.Lock()
_EXPORTER = threading.local()  # .html: nbconvert's HTMLExporter of the thread, see _html_exporter


def set_parent_death_signal(sig: int = signal.SIGKILL) -> bool:
    """Linux ``prctl(PR_SET_PDEATHSIG, sig)``: this process gets ``sig`` when its parent dies."""
    global _LIBC
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        if _LIBC is None:
            _LIBC = ctypes.CDLL(None, use_errno=True)
        return _LIBC.prctl(1, int(sig), 0, 0, 0) == 0  # 1 = PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - best effort: the watchdog thread remains
        return False


# Imported in the fork server (a preload module), whose parent is the batch process: die with it.
if os.environ.get(BATCH_PID_ENV) == str(os.getppid()):
    set_parent_death_signal()
    if os.getppid() != int(os.environ[BATCH_PID_ENV]):  # the parent died before the prctl
        os._exit(1)


def descendants(pid: int) -> list[int]:
    """Pids of every live descendant of ``pid`` (Linux ``/proc``; empty elsewhere)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").glob("[0-9]*"):
        try:
            stat = (d / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _start_time(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(pid: int, started: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return started is None or _start_time(pid) == started  # not a new process with a reused pid


def _watchdog(batch_pid: int, started: str | None) -> None:
    # Second line behind PR_SET_PDEATHSIG: a worker outliving its batch kills its kernels and exits
    # before it could publish anything.
    while True:
        time.sleep(0.25)
        if not _alive(batch_pid, started):
            for p in descendants(os.getpid()):
                with contextlib.suppress(OSError):
                    os.kill(p, signal.SIGKILL)
            os._exit(1)

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
    # the message may quote data (a validation report in an exception): it goes into run.json,
    # summary.csv, index.html and the console, so it is masked like every output
    return _masker().text(_ANSI.sub("", msg).strip()) or ""


def masker_for(names: Sequence[str]) -> Masker:
    """The :class:`~evalkit.privacy.Masker` of ``names``, built once per process.

    Building one takes seconds for a province (400,000 distinct names); the batch process, its
    workers and a Dask worker's tasks reuse it.
    """
    key = tuple(names)
    with _MASKERS_LOCK:
        for k, m in _MASKERS:
            if k == key:
                return m
        m = Masker(key)
        # also under its own (filtered, sorted) names: what a plan hands on to the workers
        _MASKERS[:] = [*_MASKERS[-4:], (key, m), (tuple(m.names), m)]
    return m


def _masker(job: Mapping[str, Any] | None = None) -> Masker:
    if _MASKER is not None:
        return _MASKER
    return masker_for((job or {}).get("names") or ())


def scrub_dir(d: Path, masker: Masker) -> list[str]:
    """Mask every text file under ``d`` and the XML inside every .xlsx in place; the names changed.

    Text files are the run's JSON, notebooks, HTML, CSV and logs; a file rewritten keeps its name
    (written atomically). Images and other binary files are left alone.
    """
    changed = []
    for f in sorted(p for p in d.rglob("*") if p.is_file()):
        suf = f.suffix.lower()
        if suf in _TEXT_SUFFIXES:
            raw = f.read_bytes()
            txt = raw.decode("utf-8", errors="surrogateescape")
            new = masker.text(txt)
            if new != txt:
                with atomic_path(f) as tmp:
                    tmp.write_bytes(new.encode("utf-8", errors="surrogateescape"))
                changed.append(f.relative_to(d).as_posix())
        elif suf in _ZIP_SUFFIXES and zipfile.is_zipfile(f):
            if _scrub_zip(f, masker):
                changed.append(f.relative_to(d).as_posix())
    return changed


def _scrub_zip(f: Path, masker: Masker) -> bool:
    with zipfile.ZipFile(f) as z:
        items = [(i, z.read(i.filename)) for i in z.infolist()]
    out, dirty = [], False
    for info, data in items:
        if info.filename.endswith((".xml", ".rels")):
            txt = data.decode("utf-8", errors="surrogateescape")
            new = masker.text(txt)
            if new != txt:
                dirty = True
                data = new.encode("utf-8", errors="surrogateescape")
        out.append((info, data))
    if dirty:
        with atomic_path(f) as tmp:
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
                for info, data in out:
                    z.writestr(info, data)
    return dirty


def output_hashes(d: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every file of a run directory except ``run.json``."""
    return {f.relative_to(d).as_posix(): provenance.sha256_file(f)
            for f in sorted(d.rglob("*")) if f.is_file() and f.relative_to(d).as_posix() != RUN_FILE}


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


def _html_exporter() -> Any:
    """This thread's HTML exporter: built once, because a new one compiles its templates again
    (about 0.3 s a county); the HTML is the same byte for byte. Per thread: a Dask worker runs
    counties in threads, and an exporter is not known to be thread-safe."""
    ex = getattr(_EXPORTER, "html", None)
    if ex is None:
        from nbconvert import HTMLExporter  # heavy; preloaded by the fork server

        ex = _EXPORTER.html = HTMLExporter(exclude_input=True, exclude_input_prompt=True,
                                           exclude_output_prompt=True, embed_images=True)
    return ex


def _export_html(nb: Any, path: Path, title: str, resources_path: str,
                 decorate: Mapping[str, Any] | None = None) -> None:
    from evalkit.runner.page import decorate_report

    body, _ = _html_exporter().from_notebook_node(nb, resources={"metadata": {"path": resources_path, "name": title}})
    if decorate is not None:  # the shared style, the header and the link back to the index
        body = decorate_report(body, decorate.get("results"), decorate.get("params"), decorate.get("lang", "zh"))
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
            notebook: str | None, html_name: str | None, outputs: Mapping[str, str] | None = None) -> dict[str, Any]:
    return {
        "outputs": dict(outputs or {}),
        "county_code": job["code"], "county_name": job["name"], "status": status,
        "duration_s": round(duration, 3), "error": error, "input_hash": job["input_hash"],
        "params": {k: v for k, v in job["params"].items() if k != "output_dir"},
        "notebook": notebook, "html": html_name, "kernel_name": job["kernel_name"],
        "started_at": started, "finished_at": now(), "host": platform.node(), "pid": os.getpid(),
    }


def _write_run_json(tmp: Path, rec: Mapping[str, Any]) -> None:
    with atomic_path(tmp / RUN_FILE) as t:
        t.write_text(json.dumps(rec, ensure_ascii=False, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def lock_held_by(out: Path, pid: int | None) -> bool:
    """True when a live batch holds the lock on ``out`` (and, if ``pid`` is given, it is that batch)."""
    if fcntl is None:  # pragma: no cover
        return True
    try:
        f = open(out / ".batch.lock", encoding="utf-8")
    except OSError:
        return False
    with f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False  # nobody holds it: the batch is gone (closing the file releases ours)
        except BlockingIOError:
            pass
        holder = f.read().split()
    return pid is None or (bool(holder) and holder[0] == str(pid))


def _publish(job: Mapping[str, Any], tmp: Path) -> None:
    """Rename ``tmp`` to ``OUT/<code>/`` if the batch that started this run still holds the lock."""
    out = Path(job["out"])
    same_host = job.get("batch_host") == platform.node()
    if job.get("batch_pid") is not None and not lock_held_by(out, job["batch_pid"] if same_host else None):
        shutil.rmtree(tmp, ignore_errors=True)
        raise BatchError(f"not publishing {job['code']}: the batch that started it no longer holds {out}")
    _promote(tmp, out / job["code"])


def _finish_failed(job: Mapping[str, Any], tmp: Path, error: str, t0: float, started: str) -> dict[str, Any]:
    """Record a failure in ``tmp/run.json`` and move ``tmp`` to ``OUT/<code>/`` (no results.json there)."""
    tmp.mkdir(parents=True, exist_ok=True)
    res = tmp / "results.json"
    if res.exists():  # written before a later cell failed: keep it, but never as a finished result
        os.replace(res, tmp / "results.partial.json")
    nb_name = f"{job['stem']}.ipynb"
    scrub_dir(tmp, _masker(job))
    rec = _record(job, "failed", time.perf_counter() - t0, _masker(job).text(error), started,
                  nb_name if (tmp / nb_name).exists() else None, None, output_hashes(tmp))
    _write_run_json(tmp, rec)
    _publish(job, tmp)
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
        # shutdown_kernel='immediate': the kernel is killed once every cell has run and answered
        # (its outputs are written by then) instead of being asked to exit, which costs about 1 s
        # a county (measured in benchmarks/bench_batch.py)
        nb = papermill.execute_notebook(
            job["notebook"], str(tmp / f"{stem}.ipynb"), parameters=params, kernel_name=job["kernel_name"],
            progress_bar=False, log_output=False, cwd=job["cwd"], execution_timeout=job["timeout"],
            start_timeout=120, shutdown_kernel="immediate")
    res = tmp / "results.json"
    if not res.is_file():
        raise FileNotFoundError("the notebook finished but wrote no results.json into output_dir")
    # a truncated or invalid file is a failure, and so is NaN/Infinity: evalkit never writes a
    # silent NaN (outputs.to_jsonable), and NaN != NaN would make every verify "differ"
    results = json.loads(res.read_text(encoding="utf-8"), parse_constant=_reject_constant)
    title = f"{stem} · {job['code']} {job['name']}".strip()
    _export_html(nb, tmp / f"{stem}.html", title, job["cwd"],
                 {"results": results if isinstance(results, dict) else None, "params": job["params"],
                  "lang": job.get("lang", "zh")})


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
    if tmp.exists():  # an earlier attempt whose worker died (Dask hands its task to another worker)
        shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        _execute(job, tmp)
    except Exception as e:  # noqa: BLE001 - isolation: any failure of one county is recorded, not raised
        return _finish_failed(job, tmp, _error_message(e, job["timeout"]), t0, started)
    stem = job["stem"]
    scrub_dir(tmp, _masker(job))
    rec = _record(job, "ok", time.perf_counter() - t0, None, started, f"{stem}.ipynb", f"{stem}.html",
                  output_hashes(tmp))
    _write_run_json(tmp, rec)
    _publish(job, tmp)
    return rec


def _worker_init(batch_pid: int | None = None, names: tuple[str, ...] | Masker = ()) -> None:
    # The batch process decides on Ctrl-C (it kills the pool). A worker whose parent (the fork
    # server, which dies with the batch process) dies is killed by Linux; a watchdog thread on the
    # batch's pid covers the rest, and the worker's notebook kernel then exits through ipykernel's
    # parent poller: a killed batch leaves no process behind that could still publish a county.
    global _MASKER
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    set_parent_death_signal()
    # the batch's Masker itself arrives pickled: unpickling is much cheaper than building it again
    _MASKER = names if isinstance(names, Masker) else masker_for(names)
    if batch_pid is not None:
        threading.Thread(target=_watchdog, args=(batch_pid, _start_time(batch_pid)), daemon=True,
                         name="evalkit-batch-watchdog").start()


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
    global _MASKER
    os.environ[BATCH_PID_ENV] = str(os.getpid())  # before the fork server starts: it reads it
    jobs = [{**j, "batch_pid": os.getpid(), "batch_host": platform.node()} for j in jobs]
    names = tuple(jobs[0].get("names") or ())
    jobs = [{k: v for k, v in j.items() if k != "names"} for j in jobs]  # sent once per worker instead
    _MASKER = masker_for(names)  # this process's own records (a crashed worker's county)
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["evalkit.runner.execute", "papermill", "nbconvert", "pandas"])
    ex = ProcessPoolExecutor(max_workers=max(1, min(workers, len(jobs))), mp_context=ctx,
                             initializer=_worker_init, initargs=(os.getpid(), _MASKER))
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
    # Dask workers run tasks in threads; the member names travel with each job (no initializer)
    jobs = [{**j, "capture_stderr": False, "batch_pid": os.getpid(), "batch_host": platform.node()} for j in jobs]
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
    f = open(out / ".batch.lock", "a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BatchError(f"another batch is writing into {out} (it holds {out / '.batch.lock'})") from None
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()} {platform.node()}\n")  # workers check who holds it before publishing
        f.flush()
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
