"""Writing quarantined rows and the findings beside a dataset, masked, for a person to fix."""
from __future__ import annotations

from pathlib import Path

from evalkit.data.dataset import Dataset
from evalkit.data.discovery import QUARANTINE_SUFFIX, REPORT_FILE
from evalkit.privacy import mask_frame

__all__ = ["default_quarantine_dir", "write_quarantine"]


def default_quarantine_dir(path: str | Path) -> Path:
    """Where quarantined rows go by default: ``quarantine/`` inside the dataset directory, or
    beside a single input file. Loaders skip that folder."""
    p = Path(path)
    return (p if p.is_dir() else p.parent) / "quarantine"


def write_quarantine(ds: Dataset, out_dir: str | Path, *, mask: bool = True) -> list[Path]:
    """Write ``<table>.quarantine.csv`` for tables with quarantined rows, and ``validation_report.csv``.

    Parameters
    ----------
    ds : Dataset
    out_dir : path
        Created if needed. Files are UTF-8 with BOM (Excel opens them with Chinese intact).
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
    written = []
    for t, q in ds.quarantine.items():
        if len(q) == 0:
            continue
        p = out / f"{t}{QUARANTINE_SUFFIX}"
        (mask_frame(q) if mask else q).to_csv(p, index=False, encoding="utf-8-sig")
        written.append(p)
    written.append(ds.report.to_csv(out / REPORT_FILE))
    return written
