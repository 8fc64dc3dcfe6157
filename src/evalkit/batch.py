"""Run a parameterized notebook once per county (papermill), in parallel, reproducibly.

``evalkit batch NOTEBOOK --data DIR --out OUT`` executes the notebook for every county of a
dataset (any layout :func:`evalkit.io.load_dataset` reads: Parquet partitions, or CSV/TXT/XLSX/
Parquet files named by table) in worker processes (or on a Dask cluster) and writes, per county,
``OUT/<code>/``: the executed notebook, a standalone HTML report without code, the notebook's
``results.json`` and ledgers, and ``run.json`` (status, duration, parameters, input hash, error).
Per run it writes ``OUT/summary.csv``, ``OUT/index.html`` and ``OUT/manifest.json``.
``evalkit verify OUT`` re-executes the run from its manifest and compares every number.

Contract with the notebooks
---------------------------
* A cell tagged ``parameters`` declaring ``output_dir`` (required) and usually ``county_code``,
  ``data_dir``, ``year``, ``lang``, ``seed`` ...; a notebook without ``county_code`` runs once
  (key ``province``).
* The notebook writes ``results.json`` (and any ledgers) into ``output_dir``. ``output_dir`` is a
  private temporary directory ``OUT/.tmp-<code>-<random>/`` that is renamed to ``OUT/<code>/``
  only once the run is complete, so the notebook must write nowhere else and must not store
  ``output_dir`` (or timestamps) inside ``results.json``.
* The kernel runs with the notebook's directory as working directory, as in Jupyter. A given
  parameter whose string value is a relative path that exists from where the batch was started
  (the caller's working directory) is made absolute first, so ``--param run_dir=reports/x`` or
  ``--param policy_file=mine.toml`` mean what they say at the prompt; this applies to parameters
  named ``*_dir``/``*_file``/``*_path`` and to values containing a ``/`` or a file suffix, and
  only when the path exists (other relative values, and notebook defaults, still resolve against
  the notebook's directory). ``--data`` and ``--out`` are always taken relative to the caller.

Resume and verify
-----------------
A run's input hash covers the notebook, its parameters, the sha256 of every data file the county
reads (its partitions and the shared tables; for a directory of table files, every table file),
the files named by path parameters, and the evalkit version and source (every ``.py``, ``.toml``
and ``.json`` of the package): ``--resume`` never reuses results of other code or thresholds.

Exit code of ``evalkit batch``: 0 every run succeeded, 1 at least one failed (the summary says how
many; the others are kept), 2 the batch could not start (nothing ran).
"""
from __future__ import annotations

import ast
import contextlib
import hashlib
import html
import json
import math
import os
import platform
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

try:  # POSIX only; without it two batches into one OUT are not prevented
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "BatchError", "NotebookParam", "CountyResult", "BatchResult", "Difference", "VerifyResult",
    "notebook_parameters", "coerce_params", "parse_param_args", "run_batch", "verify", "compare_json",
    "key_results", "print_summary", "summary_table_text", "write_demo_index", "cli_batch", "cli_verify",
    "PROVINCE",
]

#: Key (and output directory name) of the single run of a notebook without ``county_code``.
PROVINCE = "province"
#: Parameters the batch sets itself; ``--param`` may not override them.
_RESERVED = {"county_code": "--counties", "data_dir": "--data", "output_dir": "--out"}
#: A given parameter with such a name holds a path (see :func:`_absolute_paths`).
_PATH_NAME = re.compile(r"(?:^|_)(?:dir|dirs|file|files|path|paths|folder)$")
#: Suffixes of the evalkit package files whose content is part of every input hash.
_SOURCE_SUFFIXES = (".py", ".toml", ".json")
#: Thread pools inside a kernel are pinned to 1 unless the caller set them: one county per
#: process is the parallelism, and BLAS reductions then do not depend on the core count.
_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_PACKAGES = ("pandas", "numpy", "svy", "statsmodels", "scikit-learn", "papermill", "nbconvert",
             "nbclient", "ipykernel", "pyarrow", "dask", "distributed")
#: Summary keys of a criterion object in results.json.
_CRIT_KEYS = ("est", "lci", "uci", "verdict")
#: Top-level results.json keys that are metadata, not results.
_META_KEYS = {"county_code", "county_name", "evalkit_version", "region", "thresholds"}
_BASE_COLUMNS = ["county_code", "county_name", "status", "duration_s", "error"]
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_HASH_VERSION = "evalkit-batch-input-v2"

class BatchError(ValueError):
    """A batch that cannot start: unknown parameter or county, bad value, missing input."""


# ---------------------------------------------------------------------------------------------
# Parameters


@dataclass(frozen=True)
class NotebookParam:
    """One parameter declared in the notebook's ``parameters`` cell."""

    name: str
    default: Any  # the literal value, or the source text when the default is an expression
    type: str  # 'int' | 'float' | 'bool' | 'str' | 'list' | 'dict' | 'unknown'
    help: str = ""
    source: str = ""


def _type_name(v: Any) -> str:
    # bool before int: bool is a subclass of int
    for t, name in ((bool, "bool"), (int, "int"), (float, "float"), (str, "str"), ((list, tuple), "list"),
                    (dict, "dict")):
        if isinstance(v, t):
            return name
    return "unknown"


def notebook_parameters(notebook: str | Path) -> dict[str, NotebookParam]:
    """Parameters declared in the notebook's cell tagged ``parameters`` (via papermill).

    Returns
    -------
    dict
        ``{name: NotebookParam}`` in declaration order; empty when there is no such cell.
    """
    import papermill

    path = Path(notebook)
    if not path.is_file():
        raise BatchError(f"notebook not found: {path}")
    out: dict[str, NotebookParam] = {}
    for name, p in papermill.inspect_notebook(str(path)).items():
        src = str(p.get("default", ""))
        try:
            default = ast.literal_eval(src)
            typ = _type_name(default)
        except (ValueError, SyntaxError):
            default, typ = src, "unknown"
        if typ == "unknown" and p.get("inferred_type_name") in ("int", "float", "bool", "str", "list", "dict"):
            typ = p["inferred_type_name"]  # an annotation such as ``year: int = YEAR``
        out[name] = NotebookParam(name, default, typ, str(p.get("help") or ""), src)
    return out


