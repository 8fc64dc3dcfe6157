"""Run a parameterized notebook once per county (papermill), in parallel, reproducibly.

``evalkit batch NOTEBOOK --data DIR --out OUT`` executes the notebook for every county of a
dataset in worker processes (or on a Dask cluster) and writes, per county, ``OUT/<code>/``: the
executed notebook, a standalone HTML report without code, the notebook's ``results.json`` and
ledgers, and ``run.json`` (status, duration, parameters, input hash, error). Per run it writes
``OUT/summary.csv``, ``OUT/index.html`` and ``OUT/manifest.json``. ``evalkit verify OUT``
re-executes the run from its manifest and compares every number.

Contract with the notebooks
---------------------------
* A cell tagged ``parameters`` declaring ``output_dir`` (required) and usually ``county_code``,
  ``data_dir``, ``year``, ``lang``, ``seed`` ...; a notebook without ``county_code`` runs once
  (key ``province``).
* The notebook writes ``results.json`` (and any ledgers) into ``output_dir``, a private temporary
  directory renamed to ``OUT/<code>/`` only once the run is complete, so the notebook must write
  nowhere else and must not store ``output_dir`` (or timestamps) inside ``results.json``.
* The kernel runs with the notebook's directory as working directory, as in Jupyter. A given
  path parameter that exists from the caller's directory is made absolute first
  (:func:`evalkit.runner.params.absolute_paths`); ``--data`` and ``--out`` are always taken
  relative to the caller.

Modules: ``params`` (the parameters cell), ``plan`` (checks, county selection, input hashes),
``execute`` (one county, process pool, Dask, lock), ``progress``, ``results`` (records,
summary.csv), ``index`` (index.html pages: a run's index, the demo's dashboard), ``page`` (the
style, header and link back every exported report gets), ``manifest``, ``verify``, ``console``
(the printed summary), ``run`` (:func:`run_batch`), ``demo`` (``evalkit demo``, reusing unchanged
runs), ``returns`` (``evalkit ledger import``), ``chromium`` and ``pdf`` (headless Chromium:
page checks and ``--pdf``; optional).

Exit code of ``evalkit batch``: 0 every run succeeded, 1 at least one failed (the summary says how
many; the others are kept), 2 the batch could not start (nothing ran).
"""
from __future__ import annotations

from evalkit.errors import BatchError
from evalkit.runner.console import print_summary, summary_table_text
from evalkit.runner.index import write_demo_index, write_index
from evalkit.runner.lazy import defer_rfc3987_syntax
from evalkit.runner.params import NotebookParam, coerce_params, notebook_parameters, parse_param_args
from evalkit.runner.plan import PROVINCE, Plan, plan_batch, resolve_counties
from evalkit.runner.results import BatchResult, CountyResult, key_results
from evalkit.runner.run import run_batch
from evalkit.runner.verify import Difference, VerifyResult, compare_json, verify

# No runner module imports papermill/nbformat at import time, so this still comes first: about
# 2.8 s saved in the batch process and again in its fork server (see evalkit.runner.lazy).
defer_rfc3987_syntax()

__all__ = [
    "BatchError", "NotebookParam", "CountyResult", "BatchResult", "Difference", "VerifyResult", "Plan",
    "notebook_parameters", "coerce_params", "parse_param_args", "plan_batch", "resolve_counties", "run_batch",
    "verify", "compare_json", "key_results", "print_summary", "summary_table_text", "write_index",
    "write_demo_index", "PROVINCE",
]
