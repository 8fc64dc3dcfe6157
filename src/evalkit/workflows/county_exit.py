"""The county exit assessment as one call: load, (draw,) estimate, and write the outputs.

The county notebook calls :func:`assess_county` and displays what it returns; the batch runner
and the tests call the same function. :func:`write_outputs` writes ``results.json`` (the
:class:`~evalkit.assessment.ExitResult`), the masked follow-up ledger and, when validation set
rows aside, their (masked) quarantine.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from evalkit import __version__
from evalkit.assessment import (
    CRITERIA,
    CriteriaResult,
    CriterionResult,
    ExitResult,
    criterion_flags,
    estimate_criteria,
    operating_characteristic,
)
from evalkit.config import Policy
from evalkit.data import Dataset, load_dataset, write_quarantine
from evalkit.errors import ExitAssessmentError, InputError
from evalkit.outputs import write_json
from evalkit.report.common import write_ledger_xlsx
from evalkit.report.exit import followup_list
from evalkit.survey import SampleDesign, draw_sample, survey_from_truth
from evalkit.text import Note, check_lang, label, render_notes, text

__all__ = ["CountyAssessment", "assess_county", "operating_characteristic_for", "write_outputs"]

_OPTIONAL = ("field_survey", "truth")


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
    criteria: CriteriaResult
    decision: dict
    flags: pd.DataFrame
    thresholds: dict
    data_sha256: str
    policy: Policy
    truth: pd.DataFrame | None = None
    notes: list[Note] = field(default_factory=list)
    dataset: Dataset | None = None

    @property
    def has_truth(self) -> bool:
        """True for synthetic data, where the operating characteristic can be replayed."""
        return self.truth is not None and len(self.truth) > 0

    def followup(self, lang: str = "zh") -> pd.DataFrame:
        """疑似问题核实清单 of the sample (names and ID numbers masked)."""
        cols = ["household_id", "household_size", "surveyed_income_per_capita"]
        return followup_list(self.flags.merge(self.field_survey[cols], on="household_id", how="left"),
                             self.members, self.villages, lang)

    def result(self, lang: str = "zh") -> ExitResult:
        """The typed result (notes rendered in ``lang``)."""
        t = self.criteria.table
        crit = {c: CriterionResult(est=float(t.at[c, "est"]), se=float(t.at[c, "se"]), lci=float(t.at[c, "lci"]),
                                   uci=float(t.at[c, "uci"]), n=int(t.at[c, "n"]), df=int(t.at[c, "df"]),
                                   verdict=str(t.at[c, "verdict"])) for c in CRITERIA}
        return ExitResult(
            county_code=str(self.county["county_code"]), county_name=str(self.county["county_name"]),
            year=int(self.year), region=str(self.county["region"]), criteria=crit,
            decision=self.decision["overall"], official=self.decision["official_point_rule"],
            thresholds=self.thresholds, data_sha256=self.data_sha256, evalkit_version=__version__,
            notes=render_notes(self.notes, lang))

    def results(self, lang: str = "zh") -> dict:
        """``results.json`` content."""
        return self.result(lang).to_dict()


def _load(data_dir: str | Path, county_code: str) -> tuple[Dataset, pd.DataFrame]:
    """The county's tables (validated, read once) and its counties row; errors say what cannot be read."""
    try:
        ds = load_dataset(data_dir, tables=["counties", "villages", "households", "members", *_OPTIONAL],
                          counties=[county_code], validate=True)
    except InputError as e:
        raise ExitAssessmentError(f"the data in {data_dir} cannot be read: {e}") from None
    counties = ds.tables.get("counties")
    if counties is None:
        raise ExitAssessmentError(f"the data in {data_dir} cannot be read:\n{ds.report.to_text()}")
    if county_code not in set(counties["county_code"]):
        # only on this error path: the whole counties table, unvalidated, to name the counties there
        every = load_dataset(data_dir, tables=["counties"], validate=False).tables.get("counties")
        known = sorted(every["county_code"]) if every is not None else []
        raise ExitAssessmentError(f"county {county_code} is not in {data_dir} (counties there: "
                                  f"{', '.join(known[:20])}{' ...' if len(known) > 20 else ''})")
    probs = ds.report.problems
    fatal = probs[probs["severity"] == "fatal"] if len(probs) else probs
    # truth (synthetic data only) and the field survey (drawn from the truth when absent) may be missing
    absent_ok = (fatal["rule"] == "missing_table") & fatal["table"].isin(_OPTIONAL) if len(fatal) else fatal
    if len(fatal) and not absent_ok.all():
        raise ExitAssessmentError(f"the data in {data_dir} cannot be read:\n{ds.report.to_text()}")
    return ds, counties


def _both(key: str, **fields: object) -> str:
    """A user-facing error in English and Chinese (the library does not know the reader's language)."""
    return f"{text(key, 'en', **fields)} / {text(key, 'zh', **fields)}"


