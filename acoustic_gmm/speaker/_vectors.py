"""The i-vector back end's vector operations: centring, LDA, WCCN, length normalisation, cosine scores.

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
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping

import numpy as np
from scipy import linalg

from ..errors import DataError, ParameterError

__all__ = ["cosine_scores", "lda", "length_norm", "wccn"]


# A singular within-class covariance (fewer vectors than dimensions, collinear features) is regularised
# by this fraction of its average eigenvalue: far below any real variance, yet enough for Cholesky.
_RIDGE = 1e-10


# --------------------------------------------------------------------------- input checks

def as_vectors(X, *, what: str = "X", dim: int | None = None, min_rows: int = 1) -> np.ndarray:
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


def speaker_index(speakers, n: int) -> tuple[np.ndarray, int]:
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


def check_int(value, name: str, *, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ParameterError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def class_stats(X: np.ndarray, index: np.ndarray, n_spk: int):
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
    counts, means, W = class_stats(X, index, n_spk)
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
    X = as_vectors(X, min_rows=0)
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
    X = as_vectors(X)
    index, n_spk = speaker_index(speakers, len(X))
    n, d = X.shape
    dim = check_int(dim, "dim", low=1)
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
    X = as_vectors(X)
    index, n_spk = speaker_index(speakers, len(X))
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
    E = as_vectors(enroll_means, what="enroll_means")
    T = as_vectors(test, what="test", dim=E.shape[1])
    return length_norm(E) @ length_norm(T).T


# --------------------------------------------------------------------------- PLDA

def model_list(models, dim: int) -> list[np.ndarray]:
    if isinstance(models, Mapping):
        items = list(models.items())
    elif isinstance(models, (list, tuple)):
        items = list(enumerate(models))
    else:
        raise DataError(f"models: expected a list of (n_i, d) arrays or a dict name -> array, "
                        f"got {type(models).__name__}")
    if not items:
        raise DataError("models: no speaker model given")
    return [as_vectors(E, what=f"models[{name!r}]", dim=dim) for name, E in items]
