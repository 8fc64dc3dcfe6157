"""The monthly check (月核查) and the quarterly summary (季通报) from the case store.

:func:`monthly_check` lists, at the end of a month: the month's new monitoring objects, the red
list (every open red flag with its due date), the overdue flags, the households the department
data suggest were wrongly registered (a vehicle, a company, urban property or a public salary
in a registered household, exited or not, or a monitoring case) or wrongly exited (an exited household whose
education, housing or water guarantee fails), and non-registered households with a failing
guarantee or a severe event (possible missed poor). Reasons are codes of the ``risk_category``
and ``suspicion`` lists (bilingual labels in the data dictionary). :func:`quarterly_summary`
counts new and closed cases, overdue flags, reasons, time to closure and visits of a quarter.
"""
from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pandas as pd

from evalkit.config import Policy
from evalkit.monitoring.cases import ASSETS, OPEN_STATES, MonitoringPolicy, month_end, risk_events

__all__ = ["MonthlyCheck", "QuarterSummary", "monthly_check", "quarterly_summary", "quarter_months"]

_GUARANTEE_RISKS = ("schooling", "housing", "water")


@dataclass
class MonthlyCheck:
    """The check of one month; every frame has county_code, village_code and household_id."""

    month: str
    new_cases: pd.DataFrame
    red_list: pd.DataFrame
    overdue: pd.DataFrame
    suspicions: pd.DataFrame
    missed_poor: pd.DataFrame

    def counts(self) -> pd.DataFrame:
        """Per county: new cases, red flags, overdue flags, suspicions, possible missed poor."""
        parts = {("overdue_list" if k == "overdue" else k): getattr(self, k).groupby("county_code").size()
                 for k in ("new_cases", "red_list", "overdue", "suspicions", "missed_poor")}
        return pd.DataFrame(parts).fillna(0).astype(int).rename_axis("county_code").reset_index()


def _reasons(df: pd.DataFrame, col: str) -> pd.DataFrame:
    return (df.groupby("household_id")[col].agg(lambda s: ",".join(sorted(set(s)))).rename("reasons").reset_index())


