"""Sufficient statistics of diagonal and full GMMs, and the E-step that gathers them.

:class:`Stats` holds the zeroth, first and second-order sums of a pass over frames, in float64, about a
reference point (``shift``).  Statistics add (``a + b``), so chunks, files, processes and machines all merge the
same way; every update in :mod:`acoustic_gmm.gmm` only ever sees a :class:`Stats` (Kaldi's ``AccumDiagGmm``).
:meth:`Stats.from_posteriors` builds them from frames and given responsibilities (hard labels, one component);
:func:`accumulate` from a model's own responsibilities: the E-step, a chunk of frames at a time on a thread pool,
with the fused float32 kernels of ``_kernels``.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from ..errors import DataError, ParameterError
from ._model import DiagGMM, default_chunk, log_normalize
from ._sources import RemoteEStep, as_frames

__all__ = ["global_mean_var", "Stats", "accumulate", "global_stats", "ordered_map"]


READ_CHUNKS = 8  # E-step chunks read from a frame source at once


# --------------------------------------------------------------------------- statistics

@dataclass
class Stats:
    """Sufficient statistics of a mixture, about a reference point ``shift``.

    ``occ[k] = sum_t g_tk``, ``sum_x[k] = sum_t g_tk (x_t - shift)``, and ``sum_xx[k]`` is
    ``sum_t g_tk (x_t - shift)^2`` (diagonal, (n_components, n_features)) or the outer-product
    sum (full, (n_components, n_features, n_features)).  Sums about a shift near the data keep the second-order
    terms free of cancellation.  ``loglik`` is the total log-likelihood of the pass.

    Examples
    --------
    >>> import numpy as np
    >>> g = DiagGMM([1.0], [[0.0, 0.0]], [[1.0, 1.0]])
    >>> X = np.random.default_rng(0).normal(size=(100, 2))
    >>> s = accumulate(g, X[:50]) + accumulate(g, X[50:])
    >>> s.n_frames, float(s.occ[0])
    (100, 100.0)
    """

    shift: np.ndarray
    occ: np.ndarray
    sum_x: np.ndarray
    sum_xx: np.ndarray
    loglik: float = 0.0
    n_frames: int = 0
    covariance_type: str = field(default="diag")

    @classmethod
    def zeros(cls, n_components: int, shift: np.ndarray, covariance_type: str = "diag") -> "Stats":
        K, D = n_components, len(shift)
        second = (K, D) if covariance_type == "diag" else (K, D, D)
        return cls(np.asarray(shift, dtype=np.float64).copy(), np.zeros(K), np.zeros((K, D)),
                   np.zeros(second), 0.0, 0, covariance_type)

    @classmethod
    def from_posteriors(cls, X: np.ndarray, resp: np.ndarray | None = None, *, shift: np.ndarray | None = None,
                        covariance_type: str = "diag") -> "Stats":
        """Statistics of frames ``X`` (n_frames, n_features) with responsibilities ``resp`` (n_frames, K).

        ``resp=None`` gives every frame to one component (global statistics).  ``shift`` is the
        reference point of the sums (default: the frames' mean).

        Examples
        --------
        >>> import numpy as np
        >>> X = np.array([[0.0], [2.0], [10.0]])
        >>> s = Stats.from_posteriors(X, np.array([[1.0, 0], [1, 0], [0, 1]]))
        >>> s.occ.tolist(), (s.sum_x / s.occ[:, None] + s.shift).ravel().tolist()
        ([2.0, 1.0], [1.0, 10.0])
        """
        Y = np.asarray(X, dtype=np.float64)
        shift = Y.mean(0) if shift is None else np.asarray(shift, dtype=np.float64)
        Y = Y - shift
        if resp is None:
            occ, sum_x = np.array([float(len(Y))]), Y.sum(0)[None]
            sum_xx = ((Y * Y).sum(0) if covariance_type == "diag" else Y.T @ Y)[None]
        else:
            occ, sum_x = resp.sum(0), resp.T @ Y
            sum_xx = resp.T @ (Y * Y) if covariance_type == "diag" else np.einsum("nk,ni,nj->kij", resp, Y, Y)
        return cls(shift.copy(), occ, sum_x, sum_xx, 0.0, len(Y), covariance_type)

    @property
    def means(self) -> np.ndarray:
        """Each component's mean of the frames, (n_components, n_features); an empty one gets ``shift``."""
        return self.sum_x / np.maximum(self.occ, 1e-10)[:, None] + self.shift

    def reshifted(self, shift: np.ndarray) -> "Stats":
        """The same statistics expressed about another reference point."""
        d = self.shift - shift  # x - shift = (x - self.shift) + d
        sum_x = self.sum_x + self.occ[:, None] * d
        if self.covariance_type == "diag":
            sum_xx = self.sum_xx + 2 * d * self.sum_x + self.occ[:, None] * d * d
        else:
            cross = np.einsum("ki,j->kij", self.sum_x, d)
            sum_xx = (self.sum_xx + cross + cross.transpose(0, 2, 1)
                      + self.occ[:, None, None] * np.outer(d, d))
        return Stats(np.array(shift, dtype=np.float64), self.occ.copy(), sum_x, sum_xx,
                     self.loglik, self.n_frames, self.covariance_type)

    def __add__(self, other: "Stats") -> "Stats":
        if self.sum_xx.shape != other.sum_xx.shape:
            raise ParameterError(f"cannot add statistics of shapes {self.sum_xx.shape} and {other.sum_xx.shape}")
        if not np.array_equal(self.shift, other.shift):
            other = other.reshifted(self.shift)
        return Stats(self.shift.copy(), self.occ + other.occ, self.sum_x + other.sum_x,
                     self.sum_xx + other.sum_xx, self.loglik + other.loglik,
                     self.n_frames + other.n_frames, self.covariance_type)

    @property
    def avg_loglik(self) -> float:
        return self.loglik / max(self.n_frames, 1)


def global_stats(X, covariance_type: str = "diag", *, chunk: int = 65536) -> Stats:
    """One-component statistics of all frames (every frame with responsibility 1), streamed in blocks."""
    source = as_frames(X)
    shift = np.asarray(next(source.iter_chunks(4096)), dtype=np.float64).mean(0)
    acc = Stats.zeros(1, shift, covariance_type)
    for block in source.iter_chunks(chunk):
        acc = acc + Stats.from_posteriors(block, shift=shift, covariance_type=covariance_type)
    return acc


_BLAS = None


def one_blas_thread():
    """A context in which BLAS runs single-threaded: our threads over chunks use the cores instead."""
    global _BLAS
    if _BLAS is None:
        from threadpoolctl import ThreadpoolController

        _BLAS = ThreadpoolController()
    return _BLAS.limit(limits=1, user_api="blas")


_SCRATCH = threading.local()


def _scratch(name: str, shape: tuple) -> np.ndarray:
    """A float32 work array of this thread, reused from chunk to chunk.  A fresh (n, K) block per chunk is a
    fresh mmap wherever malloc returns memory eagerly (Dask's workers set MALLOC_TRIM_THRESHOLD_): its page
    faults made a worker's E-step 1.6x slower than the same process outside Dask."""
    buf = getattr(_SCRATCH, name, None)
    if buf is None or buf.shape[0] < shape[0] or buf.shape[1:] != shape[1:]:
        buf = np.empty((max(shape[0], 0 if buf is None else buf.shape[0]),) + shape[1:], np.float32)
        setattr(_SCRATCH, name, buf)
    return buf[:shape[0]]


def _expanded(model: DiagGMM, block) -> np.ndarray:
    """``[x - c, (x - c)^2, 1]`` (n, 2D + 1) float32 of a chunk, in this thread's scratch array (``_kernels``)."""
    from ._kernels import expand

    n, D = block.shape
    E = _scratch("E", (n, 2 * D + 1))
    expand(block, model.offset.astype(np.float32), E)
    return E


def _diag_chunk(model: DiagGMM, block, select_into=None):
    """E-step of one chunk: (log-likelihood, occupancies (K,), first and second-order sums (K, 2D)).

    Folds the constants into the product against ``[y, y^2, 1]`` and never normalises the block of
    responsibilities: their 1 / sum scales the (n, 2D) block instead, a third of the work at K = 256.  In
    float32 (the fast path) the (n, K) layout makes the first product fastest, and everything between the two
    products is one fused pass per frame (``_kernels``).  ``select_into`` (n, C) int32, if given, gets each
    frame's C most likely components (Gaussian selection, on the block of log-densities already there).
    """
    n, D = block.shape
    if model.dtype == np.float32:
        from ._kernels import posteriors_and_scale

        E = _expanded(model, block)
        L = np.matmul(E, model._proj1, out=_scratch("L", (n, model.n_components)))  # log w_k + log N(x | k)
        if select_into is not None:
            from ._kernels import top_components

            top_components(L, select_into)
        top, total, occ = (np.empty(len(L), np.float32), np.empty(len(L), np.float32),
                           np.zeros(L.shape[1], np.float32))
        posteriors_and_scale(L, E, 2 * D, top, total, occ)
        # (2D, K) rather than (K, 2D): OpenBLAS runs this orientation ~8 % faster here
        S = (E[:, :2 * D].T @ L).T
    else:  # numpy, in the (K, n) layout where its per-frame reductions run along contiguous rows
        E = model.expand(block, ones=True)
        L = model._proj1.T @ E.T
        top = L.max(0)
        L -= top
        np.exp(L, out=L)
        total = L.sum(0)
        inv = 1 / total
        occ = L @ inv
        E[:, :2 * D] *= inv[:, None]
        S = L @ E[:, :2 * D]
    loglik = float((top.astype(np.float64) + np.log(total, dtype=np.float64)).sum())
    return loglik, occ.astype(np.float64), S


def ordered_map(calls, *, threads: int, ahead: int):
    """``fn(*args)`` for every ``(fn, *args)`` of ``calls``, yielded in their order, computed on ``threads``
    threads (the caller's own when 1) with BLAS on one thread, at most ``ahead`` calls in flight before the
    oldest is waited for.  ``calls`` is drawn by the caller's thread (reading the next blocks while the others
    compute); no thread waits for the others at a barrier.  The E-steps of the mixtures and of the i-vector
    extractor run on it."""
    pending = deque()
    with one_blas_thread(), (ThreadPoolExecutor(threads) if threads > 1 else _InThisThread()) as pool:
        for call in calls:
            pending.append(pool.submit(*call))
            if len(pending) > ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


class _InThisThread:
    """An executor of one thread that is the caller's: each chunk is read, then computed, in turn.  A Dask worker
    runs the E-step of its shard with one thread; a reading thread beside it made two worker processes four busy
    threads on two cores, each E-step 15 % slower than a core of one process."""

    class _Done:
        def __init__(self, value):
            self.value = value

        def result(self):
            return self.value

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def submit(self, fn, *args):
        return self._Done(fn(*args))


def _selected_chunk(model: DiagGMM, projT: np.ndarray, block, rows: np.ndarray):
    """:func:`_diag_chunk` over each frame's selected components only (``_kernels.selected_estep``)."""
    from ._kernels import selected_estep

    D = block.shape[1]
    E = _expanded(model, block)
    occ, S = np.zeros(model.n_components), np.zeros((model.n_components, 2 * D))
    loglik = selected_estep(E, np.ascontiguousarray(rows, dtype=np.int32), projT, occ, S)
    return float(loglik), occ, S


def accumulate(model, X, *, chunk: int | None = None, threads: int | None = None,
               selection: np.ndarray | None = None, select_into: np.ndarray | None = None) -> Stats:
    """E-step over ``X`` (any sliceable 2-D array of frames): statistics and log-likelihood.

    Diagonal models use the expanded block ``E = [x - c, (x - c)^2, 1]`` twice: one product
    gives the log-densities, another the first and second-order sums.  Arithmetic is in
    ``model.dtype``; sums are added up in float64, chunk by chunk in order, so the result
    is the same whatever ``threads`` (default: all cores) is.

    Gaussian selection (float32 diagonal models): ``select_into`` (n_frames, C) int32 receives each frame's C
    most likely components during this (exact) E-step; given back as ``selection``, a later E-step visits only
    those (:func:`_selected_chunk`): responsibilities over the C, the log-likelihood theirs.
    """
    chunk = chunk or default_chunk(model.n_components)
    K, D = model.n_components, model.n_features
    if isinstance(X, RemoteEStep):  # a source that runs its own E-step, e.g. on a Dask cluster
        return X.accumulate(model, chunk)
    source = as_frames(X)
    if isinstance(model, DiagGMM):
        acc = Stats.zeros(K, model.offset, "diag")
        threads = max(1, threads or len(os.sched_getaffinity(0)))

        for given in (selection, select_into):
            if given is not None and (model.dtype != np.float32 or given.shape[0] != source.n_frames_total):
                raise ParameterError(f"a selection of {given.shape[0]} frames for a {np.dtype(model.dtype).name} "
                                     f"model and {source.n_frames_total} frames: it is for float32 models and "
                                     f"one row a frame")
        if selection is not None:
            projT = np.ascontiguousarray(model._proj1.T)

        # The source is read READ_CHUNKS chunks at a time (fewer, larger reads from an archive) by this thread
        # while the others compute, at most 2 chunks a thread ahead; the chunks, and so the sums, are the same
        # either way.  An archive hands out views of its mapped file, or where it cannot, fills a ring of
        # buffers; a block comes round again once the window has moved past every chunk cut from it, so a ring
        # of this size is never overwritten in use.  Views cost nothing, so their blocks are one chunk each: a
        # block the archive must copy (one across a break in the file's layout) is then only a chunk.
        if getattr(source, "reuses_buffers", False):
            blocks = source.iter_chunks(chunk, reuse=2 * threads + 1)
        else:
            blocks = source.iter_chunks(chunk * READ_CHUNKS)

        def calls():
            for big in blocks:
                for start in range(0, len(big), chunk):
                    block = big[start:start + chunk]
                    rows = slice(acc.n_frames, acc.n_frames + len(block))
                    acc.n_frames += len(block)
                    if selection is not None:
                        yield _selected_chunk, model, projT, block, selection[rows]
                    else:
                        yield _diag_chunk, model, block, None if select_into is None else select_into[rows]

        for loglik, occ, S in ordered_map(calls(), threads=threads, ahead=2 * threads):
            acc.loglik += loglik
            acc.occ += occ
            acc.sum_x += S[:, :D]
            acc.sum_xx += S[:, D:]
        return acc
    acc = Stats.zeros(K, model.centre, "full")
    for block in source.iter_chunks(chunk):
        L = model.log_joint(block)
        acc.loglik += float(log_normalize(L).sum())
        G = L.astype(np.float64)
        Y = np.asarray(block, dtype=np.float64) - acc.shift
        acc.occ += G.sum(0)
        acc.sum_x += G.T @ Y
        for k in range(K):
            acc.sum_xx[k] += (Y * G[:, k:k + 1]).T @ Y
        acc.n_frames += len(block)
    return acc


def global_mean_var(glob: Stats) -> tuple[np.ndarray, np.ndarray]:
    """The mean and (diagonal) variance of one-component statistics, refusing a constant feature dimension.

    A dimension whose variance is zero (to 1e-12 of its squared mean) would make every variance floor zero and
    every likelihood infinite: every trainer of the package checks its frames here first.

    Examples
    --------
    >>> import numpy as np
    >>> mean, var = global_mean_var(global_stats(np.array([[0.0, 1.0], [2.0, 1.0]])))
    Traceback (most recent call last):
    ...
    acoustic_gmm.errors.DataError: feature dimension(s) [1] are constant over all 2 frames (zero variance); drop them before fitting
    """
    n, mean_c = glob.occ[0], glob.sum_x[0] / glob.occ[0]
    second = glob.sum_xx[0] if glob.covariance_type == "diag" else np.diag(glob.sum_xx[0])
    var = second / n - mean_c ** 2
    constant = np.flatnonzero(var <= 1e-12 * np.maximum(1.0, (mean_c + glob.shift) ** 2))
    if len(constant):
        raise DataError(f"feature dimension(s) {constant.tolist()[:10]} are constant over all "
                        f"{glob.n_frames} frames (zero variance); drop them before fitting")
    return mean_c + glob.shift, var
