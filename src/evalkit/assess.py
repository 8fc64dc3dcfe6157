"""The county exit assessment as one call: load, (draw,) estimate, assemble the report pieces.

The county notebook calls :func:`assess_county` and only displays what it returns; tests and the
batch runner call the same function.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
import pandas as pd

from . import exit as ex
from . import io, report, survey
from .config import Policy, load_policy

_OPTIONAL = ("field_survey", "truth")

__all__ = ["CountyAssessment", "assess_county", "operating_characteristic_for", "write_outputs"]


@dataclass
class CountyAssessment:
    """Everything the county report shows."""

    county: dict
    year: int
    confidence: float
    households: pd.DataFrame
    villages: pd.DataFrame
    members: pd.DataFrame | None
    field_survey: pd.DataFrame
    survey_source: str
    criteria: pd.DataFrame
    decision: dict
    flags: pd.DataFrame
    thresholds: dict
    data_sha256: str
    truth: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)
    dataset: io.Dataset | None = None

    @property
    def has_truth(self) -> bool:
        """True for synthetic data, where the operating characteristic can be replayed."""
        return self.truth is not None and len(self.truth) > 0

    def followup(self, lang: str = "zh") -> pd.DataFrame:
        """疑似问题核实清单 of the sample (names and ID numbers masked)."""
        cols = ["household_id", "household_size", "surveyed_income_per_capita"]
        return report.followup_list(self.flags.merge(self.field_survey[cols], on="household_id", how="left"),
                                    self.members, self.villages, lang)

    def results(self) -> dict:
        """``results.json`` content."""
        out = report.exit_results(self.criteria, self.decision, self.county, self.year, self.thresholds,
                                  self.data_sha256)
        out["notes"] = list(self.notes)
        return out


def assess_county(data_dir: str | Path, county_code: str, year: int | None = None, alpha: float = 0.05,
                  policy: Policy | None = None, singleton: str | None = None,
                  design: survey.SampleDesign | None = None, seed: int = 0) -> CountyAssessment:
    """Run the exit assessment of one county.

    Parameters
    ----------
    data_dir : path
        Dataset directory (canonical model).
    county_code : str
    year : int, optional
        Assessment year; default the county's planned exit year.
    alpha : float
        1 - confidence level of the intervals.
    policy : Policy, optional
    singleton : str, optional
        Lonely-village rule (see :func:`evalkit.exit.estimate_criteria`).
    design : SampleDesign, optional
        Used only when the dataset has no field survey for the county-year and the survey must
        be drawn from a synthetic truth table.
    seed : int
        Seed of that draw.
    """
    policy = policy or load_policy()
    county_code = str(county_code)
    try:
        first = io.load_dataset(data_dir, tables=["counties"], validate=True)
    except io.EvalkitInputError as e:
        raise ex.ExitAssessmentError(f"the data in {data_dir} cannot be read: {e}") from None
    counties = first.tables.get("counties")
    if first.report.exit_code() == 2 or counties is None:
        raise ex.ExitAssessmentError(f"the data in {data_dir} cannot be read:\n{first.report.to_text()}")
    if county_code not in set(counties["county_code"]):
        known = sorted(counties["county_code"])
        raise ex.ExitAssessmentError(f"county {county_code} is not in {data_dir} (counties there: "
                                     f"{', '.join(known[:20])}{' ...' if len(known) > 20 else ''})")
    ds = io.load_dataset(data_dir, tables=["counties", "villages", "households", "members", *_OPTIONAL],
                         counties=[county_code], validate=True)
    probs = ds.report.problems
    fatal = probs[probs["severity"] == "fatal"] if len(probs) else probs
    # truth (synthetic data only) and the field survey (drawn from the truth when absent) may be missing
    absent_ok = (fatal["rule"] == "missing_table") & fatal["table"].isin(_OPTIONAL) if len(fatal) else fatal
    if len(fatal) and not absent_ok.all():
        raise ex.ExitAssessmentError(f"the data in {data_dir} cannot be read:\n{ds.report.to_text()}")
    crow = counties[counties["county_code"] == county_code].iloc[0].to_dict()
    if year is None:
        if pd.isna(crow.get("planned_exit_year")):
            raise ex.ExitAssessmentError(f"county {county_code} has no planned exit year: pass `year`")
        year = int(crow["planned_exit_year"])
    year = int(year)
    hh = ds.tables["households"]
    villages = ds.tables["villages"]
    villages = villages[villages["county_code"] == county_code]
    notes: list[str] = []
    if ds.report.n_quarantined_total:
        # Nothing is dropped silently: the assessment runs on the valid rows and says so.
        counts = {t: n for t, n in ds.report.n_quarantined.items() if n}
        notes.append("rows quarantined by validation (not used; see quarantine/ beside the report): "
                     + ", ".join(f"{t} {n}" for t, n in counts.items()))
    fs = ds.tables.get("field_survey")
    if fs is not None and len(fs):
        fs = fs[(fs["county_code"] == county_code) & (fs["survey_year"] == year)]
    if fs is not None and len(fs):
        source = "field_survey"
        if design is not None and design != survey.SampleDesign.from_policy(policy):
            notes.append("the sample-design options were not used: the dataset holds the evaluators' field survey")
    elif ds.tables.get("truth") is not None and len(ds.tables["truth"]):
        sample = survey.draw_sample(hh, villages, year, design=design, seed=seed)
        fs = survey.survey_from_truth(sample, ds.tables["truth"], year)
        source = "drawn_from_truth"
        notes.append(f"no field survey for {county_code} in {year}: a sample was drawn from the synthetic truth (seed {seed})")
    else:
        raise ex.ExitAssessmentError(
            f"no field survey for county {county_code} in {year} in {data_dir}: bring the evaluators' survey "
            "as table field_survey (see data/README.md)")
    confidence = 1.0 - float(alpha)
    crit = ex.estimate_criteria(fs, hh, county_code, year, policy=policy, confidence=confidence,
                                singleton=singleton, counties=counties)
    dec = ex.decision(crit)
    flags = ex.criterion_flags(fs, policy, year)
    # The verdicts use the region of the province code under the policy; report that same region.
    region = crit.attrs["region"]
    if str(crow.get("region")) != region:
        notes.append(f"counties.region says {crow.get('region')!r}, the policy classes province "
                     f"{county_code[:2]} as {region!r}: thresholds of {region!r} used")
    crow = {**crow, "region": region}
    th = policy.exit_thresholds(region)
    notes += list(crit.attrs.get("notes", []) or [])
    return CountyAssessment(county=crow, year=year, confidence=confidence, households=hh, villages=villages,
                            members=ds.tables.get("members"), field_survey=fs, survey_source=source,
                            criteria=crit, decision=dec, flags=flags, thresholds=th,
                            data_sha256=ds.sha256, truth=ds.tables.get("truth"), notes=notes, dataset=ds)


def operating_characteristic_for(a: CountyAssessment, n_reps: int = 200, design: survey.SampleDesign | None = None,
                                 seed: int = 0, policy: Policy | None = None,
                                 set_rates: dict | None = None) -> pd.DataFrame:
    """Replay the evaluation of an assessed (synthetic) county ``n_reps`` times."""
    if not a.has_truth:
        raise ex.ExitAssessmentError("the operating characteristic needs the synthetic truth table")
    return ex.operating_characteristic(a.households, a.villages, a.truth, a.county["county_code"], a.year,
                                       design=design, n_reps=n_reps, set_rates=set_rates, seed=seed,
                                       policy=policy)


def write_outputs(a: CountyAssessment, output_dir: str | Path, lang: str = "zh") -> dict[str, Path]:
    """Write ``results.json`` and the ``followup.xlsx`` ledger (masked) into ``output_dir``."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"results": report.write_json(a.results(), out / "results.json")}
    if a.dataset is not None and a.dataset.report.n_quarantined_total:
        io.write_quarantine(a.dataset, out / "quarantine")
        paths["quarantine"] = out / "quarantine"
    fl = a.followup(lang)
    title = f"{a.county['county_name']} {a.year} {report.label('title_followup', lang)}"
    paths["followup"] = report.write_ledger_xlsx({report.label("title_followup", lang)[:31]: fl},
                                                 out / "followup.xlsx", lang=lang, title=title)
    return paths