def _month_frames(con: duckdb.DuckDBPyConnection, month: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    m = con.execute("SELECT * FROM dept_matches WHERE month = ? AND household_id IS NOT NULL", [month]).df()
    h = con.execute("SELECT * FROM month_households WHERE month = ?", [month]).df()
    return m, h


def _suspicions(m: pd.DataFrame, h: pd.DataFrame, open_hh: set[str], events: pd.DataFrame) -> pd.DataFrame:
    """Wrong registration (assets while supported) and wrong exit (a guarantee failing after exit)."""
    assets = m[m["table_name"].isin(list(ASSETS))].assign(reason=lambda d: d["table_name"].map(ASSETS))
    a = _reasons(assets, "reason").merge(h, on="household_id")
    # registered (建档立卡, exited or not) or under monitoring: an asset contradicts the registration
    supported = a["register_status"].isin(["poor", "exited", "monitored", "edge"]) | a["household_id"].isin(open_hh)
    wrong_reg = a[supported].assign(suspicion="wrong_registration")
    g = events[events["risk"].isin(_GUARANTEE_RISKS)]
    b = _reasons(g, "risk").merge(h, on="household_id")
    wrong_exit = b[b["register_status"] == "exited"].assign(suspicion="wrong_exit")
    cols = ["county_code", "village_code", "household_id", "register_status", "suspicion", "reasons"]
    out = pd.concat([wrong_reg[cols], wrong_exit[cols]], ignore_index=True)
    return out.sort_values(["county_code", "household_id", "suspicion"], kind="stable").reset_index(drop=True)


def _missed(h: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    ev = events[events["risk"].isin(_GUARANTEE_RISKS) | events["severe"]]
    r = _reasons(ev, "risk").merge(h, on="household_id")
    r = r[r["register_status"].isin(["not_registered", "edge"])]
    cols = ["county_code", "village_code", "household_id", "register_status", "income_per_capita",
            "monitoring_line", "reasons"]
    return r[cols].sort_values(["county_code", "household_id"], kind="stable").reset_index(drop=True)


def monthly_check(con: duckdb.DuckDBPyConnection, month: str, policy: Policy) -> MonthlyCheck:
    """The check of ``month`` from a store connection (read-only is enough)."""
    mp = MonitoringPolicy.from_policy(policy)
    end = month_end(month)
    cases = con.execute("SELECT * FROM cases WHERE opened_month <= ?", [month]).df()
    flags = con.execute("SELECT * FROM flags WHERE flagged_month <= ? AND (cleared_month IS NULL OR cleared_month > ?)",
                        [month, month]).df()
    red = flags.merge(cases[cases["state"].isin(OPEN_STATES)], on="case_id")
    red = red.assign(due_date=pd.to_datetime(red["due_date"]), overdue=lambda d: d["due_date"] < end)
    red = red.assign(days_overdue=(end - red["due_date"]).dt.days.clip(lower=0))
    cols = ["county_code", "village_code", "household_id", "case_id", "monitor_type", "state", "risk",
            "flagged_month", "due_date", "overdue", "days_overdue"]
    red = red[cols].sort_values(["county_code", "case_id", "risk"], kind="stable").reset_index(drop=True)
    new = cases[cases["opened_month"] == month][["county_code", "village_code", "household_id", "case_id",
                                                 "monitor_type", "risks"]].sort_values("case_id").reset_index(drop=True)
    m, h = _month_frames(con, month)
    events = risk_events(m.rename(columns={"table_name": "table"}), mp)
    open_hh = set(cases.loc[cases["state"].isin(OPEN_STATES), "household_id"])
    return MonthlyCheck(month, new, red, red[red["overdue"]].reset_index(drop=True),
                        _suspicions(m, h, open_hh, events), _missed(h, events))


@dataclass
class QuarterSummary:
    """Per county and in total: new, closed, open and overdue cases, reasons, closure time, visits."""

    quarter: str
    by_county: pd.DataFrame
    reasons: pd.DataFrame
    closure_months: pd.DataFrame


def quarter_months(quarter: str) -> list[str]:
    """'YYYY-Qn' -> its three months 'YYYY-MM'."""
    y, q = quarter[:4], int(quarter[-1])
    return [f"{y}-{m:02d}" for m in range(3 * q - 2, 3 * q + 1)]


def quarterly_summary(con: duckdb.DuckDBPyConnection, quarter: str) -> QuarterSummary:
    """The quarter's report numbers from a store connection."""
    months = quarter_months(quarter)
    last = months[-1]
    cases = con.execute("SELECT * FROM cases WHERE opened_month <= ?", [last]).df()
    hist = con.execute("SELECT * FROM case_history WHERE month <= ?", [last]).df()
    closed = hist[(hist["to_state"] == "closed") & hist["month"].isin(months)].merge(
        cases[["case_id", "county_code", "opened_month"]], on="case_id")
    flags = con.execute("SELECT f.*, c.county_code FROM flags f JOIN cases c USING (case_id) "
                        "WHERE f.flagged_month <= ? AND f.cleared_month IS NULL AND f.due_date < ?",
                        [last, month_end(last).date()]).df()
    visits = con.execute("SELECT v.*, c.county_code FROM visits v JOIN cases c USING (case_id)").df()
    visits = visits[pd.to_datetime(visits["visit_date"]).dt.strftime("%Y-%m").isin(months)]
    by = pd.DataFrame({
        "new_cases": cases[cases["opened_month"].isin(months)].groupby("county_code").size(),
        "closed_cases": closed.groupby("county_code").size(),
        "open_cases": cases[cases["state"].isin(OPEN_STATES)].groupby("county_code").size(),
        "overdue_flags": flags.groupby("county_code").size(),
        "visits": visits.groupby("county_code").size(),
    }).fillna(0).astype(int).rename_axis("county_code").reset_index()
    new = cases[cases["opened_month"].isin(months)].assign(risk=lambda d: d["risks"].str.split(","))
    reasons = new.explode("risk").groupby(["county_code", "risk"]).size().rename("cases").reset_index()
    ym = lambda s: s.str.slice(0, 4).astype(int) * 12 + s.str.slice(5, 7).astype(int)  # noqa: E731
    closure = closed.assign(months_to_closure=ym(closed["month"]) - ym(closed["opened_month"]))
    return QuarterSummary(quarter, by, reasons, closure[["county_code", "case_id", "opened_month", "month",
                                                         "months_to_closure"]].reset_index(drop=True))
