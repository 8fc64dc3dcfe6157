"""Quick analytic sample size and power of a Korn-Graubard verdict, for one criterion, before fieldwork.

An approximation for a first idea of the size of one criterion's domain. The verdict of
:func:`evalkit.assessment.criteria.estimate_criteria` passes a maximum rate when the upper bound of
its interval (the policy's ``[survey] ci_method``: Korn-Graubard with the effective size truncated
— a design effect of at least 1, or at least 1 - f with the domain's sampling fraction f — see
:func:`evalkit.assessment.criteria_intervals`) is below the threshold. The model here is an
exact Clopper-Pearson bound on an effective size n / deff with an ASSUMED design effect
``deff`` (>= 1 stays within the truncated family) and the verdict's df factor; it neither
estimates the design effect nor sees the finite-population correction, the register floor of the
incidence or the four criteria together. The authoritative planner simulates the whole
assessment on the county's register: :func:`evalkit.assessment.planner.plan_design` (``evalkit
plan``). svy's normal-approximation size is reported beside it for comparison.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import svy
from scipy.special import betaincinv, stdtrit

from evalkit.errors import SurveyError

__all__ = ["power_at", "plan_sample_size"]

_DIRECTIONS = ("below", "at_least")


def _check_rates(p: float, t: float, confidence: float, deff: float, direction: str,
                 zero_case_deff: float | None = None) -> None:
    if not 0.0 <= p <= 1.0:
        raise SurveyError(f"expected_rate must be in [0, 1], got {p}")
    if not 0.0 < t < 1.0:
        raise SurveyError(f"threshold must be in (0, 1), got {t}")
    if not 0.0 < confidence < 1.0:
        raise SurveyError(f"confidence must be in (0, 1), got {confidence}")
    if not (np.isfinite(deff) and deff > 0.0):
        raise SurveyError(f"deff must be positive, got {deff}")
    if direction not in _DIRECTIONS:
        raise SurveyError(f"direction must be one of {_DIRECTIONS}, got {direction!r}")
    if zero_case_deff is not None and not 0.0 < zero_case_deff <= deff:
        raise SurveyError(f"zero_case_deff must be in (0, deff = {deff}], got {zero_case_deff}")


def _kg_power(n_households: Any, n_villages: Any, expected_rate: float, threshold: float,
              confidence: float, deff: float, n_strata: int, direction: str,
              zero_case_deff: float | None = None) -> dict[str, np.ndarray]:
    """Exact-bound power of the Korn-Graubard verdict, vectorized over designs (broadcast).

    See :func:`power_at` for the model. For 'at_least' (approval) the rule is mirrored on the
    complementary rate: lci >= t  <=>  upper bound of the non-approving share <= 1 - t
    (Clopper-Pearson is symmetric), so y = non-approving households play the role of cases.
    """
    from scipy.stats import binom  # scipy.stats costs ~1 s to import: only when sizes are planned

    n = np.asarray(n_households, dtype=float)
    v = np.asarray(n_villages, dtype=float)
    n, v = np.broadcast_arrays(n, v)
    alpha = 1.0 - float(confidence)
    df = v - float(n_strata)
    if (df < 1).any() or (n < 2).any() or (n < v).any():
        raise SurveyError("each design needs n_villages > n_strata (design df >= 1) and "
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

    The rule of :func:`evalkit.assessment.criteria.estimate_criteria` (``ci_method='korn_graubard'``): a maximum
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

    The verdict itself uses an effective size of the sampled households (design effect 1, or
    n / (1 - f) with the fpc) when the sample has no case (zero SE), and never more than that
    otherwise (the truncation); by default the model applies ``deff`` to every x, so with
    ``deff > 1`` it is conservative for designs whose power rests on the zero-case term (small
    designs, or rates of 0.1%); ``zero_case_deff=1`` reproduces the verdict's zero-case bound
    without the fpc. A single criterion: the county's pass needs all four (see
    :func:`evalkit.assessment.planner.design_oc` for the simulated joint operating characteristic).
    Power is saw-toothed in n (x* is an integer, so between two steps of x* the power falls as n
    grows), as for any exact binomial rule; the verdict's estimated SE blurs the teeth in practice.

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
    from scipy.stats import norm  # see _kg_power

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
    :func:`evalkit.assessment.criteria.estimate_criteria` passes when the true rate is ``expected_rate``. The
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
        raise SurveyError(f"power must be in (0, 1), got {power}")
    m, k, vmax = int(households_per_village), int(n_strata), int(max_villages)
    if m < 1 or k < 1:
        raise SurveyError(f"households_per_village and n_strata must be >= 1, got {m}, {k}")
    if not mean_household_size > 0:
        raise SurveyError(f"mean_household_size must be positive, got {mean_household_size}")
    vmin = 2 * k  # two villages per stratum: a variance without a singleton rule
    if vmax < vmin:
        raise SurveyError(f"max_villages must be at least 2 * n_strata = {vmin}, got {vmax}")
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
