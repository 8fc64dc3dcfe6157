"""Poverty measures with design-based uncertainty: FGT, Watts, Gini and Alkire–Foster from a :class:`SurveyDesign`.

The point estimates are those of :func:`evalkit.measures.poverty_measures` and
:func:`evalkit.measures.alkire_foster` (same convention: poor if income <= line by default,
docs/policy.md §2); the standard errors, intervals, degrees of freedom and design effects come
from svy through the design object (Taylor linearization, with-replacement at stage 1 unless the
design says otherwise). No variance formula is written here:

* FGT0/1/2, Watts, H and M0 are person-weighted means of a household variable t_i, i.e. the ratio
  Σ w_i m_i t_i / Σ w_i m_i (w design weight, m persons) — :meth:`SurveyDesign.ratio`;
* A = M0 / H is the ratio Σ w m c 1[poor] / Σ w m 1[poor] — :meth:`SurveyDesign.ratio`;
* the Gini's variance is that of the total of its linearized variable m_i u_i
  (:func:`evalkit.measures.poverty.gini_linearized`, Kovačević–Binder / Langel–Tillé); svy
  estimates it as the ratio Σ w m (Ĝ + Ω u) / Σ w m (Ω = persons of the domain), whose value is
  Ĝ and whose linearized variable is exactly m u.

Domains (``by``) are estimated on the whole design (zero outside the domain), as R ``survey``
and svy do. An undefined measure (Watts with a poor income <= 0, Gini with a mean income <= 0,
A without a poor household) is NaN in its group alone, with the Note of the measures module in
``attrs["notes"]``.
"""
from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
import pandas as pd

from evalkit.config import Policy
from evalkit.errors import SurveyError
from evalkit.measures.alkire_foster import alkire_foster, deprivation_scores
from evalkit.measures.columns import as_list
from evalkit.measures.poverty import (
    MEASURES,
    gini_linearized,
    group_codes,
    population_weights,
    poverty_measures,
    poverty_terms,
)
from evalkit.survey.design import Estimate, Estimates, SurveyDesign

__all__ = ["DESIGN_COLUMNS", "AF_DESIGN_MEASURES", "poverty_measures_design", "alkire_foster_design"]

#: Columns of the results after the group keys.
DESIGN_COLUMNS: tuple[str, ...] = ("measure", "est", "se", "lci", "uci", "df", "n", "deff")
#: Alkire–Foster measures given with their SE by :func:`alkire_foster_design`.
AF_DESIGN_MEASURES: tuple[str, ...] = ("H", "A", "M0")


def _check_sample(design: SurveyDesign, data: pd.DataFrame, weight: str, persons: str | None) -> np.ndarray:
    """Persons per row (1 when None), after checking that ``data`` is the design's sample."""
    if len(data) != design.n:
        raise SurveyError(f"the data have {len(data)} rows; the survey design has {design.n}")
    for c in (weight, persons):
        if c is not None and c not in data.columns:
            raise SurveyError(f"the sample lacks column {c!r}")
    w = pd.to_numeric(data[weight], errors="coerce").to_numpy(dtype=float)
    # The design's weights are not public: their sum (the estimated total of 1) must match.
    try:
        tot = design.total(np.ones(design.n))["all"].est
    except SurveyError:  # svy cannot estimate a zero-variance total (equal weights, equal PSUs): no check
        tot = np.nansum(w)
    if not np.isclose(np.nansum(w), tot, rtol=1e-9):
        raise SurveyError(f"column {weight!r} sums to {np.nansum(w):.6g}, the design's weights to {tot:.6g}: "
                          "pass the design's weight column")
    return population_weights(data, None, persons)


