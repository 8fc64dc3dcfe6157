"""The ``index.html`` pages of a batch run and of the demo (every word from :mod:`evalkit.text`)."""
from __future__ import annotations

import html
import os
from collections.abc import Sequence
from pathlib import Path

from evalkit.outputs import atomic_path
from evalkit.runner.plan import PROVINCE
from evalkit.runner.results import BatchResult, CountyResult
from evalkit.text import label, text

__all__ = ["write_index", "write_demo_index", "verdict_word", "DEMO_TITLES"]

#: Section titles of the demo index by notebook stem (label keys).
DEMO_TITLES = {"county_exit_assessment": "title_county_exit", "return_to_poverty_risk": "title_risk",
               "province_rollup": "title_province"}
_STYLE = """body { font-family: "Noto Sans CJK SC", "Microsoft YaHei", "PingFang SC", sans-serif; margin: 2em; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: .35em .7em; text-align: left; }
td.num { text-align: right; }
tr.failed td { background: #fdecea; }"""
_e = html.escape


def verdict_word(v: str | None, lang: str) -> str:
    """The verdict ('pass', 'fail', 'borderline') in words; other values as they are, '—' for none."""
    if not v:
        return "—"
    try:
        return label(f"verdict_{v}", lang)
    except KeyError:
        return v


def _page(title: str, body: str, lang: str) -> str:
    return f"""<!DOCTYPE html>
<html lang="{_e(label("runner_html_lang", lang))}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title>
<style>
{_STYLE}
</style>
</head>
<body>
<h1>{_e(title)}</h1>
{body}
</body>
</html>
"""


def _write(path: Path, doc: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(doc, encoding="utf-8")
    return path


def _counts(n: int, ok: int, failed: int, reused: int, lang: str) -> str:
    return text("batch_counts", lang, n=n, ok=ok, failed=failed, reused=reused)


def _row(c: CountyResult, lang: str) -> str:
    if c.status == "ok" and c.html is not None:
        link = f'<a href="{_e(c.county_code)}/{_e(c.html.name)}">{_e(label("report_link", lang))}</a>'
    elif c.notebook is not None:
        link = f'<a href="{_e(c.county_code)}/{_e(c.notebook.name)}">{_e(label("batch_partial_notebook", lang))}</a>'
    else:
        link = "—"
    if c.status in ("ok", "failed"):
        status = label("status_ok" if c.status == "ok" else "status_failed", lang)
    else:  # an interrupted batch did not reach this county
        status = label("batch_not_run", lang)
    if c.status in ("ok", "failed") and not c.current:
        status = f"{status} {label('batch_not_current', lang)}"
    county = (label("runner_whole_province", lang) if c.county_code == PROVINCE
              else text("runner_county_with_code", lang, name=c.county_name, code=c.county_code))
    return (f'<tr class="{_e(c.status)}"><td>{_e(county)}</td><td>{_e(status)}</td>'
            f'<td>{_e(verdict_word(c.verdict, lang))}</td><td class="num">{c.duration_s:.1f}</td>'
            f'<td>{link}</td><td>{_e(c.error or "")}</td></tr>')


def write_index(path: Path, counties: Sequence[CountyResult], notebook: Path, lang: str) -> Path:
    """``OUT/index.html``: counts, then one row per county (status, verdict, duration, link, error)."""
    n_ok = sum(c.status == "ok" for c in counties)
    counts = _counts(len(counties), n_ok, len(counties) - n_ok, sum(c.reused for c in counties), lang)
    heads = "".join(f"<th>{_e(label(k, lang))}</th>"
                    for k in ("county", "status", "verdict", "duration_s", "report_link", "batch_error"))
    rows = "\n".join(_row(c, lang) for c in sorted(counties, key=lambda c: c.county_code))
    body = (f"<p>{_e(label('batch_notebook', lang))}: <code>{_e(notebook.name)}</code></p>\n"
            f"<p>{_e(counts)}</p>\n<table>\n<thead><tr>{heads}</tr></thead>\n<tbody>\n{rows}\n</tbody>\n</table>")
    return _write(path, _page(label("batch_index_title", lang), body, lang))


def write_demo_index(out: str | Path, *results: BatchResult) -> Path:
    """``OUT/index.html`` over several batches (the demo): one section per batch with its counts
    and a link to its own index (or, for a single run, straight to its report)."""
    out = Path(out).resolve()
    lang = results[0].lang if results else "zh"
    parts = []
    for r in results:
        stem = r.notebook.stem if r.notebook else r.out.name
        title = label(DEMO_TITLES[stem], lang) if stem in DEMO_TITLES else stem
        counts = _counts(len(r.counties), r.n_ok, r.n_failed, r.n_reused, lang)
        one = r.counties[0] if len(r.counties) == 1 else None
        target = one.html if one is not None and one.html is not None else r.index
        href = os.path.relpath(target, out)
        parts.append(f'<h2><a href="{_e(href)}">{_e(title)}</a></h2>\n<p>{_e(counts)}</p>')
    return _write(out / "index.html", _page(label("demo_index_title", lang), "\n".join(parts), lang))
