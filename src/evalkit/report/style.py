"""The one report style: numbers with units and precision, the page CSS, the report header.

Every notebook and page uses these helpers, so a share is always a percentage with one or two
decimals, money is in 元 with thousands separators, counts have separators, and a printed page
looks like the screen (tables that do not wrap, A4 margins, no navigation on paper).

* :func:`num`, :func:`yuan`, :func:`pct`, :func:`prob`, :func:`ci` format single numbers;
  :func:`format_frame` formats whole columns by kind (``{"col": "yuan"|"count"|"pct"|...}``).
* :data:`PAGE_CSS` is the print-friendly stylesheet; :func:`css_tag` is it as ``<style>``.
* :func:`report_header` is the line "county · year · data hash · version" every report opens
  with (the batch runner adds it to each exported report from the run's ``results.json``).

Strings come from :mod:`evalkit.text` (``lang`` is ``'zh'`` or ``'en'``).
"""
from __future__ import annotations

import html
import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from evalkit.text import label, text

__all__ = ["num", "yuan", "pct", "prob", "ci", "format_frame", "FORMATS", "PAGE_CSS", "css_tag",
           "report_header", "header_fields", "unit_of"]

#: Kinds of :func:`format_frame` and the formatter of each.
FORMATS = ("count", "yuan", "pct", "pct1", "prob", "num1", "num2", "num3")


def _missing(x: Any) -> bool:
    try:
        return x is None or x is pd.NA or (isinstance(x, (float, int)) and not math.isfinite(float(x)))
    except (TypeError, ValueError):
        return False


def num(x: Any, digits: int = 0) -> str:
    """``x`` with thousands separators and ``digits`` decimals ('—' for a missing value)."""
    if _missing(x):
        return "—"
    return f"{float(x):,.{digits}f}"


def yuan(x: Any, lang: str = "zh", digits: int = 0) -> str:
    """An amount of money: ``2,747 元`` / ``CNY 2,747`` ('—' when missing)."""
    if _missing(x):
        return "—"
    return text("fmt_yuan", lang, value=num(x, digits))


def pct(x: Any, digits: int = 1) -> str:
    """A share (0.0679) as a percentage with ``digits`` decimals (``6.8%``; '—' when missing)."""
    if _missing(x):
        return "—"
    return f"{100 * float(x):.{digits}f}%"


def prob(x: Any, digits: int = 3) -> str:
    """A probability or score on [0, 1] with a fixed number of decimals (``0.523``)."""
    if _missing(x):
        return "—"
    return f"{float(x):.{digits}f}"


def ci(est: Any, lo: Any, hi: Any, digits: int = 1) -> str:
    """A share with its interval: ``6.8% [5.1%, 8.6%]``."""
    return f"{pct(est, digits)} [{pct(lo, digits)}, {pct(hi, digits)}]"


_FMT = {"count": lambda v, lang: num(v, 0), "yuan": lambda v, lang: num(v, 0),
        "pct": lambda v, lang: pct(v, 2), "pct1": lambda v, lang: pct(v, 1),
        "prob": lambda v, lang: prob(v, 3), "num1": lambda v, lang: num(v, 1),
        "num2": lambda v, lang: num(v, 2), "num3": lambda v, lang: num(v, 3)}


def format_frame(df: pd.DataFrame, kinds: Mapping[str, str], lang: str = "zh") -> pd.DataFrame:
    """Copy of ``df`` whose columns named in ``kinds`` are formatted as text by kind.

    Kinds: ``count`` (thousands separators), ``yuan`` (the same; the header carries the unit, see
    :func:`unit_of`), ``pct`` / ``pct1`` (percent, 2 / 1 decimals), ``prob`` (3 decimals),
    ``num1``/``num2``/``num3``. Unknown kinds raise ``KeyError``; columns not in ``df`` are ignored.
    """
    out = df.copy()
    for col, kind in kinds.items():
        if col in out.columns:
            f = _FMT[kind]
            out[col] = [f(v, lang) for v in out[col].tolist()]  # display only: a few hundred rows
    return out


