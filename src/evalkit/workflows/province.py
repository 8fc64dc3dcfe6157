"""The province roll-up as one call: every county's exit result of a batch run, and the red-flag shares.

The roll-up notebook calls :func:`rollup` and displays what it returns with
:mod:`evalkit.report.province`; :func:`write_outputs` writes ``province_summary.xlsx`` and
``results.json``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from evalkit.assessment import CRITERIA, ExitResult
from evalkit.data import dataset_fingerprint
from evalkit.errors import InputError
from evalkit.outputs import write_json
from evalkit.report.province import write_province_summary
from evalkit.report.summary import read_summary
from evalkit.text import Note, check_lang
from evalkit.workflows.monitoring import DATA_TABLES

__all__ = ["ProvinceRollup", "rollup", "collect_exit_results", "failed_counties", "collect_risk_shares",
           "province_results", "write_outputs"]


def collect_exit_results(run_dir: str | Path) -> pd.DataFrame:
    """One row per county from ``RUN_DIR/<county_code>/results.json`` (finished counties only).

    Columns: county_code, county_name, year, region, decision, official, and for every criterion
    ``<criterion>_{est,se,lci,uci,verdict,n,threshold}``.
    """
    rows = []
    for f in sorted(Path(run_dir).glob("*/results.json")):
        d = json.loads(f.read_text(encoding="utf-8"))
        if not ExitResult.is_exit_result(d):
            continue
        r = ExitResult.from_dict(d)
        row = {"county_code": r.county_code, "county_name": r.county_name, "year": r.year, "region": r.region,
               "decision": r.decision, "official": r.official}
        for c in CRITERIA:
            for k, v in r.criteria[c].to_dict().items():
                row[f"{c}_{k}"] = v
            row[f"{c}_threshold"] = r.thresholds[c]["value"]
        rows.append(row)
    if not rows:
        raise InputError(f"no county results.json under {run_dir}: run the county batch first")
    return pd.DataFrame(rows).sort_values("county_code", ignore_index=True)


def failed_counties(run_dir: str | Path) -> pd.DataFrame:
    """Counties of a batch run that have no result (from its ``summary.csv``): code, name, error."""
    f = Path(run_dir) / "summary.csv"
    if not f.exists():
        return pd.DataFrame(columns=["county_code", "county_name", "error"])
    s = read_summary(f)  # headers in the run's language, read back to the machine keys
    return s.loc[s["status"] != "ok", ["county_code", "county_name", "error"]].reset_index(drop=True)


def collect_risk_shares(risk_dir: str | Path | None, data_dir: str | Path | None = None
                        ) -> tuple[pd.DataFrame | None, Note | None]:
    """Share of red-flag households per county from a risk run, and a note when it is not used.

    The risk run must have read the same data as the roll-up: its ``results.json`` records the
    data fingerprint, compared with ``data_dir``'s; a run on other data is ignored with a note
    (county codes of different datasets overlap, e.g. Yan'an within Shaanxi).
    """
    if not risk_dir or not Path(risk_dir).exists():
        return None, None
    files = sorted(Path(risk_dir).rglob("red_share_by_county.csv"))
    if not files:
        return None, Note("note_no_red_share", {"dir": str(risk_dir)})
    if data_dir is not None:
        rj = json.loads((files[0].parent / "results.json").read_text(encoding="utf-8"))
        if rj.get("data_sha256") != dataset_fingerprint(data_dir, DATA_TABLES):
            return None, Note("note_risk_other_data", {"dir": str(risk_dir), "data": str(data_dir)})
    return pd.read_csv(files[0], dtype={"county_code": str}), None


def province_results(res: pd.DataFrame) -> dict:
    """The roll-up's ``results.json``: county count and the decisions under both rules."""
    return {"counties": int(len(res)),
            "decisions": res["decision"].value_counts().sort_index().to_dict(),
            "official": res["official"].value_counts().sort_index().to_dict()}


@dataclass(frozen=True)
class ProvinceRollup:
    """A batch run's county results (``results``), its failed counties and the red-flag shares."""

    results: pd.DataFrame
    failed: pd.DataFrame
    risk: pd.DataFrame | None
    notes: list[Note]


def rollup(run_dir: str | Path, risk_dir: str | Path | None = None,
           data_dir: str | Path | None = None) -> ProvinceRollup:
    """Collect a county exit run (and, if given, the risk run on the same data) for the province."""
    risk, note = collect_risk_shares(risk_dir, data_dir)
    return ProvinceRollup(collect_exit_results(run_dir), failed_counties(run_dir), risk, [note] if note else [])


def write_outputs(roll: ProvinceRollup, output_dir: str | Path, lang: str = "zh") -> dict[str, Path]:
    """Write ``province_summary.xlsx`` and ``results.json`` into ``output_dir``."""
    check_lang(lang)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    return {"summary": write_province_summary(roll.results, out / "province_summary.xlsx", lang, roll.risk),
            "results": write_json(province_results(roll.results), out / "results.json")}
