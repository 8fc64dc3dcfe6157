"""Notebooks: thin (no functions), committed without outputs, and executed through papermill."""
from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pandas as pd
import papermill as pm
import pytest

from evalkit import runner
from evalkit.config import load_policy
from evalkit.runner.demo import notebooks_dir
from evalkit.workflows import county_exit

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
RESULT_KEYS = {"county_code", "county_name", "year", "region", "thresholds", "wrongly_exited_rate",
               "missed_poor_rate", "approval_rate", "comprehensive_poverty_rate", "decision", "data_sha256",
               "evalkit_version"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_thin_and_clean(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert any("parameters" in c.metadata.get("tags", []) for c in code), "no cell tagged 'parameters'"
    for c in code:
        assert not c.get("outputs") and c.get("execution_count") is None, "committed with outputs"
        for line in c.source.splitlines():
            s = line.strip()
            assert not s.startswith(("def ", "class ", "async def ")), f"function defined in {path.name}: {s}"
            assert "lambda" not in s, f"function defined in {path.name}: {s}"
    params = pm.inspect_notebook(str(path))
    assert "lang" in params and params["lang"]["default"].strip("'\"") == "zh"


def test_notebooks_are_package_data():
    """`evalkit demo` finds the notebooks through the package (a wheel carries them), not the checkout."""
    d = notebooks_dir()
    assert sorted(p.name for p in d.glob("*.ipynb")) == [p.name for p in NOTEBOOKS]
    for p in NOTEBOOKS:
        assert (d / p.name).read_bytes() == p.read_bytes()


@pytest.mark.slow
@pytest.mark.parametrize("lang", ["zh", "en"])
def test_county_notebook_runs_through_papermill(small_province, tmp_path, lang):
    out = tmp_path / "out"
    pm.execute_notebook(str(ROOT / "notebooks" / "county_exit_assessment.ipynb"), str(tmp_path / "run.ipynb"),
                        parameters={"county_code": "610631", "data_dir": str(small_province),
                                    "output_dir": str(out), "lang": lang, "oc_reps": 5},
                        cwd=str(ROOT / "notebooks"), progress_bar=False, kernel_name="python3")
    res = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert set(res) == RESULT_KEYS | {"notes"} and isinstance(res["notes"], list)
    for c in ("wrongly_exited_rate", "missed_poor_rate", "approval_rate", "comprehensive_poverty_rate"):
        assert set(res[c]) == {"est", "se", "lci", "uci", "n", "df", "verdict"}
        assert res[c]["lci"] <= res[c]["est"] <= res[c]["uci"]
        assert res[c]["verdict"] in {"pass", "fail", "borderline"}
    assert set(res["decision"]) == {"overall", "official_point_rule"}
    assert res["region"] == "west" and res["thresholds"]["comprehensive_poverty_rate"]["value"] == 0.03
    # the notebook shows exactly what evalkit computes
    a = county_exit.assess_county(small_province, "610631", policy=load_policy())
    assert res["year"] == a.year
    for c, crit in a.result().criteria.items():
        assert res[c]["est"] == pytest.approx(crit.est, rel=1e-12)
    ledger = pd.read_excel(out / "followup.xlsx", dtype=str)  # a 台账: header on row 1
    fill = ["核实结果", "核实人", "核实日期", "整改情况", "备注"] if lang == "zh" else \
        ["Verification result", "Verified by", "Date verified", "Rectification", "Remarks"]
    assert list(ledger.columns[-5:]) == fill
    assert pd.ExcelFile(out / "followup.xlsx").sheet_names == (["核实清单", "汇总", "说明"] if lang == "zh" else
                                                              ["Follow-up list", "Summary", "About"])
    text = ledger.to_string()
    assert not pd.Series(text.split()).str.fullmatch(r"\d{17}[\dX]").any(), "full ID number in the ledger"
    executed = nbformat.read(tmp_path / "run.ipynb", as_version=4)
    shown = "\n".join(o.get("text", "") + "".join(str(o.get("data", {}).get(k, ""))
                                                  for k in ("text/plain", "text/html", "text/markdown"))
                      for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", []))
    heading = "三率一度评估结果" if lang == "zh" else "The four criteria against their thresholds"
    assert heading in shown
    assert "NaN" not in shown and "nan%" not in shown


@pytest.mark.slow
def test_batch_risk_and_rollup_end_to_end(small_province, tmp_path):
    """County batch -> risk notebook -> roll-up: reports without code, Chinese headings, results."""
    nb = ROOT / "notebooks"
    out = tmp_path / "run"
    res = runner.run_batch(nb / "county_exit_assessment.ipynb", data=small_province, counties="all",
                          params={}, workers=2, out=out / "county_exit", progress=False)
    assert res.n_failed == 0 and res.n_ok == 3
    html = (out / "county_exit" / "610631" / "county_exit_assessment.html").read_text(encoding="utf-8")
    assert "三率一度评估结果" in html and "疑似问题核实清单" in html
    assert "county_exit.assess_county" not in html and "load_policy" not in html  # no code cells ...
    assert not re.search(r'class="[^"]*jp-InputArea-editor', html)  # ... and no code editors (CSS aside)
    assert "data:image/png;base64" in html  # the chart is embedded
    rres = runner.run_batch(nb / "return_to_poverty_risk.ipynb", data=small_province, counties="all",
                           params={"capacity_k": 3}, workers=1, out=out / "risk", progress=False)
    assert rres.n_failed == 0
    rj = json.loads(next((out / "risk").rglob("results.json")).read_text(encoding="utf-8"))
    assert {"test_year", "models", "rule_baseline", "capacity_k", "data_sha256", "evalkit_version"} <= set(rj)
    assert rj["models"] == ["logit", "boosting", "vulnerability"]
    for m in ("logit", "boosting", "vulnerability", "rule_baseline"):
        assert set(rj[m]) == {"roc_auc", "pr_auc", "brier", "recall_at_k", "precision_at_k"}
        assert 0 <= rj[m]["recall_at_k"] <= 1 and 0 <= rj[m]["brier"] <= 1
    assert rj["capacity_k"] == 3
    wl = pd.read_excel(next((out / "risk").rglob("watchlist.xlsx")), sheet_name=None, dtype=str)
    text = " ".join(df.to_string() for df in wl.values())
    assert not pd.Series(text.split()).str.fullmatch(r"\d{17}[\dX]").any()
    pres = runner.run_batch(nb / "province_rollup.ipynb", data=small_province, counties="all",
                           params={"run_dir": str(out / "county_exit"), "risk_dir": str(out / "risk")},
                           workers=1, out=out / "province", progress=False)
    assert pres.n_failed == 0
    book = next((out / "province").rglob("province_summary.xlsx"))
    assert pd.ExcelFile(book).sheet_names == ["汇总表", "数据", "汇总", "说明"]  # no English sheet name
    summary = pd.read_excel(book, sheet_name="数据", dtype={"县代码": str})
    assert sorted(summary["县代码"]) == ["610627", "610631", "610632"]
    # the summary carries exactly the county results (numbers as numbers, verdicts in words)
    for code in summary["县代码"]:
        r = json.loads((out / "county_exit" / code / "results.json").read_text(encoding="utf-8"))
        row = summary[summary["县代码"] == code].iloc[0]
        assert row["综合贫困发生率 估计值"] == pytest.approx(r["comprehensive_poverty_rate"]["est"])
        assert row["退出结论（考虑不确定性）"] == {"pass": "通过", "fail": "未通过", "borderline": "临界（不确定）"}[
            r["decision"]["overall"]]
    phtml = next((out / "province").rglob("province_rollup.html")).read_text(encoding="utf-8")
    assert "全省贫困县退出评估汇总" in phtml and phtml.count("data:image/png;base64") >= 2
