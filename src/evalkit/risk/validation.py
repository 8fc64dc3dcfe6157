"""Out-of-time validation: training years always precede the test year, never a random split.

Every model is compared with the policy rule on the same held-out year: AUC, average precision,
Brier score, calibration, the capacity-constrained capture of
:func:`~evalkit.risk.metrics.capture_at_k` and its spread across counties.
"""
from __future__ import annotations

import inspect
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone

from evalkit.config import Policy
from evalkit.errors import RiskModelError
from evalkit.risk.features import META_COLUMNS, build_features
from evalkit.risk.labels import LABEL_COLUMNS, label_definition, make_labels
from evalkit.risk.metrics import calibration_table, capture_curve, metric_row, metrics_by_county, stability
from evalkit.risk.models import PolicyRuleModel, default_models
from evalkit.risk.panel import KEYS

__all__ = ["ValidationResult", "labelled_frame", "fit_model", "out_of_time", "rolling_origin"]


@dataclass
class ValidationResult:
    """Out-of-time validation output.

    Attributes
    ----------
    scores : DataFrame
        Test rows (keys, county, village, label, population) with one score column per model.
    metrics : DataFrame
        Per model: n, n_positives, auc, pr_auc, brier, recall_at_k, precision_at_k, fit_seconds.
    curve : DataFrame
        :func:`~evalkit.risk.metrics.capture_curve` with the rule baseline.
    by_county, stability : DataFrame
        Per-county metrics and their spread.
    calibration : DataFrame
        :func:`~evalkit.risk.metrics.calibration_table` per model.
    models : dict
        Fitted models (for rolling origins: ``{test_year: {name: model}}``).
    """

    scores: pd.DataFrame
    metrics: pd.DataFrame
    curve: pd.DataFrame
    by_county: pd.DataFrame
    stability: pd.DataFrame
    calibration: pd.DataFrame
    models: dict = field(default_factory=dict)
    train_years: list[int] = field(default_factory=list)
    test_year: int | list[int] | None = None


def _model_dict(models: Mapping[str, Any] | Sequence[Any] | None) -> dict[str, Any]:
    if models is None:
        return default_models()
    if isinstance(models, Mapping):
        d = dict(models)
    else:
        d = {}
        for m in models:
            name = type(m).__name__.removesuffix("Model").lower()
            d[name if name not in d else f"{name}{len(d)}"] = m
    bad = [n for n in d if n in META_COLUMNS or n in LABEL_COLUMNS]
    if bad:
        raise RiskModelError(f"model names {bad} clash with data columns; rename them")
    if not any(isinstance(m, PolicyRuleModel) for m in d.values()):
        d = {"rule": PolicyRuleModel(), **d}  # the baseline every model is compared with
    return d


def labelled_frame(labels: pd.DataFrame, features: pd.DataFrame) -> pd.DataFrame:
    """Labels joined with the features known at t (inner join on household and year, one to one).

    The rows every model is trained and tested on (:func:`out_of_time`, :func:`fit_model`).
    """
    return labels.merge(features, on=KEYS, how="inner", validate="one_to_one")


def fit_model(model: Any, train: pd.DataFrame, columns: Sequence[str]) -> Any:
    """Fit a clone of ``model`` on labelled rows exactly as :func:`out_of_time` does.

    The model sees ``columns`` only (the feature columns: labels and outcomes are never candidate
    inputs), target ``label``; a model whose ``fit`` takes ``outcome`` (the panel form of
    :class:`~evalkit.risk.models.VulnerabilityModel`) also gets the ``outcome`` column.

    Parameters
    ----------
    model : estimator
        Left unfitted; a fitted clone is returned.
    train : DataFrame
        :func:`labelled_frame` rows of the training years.
    columns : sequence of str
        The columns of :func:`~evalkit.risk.features.build_features`.
    """
    est = clone(model)
    X, y = train[list(columns)], train["label"].to_numpy(dtype=np.int64)
    if "outcome" in inspect.signature(est.fit).parameters:
        est.fit(X, y, outcome=train["outcome"].to_numpy(dtype=float))
    else:
        est.fit(X, y)
    return est