def parse_param_args(items: Iterable[str] | None) -> dict[str, str]:
    """``['key=value', ...]`` from the command line to a dict (the last value of a key wins)."""
    out: dict[str, str] = {}
    for it in items or ():
        key, sep, value = str(it).partition("=")
        if not sep or not key.strip():
            raise BatchError(f"--param expects KEY=VALUE, got {it!r}")
        out[key.strip()] = value
    return out


_TRUE, _FALSE = {"true", "1", "yes", "y", "on"}, {"false", "0", "no", "n", "off"}


def _coerce(name: str, value: Any, p: NotebookParam) -> Any:
    if not isinstance(value, str):
        return value  # API callers (and verify) pass typed values
    t = p.type
    try:
        if t == "str":
            return value
        if t == "int":
            return int(value)
        if t == "float":
            return float(value)
        if t == "bool":
            low = value.strip().lower()
            if low in _TRUE | _FALSE:
                return low in _TRUE
            raise ValueError("use true/false, yes/no or 1/0")
        if t in ("list", "dict"):
            v = json.loads(value)
            if not isinstance(v, list if t == "list" else dict):
                raise ValueError(f"JSON {t} expected, got {type(v).__name__}")
            return v
        try:  # unknown type (default None or an expression): JSON if it parses, else the string
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    except (ValueError, json.JSONDecodeError) as e:
        raise BatchError(f"parameter {name!r} expects {t} (notebook default {p.source or p.default!r}); "
                         f"cannot convert {value!r}: {e}") from None


def coerce_params(given: Mapping[str, Any] | None, declared: Mapping[str, NotebookParam]) -> dict[str, Any]:
    """Check ``given`` against the notebook's parameters and type string values.

    Raises
    ------
    BatchError
        An unknown name (the message lists the accepted ones), a parameter that the batch sets
        itself, or a value that does not convert to the declared default's type.
    """
    out: dict[str, Any] = {}
    for name, value in (given or {}).items():
        if name in _RESERVED:
            raise BatchError(f"parameter {name!r} is set by the batch for each run; use {_RESERVED[name]} instead")
        if name not in declared:
            accepted = ", ".join(n for n in declared if n not in _RESERVED) or "(none)"
            raise BatchError(f"unknown parameter {name!r}: the notebook's parameters cell accepts {accepted}")
        out[name] = _coerce(name, value, declared[name])
    return out


# ---------------------------------------------------------------------------------------------
# Plan: everything checked before anything runs


def _sha256_file(path: Path, _cache: dict[Path, str] | None = None) -> str:
    """:func:`evalkit.io.sha256_file`, memoized in ``_cache`` (shared tables are read by every county)."""
    from .io import sha256_file

    if _cache is not None and path in _cache:
        return _cache[path]
    d = sha256_file(path)
    if _cache is not None:
        _cache[path] = d
    return d


def _evalkit_version() -> str:
    from . import __version__

    return str(__version__)


def _source_sha256() -> str:
    """SHA-256 of the evalkit package source: every ``.py``, ``.toml`` and ``.json`` under the
    package directory, as sorted ``(relative path, sha256)`` pairs (:func:`evalkit.io.dataset_sha256`)."""
    from .io import dataset_sha256

    root = Path(__file__).resolve().parent
    files = [f for f in root.rglob("*")
             if f.suffix in _SOURCE_SUFFIXES and f.is_file()
             and not any(part.startswith(".") or part == "__pycache__" for part in f.relative_to(root).parts)]
    return dataset_sha256(files, root=root)


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def _data_root(data: Path) -> Path:
    """Directory the input paths are relative to (the dataset directory, or a single file's folder)."""
    return data if data.is_dir() else data.parent


def _county_inputs(data: Path, code: str | None) -> list[str]:
    """Relative paths of the data files one run reads, found as :func:`evalkit.io.load_dataset` finds them.

    Every table file at the top of the directory (``counties.parquet``, ``households.csv``,
    ``农户.xlsx`` ...: .csv .txt .tsv .xlsx .xlsm .parquet .pq) and, in the partition folders named by
    a table, the county's own ``<code>.*`` files and any file not named by a county code. A
    province run (``code`` None) reads every partition. Quarantine output is never an input.
    """
    from .io import dataset_files

    if data.is_file():
        return [data.name]
    found = dataset_files(data, None, None if code is None else [code])
    return sorted({f.relative_to(data).as_posix() for f in found})


def _absolute_paths(given: Mapping[str, Any], cwd: Path) -> dict[str, Any]:
    """``given`` with relative path values made absolute against ``cwd`` (the caller's directory).

    A string value is taken to be a path when the parameter's name ends in ``dir``, ``file``,
    ``path`` (``run_dir``, ``policy_file`` ...) or the value contains a ``/`` or has a file suffix,
    and only if that path exists relative to ``cwd``. Everything else is left as it is (the kernel
    then resolves it against the notebook's directory, as in Jupyter).
    """
    out = dict(given)
    for name, v in given.items():
        if not isinstance(v, str) or not v.strip() or "\n" in v or len(v) > 4096:
            continue
        p = Path(v)
        if p.is_absolute() or not (_PATH_NAME.search(name) or "/" in v or os.sep in v or p.suffix):
            continue
        try:
            if (cwd / p).exists():
                out[name] = str((cwd / p).resolve())
        except (OSError, ValueError):  # a value that only looks like a path
            continue
    return out


def _path_param_inputs(declared: Mapping[str, NotebookParam], given: Mapping[str, Any],
                       nb_dir: Path) -> dict[str, Path]:
    """Files named by path-valued parameters, keyed ``@<param>/<relative path>``.

    A string parameter (given, or the literal default) naming an existing file makes that file
    an input; one naming an existing directory is taken to be another batch's OUT (e.g. the
    roll-up's ``run_dir``): its ``results.json`` files are inputs. Given values are absolute by
    now when they exist from the caller's directory (:func:`_absolute_paths`); the remaining
    relative paths resolve against the notebook's directory, the kernel's working directory.
    """
    out: dict[str, Path] = {}
    for name, p in declared.items():
        if name in _RESERVED:
            continue
        v = given.get(name, p.default)
        if not isinstance(v, str) or not v.strip() or "\n" in v or len(v) > 4096:
            continue
        path = (nb_dir / v).resolve()
        try:
            if path.is_file():
                out[f"@{name}/{path.name}"] = path
            elif path.is_dir():
                for f in sorted(path.rglob("results.json")):
                    rel = f.relative_to(path)
                    if not any(part.startswith(".tmp-") for part in rel.parts):
                        out[f"@{name}/{rel.as_posix()}"] = f
        except OSError:  # a value that only looks like a path
            continue
    return out


