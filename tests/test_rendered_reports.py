"""The reports a reader gets (the session's ``rendered_reports``: the county, risk and roll-up reports
of one county with the dashboard, in Chinese and in English), tested as text and in a real browser.

One text source, both languages: every report rendered in Chinese holds no English developer text,
and in English no Chinese, place names, masked names, codes and file names aside (the visible text
of each page is scanned).

In a real browser: headless Chromium loads the dashboard, a county report, the risk report and the
roll-up and finds no broken link or image, no console error, no failed request; Chinese glyphs render
(not missing-glyph boxes). Screenshots go to ``reports/browser/`` for a person to look at; a PDF is
printed. Without Chromium these tests skip on a developer's machine, but fail under CI (``CI=true``):
``.ci/run`` installs Debian's ``chromium`` and ``fonts-noto-cjk`` there. Both halves live in one
module so that the rendering runs once even when pytest spreads modules over workers.
"""
from __future__ import annotations

import io
import os
import re
from pathlib import Path
from urllib.parse import unquote, urlparse

import pandas as pd
import pytest
from bs4 import BeautifulSoup

from evalkit.report.style import PAGE_CSS
from evalkit.runner.chromium import Browser, find_chromium, print_pdf

# Latin tokens a Chinese report may hold: method names, units, file names and symbols of formulas.
ZH_ALLOWED = {"Korn", "Graubard", "Wald", "P/R", "ROC", "AUC", "PR", "PR-AUC", "Brier", "FGLS", "evalkit"}
# file names and hex digests (the data hash in each report header)
_FILE = re.compile(r"\S+\.(xlsx|json|csv|html|ipynb)\b|quarantine/|\b[0-9a-f]{12,64}\b")

pytestmark = pytest.mark.slow


def _visible_text(html: str) -> str:
    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["style", "script", "img", "head"]):
        tag.decompose()
    return soup.get_text(" ")


def _place_names(data: Path) -> set[str]:
    c = pd.read_parquet(data / "counties.parquet")
    v = pd.read_parquet(data / "villages.parquet")
    return {str(n) for n in (*c["county_name"], *v["village_name"], *v["township_name"]) if isinstance(n, str)}


@pytest.fixture(scope="module")
def pages(rendered_reports) -> dict[str, dict[str, str]]:
    """Visible text of every page of the session's rendered reports (conftest ``rendered_reports``)."""
    got: dict[str, dict[str, str]] = {}
    for lang, run in rendered_reports.items():
        got[lang] = {str(p.relative_to(run)): _visible_text(p.read_text(encoding="utf-8"))
                     for p in sorted(run.rglob("*.html"))}
        # three reports, the three runs' index pages and the dashboard over them
        assert len(got[lang]) == 7, sorted(got[lang])
    return got


def test_chinese_reports_hold_no_english_developer_text(pages):
    for name, txt in pages["zh"].items():
        words = set(re.findall(r"[A-Za-z][A-Za-z_/\-]*[A-Za-z]", _FILE.sub(" ", txt)))
        stray = sorted(words - ZH_ALLOWED)
        assert not stray, f"{name}: English words in the Chinese report: {stray[:30]}"
        assert re.search("三率一度|返贫|汇总|索引", txt), name  # the page is the Chinese one


def test_english_reports_hold_no_chinese_beyond_names(pages, small_province):
    names = sorted(_place_names(small_province), key=len, reverse=True)
    for name, txt in pages["en"].items():
        for n in names:  # longest first, so a village name is removed before its county's
            txt = txt.replace(n, " ")
        txt = re.sub(r"[\u4e00-\u9fff]\*+[\u4e00-\u9fff]?", " ", txt)  # masked personal names: 王*, 王*明
        han = re.findall(r"[\u4e00-\u9fff\u3000-\u303f\uff00-\uffef]+", txt)
        assert not han, f"{name}: Chinese text in the English report: {sorted(set(han))[:30]}"


def test_the_dashboard_shows_both_verdicts_the_criteria_and_links_every_ledger(rendered_reports):
    import json

    run = rendered_reports["zh"]
    page = (run / "index.html").read_text(encoding="utf-8")
    res = json.loads((run / "county_exit" / "610631" / "results.json").read_text(encoding="utf-8"))
    words = {"pass": "通过", "fail": "未通过", "borderline": "临界（不确定）"}
    assert "退出结论（考虑不确定性）" in page and "退出结论（官方点估计规则）" in page
    row = page.split("黄龙县（610631）", 1)[1].split("</tr>", 1)[0]
    assert words[res["decision"]["overall"]] in row and words[res["decision"]["official_point_rule"]] in row
    for crit in ("wrongly_exited_rate", "missed_poor_rate", "approval_rate", "comprehensive_poverty_rate"):
        c = res[crit]  # the estimate and its interval, as percentages with two decimals
        assert f"{100 * c['est']:.2f}% [{100 * c['lci']:.2f}%, {100 * c['uci']:.2f}%]" in row
    for f in ("county_exit/610631/followup.xlsx", "risk/province/watchlist.xlsx",
              "province/province/province_summary.xlsx", "county_exit/summary.csv"):
        assert f'href="{f}"' in page and (run / f).exists()
    assert 'class="thumb" src="data:image/png;base64,' in page  # the maps, as a thumbnail
    county_index = (run / "county_exit" / "index.html").read_text(encoding="utf-8")
    inc = res["comprehensive_poverty_rate"]  # the county index: official verdict and incidence with CI
    assert f"{100 * inc['est']:.2f}% [{100 * inc['lci']:.2f}%, {100 * inc['uci']:.2f}%]" in county_index
    assert 'href="../index.html"' in county_index and 'href="610631/followup.xlsx"' in county_index


