"""The survey design object: a field survey's strata, PSUs and weights, built once, estimated many ways.

:class:`SurveyDesign` wraps a :mod:`svy` design (stratified, clustered, weighted; population sizes
per stage where known) and answers totals, means, ratios and proportions, overall or by domain,
as typed :class:`Estimate` results (estimate, SE, CI, degrees of freedom, n, design effect).
Several ratios estimated together (:meth:`SurveyDesign.ratios`) carry their joint covariance, so a
linear combination of them (:meth:`Estimates.combine`) gets its SE from svy's contrast. svy does
every variance computation; no variance formula is written here.

Variance: Taylor linearization; with-replacement at stage 1 unless population sizes are given
(R ``survey``'s default). With population sizes (``pop_psu`` and, for the second stage,
``ssu_strata`` + ``pop_ssu``) it is R's multistage estimator of a design without replacement at
both stages: the stage-1 term with the finite-population correction 1 - n_h/N_h (zero for a
take-all stratum: certainty units), plus the stage-2 term of every sampled PSU, stratified by
``ssu_strata`` with correction 1 - m/M, weighted by the stage-1 sampling fraction n_h/N_h. svy
computes both terms (two svy designs on the same estimator: villages with ``pop_size``; and the
second-stage cells as strata of single units with an effective population size
M' = m / (1 - f_h (1 - m/M)), which turns svy's one-stage correction (1 - m/M') into
f_h (1 - m/M)); the covariances add. A stratum with a single sampled PSU is handled by the
singleton rule.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import svy
from scipy.special import stdtrit

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


class _TwoStage:
    """svy's stage-1 estimate with the stage-2 covariance of the same estimator added.

    Offers what :class:`SurveyDesign` and :class:`Estimates` use of a svy estimate: ``to_polars``
    (SE, t interval on the stage-1 df, design effect scaled by the variance ratio), ``keys``,
    ``covariance`` and ``contrast``.
    """

    def __init__(self, one: Any, two: Any, alpha: float) -> None:
        self.one, self.two, self.alpha = one, two, alpha
        self.covariance = np.asarray(one.covariance, dtype=float) + np.asarray(two.covariance, dtype=float)

    def keys(self) -> Any:
        return self.one.keys()

    def to_polars(self) -> pl.DataFrame:
        a, b = self.one.to_polars(), self.two.to_polars()
        v1, v2 = a["se"].to_numpy() ** 2, b["se"].to_numpy() ** 2
        se = np.sqrt(v1 + v2)
        q = stdtrit(a["df"].to_numpy().astype(float), 1.0 - self.alpha / 2)
        est = a["est"].to_numpy()
        cols = {"se": se, "lci": est - q * se, "uci": est + q * se}
        if "deff" in a.columns:
            with np.errstate(divide="ignore", invalid="ignore"):
                cols["deff"] = a["deff"].to_numpy() * np.where(v1 > 0, (v1 + v2) / v1, np.nan)
        return a.with_columns(**{k: pl.Series(k, v, dtype=pl.Float64) for k, v in cols.items()})

    def contrast(self, spec: Mapping[str, Any], alpha: float) -> Any:
        return _TwoStage(self.one.contrast(spec, alpha=alpha), self.two.contrast(spec, alpha=alpha), alpha)


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
    pop_psu : str, optional
        Column of the number of PSUs in the population of the unit's stratum (N_h, constant within
        the stratum, at least the sampled PSUs). None: stage 1 with replacement (ultimate cluster).
    ssu_strata : str, optional
        Column of the second-stage stratum within the PSU (e.g. the household stratum); only with
        ``pop_ssu``. None: the PSU is one second-stage stratum.
    pop_ssu : str, optional
        Column of the number of units in the population of the unit's second-stage stratum of its
        PSU (M, at least the sampled units). Needs ``pop_psu``.
    """

    def __init__(self, data: pd.DataFrame, *, weight: str, strata: str | None = None, psu: str | None = None,
                 singleton: Any = "certainty", confidence: float = 0.95, psu_name: str = "PSU",
                 pop_psu: str | None = None, ssu_strata: str | None = None, pop_ssu: str | None = None) -> None:
        if not 0.0 < float(confidence) < 1.0:
            raise SurveyError(f"confidence must be in (0, 1), got {confidence}")
        if pop_ssu is not None and pop_psu is None:
            raise SurveyError("pop_ssu (second-stage population sizes) needs pop_psu (first-stage ones)")
        cols = [c for c in (weight, strata, psu, pop_psu, ssu_strata, pop_ssu) if c is not None]
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
        census = np.zeros(len(self.strata_labels), dtype=bool)
        if pop_psu is not None:
            # A stratum whose every PSU is sampled (N_h = n_h: certainty units) has no stage-1
            # variance; a single PSU there is not a lonely one.
            n1 = pd.to_numeric(data[pop_psu], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
            s_code = pd.factorize(self._strata, sort=True)[0]
            census = pd.Series(n1).groupby(s_code).max().reindex(range(len(census))).to_numpy() <= \
                self.psus_per_stratum
        self.singleton_strata: list[str] = [str(s) for s, k, c in zip(self.strata_labels, self.psus_per_stratum,
                                                                       census) if k == 1 and not c]
        if self.singleton_strata and rule is None:
            raise SurveyError(
                f"strata {self.singleton_strata} have a single sampled {psu_name} (singleton PSU) and the singleton "
                f"rule is "
                f"{self.singleton_name!r}; choose e.g. 'certainty', 'adjust' or 'average'")
        self.singleton_svy = rule
        self._pop1 = self._pop2 = None
        self._svy_design2 = None
        if pop_psu is not None:
            self._pop1, self._pop2 = self._population_sizes(data, pop_psu, ssu_strata, pop_ssu)
        lone_census = bool(((self.psus_per_stratum == 1) & census).any())
        self._svy_design = svy.Design(stratum="stratum", psu="psu", wgt="weight",
                                      singleton=rule if self.singleton_strata else ("skip" if lone_census else None),
                                      pop_size="__N1__" if self._pop1 is not None else None)
        if self._pop2 is not None:
            # Stage 2 as a one-stage design: cells (PSU x second-stage stratum) as strata, units as
            # PSUs, effective population size M' (module docstring). A cell with one sampled unit
            # out of several is a stage-2 singleton: the design's rule applies.
            self._svy_design2 = svy.Design(stratum="__cell__", psu="__unit__", wgt="weight",
                                           pop_size="__M2__", singleton=self._pop2[2])

    @property
    def finite_population(self) -> bool:
        """True when the variance uses population sizes (without-replacement stages)."""
        return self._pop1 is not None

    def _population_sizes(self, data: pd.DataFrame, pop_psu: str, ssu_strata: str | None,
                          pop_ssu: str | None) -> tuple[np.ndarray, tuple | None]:
        n1 = pd.to_numeric(data[pop_psu], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        s_code = pd.factorize(self._strata, sort=True)[0]
        n_h = self.psus_per_stratum[s_code].astype(float)
        bad = ~(np.isfinite(n1) & (n1 >= n_h))
        if bad.any():
            raise SurveyError(f"{pop_psu}: {int(bad.sum())} row(s) with a missing population size or one below the "
                              f"sampled {self.psu_name}s of the stratum (strata "
                              f"{sorted(set(self._strata[bad].tolist()))[:5]})")
        if (pd.Series(n1).groupby(s_code).nunique() > 1).any():
            raise SurveyError(f"{pop_psu} varies within a stratum; it is the stratum's number of {self.psu_name}s")
        if pop_ssu is None:
            return n1, None
        m_pop = pd.to_numeric(data[pop_ssu], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        sub = data[ssu_strata].astype(str).to_numpy() if ssu_strata else np.full(self.n, "", dtype=object)
        cell = pd.factorize(pd.Series(self._strata).str.cat([pd.Series(self._psu), pd.Series(sub)], sep="\x1f"))[0]
        m = np.bincount(cell)[cell].astype(float)
        bad = ~(np.isfinite(m_pop) & (m_pop >= m))
        if bad.any():
            raise SurveyError(f"{pop_ssu}: {int(bad.sum())} row(s) with a missing population size or one below the "
                              "sampled units of their second-stage stratum")
        if (pd.Series(m_pop).groupby(cell).nunique() > 1).any():
            raise SurveyError(f"{pop_ssu} varies within a second-stage stratum of a {self.psu_name}")
        f1 = n_h / n1
        # (1 - m/M') = f1 (1 - m/M): svy's one-stage correction becomes the stage-2 term's factor.
        m_eff = m / (1.0 - f1 * (1.0 - m / m_pop))
        lone = (m == 1) & (m_pop > 1) & (f1 > 0)
        # A census cell (m = M) with one unit contributes nothing whatever the rule ('skip').
        rule = self.singleton_svy if lone.any() else ("skip" if (m == 1).any() else None)
        if lone.any() and rule is None:
            raise SurveyError(f"{int(lone.sum())} second-stage stratum(s) with a single sampled unit out of several "
                              f"and the singleton rule {self.singleton_name!r}")
        return n1, (cell.astype(str), np.maximum(m_eff, m), rule)

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

    def domain_df(self, members: np.ndarray | pd.Series) -> int:
        """Degrees of freedom of a domain, as R's ``degf`` of a subset design (``svyciprop``).

        The PSUs with at least one member of the domain less the strata of those PSUs.
        """
        m = np.asarray(members, dtype=bool)
        if m.shape != (self.n,):
            raise SurveyError(f"domain indicator has {m.size} values; the sample has {self.n} rows")
        pairs = pd.DataFrame({"s": self._strata[m], "p": self._psu[m]}).drop_duplicates()
        return int(len(pairs) - pairs["s"].nunique())

    @property
    def n_strata(self) -> int:
        """Strata with at least one sampled PSU."""
        return int(len(self.strata_labels))

    def _frame(self, columns: Mapping[str, np.ndarray], copies: int = 1) -> pl.DataFrame:
        extra = {}
        if self._pop1 is not None:
            extra["__N1__"] = np.tile(self._pop1, copies)
        if self._pop2 is not None:
            extra.update({"__cell__": np.tile(self._pop2[0], copies), "__M2__": np.tile(self._pop2[1], copies),
                          "__unit__": np.tile(np.arange(self.n).astype(str), copies)})
        return pl.DataFrame({
            "stratum": np.tile(self._strata, copies), "psu": np.tile(self._psu, copies),
            "weight": np.tile(self._weight, copies), **extra, **columns,
        })

    def _values(self, y: str | np.ndarray | pd.Series, data_name: str = "y") -> np.ndarray:
        a = np.asarray(y, dtype=float)
        if a.shape != (self.n,):
            raise SurveyError(f"{data_name} has {a.shape[0] if a.ndim else 0} values; the sample has {self.n} rows")
        return a

    # -- estimation ---------------------------------------------------------------------------
    def _run(self, kind: str, frame: pl.DataFrame, args: tuple[str, ...], by: str | None) -> Any:
        est = self._run_one(self._svy_design, kind, frame, args, by)
        if self._svy_design2 is None:
            return est
        return _TwoStage(est, self._run_one(self._svy_design2, kind, frame, args, by), self.alpha)

    def _run_one(self, design: Any, kind: str, frame: pl.DataFrame, args: tuple[str, ...], by: str | None) -> Any:
        estimate = getattr(svy.Sample(frame, design).estimation, kind)
        try:
            return estimate(*args, by=by, alpha=self.alpha, deff="wr")
        except svy.SvyError as e:
            # svy refuses a design effect for a variable without variation (e.g. no poor household
            # sampled); the estimate itself is still defined, so estimate it without one.
            if "DEFF_NOT_COMPUTABLE" not in str(e):
                raise SurveyError(f"svy could not estimate: {e}") from e
        try:
            return estimate(*args, by=by, alpha=self.alpha)
        except svy.SvyError as e:
            raise SurveyError(f"svy could not estimate: {e}") from e

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