def _input_hash(nb_sha: str, files: Mapping[str, str], params: Mapping[str, Any], code: Mapping[str, str]) -> str:
    # data_dir/output_dir are locations, not content: the content is hashed file by file.
    # ``code``: evalkit version and source sha256 (other code or thresholds are other inputs).
    h = hashlib.sha256(f"{_HASH_VERSION}\nnotebook {nb_sha}\nevalkit {code['version']} {code['source_sha256']}\n"
                       .encode())
    for rel in sorted(files):
        h.update(f"file {rel} {files[rel]}\n".encode())
    h.update(_canonical({k: v for k, v in params.items() if k not in ("data_dir", "output_dir")}).encode())
    return h.hexdigest()


@dataclass
class _Plan:
    notebook: Path
    nb_sha: str
    data: Path
    out: Path
    declared: dict[str, NotebookParam]
    given: dict[str, Any]
    county_param: bool
    jobs: list[dict[str, Any]]
    inputs: dict[str, str]  # union of every run's input files: relative path -> sha256
    code: dict[str, str]  # evalkit version and source sha256
    lang: str
    kernel_name: str
    timeout: int


def _resolve_counties(data: Path, counties: str | Iterable[str] | None,
                      county_param: bool) -> list[tuple[str, str]]:
    import pandas as pd

    from .io import EvalkitInputError, load_dataset

    try:  # any layout: counties.parquet, counties.csv, 县.xlsx, a sheet of one workbook ...
        cdf = load_dataset(data, tables=["counties"], validate=False)["counties"]
    except (EvalkitInputError, KeyError) as e:
        why = e.args[0] if e.args else str(e)
        raise BatchError(f"{data} is not a dataset: no counties table (counties.parquet is missing, and "
                         f"there is no counties.csv/.xlsx either): {why}") from None
    names: dict[str, str] = {}
    for c, n in zip(cdf["county_code"], cdf["county_name"] if "county_name" in cdf else [None] * len(cdf)):
        if not pd.isna(c) and str(c).strip():
            names[str(c).strip()] = "" if n is None or pd.isna(n) else str(n)
    want: list[str] | None
    if counties is None or (isinstance(counties, str) and counties.strip().lower() == "all"):
        want = None
    elif isinstance(counties, str) and counties.strip().lower() == "poverty":
        # the counties an exit assessment applies to: poverty counties with a planned exit year
        if "is_poverty_county" not in cdf.columns:
            raise BatchError(f"--counties poverty needs the column is_poverty_county in the counties table of {data}")
        sel = cdf["is_poverty_county"].fillna(False).astype(bool)
        if "planned_exit_year" in cdf.columns:
            sel &= cdf["planned_exit_year"].notna()
        want = sorted({str(c).strip() for c in cdf.loc[sel, "county_code"]})
        if not want:
            raise BatchError(f"no poverty county with a planned exit year in the counties table of {data}")
    elif isinstance(counties, str):
        want = [c.strip() for c in counties.split(",") if c.strip()]
    else:
        want = [str(c).strip() for c in counties]
    if not county_param:
        if want is not None and want != [PROVINCE]:
            raise BatchError("the notebook has no county_code parameter: it runs once for the whole dataset; "
                             "leave --counties at 'all'")
        return [(PROVINCE, "")]
    if want is None:
        return sorted(names.items())
    unknown = [c for c in want if c not in names]
    if unknown:
        raise BatchError(f"unknown county code(s) {', '.join(unknown)}: not in the counties table of {data} "
                         f"({len(names)} counties, e.g. {', '.join(sorted(names)[:5])})")
    if not want:
        raise BatchError("no county selected")
    return [(c, names[c]) for c in sorted(dict.fromkeys(want))]


def _kernel_for(notebook: Path, kernel_name: str | None) -> str:
    """The notebook's kernelspec, or ``python3`` (this interpreter's native kernel) if it is unknown here."""
    if kernel_name:
        return kernel_name
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager

    name = nbformat.read(notebook, as_version=4).metadata.get("kernelspec", {}).get("name") or "python3"
    if name != "python3" and name not in KernelSpecManager().find_kernel_specs():
        return "python3"
    return name


def _plan(notebook: str | Path, data: str | Path, counties: str | Iterable[str] | None,
          params: Mapping[str, Any] | None, out: str | Path, timeout: int, kernel_name: str | None) -> _Plan:
    nb = Path(notebook).resolve()
    declared = notebook_parameters(nb)
    if "output_dir" not in declared:
        raise BatchError(f"{nb.name} declares no output_dir in a cell tagged 'parameters': the batch gives "
                         "each run its own output directory through it")
    given = _absolute_paths(coerce_params(params, declared), Path.cwd())
    data_p = Path(data).resolve()
    if not data_p.exists():
        raise BatchError(f"dataset not found: {data_p}")
    county_param = "county_code" in declared
    chosen = _resolve_counties(data_p, counties, county_param)
    if timeout <= 0:
        raise BatchError("timeout must be a positive number of seconds")
    out_p = Path(out).resolve()
    cache: dict[Path, str] = {}
    nb_sha = _sha256_file(nb)
    code_id = {"version": _evalkit_version(), "source_sha256": _source_sha256()}
    root = _data_root(data_p)
    lang = given.get("lang", declared["lang"].default if "lang" in declared else "zh")
    lang = lang if lang in ("zh", "en") else "zh"
    kname = _kernel_for(nb, kernel_name)
    extra = {k: _sha256_file(f, cache) for k, f in _path_param_inputs(declared, given, nb.parent).items()}
    jobs, inputs = [], {}
    for code, name in chosen:
        rels = _county_inputs(data_p, None if code == PROVINCE else code)
        files = {r: _sha256_file(root / r, cache) for r in rels}
        files.update(extra)
        inputs.update(files)
        p = dict(given)
        if county_param:
            p["county_code"] = code
        if "data_dir" in declared:
            p["data_dir"] = str(data_p)
        jobs.append({
            "code": code, "name": name or _t("batch_province", lang), "notebook": str(nb),
            "stem": nb.stem, "out": str(out_p), "params": p, "timeout": int(timeout),
            "kernel_name": kname, "cwd": str(nb.parent), "input_hash": _input_hash(nb_sha, files, p, code_id),
            "tmp": f".tmp-{code}-{secrets.token_hex(4)}", "capture_stderr": True,
        })
    return _Plan(nb, nb_sha, data_p, out_p, declared, given, county_param, jobs, dict(sorted(inputs.items())),
                 code_id, lang, kname, int(timeout))


