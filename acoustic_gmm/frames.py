"""Frame sources: what EM reads frames from, in memory, on disk or on a cluster.

Training needs three things of its frames: how many there are, consecutive blocks of them
(one pass of EM), and a few rows by position (to seed k-means or random means).  That is the
:class:`FrameSource` protocol.  An array is adapted by :class:`ArrayFrames` (views, no copy), a
feature archive is one (:class:`~acoustic_gmm.archive.FeatureArchive` and its
:meth:`~acoustic_gmm.archive.FeatureArchive.subset`), and so is a Dask-backed archive
(:class:`~acoustic_gmm.distributed.DaskFrames`), which in addition runs the E-step itself
(:class:`RemoteEStep`).  :mod:`acoustic_gmm.em` sees only these protocols.

Examples
--------
>>> import numpy as np
>>> src = as_frames(np.zeros((10, 3), np.float32))
>>> src.n_frames_total, [len(b) for b in src.iter_chunks(4)]
(10, [4, 4, 2])
"""

from __future__ import annotations

from typing import Iterator, Protocol, runtime_checkable

import numpy as np

from .errors import DataError

__all__ = ["FrameSource", "RemoteEStep", "ArrayFrames", "as_frames"]


@runtime_checkable
class FrameSource(Protocol):
    """Frames EM can stream: a total, blocks in order, rows by position."""

    @property
    def n_frames_total(self) -> int:
        """Number of frames."""

    def iter_chunks(self, size: int) -> Iterator[np.ndarray]:
        """Consecutive blocks of at most ``size`` frames, (n, n_features) each, in order."""

    def rows(self, index: np.ndarray) -> np.ndarray:
        """Frames at sorted positions ``index``: (len(index), n_features)."""


@runtime_checkable
class RemoteEStep(Protocol):
    """A frame source that runs the E-step where its frames are (a cluster) and returns the statistics."""

    def accumulate(self, model, chunk: int):
        """The :class:`~acoustic_gmm.em.Stats` of every frame under ``model``."""


class ArrayFrames:
    """An in-memory array (n_frames, n_features) as a :class:`FrameSource`: blocks are views."""

    def __init__(self, X: np.ndarray):
        self.X = X

    @property
    def n_frames_total(self) -> int:
        return len(self.X)

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
