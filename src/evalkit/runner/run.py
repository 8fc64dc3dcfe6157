"""``run_batch``: execute a parameterized notebook once per county, in parallel, reproducibly.

Per county it publishes ``OUT/<code>/`` (the executed notebook, a standalone HTML report without
code, the notebook's ``results.json`` and ledgers, and ``run.json``); per run ``OUT/summary.csv``,
``OUT/index.html`` and ``OUT/manifest.json``, rewritten at every end of a run, an interrupted one
included (counties it did not reach show what ``OUT/<code>/`` holds, marked not current when that
comes from a run with other inputs or parameters).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from evalkit.privacy import Masker
from evalkit.runner.execute import batch_lock, clean_stale, masker_for, now, run_dask, run_local
from evalkit.runner.index import write_index
from evalkit.runner.manifest import write_manifest
from evalkit.runner.plan import Plan, plan_batch
from evalkit.runner.progress import ProgressBar
from evalkit.runner.results import (
    BatchResult,
    CountyResult,
    county_result,
    finished_record,
    previous_result,
    write_summary,
)
from evalkit.text import check_lang

__all__ = ["run_batch"]


def _execute_plan(plan: Plan, resume: bool, workers: int, scheduler: str | None, progress: bool,
                  progress_lang: str, results: dict[str, CountyResult]) -> list[CountyResult]:
    """Run the plan's jobs (skipping finished ones on ``resume``) into ``results``; them in plan order."""
    todo = []
    for job in plan.jobs:
        prev = finished_record(plan.out, job) if resume else None
        if prev is not None:
            results[job["code"]] = county_result(plan.out, prev, reused=True)
        else:
            todo.append(job)
    runner = run_dask(todo, scheduler) if scheduler else run_local(todo, workers)
    try:
        with ProgressBar(len(plan.jobs), len(results), progress, plan.notebook.stem, progress_lang) as bar:
            for rec in runner:
                results[rec["county_code"]] = county_result(plan.out, rec)
                bar.update(rec["status"])
    finally:
        runner.close()  # on an interrupt: kills the workers (see the runners' except clauses)
        clean_stale(plan.out)  # temporaries of runs that were interrupted or crashed
    return [results[j["code"]] for j in plan.jobs]


def run_batch(notebook: str | Path, data: str | Path, counties: str | Iterable[str] | None = "all",
              params: Mapping[str, Any] | None = None, workers: int = 2, *, out: str | Path,
              resume: bool = False, scheduler: str | None = None, timeout: int = 1800, progress: bool = True,
              kernel_name: str | None = None, progress_lang: str = "en", index_up: str | None = None) -> BatchResult:
    """Execute ``notebook`` once per county of ``data`` into ``out``.

    Parameters
    ----------
    notebook : path
        A papermill-parameterized notebook (cell tagged ``parameters`` declaring ``output_dir``).
    data : path
        A dataset in any layout the dataset loader reads: a directory of Parquet partitions
        (``counties.parquet``, ``<table>/<code>.parquet`` ...) or of CSV/TXT/XLSX/Parquet files
        named by table (``counties.csv``, ``农户.xlsx`` ...). Relative to the current directory.
    counties : 'all', 'poverty', codes or names (list or comma-separated str)
        See :func:`evalkit.data.selection.select_counties`. Must stay 'all' for a notebook without
        a ``county_code`` parameter: it runs once.
    params : mapping, optional
        Notebook parameters; string values are typed by the declared default's type. A relative
        path value (``run_dir=reports/x``, ``policy_file=mine.toml``) that exists from the current
        directory is made absolute (the kernel's working directory is the notebook's folder).
    workers : int
        Local worker processes (ignored with ``scheduler``).
    out : path
        Output directory (keyword-only), relative to the current directory.
    resume : bool
        Skip counties whose finished outputs have the same input hash (notebook, parameters, input
        files, evalkit version and source).
    scheduler : str, optional
        Dask scheduler address (``tcp://host:8786``); ``out`` and ``data`` must be on a file system
        the Dask workers share.
    timeout : int
        Seconds per cell (papermill ``execution_timeout``).
    progress : bool
        Show a progress bar on stderr.
    kernel_name : str, optional
        Kernel to use (default: the notebook's, or ``python3`` when that is not installed).
    progress_lang : str
        Language of the progress bar (the reports follow the notebook's ``lang`` parameter).
    index_up : str, optional
        Link from ``OUT/index.html`` to a parent page (``evalkit demo``: ``../index.html``).

    Returns
    -------
    BatchResult
        Failed counties are recorded in it, never raised.

    Raises
    ------
    BatchError
        Before anything runs: unknown parameter/county, bad value, missing input, OUT locked.
    """
    check_lang(progress_lang)
    plan = plan_batch(notebook, data, counties, params, out, timeout, kernel_name)
    plan.out.mkdir(parents=True, exist_ok=True)
    masker = masker_for(plan.names)  # built once: the workers get this one
    summary, index = plan.out / "summary.csv", plan.out / "index.html"
    with batch_lock(plan.out):
        clean_stale(plan.out)  # left by a killed run; nobody else writes here (we hold the lock)
        started = now()
        done: dict[str, CountyResult] = {}
        try:
            ordered = _execute_plan(plan, resume, workers, scheduler, progress, progress_lang, done)
        except BaseException:
            # interrupted: the run files must not keep describing the previous run
            partial = [done.get(j["code"]) or previous_result(plan.out, j) for j in plan.jobs]
            _write_run_files(plan, partial, masker, started, now(), scheduler, workers, interrupted=True,
                             up=index_up)
            raise
        finished = now()
        manifest = _write_run_files(plan, ordered, masker, started, finished, scheduler, workers, up=index_up)
    return BatchResult(plan.out, ordered, summary, index, manifest, started, finished, plan.notebook, plan.lang)


def _write_run_files(plan: Plan, ordered: list[CountyResult], masker: Masker, started: str, finished: str,
                     scheduler: str | None, workers: int, interrupted: bool = False, up: str | None = None) -> Path:
    for c in ordered:  # every printed or written error passes the one masker
        c.error = masker.text(c.error) if c.error else c.error
    write_summary(plan.out / "summary.csv", ordered, masker, plan.lang)
    write_index(plan.out / "index.html", ordered, plan.notebook, plan.lang, up)
    return write_manifest(plan, ordered, started, finished, scheduler, workers, interrupted=interrupted)