# ---------------------------------------------------------------------------------------------
# One county (runs in a worker process or on a Dask worker)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _error_message(e: BaseException, timeout: int) -> str:
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
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
def _stderr_to(path: Path) -> Iterator[None]:
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
    from nbconvert import HTMLExporter

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
        "started_at": started, "finished_at": _now(), "host": platform.node(), "pid": os.getpid(),
    }


def _finish_failed(job: Mapping[str, Any], tmp: Path, error: str, t0: float, started: str) -> dict[str, Any]:
    """Record a failure in ``tmp/run.json`` and move ``tmp`` to ``OUT/<code>/`` (no results.json there)."""
    tmp.mkdir(parents=True, exist_ok=True)
    res = tmp / "results.json"
    if res.exists():  # written before a later cell failed: keep it, but never as a finished result
        os.replace(res, tmp / "results.partial.json")
    nb_name = f"{job['stem']}.ipynb"
    rec = _record(job, "failed", time.perf_counter() - t0, error, started,
                  nb_name if (tmp / nb_name).exists() else None, None)
    (tmp / "run.json").write_text(json.dumps(rec, ensure_ascii=False, indent=2, sort_keys=True) + "\n",
                                  encoding="utf-8")
    _promote(tmp, Path(job["out"]) / job["code"])
    return rec


def _run_county(job: dict[str, Any]) -> dict[str, Any]:
    """Execute the notebook for one county into a private temporary directory, then publish it.

    Never raises for a failing notebook: the failure is the returned record (``status='failed'``).
    """
    import papermill

    t0, started = time.perf_counter(), _now()
    for k in _THREAD_ENV:
        os.environ.setdefault(k, "1")
    out = Path(job["out"])
    tmp = out / job["tmp"]
    tmp.mkdir(parents=True)
    params = dict(job["params"])
    params["output_dir"] = str(tmp)
    stem = job["stem"]
    executed = tmp / f"{stem}.ipynb"
    try:
        log = _stderr_to(tmp / "kernel.log") if job.get("capture_stderr") else contextlib.nullcontext()
        with log:
            nb = papermill.execute_notebook(
                job["notebook"], str(executed), parameters=params, kernel_name=job["kernel_name"],
                progress_bar=False, log_output=False, cwd=job["cwd"], execution_timeout=job["timeout"],
                start_timeout=120)
        res = tmp / "results.json"
        if not res.is_file():
            raise FileNotFoundError("the notebook finished but wrote no results.json into output_dir")
        # a truncated or invalid file is a failure, and so is NaN/Infinity: evalkit never writes a
        # silent NaN (report.to_jsonable), and NaN != NaN would make every verify "differ"
        json.loads(res.read_text(encoding="utf-8"), parse_constant=_reject_constant)
        title = f"{stem} · {job['code']} {job['name']}".strip()
        _export_html(nb, tmp / f"{stem}.html", title, job["cwd"])
    except Exception as e:  # noqa: BLE001 - isolation: any failure of one county is recorded, not raised
        return _finish_failed(job, tmp, _error_message(e, job["timeout"]), t0, started)
    rec = _record(job, "ok", time.perf_counter() - t0, None, started, executed.name, f"{stem}.html")
    (tmp / "run.json").write_text(json.dumps(rec, ensure_ascii=False, indent=2, sort_keys=True) + "\n",
                                  encoding="utf-8")
    _promote(tmp, out / job["code"])
    return rec


def _reject_constant(name: str) -> Any:
    raise ValueError(f"results.json holds {name}: write null for a missing number")


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


# ---------------------------------------------------------------------------------------------
# Runners


def _crash_record(job: Mapping[str, Any], error: str) -> dict[str, Any]:
    """A run whose worker died: publish whatever partial notebook it left as a failed county."""
    tmp = Path(job["out"]) / job["tmp"]
    return _finish_failed(job, tmp, error, time.perf_counter(), _now())


def _run_local(jobs: list[dict[str, Any]], workers: int) -> Iterator[dict[str, Any]]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    if not jobs:
        return
    # forkserver, not fork: the parent has threads (progress bar, Dask) and forking those can
    # deadlock. The server process imports papermill/nbconvert once, so workers start in
    # milliseconds instead of re-importing everything (about 2 s each under spawn).
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["evalkit.batch", "papermill", "nbconvert", "pandas"])
    ex = ProcessPoolExecutor(max_workers=max(1, min(workers, len(jobs))), mp_context=ctx,
                             initializer=_worker_init)
    try:
        futs = {ex.submit(_run_county, j): j for j in jobs}
        for f in as_completed(futs):
            j = futs[f]
            try:
                yield f.result()
            except BrokenProcessPool as e:
                # every county still pending in the pool fails with it; --resume reruns them
                yield _crash_record(j, f"worker process died, the worker pool broke ({e}); "
                                       "rerun with --resume")
            except Exception as e:  # noqa: BLE001
                yield _crash_record(j, f"{type(e).__name__}: {e}")
    except BaseException:
        # Ctrl-C / SIGTERM / consumer gone: kill the workers now rather than wait for their notebooks.
        for p in list(getattr(ex, "_processes", {}).values()):  # no public kill before Python 3.14
            with contextlib.suppress(Exception):
                p.kill()
        ex.shutdown(wait=True, cancel_futures=True)
        raise
    ex.shutdown(wait=True)