class _Ratio:
    """svy's domain ratios, with a fallback for a ratio constant within every domain.

    svy refuses a variable with no variation (its design effect divides by a zero SRS variance),
    e.g. FGT0 in a sample without a poor household. Such a ratio is known exactly in each domain
    (SE 0); its df and n are svy's for the same domains (taken from a varying variable, as they
    do not depend on the values).
    """

    def __init__(self, design: SurveyDesign, dom: np.ndarray | None, m: np.ndarray, codes: np.ndarray) -> None:
        self.design, self.dom, self.m, self.codes = design, dom, m, codes
        self._ref: Estimates | None = None

    def __call__(self, num: np.ndarray, den: np.ndarray) -> Estimates:
        try:
            return self.design.ratio(num, den, by=self.dom)
        except SurveyError:
            pos = den > 0
            r = pd.Series(np.where(pos, num / np.where(pos, den, 1.0), np.nan))
            per = r.groupby(self.codes).agg(["min", "max"])
            if not (per["min"].eq(per["max"]) | per["min"].isna()).all():
                raise
        ref = self._reference()
        consts = per["min"].to_numpy()
        items = {k: Estimate(float(consts[g]), 0.0, float(consts[g]), float(consts[g]), e.df, e.n, None, e.domain)
                 for g, (k, e) in enumerate(ref.items.items())}
        return Estimates(ref.names, items, np.zeros((len(ref.names), len(ref.names))), self.design.alpha)

    def _reference(self) -> Estimates:
        if self._ref is None:
            try:
                self._ref = self.design.ratio(self.m * np.arange(self.design.n), self.m, by=self.dom)
            except SurveyError:  # one-row domains: df = PSUs - strata, n = rows per domain
                n = np.bincount(self.codes)
                names = tuple(str(g) for g in range(len(n))) if self.dom is not None else ("all",)
                df = self.design.n_psus - self.design.n_strata
                items = {k: Estimate(np.nan, 0.0, np.nan, np.nan, df, int(n[g]), None, None)
                         for g, k in enumerate(names)}
                self._ref = Estimates(names, items, np.zeros((len(names), len(names))), self.design.alpha)
        return self._ref


def _rows(est: Estimates, grouped: bool, measure: str, point: np.ndarray, defined: np.ndarray) -> pd.DataFrame:
    """One row per group from svy's domain estimates, the point estimate being ``point`` (the measures')."""
    n_groups = len(point)
    keys = [str(g) for g in range(n_groups)] if grouped else ["all"]
    out = {c: np.full(n_groups, np.nan) for c in ("se", "lci", "uci", "df", "n", "deff")}
    for g, k in enumerate(keys):
        if k not in est.names:
            continue
        e = est[k]
        # svy's estimate equals the point to rounding; centre its interval on the exact point
        shift = point[g] - e.est
        out["se"][g], out["lci"][g], out["uci"][g] = e.se, e.lci + shift, e.uci + shift
        out["df"][g], out["n"][g] = e.df, e.n
        out["deff"][g] = np.nan if e.deff is None else e.deff
    out["est"] = np.asarray(point, dtype=float)
    undefined = ~np.asarray(defined, dtype=bool)
    for c in ("est", "se", "lci", "uci", "deff"):
        out[c] = np.where(undefined, np.nan, out[c])
    return pd.DataFrame({"measure": measure, **{c: out[c] for c in ("est", "se", "lci", "uci", "df", "n", "deff")}})


def _assemble(keys: pd.DataFrame, by_l: list[Hashable], parts: list[pd.DataFrame], order: Sequence[str]
              ) -> pd.DataFrame:
    n_groups = len(keys)
    frames = []
    for part in parts:
        frames.append(pd.concat([keys.reset_index(drop=True), part.reset_index(drop=True)], axis=1)
                      .assign(__g=np.arange(n_groups)))
    out = pd.concat(frames, ignore_index=True)
    out["__m"] = out["measure"].map({m: i for i, m in enumerate(order)})
    out = out.sort_values(["__g", "__m"], kind="mergesort").reset_index(drop=True)
    out["n"] = out["n"].astype("Int64")
    out["df"] = out["df"].astype("Int64")
    return out[[*by_l, *DESIGN_COLUMNS]]


