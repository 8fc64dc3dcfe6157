"""Writing a synthetic dataset directory: Parquet partitions per county, truth and manifest.

Large tables are written per county (``households/<county_code>.parquet`` etc.) by worker
processes; each county has its own random stream, so the files do not depend on the number of
workers, and the same profile, seed and policy give byte-identical files (the manifest lists
their SHA-256).
"""
from __future__ import annotations

import json
import multiprocessing
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from evalkit import __version__
from evalkit.config import Policy
from evalkit.data.selection import select_counties
from evalkit.provenance import sha256_file
from evalkit.survey import SampleDesign, draw_sample, survey_from_truth
from evalkit.synth.county import generate_county
from evalkit.synth.params import TRUE_PARAMS
from evalkit.synth.profiles import CountySpec, profile_counties

__all__ = ["PARTITIONED_TABLES", "CountyJob", "write_parquet", "run_county_job", "field_survey_for", "generate"]

#: Tables written as one Parquet file per county.
PARTITIONED_TABLES = ("households", "members", "panel", "truth", "field_survey")


def write_parquet(df: pd.DataFrame, path: Path) -> None:
    """Write ``df`` without its index and with fixed options, so the same frame gives the same bytes."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="zstd", use_dictionary=True, write_statistics=True)


@dataclass(frozen=True)
class CountyJob:
    """One county to generate and write (picklable for worker processes)."""

    spec: CountySpec
    seed: int
    out: str
    scale: float
    policy: Policy
    field_survey: bool


def field_survey_for(res: dict, spec: CountySpec, seed: int, policy: Policy) -> pd.DataFrame:
    """The evaluators' field survey of a county in its planned exit year, filled from the truth.

    Each county's survey has its own stream (like the rest of the county) and the design follows
    the policy's ``[survey]`` defaults.
    """
    year = int(spec.planned_exit_year)
    county_seed = int(np.random.SeedSequence([seed, int(spec.county_code), 2]).generate_state(1)[0])
    design = SampleDesign.from_policy(policy)
    sample = draw_sample(res["households"], res["villages"], year, design=design, seed=county_seed)
    return survey_from_truth(sample, res["truth"], year)


def run_county_job(job: CountyJob) -> tuple[dict, dict, dict[str, int], pd.DataFrame]:
    """Generate one county and write its partitions.

    Returns
    -------
    (county row, draws, row counts per table, villages table, village indicators table)
    """
    spec, out = job.spec, Path(job.out)
    res = generate_county(spec, job.seed, job.policy, scale=job.scale)
    counts = {}
    for t in ("households", "members", "panel", "truth"):
        write_parquet(res[t], out / t / f"{spec.county_code}.parquet")
        counts[t] = len(res[t])
    if job.field_survey and spec.is_poverty_county and spec.planned_exit_year:
        fs = field_survey_for(res, spec, job.seed, job.policy)
        write_parquet(fs, out / "field_survey" / f"{spec.county_code}.parquet")
        counts["field_survey"] = len(fs)
    return res["county"], res["draws"], counts, res["villages"], res["village_indicators"]


def _select(specs: list[CountySpec], counties: Iterable[str] | str | None) -> list[CountySpec]:
    """The profile's counties named by ``counties`` (codes or names), in profile order."""
    if counties is None:
        return specs
    table = pd.DataFrame({"county_code": [s.county_code for s in specs],
                          "county_name": [s.county_name for s in specs],
                          "is_poverty_county": [s.is_poverty_county for s in specs],
                          "planned_exit_year": pd.array([s.planned_exit_year for s in specs], dtype="Int64")})
    want = set(select_counties(table, counties))
    return [s for s in specs if s.county_code in want]


def _progress(it: Iterable, total: int, show: bool) -> Iterable:
    return tqdm(it, total=total, desc="counties", unit="county") if show else it


def _run_jobs(jobs: list[CountyJob], workers: int, progress: bool) -> Iterator:
    if workers > 1 and len(jobs) > 1:
        # Fresh worker processes: a forked child inherits the thread pools of polars (used by the
        # field survey) in whatever state the parent left them, and can deadlock.
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as ex:
            yield from _progress(ex.map(run_county_job, jobs), len(jobs), progress)
    else:
        yield from _progress(map(run_county_job, jobs), len(jobs), progress)