def _run_dask(jobs: list[dict[str, Any]], scheduler: str) -> Iterator[dict[str, Any]]:
    from distributed import Client, as_completed

    if not jobs:
        return
    jobs = [{**j, "capture_stderr": False} for j in jobs]  # Dask workers run tasks in threads
    token = secrets.token_hex(4)
    with Client(scheduler, set_as_default=False) as client:
        futs = client.map(_run_county, jobs, pure=False, retries=0,
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


class _Bar:
    """Progress bar (rich, on stderr): done / failed / remaining and elapsed time."""

    def __init__(self, total: int, reused: int, show: bool, label: str) -> None:
        self.total, self.ok, self.failed, self.reused = total, reused, 0, reused
        self.show, self.label = show, label
        self._p: Any = None

    def _fields(self) -> dict[str, Any]:
        return {"ok": self.ok, "failed": self.failed, "remaining": self.total - self.ok - self.failed}

    def __enter__(self) -> "_Bar":
        if self.show:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._p = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("done {task.fields[ok]} · failed {task.fields[failed]} · remaining "
                           "{task.fields[remaining]}"),
                TimeElapsedColumn(), console=Console(stderr=True))
            self._p.start()
            self._task = self._p.add_task(self.label, total=self.total, completed=self.reused, **self._fields())
        return self

    def update(self, status: str) -> None:
        if status == "ok":
            self.ok += 1
        else:
            self.failed += 1
        if self._p is not None:
            self._p.update(self._task, advance=1, **self._fields())

    def __exit__(self, *exc: Any) -> None:
        if self._p is not None:
            self._p.stop()


@contextlib.contextmanager
def _lock(out: Path) -> Iterator[None]:
    """Exclusive lock on OUT: stale ``.tmp-*`` cleaning is only safe when no other batch writes there."""
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


def _clean_stale(out: Path) -> list[str]:
    gone = []
    for d in out.glob(".tmp-*"):
        shutil.rmtree(d, ignore_errors=True) if d.is_dir() else d.unlink(missing_ok=True)
        gone.append(d.name)
    return gone


# ---------------------------------------------------------------------------------------------
# Results


@dataclass
class CountyResult:
    """Outcome of one county's run."""

    county_code: str
    county_name: str
    status: str  # 'ok' | 'failed'
    duration_s: float
    error: str | None
    out_dir: Path
    notebook: Path | None  # the executed notebook (the partial one for a failed run), if any
    html: Path | None
    input_hash: str
    reused: bool = False  # skipped by --resume: inputs and parameters unchanged
    results: dict[str, Any] | None = None

    @property
    def verdict(self) -> str | None:
        """``decision.overall`` of results.json (or a top-level ``verdict``), if any."""
        r = self.results or {}
        d = r.get("decision")
        v = d.get("overall") if isinstance(d, dict) else r.get("verdict")
        return None if v is None else str(v)


@dataclass
class BatchResult:
    """A batch run: one :class:`CountyResult` per county plus the run files."""

    out: Path
    counties: list[CountyResult]
    summary: Path
    index: Path
    manifest: Path
    started_at: str = ""
    finished_at: str = ""
    notebook: Path | None = None
    lang: str = "zh"

    @property
    def n_ok(self) -> int:
        return sum(c.status == "ok" for c in self.counties)

    @property
    def n_failed(self) -> int:
        return sum(c.status != "ok" for c in self.counties)

    @property
    def n_reused(self) -> int:
        return sum(c.reused for c in self.counties)

    @property
    def failed(self) -> list[CountyResult]:
        return [c for c in self.counties if c.status != "ok"]

    @property
    def exit_code(self) -> int:
        """0 when every county succeeded, 1 when any failed (``evalkit batch`` returns 2 when the
        batch could not start at all)."""
        return 0 if self.n_failed == 0 else 1

    def exit_line(self) -> str:
        """The exit code and what it means, for the printed summary."""
        if self.n_failed == 0:
            return f"exit code 0: all {len(self.counties)} run(s) succeeded"
        return f"exit code 1: {self.n_failed} of {len(self.counties)} run(s) failed (see above; the rest are kept)"

    def __getitem__(self, code: str) -> CountyResult:
        for c in self.counties:
            if c.county_code == code:
                return c
        raise KeyError(code)

    def summary_line(self) -> str:
        return (f"{len(self.counties)} run(s): {self.n_ok} done ({self.n_reused} reused), "
                f"{self.n_failed} failed -> {self.out}")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def _county_result(out: Path, rec: Mapping[str, Any], reused: bool = False) -> CountyResult:
    d = out / str(rec["county_code"])
    nb = d / rec["notebook"] if rec.get("notebook") else None
    ht = d / rec["html"] if rec.get("html") else None
    results = _read_json(d / "results.json") if rec.get("status") == "ok" else None
    return CountyResult(str(rec["county_code"]), str(rec.get("county_name") or ""), str(rec["status"]),
                        float(rec.get("duration_s") or 0.0), rec.get("error"), d, nb, ht,
                        str(rec.get("input_hash") or ""), reused, results)


def _finished(out: Path, job: Mapping[str, Any]) -> dict[str, Any] | None:
    """The previous run.json of ``job`` if its outputs are complete and its inputs unchanged."""
    d = out / job["code"]
    rec = _read_json(d / "run.json")
    if not isinstance(rec, dict) or rec.get("status") != "ok" or rec.get("input_hash") != job["input_hash"]:
        return None
    if not (d / "results.json").is_file() or not rec.get("html") or not (d / rec["html"]).is_file():
        return None
    return rec


def _scalar(v: Any) -> bool:
    return v is None or isinstance(v, (str, int, float, bool))


def key_results(results: Mapping[str, Any] | None) -> dict[str, Any]:
    """Flatten the key results of a results.json for the summary table.

    Top-level scalars (but not metadata such as county_code or ``*_sha256``), every scalar of
    ``decision`` (``decision.overall``) and, for every object with an ``est``, its ``est``,
    ``lci``, ``uci`` and ``verdict`` (``<criterion>.est`` ...).
    """
    out: dict[str, Any] = {}
    for k, v in (results or {}).items():
        if k in _META_KEYS or k.endswith("_sha256"):
            continue
        if isinstance(v, dict):
            for kk, vv in v.items():
                if (k == "decision" or ("est" in v and kk in _CRIT_KEYS)) and _scalar(vv):
                    out[f"{k}.{kk}"] = vv
        elif _scalar(v):
            out[k] = v
    return out


def _write_summary(path: Path, counties: Sequence[CountyResult]) -> None:
    import pandas as pd

    from .report import atomic_path

    rows = []
    for c in counties:
        row = {"county_code": c.county_code, "county_name": c.county_name, "status": c.status,
               "duration_s": c.duration_s, "error": c.error or ""}
        row.update(key_results(c.results))
        rows.append(row)
    extra = sorted({k for r in rows for k in r} - set(_BASE_COLUMNS))
    # object dtype: a failed row must not turn the integer columns of the others into floats
    df = pd.DataFrame(rows, columns=_BASE_COLUMNS + extra, dtype=object).sort_values("county_code")
    with atomic_path(path) as tmp:
        # utf-8-sig: Excel, which is what county staff open a CSV with, then shows Chinese correctly
        df.to_csv(tmp, index=False, encoding="utf-8-sig")