def _check_years(panel: pd.DataFrame, train_years: Iterable[int], test_year: int, h: int) -> list[int]:
    """Sorted training years; every one must be labelled and observed by the test year."""
    pyears = np.unique(panel["year"].to_numpy(dtype=np.int64))
    lo, hi = int(pyears.min()), int(pyears.max())
    if test_year not in pyears:
        raise RiskModelError(f"test year {test_year} is outside the panel (years {lo}-{hi})")
    if test_year + h > hi:
        raise RiskModelError(f"test year {test_year} cannot be labelled: horizon {h} needs year {test_year + h}, "
                             f"beyond the panel's last year {hi}; choose a test year ≤ {hi - h}")
    ty = sorted({int(y) for y in train_years})
    if not ty:
        raise RiskModelError("train_years is empty")
    outside = [y for y in ty if y not in pyears]
    if outside:
        raise RiskModelError(f"training year(s) {outside} are outside the panel (years {lo}-{hi})")
    if ty[-1] + h > test_year:
        raise RiskModelError(f"training year {ty[-1]} has labels in {ty[-1] + 1}..{ty[-1] + h}, not all observed "
                             f"by test year {test_year}; end the training years at {test_year - h}")
    return ty


def _split(data: pd.DataFrame, ty: list[int], test_year: int, population: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training and test rows; each must be non-empty and the training rows must hold a positive."""
    train = data[data["year"].isin(ty)].reset_index(drop=True)
    test = data[data["year"] == test_year].reset_index(drop=True)
    if not len(train):
        raise RiskModelError(f"no labelled {population} households in training years {ty}")
    if int(train["label"].sum()) == 0:
        raise RiskModelError(f"the training set ({ty[0]}-{ty[-1]}, {len(train)} {population} household-years) "
                             "has no positive case; widen the training years or check the label definition")
    if not len(test):
        raise RiskModelError(f"no labelled {population} households in test year {test_year}")
    return train, test


def _evaluate(mdl: dict[str, Any], train: pd.DataFrame, test: pd.DataFrame, columns: pd.Index,
              ty: list[int], test_year: int, k: int, group: str, ks: Iterable[int]) -> ValidationResult:
    """Fit every model on ``train``, score ``test`` and tabulate the metrics."""
    # models see the feature columns only: labels and outcomes must never be candidate inputs
    Xte = test[list(columns)]
    scores = test[[*KEYS, "county_code", "village_code", "population", "label"]].copy()
    y = scores["label"].to_numpy(dtype=float)
    fitted, rows, cal = {}, [], []
    for name, m in mdl.items():  # loop over models
        t0 = time.perf_counter()
        est = fit_model(m, train, columns)
        secs = time.perf_counter() - t0
        scores[name] = est.predict_proba(Xte)[:, 1]
        fitted[name] = est
        rows.append({"model": name, **metric_row(y, scores[name].to_numpy(), scores, name, "label", group, k),
                     "k": k, "fit_seconds": secs})
        cal.append(calibration_table(y, scores[name].to_numpy()).assign(model=name))
    names = list(mdl)
    rule = next(n for n, m in mdl.items() if isinstance(m, PolicyRuleModel))
    by_c = metrics_by_county(scores, names, group=group, k=k)
    return ValidationResult(
        scores=scores, metrics=pd.DataFrame(rows).assign(test_year=test_year, train_start=ty[0], train_end=ty[-1]),
        curve=capture_curve(scores, names, "label", group, ks, baseline=rule).assign(test_year=test_year),
        by_county=by_c.assign(test_year=test_year), stability=stability(by_c).assign(test_year=test_year),
        calibration=pd.concat(cal, ignore_index=True).assign(test_year=test_year),
        models=fitted, train_years=ty, test_year=test_year)


def _in_counties(panel: pd.DataFrame, counties: Iterable[str] | None) -> pd.DataFrame:
    return panel if counties is None else panel[panel["county_code"].astype(str).isin({str(c) for c in counties})]


def out_of_time(
    panel: pd.DataFrame,
    households: pd.DataFrame,
    members: pd.DataFrame,
    models: Mapping[str, Any] | Sequence[Any] | None,
    train_years: Iterable[int],
    test_year: int,
    *,
    policy: Policy,
    population: str = "exited",
    line: str | None = None,
    guarantees: Sequence[str] | None = None,
    horizon: int | None = None,
    counties: Iterable[str] | None = None,
    features: pd.DataFrame | None = None,
    labels: pd.DataFrame | None = None,
    k: int = 5,
    group: str = "village_code",
    ks: Iterable[int] = range(1, 11),
) -> ValidationResult:
    """Train on years t ∈ ``train_years`` and test on t = ``test_year`` (never a random split).

    Every training label must be observable at the test year: max(train_years) + h ≤ test_year,
    otherwise the training outcomes would overlap the test period. Models are cloned, so the
    objects passed in stay unfitted. A :class:`~evalkit.risk.models.PolicyRuleModel` named
    ``rule`` is added when none is given: it is the baseline of the capture curve.

    Parameters
    ----------
    panel, households, members : DataFrame
    models : mapping name → estimator, sequence, or None for :func:`~evalkit.risk.models.default_models`
    train_years : iterable of int
    test_year : int
    policy, population, line, guarantees, horizon, counties
        Label definition (see :func:`~evalkit.risk.labels.make_labels`).
    features, labels : DataFrame, optional
        Precomputed :func:`~evalkit.risk.features.build_features` /
        :func:`~evalkit.risk.labels.make_labels` output (rolling origins reuse them).
    k : int
        Per-village list size of the capture metrics.
    group : str
    ks : iterable of int
        List sizes of the capture curve.

    Returns
    -------
    ValidationResult
    """
    _, _, h = label_definition(policy, line, guarantees, horizon)
    test_year = int(test_year)
    ty = _check_years(panel, train_years, test_year, h)
    mdl = _model_dict(models)
    if labels is None:
        labels = make_labels(panel, households, policy, line, guarantees, horizon, population, counties)
    if features is None:
        features = build_features(_in_counties(panel, counties), households, members, policy,
                                  years=[*ty, test_year])
    train, test = _split(labelled_frame(labels, features), ty, test_year, population)
    return _evaluate(mdl, train, test, features.columns, ty, test_year, k, group, ks)


def rolling_origin(
    panel: pd.DataFrame,
    households: pd.DataFrame,
    members: pd.DataFrame,
    models: Mapping[str, Any] | Sequence[Any] | None,
    test_years: Iterable[int],
    *,
    policy: Policy,
    first_train_year: int | None = None,
    window: int | None = None,
    population: str = "exited",
    line: str | None = None,
    guarantees: Sequence[str] | None = None,
    horizon: int | None = None,
    counties: Iterable[str] | None = None,
    **kwargs: Any,
) -> ValidationResult:
    """Out-of-time validation at several origins: for each test year T, train on years up to T − h.

    Parameters
    ----------
    test_years : iterable of int
    policy : Policy
    first_train_year : int, optional
        First training year (default: the panel's first year); the window expands.
    window : int, optional
        Use only the last ``window`` training years (sliding window) instead.
    **kwargs
        Passed to :func:`out_of_time` (k, group, ks).

    Returns
    -------
    ValidationResult
        Tables stacked over origins (column ``test_year``); ``models`` = {test_year: fitted}.
    """
    _, _, h = label_definition(policy, line, guarantees, horizon)
    labels = make_labels(panel, households, policy, line, guarantees, horizon, population, counties)
    feats = build_features(_in_counties(panel, counties), households, members, policy)
    start = int(panel["year"].min()) if first_train_year is None else int(first_train_year)
    parts: list[ValidationResult] = []
    for T in sorted({int(y) for y in test_years}):  # loop over origins
        end = T - h
        ty = list(range(start if window is None else max(start, end - window + 1), end + 1))
        parts.append(out_of_time(panel, households, members, models, ty, T, policy=policy, population=population,
                                 line=line, guarantees=guarantees, horizon=horizon, counties=counties,
                                 features=feats, labels=labels, **kwargs))
    cat = lambda attr: pd.concat([getattr(r, attr) for r in parts], ignore_index=True)  # noqa: E731
    return ValidationResult(scores=cat("scores"), metrics=cat("metrics"), curve=cat("curve"),
                            by_county=cat("by_county"), stability=cat("stability"), calibration=cat("calibration"),
                            models={r.test_year: r.models for r in parts},
                            train_years=sorted({y for r in parts for y in r.train_years}),
                            test_year=[r.test_year for r in parts])
