"""The ``index.html`` pages of a batch run and of the demo (every word from :mod:`evalkit.text`)."""
from __future__ import annotations

import html
import os
from collections.abc import Sequence
from pathlib import Path

from evalkit.outputs import atomic_path
from evalkit.report import style
from evalkit.runner.page import first_image, nav_html
from evalkit.runner.plan import PROVINCE
from evalkit.runner.results import BatchResult, CountyResult
from evalkit.text import LANGS, label, text

__all__ = ["write_index", "write_demo_index", "verdict_word", "verdict_both", "DEMO_TITLES"]

#: Section titles of the demo index by notebook stem (label keys).
DEMO_TITLES = {"county_exit_assessment": "title_county_exit", "return_to_poverty_risk": "title_risk",
               "province_rollup": "title_province", "village_assessment": "title_village",
               "monthly_check": "title_monthly", "quarterly_report": "title_quarterly"}
_e = html.escape


def verdict_word(v: str | None, lang: str) -> str:
    """The verdict ('pass', 'fail', 'borderline') in words; other values as they are, '—' for none."""
    if not v:
        return "—"
    try:
        return label(f"verdict_{v}", lang)
    except KeyError:
        return v


def verdict_both(v: str | None, lang: str) -> str:
    """The verdict in both languages, ``lang`` first (``通过 / pass``): the terminal is read by both."""
    other = next(x for x in LANGS if x != lang)
    a, b = verdict_word(v, lang), verdict_word(v, other)
    return a if a == b else f"{a} / {b}"


def _page(title: str, body: str, lang: str, up: str | None = None) -> str:
    nav = nav_html([(up, label("nav_top", lang))]) if up else ""
    return f"""<!DOCTYPE html>
<html lang="{_e(label("runner_html_lang", lang))}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title>
{style.css_tag()}
</head>
<body>
<div class="evalkit-page">
{nav}<h1>{_e(title)}</h1>
{body}
</div>
</body>
</html>
"""


def _write(path: Path, doc: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(doc, encoding="utf-8")
    return path


def _counts(n: int, ok: int, failed: int, reused: int, lang: str) -> str:
    return text("batch_counts", lang, n=n, ok=ok, failed=failed, reused=reused)


def _files(c: CountyResult) -> str:
    """Links to the ledgers and tables a run wrote (.xlsx, .csv), by file name."""
    if c.status != "ok" or not c.out_dir.is_dir():
        return ""
    fs = sorted(f for f in c.out_dir.iterdir() if f.suffix.lower() in (".xlsx", ".csv") and f.is_file())
    return " ".join(f'<a href="{_e(c.county_code)}/{_e(f.name)}">{_e(f.name)}</a>' for f in fs)


def _exit_cells(c: CountyResult, lang: str) -> str:
    """Official verdict and the comprehensive incidence with its CI (as the terminal prints them)."""
    ex = c.exit_result
    if ex is None:
        return "<td>—</td><td>—</td>"
    k = ex.criteria.get("comprehensive_poverty_rate")
    ci = style.ci(k.est, k.lci, k.uci, 2) if k is not None else "—"
    return (f'<td class="verdict-{_e(ex.official)}">{_e(verdict_word(ex.official, lang))}</td>'
            f'<td class="num">{_e(ci)}</td>')


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
            f'<td class="verdict-{_e(c.verdict or "")}">{_e(verdict_word(c.verdict, lang))}</td>'
            f'{_exit_cells(c, lang)}<td class="num">{c.duration_s:.1f}</td>'
            f'<td>{link}</td><td>{_files(c)}</td><td>{_e(c.error or "")}</td></tr>')


def write_index(path: Path, counties: Sequence[CountyResult], notebook: Path, lang: str,
                up: str | None = None) -> Path:
    """``OUT/index.html``: counts, then one row per county (status, both verdicts, the
    comprehensive incidence with its CI, duration, report, ledgers, error); links to
    ``summary.csv`` and ``manifest.json``; ``up`` links to a parent index (the demo's)."""
    n_ok = sum(c.status == "ok" for c in counties)
    counts = _counts(len(counties), n_ok, len(counties) - n_ok, sum(c.reused for c in counties), lang)
    heads = "".join(f"<th>{_e(label(k, lang))}</th>"
                    for k in ("county", "status", "decision_overall", "decision_official", "index_incidence",
                              "duration_s", "report_link", "index_files", "batch_error"))
    rows = "\n".join(_row(c, lang) for c in sorted(counties, key=lambda c: c.county_code))
    run_files = " ".join(f'<a href="{f}">{f}</a>' for f in ("summary.csv", "manifest.json"))
    body = (f"<p>{_e(label('batch_notebook', lang))}: <code>{_e(notebook.name)}</code></p>\n"
            f"<p>{_e(counts)}</p>\n<table>\n<thead><tr>{heads}</tr></thead>\n<tbody>\n{rows}\n</tbody>\n</table>\n"
            f"<p>{_e(label('index_run_files', lang))}: {run_files}</p>")
    return _write(path, _page(label("batch_index_title", lang), body, lang, up))