def _field_survey(ds: Dataset, county_code: str, year: int, design: SampleDesign, policy: Policy,
                  seed: int, data_dir: str | Path, notes: list[Note],
                  exit_year: object = None) -> tuple[pd.DataFrame, str]:
    """The evaluators' survey of the county-year, or one drawn from the synthetic truth."""
    fs = ds.tables.get("field_survey")
    if fs is not None and len(fs):
        fs = fs[(fs["county_code"] == county_code) & (fs["survey_year"] == year)]
    if fs is not None and len(fs):
        if design != SampleDesign.from_policy(policy):
            notes.append(Note("note_design_unused"))
        return fs, "field_survey"
    truth = ds.tables.get("truth")
    if truth is not None and len(truth) and not (truth["year"] == year).any():
        if exit_year is not None and not pd.isna(exit_year):
            raise ExitAssessmentError(_both("err_no_survey_exited", year=year, exit_year=int(exit_year),
                                            county=county_code))
        raise ExitAssessmentError(_both("err_no_survey_year", year=year, county=county_code))
    if truth is not None and len(truth):
        villages = ds.tables["villages"]
        sample = draw_sample(ds.tables["households"], villages[villages["county_code"] == county_code], year,
                             design=design, seed=seed)
        notes.append(Note("note_survey_drawn", {"county": county_code, "year": year, "seed": seed}))
        return survey_from_truth(sample, truth, year), "drawn_from_truth"
    raise ExitAssessmentError(
        f"no field survey for county {county_code} in {year} in {data_dir}: bring the evaluators' survey "
        "as table field_survey (see data/README.md)")


def assess_county(data_dir: str | Path, county_code: str, year: int | None = None, alpha: float = 0.05, *,
                  policy: Policy, singleton: str | None = None, design: SampleDesign | None = None,
                  seed: int = 0) -> CountyAssessment:
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
    policy : Policy
        Thresholds and defaults (from the entry point's ``load_policy``).
    singleton : str, optional
        Lonely-village rule (see :func:`evalkit.assessment.estimate_criteria`).
    design : SampleDesign, optional
        Used only when the dataset has no field survey for the county-year and the survey must be
        drawn from a synthetic truth table; default the policy's design.
    seed : int
        Seed of that draw.
    """
    county_code = str(county_code)
    design = SampleDesign.from_policy(policy) if design is None else design
    ds, counties = _load(data_dir, county_code)
    crow = counties[counties["county_code"] == county_code].iloc[0].to_dict()
    if year is None:
        if pd.isna(crow.get("planned_exit_year")):
            poor = crow.get("is_poverty_county")
            if poor is not None and not pd.isna(poor) and not bool(poor):
                raise ExitAssessmentError(_both("err_not_poverty_county", county=county_code,
                                                name=crow.get("county_name") or ""))
            raise ExitAssessmentError(_both("err_no_exit_year", county=county_code))
        year = int(crow["planned_exit_year"])
    year = int(year)
    hh = ds.tables["households"]
    villages = ds.tables["villages"]
    villages = villages[villages["county_code"] == county_code]
    notes: list[Note] = []
    if ds.report.n_quarantined_total:
        # Nothing is dropped silently: the assessment runs on the valid rows and says so.
        counts = {t: n for t, n in ds.report.n_quarantined.items() if n}
        notes.append(Note("note_quarantined", {"n": sum(counts.values()), "tables": list(counts.items())}))
    fs, source = _field_survey(ds, county_code, year, design, policy, seed, data_dir, notes,
                               exit_year=crow.get("planned_exit_year"))
    confidence = 1.0 - float(alpha)
    crit = estimate_criteria(fs, hh, county_code, year, policy, confidence=confidence, singleton=singleton,
                             counties=counties, villages=villages)
    # The verdicts use the region of the province code under the policy; report that same region.
    region = crit.region
    if str(crow.get("region")) != region:
        notes.append(Note("note_region_mismatch", {"given": [str(crow.get("region"))],
                                                   "province": county_code[:2], "region": [region]}))
    notes += crit.notes
    return CountyAssessment(
        county={**crow, "region": region}, year=year, confidence=confidence, households=hh, villages=villages,
        members=ds.tables.get("members"), field_survey=fs, survey_source=source, criteria=crit,
        decision=crit.decision(), flags=criterion_flags(fs, policy, year),
        thresholds=policy.exit_thresholds(region), data_sha256=ds.sha256, policy=policy,
        truth=ds.tables.get("truth"), notes=notes, dataset=ds)


def operating_characteristic_for(a: CountyAssessment, n_reps: int = 200, design: SampleDesign | None = None,
                                 seed: int = 0, set_rates: dict | None = None) -> pd.DataFrame:
    """Replay the evaluation of an assessed (synthetic) county ``n_reps`` times, under its policy."""
    if not a.has_truth:
        raise ExitAssessmentError("the operating characteristic needs the synthetic truth table")
    return operating_characteristic(a.households, a.villages, a.truth, a.county["county_code"], a.year,
                                    design=design, n_reps=n_reps, set_rates=set_rates, seed=seed,
                                    policy=a.policy)


def write_outputs(a: CountyAssessment, output_dir: str | Path, lang: str = "zh") -> dict[str, Path]:
    """Write ``results.json``, the ``followup.xlsx`` ledger (masked) and any (masked) quarantine."""
    check_lang(lang)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"results": write_json(a.results(lang), out / "results.json")}
    if a.dataset is not None and a.dataset.report.n_quarantined_total:
        write_quarantine(a.dataset, out / "quarantine")
        paths["quarantine"] = out / "quarantine"
    title = f"{a.county['county_name']} {a.year} {label('title_followup', lang)}"
    paths["followup"] = write_ledger_xlsx({label("sheet_followup", lang): a.followup(lang)}, out / "followup.xlsx",
                                          lang=lang, title=title, about=label("followup_about", lang))
    return paths
