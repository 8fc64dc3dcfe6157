"""Survey sampling and design-based estimation.

``sampling`` draws the evaluators' two-stage sample; ``fieldwork`` fills a sample from a synthetic
truth; ``design`` is the design object every estimate goes through; ``intervals`` the interval
methods for proportions; ``planning`` the sample-size planner; ``poverty`` poverty measures with
their design-based SEs; ``replicates`` many simulated
samples at once (operating characteristic).
"""
from evalkit.survey.design import SINGLETON_RULES, Estimate, Estimates, SurveyDesign, singleton_rule
from evalkit.survey.fieldwork import FIELD_SURVEY_COLUMNS, fill_survey, survey_from_truth, truth_index
from evalkit.survey.intervals import korn_graubard, logit_interval, wald, wilson_design
from evalkit.survey.planning import plan_sample_size, power_at
from evalkit.survey.poverty import alkire_foster_design, poverty_measures_design
from evalkit.survey.replicates import ReplicateRatios, domain_df_replicates, ratio_replicates
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
    "korn_graubard", "logit_interval", "wald", "wilson_design", "plan_sample_size", "power_at",
    "alkire_foster_design", "poverty_measures_design",
    "ReplicateRatios", "domain_df_replicates", "ratio_replicates",
    "SAMPLE_COLUMNS", "SampleDesign", "SampleFrame", "build_frame", "draw_from_frame", "draw_sample",
    "require_columns", "sample_attrs",
]
