"""Linear discriminant analysis of labelled frames (Kaldi's ``acc-lda`` / ``est-lda``).

Statistics apart from the estimate: :class:`LdaStats` adds up each class's frame count and sum and the
frames' total second moment over utterances, files and processes (``+=``); :func:`estimate_lda` turns them
into the projection.  The classes are whatever the frames were labelled with: HMM states or slices of the
class models (many fine classes, as Kaldi's tied states), or whole classes.

The projection keeps the ``dim`` directions ``v`` with the largest ratio of between-class to within-class
variance, the generalised eigenproblem ``B v = lambda W v``; scaled so that the within-class covariance of the
projected frames is the identity and centred on the global mean (Kaldi's convention): diagonal-covariance
models fit the result well.  ``shrinkage`` pulls ``W`` towards its diagonal, for small corpora where a full
within-class covariance learns the training speakers' voices.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(600, 3)); y = np.repeat([0, 1, 2], 200); X[:, 0] += 4 * y   # feature 0 separates
>>> stats = LdaStats(3, 3); stats.add(X, y)
>>> M, offset = estimate_lda(stats, 1)
>>> int(np.argmax(np.abs(M[0])))
0
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from ..errors import DataError, ParameterError, check_frames

__all__ = ["LdaStats", "estimate_lda"]


class LdaStats:
    """Per-class counts and sums and the total second moment of labelled frames; ``+=`` merges two."""

    def __init__(self, n_features: int, n_classes: int):
        self.counts = np.zeros(n_classes)
        self.sums = np.zeros((n_classes, n_features))
        self.second = np.zeros((n_features, n_features))

    def add(self, frames: np.ndarray, classes: np.ndarray) -> None:
        """Add ``frames`` (T, D), frame ``t`` of class ``classes[t]`` (integers in ``[0, n_classes)``)."""
        X = check_frames(frames, n_features=self.sums.shape[1], what="frames").astype(np.float64)
        y = np.asarray(classes)
        bad = y.shape != (len(X),) or y.dtype.kind not in "iu"
        if bad or (len(y) and (y.min() < 0 or y.max() >= len(self.counts))):
            raise ParameterError(f"classes must be {len(X)} integers in [0, {len(self.counts)})")
        self.counts += np.bincount(y, minlength=len(self.counts))
        np.add.at(self.sums, y, X)
        self.second += X.T @ X

    def __iadd__(self, other: "LdaStats") -> "LdaStats":
        self.counts += other.counts
        self.sums += other.sums
        self.second += other.second
        return self

    def scatter(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(global mean, within-class covariance W, between-class covariance B)``, each per frame."""
        n = self.counts.sum()
        seen = self.counts > 0
        mean = self.sums.sum(axis=0) / n
        class_means = self.sums[seen] / self.counts[seen, None]
        total = self.second / n - np.outer(mean, mean)
        between = (self.counts[seen, None] * (class_means - mean)).T @ (class_means - mean) / n
        return mean, total - between, between


def estimate_lda(stats: LdaStats, dim: int, *, shrinkage: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """``(M, offset)``: the projection ``y = M x + offset``, (dim, D) and (dim,), from LDA statistics.

    Rows are the generalised eigenvectors of ``B v = lambda W v`` by decreasing ``lambda``, scaled so that
    ``M W M^T = I``; ``offset = -M mean``.  ``dim`` is at most D; directions beyond the number of classes
    minus one carry no between-class variance and come in the order of the within-class variance they keep.
    ``shrinkage`` in [0, 1] replaces ``W`` by ``(1 - s) W + s diag(W)``.
    """
    d = stats.sums.shape[1]
    if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool) or not 1 <= dim <= d:
        raise ParameterError(f"dim must be an integer in [1, {d}], got {dim!r}")
    if not 0.0 <= shrinkage <= 1.0:
        raise ParameterError(f"shrinkage must be in [0, 1], got {shrinkage!r}")
    if np.count_nonzero(stats.counts) < 2:
        raise DataError(f"an LDA needs frames of at least 2 classes, got {np.count_nonzero(stats.counts)}")
    mean, W, B = stats.scatter()
    W = (1.0 - shrinkage) * W + shrinkage * np.diag(np.diag(W))
    W += 1e-10 * np.trace(W) / d * np.eye(d)  # a feature constant within every class must not make W singular
    try:
        values, vectors = scipy.linalg.eigh(B, W)
    except np.linalg.LinAlgError as exc:
        raise DataError(f"the within-class covariance is not positive definite ({exc}): too few frames for "
                        f"{d} features") from None
    M = vectors[:, np.argsort(values)[::-1][:dim]].T
    return M, -M @ mean
