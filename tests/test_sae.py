"""Small-area estimation: nested-error REML, Fay-Herriot REML and Prasad-Rao MSE against independent computations."""
from __future__ import annotations

import numpy as np
import statsmodels.api as sm
from scipy.optimize import minimize_scalar

from evalkit.sae.benchmark import ratio_benchmark
from evalkit.sae.fay_herriot import fit_fay_herriot
from evalkit.sae.nested_error import area_sums, fit_nested_error

# Fixture: 12 areas (direct estimates, sampling variances, one covariate), made up for the test.
THETA = np.array([0.12, 0.08, 0.20, 0.15, 0.05, 0.30, 0.22, 0.10, 0.18, 0.26, 0.09, 0.14])
PSI = np.array([0.002, 0.004, 0.003, 0.001, 0.005, 0.004, 0.002, 0.003, 0.006, 0.002, 0.004, 0.003])
XCOV = np.array([0.30, 0.10, 0.10, 0.20, 0.05, 0.20, 0.30, 0.20, 0.10, 0.15, 0.25, 0.05])


def test_area_sums_with_empty_first_and_last_area():
    area = np.array([1, 1, 2, 4, 4])
    v = np.arange(5, dtype=float)[:, None]
    np.testing.assert_array_equal(area_sums(area, v, 6)[:, 0], [0, 1, 2, 0, 7, 0])


def test_nested_error_matches_statsmodels_mixedlm():
    rng = np.random.default_rng(3)
    n_a = rng.integers(2, 25, 20)
    area = np.repeat(np.arange(20), n_a)
    n = len(area)
    X = np.column_stack([np.ones(n), rng.normal(size=n), rng.random(n) < 0.4])
    y = X @ [1.0, 0.5, -0.3] + rng.normal(0, 0.6, 20)[area] + rng.normal(0, 1, n)
    f = fit_nested_error(area, X, y)
    m = sm.MixedLM(y, X, groups=area).fit(reml=True)
    np.testing.assert_allclose(f.beta[:, 0], m.fe_params, rtol=1e-5)
    np.testing.assert_allclose(f.s2e[0], m.scale, rtol=1e-4)
    np.testing.assert_allclose(f.s2u[0], np.asarray(m.cov_re)[0, 0], rtol=1e-3)
    # many responses at once give the same as one at a time
    Y = np.column_stack([y, y + rng.normal(size=n)])
    f2 = fit_nested_error(area, X, Y)
    np.testing.assert_allclose(f2.s2u[0], f.s2u[0], rtol=1e-7)


def _fisher_scoring_reml(theta, psi, X):
    """REML for A by Fisher scoring on the REML score (Rao and Molina 2015, 6.1.2), written independently."""
    A = float(np.var(theta))
    for _ in range(200):
        V_inv = np.diag(1 / (A + psi))
        P = V_inv - V_inv @ X @ np.linalg.inv(X.T @ V_inv @ X) @ X.T @ V_inv
        score = -0.5 * np.trace(P) + 0.5 * theta @ P @ P @ theta
        info = 0.5 * np.trace(P @ P)
        A_new = max(A + score / info, 0.0)
        if abs(A_new - A) < 1e-14:
            break
        A = A_new
    return A


def test_fay_herriot_reml_and_prasad_rao_mse():
    X = np.column_stack([np.ones(12), XCOV])
    fit = fit_fay_herriot(THETA, PSI, X)
    A = _fisher_scoring_reml(THETA, PSI, X)
    assert A > 0
    np.testing.assert_allclose(fit.A, A, rtol=1e-6)
    # a second independent route: direct maximization of the REML log-likelihood written out here
    def negll(a):
        V = np.diag(a + PSI)
        Vi = np.linalg.inv(V)
        P = Vi - Vi @ X @ np.linalg.inv(X.T @ Vi @ X) @ X.T @ Vi
        return 0.5 * (np.linalg.slogdet(V)[1] + np.linalg.slogdet(X.T @ Vi @ X)[1] + THETA @ P @ THETA)
    A2 = minimize_scalar(negll, bounds=(0, 1), method="bounded", options={"xatol": 1e-12}).x
    np.testing.assert_allclose(fit.A, A2, rtol=1e-5)
    # Prasad-Rao MSE by hand for area 0 (g1 + g2 + 2 g3, REML)
    w = 1 / (A + PSI)
    cov_b = np.linalg.inv(X.T @ (X * w[:, None]))
    beta = cov_b @ X.T @ (w * THETA)
    g = A / (A + PSI[0])
    g1 = g * PSI[0]
    g2 = (1 - g) ** 2 * X[0] @ cov_b @ X[0]
    g3 = PSI[0] ** 2 / (A + PSI[0]) ** 3 * 2 / np.sum(w ** 2)
    np.testing.assert_allclose(fit.mse[0], g1 + g2 + 2 * g3, rtol=1e-5)
    np.testing.assert_allclose(fit.eblup[0], g * THETA[0] + (1 - g) * X[0] @ beta, rtol=1e-6)
    # an area without a direct estimate: synthetic estimate, MSE A + x'Var(beta)x
    th = THETA.copy()
    th[3] = np.nan
    f3 = fit_fay_herriot(th, PSI, X)
    np.testing.assert_allclose(f3.eblup[3], X[3] @ f3.beta)
    np.testing.assert_allclose(f3.mse[3], f3.A + X[3] @ f3.beta_cov @ X[3])


