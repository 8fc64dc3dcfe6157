"""Return-to-poverty (返贫) and falling-into-poverty (致贫) labels per household and year t.

An exited household *returned* at t+1 (a non-registered one *became poor*) when its per-capita
income falls below the line of t+1 or a guarantee fails at t+1; line, guarantees and horizon
come from ``[risk]`` of the policy (docs/policy.md §5).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from evalkit.config import Policy
from evalkit.errors import RiskModelError
from evalkit.risk.panel import (
    LINES,
    Grid,
    flag_values,
    household_info,
    line_values,
    numbers,
    panel_frame,
    register_at,
    require_columns,
)

__all__ = ["POPULATIONS", "LABEL_NAMES", "LABEL_COLUMNS", "label_definition", "make_labels"]

#: Populations a label can be made for.
POPULATIONS: tuple[str, ...] = ("exited", "non_registered")
#: Meaning of label 1 in each population.
LABEL_NAMES: dict[str, str] = {"exited": "returned", "non_registered": "became_poor"}
#: Columns of :func:`make_labels`: outcomes, never inputs (a default feature list must not pick them up).
LABEL_COLUMNS = frozenset({"label", "population", "outcome"})


def _populations(population: str) -> tuple[str, ...]:
    if population == "both":
        return POPULATIONS
    if population not in POPULATIONS:
        raise RiskModelError(f"population must be 'exited', 'non_registered' or 'both', got {population!r}")
    return (population,)


def label_definition(policy: Policy, line: str | None = None, guarantees: Sequence[str] | None = None,
                     horizon: int | None = None) -> tuple[str, list[str], int]:
    """The label's (line, guarantees, horizon): each given value, else the policy's ``[risk]`` default.

    Raises :class:`~evalkit.errors.RiskModelError` for an unknown line or a horizon below 1.
    """
    cfg = policy.risk
    line = cfg.label_line if line is None else line
    if line not in LINES:
        raise RiskModelError(f"line must be one of {LINES}, got {line!r}")
    g = list(cfg.label_guarantees if guarantees is None else guarantees)
    h = int(cfg.horizon if horizon is None else horizon)
    if h < 1:
        raise RiskModelError(f"horizon must be >= 1, got {h}")
    return line, g, h


def _events(p: pd.DataFrame, policy: Policy, line: str, guar: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Event of each row (1, 0, NaN unknown) and ln(max(income, 1) / line)."""
    lv = line_values(p["county_code"], p["year"], policy, line)
    inc = numbers(p["income_per_capita"])
    with np.errstate(invalid="ignore", divide="ignore"):
        below = inc < lv
        ratio = np.log(np.maximum(inc, 1.0) / lv)
    known_inc = ~np.isnan(inc)
    gv = [flag_values(p[c]) for c in guar]
    failed = np.logical_or.reduce([v == 0 for v in gv]) if gv else np.zeros(len(p), bool)
    all_ok = np.logical_and.reduce([v == 1 for v in gv]) if gv else np.ones(len(p), bool)
    ev = np.where(below | failed, 1.0, np.where(known_inc & all_ok, 0.0, np.nan))
    return ev, ratio


def _window(g: Grid, n: int, ev: np.ndarray, ratio: np.ndarray, h: int) -> tuple[np.ndarray, np.ndarray]:
    """Label (1, 0, NaN) and lowest log ratio over t+1..t+h, as households × years matrices."""
    E = g.wide(ev)
    present = g.wide(np.ones(n, bool), fill=False, dtype=bool)
    R = g.wide(ratio)
    any_pos = np.zeros(g.shape, bool)
    all_neg = np.ones(g.shape, bool)
    window_ok = np.ones(g.shape, bool)
    outcome = np.full(g.shape, np.inf)
    unknown_outcome = np.zeros(g.shape, bool)
    for k in range(1, h + 1):  # loop over the horizon, not rows
        ek = Grid.lead(E, k)
        any_pos |= ek == 1
        all_neg &= ek == 0
        window_ok &= Grid.lead(present, k, fill=False)
        rk = Grid.lead(R, k)
        unknown_outcome |= np.isnan(rk)
        outcome = np.fmin(outcome, rk)
    outcome = np.where(unknown_outcome, np.nan, outcome)
    lab = np.where(any_pos, 1.0, np.where(all_neg, 0.0, np.nan))
    return np.where(window_ok, lab, np.nan), outcome


