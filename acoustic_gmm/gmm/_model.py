"""Gaussian-mixture parameters and their log-likelihood.

A model here is only parameters plus the constants cached from them; the statistics
that train it live in :mod:`acoustic_gmm.gmm` (the split Kaldi makes between ``DiagGmm``
and ``AccumDiagGmm``).  Parameters are kept in float64; ``dtype`` chooses the precision
of the arithmetic on frames (float32 is the fast path).

The diagonal log-density of every component for a block of frames is one matrix
product.  With ``c`` the model's centre, ``y = x - c``, ``m_k = mu_k - c`` and
``p_k = 1 / var_k``::

    log w_k + log N(x | mu_k, var_k)
        = b_k + y . (m_k p_k) - 0.5 y^2 . p_k
    b_k = log w_k - 0.5 (D log 2 pi + sum log var_k + sum m_k^2 p_k)

so ``[y, y^2] @ A + b`` with ``A = [m p ; -p / 2]`` of shape (2D, K).  Centring on the
weighted mean of the means keeps the terms small, which is what makes float32 honest on
features with large offsets (c0 of an MFCC is in the hundreds).

Parameters are read-only: the cached constants are computed once from them, so an array
written in place (``g.means[:] = 0``) raises, and a new model is built instead
(``DiagGMM(g.weights, new_means, g.variances)``): a cache can never go stale (Kaldi guards the
same cache with ``valid_gconsts_``).
"""

from __future__ import annotations

import numpy as np

from ..errors import ParameterError

__all__ = ["DiagGMM", "FullGMM", "logsumexp"]


LOG_2PI = float(np.log(2.0 * np.pi))


DTYPES = {"float32": np.float32, "float64": np.float64}


def resolve_dtype(dtype) -> type:
    """Map ``"float32"``/``"float64"`` (or the numpy types) to a numpy scalar type."""
    key = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
    if key not in DTYPES:
        raise ParameterError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return DTYPES[key]


