"""Return-to-poverty monitoring as one call: validate models out of time, then score the latest year.

The risk notebook calls :func:`run_monitoring` and only displays what it returns.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd

from . import io, risk
from .config import Policy, load_policy
from .report import write_json

__all__ = ["MonitoringRun", "run_monitoring", "write_outputs", "MODEL_NAMES"]

MODEL_NAMES = ("rule", "logit", "boosting", "vulnerability")


@dataclass
class MonitoringRun:
    """Everything the risk report shows."""

    validation: risk.ValidationResult
    labels: pd.DataFrame
    features: pd.DataFrame
    warnings: pd.DataFrame
    watch: pd.DataFrame
    effects: pd.DataFrame
    best_model: str
    score_year: int
    capacity_k: int
    test_year: int
    train_years: list[int]
    data_sha256: str
    villages: pd.DataFrame

    def results(self) -> dict:
        """``results.json``: ``test_year``, one object per model, ``rule_baseline``, ``capacity_k``, ...

        Every model object holds ``roc_auc, pr_auc, brier, recall_at_k, precision_at_k`` on the
        held-out year; ``rule_baseline`` is the policy rule scored the same way.
        """
        from . import __version__

        m = self.validation.metrics.set_index("model")
        out: dict = {"test_year": int(self.test_year), "capacity_k": int(self.capacity_k),
                     "train_years": [int(y) for y in self.train_years], "best_model": self.best_model,
                     "score_year": int(self.score_year), "models": []}
        for name, r in m.iterrows():
            vals = {"roc_auc": float(r["auc"]), "pr_auc": float(r["pr_auc"]), "brier": float(r["brier"]),
                    "recall_at_k": float(r["recall_at_k"]), "precision_at_k": float(r["precision_at_k"])}
            if name == "rule":
                out["rule_baseline"] = vals
            else:
                out[name] = vals
                out["models"].append(name)
        out["red_households"] = int((self.warnings["level"] == "red").sum())
        out["data_sha256"] = self.data_sha256
        out["evalkit_version"] = __version__
        return out

    def red_share_by_county(self) -> pd.DataFrame:
        """Share of monitored households on the red list, per county (for the province map)."""
        out = (self.warnings.assign(red=self.warnings["level"].eq("red"))
               .groupby("county_code").agg(households=("red", "size"), red=("red", "sum")).reset_index())
        out["red_share"] = out["red"] / out["households"]
        return out

    def returns_by_year(self) -> pd.DataFrame:
        """Observed returns: labelled households and the share that returned, by year t (event at t+1)."""
        g = self.labels.groupby(["population", "year"])["label"]
        return pd.DataFrame({"n": g.size(), "events": g.sum(), "rate": g.mean().round(4)})


def run_monitoring(data_dir: str | Path, counties: Sequence[str] | str = "all", train_years: Sequence[int] | None = None,
                   test_year: int | None = None, models: Sequence[str] = MODEL_NAMES, capacity_k: int = 5,
                   policy: Policy | None = None, population: str = "exited") -> MonitoringRun:
    """Validate the risk models out of time and produce the current early-warning list.

    Parameters
    ----------
    data_dir : path
    counties : 'all' or list of county codes
    train_years : list of int, optional
        Years t used for training (labels at t+1); default every labelled year before ``test_year``.
    test_year : int, optional
        Held-out year t; default the last labelled year.
    models : names among :data:`MODEL_NAMES`
    capacity_k : int
        Households each village can follow up (list size for capture@k).
    """
    policy = policy or load_policy()
    unknown = sorted(set(models) - set(MODEL_NAMES))
    if unknown:
        raise risk.RiskModelError(f"unknown model(s) {unknown}; choose from {list(MODEL_NAMES)}")
    if "rule" not in models:
        models = ["rule", *models]  # every model is compared with what offices do today
    cs = None if counties in ("all", None) else [str(c) for c in counties]
    ds = io.load_dataset(data_dir, tables=["counties", "villages", "households", "members", "panel"],
                         counties=cs, validate=False)
    panel, hh, mem = ds["panel"], ds["households"], ds["members"]
    labels = risk.make_labels(panel, hh, policy=policy, population=population)
    years = sorted(labels["year"].unique())
    if not years:
        raise risk.RiskModelError("the panel gives no labelled household-year (need at least two years)")
    test_year = int(test_year) if test_year is not None else int(years[-1])
    train_years = [int(y) for y in (train_years if train_years is not None else [y for y in years if y < test_year])]
    all_models = risk.default_models()
    chosen = {m: all_models[m] for m in models}
    feats = risk.build_features(panel, hh, mem, policy=policy)
    vr = risk.out_of_time(panel, hh, mem, chosen, train_years=train_years, test_year=test_year, policy=policy,
                          population=population, features=feats, labels=labels, k=capacity_k)
    met = vr.metrics.set_index("model")
    candidates = met.drop(index="rule", errors="ignore")
    best = str(candidates["recall_at_k"].idxmax()) if len(candidates) else "rule"
    # Current list: refit the best model on every labelled year, score the latest panel year.
    score_year = int(panel["year"].max())
    lab_all = labels
    X = lab_all.merge(feats, on=["household_id", "year"], how="left", suffixes=("", "_f"))
    cols = risk.feature_columns(feats)
    model = risk.default_models()[best]
    model.fit(X[cols + [c for c in ("village_code", "county_code", "year") if c in X.columns and c not in cols]],
              X["label"].to_numpy())
    exited = hh.loc[hh["exit_year"].notna() & (hh["exit_year"] <= score_year), "household_id"]
    cur = feats[(feats["year"] == score_year) & feats["household_id"].isin(exited)].copy()
    cur["score"] = model.predict_proba(cur[cols + [c for c in ("village_code", "county_code", "year")
                                                   if c in cur.columns and c not in cols]])[:, 1]
    warnings = risk.early_warning(cur, policy=policy)
    watch = risk.watchlist(warnings, hh, mem, villages=ds["villages"], k=None)
    eff = vr.models["logit"].effects() if "logit" in vr.models else pd.DataFrame()
    return MonitoringRun(validation=vr, labels=labels, features=feats, warnings=warnings, watch=watch, effects=eff,
                         best_model=best, score_year=score_year, capacity_k=int(capacity_k), test_year=test_year,
                         train_years=train_years, data_sha256=ds.sha256, villages=ds["villages"])


def write_outputs(run: MonitoringRun, output_dir: str | Path, lang: str = "zh") -> dict[str, Path]:
    """Write ``results.json``, ``watchlist.xlsx`` (masked) and ``red_share_by_county.csv``."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"results": write_json(run.results(), out / "results.json")}
    paths["watchlist"] = risk.write_watchlist_xlsx(run.watch, out / "watchlist.xlsx", lang=lang)
    rs = run.red_share_by_county()
    p = out / "red_share_by_county.csv"
    rs.to_csv(p, index=False, encoding="utf-8-sig")
    paths["red_share"] = p
    return paths
