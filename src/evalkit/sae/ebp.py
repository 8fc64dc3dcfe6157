"""Unit-level empirical best prediction (Molina-Rao EBP) of village indicators, with bootstrap MSE.

Population: every register household of the county (its covariates are known); sample: the
surveyed households (income and guarantees observed). Income follows the nested-error model on
the shifted Box-Cox (log-shift) scale (:mod:`~evalkit.sae.nested_error`, :mod:`~evalkit.sae.transform`); a household
fails the standard when its income is not above the line or, independently, a guarantee fails,
with a failure probability per household stratum estimated from the sample. Under that model
the EBP of a village's share of persons not meeting the standard, and of its mean income, is
exact in closed form (no Monte Carlo): for an unsampled household with conditional mean ``mu``
and variance ``v`` on the transformed scale,
``P(poor) = 1 - (1 - g) (1 - F((T(z) - mu) / sqrt(v)))`` and ``E(income) = exp(mu) E exp(sqrt(v) e) - s``
(``F`` normal or the empirical law of the standardized residuals, whose ``E exp`` is the smearing mean over
all residuals); sampled households contribute their observed values. ``g`` is the Jeffreys posterior mean
of the guarantee-failure probability, pooled over exited and non-registered households.

Indicators per village (persons): ``wrongly_exited_rate`` (exited persons not meeting the
standard / exited persons), ``missed_poor_rate`` (the same among non-registered persons),
``poverty_incidence`` (remaining registered poor persons plus those two counts, over all persons:
the county's comprehensive incidence per village) and ``mean_income`` (person-weighted mean
income per capita).

MSE: parametric bootstrap (González-Manteiga et al. 2008; Molina and Rao 2010): B populations
are generated from the fitted model, their true village values computed, the model refitted on
each bootstrap sample (all B at once) and the EBP recomputed; MSE = mean squared difference. With
sampling weights, every replicate's EBP is also benchmarked to that replicate's county direct estimate,
which gives the benchmarked estimate an MSE of its own.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

from evalkit.errors import EvalkitError
from evalkit.sae.benchmark import ratio_benchmark_columns
from evalkit.sae.nested_error import NestedErrorFit, area_statistics, area_sums, fit_nested_error
from evalkit.sae.transform import LOWER_BOUNDS, BoxCoxShift, choose_transform

__all__ = ["INDICATORS", "GROUPS", "TRANSFORM_POWERS", "UnitData", "EbpResult", "area_indicators", "ebp", "fail_rates",
           "smearing", "ebp_bootstrap"]

#: Village indicators estimated by the small-area methods.
INDICATORS = ("poverty_incidence", "wrongly_exited_rate", "missed_poor_rate", "mean_income")
#: Box-Cox powers the EBP chooses among (with the shift): the log-shift only. Box-Cox candidates chosen by
#: likelihood made the missed-poor rate worse on the synthetic truth (benchmarks/sae.py; docs: h12_methods).
TRANSFORM_POWERS = (0.0,)
#: Lower bounds (shares of the smallest sampled income) offered to the log-shift: ``log(y - b)`` follows the lighter
#: lower tail of incomes left-truncated by registration (benchmarks/sae.py; docs/methods.md section 10).
TRANSFORM_LOWER = LOWER_BOUNDS
#: Household strata of the register (``group`` codes 0, 1, 2).
GROUPS = ("exited", "poor", "non_registered")
#: Fit the nested-error models by adjusted REML (never a zero area variance; see
#: :func:`~evalkit.sae.nested_error.fit_nested_error`).
ADJUSTED_REML = True
#: A group's model has an area effect only when at least this many villages have 2+ sampled households of it.
MIN_AREAS_WITH_TWO = 10
#: Groups whose guarantee-failure probability is estimated together (exited, non-registered).
POOLED_FAIL_GROUPS = (0, 2)


@dataclass(frozen=True)
class UnitData:
    """The register population and its sample.

    Attributes
    ----------
    area : int array (N,)
        Village index 0..A-1 of each register household.
    X : array (N, p)
        Covariates known for every household (intercept included).
    size : array (N,)
        Persons per household.
    group : int array (N,)
        0 exited, 1 registered poor, 2 non-registered (:data:`GROUPS`).
    sampled : int array (n,)
        Positions of the surveyed households in the population.
    income : array (n,)
        Surveyed per-capita income of the sampled households.
    fails : bool array (n,)
        A guarantee fails (sampled households).
    line : float
        Poverty line: income not above it is poor.
    n_areas : int
    township : int array (N,), optional
        Township index of each household (estimates and MSEs for townships too).
    n_townships : int
    weight : array (n,), optional
        Sampling weights of the surveyed households (1 / inclusion probability): with them the EBP is
        also benchmarked to the county's direct estimate, with its own bootstrap MSE.
    """

    area: np.ndarray
    X: np.ndarray
    size: np.ndarray
    group: np.ndarray
    sampled: np.ndarray
    income: np.ndarray
    fails: np.ndarray
    line: float
    n_areas: int
    township: np.ndarray | None = None
    n_townships: int = 0
    weight: np.ndarray | None = None

    def check(self) -> None:
        """Raise EvalkitError on inconsistent shapes."""
        N = len(self.area)
        if self.X.shape[0] != N or len(self.size) != N or len(self.group) != N:
            raise EvalkitError("EBP population arrays differ in length")
        if not (len(self.sampled) == len(self.income) == len(self.fails)):
            raise EvalkitError("EBP sample arrays differ in length")
        if len(np.unique(self.sampled)) != len(self.sampled):
            raise EvalkitError("a household appears twice in the EBP sample")


@dataclass(frozen=True)
class EbpResult:
    """EBP estimates and bootstrap MSE per village, one (A,) array per indicator; fits per household group;
    with sampling weights also the estimates benchmarked to the county direct estimate and their MSE."""

    est: dict[str, np.ndarray]
    mse: dict[str, np.ndarray]
    est_township: dict[str, np.ndarray] | None
    mse_township: dict[str, np.ndarray] | None
    transform: list[BoxCoxShift]
    fit: list[NestedErrorFit]
    fail_rate: np.ndarray
    residuals: np.ndarray
    area_effects: np.ndarray
    B: int
    est_benchmarked: dict[str, np.ndarray] | None = None
    mse_benchmarked: dict[str, np.ndarray] | None = None


def area_indicators(area: np.ndarray, size: np.ndarray, group: np.ndarray, poor: np.ndarray,
                    income: np.ndarray, n_areas: int) -> dict[str, np.ndarray]:
    """Village indicators from household values (``poor`` and ``income`` (N, B): values or expectations)."""
    m = np.asarray(size, dtype=float)[:, None]
    ex, pr, nr = (group == 0)[:, None], (group == 1)[:, None], (group == 2)[:, None]
    tot = lambda v: area_sums(area, v, n_areas)  # noqa: E731
    # register counts do not vary over the columns: summed once, (A, 1)
    persons, e_pers, n_pers, p_pers = np.split(tot(np.hstack([m, m * ex, m * nr, m * pr])), 4, axis=1)
    we, mp = tot(m * ex * poor), tot(m * nr * poor)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "poverty_incidence": (p_pers + we + mp) / persons,
            "wrongly_exited_rate": we / e_pers,
            "missed_poor_rate": mp / n_pers,
            "mean_income": tot(m * income) / persons,
        }


def fail_rates(group_s: np.ndarray, fails: np.ndarray) -> np.ndarray:
    """Probability of a failing guarantee per group (3, B): the posterior mean (x + 1/2) / (n + 1) under
    Jeffreys' prior. Failures are rare (0.1-0.5% of households), so a sample of ~100 households of a group often
    has none; the share x / n would then say 0 and the EBP would miss every failure. Exited and non-registered
    households share one rate (:data:`POOLED_FAIL_GROUPS`)."""
    f = fails.reshape(len(group_s), -1).astype(float)
    # exited and non-registered households share one rate (their failures are too rare to tell apart in a
    # sample); the registered poor, whose guarantees are still being fixed, have their own
    pooled = np.isin(group_s, POOLED_FAIL_GROUPS)
    x = np.stack([f[pooled].sum(0), f[group_s == 1].sum(0)])
    n = np.array([pooled.sum(), (group_s == 1).sum()], dtype=float)[:, None]
    rate = (x + 0.5) / (n + 1.0)
    return rate[[0, 1, 0]]


def _unit_law(t: BoxCoxShift, mu: np.ndarray, var: np.ndarray, a_pop: np.ndarray, line: float,
              eps: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """P(income <= line) and E(income) of unsampled households with transformed-scale mean ``mu`` (N, B) and
    predictive variance ``var[a_pop]`` (``var`` (A, B) per village): normal errors, or the empirical law ``eps``
    (standardized residuals sorted by column, (n,) or one column per replicate (n, B)) scaled to it."""
    sd_a = np.sqrt(var)
    zt = (t(np.array(line)) - mu) / sd_a[a_pop]
    if eps is None:
        p = ndtr(zt)
        if t.power == 0:
            return p, np.exp(mu) * np.exp(0.5 * var)[a_pop] - t.shift
        return p, t.mean_of_normal(mu, var[a_pop])
    e2 = eps[:, None] if eps.ndim == 1 else eps
    n_e, B = e2.shape
    # one searchsorted for every replicate: column b shifted by b * 1000 (|standardized residual| < 400)
    off = 1000.0 * np.arange(B)
    flat = (e2 + off[None, :]).T.ravel()
    zc = np.clip(zt, -400.0, 400.0) + (off[None, :] if eps.ndim == 2 else 0.0)
    pos = np.searchsorted(flat, zc.ravel(), side="right").reshape(zt.shape)
    p = np.clip(pos - (np.arange(B)[None, :] * n_e if eps.ndim == 2 else 0), 0, n_e) / n_e
    if t.power == 0:
        # log scale: E exp(mu + sd e) = exp(mu) E exp(sd e), the second factor per village and exact under the
        # empirical law (the smearing estimator: every residual, not quantile nodes, which miss the upper tail
        # and so underestimate the mean), summed in chunks of residuals to bound memory
        return p, np.exp(mu) * smearing(sd_a, e2)[a_pop] - t.shift
    q = np.quantile(e2, (np.arange(_QUANTILES) + 0.5) / _QUANTILES, axis=0)          # (Q, B)
    inc = np.zeros_like(mu)
    for x in q:                   # a fixed number of quantile nodes, each vectorized over households
        inc += t.inverse(mu + sd_a[a_pop] * (x[None, :] if eps.ndim == 2 else x[0]))
    return p, inc / _QUANTILES


def _exp_mean(sd: np.ndarray, e2: np.ndarray) -> np.ndarray:
    """mean_j exp(sd[., b] e2[j, b]) for sd (G, B), in chunks of residuals to bound memory."""
    out = np.zeros_like(sd)
    for j in range(0, len(e2), _CHUNK):
        out += np.exp(sd[None, :, :] * e2[j:j + _CHUNK, None, :]).sum(0)
    return out / len(e2)


def smearing(sd_a: np.ndarray, e2: np.ndarray) -> np.ndarray:
    """E exp(sd e) under the empirical law of ``e2`` (n_e, B) for every village's sd (A, B).

    With many villages, log E exp(sd e) (the cumulant generating function, smooth and convex) is computed on
    a grid of :data:`_GRID` values of sd per replicate and interpolated linearly (error ~1e-6 relative)."""
    if sd_a.shape[0] <= _GRID:
        return _exp_mean(sd_a, e2)
    lo, hi = sd_a.min(0), sd_a.max(0)
    step = np.where(hi > lo, (hi - lo) / (_GRID - 1), 1.0)
    grid = lo[None, :] + step[None, :] * np.arange(_GRID)[:, None]
    k = np.log(_exp_mean(grid, e2))                                       # (G, B)
    pos = (sd_a - lo[None, :]) / step[None, :]
    i = np.clip(np.floor(pos).astype(np.int64), 0, _GRID - 2)
    w, cols = pos - i, np.arange(sd_a.shape[1])[None, :]
    return np.exp(k[i, cols] * (1.0 - w) + k[i + 1, cols] * w)


def _predict(d: UnitData, fits: list[NestedErrorFit], tf: list[BoxCoxShift], ys: np.ndarray, fails_s: np.ndarray,
             g: np.ndarray, errs: list[np.ndarray | None]) -> dict[str, np.ndarray]:
    """EBP of every indicator for each fitted replicate (columns of ``ys`` (n, B)); one model per group."""
    B = ys.shape[1]
    poor, inc = np.zeros((len(d.area), B)), np.zeros((len(d.area), B))
    gs = d.group[d.sampled]
    for k, (fit, t) in enumerate(zip(fits, tf)):       # three household groups
        pop, smp = d.group == k, gs == k
        a_pop, X_pop = d.area[pop], d.X[pop]
        n_a, xbar, ybar = area_statistics(d.area[d.sampled][smp], d.X[d.sampled][smp], t(ys[smp]), d.n_areas)
        shrink = fit.s2u[None, :] / (fit.s2u[None, :] + fit.s2e[None, :] / np.maximum(n_a, 1.0)[:, None])
        shrink = np.where(n_a[:, None] > 0, shrink, 0.0)                              # (A, B)
        u_hat = shrink * (ybar - xbar @ fit.beta)
        var = fit.s2e[None, :] + fit.s2u[None, :] * (1.0 - shrink)
        # no extrapolation: a household's linear predictor is held within the range of the group's sample (a
        # village covariate fitted on ~30 sampled villages can otherwise send exp(mu) far beyond any income seen)
        xb_s = d.X[d.sampled][smp] @ fit.beta
        mu = np.clip(X_pop @ fit.beta, xb_s.min(0), xb_s.max(0)) + u_hat[a_pop]
        p_inc, inc[pop] = _unit_law(t, mu, var, a_pop, d.line, errs[k])
        poor[pop] = 1.0 - (1.0 - g[k][None, :]) * (1.0 - p_inc)
    poor[d.sampled] = ((ys <= d.line) | fails_s).astype(float)
    inc[d.sampled] = ys
    return _levels(d, poor, inc)


def _county_direct(d: UnitData, poor_s: np.ndarray, inc_s: np.ndarray) -> dict[str, np.ndarray]:
    """Design-weighted (Hajek) county estimates of the indicators from the sample values (n, B) -> (B,)."""
    w = (d.weight * d.size[d.sampled])[:, None]
    gs = d.group[d.sampled]
    ex, nr = (gs == 0)[:, None], (gs == 2)[:, None]
    pers = np.bincount(d.group, weights=d.size, minlength=3)
    with np.errstate(invalid="ignore", divide="ignore"):
        we = np.nan_to_num((w * ex * poor_s).sum(0) / (w * ex).sum())
        mp = np.nan_to_num((w * nr * poor_s).sum(0) / (w * nr).sum())
    return {"poverty_incidence": (pers[1] + pers[0] * we + pers[2] * mp) / pers.sum(), "wrongly_exited_rate": we,
            "missed_poor_rate": mp, "mean_income": (w * inc_s).sum(0) / w.sum()}


def _benchmarked(d: UnitData, pred: dict[str, np.ndarray], poor_s: np.ndarray, inc_s: np.ndarray
                 ) -> dict[str, np.ndarray]:
    """Village predictions (A, B) ratio-benchmarked to the county direct estimate of the same sample
    (each column to its own); rates truncated to [0, 1]."""
    county = _county_direct(d, poor_s, inc_s)
    pers = {k: np.bincount(d.area, weights=d.size * (d.group == k), minlength=d.n_areas) for k in range(3)}
    pops = {"wrongly_exited_rate": pers[0], "missed_poor_rate": pers[2]}
    out = {}
    for k in INDICATORS:
        b = ratio_benchmark_columns(pred[k], pops.get(k, pers[0] + pers[1] + pers[2]), county[k])
        out[k] = b if k == "mean_income" else np.clip(b, 0.0, 1.0)
    return out


def _levels(d: UnitData, poor: np.ndarray, inc: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """Indicators of villages and (when given) townships from household values."""
    out = {"village": area_indicators(d.area, d.size, d.group, poor, inc, d.n_areas)}
    if d.township is not None:
        out["township"] = area_indicators(d.township, d.size, d.group, poor, inc, d.n_townships)
    return out


_QUANTILES = 24
_CHUNK = 64
_GRID = 65
#: Unit-level columns of the design (intercept, log size, recorded income): the fallback of a small group.
UNIT_COLUMNS = (0, 3, 4)


def _columns(X: np.ndarray) -> np.ndarray:
    """Columns of ``X`` to use for one group: those that vary (a group's dummies are constant within
    it); when the group's sample is too small or the columns collinear, the unit-level ones, then the
    intercept alone."""
    n, p = X.shape
    for cand in (np.arange(p), np.array(UNIT_COLUMNS)[np.array(UNIT_COLUMNS) < p], np.array([0])):
        keep = np.zeros(p, dtype=bool)
        keep[cand] = True
        keep &= np.ptp(X, axis=0) > 0 if n else keep
        keep[0] = True
        if n > keep.sum() + 2 and np.linalg.matrix_rank(X[:, keep]) == keep.sum():
            return keep
    return keep


def _fit_groups(d: UnitData, ys: np.ndarray, tf: list[BoxCoxShift] | None
                ) -> tuple[list[NestedErrorFit], list[BoxCoxShift], list[np.ndarray]]:
    """One nested-error model per household group (their error variances differ)."""
    gs, fits, tfs, cols = d.group[d.sampled], [], [], []
    for k in range(len(GROUPS)):
        smp = gs == k
        keep = _columns(d.X[d.sampled][smp]) if smp.sum() else np.eye(d.X.shape[1], dtype=bool)[0]
        Xs, a = d.X[d.sampled][smp][:, keep], d.area[d.sampled][smp]
        if smp.sum() <= keep.sum() + 2:
            raise EvalkitError(f"EBP: only {int(smp.sum())} sampled {GROUPS[k]} household(s)")
        t = tf[k] if tf is not None else choose_transform(a, Xs, ys[smp, 0], d.n_areas, TRANSFORM_POWERS,
                                                                     TRANSFORM_LOWER)[0]
        # about one sampled household per village cannot tell s2u from s2e (REML may put everything into s2u,
        # leaving the unsampled households of a sampled village no error): then no area effect, all of the
        # variance is unit variance
        sep = int((np.bincount(a, minlength=d.n_areas) >= 2).sum()) >= MIN_AREAS_WITH_TWO
        f = fit_nested_error(a, Xs, t(ys[smp]), d.n_areas, adjusted=ADJUSTED_REML, area_effect=sep)
        beta = np.zeros((d.X.shape[1], f.beta.shape[1]))
        beta[keep] = f.beta
        fits.append(NestedErrorFit(beta=beta, s2e=f.s2e, s2u=f.s2u, loglik=f.loglik, n_areas=f.n_areas))
        tfs.append(t)
        cols.append(keep)
    return fits, tfs, cols


def _residuals(d: UnitData, fits: list[NestedErrorFit], tfs: list[BoxCoxShift], ys: np.ndarray | None = None
               ) -> tuple[np.ndarray, list]:
    """Unit residuals (area effect predictions removed) of the sample (n, B) and the area effects per group."""
    ys = d.income[:, None] if ys is None else ys
    resid = np.full(ys.shape, np.nan)
    u_hats = []
    for k, (fit, t) in enumerate(zip(fits, tfs)):
        smp = d.group[d.sampled] == k
        r = t(ys[smp]) - d.X[d.sampled][smp] @ fit.beta
        n_a, _, rbar = area_statistics(d.area[d.sampled][smp], d.X[d.sampled][smp], r, d.n_areas)
        shrink = fit.s2u[None, :] / (fit.s2u[None, :] + fit.s2e[None, :] / np.maximum(n_a, 1.0)[:, None])
        u_hat = np.where(n_a[:, None] > 0, shrink, 0.0) * rbar
        resid[smp] = r - u_hat[d.area[d.sampled][smp]]
        u_hats.append(u_hat)
    return resid, u_hats


def _error_laws(d: UnitData, resid: np.ndarray, errors: str) -> list[np.ndarray | None]:
    """Per group: None (normal errors) or the sorted standardized residuals (empirical errors)."""
    if errors not in ("normal", "empirical"):
        raise EvalkitError(f"errors must be 'normal' or 'empirical', got {errors!r}")
    if errors == "normal":
        return [None] * len(GROUPS)
    out = []
    for k in range(len(GROUPS)):
        r = resid[d.group[d.sampled] == k]                         # (n_k, B)
        sd = r.std(axis=0)
        ok = len(r) > 2 and bool(np.all(sd > 0)) and bool(np.isfinite(r).all())
        e = np.sort((r - r.mean(axis=0)) / np.where(sd > 0, sd, 1.0), axis=0) if ok else None
        out.append(e[:, 0] if e is not None and e.shape[1] == 1 else e)
    return out


def ebp(d: UnitData, transform: list[BoxCoxShift] | None = None, errors: str = "empirical"
        ) -> tuple[dict[str, dict[str, np.ndarray]], list[NestedErrorFit], list[BoxCoxShift], np.ndarray, list]:
    """EBP point estimates per level ('village', 'township') and indicator, the fits and
    transformations per group, the failure rates and the error laws (see :func:`ebp_bootstrap`)."""
    d.check()
    fits, tfs, _ = _fit_groups(d, d.income[:, None], transform)
    g = fail_rates(d.group[d.sampled], d.fails)
    errs = _error_laws(d, _residuals(d, fits, tfs)[0], errors)
    est = _predict(d, fits, tfs, d.income[:, None], d.fails[:, None], g, errs)
    return {lv: {k: v[:, 0] for k, v in e.items()} for lv, e in est.items()}, fits, tfs, g[:, 0], errs


def ebp_bootstrap(d: UnitData, B: int = 50, seed: int = 0, transform: list[BoxCoxShift] | None = None,
                  errors: str = "empirical") -> EbpResult:
    """EBP with parametric-bootstrap MSE (``B`` replicates, all at once).

    Parameters
    ----------
    d : UnitData
    B : int
        Bootstrap replicates (50 is modest; the MSE's own relative SE is about sqrt(2/B)).
    seed : int
    transform : list of BoxCoxShift, optional
        One per group; default chosen from the data (:func:`~evalkit.sae.transform.choose_transform`).
    errors : {'empirical', 'normal'}
        Law of the unit errors: the sample's standardized residuals of the group (empirical; the
        bootstrap resamples them) or normal.
    """
    est, fits, tfs, g, errs = ebp(d, transform, errors)
    rng = np.random.default_rng(seed)
    N = len(d.area)
    y_star = np.empty((N, B))
    resid, u_hats = _residuals(d, fits, tfs)
    resid, u_hats = resid[:, 0], [u[:, 0] for u in u_hats]
    for k, (fit, t) in enumerate(zip(fits, tfs)):
        pop = d.group == k
        u = rng.normal(0.0, np.sqrt(fit.s2u[0]), (d.n_areas, B))
        mu = (d.X[pop] @ fit.beta)[:, 0]
        e = rng.normal(0.0, 1.0, (pop.sum(), B)) if errs[k] is None else rng.choice(errs[k], (pop.sum(), B))
        y_star[pop] = t.inverse(mu[:, None] + u[d.area[pop]] + np.sqrt(fit.s2e[0]) * e)
    f_star = rng.random((N, B)) < g[d.group][:, None]
    truth = _levels(d, ((y_star <= d.line) | f_star).astype(float), y_star)
    ys, fs = y_star[d.sampled], f_star[d.sampled]
    fits_b, _, _ = _fit_groups(d, ys, tfs)
    # the bootstrap sample's own residual law: the MSE includes the error of estimating the law
    errs_b = _error_laws(d, _residuals(d, fits_b, tfs, ys)[0], errors)
    errs_b = [e if e is None or e.ndim == 2 else e[:, None] for e in errs_b]
    pred = _predict(d, fits_b, tfs, ys, fs, fail_rates(d.group[d.sampled], fs), errs_b)
    mse = {lv: {k: np.nanmean((pred[lv][k] - truth[lv][k]) ** 2, axis=1) for k in INDICATORS} for lv in truth}
    est_b = mse_b = None
    if d.weight is not None:
        # each replicate benchmarked to its own county direct estimate: the MSE includes the benchmark's error
        poor_s = ((d.income <= d.line) | d.fails).astype(float)[:, None]
        est_b = {k: v[:, 0] for k, v in _benchmarked(d, {k: v[:, None] for k, v in est["village"].items()},
                                                     poor_s, d.income[:, None]).items()}
        bench = _benchmarked(d, pred["village"], ((ys <= d.line) | fs).astype(float), ys)
        mse_b = {k: np.nanmean((bench[k] - truth["village"][k]) ** 2, axis=1) for k in INDICATORS}
    return EbpResult(est=est["village"], mse=mse["village"], est_township=est.get("township"),
                     mse_township=mse.get("township"), transform=tfs, fit=fits, fail_rate=g, residuals=resid,
                     area_effects=np.column_stack(u_hats), B=int(B), est_benchmarked=est_b, mse_benchmarked=mse_b)
