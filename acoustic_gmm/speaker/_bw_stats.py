"""Baum-Welch statistics of utterances against a UBM: what i-vectors (and PLDA on them) are computed from.

An utterance's occupancies ``N_k = sum_t g_tk`` and centred first-order sums ``F_k = sum_t g_tk (x_t - m_k)``
(:class:`BWStats`), for every utterance of an archive a batch at a time (:func:`utterance_stats`: one planned
read and one posterior product per batch, optionally each frame's posteriors pruned to its top-C components), or
computed again on every pass in one batch's memory (:class:`StatsStream`).

Examples
--------
::

    stats = utterance_stats(ubm, "train.h5")       # BWStats: N (U, K), F (U, K, D)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import DataError, ParameterError
from ..gmm._model import DiagGMM, log_normalize
from ..storage._archive import opened
from ..storage._parallel import progress_bar

__all__ = ["BWStats", "utterance_stats", "StatsStream"]


BATCH_BYTES = 256 << 20  # posteriors of one batch of utterances in utterance_stats (float32 + float64 copy)


BATCH_FRAMES = 1 << 17   # ... and at most this many frames


BATCH_UTTS = 256         # utterances per batch of statistics (and of the i-vector E-step)


def _ubm_id(ubm: DiagGMM) -> str:
    from ..gmm._files import ubm_id

    return ubm_id(ubm)


@dataclass
class BWStats:
    """Zeroth and centred first-order Baum-Welch statistics of utterances against a UBM.

    ``N`` (U, K): occupancies; ``F`` (U, K, D): ``sum_t g_tk (x_t - m_k)``, both float64; ``ids`` the
    utterances, ``ubm_id`` the fingerprint of the UBM (:func:`acoustic_gmm.gmm.ubm_id`).
    """

    ids: list
    N: np.ndarray
    F: np.ndarray
    ubm_id: str
    speakers: list = field(default_factory=list)
    labels: list = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, index) -> "BWStats":
        """The statistics of the utterances at positions ``index``."""
        index = np.asarray(index, dtype=np.int64)
        pick = lambda values: [values[i] for i in index] if values else []  # noqa: E731
        return BWStats(pick(self.ids), self.N[index], self.F[index], self.ubm_id, pick(self.speakers),
                       pick(self.labels))


def utterance_stats(ubm: DiagGMM, archive, ids=None, *, top_c: int | None = None, progress: bool = False,
                    view=None) -> BWStats:
    """Baum-Welch statistics of utterances ``ids`` (default: all) of a feature archive against ``ubm``.

    Parameters
    ----------
    ubm : DiagGMM
        The universal background model, (K components, D features).
    archive : str, Path or FeatureArchive
        Frames of D features.
    ids : list of str, optional
        Utterances to use, in this order.
    top_c : int, optional
        Keep each frame's ``top_c`` largest posteriors (renormalised), as Kaldi's Gaussian selection
        does; the rest are zero.  Default: exact posteriors.
    progress : bool or None
        A progress bar over utterances (None: only on a terminal).

    Returns
    -------
    BWStats
        ``N`` (U, K) and ``F`` (U, K, D).

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from acoustic_gmm.storage import write_features
    >>> from acoustic_gmm.features import MfccConfig
    >>> p = os.path.join(tempfile.mkdtemp(), "f.h5")
    >>> rng = np.random.default_rng(0)
    >>> n = write_features(p, [(f"u{i}", rng.normal(size=(50, 2)).astype("f4"), "x", "s") for i in range(3)],
    ...                    config=MfccConfig(n_mfcc=2, n_mels=4, deltas=0), sample_rate=8000)
    >>> s = utterance_stats(DiagGMM([0.5, 0.5], [[0, 0], [1, 1]], [[1, 1], [1, 1]]), p)
    >>> s.N.shape, s.F.shape, float(s.N.sum().round(6))
    ((3, 2), (3, 2, 2), 150.0)
    """
    if not isinstance(ubm, DiagGMM):
        raise ParameterError("utterance_stats: the UBM must be a diagonal GMM")
    if top_c is not None and not 1 <= top_c <= ubm.n_components:
        raise ParameterError(f"top_c must be between 1 and {ubm.n_components}, got {top_c}")
    with opened(archive, view) as fa:
        ids = fa.ids if ids is None else fa.check_ids(ids)
        K, D = ubm.n_components, ubm.n_features
        N, F = np.zeros((len(ids), K)), np.zeros((len(ids), K, D))
        lo = 0
        with progress_bar(len(ids), desc="statistics", unit="utt", progress=progress) as bar:
            for batch in _stat_batches(ubm, fa, ids, top_c):
                hi = lo + len(batch)
                N[lo:hi], F[lo:hi] = batch.N, batch.F
                lo = hi
                bar.update(len(batch))
        return BWStats(list(ids), N, F, _ubm_id(ubm), [fa.speakers[u] for u in ids], [fa.labels[u] for u in ids])


def _stat_batches(ubm: DiagGMM, fa, ids, top_c):
    """The statistics of ``ids`` of the open archive ``fa``, one :class:`BWStats` per batch of utterances
    (at most BATCH_FRAMES frames or BATCH_UTTS utterances, one planned read and one product each)."""
    K, D = ubm.n_components, ubm.n_features
    if fa.n_features != D:
        raise DataError(f"{fa.path}: frames have {fa.n_features} features, the UBM {D}")
    means, uid = ubm.means.astype(np.float64), _ubm_id(ubm)
    frames = max(1, min(BATCH_FRAMES, BATCH_BYTES // (12 * K)))
    for lo, hi in _batches([fa.n_frames[u] for u in ids], frames, BATCH_UTTS):
        batch = ids[lo:hi]
        N, F = np.zeros((len(batch), K)), np.zeros((len(batch), K, D))
        X = fa.frames(batch)
        if len(X):
            G = ubm.log_joint(X.astype(ubm.dtype, copy=False))
            log_normalize(G)
            if top_c is not None and top_c < K:
                _keep_top(G, top_c)
            G = G.astype(np.float64)
            X = X.astype(np.float64)
            row = 0
            for i, u in enumerate(batch):
                n = fa.n_frames[u]
                if n:
                    g = G[row:row + n]
                    N[i] = g.sum(0)
                    F[i] = g.T @ X[row:row + n]
                row += n
        F -= N[:, :, None] * means[None]
        yield BWStats(list(batch), N, F, uid, [fa.speakers[u] for u in batch], [fa.labels[u] for u in batch])


class StatsStream:
    """The statistics of an archive's utterances, computed again batch by batch on every pass.

    What :func:`train_extractor` and :meth:`IvectorExtractor.extract` take instead of a :class:`BWStats`
    when all utterances' statistics (U x K x D float64) would not fit in memory: memory is then one
    batch's, whatever the number of utterances, for one E-step over the frames per pass.

    Examples
    --------
    ::

        stream = StatsStream(ubm, "train.h5")          # nothing computed yet
        extractor = train_extractor(ubm, stream, 400)  # each iteration reads the archive once
    """

    def __init__(self, ubm: DiagGMM, archive, ids=None, *, top_c: int | None = None, view=None):
        with opened(archive, view) as fa:
            self.ids = fa.ids if ids is None else fa.check_ids(ids)
            self.path, self.view = fa.path, fa.config  # a raw archive is read with this view every time
        self.ubm, self.top_c, self.ubm_id = ubm, top_c, _ubm_id(ubm)

    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self):
        with opened(self.path, self.view) as fa:
            yield from _stat_batches(self.ubm, fa, self.ids, self.top_c)

    def take(self, index) -> BWStats:
        """The statistics of the utterances at positions ``index``, in memory."""
        return utterance_stats(self.ubm, self.path, [self.ids[i] for i in np.asarray(index)], top_c=self.top_c,
                               view=self.view)


def _keep_top(G: np.ndarray, c: int) -> None:
    """Zero all but each row's ``c`` largest posteriors and renormalise, in place."""
    cut = np.partition(G, G.shape[1] - c, axis=1)[:, G.shape[1] - c:G.shape[1] - c + 1]
    G[G < cut] = 0
    G /= G.sum(1, keepdims=True)


def _batches(sizes, limit: int, most: int):
    """``(start, stop)`` ranges of at most ``most`` consecutive items whose sizes add up to at most ``limit``
    (at least one item each)."""
    start, total = 0, 0
    for i, n in enumerate(sizes):
        if i > start and (total + n > limit or i - start >= most):
            yield start, i
            start, total = i, 0
        total += n
    if start < len(sizes):
        yield start, len(sizes)