def _clear_partitions(out: Path) -> None:
    # a re-run must not leave files of counties it no longer writes
    for t in PARTITIONED_TABLES:
        d = out / t
        if d.exists():
            for f in d.glob("*.parquet"):
                f.unlink()


def _write_tables(out: Path, results: list) -> tuple[dict, dict[str, int]]:
    """Counties and villages tables from the jobs' results; returns the draws and row counts."""
    county_rows, all_draws, vill, ind = [], {}, [], []
    totals: dict[str, int] = {}
    for county, draws, counts, villages, indicators in results:
        ind.append(indicators)
        county_rows.append(county)
        all_draws[county["county_code"]] = {k: (round(float(v), 6) if isinstance(v, float) else v)
                                            for k, v in draws.items()}
        vill.append(villages)
        for k, v in counts.items():
            totals[k] = totals.get(k, 0) + v
    counties_df = pd.DataFrame(county_rows)
    counties_df["planned_exit_year"] = pd.array(counties_df["planned_exit_year"], dtype="Int64")
    write_parquet(counties_df, out / "counties.parquet")
    villages_df = pd.concat(vill, ignore_index=True)
    write_parquet(villages_df, out / "villages.parquet")
    totals["counties"], totals["villages"] = len(counties_df), len(villages_df)
    indicators_df = pd.concat(ind, ignore_index=True)
    write_parquet(indicators_df, out / "village_indicators.parquet")
    totals["village_indicators"] = len(indicators_df)
    return all_draws, totals


def _write_json(path: Path, obj: dict) -> None:
    # sorted keys, fixed indent: part of the byte-identical output
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True), encoding="utf-8")


def generate(profile: str = "demo", seed: int = 0, out: str | Path | None = None, scale: float | None = None,
             counties: Iterable[str] | str | None = None, workers: int = 1, field_survey: bool = True,
             progress: bool = False, *, policy: Policy, departments: Iterable[str] = ()) -> Path:
    """Generate a synthetic dataset directory in the canonical model.

    Parameters
    ----------
    profile : {'demo', 'shaanxi', 'seeds'}
    seed : int
    out : path, optional
        Output directory (default ``data/<profile>``).
    scale : float, optional
        Population scale factor (default: the profile's).
    counties : iterable of str or str, optional
        Generate only these counties of the profile (codes or names, a list or a comma-separated
        string; see :func:`evalkit.data.selection.select_counties`).
    workers : int
        Processes for county generation (results do not depend on it).
    field_survey : bool
        Also draw the evaluators' field survey of each poverty county in its exit year.
    progress : bool
        Show a progress bar over the counties.
    policy : Policy
        Lines, regions and survey defaults (from :func:`evalkit.config.load_policy` at the entry point).
    departments : iterable of str
        Months ('YYYY-MM') of synthetic department data to write (``departments/YYYY-MM/``, from
        their own random streams: :mod:`evalkit.synth.departments`); none by default.

    Returns
    -------
    Path
        The dataset directory, with ``manifest.json`` and ``truth_params.json``.

    Raises
    ------
    ParameterError
        An unknown profile, or counties that are not in the profile.
    """
    prof = profile_counties(profile, scale, seed)
    eff_scale = prof.default_scale if scale is None else scale
    specs = _select(prof.counties, counties)
    out = Path(out or Path("data") / profile)
    out.mkdir(parents=True, exist_ok=True)
    _clear_partitions(out)
    jobs = [CountyJob(s, seed, str(out), eff_scale, policy, field_survey) for s in specs]
    all_draws, totals = _write_tables(out, list(_run_jobs(jobs, workers, progress)))
    _write_json(out / "truth_params.json", {
        "profile": profile, "seed": seed, "scale": eff_scale, "process": TRUE_PARAMS, "counties": all_draws,
        "county_notes": {s.county_code: s.notes for s in specs if s.notes}})
    if departments:
        from evalkit.synth.departments import write_departments

        write_departments(out, sorted(departments), seed, policy)
    files = sorted(p for p in out.rglob("*") if p.is_file() and p.name != "manifest.json"
                   and "quarantine" not in p.parts)
    _write_json(out / "manifest.json", {
        "profile": profile, "description": prof.description, "seed": seed, "scale": eff_scale,
        "evalkit_version": __version__, "row_counts": dict(sorted(totals.items())),
        "files": {str(p.relative_to(out)): sha256_file(p) for p in files},
    })
    return out
