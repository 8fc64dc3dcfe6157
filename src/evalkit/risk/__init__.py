"""Return-to-poverty (返贫) and falling-into-poverty (致贫) risk: labels, features, models, validation.

The monitoring mechanism of docs/policy.md §5 (docs/policy.md [D4]) watches exited households so
they do not return to poverty and non-registered near-poor households so they do not fall in.
The package turns the household panel into

1. **labels** (:mod:`evalkit.risk.labels`) — an exited household *returned* at t+1 (a
   non-registered one *became poor*) when its per-capita income falls below the line of t+1 or
   a guarantee fails at t+1; line, guarantees and horizon come from the policy's ``[risk]``;
2. **features known at t** (:mod:`evalkit.risk.features`) — nothing from years after t enters a
   feature at t;
3. **models** behind one scikit-learn interface (:mod:`evalkit.risk.models`): the policy rule,
   a logit with clustered standard errors, calibrated boosting and the vulnerability model;
4. **metrics** (:mod:`evalkit.risk.metrics`) and **out-of-time validation**
   (:mod:`evalkit.risk.validation`) — training years always precede the test year;
5. **early warning** (:mod:`evalkit.risk.warning`) — red / yellow / green levels, reasons in the
   official risk categories, case closure (销号) and a masked village watch list (data only:
   writing it is :func:`evalkit.report.risk.write_watchlist_xlsx`).

A whole province (tens of millions of panel rows) goes through :mod:`evalkit.risk.store` (features
and labels county by county into Parquet) and :mod:`evalkit.risk.large` (the models fitted from
the store with DuckDB: the logit on sufficient statistics, :mod:`evalkit.risk.models.cells`;
boosting on a stratified sample); both are imported on use, not here.

No line or threshold is written here: all come from :class:`evalkit.config.Policy`, which every
function that reads one takes as a required argument. ``panel`` holds shared plumbing.
"""
from evalkit.errors import RiskModelError
from evalkit.risk.features import CORE_FEATURES, build_features, feature_columns
from evalkit.risk.labels import label_definition, make_labels
from evalkit.risk.metrics import (
    brier,
    calibration_table,
    capture_at_k,
    capture_curve,
    metrics_by_county,
    pr_auc,
    roc_auc,
    stability,
)
from evalkit.risk.models import (
    RANDOM_STATE,
    BoostingModel,
    LogitModel,
    PolicyRuleModel,
    RiskModel,
    VulnerabilityModel,
    default_models,
)
from evalkit.risk.validation import ValidationResult, fit_model, labelled_frame, out_of_time, rolling_origin
from evalkit.risk.warning import (
    LEVELS,
    REASON_CATEGORIES,
    case_closure,
    closure_by_year,
    early_warning,
    watchlist,
)

__all__ = [
    "RiskModelError",
    "CORE_FEATURES",
    "REASON_CATEGORIES",
    "LEVELS",
    "RANDOM_STATE",
    "label_definition",
    "make_labels",
    "build_features",
    "feature_columns",
    "RiskModel",
    "PolicyRuleModel",
    "LogitModel",
    "BoostingModel",
    "VulnerabilityModel",
    "default_models",
    "roc_auc",
    "pr_auc",
    "brier",
    "calibration_table",
    "capture_at_k",
    "capture_curve",
    "metrics_by_county",
    "stability",
    "ValidationResult",
    "labelled_frame",
    "fit_model",
    "out_of_time",
    "rolling_origin",
    "early_warning",
    "case_closure",
    "closure_by_year",
    "watchlist",
]
