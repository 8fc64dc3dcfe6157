"""Writing quarantined rows and the findings beside a dataset, masked, for a person to fix."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from evalkit.data.dataset import Dataset
from evalkit.data.discovery import QUARANTINE_SUFFIX, REPORT_FILE, is_output
from evalkit.outputs import write_csv
from evalkit.privacy import Masker, known_names

__all__ = ["default_quarantine_dir", "write_quarantine", "rotate_quarantine"]


def default_quarantine_dir(path: str | Path) -> Path:
    """Where quarantined rows go by default: ``quarantine/`` inside the dataset directory, or
    beside a single input file. Loaders skip that folder."""
    p = Path(path)
    return (p if p.is_dir() else p.parent) / "quarantine"


def rotate_quarantine(out_dir: str | Path) -> Path | None:
    """Move the quarantine files of an earlier validation in ``out_dir`` to
    ``out_dir/previous/<UTC time>/`` so that the folder holds the latest run's findings only.

    Call it before every re-validation, also a clean one: a table fixed since the last run must
    not leave its old quarantine file behind. Nothing is deleted.

    Returns
    -------
    Path or None
        The dated folder the files went to; None when there was nothing to move.
    """
    out = Path(out_dir)
    if not out.is_dir():
        return None
    old = [p for p in out.iterdir() if p.is_file() and is_output(p)]
    if not old:
        return None
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    dest = out / "previous" / stamp
    dest.mkdir(parents=True, exist_ok=True)
    for p in old:
        p.rename(dest / p.name)
    return dest


def write_quarantine(ds: Dataset, out_dir: str | Path, *, mask: bool = True) -> list[Path]:
    """Write ``<table>.quarantine.csv`` for tables with quarantined rows, and ``validation_report.csv``.

    Parameters
    ----------
    ds : Dataset
    out_dir : path
        Created if needed. Files are UTF-8 with BOM (Excel opens them with Chinese intact). The
        files of an earlier run found there are moved to ``previous/<UTC time>/`` first, so a
        fixed table leaves no stale quarantine file behind.
    mask : bool
        Mask names and ID numbers in the quarantined rows (default). The rows are found again in
        the input through ``_file`` and ``_row``.

    Returns
    -------
    list of Path
        The files written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rotate_quarantine(out)
    # One masker for the rows and the report: ID numbers by content in any column and free text,
    # and the names of the members table (valid and quarantined rows).
    names = [t["name"] for t in (ds.tables.get("members"), ds.quarantine.get("members"))
             if t is not None and "name" in t.columns]
    masker = Masker(known_names(*names)) if mask else None
    written = []
    for t, q in ds.quarantine.items():
        if len(q) == 0:
            continue
        written.append(write_csv(masker.frame(q) if masker else q, out / f"{t}{QUARANTINE_SUFFIX}"))
    problems = masker.frame(ds.report.problems) if masker else ds.report.problems
    written.append(write_csv(problems, out / REPORT_FILE))  # atomic: a full disk leaves no truncated report
    return written