def default_chunk(n_components: int) -> int:
    """Frames per chunk: a (frames x components) block of about 4 MB, 2048 to 8192 frames (4096 at K = 256).

    Measured on the E-step here: smaller chunks pay more per-chunk overhead and let the two threads
    contend, larger ones fall out of cache.
    """
    return int(min(8192, max(2048, (1 << 20) // max(1, n_components))))


def logsumexp(a: np.ndarray, *, axis: int = 1, starts: np.ndarray | None = None,
              overwrite: bool = False) -> np.ndarray:
    """``log sum exp`` along ``axis``, or over groups of columns: the one log-sum-exp of the package.

    Parameters
    ----------
    a : ndarray
        Log-values, e.g. joint log-densities (n_frames, n_components).
    axis : int
        The axis summed over (without ``starts``).
    starts : ndarray of int, optional
        Column groups of a 2-D ``a``: group ``g`` is ``a[:, starts[g]:starts[g + 1]]``; the result is
        (n_frames, n_groups) (a stack of several models' components, scored model by model).
    overwrite : bool
        ``a`` may be used as scratch space (saves a copy of the biggest array).

    Returns
    -------
    ndarray
        ``a``'s dtype, the summed axis removed (or one column per group).

    Examples
    --------
    >>> round(float(logsumexp(np.log([[1.0, 3.0]]))[0]), 6)
    1.386294
    """
    work = a if overwrite else a.copy()
    if starts is None:
        top, total = _shifted_exp(work, axis)
        return np.squeeze(top + np.log(total), axis)
    top = np.maximum.reduceat(work, starts, axis=1)
    work -= np.repeat(top, np.diff(np.r_[starts, work.shape[1]]), axis=1)
    np.exp(work, out=work)
    return top + np.log(np.add.reduceat(work, starts, axis=1))


def log_normalize(L: np.ndarray) -> np.ndarray:
    """Turn joint log-densities ``L`` (n_frames, n_components) into responsibilities in place.

    Returns the per-frame log-likelihood (n_frames,) in float64; ``L`` then holds the posteriors.
    """
    top, total = _shifted_exp(L, 1)
    L /= total
    return top[:, 0].astype(np.float64) + np.log(total[:, 0], dtype=np.float64)


def _shifted_exp(work: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """``work <- exp(work - max)`` in place; returns the max and the sum along ``axis`` (kept as size 1)."""
    top = work.max(axis=axis, keepdims=True)
    work -= top
    np.exp(work, out=work)
    return top, work.sum(axis=axis, keepdims=True)


def _frozen(values) -> np.ndarray:
    """A float64 copy that cannot be written: the cached constants were computed from it."""
    out = np.array(values, dtype=np.float64)
    out.flags.writeable = False
    return out


class _Mixture:
    """What diagonal and full mixtures share: weights, means, dtype, scoring loop."""

    covariance_type: str

    def __init__(self, weights, means, dtype):
        self._weights = _frozen(weights)
        self._means = _frozen(means)
        self._dtype = resolve_dtype(dtype)

    @property
    def weights(self) -> np.ndarray:
        """(n_components,), read-only."""
        return self._weights

    @property
    def means(self) -> np.ndarray:
        """(n_components, n_features), read-only."""
        return self._means

    @property
    def dtype(self) -> type:
        """numpy scalar type of the arithmetic on frames (float32 or float64)."""
        return self._dtype

    @property
    def n_components(self) -> int:
        return self.means.shape[0]

    @property
    def n_features(self) -> int:
        return self.means.shape[1]

    @property
    def centre(self) -> np.ndarray:
        # normalised, so that a stack of several models' components (weights summing to more than 1) is centred too
        return self.weights @ self.means / self.weights.sum()

    def log_joint(self, X: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def score_samples(self, X: np.ndarray, chunk: int | None = None) -> np.ndarray:
        """Per-frame log-likelihood ``log p(x)`` in float64, computed chunk by chunk."""
        chunk = chunk or default_chunk(self.n_components)
        out = np.empty(len(X), dtype=np.float64)
        for start in range(0, len(X), chunk):
            L = self.log_joint(X[start:start + chunk])
            out[start:start + chunk] = log_normalize(L)
        return out

    def posteriors(self, X: np.ndarray, chunk: int | None = None) -> np.ndarray:
        """Responsibilities (n_frames, n_components) in the model's dtype; each row sums to 1."""
        chunk = chunk or default_chunk(self.n_components)
        out = np.empty((len(X), self.n_components), dtype=self.dtype)
        for start in range(0, len(X), chunk):
            L = self.log_joint(X[start:start + chunk])
            log_normalize(L)
            out[start:start + chunk] = L
        return out

    def copy(self, dtype=None):
        return type(self)(self.weights, self.means, self.covariances, dtype=dtype or self.dtype)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(n_components={self.n_components}, "
                f"n_features={self.n_features}, dtype={np.dtype(self.dtype).name})")


class DiagGMM(_Mixture):
    """Diagonal-covariance Gaussian mixture: weights (n_components,), means and variances (n_components, n_features).

    Examples
    --------
    >>> import numpy as np
    >>> g = DiagGMM([0.5, 0.5], [[0.0], [4.0]], [[1.0], [1.0]])
    >>> round(float(g.score_samples(np.array([[0.0]]))[0]), 4)
    -1.6118
    """

    covariance_type = "diag"

    def __init__(self, weights, means, variances, dtype="float32"):
        super().__init__(weights, means, dtype)
        self._variances = _frozen(variances)
        self._cache()

    @property
    def variances(self) -> np.ndarray:
        """(n_components, n_features), read-only."""
        return self._variances

    @property
    def covariances(self) -> np.ndarray:
        return self._variances

    def projection(self, offset: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(A, b)``, float64: ``[x - offset, (x - offset)^2] @ A + b`` is ``log w_k + log N(x | k)``.

        ``A`` is (2D, K).  Any offset gives the same numbers; one near the data keeps float32 accurate, and
        a shared one lets several models be scored with one product (verification does).
        """
        with np.errstate(divide="ignore"):  # an exactly-zero weight is a valid, dead component
            log_w = np.log(self.weights)
        prec = 1.0 / self.variances
        m = self.means - offset
        const = log_w - 0.5 * (self.n_features * LOG_2PI + np.log(self.variances).sum(1) + (m * m * prec).sum(1))
        return np.vstack([(m * prec).T, -0.5 * prec.T]), const

    def _cache(self) -> None:
        self.offset = _frozen(self.centre)
        proj, const = self.projection(self.offset)
        self.proj, self.const = _frozen(proj), _frozen(const)
        self._const = self.const.astype(self.dtype)
        self._proj = np.ascontiguousarray(self.proj, dtype=self.dtype)
        # The E-step's (2D + 1, K) form: constants folded in, against [y, y^2, 1] (see _stats.accumulate).
        self._proj1 = np.ascontiguousarray(np.vstack([self.proj, self.const[None, :]]), dtype=self.dtype)
        for a in (self._const, self._proj, self._proj1):
            a.flags.writeable = False

    def expand(self, X: np.ndarray, ones: bool = False) -> np.ndarray:
        """``[x - c, (x - c)^2]`` (n, 2D), or with a last column of ones (n, 2D + 1), in the model's dtype."""
        n, d = X.shape
        E = np.empty((n, 2 * d + ones), dtype=self.dtype)
        np.subtract(X, self.offset.astype(self.dtype), out=E[:, :d], casting="unsafe")
        np.multiply(E[:, :d], E[:, :d], out=E[:, d:2 * d])
        if ones:
            E[:, 2 * d] = 1
        return E

    def log_joint(self, X: np.ndarray, E: np.ndarray | None = None) -> np.ndarray:
        """``log w_k + log N(x | k)`` for every frame and component, (n_frames, n_components)."""
        if E is None:
            E = self.expand(X)
        L = E @ self._proj
        L += self._const
        return L

    def n_parameters(self) -> int:
        K, D = self.means.shape
        return (K - 1) + 2 * K * D


class FullGMM(_Mixture):
    """Full-covariance Gaussian mixture: weights (n_components,), means (n_components, n_features),
    covariances (n_components, n_features, n_features).

    Slower than :class:`DiagGMM` (one triangular solve per component), but models rotated,
    elongated clusters.
    """

    covariance_type = "full"

    def __init__(self, weights, means, covariances, dtype="float64"):
        super().__init__(weights, means, dtype)
        self._covariances = _frozen(covariances)
        self._cache()

    @property
    def covariances(self) -> np.ndarray:
        """(n_components, n_features, n_features), read-only."""
        return self._covariances

    def _cache(self) -> None:
        K, D = self.means.shape
        chol = np.linalg.cholesky(self.covariances)  # raises LinAlgError if not PD
        # Precision Cholesky factor P with P P^T = inv(cov): then |(x - mu) P|^2 is the
        # Mahalanobis distance and log det(P) = -0.5 log det(cov).
        eye = np.eye(D)
        self.prec_chol = _frozen(np.stack([np.linalg.solve(chol[k], eye).T for k in range(K)]))
        with np.errstate(divide="ignore"):
            log_w = np.log(self.weights)
        log_det = np.log(np.diagonal(self.prec_chol, axis1=1, axis2=2)).sum(1)
        self.const = _frozen(log_w + log_det - 0.5 * D * LOG_2PI)
        self._prec_chol = self.prec_chol.astype(self.dtype)

    def log_joint(self, X: np.ndarray) -> np.ndarray:
        X = X.astype(self.dtype, copy=False)
        L = np.empty((len(X), self.n_components), dtype=self.dtype)
        for k in range(self.n_components):
            Y = (X - self.means[k].astype(self.dtype)) @ self._prec_chol[k]
            L[:, k] = -0.5 * np.einsum("ij,ij->i", Y, Y) + self.const[k]
        return L

    def n_parameters(self) -> int:
        K, D = self.means.shape
        return (K - 1) + K * D + K * D * (D + 1) // 2


def make_model(covariance_type: str, weights, means, covariances, dtype):
    """Build a :class:`DiagGMM` or :class:`FullGMM` by covariance type."""
    if covariance_type == "diag":
        return DiagGMM(weights, means, covariances, dtype=dtype)
    if covariance_type == "full":
        return FullGMM(weights, means, covariances, dtype=dtype)
    raise ParameterError(f"covariance_type must be 'diag' or 'full', got {covariance_type!r}")
