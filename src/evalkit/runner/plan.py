"""Plan a batch: everything is checked, and every input hashed, before anything runs.

A run's input hash covers the notebook, its parameters, the sha256 of every data file the county
reads (its partitions and the shared tables; for a directory of table files, every table file),
the files named by path parameters, and the evalkit version and source: ``--resume`` never
reuses results of other code or thresholds.
"""
from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from evalkit import provenance
from evalkit.data import dataset_files, load_dataset
from evalkit.data.discovery import PARQUET_EXTS, Source, discover
from evalkit.data.raw import build_raw_table
from evalkit.data.readers import read_tables
from evalkit.data.selection import parse_selection, select_counties
from evalkit.errors import BatchError, EvalkitError, ParameterError
from evalkit.privacy import known_names
from evalkit.runner.execute import masker_for
from evalkit.runner.params import (
    RESERVED,
    NotebookParam,
    absolute_paths,
    coerce_params,
    looks_like_path,
    notebook_parameters,
)
from evalkit.text import check_lang, label

__all__ = ["PROVINCE", "Plan", "plan_batch", "resolve_counties", "county_inputs", "path_param_inputs",
           "input_hash", "kernel_for", "HashCache", "member_names"]

#: Key (and output directory name) of the single run of a notebook without ``county_code``.
PROVINCE = "province"
_HASH_VERSION = "evalkit-batch-input-v2"


class HashCache:
    """:func:`evalkit.provenance.sha256_file`, memoized (shared tables are read by every county)."""

    def __init__(self) -> None:
        self._seen: dict[Path, str] = {}

    def __call__(self, path: Path) -> str:
        """Hex SHA-256 of ``path`` (computed once per path)."""
        if path not in self._seen:
            self._seen[path] = provenance.sha256_file(path)
        return self._seen[path]


@dataclass
class Plan:
    """A checked batch: the notebook, its parameters and one job per county."""

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
    names: list[str] = field(default_factory=list)  # members' names: masked wherever they appear


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def _counties_table(data: Path) -> pd.DataFrame:
    try:  # any layout: counties.parquet, counties.csv, 县.xlsx, a sheet of one workbook ...
        return load_dataset(data, tables=["counties"], validate=False)["counties"]
    except (EvalkitError, KeyError) as e:
        why = e.args[0] if e.args else str(e)
        raise BatchError(f"{data} is not a dataset: no counties table (counties.parquet is missing, and "
                         f"there is no counties.csv/.xlsx either): {why}") from None


def member_names(data: Path) -> list[str]:
    """Every name of the dataset's members table (valid and quarantined rows): what the runner
    masks by content in every output. Empty when the dataset has no readable members table.

    The same names as ``known_names`` over the name column of ``load_dataset(data,
    tables=["members"], validate=False)`` (its valid rows and its quarantine): every row's raw name,
    stripped. A Parquet file of the members table is read for its name column only (a province
    has 17 million members); any other file is read as the loader reads it.
    """
    if not data.is_dir():
        return _loaded_names(data)
    cols: list[pd.Series] = []
    for src in discover(data, {"members"}, None):
        if src.table == "members" and src.path.suffix.lower() in PARQUET_EXTS:
            cols.append(_parquet_names(src))
            continue
        try:  # a file not named by a table, or CSV/Excel: the loader's own reading
            raws = read_tables(src.path, src.table, label=src.label)
        except (EvalkitError, OSError, ValueError):
            continue
        cols += [rt.frame["name"] for rt in raws
                 if rt.table == "members" and not rt.fatal and "name" in rt.frame.columns]
    if not cols:
        return []
    # one column of distinct raw values first (names repeat across a province's partitions); the
    # batch's Masker does the known_names filtering and sorting once for both (seconds for a province)
    return masker_for(pd.concat(cols, ignore_index=True).unique().tolist()).names


