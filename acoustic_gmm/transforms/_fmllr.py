"""Feature-space MLLR (fMLLR, constrained MLLR): one affine map of a speaker's frames towards the models.

Where MLLR moves every model's means to a speaker, fMLLR (Gales 1998; Kaldi's ``gmm-est-fmllr``) moves the
speaker's frames to the models: ``y = A x + b = W [x; 1]``, chosen to maximise the likelihood of ``y`` under the
(diagonal) Gaussians the frames are aligned to, the Jacobian ``log |det A|`` included.  With ``xi = [x; 1]``,
responsibilities ``gamma_tm`` and, for each output feature ``i``,

    G_i = sum_tm gamma_tm / sigma2_mi xi_t xi_t^T,     k_i = sum_tm gamma_tm mu_mi / sigma2_mi xi_t,

the auxiliary function is ``beta log |det A| - 1/2 sum_i (w_i G_i w_i^T - 2 w_i k_i)`` (``beta`` the frame
count), and Gales' row update sets ``w_i = (alpha p_i + k_i) G_i^-1`` with ``p_i = [cofactors of row i, 0]`` and
``alpha`` the root of ``alpha^2 p G^-1 p^T + alpha p G^-1 k^T - beta = 0`` that maximises it.  Repeating the rows
never lowers the auxiliary function.  With little data the transform is ``"diag"`` (a scale and an offset per
feature) or ``"offset"`` (an offset only: a mean shift, like CMN).

:class:`FmllrStats` adds up over utterances (the responsibilities come from the models applied to the frames
as currently transformed: EM); :func:`estimate_fmllr` returns ``W``; :func:`apply_fmllr` maps frames.

Examples
--------
>>> import numpy as np
>>> from acoustic_gmm.gmm import DiagGMM
>>> model = DiagGMM([0.5, 0.5], [[-2.0], [2.0]], [[0.25], [0.25]], dtype="float64")
>>> rng = np.random.default_rng(0)
>>> y = np.concatenate([rng.normal(-2, 0.5, 500), rng.normal(2, 0.5, 500)])[:, None]
>>> x = (y - 1.0) / 2.0                    # the speaker: y = 2 x + 1
>>> stats = FmllrStats(1); stats.add(model, x, model.posteriors(apply_fmllr(np.array([[2.0, 1.0]]), x)))
>>> np.round(estimate_fmllr(stats), 1)
array([[2., 1.]])
"""

from __future__ import annotations

import numpy as np

from ..errors import DataError, ParameterError, check_frames
from ..gmm._model import DiagGMM

__all__ = ["FmllrStats", "estimate_fmllr", "apply_fmllr", "FMLLR_KINDS"]


FMLLR_KINDS = ("full", "diag", "offset")
_BLOCK = 1024    # frames per outer-product block: (1024, (D + 1)(D + 2) / 2) float64 is 6.7 MB at D = 39


