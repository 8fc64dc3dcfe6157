"""The survey design object: a field survey's strata, PSUs and weights, built once, estimated many ways.

:class:`SurveyDesign` wraps a :mod:`svy` design (stratified, clustered, weighted; population sizes
per stage where known) and answers totals, means, ratios and proportions, overall or by domain,
as typed :class:`Estimate` results (estimate, SE, CI, degrees of freedom, n, design effect).
Several ratios estimated together (:meth:`SurveyDesign.ratios`) carry their joint covariance, so a
linear combination of them (:meth:`Estimates.combine`) gets its SE from svy's contrast. svy does
every variance computation; no variance formula is written here.

Variance: Taylor linearization; with-replacement at stage 1 unless population sizes are given
(R ``survey``'s default). A stratum with a single sampled PSU is handled by the singleton rule.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import svy

from evalkit.errors import SurveyError

__all__ = ["Estimate", "Estimates", "SurveyDesign", "SINGLETON_RULES", "singleton_rule"]

# Singleton names of R's survey.lonely.psu or svy's Singleton methods -> svy rule (None = fail).
# 'certainty' (policy default): a lone PSU is a take-all unit contributing no stage-1 variance,
# which is what R's "certainty" and svy's "skip" compute.
SINGLETON_RULES: dict[str, str | None] = {
    "certainty": "skip", "remove": "skip", "skip": "skip",
    "adjust": "center", "center": "center",
    "average": "scale", "scale": "scale",
    "self_representing": "self_representing", "pool": "pool",
    "fail": None, "error": None,
}
_FIELDS = ("est", "se", "lci", "uci", "df")


def singleton_rule(method: Any) -> tuple[str, Any]:
    """(name to report, svy rule or None for 'fail') of a singleton method name or ``svy.Singleton``."""
    if isinstance(method, svy.Singleton):
        return repr(method), method
    key = str(method).strip().lower()
    if key not in SINGLETON_RULES:
        raise SurveyError(f"unknown singleton method {method!r}; use one of {sorted(SINGLETON_RULES)} "
                          "or a svy.Singleton(...)")
    return key, SINGLETON_RULES[key]


@dataclass(frozen=True)
class Estimate:
    """One design-based estimate.

    ``lci``/``uci`` are svy's t interval on ``df`` degrees of freedom; ``n`` the sample rows
    (of the domain); ``deff`` the design effect against simple random sampling with replacement
    (Kish's deft^2; None when svy cannot give it).
    """

    est: float
    se: float
    lci: float
    uci: float
    df: int
    n: int
    deff: float | None = None
    domain: str | None = None

    @property
    def cv(self) -> float:
        """Coefficient of variation se / |est| (NaN at est = 0)."""
        return self.se / abs(self.est) if self.est else float("nan")


@dataclass(frozen=True)
class Estimates:
    """Several estimates from one design with their joint covariance (keys in ``names`` order)."""

    names: tuple[str, ...]
    items: dict[str, Estimate]
    covariance: np.ndarray
    alpha: float
    _svy: Any = field(repr=False, compare=False, default=None)

    def __getitem__(self, name: str) -> Estimate:
        return self.items[name]

    def to_frame(self) -> pd.DataFrame:
        """One row per estimate (index ``name``)."""
        return pd.DataFrame([{"name": k, **vars(self.items[k])} for k in self.names]).set_index("name")

    def combine(self, coefs: Mapping[str, float], constant: float = 0.0) -> Estimate:
        """The linear combination ``constant + sum(coefs[k] * est_k)`` with its SE from the joint covariance.

        svy's contrast does the computation (t interval on the design df).
        """
        expr: Any = constant
        for k, c in coefs.items():
            expr = expr + c * svy.estd(k)
        row = self._svy.contrast({"combination": expr}, alpha=self.alpha).to_polars().row(0, named=True)
        return Estimate(*(float(row[f]) for f in _FIELDS[:4]), df=int(row["df"]),
                        n=max(e.n for e in self.items.values()))


class SurveyDesign:
    """A stratified, clustered, weighted sample, ready for design-based estimation.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per sampled unit, holding the design columns and the variables to estimate.
    weight : str
        Column of design weights (positive, finite).
    strata, psu : str, optional
        Stratum and primary-sampling-unit columns (None: unstratified / units are the PSUs).
    singleton : str or svy.Singleton
        Rule for a stratum with a single sampled PSU (names of :data:`SINGLETON_RULES`).
    confidence : float
        Two-sided level of the intervals.
    psu_name : str
        What a PSU is, for messages (e.g. 'village').
    """

    def __init__(self, data: pd.DataFrame, *, weight: str, strata: str | None = None, psu: str | None = None,
                 singleton: Any = "certainty", confidence: float = 0.95, psu_name: str = "PSU") -> None:
        if not 0.0 < float(confidence) < 1.0:
            raise SurveyError(f"confidence must be in (0, 1), got {confidence}")
        cols = [c for c in (weight, strata, psu) if c is not None]
        missing = [c for c in cols if c not in data.columns]
        if missing:
            raise SurveyError(f"the sample lacks design column(s) {missing}")
        w = pd.to_numeric(data[weight], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        if not (np.isfinite(w) & (w > 0)).all():
            raise SurveyError(f"{int((~(np.isfinite(w) & (w > 0))).sum())} row(s) with a missing, zero or "
                              "negative weight")
        self.confidence = float(confidence)
        self.alpha = 1.0 - self.confidence
        self.n = len(data)
        self._weight = w
        self._strata = (data[strata].astype(str).to_numpy() if strata else np.full(self.n, "all", dtype=object))
        self._psu = (data[psu].astype(str).to_numpy() if psu else np.arange(self.n).astype(str))
        self.psu_name = psu_name
        self.singleton_name, rule = singleton_rule(singleton)
        self.strata_labels, self.psus_per_stratum = self._check_nesting()
        self.singleton_strata: list[str] = [str(s) for s, k in zip(self.strata_labels, self.psus_per_stratum)
                                            if k == 1]
        if self.singleton_strata and rule is None:
            raise SurveyError(
                f"strata {self.singleton_strata} have a single sampled {psu_name} (singleton PSU) and the singleton "
                f"rule is "
                f"{self.singleton_name!r}; choose e.g. 'certainty', 'adjust' or 'average'")
        self.singleton_svy = rule
        self._svy_design = svy.Design(stratum="stratum", psu="psu", wgt="weight",
                                      singleton=rule if self.singleton_strata else None)

    # -- structure ----------------------------------------------------------------------------
    def _check_nesting(self) -> tuple[np.ndarray, np.ndarray]:
        s_code, s_lab = pd.factorize(self._strata, sort=True)
        v_code, v_lab = pd.factorize(self._psu)
        pairs = np.unique(s_code.astype(np.int64) * len(v_lab) + v_code)   # distinct (stratum, PSU)
        twice = np.bincount(pairs % len(v_lab), minlength=len(v_lab)) > 1
        if twice.any():
            raise SurveyError(f"{self.psu_name}(s) {list(np.asarray(v_lab)[twice][:10])} appear in more than one "
                              f"stratum; a {self.psu_name} (PSU) belongs to one stratum")
        return np.asarray(s_lab, dtype=object), np.bincount(pairs // len(v_lab), minlength=len(s_lab))

    @property
    def n_psus(self) -> int:
        """Sampled PSUs."""
        return int(self.psus_per_stratum.sum())

    @property
    def n_strata(self) -> int:
        """Strata with at least one sampled PSU."""
        return int(len(self.strata_labels))

    def _frame(self, columns: Mapping[str, np.ndarray], copies: int = 1) -> pl.DataFrame:
        return pl.DataFrame({
            "stratum": np.tile(self._strata, copies), "psu": np.tile(self._psu, copies),
            "weight": np.tile(self._weight, copies), **columns,
        })

    def _values(self, y: str | np.ndarray | pd.Series, data_name: str = "y") -> np.ndarray:
        a = np.asarray(y, dtype=float)
        if a.shape != (self.n,):
            raise SurveyError(f"{data_name} has {a.shape[0] if a.ndim else 0} values; the sample has {self.n} rows")
        return a

    # -- estimation ---------------------------------------------------------------------------
    def _run(self, kind: str, frame: pl.DataFrame, args: tuple[str, ...], by: str | None) -> Any:
        try:
            est = getattr(svy.Sample(frame, self._svy_design).estimation, kind)(*args, by=by, alpha=self.alpha,
                                                                                deff="wr")
        except svy.SvyError as e:
            raise SurveyError(f"svy could not estimate: {e}") from e
        return est

    @staticmethod
    def _estimates(est: Any, key: str | None, alpha: float) -> Estimates:
        rows = est.to_polars()
        names = [str(r[key]) if key else "all" for r in rows.iter_rows(named=True)]
        items = {}
        for name, r in zip(names, rows.iter_rows(named=True)):
            deff = r.get("deff")
            items[name] = Estimate(*(float(r[f]) for f in _FIELDS[:4]), df=int(r["df"]), n=int(r["n"]),
                                   deff=None if deff is None or not np.isfinite(deff) else float(deff),
                                   domain=name if key else None)
        keys = [str(x) for x in est.keys()] if key else names
        order = [keys.index(k) for k in names]
        cov = np.asarray(est.covariance, dtype=float).reshape(len(keys), len(keys))[np.ix_(order, order)]
        return Estimates(tuple(names), items, cov, alpha, est)

    def mean(self, y: np.ndarray | pd.Series, by: np.ndarray | pd.Series | None = None) -> Estimates:
        """Weighted mean of ``y`` (overall as key 'all', or one estimate per domain of ``by``)."""
        return self._one("mean", {"y": self._values(y)}, ("y",), by)

    def total(self, y: np.ndarray | pd.Series, by: np.ndarray | pd.Series | None = None) -> Estimates:
        """Weighted total of ``y``."""
        return self._one("total", {"y": self._values(y)}, ("y",), by)

    def ratio(self, num: np.ndarray | pd.Series, den: np.ndarray | pd.Series,
              by: np.ndarray | pd.Series | None = None) -> Estimates:
        """Ratio of weighted totals sum(w num) / sum(w den)."""
        return self._one("ratio", {"num": self._values(num, "num"), "den": self._values(den, "den")},
                         ("num", "den"), by)

    def prop(self, y: np.ndarray | pd.Series, by: np.ndarray | pd.Series | None = None) -> Estimates:
        """Proportion of units where the boolean ``y`` holds (the weighted mean of its 0/1 values)."""
        a = pd.Series(np.asarray(y, dtype=object)).astype("boolean")
        if a.isna().any():
            raise SurveyError(f"{int(a.isna().sum())} missing value(s) in a proportion's variable")
        return self.mean(a.to_numpy(dtype=float), by)

    def _one(self, kind: str, cols: dict[str, np.ndarray], args: tuple[str, ...],
             by: np.ndarray | pd.Series | None) -> Estimates:
        if by is not None:
            cols = {**cols, "__domain__": np.asarray(by).astype(str)}
        est = self._run(kind, self._frame(cols), args, "__domain__" if by is not None else None)
        return self._estimates(est, "__domain__" if by is not None else None, self.alpha)

    def ratios(self, pairs: Mapping[str, tuple[np.ndarray | pd.Series, np.ndarray | pd.Series]]) -> Estimates:
        """Several ratios of the same sample with their joint covariance.

        One svy estimate on a stacked copy of the sample (one copy per ratio, by the copy's name)
        gives the covariance between them, as each copy shares the PSUs of the others.
        """
        names: Sequence[str] = list(pairs)
        k = len(names)
        frame = self._frame({
            "__which__": np.repeat(np.asarray(names), self.n),
            "num": np.concatenate([self._values(pairs[c][0], f"{c} numerator") for c in names]),
            "den": np.concatenate([self._values(pairs[c][1], f"{c} denominator") for c in names]),
        }, copies=k)
        est = self._run("ratio", frame, ("num", "den"), "__which__")
        out = self._estimates(est, "__which__", self.alpha)
        order = [out.names.index(c) for c in names]
        return Estimates(tuple(names), out.items, out.covariance[np.ix_(order, order)], self.alpha, est)
