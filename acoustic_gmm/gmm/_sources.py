"""Frame sources: what EM reads frames from, in memory, on disk or on a cluster.

Training needs a few things of its frames: how many there are, consecutive blocks of them
(one pass of EM), a few rows by position (to seed k-means or random means), and all of them at
once when they fit in memory (:func:`within_budget`).  That is the :class:`FrameSource` protocol.
An array is adapted by :class:`ArrayFrames` (views, no copy), a feature archive is one
(:class:`~acoustic_gmm.storage.FeatureArchive` and its :meth:`~acoustic_gmm.storage.FeatureArchive.subset`),
and so is a Dask-backed archive (:class:`~acoustic_gmm.gmm.DaskFrames`), which in addition runs the
E-step itself (:class:`RemoteEStep`).  :mod:`acoustic_gmm.gmm` sees only these protocols.

Examples
--------
>>> import numpy as np
>>> src = as_frames(np.zeros((10, 3), np.float32))
>>> src.n_frames_total, [len(b) for b in src.iter_chunks(4)]
(10, [4, 4, 2])
"""

from __future__ import annotations

import os
from typing import Iterator, Protocol, runtime_checkable

import numpy as np

from ..errors import DataError, ParameterError

__all__ = ["FrameSource"]


MAX_DEFAULT_MEMORY = 4 << 30  # bytes


@runtime_checkable
class FrameSource(Protocol):
    """Frames EM can stream: a total, blocks in order, rows by position."""

    @property
    def n_frames_total(self) -> int:
        """Number of frames."""

    @property
    def n_features(self) -> int:
        """Features per frame."""

    def frames(self) -> np.ndarray:
        """All frames at once, (n_frames_total, n_features)."""

    def iter_chunks(self, size: int) -> Iterator[np.ndarray]:
        """Consecutive blocks of at most ``size`` frames, (n, n_features) each, in order."""

    def rows(self, index: np.ndarray) -> np.ndarray:
        """Frames at sorted positions ``index``: (len(index), n_features)."""


@runtime_checkable
class RemoteEStep(Protocol):
    """A frame source that runs the E-step where its frames are (a cluster) and returns the statistics."""

    def accumulate(self, model, chunk: int):
        """The :class:`~acoustic_gmm.gmm.Stats` of every frame under ``model``."""


class ArrayFrames:
    """An in-memory array (n_frames, n_features) as a :class:`FrameSource`: blocks are views."""

    def __init__(self, X: np.ndarray):
        self.X = X

    @property
    def n_frames_total(self) -> int:
        return len(self.X)

    @property
    def n_features(self) -> int:
        return self.X.shape[1]

    def frames(self) -> np.ndarray:
        return self.X

    def iter_chunks(self, size: int) -> Iterator[np.ndarray]:
        for start in range(0, len(self.X), size):
            yield self.X[start:start + size]

    def rows(self, index: np.ndarray) -> np.ndarray:
        return self.X[index]


def as_frames(X) -> FrameSource:
    """``X`` as a :class:`FrameSource`: an array is wrapped, a source is returned as it is."""
    if isinstance(X, np.ndarray):
        return ArrayFrames(X)
    if isinstance(X, FrameSource):
        return X
    raise DataError(f"frames must be an array (n_frames, n_features) or a frame source (a feature archive), "
                    f"got {type(X).__name__}")


def default_max_memory() -> int:
    """The default budget for frames held in memory: a quarter of this machine's RAM, at most 4 GiB."""
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX: be modest
        ram = 4 * MAX_DEFAULT_MEMORY
    return int(min(MAX_DEFAULT_MEMORY, ram // 4))


def within_budget(source, max_memory: int | None = None):
    """Frames to train on: ``source`` read into memory once when its float32 frames fit ``max_memory``
    bytes (default :func:`default_max_memory`), else ``source`` itself, streamed on every EM pass.

    Every EM iteration reads all frames; from memory that costs nothing, from disk (even the page cache)
    a copy per pass.  A source that runs its own E-step (a cluster) is returned as it is.

    Examples
    --------
    >>> X = np.ones((1000, 4), np.float32)
    >>> type(within_budget(ArrayFrames(X), 1 << 20)).__name__, type(within_budget(ArrayFrames(X), 100)).__name__
    ('ArrayFrames', 'ArrayFrames')
    """
    source = as_frames(source)
    if isinstance(source, (ArrayFrames, RemoteEStep)):
        return source
    limit = default_max_memory() if max_memory is None else max_memory
    if source.n_frames_total * source.n_features * 4 > limit:
        return source
    return ArrayFrames(source.frames())


def parse_size(text) -> int:
    """A byte count from ``"4G"``, ``"512M"``, ``"100k"`` or a plain number (powers of 1024).

    >>> parse_size("2G"), parse_size("512m"), parse_size(0)
    (2147483648, 536870912, 0)
    """
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    s = str(text).strip().upper().removesuffix("B").removesuffix("I")
    number, unit = (s[:-1], s[-1]) if s and s[-1] in units else (s, "")
    try:
        value = float(number) * units[unit]
    except ValueError:
        raise ParameterError(f"not a size: {text!r} (use e.g. 4G, 512M or a number of bytes)") from None
    if not value >= 0:
        raise ParameterError(f"a size must be >= 0, got {text!r}")
    return int(value)