def _parquet_names(src: Source) -> pd.Series:
    """The distinct raw values of the name column of one members Parquet file (empty when the file
    cannot be read or the loader would not use it: no name column, a required column missing)."""
    import pyarrow.parquet as pq

    empty = pd.Series([], dtype=object)
    try:
        header = pq.read_schema(src.path).names
    except Exception:  # noqa: BLE001 - pyarrow raises many types for broken files; the loader skips them
        return empty
    # the loader's header mapping, on the header alone
    rt = build_raw_table(pd.DataFrame(columns=header), np.arange(0, dtype=np.int64), table="members",
                         file=src.label, path=src.path, header_cells=None, problems=[])
    if rt.fatal or "name" not in rt.headers:
        return empty
    try:
        col = pq.read_table(src.path, columns=[rt.headers["name"]]).column(0)
    except Exception:  # noqa: BLE001
        return empty
    return col.unique().to_pandas()


def _loaded_names(data: Path) -> list[str]:
    try:
        ds = load_dataset(data, tables=["members"], validate=False)  # every row, valid or not
    except (EvalkitError, KeyError, OSError, ValueError):
        return []
    cols = [t["name"] for t in (ds.tables.get("members"), ds.quarantine.get("members"))
            if t is not None and "name" in t.columns]
    return known_names(*cols)


def _names(cdf: pd.DataFrame) -> dict[str, str]:
    names: dict[str, str] = {}
    col = cdf["county_name"] if "county_name" in cdf else [None] * len(cdf)
    for c, n in zip(cdf["county_code"], col):
        if not pd.isna(c) and str(c).strip():
            names[str(c).strip()] = "" if n is None or pd.isna(n) else str(n)
    return names


def resolve_counties(data: Path, counties: str | Iterable[str] | None,
                     county_param: bool) -> list[tuple[str, str]]:
    """``(code, name)`` of the counties to run, from the dataset's counties table.

    ``counties`` is any selection :func:`evalkit.data.selection.select_counties` accepts. A
    notebook without a ``county_code`` parameter runs once: ``[(PROVINCE, "")]``.

    Raises
    ------
    BatchError
        No counties table, an unknown county, or a selection for a notebook that runs once.
    """
    try:
        spec = parse_selection(counties)
    except ParameterError as e:
        raise BatchError(str(e)) from None
    cdf = _counties_table(data)  # also for a notebook that runs once: the data must be a dataset
    if not county_param:
        if spec not in ("all", [PROVINCE]):
            raise BatchError("the notebook has no county_code parameter: it runs once for the whole dataset; "
                             "leave --counties at 'all'")
        return [(PROVINCE, "")]
    try:
        chosen = select_counties(cdf, spec)
    except ParameterError as e:
        raise BatchError(f"{e} (counties table of {data})") from None
    if not chosen:
        raise BatchError("no county selected")
    names = _names(cdf)
    return [(c, names.get(c, "")) for c in chosen]


def county_inputs(data: Path, code: str | None) -> list[str]:
    """Relative paths of the data files one run reads, found as the dataset loader finds them.

    Every table file at the top of the directory (``counties.parquet``, ``households.csv``,
    ``农户.xlsx`` ...: .csv .txt .tsv .xlsx .xlsm .parquet .pq) and, in the partition folders named by
    a table, the county's own ``<code>.*`` files and any file not named by a county code. A
    province run (``code`` None) reads every partition. Quarantine output is never an input.
    """
    if data.is_file():
        return [data.name]
    found = dataset_files(data, None, None if code is None else [code])
    return sorted({f.relative_to(data).as_posix() for f in found})


def path_param_inputs(declared: Mapping[str, NotebookParam], given: Mapping[str, Any],
                      nb_dir: Path) -> dict[str, Path]:
    """Files named by path-valued parameters, keyed ``@<param>/<relative path>``.

    A string parameter (given, or the literal default) naming an existing file makes that file
    an input; one naming an existing directory is taken to be another batch's OUT (e.g. the
    roll-up's ``run_dir``): its ``results.json`` files are inputs. Given values are absolute by
    now when they exist from the caller's directory (:func:`~evalkit.runner.params.absolute_paths`);
    the remaining relative paths resolve against the notebook's directory, the kernel's working
    directory.
    """
    out: dict[str, Path] = {}
    for name, p in declared.items():
        v = given.get(name, p.default)
        if name in RESERVED or not looks_like_path(v):
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


