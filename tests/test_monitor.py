"""Monitoring run (evalkit.workflows.monitoring): county selection, validated input with notes, honest model
choice, the refit, case closure, and results.json."""
from __future__ import annotations

import dataclasses
import json
import math
import shutil
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from evalkit import risk, synth
from evalkit.config import load_policy
from evalkit.data import dataset_fingerprint, select_counties
from evalkit.errors import InputError, ParameterError, RiskModelError
from evalkit.report.risk import closure_table, closure_text, stability_table
from evalkit.text import label, render_notes
from evalkit.workflows import monitoring

ROOT = Path(__file__).resolve().parents[1]
COUNTIES = ["610627", "610631", "610632"]
POL = load_policy()


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("monitor_small")
    return synth.generate("demo", seed=3, out=out, scale=0.05, counties=COUNTIES, field_survey=False, policy=POL)


@pytest.fixture(scope="module")
def run(small):
    return monitoring.run_monitoring(small, policy=POL)


@pytest.fixture(scope="module")
def corrupted(small, tmp_path_factory):
    """The small dataset with one household of 610631 of size -2 and one panel row of 610632 in year 1890."""
    out = tmp_path_factory.mktemp("monitor_bad") / "data"
    shutil.copytree(small, out)
    f = out / "households" / "610631.parquet"
    d = pd.read_parquet(f)
    bad_hh = str(d.loc[0, "household_id"])
    d.loc[0, "household_size"] = -2
    d.to_parquet(f, index=False)
    f = out / "panel" / "610632.parquet"
    d = pd.read_parquet(f)
    d.loc[5, "year"] = 1890
    d.to_parquet(f, index=False)
    return out, bad_hh


# ---------------------------------------------------------------------------------------------
# 1. counties
# ---------------------------------------------------------------------------------------------
_TABLE = pd.DataFrame({"county_code": ["610631", "610632", "610627"], "county_name": ["黄龙县", "黄陵县", "甘泉县"]})
_ALL = ["610627", "610631", "610632"]


@pytest.mark.parametrize("given, expected", [
    ("all", _ALL), (None, _ALL), ("", _ALL), ("ALL", _ALL), (["all"], _ALL),
    ("610631", ["610631"]), ("610631,610632", ["610631", "610632"]), (" 610631 , 610632 ,", ["610631", "610632"]),
    (["610631", "610632"], ["610631", "610632"]), (("610631",), ["610631"]), ([610631], ["610631"]),
    (610631, ["610631"]), ('["610631", "610632"]', ["610631", "610632"]), ("610631,610631", ["610631"]),
    ("甘泉县", ["610627"]), ("甘泉县,610631", ["610627", "610631"]),
])
def test_county_selection(given, expected):
    """The selections a monitoring run accepts (resolved by evalkit.data.select_counties)."""
    assert select_counties(_TABLE, given) == expected


@pytest.mark.parametrize("bad", ["6", "61063", "610631;610632", ["6", "1"], "[610631", {"a": 1}])
def test_county_selection_rejects(bad):
    with pytest.raises(ParameterError):
        select_counties(_TABLE, bad)


def test_counties_string_selects_those_counties(small, tmp_path):
    one = monitoring.run_monitoring(small, counties="610631", policy=POL)  # used to split into characters
    assert set(one.warnings["county_code"]) == {"610631"}
    assert set(one.validation.by_county["county_code"]) == {"610631"}
    two = monitoring.run_monitoring(small, counties="610631,610632", policy=POL)
    assert set(two.validation.by_county["county_code"]) == {"610631", "610632"}
    lst = monitoring.run_monitoring(small, counties=["610631", "610632"], policy=POL)
    pd.testing.assert_frame_equal(two.validation.metrics.drop(columns="fit_seconds"),
                                  lst.validation.metrics.drop(columns="fit_seconds"))
    res = two.results()
    assert res["counties"] == ["610631", "610632"]
    # one county: the spread across counties is undefined and shown as '—', never NaN
    tab = stability_table(one.validation.stability, "en")
    assert not tab.isna().any().any() and (tab["SD"] == "—").all()
    monitoring.write_outputs(one, tmp_path / "one")
    assert "NaN" not in (tmp_path / "one" / "results.json").read_text(encoding="utf-8")


def test_data_fingerprint_matches_the_files(run, small):
    """results.json ``data_sha256`` is what the roll-up recomputes from the files (rollup.collect_risk_shares)."""
    assert run.data_sha256 == dataset_fingerprint(small, monitoring.DATA_TABLES)


def test_unknown_county_is_a_clear_error(small):
    with pytest.raises(ParameterError, match=r"610699.*neither a code nor a name"):
        monitoring.run_monitoring(small, counties="610631,610699", policy=POL)


