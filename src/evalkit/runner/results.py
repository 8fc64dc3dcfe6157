"""Results of a batch: one record per county, ``summary.csv`` and the key results of each run.

A county exit run's ``results.json`` is read through :class:`evalkit.assessment.result.ExitResult`
(the one owner of that format); any other notebook's results are flattened generically.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from evalkit import provenance
from evalkit.assessment.result import ExitResult
from evalkit.errors import InputError
from evalkit.outputs import write_csv
from evalkit.privacy import Masker, pii_columns
from evalkit.report.summary import localize_summary
from evalkit.text import text

__all__ = ["CountyResult", "BatchResult", "read_json", "county_result", "finished_record", "key_results",
           "exit_key_results", "write_summary", "SUMMARY_COLUMNS", "outputs_intact", "previous_result"]

#: The first columns of ``summary.csv`` (machine keys; written with their labels, read back by
#: :func:`evalkit.report.summary.read_summary`).
SUMMARY_COLUMNS = ["county_code", "county_name", "status", "duration_s", "error"]
#: Summary keys of a criterion object in a generic results.json.
_CRIT_KEYS = ("est", "lci", "uci", "verdict")
#: Top-level results.json keys that are metadata, not results.
_META_KEYS = {"county_code", "county_name", "evalkit_version", "region", "thresholds"}


def read_json(path: Path) -> Any:
    """The parsed JSON file, or None when it is missing or invalid."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def _exit_result(results: Mapping[str, Any] | None) -> ExitResult | None:
    if results is None or not ExitResult.is_exit_result(dict(results)):
        return None
    try:
        return ExitResult.from_dict(dict(results))
    except (InputError, ValueError):  # looks like one but is not complete: treat it generically
        return None


@dataclass
class CountyResult:
    """Outcome of one county's run."""

    county_code: str
    county_name: str
    status: str  # 'ok' | 'failed'
    duration_s: float
    error: str | None
    out_dir: Path
    notebook: Path | None  # the executed notebook (the partial one for a failed run), if any
    html: Path | None
    input_hash: str
    reused: bool = False  # skipped by --resume: inputs and parameters unchanged
    results: dict[str, Any] | None = None
    #: False when the outputs in ``out_dir`` come from a run with other inputs or parameters (or
    #: there are none: the batch was interrupted before this county ran)
    current: bool = True

    @property
    def exit_result(self) -> ExitResult | None:
        """The county exit assessment of this run, if its notebook wrote one."""
        return _exit_result(self.results)

    @property
    def verdict(self) -> str | None:
        """The exit decision ('pass', 'borderline', 'fail'); for other notebooks ``decision.overall``
        or a top-level ``verdict`` of results.json, if any."""
        ex = self.exit_result
        if ex is not None:
            return ex.decision
        r = self.results or {}
        d = r.get("decision")
        v = d.get("overall") if isinstance(d, dict) else r.get("verdict")
        return None if v is None else str(v)


@dataclass
class BatchResult:
    """A batch run: one :class:`CountyResult` per county plus the run files."""

    out: Path
    counties: list[CountyResult]
    summary: Path
    index: Path
    manifest: Path
    started_at: str = ""
    finished_at: str = ""
    notebook: Path | None = None
    lang: str = "zh"

    @property
    def n_ok(self) -> int:
        """Runs that succeeded (reused ones included)."""
        return sum(c.status == "ok" for c in self.counties)

    @property
    def n_failed(self) -> int:
        """Runs that failed."""
        return sum(c.status != "ok" for c in self.counties)

    @property
    def n_reused(self) -> int:
        """Runs reused from a previous batch by ``--resume``."""
        return sum(c.reused for c in self.counties)

    @property
    def failed(self) -> list[CountyResult]:
        """The failed runs."""
        return [c for c in self.counties if c.status != "ok"]

    @property
    def exit_code(self) -> int:
        """0 when every county succeeded, 1 when any failed (``evalkit batch`` returns 2 when the
        batch could not start at all)."""
        return 0 if self.n_failed == 0 else 1

    def exit_line(self, lang: str = "en") -> str:
        """The exit code and what it means, for the printed summary."""
        if self.n_failed == 0:
            return text("runner_exit_ok", lang, n=len(self.counties))
        return text("runner_exit_failed", lang, failed=self.n_failed, n=len(self.counties))

    def summary_line(self, lang: str = "en") -> str:
        """Counts of the batch and where its outputs are."""
        return text("runner_summary_line", lang, n=len(self.counties), ok=self.n_ok, reused=self.n_reused,
                    failed=self.n_failed, out=self.out)

    def __getitem__(self, code: str) -> CountyResult:
        for c in self.counties:
            if c.county_code == code:
                return c
        raise KeyError(code)


def county_result(out: Path, rec: Mapping[str, Any], reused: bool = False) -> CountyResult:
    """The :class:`CountyResult` of a run record (``run.json``) published under ``out``."""
    d = out / str(rec["county_code"])
    nb = d / rec["notebook"] if rec.get("notebook") else None
    ht = d / rec["html"] if rec.get("html") else None
    results = read_json(d / "results.json") if rec.get("status") == "ok" else None
    return CountyResult(str(rec["county_code"]), str(rec.get("county_name") or ""), str(rec["status"]),
                        float(rec.get("duration_s") or 0.0), rec.get("error"), d, nb, ht,
                        str(rec.get("input_hash") or ""), reused, results)