def _t(key: str, lang: str) -> str:
    from .dictionary import label

    return label(key, lang)


def _verdict_label(v: str | None, lang: str) -> str:
    if not v:
        return "—"
    try:
        return _t(f"verdict_{v}", lang)
    except KeyError:
        return v


def _write_index(path: Path, counties: Sequence[CountyResult], plan_notebook: Path, lang: str) -> None:
    from .report import atomic_path

    e = html.escape
    n_ok = sum(c.status == "ok" for c in counties)
    counts = _t("batch_counts", lang).format(n=len(counties), ok=n_ok, failed=len(counties) - n_ok,
                                             reused=sum(c.reused for c in counties))
    lp, rp = ("（", "）") if lang == "zh" else (" (", ")")
    rows = []
    for c in sorted(counties, key=lambda c: c.county_code):
        if c.status == "ok" and c.html is not None:
            link = f'<a href="{e(c.county_code)}/{e(c.html.name)}">{e(_t("report_link", lang))}</a>'
        elif c.notebook is not None:
            link = (f'<a href="{e(c.county_code)}/{e(c.notebook.name)}">'
                    f'{e(_t("batch_partial_notebook", lang))}</a>')
        else:
            link = "—"
        status = _t("status_ok" if c.status == "ok" else "status_failed", lang)
        rows.append(
            f'<tr class="{e(c.status)}"><td>{e(c.county_name)}{lp}{e(c.county_code)}{rp}</td>'
            f'<td>{e(status)}</td><td>{e(_verdict_label(c.verdict, lang))}</td>'
            f'<td class="num">{c.duration_s:.1f}</td><td>{link}</td><td>{e(c.error or "")}</td></tr>')
    heads = [_t(k, lang) for k in ("county", "status", "verdict", "duration_s", "report_link", "batch_error")]
    doc = f"""<!DOCTYPE html>
<html lang="{'zh-CN' if lang == 'zh' else 'en'}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(_t("batch_index_title", lang))}</title>
<style>
body {{ font-family: "Noto Sans CJK SC", "Microsoft YaHei", "PingFang SC", sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #ccc; padding: .35em .7em; text-align: left; }}
td.num {{ text-align: right; }}
tr.failed td {{ background: #fdecea; }}
</style>
</head>
<body>
<h1>{e(_t("batch_index_title", lang))}</h1>
<p>{e(_t("batch_notebook", lang))}: <code>{e(plan_notebook.name)}</code></p>
<p>{e(counts)}</p>
<table>
<thead><tr>{''.join(f'<th>{e(h)}</th>' for h in heads)}</tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody>
</table>
</body>
</html>
"""
    with atomic_path(path) as tmp:
        tmp.write_text(doc, encoding="utf-8")


def _package_versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {"python": platform.python_version()}
    for p in _PACKAGES:
        try:
            out[p] = version(p)
        except PackageNotFoundError:
            out[p] = None
    return out


def _git_state() -> tuple[str | None, bool | None]:
    """``git rev-parse HEAD`` of the evalkit source tree and whether it has uncommitted changes."""
    src = Path(__file__).resolve().parent
    try:
        r = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True,
                           timeout=10)
        if r.returncode != 0:
            return None, None
        s = subprocess.run(["git", "-C", str(src), "status", "--porcelain", "--", "."], capture_output=True,
                           text=True, timeout=10)
        return r.stdout.strip(), (bool(s.stdout.strip()) if s.returncode == 0 else None)
    except (OSError, subprocess.SubprocessError):
        return None, None


def _seeds(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if k == "seed" or k.endswith("_seed")}


def _write_manifest(plan: _Plan, counties: Sequence[CountyResult], started: str, finished: str,
                    scheduler: str | None, workers: int) -> Path:
    from . import __version__
    from .report import write_json

    effective = {n: p.default for n, p in plan.declared.items() if n not in _RESERVED}
    effective.update(plan.given)
    commit, dirty = _git_state()
    man = {
        "kind": "evalkit-batch",
        "notebook": {"path": str(plan.notebook), "sha256": plan.nb_sha},
        "data_dir": str(plan.data),
        "inputs": plan.inputs,
        "county_param": plan.county_param,
        "counties": [c.county_code for c in counties],
        "parameters": {
            "given": plan.given,
            "declared": {n: p.source for n, p in plan.declared.items()},
            "per_county": {j["code"]: j["params"] for j in plan.jobs},
        },
        "seeds": _seeds(effective),
        "kernel_name": plan.kernel_name,
        "timeout_s": plan.timeout,
        "lang": plan.lang,
        "runs": {c.county_code: {"status": c.status, "input_hash": c.input_hash, "reused": c.reused}
                 for c in counties},
        "evalkit_version": __version__,
        "evalkit_source_sha256": plan.code["source_sha256"],
        "packages": _package_versions(),
        "git_commit": commit,
        "git_dirty": dirty,
        "thread_env": {k: os.environ.get(k, "1") for k in _THREAD_ENV},
        "executor": {"scheduler": scheduler, "workers": workers},
        "started_at": started,
        "finished_at": finished,
    }
    return write_json(man, plan.out / "manifest.json")


# ---------------------------------------------------------------------------------------------
# Public entry points