def test_ratio_benchmark_hits_the_county_value():
    est, f = ratio_benchmark(np.array([0.1, 0.2, 0.3]), np.array([10, 20, 30]), 0.28)
    assert np.isclose((est * [10, 20, 30]).sum() / 60, 0.28)
    assert np.isclose(f, 0.28 / (14 / 60))


def _reml_dense(area, X, y, adjusted):
    """REML (optionally + log s2u, Li-Lahiri) written with dense V = s2e I + s2u ZZ', maximized by Nelder-Mead."""
    from scipy.optimize import minimize
    Z = (area[:, None] == np.arange(area.max() + 1)[None, :]).astype(float)

    def negll(par):
        s2u, s2e = np.exp(par)
        V = s2e * np.eye(len(y)) + s2u * Z @ Z.T
        Vi = np.linalg.inv(V)
        XtViX = X.T @ Vi @ X
        P = Vi - Vi @ X @ np.linalg.solve(XtViX, X.T @ Vi)
        ll = -0.5 * (np.linalg.slogdet(V)[1] + np.linalg.slogdet(XtViX)[1] + y @ P @ y)
        return -(ll + (np.log(s2u) if adjusted else 0.0))

    r = minimize(negll, [np.log(0.1), np.log(1.0)], method="Nelder-Mead", options={"xatol": 1e-9, "fatol": 1e-12,
                                                                                     "maxiter": 4000})
    return np.exp(r.x)


def test_adjusted_reml_matches_dense_likelihood_and_ols_without_area_effect():
    rng = np.random.default_rng(11)
    n_a = rng.integers(1, 6, 15)
    area = np.repeat(np.arange(15), n_a)
    n = len(area)
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    y = X @ [2.0, 0.4] + rng.normal(0, 0.15, 15)[area] + rng.normal(0, 0.5, n)
    for adjusted in (False, True):
        fit = fit_nested_error(area, X, y, adjusted=adjusted)
        s2u, s2e = _reml_dense(area, X, y, adjusted)
        np.testing.assert_allclose([fit.s2u[0], fit.s2e[0]], [s2u, s2e], rtol=2e-4, atol=1e-6)
    # adjusted REML keeps s2u > 0 where plain REML may hit the boundary
    assert fit_nested_error(area, X, y, adjusted=True).s2u[0] > 0
    # without an area effect: ordinary least squares, s2e = RSS / (n - p)
    ols = fit_nested_error(area, X, y, area_effect=False)
    beta, rss = np.linalg.lstsq(X, y, rcond=None)[:2]
    np.testing.assert_allclose(ols.beta[:, 0], beta, rtol=1e-10)
    np.testing.assert_allclose(ols.s2e[0], rss[0] / (n - 2), rtol=1e-10)
    assert ols.s2u[0] == 0


def test_lower_bound_transform_is_chosen_for_a_bounded_income():
    from evalkit.sae.transform import LOWER_BOUNDS, choose_transform
    rng = np.random.default_rng(5)
    area = np.repeat(np.arange(20), 30)
    # three-parameter log-normal: income = 4000 + exp(N(7.5, 0.6)), bounded below by 4000
    y = 4000.0 + np.exp(7.5 + rng.normal(0, 0.1, 20)[area] + rng.normal(0, 0.6, len(area)))
    X = np.ones((len(area), 1))
    t, ll = choose_transform(area, X, y, 20, powers=(0.0,), lower=LOWER_BOUNDS)
    assert t.shift < 0                                   # a lower bound, not an added shift
    b = -t.shift
    assert 0.6 * y.min() < b < y.min() and abs(b - 4000.0) / 4000.0 < 0.25
    # the Jacobian term as written by hand: the chosen candidate's likelihood minus that of the plain log
    plain = choose_transform(area, X, y, 20, powers=(0.0,))[1]
    assert ll.max() > plain.max()


def test_fail_rates_are_pooled_jeffreys_by_hand():
    from evalkit.sae.ebp import fail_rates
    group = np.array([0, 0, 0, 2, 2, 1, 1, 1, 1])
    fails = np.array([0, 0, 1, 0, 0, 1, 0, 0, 0], dtype=bool)
    g = fail_rates(group, fails)[:, 0]
    # exited + non-registered: 1 failure of 5 -> (1 + 0.5) / (5 + 1); registered poor: 1 of 4 -> 1.5 / 5
    np.testing.assert_allclose(g, [0.25, 0.3, 0.25])


def test_benchmark_columns_equal_the_one_column_benchmark():
    from evalkit.sae.benchmark import ratio_benchmark_columns
    rng = np.random.default_rng(1)
    est, pop, target = rng.random((7, 4)), rng.integers(1, 50, 7).astype(float), rng.random(4)
    cols = ratio_benchmark_columns(est, pop, target)
    for b in range(4):
        np.testing.assert_allclose(cols[:, b], ratio_benchmark(est[:, b], pop, target[b])[0], rtol=1e-12)
        np.testing.assert_allclose((cols[:, b] * pop).sum() / pop.sum(), target[b], rtol=1e-12)


def test_smearing_grid_matches_the_exact_empirical_mean():
    from evalkit.sae.ebp import smearing
    rng = np.random.default_rng(4)
    sd = np.sqrt(rng.uniform(0.1, 0.6, (300, 3)))
    e = np.sort(rng.normal(size=(400, 3)), axis=0)
    exact = np.stack([np.exp(sd[:, b][:, None] * e[:, b][None, :]).mean(1) for b in range(3)], 1)
    np.testing.assert_allclose(smearing(sd, e), exact, rtol=1e-5)