class FmllrStats:
    """``beta``, ``K`` (D, D + 1) and ``G`` (D, D + 1, D + 1) of one speaker's frames; ``+=`` merges two."""

    def __init__(self, n_features: int):
        d = n_features
        self.beta = 0.0
        self.K = np.zeros((d, d + 1))
        self.G = np.zeros((d, d + 1, d + 1))

    def add(self, model: DiagGMM, frames: np.ndarray, responsibilities: np.ndarray | None = None) -> None:
        """Add ``frames`` (T, D), the untransformed ``x``, aligned to ``model``'s Gaussians.

        ``responsibilities`` (T, M) are those of the transformed frames under ``model`` (default: of ``frames``
        as they are, i.e. the identity transform).
        """
        d = self.K.shape[0]
        X = check_frames(frames, n_features=d, what="frames").astype(np.float64)
        resp = model.posteriors(X) if responsibilities is None else responsibilities
        resp = np.asarray(resp, dtype=np.float64)
        xi = np.hstack([X, np.ones((len(X), 1))])
        prec = 1.0 / model.variances.astype(np.float64)
        # G_i = sum_m prec_mi S_m with S_m = sum_t gamma_tm xi_t xi_t^T: per Gaussian (fewer of them than output
        # features), on the lower triangles only (G_i is symmetric), the outer products a block of frames at a
        # time.  A per-frame three-operand einsum here held SAT's training to 8x a plain fit.
        rows, cols = np.tril_indices(d + 1)
        S = np.zeros((resp.shape[1], len(rows)))
        for start in range(0, len(xi), _BLOCK):
            block = xi[start:start + _BLOCK]
            S += resp[start:start + _BLOCK].T @ (block[:, rows] * block[:, cols])
        packed = prec.T @ S
        self.G[:, rows, cols] += packed
        self.G[:, cols[rows != cols], rows[rows != cols]] += packed[:, rows != cols]
        self.K += (resp @ (model.means.astype(np.float64) * prec)).T @ xi
        self.beta += float(resp.sum())

    def __iadd__(self, other: "FmllrStats") -> "FmllrStats":
        self.beta += other.beta
        self.K += other.K
        self.G += other.G
        return self

    def auxiliary(self, W: np.ndarray) -> float:
        """The auxiliary function at ``W`` per frame (what :func:`estimate_fmllr` maximises)."""
        quad = np.einsum("ia,iab,ib->", W, self.G, W) - 2.0 * np.einsum("ia,ia->", W, self.K)
        return float((self.beta * np.linalg.slogdet(W[:, :-1])[1] - 0.5 * quad) / max(self.beta, 1e-10))


def _row(G, k, p, beta):
    """Gales' update of one row: ``(alpha p + k) G^-1`` with the better root ``alpha``."""
    Gi_p, Gi_k = np.linalg.solve(G, p), np.linalg.solve(G, k)
    e1, e2 = p @ Gi_p, p @ Gi_k
    if e1 <= 0:   # no cofactor left in the rows this update may change: the offset alone
        return Gi_k
    roots = [(-e2 + s * np.sqrt(e2 * e2 + 4 * e1 * beta)) / (2 * e1) for s in (1.0, -1.0)]
    value = [beta * np.log(abs(a * e1 + e2)) - 0.5 * a * a * e1 for a in roots]
    alpha = roots[int(np.argmax(value))]
    return alpha * Gi_p + Gi_k


def estimate_fmllr(stats: FmllrStats, *, kind: str = "full", iterations: int = 10,
                   W: np.ndarray | None = None) -> np.ndarray:
    """``W`` (D, D + 1) maximising the auxiliary function: ``y = W [x; 1]``.

    ``kind`` "full" (every row free), "diag" (a scale and an offset per feature) or "offset" (the identity
    plus an offset); starts from ``W`` (default ``[I, 0]``) and updates every row ``iterations`` times.
    """
    if kind not in FMLLR_KINDS:
        raise ParameterError(f"kind must be one of {FMLLR_KINDS}, got {kind!r}")
    if stats.beta <= 0:
        raise DataError("an fMLLR transform needs frames: none were added")
    d = stats.K.shape[0]
    W = np.hstack([np.eye(d), np.zeros((d, 1))]) if W is None else np.array(W, dtype=np.float64)
    for _ in range(1 if kind == "offset" else iterations):
        for i in range(d):
            if kind == "offset":  # w_i = [e_i, b_i]: b_i from the row's quadratic alone
                G, k = stats.G[i], stats.K[i]
                W[i, d] = (k[d] - W[i, :d] @ G[:d, d]) / G[d, d]
                continue
            use = np.arange(d + 1) if kind == "full" else np.array([i, d])
            A = W[:, :d]
            cofactor = np.append(np.linalg.inv(A).T[i] * np.linalg.det(A), 0.0)
            G = stats.G[i][np.ix_(use, use)]
            G = G + 1e-10 * np.trace(G) / len(use) * np.eye(len(use))
            row = np.zeros(d + 1)
            row[use] = _row(G, stats.K[i, use], cofactor[use], stats.beta)
            W[i] = row
    return W


def apply_fmllr(W: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """``W [x; 1]`` for every frame: (T, D) -> (T, D), in the frames' dtype."""
    X = np.asarray(frames)
    return (X @ W[:, :-1].T + W[:, -1]).astype(X.dtype, copy=False)
