"""Which files make a dataset, which table each holds, and the dataset's fingerprint.

A dataset is a directory as written by the generator (``counties.parquet``, ``villages.parquet``,
``households/<county_code>.parquet``...), a directory of CSV/TXT/XLSX files named by table
(English or Chinese name), or a single file. Files written by
:func:`evalkit.data.quarantine.write_quarantine` are never read back as input.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from evalkit import dictionary
from evalkit.provenance import sha256_file

__all__ = [
    "TEXT_EXTS", "EXCEL_EXTS", "HTML_EXTS", "PARQUET_EXTS", "TABLE_EXTS", "PARTITIONED", "QUARANTINE_SUFFIX",
    "REPORT_FILE", "QUARANTINE_DIR", "InputFile", "unread_files", "Source", "dataset_sha256",
    "table_from_name", "discover",
    "dataset_files", "dataset_fingerprint", "is_output",
]

TEXT_EXTS = (".csv", ".txt", ".tsv")
EXCEL_EXTS = (".xlsx", ".xlsm", ".xls")
#: Web-system exports saved as HTML (also recognized by content when named .xls/.xlsx).
HTML_EXTS = (".html", ".htm")
PARQUET_EXTS = (".parquet", ".pq")
TABLE_EXTS = TEXT_EXTS + EXCEL_EXTS + HTML_EXTS + PARQUET_EXTS
#: Tables the generator writes as one file per county (``<table>/<county_code>.parquet``).
PARTITIONED = ("households", "members", "panel", "truth", "field_survey")
#: Ending of a quarantine file (``<table>.quarantine.csv``) and name of the findings file.
QUARANTINE_SUFFIX = ".quarantine.csv"
REPORT_FILE = "validation_report.csv"
#: Folder of the quarantine files inside a dataset directory (never read as input).
QUARANTINE_DIR = "quarantine"


@dataclass(frozen=True)
class InputFile:
    """One input file: label relative to the dataset root, SHA-256, tables read from it."""

    path: str
    sha256: str
    tables: tuple[str, ...] = ()


@dataclass(frozen=True)
class Source:
    """One file to read: its path, the table its name suggests, its label in findings, and
    whether its name already selected it by county (a partition file)."""

    path: Path
    table: str | None
    label: str
    by_county: bool


def dataset_sha256(files: Iterable[str | Path | InputFile], root: str | Path | None = None) -> str:
    """SHA-256 over the sorted ``(relative path, file sha256)`` pairs of a dataset.

    Parameters
    ----------
    files : iterable of path or InputFile
        Paths are hashed and made relative to ``root`` (default: their common directory);
        :class:`InputFile` entries are used as they are.
    root : path, optional
    """
    items = list(files)
    paths = [Path(f) for f in items if not isinstance(f, InputFile)]
    if root is None and paths:
        root = Path(*_common_parts([p.resolve().parent for p in paths]))
    pairs = []
    for f in items:
        if isinstance(f, InputFile):
            pairs.append((f.path, f.sha256))
        else:
            p = Path(f).resolve()
            pairs.append((p.relative_to(Path(root).resolve()).as_posix(), sha256_file(p)))
    h = hashlib.sha256()
    for rel, sha in sorted(pairs):
        h.update(f"{rel}\t{sha}\n".encode())
    return h.hexdigest()


def _common_parts(dirs: Sequence[Path]) -> tuple[str, ...]:
    parts = dirs[0].parts
    for d in dirs[1:]:
        n = 0
        for a, b in zip(parts, d.parts):
            if a != b:
                break
            n += 1
        parts = parts[:n]
    return parts or ("/",)


def table_from_name(name: str) -> str | None:
    """Table whose English or Chinese name is ``name`` (normalized, case-insensitive), else None."""
    key = dictionary.normalize_header(name).lower()
    for t in dictionary.tables().values():
        if key in (t.name.lower(), dictionary.normalize_header(t.zh).lower()):
            return t.name
    return None


def is_output(p: Path) -> bool:
    """True for files written by the quarantine writer: they are never read back as input."""
    return p.name.endswith(QUARANTINE_SUFFIX) or p.name == REPORT_FILE


def _skipped(p: Path) -> bool:
    return p.name.startswith((".", "~$"))  # hidden files and Excel lock files


def _partition_sources(root: Path, folder: Path, table: str,
                       counties: set[str] | None) -> list[Source]:
    found = []
    for f in sorted(folder.iterdir()):
        if f.suffix.lower() not in TABLE_EXTS or _skipped(f):
            continue
        by_stem = counties is not None and re.fullmatch(r"[0-9]{6}", f.stem) is not None
        if by_stem and f.stem not in counties:
            continue
        found.append(Source(f, table, f.relative_to(root).as_posix(), by_stem))
    return found


def discover(root: Path, wanted: set[str] | None, counties: set[str] | None) -> list[Source]:
    """The files of a dataset directory, in reading order.

    Parameters
    ----------
    root : Path
        Dataset directory.
    wanted : set of str, optional
        Only files of these tables (files whose name names no table are kept).
    counties : set of str, optional
        Partition files named by a county code are kept only for these counties.
    """
    found = []
    for entry in sorted(root.iterdir()):
        if _skipped(entry):
            continue
        if entry.is_dir():
            t = table_from_name(entry.name)
            if t is None or (wanted and t not in wanted):
                continue
            found += _partition_sources(root, entry, t, counties)
        elif entry.suffix.lower() in TABLE_EXTS and not is_output(entry):
            t = table_from_name(entry.stem)
            if wanted and t is not None and t not in wanted:
                continue
            found.append(Source(entry, t, entry.name, False))
    return found


#: Folders of the departments' monthly files (read by the monitoring cycle, not by load_dataset).
MONTHLY_DIRS: tuple[str, ...] = ("departments", "departments_truth")


def unread_files(root: Path) -> list[str]:
    """Files and folders of a dataset directory that :func:`discover` never reads (unknown format,
    a folder not named after a table), relative to ``root``: the loader names each in a warning.

    Hidden files, Excel lock files, the quarantine folder and the loader's own outputs are left out.
    """
    out = []
    for entry in sorted(root.iterdir()):
        if _skipped(entry) or is_output(entry) or entry.name in (QUARANTINE_DIR, *MONTHLY_DIRS):
            continue
        if entry.is_dir():
            if table_from_name(entry.name) is None:
                out.append(entry.name + "/")
            else:
                out += [f.relative_to(root).as_posix() for f in sorted(entry.iterdir())
                        if f.is_file() and not _skipped(f) and f.suffix.lower() not in TABLE_EXTS]
        elif entry.suffix.lower() not in TABLE_EXTS:
            out.append(entry.name)
    return out


def dataset_files(path: str | Path, tables: Iterable[str] | None = None,
                  counties: Iterable[str] | None = None) -> list[Path]:
    """The data files a :func:`~evalkit.data.load_dataset` of ``tables`` and ``counties`` would
    read (not parsed)."""
    root = Path(path)
    if not root.is_dir():
        return [root]
    wanted = set(tables) if tables else None
    cs = {str(c) for c in counties} if counties else None
    return [s.path for s in discover(root, wanted, cs)]


def dataset_fingerprint(path: str | Path, tables: Iterable[str] | None = None,
                        counties: Iterable[str] | None = None) -> str:
    """The :attr:`~evalkit.data.Dataset.sha256` that a load would give, from the files alone.

    Hashes the files a load of ``tables`` (and ``counties``) would read, without parsing them, so
    a report can check cheaply that another run used the same data.
    """
    root = Path(path)
    if not root.is_dir():
        return dataset_sha256([InputFile(root.name, sha256_file(root), ())])
    files = dataset_files(root, tables, counties)
    return dataset_sha256([InputFile(f.relative_to(root).as_posix(), sha256_file(f), ()) for f in files])
