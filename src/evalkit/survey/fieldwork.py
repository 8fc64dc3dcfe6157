"""Field work on synthetic data: the surveyed values of a sample, read from the truth table.

The survey is taken as exact (no measurement error): income, the five guarantees and approval are
those of the truth table in the survey year. Real data bring their own ``field_survey`` table.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from evalkit.errors import SurveyError
from evalkit.survey.sampling import SAMPLE_COLUMNS, require_columns

__all__ = ["FIELD_SURVEY_COLUMNS", "TruthIndex", "truth_index", "fill_survey", "survey_from_truth"]

FIELD_SURVEY_COLUMNS: tuple[str, ...] = (
    "county_code", "survey_year", "household_id", "village_code", "stratum", "hh_stratum",
    "prob_village", "prob_household", "weight", "household_size", "surveyed_income_per_capita",
    "food_clothing_ok", "education_ok", "medical_ok", "housing_ok", "water_ok", "approves",
)

# truth column -> field_survey column (the survey records the truth of that year).
_TRUTH_TO_SURVEY: dict[str, str] = {
    "true_income_per_capita": "surveyed_income_per_capita",
    "true_food_clothing_ok": "food_clothing_ok",
    "true_education_ok": "education_ok",
    "true_medical_ok": "medical_ok",
    "true_housing_ok": "housing_ok",
    "true_water_ok": "water_ok",
    "true_approves": "approves",
}



TruthIndex = pd.DataFrame  # survey columns of one year's truth, indexed by household_id


def truth_index(truth: pd.DataFrame, year: int) -> TruthIndex:
    """Survey columns of the truth of ``year``, indexed by household_id (built once, reused)."""
    require_columns(truth, ("household_id", "year", *_TRUTH_TO_SURVEY), "truth")
    t = truth.loc[truth["year"].to_numpy() == year, ["household_id", *_TRUTH_TO_SURVEY]]
    t = t.rename(columns=_TRUTH_TO_SURVEY).set_index(t["household_id"].astype(str).to_numpy())
    if t.index.has_duplicates:
        raise SurveyError(f"truth has duplicated household_id rows in year {year}")
    return t.drop(columns="household_id")


def fill_survey(sample: pd.DataFrame, tix: TruthIndex, year: int) -> pd.DataFrame:
    """The field survey of ``sample`` from a prepared :func:`truth_index` (no column checks)."""
    ids = sample["household_id"].astype(str).to_numpy()
    pos = tix.index.get_indexer(ids)
    if (pos < 0).any():
        raise SurveyError(f"{int((pos < 0).sum())} sampled household(s) have no truth row in {year}, e.g. "
                         f"{ids[pos < 0][:5].tolist()}")
    cols = {c: sample[c].to_numpy() for c in SAMPLE_COLUMNS}
    cols["household_id"] = ids
    cols["survey_year"] = np.full(len(ids), int(year))
    cols.update({c: tix[c].to_numpy()[pos] for c in tix.columns})
    out = pd.DataFrame({c: cols[c] for c in FIELD_SURVEY_COLUMNS})
    out.attrs = dict(sample.attrs)
    return out


def survey_from_truth(sample: pd.DataFrame, truth: pd.DataFrame, year: int) -> pd.DataFrame:
    """Fill the surveyed columns of a sample from the truth of ``year``: the field survey.

    The survey is taken as exact (no measurement error): income, the five guarantees and
    approval are those of the truth table in ``year``.

    Returns
    -------
    pandas.DataFrame
        The ``field_survey`` table, columns :data:`FIELD_SURVEY_COLUMNS`, one row per sampled
        household in the sample's order.
    """
    require_columns(sample, SAMPLE_COLUMNS, "sample")
    return fill_survey(sample, truth_index(truth, year), year)

