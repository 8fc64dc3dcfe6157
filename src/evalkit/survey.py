"""The evaluators' field sample: two-stage stratified selection, weights and sample size.

Stage 1 selects villages (the primary sampling units) within each county, stratified by
poverty / non-poverty village, with PPS systematic sampling on the number of households of the
village or with SRS. Stage 2 selects households by simple random sampling without replacement
within each selected village and household stratum (exited / still poor / non-registered).
Selection and inclusion probabilities come from :mod:`svy`; this module only prepares the
frames, caps ``n`` at what is available and multiplies the two stage probabilities (domain.md
§4, §7). The sample-size planner (:func:`plan_sample_size`, :func:`power_at`) sizes against the
Korn-Graubard verdict of :mod:`evalkit.exit` (exact-bound power on households); svy's
normal-approximation size is reported beside it for comparison.

Every default (sizes per stratum, selection method, confidence level, singleton rule) comes
from the ``[survey]`` section of the policy configuration.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import polars as pl
import svy
from scipy.special import betaincinv, stdtrit
from scipy.stats import binom, norm

from evalkit.config import Policy, load_policy

__all__ = [
    "HH_STRATA",
    "VILLAGE_STRATA",
    "SampleDesign",
    "household_strata",
    "registered_at",
    "draw_sample",
    "survey_from_truth",
    "plan_sample_size",
    "power_at",
    "SAMPLE_COLUMNS",
    "FIELD_SURVEY_COLUMNS",
]

#: Household strata inside a village (codes of the ``hh_stratum`` code list).
HH_STRATA: tuple[str, ...] = ("exited", "poor", "non_registered")
#: Village strata of stage 1.
VILLAGE_STRATA: tuple[str, ...] = ("poverty_village", "non_poverty_village")

#: Columns of :func:`draw_sample`'s result, in order.
SAMPLE_COLUMNS: tuple[str, ...] = (
    "county_code", "village_code", "household_id", "stratum", "hh_stratum",
    "prob_village", "prob_household", "weight", "household_size",
)
#: Columns of the ``field_survey`` table (data dictionary), in order.
FIELD_SURVEY_COLUMNS: tuple[str, ...] = (
    "county_code", "survey_year", "household_id", "village_code", "stratum", "hh_stratum",
    "prob_village", "prob_household", "weight", "household_size", "surveyed_income_per_capita",
    "food_clothing_ok", "education_ok", "medical_ok", "housing_ok", "water_ok", "approves",
)

# truth column -> field_survey column (the survey records the truth of that year).
_TRUTH_TO_SURVEY: dict[str, str] = {
    "true_income_per_capita": "surveyed_income_per_capita",
    "true_food_clothing_ok": "food_clothing_ok",
    "true_education_ok": "education_ok",
    "true_medical_ok": "medical_ok",
    "true_housing_ok": "housing_ok",
    "true_water_ok": "water_ok",
    "true_approves": "approves",
}


def _survey_section(policy: Policy | None = None) -> dict:
    return (load_policy() if policy is None else policy).section("survey")


def _require(df: pd.DataFrame, cols: tuple[str, ...] | list[str], what: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"{what} lacks required column(s) {missing}; it has {list(df.columns)}")


# --------------------------------------------------------------------------------------------
# design
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SampleDesign:
    """Sizes and rules of the evaluators' two-stage sample.

    Every field defaults to the ``[survey]`` section of the base policy; use
    :meth:`from_policy` for a user policy file.

    Parameters
    ----------
    villages_per_stratum : mapping
        Villages to select per county in each village stratum
        (``poverty_village``, ``non_poverty_village``); capped at the stratum size.
    households_per_village : mapping
        Households to select in each selected village per household stratum
        (``exited``, ``poor``, ``non_registered``); capped at what the village has.
    village_selection : {'pps', 'srs'}
        PPS systematic on the number of households of the village, or SRS.
    confidence_level : float
        Two-sided confidence level of the estimates.
    singleton_method : str
        Rule for a village stratum with one sampled village (see
        :func:`evalkit.exit.estimate_criteria`).
    """

    villages_per_stratum: Mapping[str, int] = field(
        default_factory=lambda: dict(_survey_section()["villages_per_stratum"]))
    households_per_village: Mapping[str, int] = field(
        default_factory=lambda: dict(_survey_section()["households_per_village"]))
    village_selection: Literal["pps", "srs"] = field(
        default_factory=lambda: _survey_section()["village_selection"])
    confidence_level: float = field(default_factory=lambda: float(_survey_section()["confidence_level"]))
    singleton_method: str = field(default_factory=lambda: str(_survey_section()["singleton_method"]))

    def __post_init__(self) -> None:
        for name, keys in (("villages_per_stratum", VILLAGE_STRATA),
                           ("households_per_village", HH_STRATA)):
            m = dict(getattr(self, name))
            if set(m) != set(keys):
                raise ValueError(f"SampleDesign.{name} must have exactly the keys {keys}, got {sorted(m)}")
            bad = {k: v for k, v in m.items() if int(v) != v or v < 0}
            if bad:
                raise ValueError(f"SampleDesign.{name} must hold non-negative integers, got {bad}")
            object.__setattr__(self, name, {k: int(m[k]) for k in keys})
        if self.village_selection not in ("pps", "srs"):
            raise ValueError(f"village_selection must be 'pps' or 'srs', got {self.village_selection!r}")
        if not 0.0 < float(self.confidence_level) < 1.0:
            raise ValueError(f"confidence_level must be in (0, 1), got {self.confidence_level!r}")

    @classmethod
    def from_policy(cls, policy: Policy | None = None, **overrides: Any) -> "SampleDesign":
        """Design with the defaults of ``policy`` (base policy if None), overridden by keywords."""
        sec = _survey_section(policy)
        kw = {k: sec[k] for k in ("villages_per_stratum", "households_per_village", "village_selection",
                                  "confidence_level", "singleton_method") if k in sec}
        kw.update(overrides)
        return cls(**kw)

    def as_dict(self) -> dict:
        """Plain dict (for attrs and reports)."""
        return asdict(self)


# --------------------------------------------------------------------------------------------
# strata
# --------------------------------------------------------------------------------------------
def registered_at(households: pd.DataFrame, year: int) -> pd.Series:
    """Whether each household is on the register in ``year``.

    ``registered`` and, when ``registration_year`` is known, registered no later than ``year``
    (a household registered in a later dynamic adjustment was not on the register yet).
    """
    reg = households["registered"].astype("boolean").fillna(False).astype(bool)
    if "registration_year" in households.columns:
        ry = pd.to_numeric(households["registration_year"], errors="coerce")
        reg &= (ry.isna() | (ry <= year)).to_numpy()
    return reg


def household_strata(households: pd.DataFrame, year: int) -> pd.Series:
    """Household stratum in ``year``: 'exited', 'poor' or 'non_registered'.

    'exited' = registered and ``exit_year`` <= year; 'poor' = registered and not exited by
    ``year``; 'non_registered' otherwise (see :func:`registered_at`).

    Returns
    -------
    pandas.Series
        Strings, aligned to ``households``, named ``hh_stratum``.
    """
    _require(households, ("registered", "exit_year"), "households")
    reg = registered_at(households, year).to_numpy()
    ey = pd.to_numeric(households["exit_year"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    exited = reg & (ey <= year)  # NaN <= year is False: not exited
    out = np.where(exited, HH_STRATA[0], np.where(reg, HH_STRATA[1], HH_STRATA[2]))
    return pd.Series(out, index=households.index, name="hh_stratum", dtype=object)


# --------------------------------------------------------------------------------------------
# selection
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Frame:
    """Sampling frames of one draw, built once and reused across draws (operating characteristic)."""

    villages: pl.DataFrame      # county_code, village_code, stratum, n_hh (strata with n > 0 only)
    households: pl.DataFrame    # county_code, village_code, household_id, hh_stratum, household_size
    n_villages: dict            # (county, stratum) -> n actually drawn
    take_all: list              # [(county, stratum, N)] strata taken whole (certainty)
    empty_villages: int         # villages of the table without households (not in the frame)
    design: SampleDesign
    year: int


def _build_frame(households: pd.DataFrame, villages: pd.DataFrame, year: int,
                 design: SampleDesign) -> _Frame:
    _require(households, ("household_id", "village_code", "county_code", "household_size",
                          "registered", "exit_year"), "households")
    _require(villages, ("village_code", "county_code", "is_poverty_village"), "villages")
    hh = pd.DataFrame({
        "county_code": households["county_code"].astype(str).to_numpy(),
        "village_code": households["village_code"].astype(str).to_numpy(),
        "household_id": households["household_id"].astype(str).to_numpy(),
        "hh_stratum": household_strata(households, year).to_numpy(),
        "household_size": pd.to_numeric(households["household_size"]).to_numpy(),
    })
    if hh["household_id"].duplicated().any():
        raise ValueError(f"households has {int(hh['household_id'].duplicated().sum())} duplicated household_id(s)")
    vil = pd.DataFrame({
        "village_code": villages["village_code"].astype(str).to_numpy(),
        "v_county": villages["county_code"].astype(str).to_numpy(),
        "stratum": np.where(villages["is_poverty_village"].astype("boolean").fillna(False).to_numpy(dtype=bool),
                            VILLAGE_STRATA[0], VILLAGE_STRATA[1]),
    })
    unknown = np.setdiff1d(hh["village_code"].unique(), vil["village_code"].to_numpy())
    if unknown.size:
        raise ValueError(f"{unknown.size} village(s) of households are not in villages: "
                         f"{unknown[:10].tolist()}{' ...' if unknown.size > 10 else ''}")
    # Frame order is fixed (sorted ids) so that a seed gives the same sample whatever the
    # row order of the inputs.
    hpl = pl.from_pandas(hh).sort("village_code", "household_id")
    size = hpl.group_by("village_code").agg(pl.len().alias("n_hh"))
    vpl = (pl.from_pandas(vil).join(size, on="village_code", how="left")
           .with_columns(pl.col("n_hh").fill_null(0)))
    # Villages without households cannot be drawn by PPS (size 0) and would give nothing by
    # SRS: they are left out of the frame and counted in attrs.
    empty = int((vpl["n_hh"] == 0).sum())
    vpl = (vpl.filter(pl.col("n_hh") > 0)
           .join(hpl.select("village_code", "county_code").unique(), on="village_code")
           .drop("v_county").sort("county_code", "stratum", "village_code"))
    n_req = pl.DataFrame({"stratum": list(design.villages_per_stratum),
                          "n_req": list(design.villages_per_stratum.values())})
    counts = (vpl.group_by("county_code", "stratum").agg(pl.len().alias("N"))
              .join(n_req, on="stratum").with_columns(n=pl.min_horizontal("n_req", "N"))
              .sort("county_code", "stratum"))
    take_all = counts.filter((pl.col("n") == pl.col("N")) & (pl.col("n") > 0))
    vpl = vpl.join(counts.filter(pl.col("n") > 0).select("county_code", "stratum"),
                   on=["county_code", "stratum"]).sort("county_code", "stratum", "village_code")
    return _Frame(
        villages=vpl, households=hpl,
        n_villages={(c, s): int(n) for c, s, n in counts.select("county_code", "stratum", "n").iter_rows()},
        take_all=[(c, s, int(n)) for c, s, n in take_all.select("county_code", "stratum", "N").iter_rows()],
        empty_villages=empty, design=design, year=int(year),
    )


def _draw_from_frame(frame: _Frame, rng: np.random.Generator) -> pd.DataFrame:
    """One two-stage draw from a prepared frame (see :func:`draw_sample`)."""
    design = frame.design
    # ---- stage 1: villages within county x village stratum ---------------------------------
    nmap = {k: v for k, v in frame.n_villages.items() if v > 0}
    vfr = frame.villages  # already restricted to strata with n > 0
    if vfr.height == 0:
        raise ValueError("no village stratum has a positive sample size: nothing to draw")
    if design.village_selection == "pps":
        s1 = svy.Sample(vfr, svy.Design(stratum=("county_code", "stratum"), psu="village_code", mos="n_hh"))
        # certainty_threshold=1: a village whose n x size share reaches 1 is taken with
        # certainty (probability 1) and the rest of the stratum is drawn PPS among the others.
        sel1 = s1.sampling.pps_sys(n=nmap, certainty_threshold=1.0, rstate=rng).data
    else:
        s1 = svy.Sample(vfr, svy.Design(stratum=("county_code", "stratum"), psu="village_code"))
        sel1 = s1.sampling.srs(n=nmap, rstate=rng).data
    sel1 = sel1.select("county_code", "village_code", "stratum",
                       pl.col("svy_prob_selection").alias("prob_village"))
    # ---- stage 2: households within village x household stratum ----------------------------
    # svy's SRS stratifies by a tuple of columns, so stage 2 is one svy call; n is capped at
    # the cell size (svy refuses n > N without replacement).
    n_hh = pl.DataFrame({"hh_stratum": list(design.households_per_village),
                         "n_req": list(design.households_per_village.values())})
    # polars joins do not keep row order; the SRS draw depends on it, so sort back.
    hfr = (frame.households.join(sel1.select("village_code"), on="village_code")
           .join(n_hh, on="hh_stratum").filter(pl.col("n_req") > 0)
           .sort("village_code", "household_id"))
    cells = (hfr.group_by("village_code", "hh_stratum").agg(pl.len().alias("M"), pl.first("n_req"))
             .with_columns(m=pl.min_horizontal("M", "n_req")))
    nmap2 = dict(zip(zip(cells["village_code"].to_list(), cells["hh_stratum"].to_list()),
                     cells["m"].to_list()))
    s2 = svy.Sample(hfr.drop("n_req"), svy.Design(stratum=("village_code", "hh_stratum")))
    sel2 = s2.sampling.srs(n=nmap2, rstate=rng).data
    out = (sel2.select("village_code", "household_id", "hh_stratum", "household_size",
                       pl.col("svy_prob_selection").alias("prob_household"))
           .join(sel1, on="village_code")
           .with_columns(weight=1.0 / (pl.col("prob_village") * pl.col("prob_household")))
           .select(SAMPLE_COLUMNS)
           .sort("county_code", "village_code", "household_id"))
    return out.to_pandas()


def draw_sample(households: pd.DataFrame, villages: pd.DataFrame, year: int,
                design: SampleDesign | None = None, seed: int = 0) -> pd.DataFrame:
    """Draw the evaluators' two-stage stratified sample of households.

    Stage 1, in every county and village stratum (poverty / non-poverty village): PPS
    systematic on the number of households of the village (svy ``pps_sys``) or SRS (svy
    ``srs``); ``n`` is capped at the stratum size, a capped stratum is taken whole
    (certainty, probability 1) and PPS takes any village whose size share reaches 1/n with
    certainty. Stage 2, in every selected village and household stratum: SRS without
    replacement of ``min(n, available)`` households (svy ``srs`` stratified by
    village x household stratum).

    Parameters
    ----------
    households, villages : pandas.DataFrame
        Canonical register tables (all counties of the frame; each county is sampled apart).
    year : int
        Assessment year; fixes the household strata (:func:`household_strata`).
    design : SampleDesign, optional
        Sizes and method; policy defaults if None.
    seed : int
        Seed of the draw; the same seed and inputs give the same sample.

    Returns
    -------
    pandas.DataFrame
        One row per sampled household, columns :data:`SAMPLE_COLUMNS`. ``prob_household`` is
        conditional on the village (= m/M of its village x household stratum) and
        ``weight = 1 / (prob_village * prob_household)``. ``attrs`` holds the seed, year,
        design, the strata taken whole (``take_all_strata``), the number of certainty
        villages and of villages left out for having no household.
    """
    design = SampleDesign() if design is None else design
    frame = _build_frame(households, villages, year, design)
    out = _draw_from_frame(frame, np.random.default_rng(seed))
    out.attrs.update(_sample_attrs(frame, out, seed))
    return out


def _sample_attrs(frame: _Frame, out: pd.DataFrame, seed: int) -> dict:
    return {
        "seed": int(seed),
        "year": frame.year,
        "design": frame.design.as_dict(),
        "take_all_strata": [{"county_code": c, "stratum": s, "n_villages": n} for c, s, n in frame.take_all],
        "certainty_villages": int(out.loc[out["prob_village"] >= 1.0, "village_code"].nunique()),
        "villages_without_households": frame.empty_villages,
        "note": ("village strata listed in take_all_strata are censuses of villages (probability 1); "
                 "PPS also takes with certainty any village whose n x size share reaches 1"),
    }


def _truth_index(truth: pd.DataFrame, year: int) -> pd.DataFrame:
    """Survey columns of the truth of ``year``, indexed by household_id (built once, reused)."""
    _require(truth, ("household_id", "year", *_TRUTH_TO_SURVEY), "truth")
    t = truth.loc[truth["year"].to_numpy() == year, ["household_id", *_TRUTH_TO_SURVEY]]
    t = t.rename(columns=_TRUTH_TO_SURVEY).set_index(t["household_id"].astype(str).to_numpy())
    if t.index.has_duplicates:
        raise ValueError(f"truth has duplicated household_id rows in year {year}")
    return t.drop(columns="household_id")


def _fill_survey(sample: pd.DataFrame, tix: pd.DataFrame, year: int) -> pd.DataFrame:
    ids = sample["household_id"].astype(str).to_numpy()
    pos = tix.index.get_indexer(ids)
    if (pos < 0).any():
        raise ValueError(f"{int((pos < 0).sum())} sampled household(s) have no truth row in {year}, e.g. "
                         f"{ids[pos < 0][:5].tolist()}")
    cols = {c: sample[c].to_numpy() for c in SAMPLE_COLUMNS}
    cols["household_id"] = ids
    cols["survey_year"] = np.full(len(ids), int(year))
    cols.update({c: tix[c].to_numpy()[pos] for c in tix.columns})
    out = pd.DataFrame({c: cols[c] for c in FIELD_SURVEY_COLUMNS})
    out.attrs = dict(sample.attrs)
    return out


def survey_from_truth(sample: pd.DataFrame, truth: pd.DataFrame, year: int) -> pd.DataFrame:
    """Fill the surveyed columns of a sample from the truth of ``year``: the field survey.

    The survey is taken as exact (no measurement error): income, the five guarantees and
    approval are those of the truth table in ``year``.

    Returns
    -------
    pandas.DataFrame
        The ``field_survey`` table, columns :data:`FIELD_SURVEY_COLUMNS`, one row per sampled
        household in the sample's order.
    """
    _require(sample, SAMPLE_COLUMNS, "sample")
    return _fill_survey(sample, _truth_index(truth, year), year)


# --------------------------------------------------------------------------------------------
# sample size and power
# --------------------------------------------------------------------------------------------
# The planner sizes the sample against the rule the verdict applies
# (evalkit.exit.estimate_criteria, ci_method='korn_graubard'): a maximum rate passes when the
# upper Korn-Graubard (Clopper-Pearson on a df-adjusted effective n) bound is below the threshold.
_DIRECTIONS = ("below", "at_least")


def _check_rates(p: float, t: float, confidence: float, deff: float, direction: str,
                 zero_case_deff: float | None = None) -> None:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"expected_rate must be in [0, 1], got {p}")
    if not 0.0 < t < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {t}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if not (np.isfinite(deff) and deff > 0.0):
        raise ValueError(f"deff must be positive, got {deff}")
    if direction not in _DIRECTIONS:
        raise ValueError(f"direction must be one of {_DIRECTIONS}, got {direction!r}")
    if zero_case_deff is not None and not 0.0 < zero_case_deff <= deff:
        raise ValueError(f"zero_case_deff must be in (0, deff = {deff}], got {zero_case_deff}")


def _kg_power(n_households: Any, n_villages: Any, expected_rate: float, threshold: float,
              confidence: float, deff: float, n_strata: int, direction: str,
              zero_case_deff: float | None = None) -> dict[str, np.ndarray]:
    """Exact-bound power of the Korn-Graubard verdict, vectorized over designs (broadcast).

    See :func:`power_at` for the model. For 'at_least' (approval) the rule is mirrored on the
    complementary rate: lci >= t  <=>  upper bound of the non-approving share <= 1 - t
    (Clopper-Pearson is symmetric), so y = non-approving households play the role of cases.
    """
    n = np.asarray(n_households, dtype=float)
    v = np.asarray(n_villages, dtype=float)
    n, v = np.broadcast_arrays(n, v)
    alpha = 1.0 - float(confidence)
    df = v - float(n_strata)
    if (df < 1).any() or (n < 2).any() or (n < v).any():
        raise ValueError("each design needs n_villages > n_strata (design df >= 1) and "
                         "n_households >= max(2, n_villages)")
    factor = (stdtrit(n - 1.0, alpha / 2.0) / stdtrit(df, alpha / 2.0)) ** 2
    n_eff = n / float(deff) * factor
    n_eff0 = n / float(deff if zero_case_deff is None else zero_case_deff) * factor
    if direction == "below":
        q, lim, strict = float(expected_rate), float(threshold), True
    else:
        q, lim, strict = 1.0 - float(expected_rate), 1.0 - float(threshold), False

    def passes(x: np.ndarray, ne: np.ndarray) -> np.ndarray:
        b = ne - x
        with np.errstate(invalid="ignore"):
            ub = np.where(b > 0, betaincinv(x + 1.0, np.where(b > 0, b, 1.0), 1.0 - alpha / 2.0), 1.0)
        return (ub < lim) if strict else (ub <= lim)

    # Largest x passing, by integer bisection on all designs at once: the bound increases with x,
    # passes(-1) by convention and x >= lim * n_eff never passes (the 1 - a/2 quantile of
    # Beta(x+1, n_eff-x) exceeds its mode x/(n_eff-1) >= lim).
    lo = np.full(n_eff.shape, -1.0)
    hi = np.floor(lim * n_eff) + 1.0
    while (hi - lo > 1).any():
        mid = np.floor((lo + hi) / 2.0)
        ok = passes(mid, n_eff)
        lo, hi = np.where(ok, mid, lo), np.where(ok, hi, mid)
    # zero cases: bound on n_eff0 (>= n_eff, so the passing counts stay 0..x*)
    x_star = np.where((lo < 0) & passes(np.zeros(n_eff.shape), n_eff0), 0, lo).astype(int)
    # binom.cdf(-1, ...) = 0: no count passes, power 0.
    power = binom.cdf(x_star, np.maximum(np.rint(n_eff), 1.0), q)
    return {"power": np.asarray(power, dtype=float), "x_star": x_star, "n_eff": n_eff, "n_eff_zero": n_eff0,
            "df": df, "df_factor": factor}


def power_at(n_households: Any, n_villages: Any, expected_rate: float, threshold: float,
             confidence: float = 0.95, deff: float = 2.0, n_strata: int = 2, *,
             direction: str = "below", zero_case_deff: float | None = None) -> float | np.ndarray:
    """Probability that the Korn-Graubard verdict passes a criterion whose true rate is ``expected_rate``.

    The rule of :func:`evalkit.exit.estimate_criteria` (``ci_method='korn_graubard'``): a maximum
    rate passes when the upper limit of the two-sided ``confidence`` interval is below
    ``threshold``. Model of a design of ``n_households`` households of the domain (e.g. exited
    households) in ``n_villages`` villages and ``n_strata`` village strata:

    * effective size ``n_eff = n / deff * (qt(a/2, n-1) / qt(a/2, df))**2`` with a = 1 - confidence
      and df = n_villages - n_strata, as the verdict's df adjustment; ``deff`` is the design
      effect on households (clustering of cases in villages, unequal weights and household
      sizes of a person-based rate);
    * cases (households failing the standard) ``X ~ Binomial(round(n_eff), p)``;
    * bound for x cases ``qbeta(1 - a/2, x + 1, n_eff - x)`` (Clopper-Pearson on n_eff; x = 0 gives
      ``1 - (a/2)**(1/n_eff)``); x* = the largest x whose bound is below the threshold;
    * power = ``P(X <= x*)``, 0 when even x = 0 fails.

    The verdict itself uses deff 1 on households when the sample has no case (zero SE); by
    default the model applies ``deff`` to every x, so with ``deff > 1`` it is conservative for
    designs whose power rests on the zero-case term (small designs, or rates of 0.1%);
    ``zero_case_deff=1`` reproduces the verdict's zero-case bound. Power is saw-toothed in n
    (x* is an integer, so between two steps of x* the power falls as n grows), as for any exact
    binomial rule; the verdict's estimated SE blurs the teeth in practice.

    Parameters
    ----------
    n_households, n_villages : int or array-like
        Sampled households of the domain and villages (broadcast together; vectorized).
    expected_rate, threshold : float
        True rate and policy threshold.
    confidence : float
        Two-sided level of the interval used by the verdict.
    deff : float
        Design effect on households.
    n_strata : int
        Village strata (the design df is n_villages - n_strata).
    direction : {'below', 'at_least'}
        'below' for a maximum rate (pass: upper bound < threshold); 'at_least' for a minimum
        rate such as approval (pass: lower bound >= threshold), computed on the complementary
        rate.
    zero_case_deff : float, optional
        Design effect of the zero-case bound, in (0, deff]; None: ``deff``.

    Returns
    -------
    float or numpy.ndarray
        Power in [0, 1]; a float for scalar inputs.
    """
    p, t = float(expected_rate), float(threshold)
    _check_rates(p, t, confidence, deff, direction, zero_case_deff)
    pw = _kg_power(n_households, n_villages, p, t, confidence, deff, n_strata, direction, zero_case_deff)["power"]
    return float(pw) if pw.ndim == 0 else pw


def _svy_normal_n(p: float, t: float, confidence: float, power: float, deff: float) -> float | None:
    """svy's normal-approximation size in households (comparison only; None at p of 0 or 1)."""
    if not 0.0 < p < 1.0 or p == t:
        return None
    zc, zp = float(norm.ppf(1.0 - (1.0 - confidence) / 2.0)), float(norm.ppf(power))
    # |t - p| = (z_c + z_power) SE  <=>  svy's precision target with moe = |t - p| z_c / (z_c + z_power)
    moe = abs(t - p) * zc / (zc + zp)
    ss = svy.SampleSize().estimate_prop(p=p, moe=moe, alpha=round(1.0 - confidence, 12), deff=deff)
    return float(np.ceil(float(ss.n)))


