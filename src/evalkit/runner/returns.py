"""``evalkit ledger import``: a ledger (台账) returned by a township goes back into its run.

:func:`import_ledger` reads the file with :func:`evalkit.data.ledger.read_returned_ledger`, writes
its rows and problems under ``RUN_DIR/returns/<name>/`` (masked; never into a county's own run
directory, whose files ``--resume`` and ``verify`` check) and keeps ``RUN_DIR/returns/progress.csv``,
one row per imported ledger: verified, confirmed problems, pending, invalid rows.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from evalkit import provenance
from evalkit.data.ledger import ReturnedLedger, read_returned_ledger
from evalkit.errors import InputError
from evalkit.outputs import write_csv
from evalkit.privacy import Masker
from evalkit.text import text

__all__ = ["import_ledger", "progress_line", "problem_lines", "RETURNS_DIR"]

#: Folder of a run that holds the imported ledgers.
RETURNS_DIR = "returns"


def _name(led: ReturnedLedger) -> str:
    """The county code when every household of the ledger is in one county, else the file's stem."""
    codes = led.rows["household_id"].dropna().astype(str).str[:6].unique()
    return str(codes[0]) if len(codes) == 1 and codes[0].isdigit() else led.path.stem


def import_ledger(file: str | Path, run_dir: str | Path, lang: str = "zh") -> tuple[ReturnedLedger, Path]:
    """Read a returned ledger and write it into ``run_dir``; returns the ledger and its folder.

    Raises
    ------
    InputError
        ``run_dir`` is not a directory, or the file is not a ledger that can be read.
    """
    run = Path(run_dir)
    if not run.is_dir():
        raise InputError(f"run directory not found: {run}")
    led = read_returned_ledger(file, lang=lang)
    dest = run / RETURNS_DIR / _name(led)
    masker = Masker()  # ID numbers by content: a township may type one into 备注
    write_csv(masker.frame(led.rows.astype(object)), dest / "verification.csv")
    write_csv(masker.frame(led.problems.astype(object)), dest / "problems.csv")
    prog = {"name": dest.name, "file": led.path.name, "sha256": provenance.sha256_file(led.path), **led.progress()}
    pfile = run / RETURNS_DIR / "progress.csv"
    old = pd.read_csv(pfile, dtype={"name": str}, encoding="utf-8-sig") if pfile.exists() else None
    table = pd.DataFrame([prog])
    if old is not None:
        table = pd.concat([old[old["name"] != dest.name], table], ignore_index=True).sort_values("name")
    write_csv(table, pfile)
    return led, dest


def progress_line(led: ReturnedLedger, lang: str = "zh") -> str:
    """One line: how many households are verified, confirmed, pending, invalid."""
    return text("ledger_progress", lang, file=led.path.name, **led.progress())


def problem_lines(led: ReturnedLedger, lang: str = "zh", limit: int = 20) -> list[str]:
    """The problems as lines ``file sheet row N column: value — reason`` (at most ``limit``)."""
    masker = Masker()
    out = [masker.text(text("ledger_problem_line", lang, **r)) or "" for r in
           led.problems.head(limit).to_dict("records")]
    if len(led.problems) > limit:
        out.append(text("ledger_more_problems", lang, n=len(led.problems) - limit))
    return out