def _check_exited(p: pd.DataFrame, ex_t: np.ndarray, counties: Iterable[str] | None, population: str) -> None:
    """Return-to-poverty labels need exited households in every requested county."""
    cc = p["county_code"].astype(str).to_numpy()
    with_exits = set(cc[ex_t])
    asked = sorted({str(c) for c in counties}) if counties is not None else sorted(set(cc))
    lacking = [c for c in asked if c not in with_exits]
    if counties is not None and lacking:
        raise RiskModelError(
            f"county/counties {lacking} have no exited households (no exit_year in the panel "
            "period), so there is nothing to return to poverty; use population='non_registered' "
            "for falling-into-poverty labels, or drop these counties")
    if population == "exited" and not with_exits:
        raise RiskModelError(
            f"no county in the panel ({', '.join(asked[:10])}) has exited households; "
            "return-to-poverty labels need households with an exit_year")


def make_labels(
    panel: pd.DataFrame,
    households: pd.DataFrame,
    policy: Policy,
    line: str | None = None,
    guarantees: Sequence[str] | None = None,
    horizon: int | None = None,
    population: str = "exited",
    counties: Iterable[str] | None = None,
) -> pd.DataFrame:
    """Return-to-poverty / falling-into-poverty labels per household and year t.

    An *event* in year s: income per capita strictly below the line of s (of the household's
    province for the monitoring line) or a known failure of one of ``guarantees`` in s.
    The label at t is 1 when an event occurs in any of t+1..t+h. Populations at t:
    ``exited`` — exit_year ≤ t (label meaning *returned*); ``non_registered`` — not registered
    at t (never registered, or registered after t; label meaning *became poor*). Registered
    households not exited at t are not at risk of returning and get no label.

    A row is labelled only when every year t+1..t+h is in the panel for the household; rows
    whose window runs beyond the panel's last year, or has a missing household-year, or whose
    event status is unknown (missing income, no other event) are dropped — never NaN labels.

    Parameters
    ----------
    panel, households : DataFrame
        Canonical tables (``panel``: household_id, year, county_code, income_per_capita and the
        guarantee columns; ``households``: household_id, registered, registration_year, exit_year).
    policy : Policy
    line : {'monitoring', 'poverty'}, optional
        Default ``policy.risk.label_line``.
    guarantees : list of str, optional
        Guarantee columns whose failure is an event; default ``policy.risk.label_guarantees``;
        ``[]`` for an income-only label.
    horizon : int, optional
        h, default ``policy.risk.horizon``.
    population : {'exited', 'non_registered', 'both'}
    counties : iterable of str, optional
        Restrict to these counties; with population 'exited' each must have exited households.

    Returns
    -------
    DataFrame
        ``household_id, year, label (int8), population, outcome`` where ``outcome`` is the lowest
        ln(income / line) over t+1..t+h (the continuous outcome of the vulnerability model;
        NaN when an income is missing). ``attrs['definition']`` records the definition.
    """
    line, guar, h = label_definition(policy, line, guarantees, horizon)
    pops = _populations(population)
    require_columns(panel, ["income_per_capita", *guar], "make_labels")
    p = panel_frame(panel, counties)
    g = Grid(p["household_id"], p["year"])
    info = household_info(households, g.ids, "make_labels")
    t = p["year"].to_numpy(dtype=np.int64)
    ev, ratio = _events(p, policy, line, guar)
    lab, outcome = _window(g, len(p), ev, ratio, h)

    reg_t, ex_t, _ = register_at(info, g.hi, t)
    pop = np.where(ex_t, "exited", np.where(~reg_t, "non_registered", ""))
    lab_l = g.long(lab)
    keep = np.isin(pop, pops) & ~np.isnan(lab_l)
    out = pd.DataFrame({
        "household_id": p["household_id"].to_numpy()[keep],
        "year": t[keep],
        "label": lab_l[keep].astype(np.int8),
        "population": pop[keep].astype(object),
        "outcome": g.long(outcome)[keep],
    })
    if "exited" in pops:
        _check_exited(p, ex_t, counties, population)
    out.attrs["definition"] = {
        "line": line, "guarantees": guar, "horizon": h, "population": population,
        "label_names": {k: LABEL_NAMES[k] for k in pops},
        "event": f"income per capita < {line} line of the year, or a failed guarantee, in t+1..t+{h}",
    }
    return out
