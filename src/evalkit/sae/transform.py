"""The income transformation of the nested-error model (shifted Box-Cox, log-shift included), chosen from the data.

``T(y) = ((y + s)^lam - 1) / lam`` (``log(y + s)`` at ``lam = 0``). Shift and power are chosen
among candidates by the REML log-likelihood of the nested-error model on the transformed scale
plus the Jacobian ``(lam - 1) sum log(y + s)`` (the likelihood of the untransformed incomes, as
emdi's Box-Cox / log-shift transformations); every candidate is fitted in one call of
:func:`~evalkit.sae.nested_error.fit_nested_error`. A left-truncated income distribution (the
non-registered households, after registration took most of the poorest) has a lighter lower tail
than the log-normal; ``lower`` candidates offer a negative shift ``-b`` (``log(y - b)``, the
three-parameter log-normal with lower bound ``b`` below the smallest sampled income), which follows it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.polynomial.hermite_e import hermegauss

from evalkit.sae.nested_error import fit_nested_error

__all__ = ["BoxCoxShift", "LogShift", "choose_transform", "choose_log_shift", "SHIFT_FACTORS", "POWERS",
           "LOWER_BOUNDS"]

#: Candidate shifts as multiples of the median income (added to the shift that makes incomes positive).
SHIFT_FACTORS = (0.0, 0.05, 0.2, 0.5, 1.0, 2.5)
#: Candidate lower bounds as shares of the smallest (positive) income: ``log(y - b)``, the three-parameter
#: log-normal, whose lower tail is lighter than the log-normal's (a left-truncated income distribution).
LOWER_BOUNDS = (0.3, 0.6, 0.8, 0.9, 0.95)  # not a threshold: a search grid
#: Candidate Box-Cox powers (0 = log-shift).
POWERS = (0.0, 0.25, 0.5, 0.75, 1.0)
_NODES, _WEIGHTS = hermegauss(24)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()


@dataclass(frozen=True)
class BoxCoxShift:
    """``T(y) = ((y + shift)^power - 1) / power``; ``log(y + shift)`` when power is 0."""

    shift: float
    power: float = 0.0

    def __call__(self, y: np.ndarray) -> np.ndarray:
        z = np.maximum(np.asarray(y, dtype=float) + self.shift, 1e-9)
        return np.log(z) if self.power == 0 else (z ** self.power - 1.0) / self.power

    def inverse(self, t: np.ndarray) -> np.ndarray:
        """Back to income."""
        t = np.asarray(t, dtype=float)
        if self.power == 0:
            return np.exp(t) - self.shift
        return np.maximum(self.power * t + 1.0, 0.0) ** (1.0 / self.power) - self.shift

    def mean_of_normal(self, mu: np.ndarray, var: np.ndarray) -> np.ndarray:
        """E[T^-1(Z)] for Z ~ N(mu, var): exact for the log, Gauss-Hermite (24 nodes) otherwise."""
        if self.power == 0:
            return np.exp(mu + 0.5 * var) - self.shift
        sd = np.sqrt(var)
        out = np.zeros(np.broadcast(mu, sd).shape)
        for x, w in zip(_NODES, _WEIGHTS):       # 24 nodes, each vectorized over all households
            out += w * self.inverse(mu + sd * x)
        return out


#: The log-shift transformation (Box-Cox power 0).
LogShift = BoxCoxShift


def choose_transform(area: np.ndarray, X: np.ndarray, y: np.ndarray, n_areas: int,
                     powers: tuple[float, ...] = POWERS, lower: tuple[float, ...] = ()
                     ) -> tuple[BoxCoxShift, np.ndarray]:
    """The (shift, power) of the highest likelihood of the untransformed incomes.

    ``lower``: shares ``f`` of the smallest income offered as negative shifts ``-f min(y)`` too (when every
    income is positive), i.e. a lower bound of the income distribution.

    Returns
    -------
    (BoxCoxShift, log-likelihoods of the candidates in (power, shift) order)
    """
    y = np.asarray(y, dtype=float)
    base = max(0.0, 1.0 - float(y.min()))          # makes every y + shift >= 1
    med = max(float(np.median(y)), 1.0)
    shifts = [base + med * f for f in SHIFT_FACTORS]
    if float(y.min()) > 1.0:
        shifts = [-f * float(y.min()) for f in lower] + shifts
    cands = [BoxCoxShift(s, p) for p in powers for s in shifts]
    Y = np.column_stack([c(y) for c in cands])
    fit = fit_nested_error(area, X, Y, n_areas)
    logz = np.log(y[:, None] + np.array([c.shift for c in cands])[None, :])
    ll = fit.loglik + (np.array([c.power for c in cands]) - 1.0) * logz.sum(axis=0)
    return cands[int(np.argmax(ll))], ll


def choose_log_shift(area: np.ndarray, X: np.ndarray, y: np.ndarray, n_areas: int) -> tuple[BoxCoxShift, np.ndarray]:
    """The log-shift of the highest likelihood (Box-Cox power fixed at 0)."""
    return choose_transform(area, X, y, n_areas, powers=(0.0,))