def poverty_measures_design(
    design: SurveyDesign,
    data: pd.DataFrame,
    income: str,
    line: str | float,
    *,
    weight: str,
    by: Hashable | Sequence[Hashable] | None = None,
    persons: str | None = None,
    poor_if: str = "le",
) -> pd.DataFrame:
    """FGT0/1/2, Watts and Gini per group with design-based SE, CI, df and design effect.

    Parameters
    ----------
    design : SurveyDesign
        The design of the sample ``data`` (same rows, same order).
    data : DataFrame
        The sample, one row per household.
    income, line : str, str or float
        Per-capita income column; poverty-line column or one value.
    weight : str
        The design's weight column in ``data`` (checked against the design's weights).
    by : column name or list, optional
        Grouping columns (domains); the whole sample when None. Missing keys form their own group.
    persons : str, optional
        Household-size column (persons are the unit, as in :func:`~evalkit.measures.poverty_measures`).
    poor_if : {"le", "lt"}
        Poor if income <= line (default, docs/policy.md §2) or income < line.

    Returns
    -------
    DataFrame
        ``[*by, measure, est, se, lci, uci, df, n, deff]``, measures in the order of
        :data:`evalkit.measures.MEASURES`; ``est`` equals ``poverty_measures``' value; the
        interval is svy's t interval at the design's confidence on ``df`` degrees of freedom;
        ``n`` the sample rows of the group. ``attrs["notes"]``: Notes of undefined measures;
        ``attrs["variance"]`` = "linearization".
    """
    m = _check_sample(design, data, weight, persons)
    by_l = as_list(by)
    point = poverty_measures(data, income, line, by=by_l or None, weight=weight, persons=persons,
                             poor_if=poor_if)
    codes, keys = group_codes(data, by_l or None)
    n_groups = len(keys)
    dom = codes.astype(str) if by_l else None
    values = point["value"].to_numpy().reshape(n_groups, len(MEASURES))
    y = data[income].to_numpy(dtype=float)
    z = data[line].to_numpy(dtype=float) if isinstance(line, str) else np.full(len(data), float(line))
    terms = poverty_terms(y, z, poor_if)
    ratio = _Ratio(design, dom, m, codes)
    grouped = bool(by_l)
    parts = []
    for j, meas in enumerate(MEASURES[:4]):
        t = terms[meas].fillna(0.0).to_numpy()  # undefined Watts: its groups are masked below
        parts.append(_rows(ratio(m * t, m), grouped, meas, values[:, j], np.isfinite(values[:, j])))
    # Gini: svy's ratio of m (G + Ω u) to m has value G and linearized variable m u (see module doc).
    omega = population_weights(data, weight, persons)
    g_hat, u = gini_linearized(y, omega, codes)
    ok = np.isfinite(g_hat)
    pop = np.bincount(codes, weights=omega, minlength=n_groups)
    num = np.where(ok[codes], m * (g_hat[codes] + pop[codes] * u), 0.0)
    g_point = values[:, len(MEASURES) - 1]
    parts.append(_rows(ratio(num, m), grouped, "gini", g_point, np.isfinite(g_point)))
    out = _assemble(keys, by_l, parts, MEASURES)
    out.attrs["notes"] = list(point.attrs.get("notes", []))
    out.attrs["variance"] = "linearization"
    return out


def alkire_foster_design(
    design: SurveyDesign,
    data: pd.DataFrame,
    dimensions: dict[str, float] | list[str] | None = None,
    k: float | None = None,
    *,
    weight: str,
    by: Hashable | Sequence[Hashable] | None = None,
    persons: str | None = None,
    deprived_if_false: bool = True,
    policy: Policy | None = None,
) -> pd.DataFrame:
    """Alkire–Foster H, A and M0 per group with design-based SE, CI, df and design effect.

    H and M0 are person-weighted means (of 1[poor] and of the censored score c·1[poor]); A = M0/H
    the ratio Σ w m c 1[poor] / Σ w m 1[poor]. Parameters as in
    :func:`evalkit.measures.alkire_foster` and :func:`poverty_measures_design`.

    Returns
    -------
    DataFrame
        ``[*by, measure, est, se, lci, uci, df, n, deff]`` for H, A, M0; ``est`` equals
        ``alkire_foster``' value; A is NaN (with a Note in ``attrs["notes"]``) in a group with no
        poor household.
    """
    m = _check_sample(design, data, weight, persons)
    by_l = as_list(by)
    point = alkire_foster(data, dimensions, k, by=by_l or None, weight=weight, persons=persons,
                          deprived_if_false=deprived_if_false, policy=policy)
    scores = deprivation_scores(data, dimensions, k, deprived_if_false, policy)
    codes, keys = group_codes(data, by_l or None)
    n_groups = len(keys)
    dom = codes.astype(str) if by_l else None
    poor = scores["poor"].to_numpy(dtype=float)
    cens = scores["censored"].to_numpy(dtype=float)
    pv = {meas: point.loc[point["measure"] == meas, "value"].to_numpy() for meas in AF_DESIGN_MEASURES}
    ratio = _Ratio(design, dom, m, codes)
    grouped = bool(by_l)
    has_poor = np.bincount(codes, weights=m * poor, minlength=n_groups) > 0
    parts = [_rows(ratio(m * poor, m), grouped, "H", pv["H"], np.isfinite(pv["H"])),
             _rows(ratio(m * cens, m), grouped, "M0", pv["M0"], np.isfinite(pv["M0"]))]
    if has_poor.any():  # svy gives NaN for a domain without a poor household (zero denominator)
        a_est = ratio(m * cens, m * poor)
    else:
        a_est = Estimates((), {}, np.zeros((0, 0)), design.alpha)
    parts.append(_rows(a_est, grouped, "A", pv["A"], has_poor & np.isfinite(pv["A"])))
    out = _assemble(keys, by_l, parts, AF_DESIGN_MEASURES)
    out.attrs["notes"] = list(point.attrs.get("notes", []))
    out.attrs["variance"] = "linearization"
    return out
