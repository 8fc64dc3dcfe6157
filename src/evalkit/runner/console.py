"""The batch summary printed at the terminal: county / status / verdict / duration, then the counts."""
from __future__ import annotations

import io
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from evalkit.runner.index import verdict_both
from evalkit.runner.results import BatchResult, CountyResult
from evalkit.text import label, text

__all__ = ["print_summary", "summary_table_text"]


def _status(c: CountyResult, lang: str) -> str:
    if c.reused:
        return label("runner_status_reused", lang)
    if c.status == "ok":
        return label("status_ok", lang)
    return f"[red]{label('runner_status_failed_loud', lang)}[/red]"


def _print_summary_to(con: Any, res: BatchResult, lang: str) -> None:

    t = Table(title=text("runner_summary_title", lang, out=res.out))
    for key, just in (("runner_col_county", "left"), ("runner_col_status", "left"),
                      ("runner_col_verdict", "left"), ("runner_col_duration", "right")):
        t.add_column(label(key, lang), justify=just)  # type: ignore[arg-type]
    for c in res.counties:
        t.add_row(f"{c.county_code} {c.county_name}", _status(c, lang), verdict_both(c.verdict, lang),
                  f"{c.duration_s:.1f}")
    con.print(t)
    for c in res.failed:
        detail = text("runner_failed_detail", lang, code=c.county_code, error=c.error)
        if c.notebook:
            detail += text("runner_partial_notebook", lang, notebook=c.notebook)
        # a Text, not markup: an error message may hold brackets
        con.print(Text.assemble((label("status_failed", lang), "red"), " ", detail), highlight=False)
    con.print(res.summary_line(lang), highlight=False, markup=False)
    con.print(res.exit_line(lang), highlight=False, markup=False)


def print_summary(res: BatchResult, lang: str = "en") -> None:
    """Print the county / status / verdict / duration table (rich) and the counts."""
    _print_summary_to(Console(), res, lang)


def summary_table_text(res: BatchResult, width: int = 100, lang: str = "en") -> str:
    """The :func:`print_summary` table as plain text (no colours)."""
    con = Console(file=io.StringIO(), width=width, color_system=None, force_terminal=False)
    _print_summary_to(con, res, lang)
    return con.file.getvalue()
