"""A maximum likelihood linear transform for diagonal covariances: MLLT / semi-tied covariances.

Diagonal-covariance Gaussians waste their modelling on correlated features (spliced frames after an LDA,
deltas beside their statics).  MLLT (Gopinath 1998; Gales 1999, "semi-tied covariance matrices"; Kaldi's
``est-mllt``) finds one square ``A`` shared by every Gaussian so that, in ``y = A x``, diagonal covariances fit:
it maximises the likelihood of the frames under the diagonal models re-estimated in ``y``, the Jacobian
``log |det A|`` included,

    L(A) = sum_m n_m ( log |det A| - 1/2 sum_i log(a_i C_m a_i^T) )      (plus constants),

with ``C_m`` the full covariance of the frames Gaussian ``m`` is responsible for and ``a_i`` the rows of ``A``.
Gales' update changes one row at a time in closed form, ``a_i = c_i G_i^-1 sqrt(n / (c_i G_i^-1 c_i^T))``
(``c_i`` the row's cofactors, ``G_i = sum_m n_m C_m / sigma2_mi``), alternating with the variances
``sigma2_mi = a_i C_m a_i^T``; neither step lowers ``L``.

:class:`MlltStats` holds each Gaussian's occupancy, first and second moments (they add up over utterances,
files and processes); :func:`estimate_mllt` returns ``A`` and the objective after every pass, and
:meth:`MlltStats.models` the diagonal models in ``y`` (means ``A mu``, variances ``diag(A C A^T)``).

Examples
--------
>>> import numpy as np
>>> from acoustic_gmm.gmm import DiagGMM
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(2000, 2)) @ np.array([[1.0, 0.9], [0.0, 0.4]])   # correlated features
>>> stats = MlltStats(2); stats.add("g", DiagGMM([1.0], [[0.0, 0.0]], [[1.0, 1.0]]), X)
>>> A, objective = estimate_mllt(stats)
>>> bool(objective[-1] > objective[0])
True
"""

from __future__ import annotations

import numpy as np

from ..errors import DataError, ParameterError, check_frames
from ..gmm._model import DiagGMM

__all__ = ["MlltStats", "estimate_mllt"]


class MlltStats:
    """Per Gaussian of every model added: occupancy, first and second moments of its frames (by responsibility)."""

    def __init__(self, n_features: int):
        self.n_features = n_features
        self.parts: dict = {}   # key -> [model, occupancy (m,), sum (m, D), sum of outer products (m, D, D)]

    def add(self, key, model: DiagGMM, frames: np.ndarray) -> None:
        """Add ``frames`` (T, D), spread over ``model``'s Gaussians by its responsibilities, under ``key``."""
        X = check_frames(frames, n_features=self.n_features, what="frames").astype(np.float64)
        resp = model.posteriors(X).astype(np.float64)
        occ, first = resp.sum(axis=0), resp.T @ X
        d = X.shape[1]  # one matrix product over the frames' outer products: the einsum was 10x slower
        second = (resp.T @ (X[:, :, None] * X[:, None, :]).reshape(len(X), d * d)).reshape(-1, d, d)
        if key in self.parts:
            part = self.parts[key]
            part[1] += occ
            part[2] += first
            part[3] += second
        else:
            self.parts[key] = [model, occ, first, second]

    def __iadd__(self, other: "MlltStats") -> "MlltStats":
        for key, (model, occ, first, second) in other.parts.items():
            if key in self.parts:
                for k, value in ((1, occ), (2, first), (3, second)):
                    self.parts[key][k] += value
            else:
                self.parts[key] = [model, occ.copy(), first.copy(), second.copy()]
        return self

    def covariances(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(occupancies (M,), means (M, D), full covariances (M, D, D))`` of every Gaussian with frames."""
        occ = np.concatenate([p[1] for p in self.parts.values()])
        first = np.concatenate([p[2] for p in self.parts.values()])
        second = np.concatenate([p[3] for p in self.parts.values()])
        seen = occ > 1e-10
        occ, mean = occ[seen], first[seen] / occ[seen, None]
        cov = second[seen] / occ[:, None, None] - np.einsum("ma,mb->mab", mean, mean)
        ridge = 1e-6 * np.trace(cov, axis1=1, axis2=2)[:, None, None] / self.n_features
        return occ, mean, cov + ridge * np.eye(self.n_features)

    def models(self, A: np.ndarray, *, var_floor: float = 1e-3) -> dict:
        """``{key: DiagGMM}``: every model re-estimated in ``y = A x`` from these statistics.

        Means ``A mu``, variances ``diag(A C A^T)`` (floored at ``var_floor`` times the mean variance of the
        Gaussian's model), weights by occupancy; a Gaussian without frames keeps its transformed old mean.
        """
        out = {}
        for key, (model, occ, first, second) in self.parts.items():
            seen = occ > 1e-10
            mean = np.where(seen[:, None], first / np.maximum(occ, 1e-10)[:, None], model.means)
            cov = second / np.maximum(occ, 1e-10)[:, None, None] - np.einsum("ma,mb->mab", mean, mean)
            var = np.einsum("ia,mab,ib->mi", A, cov, A)
            old = np.einsum("ia,ma->mi", A * A, model.variances)
            var = np.where(seen[:, None], var, old)
            var = np.maximum(var, var_floor * var.mean(axis=0, keepdims=True))
            weights = np.where(seen, occ, 0.0) + 1e-10
            out[key] = DiagGMM(weights / weights.sum(), mean @ A.T, var, dtype=model.dtype)
        return out


def _objective(A, occ, cov) -> float:
    """``L(A)`` per frame: log |det A| - 1/2 sum_i log(a_i C_m a_i^T), averaged over the Gaussians' frames."""
    var = np.einsum("ia,mab,ib->mi", A, cov, A)
    return float(np.linalg.slogdet(A)[1] - 0.5 * (occ @ np.log(var).sum(axis=1)) / occ.sum())


def estimate_mllt(stats: MlltStats, *, iterations: int = 10, A: np.ndarray | None = None) -> tuple[np.ndarray, list]:
    """``(A, objective)``: the square transform maximising :math:`L(A)` and its value (per frame) after each pass.

    Starts from ``A`` (default the identity); each of ``iterations`` passes sets the variances from the current
    ``A`` and updates every row once.
    """
    if not isinstance(iterations, int) or iterations < 1:
        raise ParameterError(f"iterations must be an integer >= 1, got {iterations!r}")
    if not stats.parts:
        raise DataError("an MLLT needs frames: no statistics were added")
    occ, _, cov = stats.covariances()
    d = stats.n_features
    A = np.eye(d) if A is None else np.array(A, dtype=np.float64)
    beta = occ.sum()
    history = [_objective(A, occ, cov)]
    for _ in range(iterations):
        var = np.einsum("ia,mab,ib->mi", A, cov, A)
        for i in range(d):
            G = np.einsum("m,mab->ab", occ / var[:, i], cov)
            cofactor = np.linalg.inv(A).T[i] * np.linalg.det(A)  # the row's cofactors, up to the sign they share
            g = np.linalg.solve(G, cofactor)
            A[i] = g * np.sqrt(beta / (cofactor @ g))
        history.append(_objective(A, occ, cov))
    return A, history