# ---------------------------------------------------------------------------------------------
# In a real browser
ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "reports" / "browser"
PAGES = {"index": "index.html", "county": "county_exit/610631/county_exit_assessment.html",
         "risk": "risk/province/return_to_poverty_risk.html", "rollup": "province/province/province_rollup.html"}



@pytest.fixture(scope="module")
def browser():
    if find_chromium() is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("Chromium is missing under CI: .ci/run installs chromium and fonts-noto-cjk")
        pytest.skip("Chromium is not installed (apt-get install chromium fonts-noto-cjk)")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with Browser(width=1280, height=900) as b:
        yield b


def _local_target(href: str) -> Path | None:
    u = urlparse(href)
    return Path(unquote(u.path)) if u.scheme == "file" else None


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_pages_load_cleanly_and_every_link_resolves(browser, rendered_reports, lang):
    run = rendered_reports[lang]
    for name, rel in PAGES.items():
        page = run / rel
        rep = browser.open(page.as_uri())
        assert rep["console"] == [], f"{lang} {name}: console errors {rep['console']}"
        assert rep["exceptions"] == [] and rep["failed"] == [], f"{lang} {name}: {rep}"
        assert rep["broken_images"] == [], f"{lang} {name}: images that did not load {rep['broken_images']}"
        links = browser.evaluate("Array.from(document.querySelectorAll('a[href]')).map(a => a.href)")
        assert links, f"{lang} {name}: no link (every page links to the index or to the reports)"
        for href in links:
            target = _local_target(href)
            assert target is not None, f"{lang} {name}: link leaves the run: {href}"
            assert target.exists(), f"{lang} {name}: broken link {href}"
        if name != "index":  # every report links back to its run's index
            assert any(h.endswith("/index.html") for h in links), f"{lang} {name}: no link back to the index"
        imgs = browser.evaluate("document.images.length")
        assert imgs >= (1 if name in ("index", "rollup", "county") else 0)
        browser.screenshot(SHOTS / f"{lang}_{name}.png")


def _pixels(png: bytes) -> tuple[bytes, int]:
    import numpy as np
    from PIL import Image

    im = Image.open(io.BytesIO(png)).convert("L")
    return im.tobytes(), int((np.asarray(im) < 128).sum())


def test_chinese_glyphs_render_not_missing_glyph_boxes(browser, tmp_path):
    """A known character, another known character and an unassigned code point (the font's
    missing-glyph box), each in the reports' font stack: the two characters must differ from the
    box and from each other (boxes would all be alike) and have ink."""
    cells = {"pin": "贫", "xian": "县", "box": "\ue000"}  # private use: no font has it, drawn as the box
    spans = "".join(f'<div id="{k}" class="g">{v}</div>' for k, v in cells.items())
    page = tmp_path / "glyphs.html"
    page.write_text(f"<!DOCTYPE html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><style>{PAGE_CSS}"
                    ".g {{ font-size: 64px; width: 80px; height: 80px; line-height: 80px; margin: 8px; }}"
                    f"</style></head><body>{spans}</body></html>".replace("{{", "{").replace("}}", "}"),
                    encoding="utf-8")
    rep = browser.open(page.as_uri())
    assert rep["console"] == []
    shots = {}
    for k in cells:
        box = browser.evaluate(f"(() => {{ const r = document.getElementById('{k}').getBoundingClientRect();"
                               " return [r.x, r.y, r.width, r.height]; })()")
        path = browser.screenshot(SHOTS / f"glyph_{k}.png", full_page=False,
                                  clip={"x": box[0], "y": box[1], "width": box[2], "height": box[3]})
        shots[k] = _pixels(path.read_bytes())
    assert shots["pin"][1] > 50 and shots["xian"][1] > 50, "a CJK character rendered without ink"
    assert shots["box"][1] > 50, "the missing-glyph box did not render: the comparison would prove nothing"
    assert shots["pin"][0] != shots["box"][0], "贫 renders as the missing-glyph box: no CJK font"
    assert shots["xian"][0] != shots["box"][0], "县 renders as the missing-glyph box: no CJK font"
    assert shots["pin"][0] != shots["xian"][0], "two different characters render alike (boxes)"
    # the family the reports ask for is the one that drew them
    fam = browser.evaluate("getComputedStyle(document.getElementById('pin')).fontFamily")
    assert "Noto Sans CJK SC" in fam


def test_a_report_prints_to_pdf(browser, rendered_reports, tmp_path):
    pdf = print_pdf([rendered_reports["zh"] / PAGES["county"]], tmp_path)[0]
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF") and len(data) > 20_000
