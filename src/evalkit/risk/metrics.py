"""How well a risk score ranks and predicts: AUC, average precision, Brier, calibration, capture at k.

Capture at k is the capacity-constrained measure the offices care about: each village can follow
up its top-k households; what share of the households that actually return are on those lists?
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from evalkit.errors import RiskModelError
from evalkit.risk.panel import require_columns

__all__ = ["roc_auc", "pr_auc", "brier", "calibration_table", "capture_at_k", "capture_curve", "metric_row",
           "metrics_by_county", "stability"]


def _yp(y: Any, p: Any) -> tuple[np.ndarray, np.ndarray]:
    yy = np.asarray(y, dtype=float).ravel()
    pp = np.asarray(p, dtype=float).ravel()
    if len(yy) != len(pp):
        raise RiskModelError(f"y has {len(yy)} values, the scores {len(pp)}")
    return yy, pp


def roc_auc(y: Any, score: Any) -> float:
    """Area under the ROC curve (ties count one half); NaN when y has a single class."""
    yy, pp = _yp(y, score)
    return float(roc_auc_score(yy, pp)) if len(np.unique(yy)) == 2 else float("nan")


def pr_auc(y: Any, score: Any) -> float:
    """Average precision (area under the precision-recall curve); NaN without positives."""
    yy, pp = _yp(y, score)
    return float(average_precision_score(yy, pp)) if yy.sum() > 0 else float("nan")


def brier(y: Any, p: Any) -> float:
    """Brier score: mean of (p − y)²."""
    yy, pp = _yp(y, p)
    return float(np.mean((pp - yy) ** 2)) if len(yy) else float("nan")


def calibration_table(y: Any, p: Any, n_bins: int = 10, strategy: str = "quantile") -> pd.DataFrame:
    """Calibration curve: observed event rate against mean predicted probability per bin.

    Parameters
    ----------
    y, p : array-like
    n_bins : int
    strategy : {'quantile', 'uniform'}
        Equal-count bins or equal-width bins on [0, 1].

    Returns
    -------
    DataFrame
        ``bin, n, p_min, p_max, mean_predicted, observed_rate`` (empty bins omitted).
    """
    yy, pp = _yp(y, p)
    if strategy == "quantile":
        edges = np.unique(np.quantile(pp, np.linspace(0, 1, n_bins + 1)))
    elif strategy == "uniform":
        edges = np.linspace(0, 1, n_bins + 1)
    else:
        raise RiskModelError(f"strategy must be 'quantile' or 'uniform', got {strategy!r}")
    b = np.clip(np.searchsorted(edges, pp, side="right") - 1, 0, max(len(edges) - 2, 0))
    d = pd.DataFrame({"bin": b, "y": yy, "p": pp})
    return d.groupby("bin").agg(n=("y", "size"), p_min=("p", "min"), p_max=("p", "max"),
                                mean_predicted=("p", "mean"), observed_rate=("y", "mean")).reset_index()


def _topk_rank(df: pd.DataFrame, score: str, group: str) -> np.ndarray:
    """0-based rank of each row within its group by descending score (ties: row order)."""
    order = np.lexsort((np.arange(len(df)), -df[score].to_numpy(dtype=float),
                        pd.factorize(df[group])[0]))
    rank = np.empty(len(df), dtype=np.int64)
    g_sorted = pd.factorize(df[group])[0][order]
    rank[order] = pd.Series(g_sorted).groupby(g_sorted).cumcount().to_numpy()
    return rank


def capture_at_k(df: pd.DataFrame, score: str, label: str = "label", group: str = "village_code",
                 k: int = 5) -> pd.Series:
    """Capacity-constrained capture: each group (village) can follow up its top-k households.

    Parameters
    ----------
    df : DataFrame
        One row per household (of one year), with ``score``, ``label`` and ``group``.
    score, label, group : str
    k : int
        List size per group; ties are broken by row order.

    Returns
    -------
    Series
        ``recall_at_k`` (listed positives / all positives), ``precision_at_k`` (listed positives /
        listed), ``n_listed``, ``n_captured``, ``n_positives``, ``k``.
    """
    if k < 1:
        raise RiskModelError(f"k must be >= 1, got {k}")
    require_columns(df, [score, label, group], "capture_at_k")
    listed = _topk_rank(df, score, group) < k
    y = df[label].to_numpy(dtype=float)
    npos, nl = float(y.sum()), int(listed.sum())
    cap = float(y[listed].sum())
    return pd.Series({"recall_at_k": cap / npos if npos else float("nan"),
                      "precision_at_k": cap / nl if nl else float("nan"),
                      "n_listed": nl, "n_captured": cap, "n_positives": npos, "k": k})


def capture_curve(df: pd.DataFrame, scores: Sequence[str], label: str = "label", group: str = "village_code",
                  ks: Iterable[int] = range(1, 11), baseline: str | None = None) -> pd.DataFrame:
    """Capture versus list size per group for several score columns.

    Returns
    -------
    DataFrame
        ``model, k, recall_at_k, precision_at_k, n_listed`` and, with ``baseline`` (a score
        column, e.g. the rule), ``baseline_recall`` and ``gain`` = recall − baseline recall at the
        same k.
    """
    y = df[label].to_numpy(dtype=float)
    npos = y.sum()
    rows = []
    for s in scores:  # loop over models and list sizes, not rows
        rank = _topk_rank(df, s, group)
        for k in ks:
            listed = rank < k
            cap = y[listed].sum()
            rows.append({"model": s, "k": int(k), "recall_at_k": cap / npos if npos else np.nan,
                         "precision_at_k": cap / listed.sum() if listed.sum() else np.nan,
                         "n_listed": int(listed.sum())})
    out = pd.DataFrame(rows)
    if baseline is not None and len(out):
        base = out[out["model"] == baseline].set_index("k")["recall_at_k"]
        out["baseline_recall"] = out["k"].map(base)
        out["gain"] = out["recall_at_k"] - out["baseline_recall"]
    return out


def metric_row(y: np.ndarray, s: np.ndarray, df: pd.DataFrame, col: str, label: str, group: str,
               k: int) -> dict[str, float]:
    """n, positives, AUC, average precision, Brier and capture at k of one score column.

    Capture is NaN when ``df`` has no ``group`` column.
    """
    cap = capture_at_k(df, col, label, group, k) if group in df.columns else None
    return {"n": len(y), "n_positives": float(np.sum(y)), "auc": roc_auc(y, s), "pr_auc": pr_auc(y, s),
            "brier": brier(y, s),
            "recall_at_k": float(cap["recall_at_k"]) if cap is not None else np.nan,
            "precision_at_k": float(cap["precision_at_k"]) if cap is not None else np.nan}


def metrics_by_county(scores: pd.DataFrame, models: Sequence[str], label: str = "label",
                      county_col: str = "county_code", group: str = "village_code", k: int = 5) -> pd.DataFrame:
    """Metrics of each score column within each county (AUC NaN where a county has one class)."""
    rows = []
    for cc, d in scores.groupby(county_col, sort=True):  # loop over counties and models
        y = d[label].to_numpy(dtype=float)
        for m in models:
            rows.append({county_col: cc, "model": m,
                         **metric_row(y, d[m].to_numpy(dtype=float), d, m, label, group, k)})
    return pd.DataFrame(rows)


def stability(by_county: pd.DataFrame, metrics: Sequence[str] = ("auc", "pr_auc", "brier", "recall_at_k")
              ) -> pd.DataFrame:
    """Spread of per-county metrics: mean, SD, min, max and IQR across counties per model."""
    long = by_county.melt(id_vars=["model"], value_vars=list(metrics), var_name="metric")
    g = long.groupby(["model", "metric"])["value"]
    out = g.agg(n_counties="count", mean="mean", sd="std", min="min", max="max")
    out["iqr"] = g.quantile(0.75) - g.quantile(0.25)
    return out.reset_index()
