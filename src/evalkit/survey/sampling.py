"""The evaluators' field sample: two-stage stratified selection and its weights.

Stage 1 selects villages (the primary sampling units) within each county, stratified by
poverty / non-poverty village, with PPS systematic sampling on the number of households of the
village (in a random order of the villages by default: randomized systematic PPS) or with SRS.
Stage 2 selects households by simple random sampling without replacement within each selected
village and household stratum (exited / still poor / non-registered).
Selection and inclusion probabilities come from :mod:`svy`; this module only prepares the
frames, caps ``n`` at what is available and multiplies the two stage probabilities
(docs/policy.md §4, §7). Every size and rule comes from a :class:`SampleDesign`, whose defaults are
the policy's ``[survey]`` section.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any, Literal

import numpy as np
import pandas as pd
import polars as pl
import svy

from evalkit.config import Policy
from evalkit.errors import SurveyError
from evalkit.errors import require_columns as check_columns
from evalkit.register import HH_STRATA, VILLAGE_STRATA, household_strata, village_strata

#: Missing columns of a table raise :class:`~evalkit.errors.SurveyError` (one checker for every package).
require_columns = partial(check_columns, error=SurveyError)

__all__ = ["SAMPLE_COLUMNS", "VILLAGE_SELECTIONS", "SampleDesign", "SampleFrame", "build_frame",
           "draw_from_frame", "draw_sample", "sample_attrs", "require_columns"]

#: Columns of :func:`draw_sample`'s result, in order.
SAMPLE_COLUMNS: tuple[str, ...] = (
    "county_code", "village_code", "household_id", "stratum", "hh_stratum",
    "prob_village", "prob_household", "weight", "household_size",
)
#: Stage-1 selection methods of :class:`SampleDesign` ('pps' = randomized systematic PPS).
VILLAGE_SELECTIONS: tuple[str, ...] = ("pps", "pps_frame", "srs")


# --------------------------------------------------------------------------------------------
# design
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SampleDesign:
    """Sizes and rules of the evaluators' two-stage sample.

    Build it with :meth:`from_policy` (the policy's ``[survey]`` defaults, overridden by
    keywords) or give every field.

    Parameters
    ----------
    villages_per_stratum : mapping
        Villages to select per county in each village stratum
        (``poverty_village``, ``non_poverty_village``); capped at the stratum size.
    households_per_village : mapping
        Households to select in each selected village per household stratum
        (``exited``, ``poor``, ``non_registered``); capped at what the village has.
    village_selection : {'pps', 'pps_frame', 'srs'}
        'pps': PPS systematic on the number of households of the village, the stratum's villages
        taken in a random order (randomized systematic PPS, svy ``pps_sys(order_type="random")``);
        'pps_frame': the same in the frame's village-code order (the variance of one fixed order
        has no design-based estimator, docs/methods.md §4); 'srs': simple random sampling.
    confidence_level : float
        Two-sided confidence level of the estimates.
    singleton_method : str
        Rule for a village stratum with one sampled village (see
        :func:`evalkit.assessment.criteria.estimate_criteria`).
    """

    villages_per_stratum: Mapping[str, int]
    households_per_village: Mapping[str, int]
    village_selection: Literal["pps", "pps_frame", "srs"]
    confidence_level: float
    singleton_method: str

    def __post_init__(self) -> None:
        for name, keys in (("villages_per_stratum", VILLAGE_STRATA),
                           ("households_per_village", HH_STRATA)):
            m = dict(getattr(self, name))
            if set(m) != set(keys):
                raise SurveyError(f"SampleDesign.{name} must have exactly the keys {keys}, got {sorted(m)}")
            bad = {k: v for k, v in m.items() if int(v) != v or v < 0}
            if bad:
                raise SurveyError(f"SampleDesign.{name} must hold non-negative integers, got {bad}")
            object.__setattr__(self, name, {k: int(m[k]) for k in keys})
        if self.village_selection not in VILLAGE_SELECTIONS:
            raise SurveyError(f"village_selection must be one of {VILLAGE_SELECTIONS}, got {self.village_selection!r}")
        if not 0.0 < float(self.confidence_level) < 1.0:
            raise SurveyError(f"confidence_level must be in (0, 1), got {self.confidence_level!r}")

    @classmethod
    def from_policy(cls, policy: Policy, **overrides: Any) -> SampleDesign:
        """Design with the ``[survey]`` defaults of ``policy``, overridden by keywords."""
        sec = policy.survey
        kw: dict[str, Any] = {"villages_per_stratum": dict(sec.villages_per_stratum),
                              "households_per_village": dict(sec.households_per_village),
                              "village_selection": sec.village_selection,
                              "confidence_level": sec.confidence_level, "singleton_method": sec.singleton_method}
        kw.update(overrides)
        return cls(**kw)

    @property
    def pps(self) -> bool:
        """True when villages are drawn with probability proportional to size (either order)."""
        return self.village_selection != "srs"

    def as_dict(self) -> dict:
        """Plain dict (for attrs and reports)."""
        return asdict(self)


# --------------------------------------------------------------------------------------------
# selection
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SampleFrame:
    """Sampling frames of one draw, built once and reused across draws (operating characteristic)."""

    villages: pl.DataFrame      # county_code, village_code, stratum, n_hh (strata with n > 0 only)
    households: pl.DataFrame    # county_code, village_code, household_id, hh_stratum, household_size
    n_villages: dict            # (county, stratum) -> n actually drawn
    take_all: list              # [(county, stratum, N)] strata taken whole (certainty)
    empty_villages: int         # villages of the table without households (not in the frame)
    design: SampleDesign
    year: int


def build_frame(households: pd.DataFrame, villages: pd.DataFrame, year: int,
                design: SampleDesign) -> SampleFrame:
    """The sampling frames of ``year`` (strata, sizes, take-all strata), reusable across draws."""
    require_columns(households, ("household_id", "village_code", "county_code", "household_size",
                                 "registered", "exit_year"), "households")
    require_columns(villages, ("village_code", "county_code", "is_poverty_village"), "villages")
    hh = pd.DataFrame({
        "county_code": households["county_code"].astype(str).to_numpy(),
        "village_code": households["village_code"].astype(str).to_numpy(),
        "household_id": households["household_id"].astype(str).to_numpy(),
        "hh_stratum": household_strata(households, year).to_numpy(),
        "household_size": pd.to_numeric(households["household_size"]).to_numpy(),
    })
    if hh["household_id"].duplicated().any():
        raise SurveyError(f"households has {int(hh['household_id'].duplicated().sum())} duplicated household_id(s)")
    vil = pd.DataFrame({
        "village_code": villages["village_code"].astype(str).to_numpy(),
        "v_county": villages["county_code"].astype(str).to_numpy(),
        "stratum": village_strata(villages).to_numpy(),
    })
    unknown = np.setdiff1d(hh["village_code"].unique(), vil["village_code"].to_numpy())
    if unknown.size:
        raise SurveyError(f"{unknown.size} village(s) of households are not in villages: "
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
    return SampleFrame(
        villages=vpl, households=hpl,
        n_villages={(c, s): int(n) for c, s, n in counts.select("county_code", "stratum", "n").iter_rows()},
        take_all=[(c, s, int(n)) for c, s, n in take_all.select("county_code", "stratum", "N").iter_rows()],
        empty_villages=empty, design=design, year=int(year),
    )


def draw_from_frame(frame: SampleFrame, rng: np.random.Generator) -> pd.DataFrame:
    """One two-stage draw from a prepared frame (see :func:`draw_sample`)."""
    design = frame.design
    # ---- stage 1: villages within county x village stratum ---------------------------------
    nmap = {k: v for k, v in frame.n_villages.items() if v > 0}
    vfr = frame.villages  # already restricted to strata with n > 0
    if vfr.height == 0:
        raise SurveyError("no village stratum has a positive sample size: nothing to draw")
    if design.pps:
        s1 = svy.Sample(vfr, svy.Design(stratum=("county_code", "stratum"), psu="village_code", mos="n_hh"))
        # certainty_threshold=1: a village whose n x size share reaches 1 is taken with
        # certainty (probability 1) and the rest of the stratum is drawn PPS among the others.
        # A random order makes the draw a randomized systematic PPS, whose variance the
        # without-replacement approximation of the assessment describes; one fixed order has
        # a variance no single sample can estimate (docs/methods.md §4, benchmarks/coverage.py).
        order = "random" if design.village_selection == "pps" else "ascending"
        sel1 = s1.sampling.pps_sys(n=nmap, certainty_threshold=1.0, rstate=rng, order_type=order).data
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
                design: SampleDesign, seed: int = 0) -> pd.DataFrame:
    """Draw the evaluators' two-stage stratified sample of households.

    Stage 1, in every county and village stratum (poverty / non-poverty village): PPS
    systematic on the number of households of the village (svy ``pps_sys``; in a random order of
    the villages unless ``village_selection='pps_frame'``) or SRS (svy
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
    design : SampleDesign
        Sizes and method (:meth:`SampleDesign.from_policy`).
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
    frame = build_frame(households, villages, year, design)
    out = draw_from_frame(frame, np.random.default_rng(seed))
    out.attrs.update(sample_attrs(frame, out, seed))
    return out


def sample_attrs(frame: SampleFrame, out: pd.DataFrame, seed: int) -> dict:
    """Description of a draw (seed, year, design, take-all strata, certainty villages)."""
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

