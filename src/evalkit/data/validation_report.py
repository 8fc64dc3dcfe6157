"""The validation report: every finding of a load, row counts, exit code, text/rich/CSV output.

The report's own sentences (title, headings) come from :mod:`evalkit.text` in the language asked
for; the reasons of the findings are the validator's exact sentences (English), so the default
language of the report is English.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from evalkit.data.problems import SEVERITIES, Problem
from evalkit.data.rules import TABLE_ORDER
from evalkit.outputs import write_csv
from evalkit.text import label, text

__all__ = ["ValidationReport"]

_SEV_RANK = {s: i for i, s in enumerate(SEVERITIES)}
_STATUS = {0: "validation_status_clean", 1: "validation_status_quarantined",
           2: "validation_status_unreadable"}


@dataclass
class ValidationReport:
    """All findings of a load, and row counts per table.

    Attributes
    ----------
    problems : DataFrame
        One row per finding, columns :data:`~evalkit.data.problems.PROBLEM_COLUMNS`; values of
        names and ID numbers are masked.
    n_rows, n_valid, n_quarantined : dict
        Per table: non-blank data rows read, rows kept, rows quarantined.
    """

    problems: pd.DataFrame
    n_rows: dict[str, int] = field(default_factory=dict)
    n_valid: dict[str, int] = field(default_factory=dict)
    n_quarantined: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        p = self.problems
        if len(p):
            rank = p["severity"].map(_SEV_RANK).fillna(9)
            trank = p["table"].map({t: i for i, t in enumerate(TABLE_ORDER)}).fillna(99)
            p = p.assign(_s=rank.to_numpy(), _t=trank.to_numpy(), _r=p["row"].fillna(0).to_numpy())
            p = p.sort_values(["_s", "_t", "file", "_r"], kind="stable").drop(columns=["_s", "_t", "_r"])
        self.problems = p.reset_index(drop=True)

    def records(self) -> list[Problem]:
        """The findings as :class:`~evalkit.data.problems.Problem` records."""
        return [Problem(**{k: (None if pd.isna(v) else (int(v) if k == "row" else v))
                           for k, v in r.items()}) for r in self.problems.to_dict("records")]

    def exit_code(self) -> int:
        """0 clean (warnings and notices allowed), 1 rows quarantined, 2 a file or table unreadable."""
        if (self.problems["severity"] == "fatal").any():
            return 2
        if self.n_quarantined_total > 0:
            return 1
        return 0

    @property
    def n_quarantined_total(self) -> int:
        """Quarantined rows over all tables."""
        return int(sum(self.n_quarantined.values()))

    def summary(self) -> pd.DataFrame:
        """Per table: rows, valid, quarantined, warnings, notices."""
        tabs = [t for t in dict.fromkeys(list(self.n_rows) + self.problems["table"].dropna().tolist()) if t]
        sev = self.problems.groupby(["table", "severity"]).size()
        rows = []
        for t in tabs:
            rows.append({"table": t, "rows": self.n_rows.get(t, 0), "valid": self.n_valid.get(t, 0),
                         "quarantined": self.n_quarantined.get(t, 0),
                         "warnings": int(sev.get((t, "warning"), 0)),
                         "notices": int(sev.get((t, "notice"), 0)),
                         "fatal": int(sev.get((t, "fatal"), 0))})
        return pd.DataFrame(rows, columns=["table", "rows", "valid", "quarantined", "warnings",
                                           "notices", "fatal"])

    def counts(self) -> pd.DataFrame:
        """Number of findings by severity, table, column and rule, with one example reason."""
        p = self.problems
        if p.empty:
            return pd.DataFrame(columns=["severity", "table", "column", "rule", "n", "example"])
        g = p.groupby(["severity", "table", "column", "rule"], sort=False, dropna=False)
        out = g.agg(n=("reason", "size"), example=("reason", "first")).reset_index()
        out["_s"] = out["severity"].map(_SEV_RANK)
        return out.sort_values(["_s", "n"], ascending=[True, False]).drop(columns="_s").reset_index(drop=True)

    def title(self, lang: str = "en") -> str:
        """First line of the report: the exit code and what it means."""
        code = self.exit_code()
        return text("validation_report_title", lang, code=code, status=label(_STATUS[code], lang))

    def to_text(self, max_rows: int = 50, lang: str = "en") -> str:
        """Plain-text report: counts per table, counts by reason, the first ``max_rows`` findings.

        Parameters
        ----------
        max_rows : int
            Findings listed (all of them are in :meth:`to_csv`).
        lang : {'en', 'zh'}
            Language of the report's headings (reasons are always the validator's sentences).
        """
        lines = [self.title(lang), ""]
        lines.append(self.summary().to_string(index=False))
        c = self.counts()
        if len(c):
            lines += ["", label("validation_counts_heading", lang)]
            for r in c.itertuples(index=False):
                where = ".".join(x for x in (r.table, r.column) if x) or "-"
                lines.append(f"  {r.n:>7}  {r.severity:<7} {where} [{r.rule}] {r.example}")
        if len(self.problems):
            shown = self.problems.head(max_rows)
            lines += ["", text("validation_findings_heading", lang, shown=len(shown),
                               total=len(self.problems))]
            for r in shown.itertuples(index=False):
                row = "" if pd.isna(r.row) else " " + text("validation_at_row", lang, row=r.row)
                col = f" {r.header}" if r.header else ""
                val = " " + text("validation_value", lang, value=repr(r.value)) if r.value else ""
                lines.append(f"  {r.severity:<7} {r.file}{row}{col}{val}: {r.reason}")
            if len(self.problems) > len(shown):
                more = len(self.problems) - len(shown)
                lines.append("  " + text("validation_findings_more", lang, n=more))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()

    def render(self, max_rows: int = 25, console=None, lang: str = "en") -> None:
        """Print the report with rich (about 50 lines): table counts, the 10 most frequent reasons
        and the first ``max_rows`` findings, one line each.

        Parameters
        ----------
        max_rows : int
            Findings shown (all of them are in :meth:`to_csv`).
        console : rich.console.Console, optional
            Default: a new console on standard output (HTML in Jupyter).
        lang : {'en', 'zh'}
            Language of the report's headings.
        """
        from rich.console import Console  # rich is only needed when a report is displayed

        (console or Console()).print(self.renderable(max_rows, lang))

    def renderable(self, max_rows: int = 25, lang: str = "en"):
        """The rich renderable printed by :meth:`render` (a ``rich.console.Group``)."""
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        style = {0: "green", 1: "yellow", 2: "bold red"}[self.exit_code()]
        parts: list = [Text(self.title(lang), style=style)]
        summ = Table(title=label("validation_tables_title", lang), show_edge=False)
        s = self.summary()
        for col in s.columns:
            summ.add_column(col, justify="left" if col == "table" else "right")
        for r in s.itertuples(index=False):
            summ.add_row(*[str(v) for v in r])
        parts.append(summ)
        c = self.counts()
        if len(c):
            ct = Table(title=text("validation_counts_title", lang, shown=min(len(c), 10),
                                  total=len(c)), show_edge=False)
            for col in ("n", "severity", "table", "column", "example"):
                ct.add_column(col, no_wrap=True, overflow="ellipsis")
            for r in c.head(10).itertuples(index=False):
                ct.add_row(str(r.n), r.severity, r.table, r.column, r.example)
            parts.append(ct)
        if len(self.problems):
            shown = self.problems.head(max_rows)
            pt = Table(title=text("validation_findings_title", lang, shown=len(shown),
                                  total=len(self.problems)), show_edge=False)
            for col in ("severity", "file", "row", "header", "value", "reason"):
                pt.add_column(col, no_wrap=True, overflow="ellipsis")
            for r in shown.itertuples(index=False):
                pt.add_row(r.severity, r.file, "" if pd.isna(r.row) else str(r.row), r.header,
                           r.value, r.reason)
            parts.append(pt)
        return Group(*parts)

    def __rich__(self):
        return self.renderable()

    def to_csv(self, path: str | Path) -> Path:
        """Write every finding to ``path`` (UTF-8 with BOM, so Excel shows Chinese correctly), atomically."""
        return write_csv(self.problems, path)
