"""Survey sampling and design-based estimation.

``sampling`` draws the evaluators' two-stage sample; ``fieldwork`` fills a sample from a synthetic
truth; ``design`` is the design object every estimate goes through; ``intervals`` the interval
methods for proportions; ``planning`` the sample-size planner.
"""
from evalkit.survey.design import SINGLETON_RULES, Estimate, Estimates, SurveyDesign, singleton_rule
from evalkit.survey.fieldwork import FIELD_SURVEY_COLUMNS, fill_survey, survey_from_truth, truth_index
from evalkit.survey.intervals import korn_graubard
from evalkit.survey.planning import plan_sample_size, power_at
from evalkit.survey.sampling import (
    SAMPLE_COLUMNS,
    SampleDesign,
    SampleFrame,
    build_frame,
    draw_from_frame,
    draw_sample,
    require_columns,
    sample_attrs,
)

__all__ = [
    "SINGLETON_RULES", "Estimate", "Estimates", "SurveyDesign", "singleton_rule",
    "FIELD_SURVEY_COLUMNS", "fill_survey", "survey_from_truth", "truth_index",
    "korn_graubard", "plan_sample_size", "power_at",
    "SAMPLE_COLUMNS", "SampleDesign", "SampleFrame", "build_frame", "draw_from_frame", "draw_sample",
    "require_columns", "sample_attrs",
]