def plan_sample_size(expected_rate: float, threshold: float, confidence: float = 0.95,
                     power: float = 0.8, deff: float = 2.0, households_per_village: int = 30,
                     n_strata: int = 2, mean_household_size: float = 3.2, max_villages: int = 2000, *,
                     direction: str = "below", zero_case_deff: float | None = None) -> dict:
    """Villages and households needed for the Korn-Graubard verdict to pass with a given power.

    Searches the number of villages v = 2 n_strata, ..., ``max_villages`` (vectorized) with
    ``households_per_village`` households of the domain per village (n = v m), computing for
    each the exact-bound power of :func:`power_at`, i.e. the probability that the verdict of
    :func:`evalkit.exit.estimate_criteria` passes when the true rate is ``expected_rate``. The
    plan is the smallest v whose power reaches ``power``. As power is saw-toothed in v,
    ``n_villages_stable`` gives the smallest v from which every larger v (up to
    ``max_villages``) keeps the power; prefer it when the field size may overshoot.

    svy's normal-approximation size (``SampleSize.estimate_prop`` with margin
    ``|threshold - p| z_c / (z_c + z_power)`` and the same ``deff``, in households) is reported
    as ``svy_normal_n`` with its exact-bound power ``svy_normal_power``, for comparison only: it
    ignores the discreteness of rare cases, the Clopper-Pearson bound and the df adjustment, and
    can be far too small (p = 0.5%, threshold 2%: power about 0).

    Parameters
    ----------
    expected_rate, threshold : float
        Anticipated true rate and the policy threshold.
    confidence : float
        Two-sided level of the verdict's interval.
    power : float
        Required probability of passing at ``expected_rate``.
    deff : float
        Design effect on households (see :func:`power_at`).
    households_per_village : int
        Households of the domain taken per village (e.g. exited households).
    n_strata : int
        Village strata of the design (df = villages - n_strata).
    mean_household_size : float
        Persons per household of the domain (only to report persons).
    max_villages : int
        Largest number of villages searched.
    direction : {'below', 'at_least'}
        Maximum rate (default) or minimum rate such as approval.
    zero_case_deff : float, optional
        Design effect of the zero-case bound (see :func:`power_at`); None: ``deff``.

    Returns
    -------
    dict
        ``reachable``; ``n_villages``, ``n_households``, ``n_persons`` (None when unreachable);
        ``power_achieved`` and ``x_star`` (largest number of cases still passing; -1 if none),
        ``n_eff``, ``n_eff_zero`` (of the zero-case bound) and ``df`` at the plan;
        ``n_villages_stable``; ``max_power`` (best power searched, with ``max_power_villages``);
        ``svy_normal_n``, ``svy_normal_villages``, ``svy_normal_power``; the inputs; ``message``
        and ``method``.
    """
    p, t = float(expected_rate), float(threshold)
    _check_rates(p, t, confidence, deff, direction, zero_case_deff)
    if not 0.0 < power < 1.0:
        raise ValueError(f"power must be in (0, 1), got {power}")
    m, k, vmax = int(households_per_village), int(n_strata), int(max_villages)
    if m < 1 or k < 1:
        raise ValueError(f"households_per_village and n_strata must be >= 1, got {m}, {k}")
    if not mean_household_size > 0:
        raise ValueError(f"mean_household_size must be positive, got {mean_household_size}")
    vmin = 2 * k  # two villages per stratum: a variance without a singleton rule
    if vmax < vmin:
        raise ValueError(f"max_villages must be at least 2 * n_strata = {vmin}, got {vmax}")
    out: dict[str, Any] = {
        "reachable": False, "n_villages": None, "n_households": None, "n_persons": None,
        "power_achieved": None, "x_star": None, "n_eff": None, "n_eff_zero": None, "df": None,
        "n_villages_stable": None,
        "max_power": None, "max_power_villages": None,
        "expected_rate": p, "threshold": t, "confidence": float(confidence), "power_target": float(power),
        "deff": float(deff), "zero_case_deff": None if zero_case_deff is None else float(zero_case_deff),
        "households_per_village": m, "n_strata": k,
        "mean_household_size": float(mean_household_size), "max_villages": vmax, "direction": direction,
        "svy_normal_n": None, "svy_normal_villages": None, "svy_normal_power": None,
        "method": ("exact-bound power: n_eff = n/deff x (qt(a/2,n-1)/qt(a/2,v-n_strata))^2, "
                   "X ~ Binomial(round(n_eff), p), pass iff qbeta(1-a/2, X+1, n_eff-X) < threshold"),
    }
    wrong_side = p >= t if direction == "below" else p <= t
    if wrong_side:
        rel = ">=" if direction == "below" else "<="
        out["message"] = (f"unreachable: expected_rate {p:g} {rel} threshold {t:g}; the verdict passes such a "
                          f"county with probability at most about (1 - confidence)/2 = {(1 - confidence) / 2:g}, "
                          "whatever the sample size")
        return out
    nsvy = _svy_normal_n(p, t, confidence, power, deff)
    if nsvy is not None:
        vs = max(int(np.ceil(nsvy / m)), vmin)
        out.update(svy_normal_n=nsvy, svy_normal_villages=vs,
                   svy_normal_power=power_at(vs * m, vs, p, t, confidence, deff, k, direction=direction,
                                             zero_case_deff=zero_case_deff))
    v = np.arange(vmin, vmax + 1)
    res = _kg_power(v * m, v, p, t, confidence, deff, k, direction, zero_case_deff)
    pw = res["power"]
    ok = pw >= power
    best = int(np.argmax(pw))
    out.update(max_power=float(pw[best]), max_power_villages=int(v[best]))
    if not ok.any():
        out["message"] = (f"unreachable within {vmax} villages x {m} households: best power {pw[best]:.3f} at "
                          f"{v[best]} villages; raise max_villages or households_per_village")
        return out
    i = int(np.argmax(ok))
    stable = np.flip(np.logical_and.accumulate(np.flip(ok)))  # ok here and at every larger v
    nh = int(v[i] * m)
    out.update(
        reachable=True, n_villages=int(v[i]), n_households=nh,
        n_persons=int(np.ceil(nh * float(mean_household_size))),
        power_achieved=float(pw[i]), x_star=int(res["x_star"][i]), n_eff=float(res["n_eff"][i]),
        n_eff_zero=float(res["n_eff_zero"][i]),
        df=int(res["df"][i]), n_villages_stable=int(v[np.argmax(stable)]) if stable.any() else None,
    )
    what = "cases" if direction == "below" else "non-approving households"
    out["message"] = (f"{out['n_villages']} villages x {m} households = {nh} households: power "
                      f"{out['power_achieved']:.3f} (passes with at most {out['x_star']} {what} among "
                      f"~{out['n_eff']:.0f} effective households); power stays >= {power:g} from "
                      f"{out['n_villages_stable']} villages on")
    return out
