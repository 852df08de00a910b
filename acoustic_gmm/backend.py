"""The i-vector speaker-verification back end: centring, LDA, length normalisation, PLDA or cosine scoring.

An i-vector extractor maps each utterance to one fixed-length vector; the back end turns pairs
(enrolment vectors of a speaker model, test vector) into scores. The pipeline is the one of Kaldi's
``egs/sre10/v1`` recipe (``ivector-mean``, ``ivector-compute-lda``, ``ivector-normalize-length``,
``ivector-compute-plda``, ``ivector-plda-scoring``), written here from the maths:

1. subtract the mean of the training i-vectors;
2. optionally project with :func:`lda` to ``lda_dim`` dimensions (Fisher LDA: within-speaker
   covariance becomes the identity, between-speaker covariance diagonal and sorted);
3. :func:`length_norm` -- scale every vector to unit length, which makes i-vectors much closer to
   Gaussian, the assumption of PLDA (Garcia-Romero & Espy-Wilson, "Analysis of i-vector length
   normalization in speaker recognition systems", Interspeech 2011);
4. score with the two-covariance :class:`PLDA` model (Ioffe, "Probabilistic linear discriminant
   analysis", ECCV 2006; Sizov, Lee & Kinnunen, "Unifying probabilistic linear discriminant analysis
   variants in biometric authentication", S+SSPR 2014): ``x = mu + y + e`` with a speaker variable
   ``y ~ N(0, Sb)`` shared by all of a speaker's vectors and a per-vector ``e ~ N(0, Sw)``; a trial's
   score is the exact log-likelihood ratio of "same speaker" against "different speakers", with
   speaker models enrolled from any number of vectors -- or with :func:`cosine_scores`.

:func:`wccn` (within-class covariance normalisation, Hatch, Kajarekar & Stolcke 2006) is provided as
the usual alternative to LDA before cosine scoring. :class:`Backend` chains the steps and is stored
as plain arrays plus JSON-able parameters (:meth:`Backend.to_arrays`, :meth:`Backend.params`,
:meth:`Backend.from_arrays`).

Definitions used throughout, for ``N`` vectors ``x`` of ``S`` speakers with ``n_s`` vectors, mean
``m_s``, overall mean ``m``: the within-class covariance is ``Sw = (1/N) sum_s sum_i (x_si - m_s)
(x_si - m_s)^T`` and the between-class covariance ``Sb = (1/N) sum_s n_s (m_s - m)(m_s - m)^T``.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> speakers = np.repeat(np.arange(40), 5)
>>> X = rng.normal(0, 2, (40, 8))[speakers] + rng.normal(0, 1, (200, 8))   # 40 speakers x 5 i-vectors
>>> be = Backend(lda_dim=6).fit(X, speakers)
>>> enrol = {"a": X[:3], "b": X[5:8]}
>>> names, scores = be.score(enrol, X[[3, 4, 8]])
>>> names, scores.shape
(['a', 'b'], (2, 3))
>>> bool(scores[0, 0] > scores[1, 0] and scores[1, 2] > scores[0, 2])
True
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping

import numpy as np
from scipy import linalg

from .errors import DataError, NotFittedError, ParameterError

__all__ = ["PLDA", "SCORINGS", "Backend", "cosine_scores", "lda", "length_norm", "wccn"]

#: The scoring methods :class:`Backend` knows.
SCORINGS = ("plda", "cosine")

# A singular within-class covariance (fewer vectors than dimensions, collinear features) is regularised
# by this fraction of its average eigenvalue: far below any real variance, yet enough for Cholesky.
_RIDGE = 1e-10
_LOG_2PI = float(np.log(2 * np.pi))
_FORMAT = "acoustic_gmm.backend"
_VERSION = 1


# --------------------------------------------------------------------------- input checks

def _as_vectors(X, *, what: str = "X", dim: int | None = None, min_rows: int = 1) -> np.ndarray:
    """``X`` as a 2-D float64 array of finite vectors, or :class:`DataError`."""
    try:
        arr = np.asarray(X)
    except (TypeError, ValueError) as exc:  # ragged lists and the like
        raise DataError(f"{what}: cannot be turned into an array of vectors ({exc})") from None
    if arr.dtype.kind not in "fiub":
        raise DataError(f"{what}: vectors must be real numbers, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise DataError(f"{what}: expected a 2-D array (n_vectors, dim), got shape {arr.shape}"
                        + ("; a single vector x is x[None, :]" if arr.ndim == 1 else ""))
    n, d = arr.shape
    if d == 0:
        raise DataError(f"{what}: vectors have 0 dimensions")
    if dim is not None and d != dim:
        raise DataError(f"{what}: vectors have {d} dimensions but {dim} are expected")
    if n < min_rows:
        raise DataError(f"{what}: {n} vector(s) given, at least {min_rows} needed")
    arr = np.asarray(arr, dtype=np.float64)
    finite = np.isfinite(arr)
    if not finite.all():
        bad = np.flatnonzero(~finite.all(axis=1))
        raise DataError(f"{what}: {len(bad)} vector(s) contain NaN or inf (first at row {bad[0]})")
    return arr


def _speaker_index(speakers, n: int) -> tuple[np.ndarray, int]:
    """Integer speaker index ``0..S-1`` of each of ``n`` vectors, and ``S`` (at least 2)."""
    try:
        labels = np.asarray(speakers)
    except (TypeError, ValueError) as exc:
        raise DataError(f"speakers: cannot be turned into an array of labels ({exc})") from None
    if labels.ndim != 1 or len(labels) != n:
        raise DataError(f"speakers: expected one label per vector, a 1-D sequence of length {n}; "
                        f"got shape {labels.shape}")
    try:
        names, index = np.unique(labels, return_inverse=True)
    except TypeError as exc:  # labels of mixed, unorderable types
        raise DataError(f"speakers: labels must be mutually comparable ({exc})") from None
    if len(names) < 2:
        raise DataError(f"speakers: the vectors belong to {len(names)} speaker(s); at least 2 are needed "
                        "to tell between- from within-speaker variability")
    return index.ravel(), len(names)


def _check_int(value, name: str, *, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ParameterError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _class_stats(X: np.ndarray, index: np.ndarray, n_spk: int):
    """Per-speaker counts ``(S,)`` and means ``(S, d)``, and the within-speaker scatter ``(d, d)`` (not divided)."""
    counts = np.bincount(index, minlength=n_spk)
    order = np.argsort(index, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    means = np.add.reduceat(X[order], starts, axis=0) / counts[:, None]
    # scatter around each speaker's own mean, not N*cov - sum n m m^T, which cancels catastrophically
    R = X - means[index]
    W = R.T @ R
    return counts.astype(np.float64), means, (W + W.T) / 2


def _ridged(S: np.ndarray) -> np.ndarray:
    d = len(S)
    return S + (_RIDGE * np.trace(S) / d) * np.eye(d)


def _within(X: np.ndarray, index: np.ndarray, n_spk: int, what: str):
    counts, means, W = _class_stats(X, index, n_spk)
    if np.trace(W) <= 0:
        raise DataError(f"{what}: no speaker has two different vectors, so the within-speaker covariance "
                        "cannot be estimated")
    return counts, means, W / len(X)


# --------------------------------------------------------------------------- transforms

def length_norm(X) -> np.ndarray:
    """Scale each row to unit Euclidean norm (Garcia-Romero & Espy-Wilson, 2011).

    Parameters
    ----------
    X : array_like, shape (n, d)
        Vectors, one per row. All-zero rows are returned as zeros.

    Returns
    -------
    ndarray, shape (n, d), float64

    Examples
    --------
    >>> length_norm([[3.0, 4.0], [0.0, 0.0]])
    array([[0.6, 0.8],
           [0. , 0. ]])
    """
    X = _as_vectors(X, min_rows=0)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return np.divide(X, norms, out=np.zeros_like(X), where=norms > 0)


def lda(X, speakers, dim: int) -> np.ndarray:
    """Fisher LDA projection to ``dim`` dimensions: within-class covariance identity, between-class sorted.

    Solves the generalised eigenproblem ``Sb v = lambda Sw v`` (module docstring for ``Sb`` and
    ``Sw``) and keeps the ``dim`` eigenvectors of largest ``lambda``. ``Sw`` gets a ridge of
    ``1e-10`` times its average eigenvalue so that a singular ``Sw`` (fewer vectors than
    dimensions) still gives a projection.

    Parameters
    ----------
    X : array_like, shape (n, d)
        Training vectors.
    speakers : array_like, shape (n,)
        Speaker label of each vector (any mutually comparable values); at least 2 speakers.
    dim : int
        Output dimension, ``1 <= dim <= min(d, n_speakers - 1)`` (``Sb`` has rank at most
        ``n_speakers - 1``: further directions would carry no between-speaker information).

    Returns
    -------
    P : ndarray, shape (d, dim)
        For ``Y = (X - X.mean(0)) @ P`` the within-class covariance of ``Y`` is the identity and
        the between-class covariance is ``diag(lambda)`` with ``lambda`` decreasing.

    Raises
    ------
    DataError
        Bad vectors or labels, fewer than 2 speakers, no speaker with two different vectors.
    ParameterError
        ``dim`` out of range.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> spk = np.repeat(np.arange(10), 4)
    >>> X = rng.normal(0, 3, (10, 5))[spk] + rng.normal(0, 1, (40, 5))
    >>> P = lda(X, spk, 3)
    >>> P.shape
    (5, 3)
    """
    X = _as_vectors(X)
    index, n_spk = _speaker_index(speakers, len(X))
    n, d = X.shape
    dim = _check_int(dim, "dim", low=1)
    if dim > n_spk - 1:
        raise ParameterError(f"lda: dim={dim} but the {n_spk} training speakers span at most {n_spk - 1} "
                             "between-speaker directions; use dim <= n_speakers - 1")
    if dim > d:
        raise ParameterError(f"lda: dim={dim} exceeds the input dimension {d}")
    counts, means, Sw = _within(X, index, n_spk, "lda")
    C = means - X.mean(axis=0)
    Sb = (C * counts[:, None]).T @ C / n
    _, V = linalg.eigh((Sb + Sb.T) / 2, _ridged(Sw), subset_by_index=[d - dim, d - 1])
    V = V[:, ::-1]
    # eigenvectors are defined up to sign; fix it so the same data always give the same projection
    signs = np.sign(V[np.argmax(np.abs(V), axis=0), np.arange(dim)])
    return V * signs


def wccn(X, speakers) -> np.ndarray:
    """Within-class covariance normalisation: ``B`` with ``B @ B.T = inv(Sw)`` (Cholesky).

    Parameters
    ----------
    X : array_like, shape (n, d)
        Training vectors (usually centred, and length-normalised or LDA-projected already).
    speakers : array_like, shape (n,)
        Speaker label of each vector; at least 2 speakers.

    Returns
    -------
    B : ndarray, shape (d, d)
        Upper triangular; ``X @ B`` has identity within-class covariance. ``Sw`` gets the same tiny
        ridge as in :func:`lda`, so a singular ``Sw`` still gives a (very large) finite ``B``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> spk = np.repeat(np.arange(10), 4)
    >>> X = rng.normal(0, 3, (10, 3))[spk] + rng.normal(0, 1, (40, 3))
    >>> wccn(X, spk).shape
    (3, 3)
    """
    X = _as_vectors(X)
    index, n_spk = _speaker_index(speakers, len(X))
    _, _, Sw = _within(X, index, n_spk, "wccn")
    L = linalg.cholesky(_ridged(Sw), lower=True)
    # Sw = L L^T, so inv(Sw) = L^-T L^-1: B = L^-T, without ever forming the inverse
    return linalg.solve_triangular(L, np.eye(len(L)), lower=True).T


def cosine_scores(enroll_means, test) -> np.ndarray:
    """Cosine similarity of every model vector with every test vector.

    Parameters
    ----------
    enroll_means : array_like, shape (M, d)
        One vector per speaker model (e.g. the mean of its enrolment i-vectors).
    test : array_like, shape (T, d)

    Returns
    -------
    ndarray, shape (M, T)
        In ``[-1, 1]``; 0 for an all-zero vector.

    Examples
    --------
    >>> cosine_scores([[1.0, 0.0]], [[2.0, 0.0], [0.0, 3.0], [-1.0, 0.0]])
    array([[ 1.,  0., -1.]])
    """
    E = _as_vectors(enroll_means, what="enroll_means")
    T = _as_vectors(test, what="test", dim=E.shape[1])
    return length_norm(E) @ length_norm(T).T


# --------------------------------------------------------------------------- PLDA

def _model_list(models, dim: int) -> list[np.ndarray]:
    if isinstance(models, Mapping):
        items = list(models.items())
    elif isinstance(models, (list, tuple)):
        items = list(enumerate(models))
    else:
        raise DataError(f"models: expected a list of (n_i, d) arrays or a dict name -> array, "
                        f"got {type(models).__name__}")
    if not items:
        raise DataError("models: no speaker model given")
    return [_as_vectors(E, what=f"models[{name!r}]", dim=dim) for name, E in items]


class PLDA:
    """Two-covariance PLDA: ``x = mu + y + e``, ``y ~ N(0, Sb)`` per speaker, ``e ~ N(0, Sw)`` per vector.

    Trained by EM (Sizov, Lee & Kinnunen 2014, section 3; Ioffe 2006). Every computation goes
    through the simultaneous diagonalisation ``A^T Sw A = I``, ``A^T Sb A = diag(psi)``: in the
    coordinates ``u = A^T (x - mu)`` the dimensions are independent, each ``u_k = y_k + e_k`` with
    ``y_k ~ N(0, psi_k)``, ``e_k ~ N(0, 1)``, so posteriors, marginal likelihoods and
    log-likelihood ratios have per-dimension closed forms in the count and mean of each speaker's
    vectors (no ``(n d) x (n d)`` matrices).

    Attributes
    ----------
    mean_ : ndarray, shape (d,)
        ``mu``.
    between_ : ndarray, shape (d, d)
        ``Sb``, the speaker (between-class) covariance.
    within_ : ndarray, shape (d, d)
        ``Sw``, the within-speaker covariance.
    history_ : list of float
        Training log-likelihood (exact marginal, summed over speakers): ``history_[0]`` at the
        initialisation, ``history_[i]`` after EM iteration ``i``. Never decreases.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> spk = np.repeat(np.arange(50), 4)
    >>> X = rng.normal(0, 2, (50, 3))[spk] + rng.normal(0, 1, (200, 3))
    >>> plda = PLDA().fit(X, spk, n_iter=5)
    >>> bool(np.all(np.diff(plda.history_) >= 0))
    True
    >>> plda.llr([X[:3], X[4:7]], X[[3, 7]]).shape     # 2 models x 2 tests
    (2, 2)
    """

    def __init__(self):
        self.mean_ = self.between_ = self.within_ = None
        self.history_: list[float] = []

    def __repr__(self) -> str:
        state = "unfitted" if self.mean_ is None else f"dim={len(self.mean_)}"
        return f"PLDA({state})"

    # ----- parameters
    @classmethod
    def from_params(cls, mean, between, within) -> PLDA:
        """A PLDA model with given ``mu`` ``(d,)``, ``Sb`` ``(d, d)`` (PSD) and ``Sw`` ``(d, d)`` (PD)."""
        mean = np.asarray(mean, dtype=np.float64)
        if mean.ndim != 1 or len(mean) == 0:
            raise ParameterError(f"PLDA: mean must be a non-empty 1-D array, got shape {mean.shape}")
        d = len(mean)
        between = _as_vectors(between, what="PLDA between", dim=d, min_rows=d)
        within = _as_vectors(within, what="PLDA within", dim=d, min_rows=d)
        if not np.isfinite(mean).all():
            raise ParameterError("PLDA: mean contains NaN or inf")
        for name, M in (("between", between), ("within", within)):
            if M.shape != (d, d):
                raise ParameterError(f"PLDA: {name} must have shape {(d, d)}, got {M.shape}")
            if not np.allclose(M, M.T, rtol=1e-10, atol=1e-12 * np.abs(M).max()):
                raise ParameterError(f"PLDA: {name} covariance is not symmetric")
        plda = cls()
        plda._set(mean, between, within)
        return plda

    def _set(self, mean, between, within) -> None:
        within = (within + within.T) / 2
        between = (between + between.T) / 2
        try:
            psi, A = linalg.eigh(between, within)
        except linalg.LinAlgError:
            raise DataError("PLDA: the within-speaker covariance is not positive definite (fewer independent "
                            "vectors than dimensions?); reduce the dimension with LDA first") from None
        if psi.min() < -1e-8 * max(psi.max(), 1.0):
            raise ParameterError("PLDA: the between-speaker covariance is not positive semi-definite")
        self.mean_, self.between_, self.within_ = mean, between, within
        # rounding makes tiny eigenvalues of a singular Sb slightly negative; a variance cannot be
        self._psi = np.clip(psi, 0.0, None)
        self._A = A
        self._logdet_w = float(np.linalg.slogdet(within)[1])

    def _check_fitted(self) -> int:
        if self.mean_ is None:
            raise NotFittedError("PLDA: call fit() (or from_params()) first")
        return len(self.mean_)

    # ----- training
    def fit(self, X, speakers, *, n_iter: int = 10) -> PLDA:
        """Estimate ``mu``, ``Sb``, ``Sw`` by EM from the scatter-matrix initialisation.

        Parameters
        ----------
        X : array_like, shape (n, d)
            Training vectors (centred and length-normalised in the usual pipeline).
        speakers : array_like, shape (n,)
            Speaker label of each vector: at least 2 speakers, and ``n - n_speakers >= d`` so that
            ``Sw`` is estimable. Speakers with a single vector are allowed (they inform ``Sb``).
        n_iter : int, default 10
            EM iterations (0 keeps the initialisation: ``Sw`` the within-class covariance, ``Sb``
            the covariance of the speaker means).

        Returns
        -------
        self
        """
        X = _as_vectors(X)
        index, n_spk = _speaker_index(speakers, len(X))
        n_iter = _check_int(n_iter, "n_iter", low=0)
        n, d = X.shape
        if n - n_spk < d:
            raise DataError(f"PLDA: {n} vectors of {n_spk} speakers leave {n - n_spk} within-speaker degrees "
                            f"of freedom, fewer than the dimension {d}: Sw would be singular; reduce the "
                            "dimension (LDA) or add data")
        counts, means, W = _class_stats(X, index, n_spk)
        mu = means.mean(axis=0)
        C = means - mu
        self._set(mu, C.T @ C / n_spk, W / n)
        self.history_ = []
        for it in range(n_iter + 1):
            self.history_.append(self._loglik(counts, means, W))
            if it == n_iter:
                break
            self._em_step(counts, means, W)
        return self

    def _em_step(self, counts, means, W) -> None:
        psi, A = self._psi, self._A
        n_spk, n = len(counts), counts.sum()
        nk = counts[:, None]
        U = (means - self.mean_) @ A
        # posterior of each speaker's latent (mu + y) in u-coordinates: mean n psi/(1 + n psi) ubar,
        # variance psi/(1 + n psi), dimension by dimension
        V = psi / (1 + nk * psi)
        T = self.within_ @ A                       # = A^-T, back from u- to x-coordinates
        M = self.mean_ + (nk * V * U) @ T.T        # posterior means, (S, d)
        # M-step (Sizov et al. eqs. for the two-covariance model): mu and Sb from the posterior moments
        # of the speaker latents, Sw from the expected residuals x - (mu + y)
        mu = M.mean(axis=0)
        Mc = M - mu
        Sb = (Mc.T @ Mc + (T * V.sum(axis=0)) @ T.T) / n_spk
        D = means - M
        Sw = (W + (D * nk).T @ D + (T * (nk * V).sum(axis=0)) @ T.T) / n
        self._set(mu, Sb, Sw)

    def _loglik(self, counts, means, W) -> float:
        """Exact marginal log-likelihood from per-speaker counts and means and the within scatter."""
        psi, A = self._psi, self._A
        n = counts.sum()
        d = len(psi)
        nk = counts[:, None]
        U = (means - self.mean_) @ A
        # per speaker and dimension, n values u_i with covariance I + psi 11^T: log-determinant
        # log(1 + n psi), quadratic form sum (u_i - ubar)^2 + n ubar^2 / (1 + n psi);
        # the Jacobian of x -> u contributes -n/2 log det Sw
        quad = np.sum(W * (A @ A.T)) + np.sum(nk * U ** 2 / (1 + nk * psi))
        logdet = n * self._logdet_w + np.sum(np.log1p(nk * psi))
        return float(-0.5 * (n * d * _LOG_2PI + logdet + quad))

    def log_likelihood(self, X, speakers) -> float:
        """Exact log-likelihood of ``X`` under the model, speakers independent, each with one ``y``.

        Parameters
        ----------
        X : array_like, shape (n, d)
        speakers : array_like, shape (n,)
            Speaker label of each vector (at least 2 speakers).

        Returns
        -------
        float
            ``sum_s log N([x_s1..x_sn]; [mu..mu], I (x) Sw + 11^T (x) Sb)``.
        """
        d = self._check_fitted()
        X = _as_vectors(X, dim=d)
        index, n_spk = _speaker_index(speakers, len(X))
        counts, means, W = _class_stats(X, index, n_spk)
        return self._loglik(counts, means, W)

    # ----- scoring
    def llr(self, models, test) -> np.ndarray:
        """Log-likelihood ratios of every speaker model against every test vector.

        For a model enrolled with ``n`` vectors ``E`` and a test vector ``t``:
        ``LLR = log p(E, t | one speaker) - log p(E | one speaker) - log p(t)``. Only the count
        and mean of each model's vectors matter, so ``M x T`` scores cost two matrix products.

        Parameters
        ----------
        models : list of array_like (n_i, d), or dict name -> array_like (n_i, d)
            Enrolment vectors of each model (``n_i >= 1``); a dict's order gives the row order.
        test : array_like, shape (T, d)

        Returns
        -------
        ndarray, shape (M, T)
        """
        d = self._check_fitted()
        mats = _model_list(models, d)
        t = _as_vectors(test, what="test", dim=d)
        psi, A = self._psi, self._A
        n = np.array([len(E) for E in mats], dtype=np.float64)[:, None]
        Ue = (np.stack([E.mean(axis=0) for E in mats]) - self.mean_) @ A
        Ut = (t - self.mean_) @ A
        # per dimension, with a = psi/(1+(n+1)psi), c = psi/(1+n psi), b = psi/(1+psi):
        # 2 LLR = log(1+n psi) + log(1+psi) - log(1+(n+1)psi) + a (n ubar + t)^2 - c n^2 ubar^2 - b t^2;
        # a - c and a - b are written out so large psi does not cancel
        den = 1 + (n + 1) * psi
        a = psi / den
        a_c = -psi ** 2 / (den * (1 + n * psi))
        a_b = -n * psi ** 2 / (den * (1 + psi))
        const = np.sum(np.log1p(n * psi) + np.log1p(psi) - np.log1p((n + 1) * psi) + a_c * (n * Ue) ** 2, axis=1)
        return 0.5 * (const[:, None] + (2 * n * a * Ue) @ Ut.T + a_b @ (Ut ** 2).T)


# --------------------------------------------------------------------------- the pipeline

class Backend:
    """Centring -> optional LDA -> length normalisation -> PLDA or cosine scoring.

    Parameters
    ----------
    lda_dim : int or None, default None
        LDA output dimension (``<= n_speakers - 1`` and ``<=`` the i-vector dimension), or no LDA.
    scoring : {"plda", "cosine"}, default "plda"
    plda_iter : int, default 10
        EM iterations of the PLDA (ignored for cosine scoring).

    Attributes
    ----------
    mean_ : ndarray, shape (d,)
        Mean of the training i-vectors.
    lda_ : ndarray, shape (d, lda_dim), or None
    plda_ : PLDA or None
        Trained on the transformed training vectors (``scoring="plda"`` only).

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> spk = np.repeat(np.arange(30), 4)
    >>> X = rng.normal(0, 2, (30, 6))[spk] + rng.normal(0, 1, (120, 6))
    >>> be = Backend(lda_dim=4).fit(X, spk)
    >>> be.transform(X).shape
    (120, 4)
    >>> clone = Backend.from_arrays(be.to_arrays(), be.params())
    >>> names, s = clone.score({"m": X[:2]}, X[2:4])
    >>> bool(np.array_equal(s, be.score({"m": X[:2]}, X[2:4])[1]))
    True
    """

    def __init__(self, lda_dim: int | None = None, scoring: str = "plda", plda_iter: int = 10):
        if lda_dim is not None:
            lda_dim = _check_int(lda_dim, "lda_dim", low=1)
        if scoring not in SCORINGS:
            raise ParameterError(f"scoring must be one of {SCORINGS}, got {scoring!r}")
        self.lda_dim = lda_dim
        self.scoring = scoring
        self.plda_iter = _check_int(plda_iter, "plda_iter", low=0)
        self.mean_ = self.lda_ = self.plda_ = None

    def __repr__(self) -> str:
        return f"Backend(lda_dim={self.lda_dim!r}, scoring={self.scoring!r}, plda_iter={self.plda_iter!r})"

    def _check_fitted(self) -> int:
        if self.mean_ is None:
            raise NotFittedError("Backend: call fit() (or from_arrays()) first")
        return len(self.mean_)

    def fit(self, X, speakers) -> Backend:
        """Train the mean, the LDA (if ``lda_dim``) and the PLDA (if ``scoring="plda"``).

        Parameters
        ----------
        X : array_like, shape (n, d)
            Training i-vectors.
        speakers : array_like, shape (n,)
            Speaker label of each (at least 2 speakers; several vectors per speaker for LDA/PLDA).

        Returns
        -------
        self
        """
        X = _as_vectors(X)
        _speaker_index(speakers, len(X))  # fail on the labels before any work
        mean = X.mean(axis=0)
        Xc = X - mean
        P = lda(Xc, speakers, self.lda_dim) if self.lda_dim is not None else None
        Y = length_norm(Xc if P is None else Xc @ P)
        plda = PLDA().fit(Y, speakers, n_iter=self.plda_iter) if self.scoring == "plda" else None
        self.mean_, self.lda_, self.plda_ = mean, P, plda
        return self

    def transform(self, X) -> np.ndarray:
        """Raw i-vectors ``(n, d)`` -> centred, projected, length-normalised ``(n, lda_dim or d)``."""
        d = self._check_fitted()
        Xc = _as_vectors(X, dim=d, min_rows=0) - self.mean_
        return length_norm(Xc if self.lda_ is None else Xc @ self.lda_)

    def score(self, models, test) -> tuple[list, np.ndarray]:
        """Score speaker models against test i-vectors.

        Parameters
        ----------
        models : dict name -> array_like (n_i, d)
            Raw enrolment i-vectors of each model (``n_i >= 1``).
        test : array_like, shape (T, d)
            Raw test i-vectors.

        Returns
        -------
        names : list
            The model names, in the dict's order (the rows of ``scores``).
        scores : ndarray, shape (M, T)
            PLDA log-likelihood ratios (multi-vector enrolment), or cosine similarities between
            the length-normalised mean of each model's transformed vectors and each test vector.
        """
        d = self._check_fitted()
        if not isinstance(models, Mapping):
            raise DataError(f"models: expected a dict name -> (n_i, d) array, got {type(models).__name__}")
        names = list(models)
        mats = [self.transform(E) for E in _model_list(models, d)]
        t = self.transform(_as_vectors(test, what="test", dim=d))
        if self.scoring == "plda":
            return names, self.plda_.llr(mats, t)
        return names, cosine_scores(np.stack([E.mean(axis=0) for E in mats]), t)

    # ----- storage
    def params(self) -> dict:
        """JSON-able hyper-parameters and provenance; with :meth:`to_arrays`, all :meth:`from_arrays` needs."""
        d = self._check_fitted()
        return {"format": _FORMAT, "version": _VERSION, "dim": d, "lda_dim": self.lda_dim,
                "scoring": self.scoring, "plda_iter": self.plda_iter,
                "plda_history": [] if self.plda_ is None else [float(v) for v in self.plda_.history_]}

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The trained parameters as float64 arrays: ``mean``, ``lda`` (with LDA), and ``plda_mean``,
        ``plda_between``, ``plda_within`` (with PLDA scoring)."""
        self._check_fitted()
        out = {"mean": self.mean_.copy()}
        if self.lda_ is not None:
            out["lda"] = self.lda_.copy()
        if self.plda_ is not None:
            out.update(plda_mean=self.plda_.mean_.copy(), plda_between=self.plda_.between_.copy(),
                       plda_within=self.plda_.within_.copy())
        return out

    @classmethod
    def from_arrays(cls, arrays: Mapping, params: Mapping) -> Backend:
        """Rebuild the back end written by :meth:`to_arrays` and :meth:`params` (scores are identical).

        Raises
        ------
        ParameterError
            ``params`` or ``arrays`` are not those of a back end, or are mutually inconsistent.
        """
        if not isinstance(params, Mapping) or params.get("format") != _FORMAT:
            raise ParameterError(f"params: not the parameters of an {_FORMAT} (format is "
                                 f"{params.get('format') if isinstance(params, Mapping) else params!r})")
        if params.get("version") != _VERSION:
            raise ParameterError(f"params: version {params.get('version')!r} is not supported (expected {_VERSION})")
        try:
            be = cls(lda_dim=params["lda_dim"], scoring=params["scoring"], plda_iter=params["plda_iter"])
            d = _check_int(params["dim"], "dim", low=1)
        except KeyError as exc:
            raise ParameterError(f"params: missing {exc.args[0]!r}") from None
        need = {"mean"} | ({"lda"} if be.lda_dim is not None else set()) \
            | ({"plda_mean", "plda_between", "plda_within"} if be.scoring == "plda" else set())
        missing = need - set(arrays)
        if missing:
            raise ParameterError(f"arrays: missing {sorted(missing)} for {be!r}")
        extra = set(arrays) - need
        if extra:
            raise ParameterError(f"arrays: unexpected {sorted(extra)} for {be!r}")
        get = {k: np.array(arrays[k], dtype=np.float64) for k in need}
        k = be.lda_dim if be.lda_dim is not None else d
        shapes = {"mean": (d,), "lda": (d, k), "plda_mean": (k,), "plda_between": (k, k), "plda_within": (k, k)}
        for key, arr in get.items():
            if arr.shape != shapes[key]:
                raise ParameterError(f"arrays: {key!r} has shape {arr.shape}, expected {shapes[key]} for {be!r} "
                                     f"of dimension {d}")
            if not np.isfinite(arr).all():
                raise ParameterError(f"arrays: {key!r} contains NaN or inf")
        be.mean_ = get["mean"]
        be.lda_ = get.get("lda")
        if be.scoring == "plda":
            try:
                be.plda_ = PLDA.from_params(get["plda_mean"], get["plda_between"], get["plda_within"])
            except DataError as exc:
                raise ParameterError(f"arrays: {exc}") from None
            be.plda_.history_ = [float(v) for v in params.get("plda_history", [])]
        return be