def input_hash(nb_sha: str, files: Mapping[str, str], params: Mapping[str, Any], code: Mapping[str, str]) -> str:
    """SHA-256 identifying one run: notebook, input files, parameters, evalkit version and source.

    ``data_dir``/``output_dir`` are locations, not content: the content is hashed file by file.
    """
    h = hashlib.sha256(f"{_HASH_VERSION}\nnotebook {nb_sha}\nevalkit {code['version']} {code['source_sha256']}\n"
                       .encode())
    for rel in sorted(files):
        h.update(f"file {rel} {files[rel]}\n".encode())
    h.update(_canonical({k: v for k, v in params.items() if k not in ("data_dir", "output_dir")}).encode())
    return h.hexdigest()


def kernel_for(notebook: Path, kernel_name: str | None) -> str:
    """The notebook's kernelspec, or ``python3`` (this interpreter's native kernel) if it is unknown here."""
    if kernel_name:
        return kernel_name
    import nbformat  # with jupyter_client: heavy, needed only when a batch is planned
    from jupyter_client.kernelspec import KernelSpecManager

    name = nbformat.read(notebook, as_version=4).metadata.get("kernelspec", {}).get("name") or "python3"
    if name != "python3" and name not in KernelSpecManager().find_kernel_specs():
        return "python3"
    return name


def _report_lang(declared: Mapping[str, NotebookParam], given: Mapping[str, Any]) -> str:
    lang = given.get("lang", declared["lang"].default if "lang" in declared else "zh")
    try:
        return check_lang(lang)
    except ParameterError as e:
        raise BatchError(f"parameter 'lang': {e}") from None


def _check_notebook(nb: Path) -> dict[str, NotebookParam]:
    declared = notebook_parameters(nb)
    if "output_dir" not in declared:
        raise BatchError(f"{nb.name} declares no output_dir in a cell tagged 'parameters': the batch gives "
                         "each run its own output directory through it")
    return declared


def _job(plan: Plan, code: str, name: str, files: Mapping[str, str]) -> dict[str, Any]:
    p = dict(plan.given)
    if plan.county_param:
        p["county_code"] = code
    if "data_dir" in plan.declared:
        p["data_dir"] = str(plan.data)
    return {
        "code": code, "name": name or label("batch_province", plan.lang), "notebook": str(plan.notebook),
        "stem": plan.notebook.stem, "out": str(plan.out), "params": p, "timeout": plan.timeout,
        "kernel_name": plan.kernel_name, "cwd": str(plan.notebook.parent),
        "input_hash": input_hash(plan.nb_sha, files, p, plan.code),
        "tmp": f".tmp-{code}-{secrets.token_hex(4)}", "capture_stderr": True, "names": plan.names,
        "lang": plan.lang,
    }


def plan_batch(notebook: str | Path, data: str | Path, counties: str | Iterable[str] | None,
               params: Mapping[str, Any] | None, out: str | Path, timeout: int,
               kernel_name: str | None) -> Plan:
    """Check a batch and hash its inputs (see :func:`evalkit.runner.run_batch` for the parameters).

    Raises
    ------
    BatchError
        Unknown parameter or county, a bad value or language, a missing notebook or dataset.
    """
    nb = Path(notebook).resolve()
    declared = _check_notebook(nb)
    given = absolute_paths(coerce_params(params, declared), Path.cwd())
    lang = _report_lang(declared, given)
    data_p = Path(data).resolve()
    if not data_p.exists():
        raise BatchError(f"dataset not found: {data_p}")
    county_param = "county_code" in declared
    chosen = resolve_counties(data_p, counties, county_param)
    if timeout <= 0:
        raise BatchError("timeout must be a positive number of seconds")
    sha = HashCache()
    code_id = {"version": provenance.evalkit_version(), "source_sha256": provenance.source_sha256()}
    plan = Plan(nb, sha(nb), data_p, Path(out).resolve(), declared, given, county_param, [], {}, code_id, lang,
                kernel_for(nb, kernel_name), int(timeout))
    plan.names = member_names(data_p)
    root = data_p if data_p.is_dir() else data_p.parent
    extra = {k: sha(f) for k, f in path_param_inputs(declared, given, nb.parent).items()}
    inputs: dict[str, str] = {}
    for code, name in chosen:
        files = {r: sha(root / r) for r in county_inputs(data_p, None if code == PROVINCE else code)}
        files.update(extra)
        inputs.update(files)
        plan.jobs.append(_job(plan, code, name, files))
    plan.inputs = dict(sorted(inputs.items()))
    return plan