def run_batch(notebook: str | Path, data: str | Path, counties: str | Iterable[str] | None = "all",
              params: Mapping[str, Any] | None = None, workers: int = 2, *, out: str | Path,
              resume: bool = False, scheduler: str | None = None, timeout: int = 1800, progress: bool = True,
              kernel_name: str | None = None) -> BatchResult:
    """Execute ``notebook`` once per county of ``data`` into ``out``.

    Parameters
    ----------
    notebook : path
        A papermill-parameterized notebook (cell tagged ``parameters`` declaring ``output_dir``).
    data : path
        A dataset in any layout :func:`evalkit.io.load_dataset` reads: a directory of Parquet
        partitions (``counties.parquet``, ``<table>/<code>.parquet`` ...) or of CSV/TXT/XLSX/Parquet
        files named by table (``counties.csv``, ``农户.xlsx`` ...). Relative to the current directory.
    counties : 'all', comma-separated str or iterable of codes
        Ignored (must stay 'all') for a notebook without a ``county_code`` parameter: it runs once.
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

    Returns
    -------
    BatchResult
        Failed counties are recorded in it, never raised.

    Raises
    ------
    BatchError
        Before anything runs: unknown parameter/county, bad value, missing input, OUT locked.
    """
    plan = _plan(notebook, data, counties, params, out, timeout, kernel_name)
    plan.out.mkdir(parents=True, exist_ok=True)
    with _lock(plan.out):
        _clean_stale(plan.out)  # left by a killed run; nobody else writes here (we hold the lock)
        started = _now()
        results: dict[str, CountyResult] = {}
        todo = []
        for job in plan.jobs:
            prev = _finished(plan.out, job) if resume else None
            if prev is not None:
                results[job["code"]] = _county_result(plan.out, prev, reused=True)
            else:
                todo.append(job)
        runner = _run_dask(todo, scheduler) if scheduler else _run_local(todo, workers)
        label = f"{plan.notebook.stem}"
        try:
            with _Bar(len(plan.jobs), len(results), progress, label) as bar:
                for rec in runner:
                    results[rec["county_code"]] = _county_result(plan.out, rec)
                    bar.update(rec["status"])
        finally:
            runner.close()  # on an interrupt: kills the workers (see the runners' except clauses)
            _clean_stale(plan.out)  # temporaries of runs that were interrupted or crashed
        finished = _now()
        ordered = [results[j["code"]] for j in plan.jobs]
        summary, index = plan.out / "summary.csv", plan.out / "index.html"
        _write_summary(summary, ordered)
        _write_index(index, ordered, plan.notebook, plan.lang)
        manifest = _write_manifest(plan, ordered, started, finished, scheduler, workers)
    return BatchResult(plan.out, ordered, summary, index, manifest, started, finished, plan.notebook, plan.lang)


@dataclass(frozen=True)
class Difference:
    """One differing value: ``county/key.path: old vs new``."""

    county: str
    key: str
    old: Any
    new: Any

    def __str__(self) -> str:
        return f"{self.county}/{self.key}: {self.old!r} vs {self.new!r}"


_MISSING = "<missing>"


def compare_json(old: Any, new: Any, rtol: float = 0.0, path: str = "") -> list[tuple[str, Any, Any]]:
    """Recursive comparison of two JSON values.

    Numbers: ints exactly, floats exactly when ``rtol == 0`` (the default: the same code on the
    same inputs must give the same bits) else within ``rtol`` relative; bools and strings exactly;
    a missing key or a different type is a difference.

    Returns
    -------
    list of (key path, old, new)
    """
    diffs: list[tuple[str, Any, Any]] = []
    key = path or "."
    if isinstance(old, dict) and isinstance(new, dict):
        for k in sorted(set(old) | set(new)):
            p = f"{path}.{k}" if path else str(k)
            if k not in old:
                diffs.append((p, _MISSING, new[k]))
            elif k not in new:
                diffs.append((p, old[k], _MISSING))
            else:
                diffs += compare_json(old[k], new[k], rtol, p)
    elif isinstance(old, list) and isinstance(new, list):
        if len(old) != len(new):
            diffs.append((f"{key}[len]", len(old), len(new)))
        for i, (a, b) in enumerate(zip(old, new)):
            diffs += compare_json(a, b, rtol, f"{path}[{i}]")
    elif isinstance(old, bool) or isinstance(new, bool):
        if type(old) is not type(new) or old != new:
            diffs.append((key, old, new))
    elif isinstance(old, (int, float)) and isinstance(new, (int, float)):
        if isinstance(old, float) or isinstance(new, float):
            same = old == new or (rtol > 0 and math.isclose(old, new, rel_tol=rtol, abs_tol=0.0))
        else:
            same = old == new
        if not same:
            diffs.append((key, old, new))
    elif type(old) is not type(new) or old != new:
        diffs.append((key, old, new))
    return diffs


@dataclass
class VerifyResult:
    """Outcome of :func:`verify`."""

    run_dir: Path
    status: str  # 'identical' | 'differs' | 'inputs changed'
    differences: list[Difference] = field(default_factory=list)
    inputs_changed: list[str] = field(default_factory=list)
    n_counties: int = 0
    rtol: float = 0.0

    @property
    def identical(self) -> bool:
        return self.status == "identical"

    @property
    def exit_code(self) -> int:
        """0 only when identical."""
        return 0 if self.identical else 1

    def lines(self) -> list[str]:
        cmp = "floats compared exactly" if self.rtol == 0 else f"floats within {self.rtol:g} relative"
        out = [f"{self.status} ({self.n_counties} run(s), {cmp})"]
        out += [f"input changed: {p}" for p in self.inputs_changed]
        if self.inputs_changed and self.differences:
            out.append(f"differs: {len(self.differences)} value(s)")
        out += [str(d) for d in self.differences]
        return out