# ---------------------------------------------------------------------------------------------
# 2. validated input: quarantined rows are a note and a file, an unreadable input an error
# ---------------------------------------------------------------------------------------------
def test_quarantined_rows_are_noted_and_written(corrupted, tmp_path):
    data, bad_hh = corrupted
    r = monitoring.run_monitoring(data, policy=POL)
    assert r.quarantined_rows["households"] == 1 and r.quarantined_rows["panel"] >= 1
    en = render_notes(r.notes, "en")
    assert any("1 row of table households quarantined" in n and "quarantine/" in n for n in en)
    assert any("rows of table panel quarantined" in n for n in en)
    zh = render_notes(r.notes, "zh")
    assert len(zh) == len(en) and any("households 表有 1 行未通过校验" in n for n in zh)
    assert bad_hh not in set(r.features["household_id"]) and bad_hh not in set(r.labels["household_id"])
    assert 1890 not in set(r.features["year"])
    paths = monitoring.write_outputs(r, tmp_path / "out")
    q = tmp_path / "out" / "quarantine"
    assert paths["quarantine"] == q
    hq = pd.read_csv(q / "households.quarantine.csv", dtype=str)
    assert len(hq) == 1 and hq.loc[0, "household_id"] == bad_hh
    assert "household size" in hq.loc[0, "_reasons"]
    assert (q / "panel.quarantine.csv").exists() and (q / "validation_report.csv").exists()
    res = json.loads((tmp_path / "out" / "results.json").read_text(encoding="utf-8"))
    assert res["notes"] == zh and res["quarantined_rows"]["households"] == 1
    # a later clean run into the same folder leaves no stale quarantine behind
    clean = monitoring.run_monitoring(data, counties="610627", policy=POL)  # the corrupted rows are in other counties
    assert clean.notes == [] and clean.quarantined_rows == {}
    monitoring.write_outputs(clean, tmp_path / "out")
    assert not q.exists()
    assert json.loads((tmp_path / "out" / "results.json").read_text(encoding="utf-8"))["notes"] == []


