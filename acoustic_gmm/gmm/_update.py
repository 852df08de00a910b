"""Updates that are functions of statistics: ML, MAP, splitting, variance floors, empty components.

* :func:`m_step` -- maximum-likelihood parameters from a :class:`~acoustic_gmm.gmm.Stats`, variances floored
  (Kaldi's ``MleDiagGmmUpdate``); :func:`em_step` is one E-step and M-step.
* :func:`map_update` -- Reynolds' relevance-factor MAP from statistics and a prior model (``MapDiagGmmUpdate``):
  speaker enrolment and speaker adaptation both use it.
* :func:`split_heaviest` and :func:`growth_schedule` -- HTK-style mix-up: the heaviest components split, means
  moved +-0.2 standard deviations, weights halved, 1 -> 2 -> 4 ... -> K.
* :func:`variance_floor` and the empty-component policy (:func:`replace_empty`): a component with less
  occupancy than :func:`min_occupancy` is re-split from the heaviest one, with a
  :class:`~acoustic_gmm.errors.ComponentWarning` when that cannot be done.  Every trainer of the package (EM,
  HMM states, MMI) uses these, so they behave the same everywhere.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..errors import ComponentWarning, DataError, ParameterError
from ._model import DiagGMM, FullGMM
from ._stats import Stats, accumulate, global_mean_var, global_stats

__all__ = ["ml_update", "m_step", "map_update", "em_step", "variance_floor", "frames_floor", "split_heaviest", "growth_schedule", "MAP_UPDATES"]


ABS_VAR_FLOOR = 1e-10  # below any real feature's variance; only guards against exact zeros


MAX_OCCUPANCY_FLOOR = 10.0  # Kaldi's min-gaussian-occupancy for a diagonal Gaussian


MAP_UPDATES = ("m", "mw", "mwv")  # what MAP moves: means, and weights, and variances


# --------------------------------------------------------------------------- M-step

def variance_floor(global_var: np.ndarray, var_floor: float) -> np.ndarray:
    """Per-dimension floor: ``var_floor`` times the global variance, never below 1e-10."""
    return np.maximum(var_floor * np.asarray(global_var, dtype=np.float64), ABS_VAR_FLOOR)


def frames_floor(X, var_floor: float) -> np.ndarray:
    """:func:`variance_floor` at ``var_floor`` times the frames' own variance (a constant dimension refused): the
    floor of a model trained on ``X`` alone, as :func:`acoustic_gmm.gmm.train` computes it."""
    return variance_floor(global_mean_var(global_stats(X))[1], var_floor)


def m_step(stats: Stats, *, floor: np.ndarray, dtype="float32", keep: np.ndarray | None = None):
    """Maximum-likelihood parameters from statistics; ``keep`` selects surviving components.

    Diagonal variances are clipped at ``floor``; full covariances have the eigenvalues of
    their globally-standardised form clipped at the same relative floor.
    """
    occ, sum_x, sum_xx = stats.occ, stats.sum_x, stats.sum_xx
    if keep is not None:
        occ, sum_x, sum_xx = occ[keep], sum_x[keep], sum_xx[keep]
    weights = occ / occ.sum()
    mean_c = sum_x / occ[:, None]
    means = mean_c + stats.shift
    if stats.covariance_type == "diag":
        var = sum_xx / occ[:, None] - mean_c * mean_c
        return DiagGMM(weights, means, np.maximum(var, floor), dtype=dtype)
    cov = sum_xx / occ[:, None, None] - np.einsum("ki,kj->kij", mean_c, mean_c)
    return FullGMM(weights, means, _floor_covariances(cov, floor), dtype=dtype)


def map_update(stats: Stats, prior: DiagGMM, *, relevance: float = 16.0, update: str = "m") -> DiagGMM:
    """Maximum a posteriori parameters from statistics and a prior model (Reynolds et al., 2000).

    Each component moves from the prior towards its statistics by ``alpha = n / (n + relevance)``,
    ``n`` its occupancy: means always, weights with ``update`` ``"mw"``, variances with ``"mwv"``
    (through the second moment, floored at 1 % of the prior's smallest variance per feature).
    ``relevance = inf`` returns the prior; ``relevance = 0`` the maximum-likelihood estimate under
    the prior's responsibilities.

    Parameters
    ----------
    stats : Stats
        Diagonal statistics, (n_components, n_features), of the adaptation frames under ``prior``.
    prior : DiagGMM
        The model adapted (a UBM, or a class model).

    Examples
    --------
    >>> import numpy as np
    >>> prior = DiagGMM([1.0], [[0.0]], [[1.0]], dtype="float64")
    >>> s = accumulate(prior, np.full((16, 1), 2.0))          # 16 frames at 2.0
    >>> map_update(s, prior, relevance=16.0).means.tolist()   # halfway: n = r
    [[1.0]]
    """
    if update not in MAP_UPDATES:
        raise ParameterError(f"adapt must be one of {list(MAP_UPDATES)}, got {update!r}")
    if not relevance >= 0:
        raise ParameterError(f"relevance must be >= 0, got {relevance!r}")
    n = stats.occ
    safe = np.maximum(n, 1e-10)[:, None]
    alpha = (n / (n + relevance))[:, None] if np.isfinite(relevance) else np.zeros((len(n), 1))
    means = alpha * (stats.sum_x / safe + stats.shift) + (1 - alpha) * prior.means
    weights, variances = prior.weights, prior.variances
    if "w" in update:
        w = alpha[:, 0] * n / stats.n_frames + (1 - alpha[:, 0]) * prior.weights
        weights = w / w.sum()
    if "v" in update:
        ex2 = stats.sum_xx / safe + 2 * stats.shift * (stats.sum_x / safe) + stats.shift ** 2  # E[x^2]
        var = alpha * ex2 + (1 - alpha) * (prior.variances + prior.means ** 2) - means ** 2
        variances = np.maximum(var, prior.variances.min(0) * 1e-2)
    return DiagGMM(weights, means, variances, dtype=prior.dtype)


def _floor_covariances(cov: np.ndarray, floor: np.ndarray) -> np.ndarray:
    """Clip eigenvalues of ``S^-1/2 C S^-1/2`` at 1, with ``S = diag(floor)``."""
    scale = np.sqrt(floor)
    C = cov / np.multiply.outer(scale, scale)
    C = 0.5 * (C + C.transpose(0, 2, 1))
    vals, vecs = np.linalg.eigh(C)
    C = np.einsum("kij,kj,klj->kil", vecs, np.maximum(vals, 1.0), vecs)
    return C * np.multiply.outer(scale, scale)


def em_step(model, X, *, floor: np.ndarray | None = None, chunk: int | None = None):
    """One EM iteration from ``model`` on frames ``X``; returns ``(new_model, stats)``.

    With ``floor=None`` no variance floor beyond 1e-10 is applied (the textbook update).
    """
    stats = accumulate(model, X, chunk=chunk)
    floor = np.full(model.n_features, ABS_VAR_FLOOR) if floor is None else floor
    return m_step(stats, floor=floor, dtype=model.dtype), stats


# --------------------------------------------------------------------------- growing

def split_heaviest(model, n_components: int, *, perturb: float = 0.2):
    """Grow ``model`` to ``n_components`` by repeatedly splitting the heaviest component.

    HTK's mix-up: the chosen component's weight is halved between two copies whose means
    sit at ``mean +- perturb`` standard deviations; covariances are copied.  Diagonal
    components move in every dimension at once, as HTK does; full ones move along their
    principal axis, the direction a full covariance says the cluster is longest in.
    """
    w, mu, cov = list(model.weights), list(model.means), list(model.covariances)
    while len(w) < n_components:
        k = int(np.argmax(w))
        if cov[k].ndim == 1:
            step = perturb * np.sqrt(cov[k])
        else:
            vals, vecs = np.linalg.eigh(cov[k])
            step = perturb * np.sqrt(vals[-1]) * vecs[:, -1]
        w[k] *= 0.5
        w.append(w[k])
        mu.append(mu[k] + step)
        mu[k] = mu[k] - step
        cov.append(cov[k].copy())
    return type(model)(np.array(w), np.array(mu), np.array(cov), dtype=model.dtype)


def growth_schedule(n_components: int, *, schedule=None) -> list[int]:
    """Sizes to grow through, ending at ``n_components``: 1, 2, 4, ... doubling by default."""
    if schedule is None:
        sizes, k = [], 1
        while k < n_components:
            sizes.append(k)
            k *= 2
        return sizes + [n_components]
    sizes = [int(s) for s in schedule]
    if any(b <= a for a, b in zip(sizes, sizes[1:])) or not sizes or sizes[0] < 1:
        raise ParameterError(f"split schedule must be increasing positive sizes, got {list(schedule)}")
    if sizes[-1] > n_components:
        raise ParameterError(f"split schedule {sizes} goes past n_components={n_components}")
    return sizes + ([n_components] if sizes[-1] != n_components else [])


def min_occupancy(n_frames: int, n_components: int) -> float:
    """Occupancy below which a component is considered empty (Kaldi's 10, less on tiny data)."""
    return min(MAX_OCCUPANCY_FLOOR, 0.1 * n_frames / n_components)


def ml_update(stats: Stats, model, *, floor: np.ndarray, n_frames: float | None = None):
    """The ML update of ``model`` from its statistics, with the engine's one empty-component policy.

    A component whose occupancy is below :func:`min_occupancy` of ``n_frames`` (default: the frames the statistics
    were gathered over; a weighted pass, as Baum-Welch's, gives its total weight) is removed and replaced by
    splitting the heaviest survivor, with a :class:`~acoustic_gmm.errors.ComponentWarning`; the others get
    :func:`m_step`'s maximum-likelihood parameters, variances floored at ``floor``.  EM, HMM-state training and
    MMI's starting models all go through here.  Returns ``(model, replaced)``.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(1000, 2))
    >>> g = DiagGMM([0.5, 0.5], [[-1.0, 0.0], [1.0, 0.0]], [[1.0, 1.0], [1.0, 1.0]], dtype="float64")
    >>> new, replaced = ml_update(Stats.from_posteriors(X, g.posteriors(X)), g, floor=np.full(2, 1e-3))
    >>> new.n_components, replaced
    (2, False)
    """
    n = stats.n_frames if n_frames is None else n_frames
    keep = stats.occ >= min_occupancy(n, model.n_components)
    if keep.all():
        return m_step(stats, floor=floor, dtype=model.dtype), False
    return replace_empty(stats, floor, model, keep, n), True


def replace_empty(stats: Stats, floor, model, keep: np.ndarray, n_frames: float | None = None):
    n_frames = stats.n_frames if n_frames is None else n_frames
    dead = np.flatnonzero(~keep)
    if keep.sum() == 0:
        raise DataError("every component lost its frames; the data cannot support this model")
    survivor = m_step(stats, floor=floor, dtype=model.dtype, keep=keep)
    grown = split_heaviest(survivor, model.n_components)
    total = stats.occ.sum()
    details = ", ".join(f"{k} (occupancy {stats.occ[k]:.3g} frames, weight {stats.occ[k] / total:.2e})"
                        for k in dead[:5])
    more = f" and {len(dead) - 5} more" if len(dead) > 5 else ""
    warnings.warn(
        f"{len(dead)} of {model.n_components} components fell below the minimum occupancy of "
        f"{min_occupancy(n_frames, model.n_components):.3g} frames: {details}{more}; "
        f"removed and replaced by splitting the heaviest components", ComponentWarning, stacklevel=5)
    return grown