def unit_of(kind: str, lang: str = "zh") -> str:
    """The unit suffix a column header of ``kind`` carries ('' for none): ``（元）`` / `` (CNY)``."""
    return label("unit_suffix_yuan", lang) if kind == "yuan" else (label("unit_suffix_pct", lang)
                                                                    if kind in ("pct", "pct1") else "")


#: Print-friendly page style of every report and index page.
PAGE_CSS = """
body { font-family: "Noto Sans CJK SC", "Source Han Sans SC", "Microsoft YaHei", "PingFang SC", sans-serif; }
.evalkit-page { margin: 1.5em 2em; }
.evalkit-nav { font-size: .9em; margin: .5em 0 1em; }
.evalkit-nav a { margin-right: 1.2em; }
.evalkit-header { color: #444; font-size: .85em; border-bottom: 1px solid #bbb; padding: .3em 0 .5em;
  margin-bottom: 1em; }
.evalkit-header span { margin-right: 1.5em; white-space: nowrap; }
table, .jp-RenderedHTMLCommon table { border-collapse: collapse; font-size: .9em; }
th, td { white-space: nowrap; padding: .3em .6em; border: 1px solid #ccc; text-align: left; }
.jp-RenderedHTMLCommon td, .jp-RenderedHTMLCommon th { white-space: nowrap; }
td.num, .jp-RenderedHTMLCommon td { font-variant-numeric: tabular-nums; }
td.num { text-align: right; }
.verdict-pass { color: #1e7b36; font-weight: bold; }
.verdict-fail { color: #b03a2e; font-weight: bold; }
.verdict-borderline { color: #9a6d00; font-weight: bold; }
tr.failed td { background: #fdecea; }
.cards { display: flex; flex-wrap: wrap; gap: 1em; margin: 1em 0; }
.card { border: 1px solid #ccc; border-radius: 4px; padding: .6em 1em; min-width: 12em; }
.card .big { font-size: 1.4em; font-weight: bold; }
img.thumb { max-width: 420px; border: 1px solid #ddd; }
@page { size: A4; margin: 15mm 12mm; }
@media print {
  .evalkit-nav { display: none; }
  body { font-size: 10.5pt; }
  .evalkit-page { margin: 0; }
  table { page-break-inside: auto; }
  tr, img, .jp-OutputArea-output { page-break-inside: avoid; }
  thead { display: table-header-group; }
  a { color: inherit; text-decoration: none; }
}
"""


def css_tag() -> str:
    """:data:`PAGE_CSS` as a ``<style>`` element."""
    return f'<style id="evalkit-style">{PAGE_CSS}</style>'


def header_fields(results: Mapping[str, Any] | None, params: Mapping[str, Any] | None = None
                  ) -> dict[str, str]:
    """What the report header shows, from a run's ``results.json`` and parameters.

    Keys (those known): ``county`` (name and code), ``year``, ``data`` (first 12 hex digits of the
    data hash), ``version`` (evalkit).
    """
    r, p = dict(results or {}), dict(params or {})
    out: dict[str, str] = {}
    code = r.get("county_code") or p.get("county_code")
    name = r.get("county_name") or ""
    if code:
        out["county"] = f"{name} ({code})".strip() if name else str(code)
    year = r.get("year") if r.get("year") is not None else (r.get("score_year") or p.get("year"))
    if year is not None:
        out["year"] = str(year)
    sha = r.get("data_sha256")
    if sha:
        out["data"] = str(sha)[:12]
    if r.get("evalkit_version"):
        out["version"] = str(r["evalkit_version"])
    return out


def report_header(fields: Mapping[str, str], lang: str = "zh") -> str:
    """The report header as HTML: county, year, data hash and evalkit version (those given)."""
    parts = [f"<span>{html.escape(label('header_' + k, lang))}: {html.escape(str(v))}</span>"
             for k, v in fields.items() if v]
    return f'<div class="evalkit-header">{"".join(parts)}</div>' if parts else ""
