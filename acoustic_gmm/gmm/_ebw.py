"""The extended Baum-Welch (EBW) update: discriminative re-estimation of a diagonal GMM from two statistics.

Kaldi's ``ebw-diag-gmm`` beside its ML and MAP updates: another update over :class:`~acoustic_gmm.gmm.Stats`, not
another engine.  :func:`ebw_update` takes the numerator and denominator statistics of a model (MMI's, gathered by
:mod:`acoustic_gmm.classes`) and moves means, variances and weights with Povey's per-Gaussian smoothing constant
``D`` (large enough for every variance to stay positive) and his iterative weight update.  A Gaussian with no
numerator or denominator occupancy is left as it was: its new parameters would be undefined.
"""

from __future__ import annotations

import numpy as np

from ..errors import ParameterError
from ._model import DiagGMM
from ._stats import Stats

__all__ = ["ebw_update"]


WEIGHT_ITERATIONS = 100   # iterations of Povey's weight update (as in his thesis and Kaldi)


MIN_OCCUPANCY = 1e-10     # a Gaussian with less numerator + denominator occupancy is left as it was


def _smallest_d(G, X, S, mu, var):
    """Per Gaussian, the smallest ``D >= 0`` above which every new variance is positive (and ``G + D > 0``).

    In coordinates about the statistics' shift, ``(G + D)^2 var'(D) = a D^2 + b D + c`` with ``a = var``,
    ``b = S + G (var + mu^2) - 2 X mu``, ``c = S G - X^2``: positive beyond the larger root.
    """
    a = var
    b = S + G[:, None] * (var + mu * mu) - 2 * X * mu
    c = S * G[:, None] - X * X
    disc = b * b - 4 * a * c
    root = np.where(disc >= 0, (-b + np.sqrt(np.maximum(disc, 0))) / (2 * a), -np.inf)
    return np.maximum(np.maximum(root.max(1), -G), 0.0)


def _weights(c_old, g_num, g_den, floor):
    """Povey's iterative weight update, then floored and renormalised."""
    c_old = np.maximum(c_old, 1e-20)
    if g_num.sum() <= 0:
        return c_old / c_old.sum()
    ratio = g_den / c_old
    k = ratio.max() - ratio
    c = c_old.copy()
    for _ in range(WEIGHT_ITERATIONS):
        c = g_num + k * c
        c /= c.sum()
    c = np.maximum(c, floor)
    return c / c.sum()


def ebw_update(model: DiagGMM, num: Stats, den: Stats, *, E: float = 2.0, tau: float = 0.0,
               floor: np.ndarray | float = 1e-10, weight_floor: float = 1e-5) -> DiagGMM:
    """Extended Baum-Welch update of one diagonal GMM from its numerator and denominator statistics.

    Parameters
    ----------
    model : DiagGMM
        The current parameters (also the point the update is smoothed towards).
    num, den : Stats
        Diagonal statistics of ``model``'s components.
    E : float
        ``D_m = max(E * gamma_den_m, 2 * D_min_m)``; larger is smaller, safer steps.
    tau : float
        I-smoothing: ``tau`` frames of the numerator's own ML estimate are added to the
        numerator statistics (a Gaussian without numerator occupancy is smoothed towards its
        current parameters).
    floor : ndarray or float
        Variance floor, per dimension.
    weight_floor : float
        Smallest weight, before renormalising.

    Returns
    -------
    DiagGMM
        In ``model``'s dtype.  Gaussians with no occupancy at all keep their parameters.
    """
    if E < 0 or tau < 0:
        raise ParameterError(f"E and tau must be >= 0, got E={E!r}, tau={tau!r}")
    if num.covariance_type != "diag" or den.covariance_type != "diag":
        raise ParameterError("ebw_update needs diagonal statistics")
    shift = num.shift
    den = den.reshifted(shift) if not np.array_equal(den.shift, shift) else den
    mu = model.means - shift
    var = model.variances
    gn, xn, sn = num.occ.copy(), num.sum_x.copy(), num.sum_xx.copy()
    if tau > 0:  # add tau frames of the numerator's ML estimate (or of the current model if it has none)
        has = gn > MIN_OCCUPANCY
        safe = np.maximum(gn, MIN_OCCUPANCY)[:, None]
        ml_mu = np.where(has[:, None], xn / safe, mu)
        ml_second = np.where(has[:, None], sn / safe, var + mu * mu)
        gn = gn + tau
        xn = xn + tau * ml_mu
        sn = sn + tau * ml_second
    gd, xd, sd = den.occ, den.sum_x, den.sum_xx
    G, X, S = gn - gd, xn - xd, sn - sd
    D = np.maximum(E * gd, 2 * _smallest_d(G, X, S, mu, var))
    live = (gn + gd > MIN_OCCUPANCY) & (G + D > MIN_OCCUPANCY)
    denom = np.where(live, G + D, 1.0)[:, None]
    new_mu = (X + D[:, None] * mu) / denom
    new_var = (S + D[:, None] * (var + mu * mu)) / denom - new_mu * new_mu
    new_mu = np.where(live[:, None], new_mu, mu)
    new_var = np.where(live[:, None], new_var, var)
    new_var = np.maximum(new_var, floor)
    weights = _weights(model.weights, gn, gd, weight_floor)
    return DiagGMM(weights, new_mu + shift, new_var, dtype=model.dtype)