def _link(target: Path, out: Path, text_: str) -> str:
    return f'<a href="{_e(os.path.relpath(target, out))}">{_e(text_)}</a>'


def _exit_table(r: BatchResult, out: Path, lang: str) -> str:
    """Both verdicts and the four criteria with CIs, one row per county, report and ledger links."""
    from evalkit.assessment.result import CRITERIA

    rows = []
    for c in sorted(r.counties, key=lambda c: c.county_code):
        ex = c.exit_result
        name = text("runner_county_with_code", lang, name=c.county_name, code=c.county_code)
        if ex is None:
            rows.append(f'<tr class="failed"><td>{_e(name)}</td><td colspan="{len(CRITERIA) + 4}">'
                        f'{_e(label("no_result", lang))}</td></tr>')
            continue
        crit = "".join(f'<td class="num verdict-{_e(ex.criteria[k].verdict)}">'
                       f'{_e(style.ci(ex.criteria[k].est, ex.criteria[k].lci, ex.criteria[k].uci, 2))}</td>'
                       for k in CRITERIA)
        report = _link(c.html, out, label("report_link", lang)) if c.html else "—"
        files = " ".join(_link(f, out, f.name) for f in sorted(c.out_dir.glob("*.xlsx")))
        rows.append(f'<tr><td>{_e(name)}</td><td class="verdict-{_e(ex.decision)}">'
                    f'{_e(verdict_word(ex.decision, lang))}</td><td class="verdict-{_e(ex.official)}">'
                    f'{_e(verdict_word(ex.official, lang))}</td>{crit}<td>{report}</td><td>{files}</td></tr>')
    heads = "".join(f"<th>{_e(label(k, lang))}</th>" for k in
                    ("county", "decision_overall", "decision_official", *CRITERIA, "report_link", "index_ledgers"))
    return f"<table>\n<thead><tr>{heads}</tr></thead>\n<tbody>\n" + "\n".join(rows) + "\n</tbody>\n</table>"


def _verdict_cards(r: BatchResult, lang: str) -> str:
    exs = [c.exit_result for c in r.counties if c.exit_result is not None]
    cards = []
    for key, attr, kinds in (("decision_overall", "decision", ("pass", "borderline", "fail")),
                             ("decision_official", "official", ("pass", "fail"))):
        n = {k: sum(getattr(e, attr) == k for e in exs) for k in kinds}
        parts = " · ".join(f'<span class="verdict-{k}">{_e(verdict_word(k, lang))} {n[k]}</span>' for k in kinds)
        cards.append(f'<div class="card"><div>{_e(label(key, lang))}</div><div class="big">{parts}</div></div>')
    return '<div class="cards">' + "".join(cards) + "</div>"


def _section(r: BatchResult, out: Path, lang: str) -> str:
    stem = r.notebook.stem if r.notebook else r.out.name
    title = label(DEMO_TITLES[stem], lang) if stem in DEMO_TITLES else stem
    counts = _counts(len(r.counties), r.n_ok, r.n_failed, r.n_reused, lang)
    one = r.counties[0] if len(r.counties) == 1 else None
    target = one.html if one is not None and one.html is not None else r.index
    parts = [f"<h2>{_link(target, out, title)}</h2>", f"<p>{_e(counts)}</p>"]
    if any(c.exit_result is not None for c in r.counties):
        parts += [_verdict_cards(r, lang), _exit_table(r, out, lang)]
    elif one is not None and one.status == "ok":
        files = sorted(f for f in one.out_dir.iterdir() if f.suffix.lower() in (".xlsx", ".csv"))
        if files:
            parts.append(f"<p>{_e(label('index_files', lang))}: " + " ".join(_link(f, out, f.name) for f in files)
                         + "</p>")
        img = first_image(one.html.read_text(encoding="utf-8")) if one.html is not None else None
        if img and stem == "province_rollup":  # the maps, as a thumbnail linking to the roll-up
            parts.append(f'<p><a href="{_e(os.path.relpath(one.html, out))}"><img class="thumb" src="{img}" '
                         f'alt="{_e(label("index_map", lang))}"></a></p>')
    links = [_link(r.index, out, label("index_run_index", lang)), _link(r.summary, out, r.summary.name)]
    parts.append(f"<p>{_e(label('index_run_files', lang))}: {' '.join(links)}</p>")
    return "\n".join(parts)


def write_demo_index(out: str | Path, *results: BatchResult) -> Path:
    """``OUT/index.html``, the run's dashboard over several batches (the demo): for the county
    exit batch both verdicts (counts, then per county with the four criteria and their CIs),
    links to every report and ledger; the roll-up with its map as a thumbnail; the risk report
    with its watch list; each batch's own index and ``summary.csv``."""
    out = Path(out).resolve()
    lang = results[0].lang if results else "zh"
    body = "\n".join(_section(r, out, lang) for r in results)
    return _write(out / "index.html", _page(label("demo_index_title", lang), body, lang))