def test_unreadable_input_raises(small, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(small, data)
    (data / "panel" / "610631.parquet").write_bytes(b"not a parquet file")
    with pytest.raises(InputError, match="cannot be read"):
        monitoring.run_monitoring(data, policy=POL)


# ---------------------------------------------------------------------------------------------
# 3. honest model choice; 4. the refit is the validated model
# ---------------------------------------------------------------------------------------------
def test_model_chosen_on_an_earlier_year(run, tmp_path):
    assert run.selection_year is not None and run.selection_year < run.test_year
    assert run.selection_year == max(run.train_years)
    sm = run.selection.set_index("model")
    assert (sm["train_end"] < run.selection_year).all() and (sm["test_year"] == run.selection_year).all()
    cand = sm.drop(index="rule")["recall_at_k"]
    assert run.best_model == cand.idxmax()
    paths = monitoring.write_outputs(run, tmp_path)
    res = json.loads(paths["results"].read_text(encoding="utf-8"))
    assert res["best_model"] == run.best_model and res["selection_year"] == run.selection_year
    assert res["selection_year"] < res["test_year"]
    assert {"test_year", "models", "rule_baseline", "capacity_k", "best_model", "selection_year", "notes",
            "closed_cases", "open_cases", "data_sha256", "evalkit_version"} <= set(res)
    assert res["models"] == ["logit", "boosting", "vulnerability"]
    tm = run.validation.metrics.set_index("model")
    for m in res["models"]:  # every model is reported on the test year, not only the chosen one
        assert res[m]["recall_at_k"] == pytest.approx(tm.loc[m, "recall_at_k"])
    assert res["selection_recall_at_k"][run.best_model] == pytest.approx(cand.max())
    assert "paths" not in res and "quarantine" not in paths


def test_one_training_year_falls_back_to_logit(small):
    # boosting calibrates on a later training year: it needs two (the test-year run says so)
    with pytest.raises(RiskModelError, match="BoostingModel needs more than 1"):
        monitoring.run_monitoring(small, train_years=[2023], test_year=2024, policy=POL)
    r = monitoring.run_monitoring(small, train_years=[2023], test_year=2024, models=["logit", "vulnerability"],
                                  policy=POL)
    assert r.best_model == "logit" and r.selection_year is None and r.selection is None
    en = render_notes(r.notes, "en")
    assert any("no earlier year" in n and label("model_logit", "en") in n for n in en)
    res = r.results("en")
    assert res["selection_year"] is None and "selection_recall_at_k" not in res and res["notes"] == en


def test_model_that_cannot_fit_the_selection_window_is_no_candidate(small):
    r = monitoring.run_monitoring(small, train_years=[2022, 2023], test_year=2024, policy=POL)
    assert r.selection_year == 2023 and r.best_model in ("logit", "vulnerability")
    assert set(r.selection["model"]) == {"rule", "logit", "vulnerability"}
    boosting = label("model_boosting", "en")
    assert any(n.startswith(f"{boosting} cannot be fitted on 2022-2022") for n in render_notes(r.notes, "en"))
    assert set(r.results()["models"]) == {"logit", "boosting", "vulnerability"}  # all reported on the test year


def test_refit_uses_the_validated_fit(small):
    """The current list is scored by the model fitted as out_of_time fits it (with ``outcome``)."""
    r = monitoring.run_monitoring(small, models=["vulnerability"], policy=POL)
    assert r.best_model == "vulnerability"
    data = risk.labelled_frame(r.labels, r.features)
    m = risk.fit_model(risk.default_models()["vulnerability"], data, r.features.columns)
    cur = r.features.merge(r.warnings[["household_id", "year", "score"]], on=["household_id", "year"])
    np.testing.assert_allclose(m.predict_proba(cur[list(r.features.columns)])[:, 1], cur["score"], rtol=1e-10)
    # the hand refit it replaces (fit(X, y) without outcome) is a different model
    cross = risk.default_models()["vulnerability"].fit(data[list(r.features.columns)], data["label"].to_numpy())
    assert not np.allclose(cross.predict_proba(cur[list(r.features.columns)])[:, 1], cur["score"])


# ---------------------------------------------------------------------------------------------
# 5. case closure; 6. NaN never reaches results.json
# ---------------------------------------------------------------------------------------------
def test_case_closure_summary(run, small):
    panel = pd.read_parquet(Path(small) / "panel")
    c = risk.case_closure(panel, POL)
    assert len(run.closure) == len(c) and (run.closure["status"].value_counts() == c["status"].value_counts()).all()
    cy = run.closure_by_year()
    assert {"opened", "cleared", "open"} == set(cy.columns) and run.score_year in cy.index
    assert cy["opened"].sum() == len(c) and cy["cleared"].sum() == int(c["cleared"].sum())
    # open at the end of a year = opened so far - cleared so far
    assert (cy["open"] == cy["opened"].cumsum() - cy["cleared"].cumsum()).all()
    res = run.results()
    y = run.score_year
    assert res["closed_cases"] == int((c["closure_year"] == y).sum())
    assert res["open_cases"] == int(((c["opened"] <= y) & c["closure_year"].isna()).sum()
                                    + ((c["opened"] <= y) & (c["closure_year"] > y)).fillna(False).sum())
    assert res["open_cases"] == int(cy.loc[y, "open"]) > 0
    assert str(res["closed_cases"]) in closure_text(cy, y, POL, "zh") and "cleared" in closure_text(cy, y, POL, "en")
    assert list(closure_table(cy, "zh").columns) == ["新纳入监测", "当年销号", "年末仍在监测"]


def test_nan_metric_is_named(run):
    met = run.validation.metrics.copy()
    met.loc[met["model"] == "boosting", "auc"] = math.nan
    bad = dataclasses.replace(run, validation=dataclasses.replace(run.validation, metrics=met))
    with pytest.raises(RiskModelError, match=r"'roc_auc' of model 'boosting'"):
        bad.results()


@pytest.mark.slow
def test_risk_notebook_shows_notes_and_closure(corrupted, tmp_path):
    import papermill as pm

    data, _ = corrupted
    out = tmp_path / "out"
    pm.execute_notebook(str(ROOT / "notebooks" / "return_to_poverty_risk.ipynb"), str(tmp_path / "run.ipynb"),
                        parameters={"data_dir": str(data), "output_dir": str(out), "counties": "610631,610632",
                                    "lang": "en"},
                        cwd=str(ROOT / "notebooks"), progress_bar=False, kernel_name="python3")
    nb = nbformat.read(tmp_path / "run.ipynb", as_version=4)
    shown = "\n".join(o.get("text", "") + "".join(str(o.get("data", {}).get(k, ""))
                                                  for k in ("text/plain", "text/html", "text/markdown"))
                      for c in nb.cells if c.cell_type == "code"
                      for o in c.get("outputs", []))
    assert "1 row of table households quarantined" in shown
    assert "8. Case closure" in shown and "was chosen" in shown
    assert "NaN" not in shown and "nan%" not in shown
    res = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert res["counties"] == ["610631", "610632"] and res["notes"]
    assert (out / "quarantine" / "households.quarantine.csv").exists()