def outputs_intact(d: Path, rec: Mapping[str, Any]) -> bool:
    """True when every file of run directory ``d`` (but run.json) has the sha256 its run.json
    records, and there is no other file."""
    want = rec.get("outputs")
    if not isinstance(want, dict) or not want:
        return False
    have = {rel: f for f in d.rglob("*") if f.is_file() and (rel := f.relative_to(d).as_posix()) != "run.json"}
    if set(have) != set(want):
        return False
    return all(provenance.sha256_file(have[k]) == v for k, v in want.items())


def finished_record(out: Path, job: Mapping[str, Any]) -> dict[str, Any] | None:
    """The previous run.json of ``job`` if its outputs are complete, untouched (every file has its
    recorded sha256) and its inputs unchanged."""
    d = out / job["code"]
    rec = read_json(d / "run.json")
    if not isinstance(rec, dict) or rec.get("status") != "ok" or rec.get("input_hash") != job["input_hash"]:
        return None
    if not (d / "results.json").is_file() or not rec.get("html") or not (d / rec["html"]).is_file():
        return None
    if not outputs_intact(d, rec):
        return None
    return rec


def previous_result(out: Path, job: Mapping[str, Any], status_missing: str = "not run") -> CountyResult:
    """What ``OUT/<code>/`` holds for a job this run did not finish (an interrupted batch): the
    older run, marked not current when its inputs or parameters differ, or an empty failed record."""
    d = out / job["code"]
    rec = read_json(d / "run.json")
    if isinstance(rec, dict) and "county_code" in rec and "status" in rec:
        c = county_result(out, rec)
        c.current = rec.get("input_hash") == job["input_hash"]
        return c
    return CountyResult(job["code"], str(job.get("name") or ""), status_missing, 0.0, None, d, None, None,
                        job["input_hash"], current=False)


def _scalar(v: Any) -> bool:
    return v is None or isinstance(v, (str, int, float, bool))


def exit_key_results(r: ExitResult) -> dict[str, Any]:
    """Summary columns of a county exit result: year, each criterion's est/lci/uci/verdict, decisions."""
    out: dict[str, Any] = {"year": r.year}
    for name, c in r.criteria.items():
        out.update({f"{name}.est": c.est, f"{name}.lci": c.lci, f"{name}.uci": c.uci, f"{name}.verdict": c.verdict})
    out["decision.overall"] = r.decision
    out["decision.official_point_rule"] = r.official
    return out


def key_results(results: Mapping[str, Any] | None) -> dict[str, Any]:
    """Flatten the key results of a results.json for the summary table.

    A county exit result gives :func:`exit_key_results`. Any other: top-level scalars (but not
    metadata such as county_code or ``*_sha256``), every scalar of ``decision``
    (``decision.overall``) and, for every object with an ``est``, its ``est``, ``lci``, ``uci``
    and ``verdict`` (``<criterion>.est`` ...).
    """
    ex = _exit_result(results)
    if ex is not None:
        return exit_key_results(ex)
    out: dict[str, Any] = {}
    for k, v in (results or {}).items():
        if k in _META_KEYS or k.endswith("_sha256"):
            continue
        if isinstance(v, dict):
            for kk, vv in v.items():
                if (k == "decision" or ("est" in v and kk in _CRIT_KEYS)) and _scalar(vv):
                    out[f"{k}.{kk}"] = vv
        elif _scalar(v):
            out[k] = v
    return out


def write_summary(path: Path, counties: Sequence[CountyResult], masker: Masker | None = None,
                  lang: str = "zh") -> None:
    """``summary.csv``: one row per county (code, name, status, duration, error, key results, and
    ``current``: False when the county's outputs come from a run with other inputs or parameters),
    with headers in ``lang`` (:func:`evalkit.report.summary.localize_summary`).

    Text is masked by content (``masker``) and formulas are neutralized; written atomically.
    """
    masker = masker or Masker()
    rows = []
    for c in counties:
        row = {"county_code": c.county_code, "county_name": c.county_name, "status": c.status,
               "duration_s": c.duration_s, "error": masker.text(c.error or ""), "current": c.current}
        row.update(key_results(c.results))
        rows.append(row)
    extra = sorted({k for r in rows for k in r} - set(SUMMARY_COLUMNS))
    # object dtype: a failed row must not turn the integer columns of the others into floats
    df = pd.DataFrame(rows, columns=SUMMARY_COLUMNS + extra, dtype=object).sort_values("county_code")
    # headers, verdicts and status in the report's language (read back by report.summary.read_summary);
    # utf-8-sig: Excel, which is what county staff open a CSV with, then shows Chinese correctly
    write_csv(_masked(localize_summary(df, lang), masker), path)


def _masked(df: pd.DataFrame, masker: Masker) -> pd.DataFrame:
    """``masker.frame(df)``; without a header naming personal data (the summary's own columns) the
    same result cell by cell, without the second Masker over every name that ``frame`` builds
    (seconds for a province)."""
    if pii_columns(df.columns):
        return masker.frame(df)
    return pd.DataFrame({c: masker.series(df[c]) for c in df.columns}, index=df.index)
