"""PDFs of a run's reports through headless Chromium (optional: the HTML reports need nothing)."""
from __future__ import annotations

from pathlib import Path

from evalkit.runner.chromium import Browser, find_chromium
from evalkit.text import text

__all__ = ["report_pages", "export_pdfs", "PDF_DIR"]

#: Folder of a run (or of the demo) that holds the PDFs: outside every county's run directory,
#: whose files ``--resume`` and ``verify`` check.
PDF_DIR = "pdf"


def report_pages(out: str | Path) -> list[Path]:
    """The report pages under ``out`` (every ``.html`` but the index pages and the PDF folder)."""
    root = Path(out)
    return sorted(p for p in root.rglob("*.html")
                  if p.name != "index.html" and PDF_DIR not in p.relative_to(root).parts[:1]
                  and not any(part.startswith(".tmp-") for part in p.relative_to(root).parts))


def export_pdfs(out: str | Path, lang: str = "zh") -> list[str]:
    """Print every report page under ``out`` to ``out/pdf/<path_with_underscores>.pdf`` (A4, the
    reports' print style); returns the lines to print (one when Chromium is missing)."""
    if find_chromium() is None:
        return [text("pdf_no_chromium", lang)]
    root = Path(out)
    dest = root / PDF_DIR
    dest.mkdir(parents=True, exist_ok=True)
    lines = []
    with Browser() as b:
        for page in report_pages(root):
            name = "_".join(page.relative_to(root).with_suffix(".pdf").parts)
            b.open(page.resolve().as_uri())
            lines.append(text("pdf_written", lang, path=b.pdf(dest / name)))
    return lines