def verify(run_dir: str | Path, workers: int = 2, rtol: float = 0.0, progress: bool = True,
           scheduler: str | None = None) -> VerifyResult:
    """Re-execute a batch run from its manifest in a temporary directory and compare every result.

    Parameters
    ----------
    run_dir : path
        The ``out`` of a :func:`run_batch` (holds ``manifest.json``).
    workers : int
        Local worker processes for the re-execution.
    rtol : float
        Relative tolerance for floats; 0 (default) requires exact equality.
    progress : bool
        Show a progress bar.
    scheduler : str, optional
        Dask scheduler address for the re-execution.

    Returns
    -------
    VerifyResult
        ``status`` is 'inputs changed' when the notebook, an input file or the evalkit source no
        longer has the manifest's sha256 (or the evalkit version differs) (the re-execution still runs, so the differences are listed too),
        else 'identical' or 'differs'.
    """
    run = Path(run_dir).resolve()
    man = _read_json(run / "manifest.json")
    if not isinstance(man, dict) or man.get("kind") != "evalkit-batch":
        raise BatchError(f"{run} holds no batch manifest.json")
    nb = Path(man["notebook"]["path"])
    if not nb.is_file():
        raise BatchError(f"the run's notebook is gone: {nb}")
    counties = man["counties"] if man.get("county_param") else "all"
    with tempfile.TemporaryDirectory(prefix="evalkit-verify-") as tmp:
        new = run_batch(nb, man["data_dir"], counties=counties, params=man["parameters"]["given"],
                        workers=workers, out=tmp, timeout=man.get("timeout_s", 1800), progress=progress,
                        kernel_name=man.get("kernel_name"), scheduler=scheduler)
        new_man = _read_json(new.manifest)
        changed = []
        if new_man["notebook"]["sha256"] != man["notebook"]["sha256"]:
            changed.append(f"{nb} (notebook)")
        if man.get("evalkit_version") != new_man.get("evalkit_version"):
            changed.append(f"evalkit version ({man.get('evalkit_version')} -> {new_man.get('evalkit_version')})")
        elif man.get("evalkit_source_sha256") != new_man.get("evalkit_source_sha256"):
            changed.append("evalkit source (sha256 differs)")
        old_in, new_in = man.get("inputs", {}), new_man.get("inputs", {})
        for rel in sorted(set(old_in) | set(new_in)):
            if rel not in new_in:
                changed.append(f"{rel} (gone)")
            elif rel not in old_in:
                changed.append(f"{rel} (new)")
            elif old_in[rel] != new_in[rel]:
                changed.append(f"{rel} (sha256 differs)")
        diffs: list[Difference] = []
        old_runs = man.get("runs", {})
        for code in sorted(set(old_runs) | {c.county_code for c in new.counties}):
            old_status = (_read_json(run / code / "run.json") or {}).get("status", _MISSING)
            try:
                c = new[code]
                new_status = c.status
            except KeyError:
                new_status = _MISSING
            if old_status != new_status:
                diffs.append(Difference(code, "status", old_status, new_status))
                continue
            if old_status == "ok":
                a = _read_json(run / code / "results.json")
                b = _read_json(Path(tmp) / code / "results.json")
                diffs += [Difference(code, k, o, n) for k, o, n in compare_json(a, b, rtol)]
    status = "inputs changed" if changed else ("differs" if diffs else "identical")
    return VerifyResult(run, status, diffs, changed, len(new.counties), rtol)


# ---------------------------------------------------------------------------------------------
# CLI


def _sigterm_as_interrupt() -> None:
    # SIGTERM (a scheduler, `kill`) takes the same clean-up path as Ctrl-C.
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    with contextlib.suppress(ValueError):  # not in the main thread
        signal.signal(signal.SIGTERM, handler)


def _print_summary_to(con: Any, res: BatchResult) -> None:
    from rich.table import Table

    t = Table(title=f"evalkit batch · {res.out}")
    for col, just in (("county", "left"), ("status", "left"), ("verdict", "left"), ("duration (s)", "right")):
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    for c in res.counties:
        status = "done (reused)" if c.reused else ("done" if c.status == "ok" else "[red]FAILED[/red]")
        t.add_row(f"{c.county_code} {c.county_name}", status, c.verdict or "—", f"{c.duration_s:.1f}")
    con.print(t)
    for c in res.failed:
        con.print(f"[red]failed[/red] {c.county_code}: {c.error}"
                  + (f"  (partial notebook: {c.notebook})" if c.notebook else ""), highlight=False)
    con.print(res.summary_line(), highlight=False)
    con.print(res.exit_line(), highlight=False)


def print_summary(res: BatchResult) -> None:
    """Print the county / status / verdict / duration table (rich) and the counts."""
    from rich.console import Console

    _print_summary_to(Console(), res)


def summary_table_text(res: BatchResult, width: int = 100) -> str:
    """The :func:`print_summary` table as plain text (no colours)."""
    import io

    from rich.console import Console

    con = Console(file=io.StringIO(), width=width, color_system=None, force_terminal=False)
    _print_summary_to(con, res)
    return con.file.getvalue()


#: Section titles of the demo index by notebook stem (data-dictionary label keys).
_DEMO_TITLES = {"county_exit_assessment": "title_county_exit", "return_to_poverty_risk": "title_risk",
                "province_rollup": "title_province"}


def write_demo_index(out: str | Path, *results: BatchResult) -> Path:
    """``OUT/index.html`` over several batches (the demo): one section per batch with its counts
    and a link to its own index (or, for a single run, straight to its report)."""
    from .report import atomic_path

    e = html.escape
    out = Path(out).resolve()
    lang = results[0].lang if results else "zh"
    parts = []
    for r in results:
        stem = r.notebook.stem if r.notebook else r.out.name
        key = _DEMO_TITLES.get(stem)
        title = _t(key, lang) if key else stem
        counts = _t("batch_counts", lang).format(n=len(r.counties), ok=r.n_ok, failed=r.n_failed,
                                                 reused=r.n_reused)
        one = r.counties[0] if len(r.counties) == 1 else None
        target = one.html if one is not None and one.html is not None else r.index
        href = os.path.relpath(target, out)
        parts.append(f'<h2><a href="{e(href)}">{e(title)}</a></h2>\n<p>{e(counts)}</p>')
    doc = f"""<!DOCTYPE html>
<html lang="{'zh-CN' if lang == 'zh' else 'en'}">
<head>
<meta charset="utf-8">
<title>{e(_t("demo_index_title", lang))}</title>
<style>
body {{ font-family: "Noto Sans CJK SC", "Microsoft YaHei", "PingFang SC", sans-serif; margin: 2em; }}
</style>
</head>
<body>
<h1>{e(_t("demo_index_title", lang))}</h1>
{chr(10).join(parts)}
</body>
</html>
"""
    path = out / "index.html"
    with atomic_path(path) as tmp:
        tmp.write_text(doc, encoding="utf-8")
    return path


def cli_batch(args: Any) -> int:
    """``evalkit batch``; returns the exit code.

    0 every county (run) succeeded; 1 at least one failed (the printed summary says how many, the
    other counties' outputs are kept); 2 the batch could not start (unknown parameter or county, bad
    value, no dataset, OUT locked: nothing ran); 130 interrupted (Ctrl-C or SIGTERM).
    """
    _sigterm_as_interrupt()
    try:
        res = run_batch(args.notebook, args.data, counties=args.counties, params=parse_param_args(args.param),
                        workers=args.workers, out=args.out, resume=args.resume, scheduler=args.scheduler,
                        timeout=args.timeout, progress=True)
    except BatchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished counties are kept, nothing unfinished was published; "
              "rerun with --resume", file=sys.stderr)
        return 130
    print_summary(res)
    return res.exit_code


def cli_verify(args: Any) -> int:
    """``evalkit verify``: 0 only when every result is identical."""
    _sigterm_as_interrupt()
    try:
        res = verify(args.run_dir, workers=args.workers)
    except BatchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    for line in res.lines():
        print(line)
    return res.exit_code
