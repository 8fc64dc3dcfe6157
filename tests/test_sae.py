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
