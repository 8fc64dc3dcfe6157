"""One text source, both languages: every report rendered in Chinese holds no English developer text,
and in English no Chinese, place names, masked names, codes and file names aside.

The three notebooks are run through the batch runner (the HTML a reader gets, without code) for one
county in each language; the visible text of each page is scanned.
"""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from bs4 import BeautifulSoup

from evalkit import runner

ROOT = Path(__file__).resolve().parents[1]
NB = ROOT / "notebooks"
COUNTY = "610631"
# Latin tokens a Chinese report may hold: method names, units, file names and symbols of formulas.
ZH_ALLOWED = {"Korn", "Graubard", "Wald", "P/R", "ROC", "AUC", "PR", "PR-AUC", "Brier", "FGLS"}
_FILE = re.compile(r"\S+\.(xlsx|json|csv|html|ipynb)\b|quarantine/")

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
def pages(small_province, tmp_path_factory) -> dict[str, dict[str, str]]:
    out = tmp_path_factory.mktemp("language")
    got: dict[str, dict[str, str]] = {}
    for lang in ("zh", "en"):
        run = out / lang
        r1 = runner.run_batch(NB / "county_exit_assessment.ipynb", data=small_province, counties=COUNTY,
                              params={"lang": lang, "oc_reps": 3}, workers=1, out=run / "county_exit",
                              progress=False)
        r2 = runner.run_batch(NB / "return_to_poverty_risk.ipynb", data=small_province, counties="all",
                              params={"lang": lang, "capacity_k": 3}, workers=1, out=run / "risk", progress=False)
        r3 = runner.run_batch(NB / "province_rollup.ipynb", data=small_province, counties="all",
                              params={"lang": lang, "run_dir": str(run / "county_exit"),
                                      "risk_dir": str(run / "risk")}, workers=1, out=run / "province",
                              progress=False)
        assert r1.n_failed == r2.n_failed == r3.n_failed == 0
        got[lang] = {str(p.relative_to(run)): _visible_text(p.read_text(encoding="utf-8"))
                     for p in sorted(run.rglob("*.html"))}
        assert len(got[lang]) == 6  # three reports and the three runs' index pages
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
