"""What the runner adds to every exported report page: the shared style, a header and a way back.

:func:`decorate_report` puts :data:`evalkit.report.style.PAGE_CSS` into the page's ``<head>`` and,
right after ``<body>``, a navigation line (back to the run's ``index.html``) and the header of
:func:`evalkit.report.style.report_header` (county, year, data hash, evalkit version) read from
the run's ``results.json``. Every notebook's report gets them, whoever wrote the notebook.
"""
from __future__ import annotations

import html
import re
from collections.abc import Mapping
from typing import Any

from evalkit.report import style
from evalkit.text import label

__all__ = ["decorate_report", "nav_html", "first_image"]

_REMOTE_SCRIPT = re.compile(r'<script[^>]*\ssrc="https?://[^"]*"[^>]*>\s*</script>', re.S)
_IMG = re.compile(r'src="(data:image/png;base64,[A-Za-z0-9+/=]+)"')


def nav_html(links: list[tuple[str, str]]) -> str:
    """A navigation line of ``(href, text)`` links (hidden when printed)."""
    a = "".join(f'<a href="{html.escape(h)}">{html.escape(t)}</a>' for h, t in links)
    return f'<nav class="evalkit-nav">{a}</nav>'


def decorate_report(page: str, results: Mapping[str, Any] | None, params: Mapping[str, Any] | None,
                    lang: str, index_href: str = "../index.html") -> str:
    """``page`` (nbconvert HTML) with the shared CSS, a link back to the index and the header."""
    # a report is read offline and handed on: no script from a CDN (nbconvert links MathJax and
    # require.js, which the reports do not use and which fail without a network)
    page = _REMOTE_SCRIPT.sub("", page)
    head = style.css_tag()
    page = page.replace("</head>", head + "\n</head>", 1) if "</head>" in page else head + page
    top = nav_html([(index_href, label("nav_index", lang))]) + style.report_header(
        style.header_fields(results, params), lang)
    m = re.search(r"<body[^>]*>", page)
    if m is None:
        return top + page
    return page[:m.end()] + "\n" + f'<div class="evalkit-page">{top}</div>' + page[m.end():]


def first_image(page: str) -> str | None:
    """The first embedded PNG (``data:`` URI) of a report page, e.g. the roll-up's maps."""
    m = _IMG.search(page)
    return m.group(1) if m else None
