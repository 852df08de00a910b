"""Exceptions and warnings raised by acoustic_gmm, and the boundary checks that raise them.

Everything the toolkit raises on purpose derives from :class:`AcousticGMMError`, so
``except AcousticGMMError`` catches every problem we diagnosed ourselves, while the
specific classes also derive from the matching built-in (``ValueError``, ``OSError``,
``AttributeError``) so that generic handlers keep working.
"""

from __future__ import annotations

import functools
import sys

import numpy as np

__all__ = ["AcousticGMMError", "ParameterError", "DataError", "ArchiveError", "ModelFileError", "ManifestError", "OutputError", "NotFittedError", "FrameTypeError", "not_fitted", "ConvergenceWarning", "ComponentWarning", "check_frames"]


class AcousticGMMError(Exception):
    """Base class of every error acoustic_gmm raises on purpose."""


class ParameterError(AcousticGMMError, ValueError):
    """A hyper-parameter or argument has a value we cannot work with."""


class DataError(AcousticGMMError, ValueError):
    """Input frames are unusable: NaN/inf, wrong shape, too few, constant features."""


class ArchiveError(AcousticGMMError, OSError):
    """An HDF5 file (feature archive or model file) is missing, not HDF5, truncated or inconsistent."""


class ModelFileError(ArchiveError):
    """A model file is missing, not HDF5, truncated, or holds inconsistent parameters."""


class ManifestError(AcousticGMMError, ValueError):
    """A data directory (wav.scp, utt2spk, utt2label, segments) is malformed or inconsistent."""


class OutputError(AcousticGMMError, OSError):
    """A result cannot be written where asked: it exists (and may not be replaced), it is also an input, it is
    a directory, its directory cannot be made, or another run is writing it."""


class NotFittedError(AcousticGMMError, AttributeError):
    """The estimator is used before ``fit`` (or ``load``)."""


class FrameTypeError(DataError, TypeError):
    """Frames hold values that are not numbers (``TypeError`` too, as numpy's own conversion error is)."""


def not_fitted(message: str) -> NotFittedError:
    """A :class:`NotFittedError`; once scikit-learn is loaded, one that is scikit-learn's too, so that its
    tools (``check_is_fitted``, ``check_estimator``) recognise it.  Only then: importing scikit-learn here
    would cost every command line run about a second."""
    sk = sys.modules.get("sklearn.exceptions")
    return NotFittedError(message) if sk is None else _sklearn_not_fitted(sk.NotFittedError)(message)


@functools.lru_cache(maxsize=None)
def _sklearn_not_fitted(base):
    return type("NotFittedError", (NotFittedError, base), {"__module__": __name__, "__doc__": NotFittedError.__doc__})


class ConvergenceWarning(UserWarning):
    """EM stopped at ``max_iter`` before the log-likelihood gain fell below ``tol``."""


class ComponentWarning(UserWarning):
    """A component became (nearly) empty and was replaced by splitting the heaviest one."""


def check_frames(X, *, n_features: int | None = None, min_frames: int = 1, what: str = "X",
                 owner: str = "the model") -> np.ndarray:
    """Return ``X`` as a C-contiguous 2-D float array, or raise :class:`DataError`.

    float32 and float64 inputs are kept as they are (no copy); anything else becomes float64.
    """
    # the messages carry the phrases scikit-learn's estimator checks look for ("Reshape your data", ...)
    if hasattr(X, "toarray") or type(X).__module__.startswith("scipy.sparse"):
        raise DataError(f"{what}: sparse input is not supported; pass a dense array (X.toarray())")
    try:
        arr = np.asarray(X)
    except Exception as exc:  # ragged lists and the like
        raise DataError(f"{what}: cannot be turned into an array of frames ({exc})") from None
    if arr.dtype.kind == "c":
        raise DataError(f"{what}: Complex data not supported; frames must be real numbers")
    if arr.dtype.kind == "O":  # numbers held as Python objects convert; anything else is a type error
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise FrameTypeError(f"{what}: frames must be numbers: {exc}") from None
    if arr.dtype.kind not in "fiub":
        raise DataError(f"{what}: frames must be numeric, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise DataError(f"{what}: expected a 2-D array (n_frames, n_features), got shape {arr.shape}; "
                        f"Reshape your data (X.reshape(-1, 1) if it has one feature)")
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float64)
    arr = np.ascontiguousarray(arr)
    n, d = arr.shape
    if n_features is not None and d != n_features:
        raise DataError(f"{what}: X has {d} features, but {owner} is expecting {n_features} features as input")
    if d == 0:
        raise DataError(f"{what}: 0 feature(s) (shape={arr.shape}) while a minimum of 1 is required.")
    if n < min_frames:
        raise DataError(f"{what}: {n} frame(s) given (n_samples={n}), at least {min_frames} needed")
    finite = np.isfinite(arr)
    if not finite.all():
        bad_rows = np.flatnonzero(~finite.all(axis=1))
        n_nan = int(np.isnan(arr).sum())
        n_inf = int(np.isinf(arr).sum())
        raise DataError(
            f"{what}: {len(bad_rows)} frame(s) contain non-finite values "
            f"({n_nan} NaN, {n_inf} inf; first at frame {bad_rows[0]})"
        )
    return arr
