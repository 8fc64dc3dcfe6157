"""County exit assessment: the four criteria 三率一度, verdicts and their operating characteristic.

``criteria`` estimates the criteria of one county from its field survey (a client of the survey
design object); ``verdicts`` turns intervals into decisions; ``simulation`` replays the whole
evaluation on a synthetic county; ``result`` is the one typed result written to ``results.json``.
"""
from evalkit.assessment.criteria import (
    CI_METHODS,
    RATES,
    CountyContext,
    CriteriaResult,
    assess_sample,
    county_context,
    criteria_intervals,
    criterion_flags,
    estimate_criteria,
    finite_population_columns,
    population_sizes,
    register_totals,
)
from evalkit.assessment.result import CRITERIA, CriterionResult, ExitResult
from evalkit.assessment.simulation import (
    ReplicateCriteria,
    operating_characteristic,
    replicate_criteria,
    set_truth,
    stack_samples,
    true_rates,
)
from evalkit.assessment.verdicts import decision, verdicts

__all__ = [
    "CRITERIA", "RATES", "CI_METHODS", "CountyContext", "CriteriaResult", "CriterionResult", "ExitResult",
    "assess_sample", "county_context", "criterion_flags", "estimate_criteria", "register_totals",
    "operating_characteristic", "set_truth", "true_rates", "decision", "verdicts",
    "criteria_intervals", "finite_population_columns", "population_sizes", "ReplicateCriteria",
    "replicate_criteria", "stack_samples",
]
