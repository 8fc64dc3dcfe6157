"""Monthly risk scoring vs the monitoring rule, on held-out counties and months (issue 13, item 4).

What is known at the end of month M of year Y: the yearly panel up to Y-1 (register status,
recorded income relative to the monitoring line, shocks, assistance) and the department records
of months 1..M of Y, linked to households (:func:`evalkit.monitoring.cycle.month_matches`). The
label is the generator's truth ``true_risk_event`` of Y+1 (income below the monitoring line the
next year), for households not poor at Y-1.

- **rule**: households that are monitoring objects by month M (the official definition applied by
  :func:`evalkit.monitoring.cases.identify` to every month 1..M);
- **logit**: a logistic regression on the known features, fitted on the training counties at
  month 6 and scored at months 7-12 on the *other* counties; it flags as many households as the
  rule does (the same monitoring capacity).

Capture = flagged households with the event / households with the event; precision = flagged with
the event / flagged.

Usage::

    python benchmarks/bench_monthly_risk.py --data data/demo --year 2024
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from evalkit.config import load_policy
from evalkit.monitoring.cases import ASSETS, MonitoringPolicy, identify, risk_events
from evalkit.monitoring.cycle import month_matches, population
from evalkit.monitoring.intake import read_month
from evalkit.monitoring.linkage import LinkagePolicy, load_key
from evalkit.workflows.monthly import ensure_departments

_EVENTS = ("illness", "disaster", "schooling", "housing", "water", "rigid_expenditure")


def _monthly_events(data: Path, year: int, policy) -> pd.DataFrame:
    """Linked events per household and month: household_id, month, risk (incl. assets), severe."""
    months = [f"{year}-{m:02d}" for m in range(1, 13)]
    ensure_departments(data, months, policy)
    persons, _ = population(data, year)
    key, lp, mp = load_key(Path(tempfile.gettempdir()) / "evalkit_bench_risk.key"), LinkagePolicy.from_policy(policy), \
        MonitoringPolicy.from_policy(policy)
    out = []
    for m in months:
        matches, _, _ = month_matches(read_month(data, m), persons, key, lp)
        mt = matches.rename(columns={"table_name": "table"})
        ev = risk_events(mt, mp).assign(month=int(m[5:]))
        assets = mt[mt["table"].isin(list(ASSETS)) & mt["household_id"].notna()]
        out += [ev, pd.DataFrame({"household_id": assets["household_id"], "risk": "asset", "severe": False,
                                  "month": int(m[5:])})]
    return pd.concat(out, ignore_index=True)


def _features(status: pd.DataFrame, panel: pd.DataFrame, events: pd.DataFrame, upto: int,
              mline: float) -> pd.DataFrame:
    e = events[events["month"] <= upto]
    cnt = pd.crosstab(e["household_id"], e["risk"]).reindex(columns=list(_EVENTS) + ["asset"], fill_value=0)
    sev = e.groupby("household_id")["severe"].any().rename("severe")
    f = status.set_index("household_id").join(panel.set_index("household_id")).join(cnt).join(sev)
    f[list(_EVENTS) + ["asset"]] = f[list(_EVENTS) + ["asset"]].fillna(0).clip(upper=3)
    f["severe"] = f["severe"].fillna(False).astype(float)
    f["log_ratio"] = np.log(np.maximum(f["income_per_capita"].astype(float), 1.0) / mline)
    f["exited"] = f["register_status"].isin(["exited", "monitored"]).astype(float)
    return f


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--year", type=int, default=2024)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    policy, data, y = load_policy(), Path(a.data), a.year
    events = _monthly_events(data, y, policy)
    _, status = population(data, y)
    status = status.astype({"household_id": str, "county_code": str, "register_status": str})
    status = status[status["register_status"] != "poor"]
    panel = pd.read_parquet(data / "panel", filters=[("year", "==", y - 1)],
                            columns=["household_id", "shock_illness", "shock_disaster", "shock_job_loss",
                                     "assistance"])
    truth = pd.read_parquet(data / "truth", filters=[("year", "==", y + 1)],
                            columns=["household_id", "true_risk_event"])
    mline = policy.monitoring_line(status["county_code"].iloc[0][:2], y)
    mp = MonitoringPolicy.from_policy(policy)
    counties = sorted(status["county_code"].unique())
    train_c = set(counties[::2])
    cols = ["log_ratio", "exited", "shock_illness", "shock_disaster", "shock_job_loss", "assistance", "severe",
            *_EVENTS, "asset"]
    f6 = _features(status, panel, events, 6, mline).join(truth.set_index("household_id"))
    tr = f6[f6["county_code"].isin(train_c)]
    model = LogisticRegression(max_iter=2000).fit(tr[cols].astype(float), tr["true_risk_event"].astype(int))
    rows = []
    for m in range(7, 13):
        f = _features(status, panel, events, m, mline).join(truth.set_index("household_id"))
        te = f[~f["county_code"].isin(train_c)]
        known = events[(events["month"] <= m) & (events["risk"] != "asset")]
        rule = set(identify(known, status, mline, mp)["household_id"])
        flag_rule = te.index.isin(list(rule))
        k = int(flag_rule.sum())
        score = model.predict_proba(te[cols].astype(float))[:, 1]
        flag_model = np.zeros(len(te), bool)
        flag_model[np.argsort(-score, kind="stable")[:k]] = True
        yv = te["true_risk_event"].to_numpy(dtype=bool)
        for name, fl in (("rule", flag_rule), ("logit", flag_model)):
            rows.append({"month": f"{y}-{m:02d}", "method": name, "flagged": int(fl.sum()), "events": int(yv.sum()),
                         "capture": float((fl & yv).sum() / max(yv.sum(), 1)),
                         "precision": float((fl & yv).sum() / max(fl.sum(), 1))})
    res = pd.DataFrame(rows)
    print(res.to_string(index=False))
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
