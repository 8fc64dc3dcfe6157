"""Monitoring cases: their states, the review chain, and who becomes a case in a month.

States follow the closure chain of [D4] §5 (村级填报、乡(镇)审查、市县审核、省级备案…销号):
``identified -> assisted -> elimination_proposed -> village_approved -> township_approved ->
county_approved -> province_filed -> closed``; any approval step may send the case back to
``assisted``; a closed case with a new risk is ``reopened`` and assisted again.

Identification (:func:`identify`) is the official definition applied to a month: a household
with a risk event of the month (department records linked to it) whose last known yearly income
per capita is below the monitoring line (x ``income_factor``) becomes a 脱贫不稳定户 (exited) or
边缘易致贫户 (not registered); a severe event (out-of-pocket cost or disaster loss above the
policy amounts) makes any non-poor household a 突发严重困难户.
"""
from __future__ import annotations

import calendar
from dataclasses import dataclass

import numpy as np
import pandas as pd

from evalkit.config import Policy
from evalkit.errors import ConfigError

__all__ = ["STATES", "TRANSITIONS", "OPEN_STATES", "RISKS", "ASSETS", "MonitoringPolicy", "allowed",
           "month_end", "risk_events", "identify"]

#: Case states in chain order.
STATES = ("identified", "assisted", "elimination_proposed", "village_approved", "township_approved",
          "county_approved", "province_filed", "closed", "reopened")
#: Allowed transitions (from -> set of to).
TRANSITIONS: dict[str, frozenset[str]] = {
    "identified": frozenset({"assisted"}),
    "reopened": frozenset({"assisted"}),
    "assisted": frozenset({"elimination_proposed"}),
    "elimination_proposed": frozenset({"village_approved", "assisted"}),
    "village_approved": frozenset({"township_approved", "assisted"}),
    "township_approved": frozenset({"county_approved", "assisted"}),
    "county_approved": frozenset({"province_filed", "assisted"}),
    "province_filed": frozenset({"closed"}),
    "closed": frozenset({"reopened"}),
}
#: States of a case still under monitoring.
OPEN_STATES = tuple(s for s in STATES if s != "closed")
#: Hardship risks (codes of the ``risk_category`` list) by department table.
RISKS = {"dept_hospital": "illness", "dept_disaster": "disaster", "dept_dropout": "schooling",
         "dept_housing": "housing", "dept_water": "water", "dept_assistance": "rigid_expenditure"}
#: Records contradicting poverty (codes of the ``suspicion`` list) by department table.
ASSETS = {"dept_vehicle": "vehicle", "dept_business": "business", "dept_property": "property",
          "dept_payroll": "payroll"}


@dataclass(frozen=True)
class MonitoringPolicy:
    """``[monitoring]`` of the policy: deadlines per risk and what makes an event severe."""

    deadline_days: dict[str, int]
    severe_out_of_pocket: float
    severe_disaster_loss: float
    income_factor: float

    @classmethod
    def from_policy(cls, policy: Policy) -> "MonitoringPolicy":
        """Read ``[monitoring]``; a missing key is a :class:`ConfigError`."""
        try:
            s = policy.section("monitoring")
            return cls({str(k): int(v) for k, v in s["deadline_days"].items()}, float(s["severe_out_of_pocket"]),
                       float(s["severe_disaster_loss"]), float(s["income_factor"]))
        except KeyError as e:
            raise ConfigError(f"policy has no [monitoring] {e.args[0]}") from None


def allowed(frm: str, to: str) -> bool:
    """Whether the chain allows ``frm -> to``."""
    return to in TRANSITIONS.get(frm, frozenset())


def month_end(month: str) -> pd.Timestamp:
    """Last day of 'YYYY-MM'."""
    y, m = int(month[:4]), int(month[5:7])
    return pd.Timestamp(y, m, calendar.monthrange(y, m)[1])


def risk_events(matches: pd.DataFrame, mp: MonitoringPolicy) -> pd.DataFrame:
    """Hardship events of linked records: household_id, risk, severe (one row per record).

    ``matches`` holds ``table, household_id, amount, kind`` (amount: out-of-pocket cost, loss or
    assistance amount; kind: the assistance kind). 低保/特困 decisions are support, not risks.
    """
    m = matches[matches["table"].isin(list(RISKS)) & matches["household_id"].notna()]
    m = m[~((m["table"] == "dept_assistance") & m["kind"].isin(["低保", "特困"]))]
    amount = pd.to_numeric(m["amount"], errors="coerce").fillna(0.0)
    severe = ((m["table"] == "dept_hospital") & (amount >= mp.severe_out_of_pocket)) | (
        (m["table"] == "dept_disaster") & (amount >= mp.severe_disaster_loss))
    risk = m["table"].map(RISKS)
    # a routine hospital stay with a small bill is no risk; a stay is one when its cost is severe
    keep = (m["table"] != "dept_hospital") | severe
    return pd.DataFrame({"household_id": m["household_id"], "risk": risk, "severe": severe})[keep.to_numpy()]


def identify(events: pd.DataFrame, status: pd.DataFrame, mline: float, mp: MonitoringPolicy) -> pd.DataFrame:
    """Households that are monitoring objects this month, with their type and risks.

    Parameters
    ----------
    events : DataFrame
        :func:`risk_events` of the month.
    status : DataFrame
        ``household_id, register_status, income_per_capita`` (the last known year).
    mline : float
        Monitoring line of the month's year.
    mp : MonitoringPolicy

    Returns
    -------
    DataFrame
        household_id, monitor_type (unstable / marginal / sudden), risks (sorted list), severe.
    """
    if not len(events):
        return pd.DataFrame(columns=["household_id", "monitor_type", "risks", "severe"])
    g = events.groupby("household_id").agg(risks=("risk", lambda s: sorted(set(s))), severe=("severe", "any"))
    g = g.join(status.set_index("household_id")[["register_status", "income_per_capita"]], how="left")
    low = g["income_per_capita"] < mline * mp.income_factor
    exited = g["register_status"].isin(["exited", "monitored"])
    not_poor = g["register_status"].notna() & (g["register_status"] != "poor")
    typ = np.select([low & exited, low & not_poor, g["severe"] & not_poor], ["unstable", "marginal", "sudden"], "")
    out = g.assign(monitor_type=typ)[lambda d: d["monitor_type"] != ""]
    return out.reset_index()[["household_id", "monitor_type", "risks", "severe"]]
