"""Training Gaussian mixtures: sufficient statistics, EM, MAP, splitting and initialisation.

The pieces, each usable on its own (Kaldi's ``AccumDiagGmm``, ``MleDiagGmmUpdate`` and
``MapDiagGmmUpdate``):

* :class:`Stats` -- zeroth, first and second-order sums of a pass over frames, in float64.
  Statistics add (``a + b``), so chunks, files, processes and machines all merge the same
  way; every update only ever sees a :class:`Stats`.  :meth:`Stats.from_posteriors` builds
  them from frames and given responsibilities (hard labels, a single component);
  :func:`accumulate` from a model's own responsibilities (the E-step).
* :func:`m_step` -- maximum-likelihood parameters from a Stats, with a variance floor.
* :func:`map_update` -- maximum a posteriori parameters from a Stats and a prior model
  (Reynolds' relevance-factor MAP: speaker enrolment and speaker adaptation both use it).
* :func:`split_heaviest` -- HTK-style mix-up: grow a model by splitting its heaviest
  components, means moved +-0.2 standard deviations, weight halved.
* :func:`kmeans_init`, :func:`random_init` -- the other starting points.
* :func:`train` -- the whole schedule: grow 1 -> 2 -> 4 ... -> K with a few EM iterations
  after each growth step, then EM to convergence.

Frames come as an array or any :class:`~acoustic_gmm.frames.FrameSource` (a feature archive
streamed from disk, a Dask cluster); nothing here reads files.
"""

from __future__ import annotations

import os
import time
import warnings
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from .errors import ComponentWarning, DataError, ParameterError
from .frames import RemoteEStep, as_frames
from .gmm import DiagGMM, FullGMM, default_chunk, log_normalize, make_model

__all__ = ["Stats", "accumulate", "global_stats", "m_step", "map_update", "em_step", "variance_floor",
           "split_heaviest", "growth_schedule", "kmeans_init", "random_init", "History", "run_em", "train",
           "TrainState", "MAP_UPDATES"]

ABS_VAR_FLOOR = 1e-10  # below any real feature's variance; only guards against exact zeros
MAX_OCCUPANCY_FLOOR = 10.0  # Kaldi's min-gaussian-occupancy for a diagonal Gaussian
MAP_UPDATES = ("m", "mw", "mwv")  # what MAP moves: means, and weights, and variances
READ_CHUNKS = 8  # E-step chunks read from a frame source at once
# train(checkpoint=...): within a stage, the state is saved at most this often (and always at the stage's
# end).  Saving every iteration cost ~6 ms each, a quarter of a small fit (FSDD, K = 64); a kill now
# loses at most this much work.
CHECKPOINT_SECONDS = 30.0
# Growth factor of over-relaxed EM's step (run_em).  Measured on real corpora to convergence (tol 1e-3):
# FSDD K=64 51 -> 30 iterations at full size, 16 kHz corpus K=128 69 -> 28 (1.5); 2.0 did no better.
OVERRELAX = 1.5


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


def _one_blas_thread():
    """A context in which BLAS runs single-threaded: our threads over chunks use the cores instead."""
    global _BLAS
    if _BLAS is None:
        from threadpoolctl import ThreadpoolController

        _BLAS = ThreadpoolController()
    return _BLAS.limit(limits=1, user_api="blas")


def _diag_chunk(model: DiagGMM, block):
    """E-step of one chunk: (log-likelihood, occupancies (K,), first and second-order sums (K, 2D)).

    Folds the constants into the product against ``[y, y^2, 1]`` and never normalises the block of
    responsibilities: their 1 / sum scales the (n, 2D) block instead, a third of the work at K = 256.  In
    float32 (the fast path) the (n, K) layout makes the first product fastest, and everything between the two
    products is one fused pass per frame (``kernels.py``).
    """
    n, D = block.shape
    if model.dtype == np.float32:
        from . import kernels

        E = np.empty((n, 2 * D + 1), np.float32)
        kernels.expand(block, model.offset.astype(np.float32), E)
        L = E @ model._proj1                      # (n, K): log w_k + log N(x | k)
        top, total, occ = (np.empty(len(L), np.float32), np.empty(len(L), np.float32),
                           np.zeros(L.shape[1], np.float32))
        kernels.posteriors_and_scale(L, E, 2 * D, top, total, occ)
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


def accumulate(model, X, *, chunk: int | None = None, threads: int | None = None) -> Stats:
    """E-step over ``X`` (any sliceable 2-D array of frames): statistics and log-likelihood.

    Diagonal models use the expanded block ``E = [x - c, (x - c)^2, 1]`` twice: one product
    gives the log-densities, another the first and second-order sums.  Arithmetic is in
    ``model.dtype``; sums are added up in float64, chunk by chunk in order, so the result
    is the same whatever ``threads`` (default: all cores) is.
    """
    chunk = chunk or default_chunk(model.n_components)
    K, D = model.n_components, model.n_features
    if isinstance(X, RemoteEStep):  # a source that runs its own E-step, e.g. on a Dask cluster
        return X.accumulate(model, chunk)
    source = as_frames(X)
    if isinstance(model, DiagGMM):
        acc = Stats.zeros(K, model.offset, "diag")
        threads = max(1, threads or len(os.sched_getaffinity(0)))

        def add(job):
            loglik, occ, S = job.result()
            acc.loglik += loglik
            acc.occ += occ
            acc.sum_x += S[:, :D]
            acc.sum_xx += S[:, D:]

        with _one_blas_thread(), ThreadPoolExecutor(threads) as pool:
            # A sliding window of chunks in flight, added in order: no thread waits for the others at a
            # barrier, and a streaming source is never read more than 2 chunks per thread ahead.
            # The source is read READ_CHUNKS chunks at a time (fewer, larger reads from an archive) by this
            # thread while the pool computes; the chunks, and so the sums, are the same either way.
            pending = deque()
            # An archive hands out views of its mapped file, or where it cannot, fills a ring of buffers; a
            # block comes round again once the window has moved past every chunk cut from it, so a ring of
            # this size is never overwritten in use.  Views cost nothing, so their blocks are one chunk each:
            # a block the archive must copy (one across a break in the file's layout) is then only a chunk.
            if getattr(source, "reuses_buffers", False):
                blocks = source.iter_chunks(chunk, reuse=2 * threads + 1)
            else:
                blocks = source.iter_chunks(chunk * READ_CHUNKS)
            for big in blocks:
                for start in range(0, len(big), chunk):
                    block = big[start:start + chunk]
                    pending.append(pool.submit(_diag_chunk, model, block))
                    acc.n_frames += len(block)
                    if len(pending) > 2 * threads:
                        add(pending.popleft())
            while pending:
                add(pending.popleft())
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


# --------------------------------------------------------------------------- M-step

def variance_floor(global_var: np.ndarray, var_floor: float) -> np.ndarray:
    """Per-dimension floor: ``var_floor`` times the global variance, never below 1e-10."""
    return np.maximum(var_floor * np.asarray(global_var, dtype=np.float64), ABS_VAR_FLOOR)


def m_step(stats: Stats, *, floor: np.ndarray, dtype="float32", keep: np.ndarray | None = None):
    """Maximum-likelihood parameters from statistics; ``keep`` selects surviving components.

    Diagonal variances are clipped at ``floor``; full covariances have the eigenvalues of
    their globally-standardised form clipped at the same relative floor.
    """
    occ, sum_x, sum_xx = stats.occ, stats.sum_x, stats.sum_xx
    if keep is not None:
        occ, sum_x, sum_xx = occ[keep], sum_x[keep], sum_xx[keep]
    weights = occ / occ.sum()
    mean_c = sum_x / occ[:, None]
    means = mean_c + stats.shift
    if stats.covariance_type == "diag":
        var = sum_xx / occ[:, None] - mean_c * mean_c
        return DiagGMM(weights, means, np.maximum(var, floor), dtype=dtype)
    cov = sum_xx / occ[:, None, None] - np.einsum("ki,kj->kij", mean_c, mean_c)
    return FullGMM(weights, means, _floor_covariances(cov, floor), dtype=dtype)


def map_update(stats: Stats, prior: DiagGMM, *, relevance: float = 16.0, update: str = "m") -> DiagGMM:
    """Maximum a posteriori parameters from statistics and a prior model (Reynolds et al., 2000).

    Each component moves from the prior towards its statistics by ``alpha = n / (n + relevance)``,
    ``n`` its occupancy: means always, weights with ``update`` ``"mw"``, variances with ``"mwv"``
    (through the second moment, floored at 1 % of the prior's smallest variance per feature).
    ``relevance = inf`` returns the prior; ``relevance = 0`` the maximum-likelihood estimate under
    the prior's responsibilities.

    Parameters
    ----------
    stats : Stats
        Diagonal statistics, (n_components, n_features), of the adaptation frames under ``prior``.
    prior : DiagGMM
        The model adapted (a UBM, or a class model).

    Examples
    --------
    >>> import numpy as np
    >>> prior = DiagGMM([1.0], [[0.0]], [[1.0]], dtype="float64")
    >>> s = accumulate(prior, np.full((16, 1), 2.0))          # 16 frames at 2.0
    >>> map_update(s, prior, relevance=16.0).means.tolist()   # halfway: n = r
    [[1.0]]
    """
    if update not in MAP_UPDATES:
        raise ParameterError(f"adapt must be one of {list(MAP_UPDATES)}, got {update!r}")
    if not relevance >= 0:
        raise ParameterError(f"relevance must be >= 0, got {relevance!r}")
    n = stats.occ
    safe = np.maximum(n, 1e-10)[:, None]
    alpha = (n / (n + relevance))[:, None] if np.isfinite(relevance) else np.zeros((len(n), 1))
    means = alpha * (stats.sum_x / safe + stats.shift) + (1 - alpha) * prior.means
    weights, variances = prior.weights, prior.variances
    if "w" in update:
        w = alpha[:, 0] * n / stats.n_frames + (1 - alpha[:, 0]) * prior.weights
        weights = w / w.sum()
    if "v" in update:
        ex2 = stats.sum_xx / safe + 2 * stats.shift * (stats.sum_x / safe) + stats.shift ** 2  # E[x^2]
        var = alpha * ex2 + (1 - alpha) * (prior.variances + prior.means ** 2) - means ** 2
        variances = np.maximum(var, prior.variances.min(0) * 1e-2)
    return DiagGMM(weights, means, variances, dtype=prior.dtype)


def _floor_covariances(cov: np.ndarray, floor: np.ndarray) -> np.ndarray:
    """Clip eigenvalues of ``S^-1/2 C S^-1/2`` at 1, with ``S = diag(floor)``."""
    scale = np.sqrt(floor)
    C = cov / np.multiply.outer(scale, scale)
    C = 0.5 * (C + C.transpose(0, 2, 1))
    vals, vecs = np.linalg.eigh(C)
    C = np.einsum("kij,kj,klj->kil", vecs, np.maximum(vals, 1.0), vecs)
    return C * np.multiply.outer(scale, scale)


def em_step(model, X, *, floor: np.ndarray | None = None, chunk: int | None = None):
    """One EM iteration from ``model`` on frames ``X``; returns ``(new_model, stats)``.

    With ``floor=None`` no variance floor beyond 1e-10 is applied (the textbook update).
    """
    stats = accumulate(model, X, chunk=chunk)
    floor = np.full(model.n_features, ABS_VAR_FLOOR) if floor is None else floor
    return m_step(stats, floor=floor, dtype=model.dtype), stats


# --------------------------------------------------------------------------- growing

def split_heaviest(model, n_components: int, *, perturb: float = 0.2):
    """Grow ``model`` to ``n_components`` by repeatedly splitting the heaviest component.

    HTK's mix-up: the chosen component's weight is halved between two copies whose means
    sit at ``mean +- perturb`` standard deviations; covariances are copied.  Diagonal
    components move in every dimension at once, as HTK does; full ones move along their
    principal axis, the direction a full covariance says the cluster is longest in.
    """
    w, mu, cov = list(model.weights), list(model.means), list(model.covariances)
    while len(w) < n_components:
        k = int(np.argmax(w))
        if cov[k].ndim == 1:
            step = perturb * np.sqrt(cov[k])
        else:
            vals, vecs = np.linalg.eigh(cov[k])
            step = perturb * np.sqrt(vals[-1]) * vecs[:, -1]
        w[k] *= 0.5
        w.append(w[k])
        mu.append(mu[k] + step)
        mu[k] = mu[k] - step
        cov.append(cov[k].copy())
    return type(model)(np.array(w), np.array(mu), np.array(cov), dtype=model.dtype)


def growth_schedule(n_components: int, *, schedule=None) -> list[int]:
    """Sizes to grow through, ending at ``n_components``: 1, 2, 4, ... doubling by default."""
    if schedule is None:
        sizes, k = [], 1
        while k < n_components:
            sizes.append(k)
            k *= 2
        return sizes + [n_components]
    sizes = [int(s) for s in schedule]
    if any(b <= a for a, b in zip(sizes, sizes[1:])) or not sizes or sizes[0] < 1:
        raise ParameterError(f"split schedule must be increasing positive sizes, got {list(schedule)}")
    if sizes[-1] > n_components:
        raise ParameterError(f"split schedule {sizes} goes past n_components={n_components}")
    return sizes + ([n_components] if sizes[-1] != n_components else [])


# --------------------------------------------------------------------------- initialisation

def _sample_rows(X, n: int, rng) -> np.ndarray:
    source = as_frames(X)
    total = source.n_frames_total
    idx = np.arange(total) if total <= n else np.sort(rng.choice(total, size=n, replace=False))
    return np.asarray(source.rows(idx), dtype=np.float64)


KMEANS_TOL = 1e-4  # Lloyd stops when the centres' total squared move falls below this x the mean feature variance
KMEANS_CHUNK = 4096  # frames per block (task) of the assignment step: (4096, K) float32 scores
KMEANS_SEED_CHUNK = 8192  # frames per block of a seeding step; a candidate is drawn by block, then within one


def _kmeanspp(Z: np.ndarray, ZaT: np.ndarray, n_components: int, rng, pool) -> np.ndarray:
    """Greedy k-means++ seeding: indices of ``n_components`` frames to start Lloyd from.

    Each step draws ``2 + log K`` candidates with probability proportional to their squared
    distance to the nearest centre so far, and keeps the one that lowers the total the most
    (Arthur & Vassilvitskii, 2007; scikit-learn's variant).  All candidates are scored in one
    float32 product against the frames, block by block on ``pool`` (single-threaded BLAS):
    ``[-2 c, 1, |c|^2] @ [z, |z|^2, 1]^T = |z - c|^2``.  Totals are summed in float64, block by
    block in order, so the thread count changes nothing.

    Parameters
    ----------
    Z : ndarray
        Frames, (n, D), float32.
    ZaT : ndarray
        The same frames transposed with two rows appended, ``|z|^2`` and ones: (D + 2, n), float32.
    n_components : int
        Number of centres.
    rng : numpy.random.Generator
    pool : concurrent.futures.Executor
    """
    n, D = Z.shape
    z2 = ZaT[D]
    n_cand = 2 + int(np.log(n_components))
    rows = -(-n_cand // 8) * 8  # padded with repeats: OpenBLAS runs 8 rows faster than 7
    dist = np.empty((rows, n), dtype=np.float32)
    starts = range(0, n, KMEANS_SEED_CHUNK)

    def totals(idx, d2):
        """Per block, the total of ``min(d2, |z - c|^2)`` for each frame ``c`` in ``idx``; minima into ``dist``."""
        idx = np.resize(idx, rows)
        A = np.empty((rows, D + 2), dtype=np.float32)
        A[:, :D], A[:, D], A[:, D + 1] = -2 * Z[idx], 1.0, z2[idx]

        def block(start):
            s = slice(start, start + KMEANS_SEED_CHUNK)
            d = np.matmul(A, ZaT[:, s], out=dist[:, s])
            np.minimum(d, d2[s], out=d)
            return d.sum(1, dtype=np.float64)

        return np.array(list(pool.map(block, starts)))

    def draw(d2, block_totals):
        """Frames drawn with probability ``d2 / sum(d2)``: a block by its total, then a frame within it.

        Same draws as ``rng.choice(n, p=d2 / d2.sum())`` (up to rounding) without a cumulative sum over
        all frames at every step.
        """
        cum = np.cumsum(block_totals)
        r = rng.random(n_cand) * cum[-1]
        picks = np.empty(n_cand, dtype=np.intp)
        for i, b in enumerate(np.minimum(np.searchsorted(cum, r, side="right"), len(starts) - 1)):
            s, e = starts[b], min(starts[b] + KMEANS_SEED_CHUNK, n)
            # side="right" skips frames at distance 0 (the centres themselves).
            j = np.searchsorted(np.cumsum(d2[s:e], dtype=np.float64), r[i] - (cum[b - 1] if b else 0.0), side="right")
            picks[i] = min(s + j, e - 1)
        return picks

    chosen = np.empty(n_components, dtype=np.intp)
    chosen[0] = rng.integers(n)
    block_totals = totals(chosen[:1], np.full(n, np.inf, dtype=np.float32))[:, 0]
    # Clipped at 0: rounding can take a frame's distance to itself below, and the draws need d2 >= 0.  The
    # totals keep those -1e-7 |z|^2 terms; they only ever shift a total by as little.
    d2 = np.maximum(dist[0], 0)
    for k in range(1, n_components):
        cand = draw(d2, block_totals)
        per_block = totals(cand, d2)
        best = per_block[:, :n_cand].sum(0).argmin()
        chosen[k], d2, block_totals = cand[best], np.maximum(dist[best], 0), per_block[:, best]
    return chosen


def _nearest(Z1: np.ndarray, C: np.ndarray, pool):
    """Nearest centre of each frame, and its score ``z.c - |c|^2 / 2`` (float32).

    ``Z1`` holds the frames with a column of ones appended, so that the product against
    ``[C, -|c|^2 / 2]`` gives the scores at once: ``|z|^2`` is the same for every centre and the
    argmax does not need it.  Blocks run on ``pool``; with single-threaded BLAS the labels do not
    depend on its number of threads.
    """
    n = len(Z1)
    A = np.empty((Z1.shape[1], len(C)), dtype=np.float32)
    A[:-1] = C.T
    A[-1] = -0.5 * np.einsum("ij,ij->i", C, C)
    labels = np.empty(n, dtype=np.intp)
    score = np.empty(n, dtype=np.float32)

    def block(start):
        stop = min(start + KMEANS_CHUNK, n)
        G = Z1[start:stop] @ A
        lab = G.argmax(1)
        labels[start:stop] = lab
        score[start:stop] = np.take_along_axis(G, lab[:, None], 1)[:, 0]

    list(pool.map(block, range(0, n, KMEANS_CHUNK)))
    return labels, score


def _label_sums(labels: np.ndarray, columns: np.ndarray, K: int) -> np.ndarray:
    """Per-label sums ``(K, len(columns))`` of each row of ``columns``, in float64."""
    return np.stack([np.bincount(labels, weights=col, minlength=K) for col in columns], axis=1)


def kmeans_init(X, n_components: int, *, floor: np.ndarray, covariance_type="diag", dtype="float32",
                rng=None, n_iter: int = 20, max_sample: int = 200_000):
    """k-means++ seeding, then Lloyd iterations; a mixture with one component per cluster.

    Runs on a random subsample of at most ``max_sample`` frames, on features scaled by the
    variance floor's square root so that no dimension dominates by its units.  Seeding and Lloyd
    both use the whole subsample: seeding on a smaller one (256 frames per component) cut the
    time by a third but, on 60-dim frames from 512 Gaussians at K = 256, ended EM 0.24 nats/frame
    lower.  Distances are computed in float32, sums in float64.  At K = 256 on 500,000 frames
    the whole initialisation costs a few EM iterations (``bench/bench_kmeans.py``).

    Parameters
    ----------
    X : array_like or FrameSource
        Frames, (n_frames, n_features).
    n_components : int
        Number of clusters, and of components of the returned model.
    floor : ndarray
        Per-feature variance floor, (n_features,); also the features' scale for the distances.
    covariance_type : {"diag", "full"}
        Covariance type of the returned model.
    dtype : str
        Arithmetic type of the returned model.
    rng : None, int or numpy.random.Generator
        Source of the subsamples and the seeding; a fixed seed gives the same model.
    n_iter : int
        Most Lloyd iterations.  They stop earlier once no frame changes cluster, or the centres'
        total squared move is below ``KMEANS_TOL`` times the mean variance of the scaled features.
        Empty clusters are moved to the frames farthest from their centres.
    max_sample : int
        Most frames used.

    Returns
    -------
    DiagGMM or FullGMM
        Weights from the cluster sizes, means and (floored) covariances of each cluster's frames.
    """
    K = n_components
    rng = np.random.default_rng(rng)
    Y = _sample_rows(X, max_sample, rng)
    (n, D), mean, inv_scale = Y.shape, Y.mean(0), 1 / np.sqrt(floor)
    # Centred, so that the float32 distances do not lose digits to a large common offset.  Built in
    # blocks: a fresh full-size temporary costs more in page faults than the arithmetic.
    Z1 = np.empty((n, D + 1), dtype=np.float32)
    Z1[:, D] = 1.0
    sum_sq = 0.0
    for start in range(0, n, KMEANS_CHUNK):
        B = (Y[start:start + KMEANS_CHUNK] - mean) * inv_scale
        sum_sq += float(np.einsum("ij,ij->", B, B))
        Z1[start:start + KMEANS_CHUNK, :D] = B
    Z = Z1[:, :D]
    ZaT = np.empty((D + 2, n), dtype=np.float32)  # for the seeding's products; its first D rows for np.bincount
    ZaT[:D] = Z.T
    np.einsum("ij,ij->i", Z, Z, out=ZaT[D])
    ZaT[D + 1] = 1.0
    Zt = ZaT[:D]

    with _one_blas_thread(), ThreadPoolExecutor(len(os.sched_getaffinity(0))) as pool:
        C = Zt[:, _kmeanspp(Z, ZaT, K, rng, pool)].T.astype(np.float64)
        labels, score = _nearest(Z1, C, pool)
        C, labels = _lloyd(Z1, Zt, C, labels, score, n_iter=n_iter, tol=KMEANS_TOL * sum_sq / (n * D), pool=pool)
    return _model_from_labels(Y, labels, K, floor, covariance_type, dtype)


def _lloyd(Z1, Zt, C, labels, score, *, n_iter, tol, pool):
    """Lloyd iterations from centres ``C`` (float64) and their assignment; the last centres and labels.

    ``Z1`` is the frames with a column of ones (float32, for :func:`_nearest`), ``Zt`` the same frames
    transposed (for the per-cluster sums).
    """
    K, Z = len(C), Z1[:, :-1]
    for _ in range(n_iter):
        counts = np.bincount(labels, minlength=K)
        new = C.copy()
        full = counts > 0
        new[full] = _label_sums(labels, Zt, K)[full] / counts[full, None]
        empty = np.flatnonzero(~full)
        if len(empty):  # reseed empty clusters at the frames farthest from their centres
            d2 = np.einsum("ij,ij->i", Z, Z) - 2 * score
            far = np.argsort(d2)[::-1][:len(empty)]
            new[empty[:len(far)]] = Zt[:, far].T
        moved = ((new - C) ** 2).sum()
        C, previous = new, labels
        labels, score = _nearest(Z1, C, pool)
        # Unchanged labels would give the same centres again.
        if not len(empty) and (moved <= tol or np.array_equal(labels, previous)):
            break
    return C, labels


def _model_from_labels(Y, labels, K, floor, covariance_type, dtype):
    """Mixture with one component per label: weights from counts, means and covariances of the members.

    The statistics are what :meth:`Stats.from_posteriors` gives for one-hot responsibilities,
    gathered per label rather than through an (n, K) responsibility matrix (400 MB and two
    products at n = 200,000, K = 256).
    """
    shift = Y.mean(0)
    occ = np.bincount(labels, minlength=K).astype(np.float64)
    if covariance_type == "diag":
        stats = Stats.zeros(K, shift, "diag")
        for start in range(0, len(Y), KMEANS_CHUNK):  # in blocks: no full-size temporaries
            Bt = (Y[start:start + KMEANS_CHUNK] - shift).T.copy()
            lab = labels[start:start + KMEANS_CHUNK]
            stats.sum_x += _label_sums(lab, Bt, K)
            stats.sum_xx += _label_sums(lab, Bt * Bt, K)
    else:
        stats = Stats.zeros(K, shift, "full")
        order = np.argsort(labels, kind="stable")
        bounds = np.searchsorted(labels[order], np.arange(K + 1))
        for k in np.flatnonzero(occ):
            M = Y[order[bounds[k]:bounds[k + 1]]] - shift
            stats.sum_x[k], stats.sum_xx[k] = M.sum(0), M.T @ M
    stats.occ, stats.n_frames = occ, len(Y)
    stats.occ += 1e-10  # an empty cluster gets the shift as its mean rather than 0 / 0
    return m_step(stats, floor=floor, dtype=dtype)


def random_init(X, n_components: int, *, glob_model, dtype="float32", rng=None):
    """Means at ``n_components`` distinct random frames, the global covariance, equal weights."""
    rng = np.random.default_rng(rng)
    means = _sample_rows(X, n_components, rng)
    cov = np.repeat(glob_model.covariances, n_components, axis=0)
    return make_model(glob_model.covariance_type, np.full(n_components, 1.0 / n_components), means, cov, dtype)


# --------------------------------------------------------------------------- EM loop

@dataclass
class History:
    """Average per-frame log-likelihood after every EM iteration, and the size at the time."""

    loglik: list[float] = field(default_factory=list)
    n_components: list[int] = field(default_factory=list)


def min_occupancy(n_frames: int, n_components: int) -> float:
    """Occupancy below which a component is considered empty (Kaldi's 10, less on tiny data)."""
    return min(MAX_OCCUPANCY_FLOOR, 0.1 * n_frames / n_components)


def run_em(model, X, *, floor, n_iter: int, tol: float, history: History, chunk=None,
           stats: Stats | None = None, progress=None, min_iter: int = 0, overrelax: float = 1.0,
           start: int = 0, eta: float = 1.0, on_iteration=None):
    """Up to ``n_iter`` EM iterations; after ``min_iter``, stop once the per-frame gain is below ``tol``.

    ``stats`` may hold the E-step of ``model`` already done by the caller.  Returns
    ``(model, stats_of_model, converged)``; every iteration's log-likelihood (of the
    parameters it produced) is appended to ``history``.

    A run interrupted after iteration ``start`` continues from the model and statistics it had then,
    with ``start`` and the over-relaxation's ``eta`` at that point; it then makes the same iterations the
    uninterrupted run would.  ``on_iteration(model, stats, iteration, eta, converged)``, if given, is
    called after every iteration (before ``progress``) with what such a continuation needs
    (``iteration`` counts from the first of this run, ``converged`` says the run stops there).

    ``overrelax`` > 1 runs adaptive over-relaxed EM (Salakhutdinov & Roweis, ICML 2003) on a
    diagonal model: each update goes ``eta`` times as far as EM's, in log weights, means and log
    variances; ``eta`` grows by the factor ``overrelax`` after every such update that raises the
    likelihood, and one that does not is thrown away for the plain EM update (one E-step more),
    with ``eta`` back to 1.  The likelihood still rises at every iteration; EM's slow tail is
    crossed in fewer of them.  Full covariances always take plain EM steps.
    """
    if stats is None:
        stats = accumulate(model, X, chunk=chunk)
    K = model.n_components
    converged = False
    accelerate = overrelax > 1 and model.covariance_type == "diag"
    for it in range(start, n_iter):
        keep = stats.occ >= min_occupancy(stats.n_frames, K)
        if keep.all():
            new = m_step(stats, floor=floor, dtype=model.dtype)
        else:
            new = _replace_empty(stats, floor, model, keep)
            eta = 1.0  # components were replaced: the old and new models do not define a direction
        new_stats = None
        if accelerate and eta > 1:
            bold = _overrelaxed(model, new, eta, floor)
            bold_stats = accumulate(bold, X, chunk=chunk)
            if bold_stats.avg_loglik > stats.avg_loglik:
                new, new_stats = bold, bold_stats
                eta *= overrelax
            else:
                eta = 1.0
        elif accelerate:
            eta = overrelax
        if new_stats is None:
            new_stats = accumulate(new, X, chunk=chunk)
        gain = new_stats.avg_loglik - stats.avg_loglik
        model, stats = new, new_stats
        history.loglik.append(stats.avg_loglik)
        history.n_components.append(K)
        converged = it + 1 >= min_iter and abs(gain) < tol
        # Saved before progress is told: an iteration whose report fails (or is interrupted) is not lost.
        if on_iteration is not None:
            on_iteration(model, stats, it + 1, eta, converged)
        if progress is not None:
            progress(len(history.loglik), K, stats.avg_loglik)
        if converged:
            break
    return model, stats, converged


def _overrelaxed(old: DiagGMM, new: DiagGMM, eta: float, floor: np.ndarray) -> DiagGMM:
    """``old`` moved ``eta`` times the step from ``old`` to ``new``: log weights (renormalised), means,
    log variances (floored).  Log coordinates keep weights and variances positive at any ``eta``."""
    log_w = (1 - eta) * np.log(old.weights) + eta * np.log(new.weights)
    w = np.exp(log_w - log_w.max())
    means = old.means + eta * (new.means - old.means)
    log_var = (1 - eta) * np.log(old.variances) + eta * np.log(new.variances)
    return DiagGMM(w / w.sum(), means, np.maximum(np.exp(log_var), floor), dtype=old.dtype)


def _replace_empty(stats: Stats, floor, model, keep: np.ndarray):
    dead = np.flatnonzero(~keep)
    if keep.sum() == 0:
        raise DataError("every component lost its frames; the data cannot support this model")
    survivor = m_step(stats, floor=floor, dtype=model.dtype, keep=keep)
    grown = split_heaviest(survivor, model.n_components)
    total = stats.occ.sum()
    details = ", ".join(f"{k} (occupancy {stats.occ[k]:.3g} frames, weight {stats.occ[k] / total:.2e})"
                        for k in dead[:5])
    more = f" and {len(dead) - 5} more" if len(dead) > 5 else ""
    warnings.warn(
        f"{len(dead)} of {model.n_components} components fell below the minimum occupancy of "
        f"{min_occupancy(stats.n_frames, model.n_components):.3g} frames: {details}{more}; "
        f"removed and replaced by splitting the heaviest components", ComponentWarning, stacklevel=4)
    return grown


def train(X, n_components: int, *, covariance_type="diag", init="split", max_iter=100, tol=1e-3,
          var_floor=1e-3, split_iter=4, schedule=None, dtype="float32", random_state=None,
          chunk=None, progress=None, overrelax=OVERRELAX, checkpoint=None, on_resume=None):
    """Fit a mixture to frames ``X``; returns ``(model, history, converged, n_iter)``.

    ``init="split"`` grows from one Gaussian through ``schedule`` (doubling by default)
    with ``split_iter`` EM iterations after each growth step; then EM runs at full size
    for at most ``max_iter`` iterations until the per-frame gain drops below ``tol``.
    ``n_iter`` counts the iterations at full size.  EM at full size is over-relaxed by
    ``overrelax`` (see :func:`run_em`; 1 gives plain EM); the short intermediate stages are plain EM.

    Parameters
    ----------
    checkpoint : object, optional
        Where the training's state is kept, so that a run that was killed can be continued (a file:
        :class:`acoustic_gmm.checkpoint.CheckpointFile`; this module knows nothing of files).  Three methods:
        ``load(params, fingerprint)`` returns the saved :class:`TrainState`, or None to start afresh, and
        raises if it was saved by a run of other hyper-parameters (``params``, a JSON-able dict) or other
        frames (``fingerprint``: ``n_frames``, ``n_features``, and the frames' global ``mean`` and ``var``);
        ``save(params, fingerprint, state)`` at the end of every stage and, within one, at most every
        ``CHECKPOINT_SECONDS``; ``remove()`` once training ends.  A
        continued run ends with the model, history and iteration count of an uninterrupted one.
    on_resume : callable, optional
        Called once as ``on_resume(n_components, iteration)`` when training continues from ``checkpoint``:
        the size of the stage it was in, and the EM iterations done before (counted as ``progress`` counts
        them).
    """
    X = as_frames(X)
    glob = global_stats(X, covariance_type)
    n, mean_c = glob.occ[0], glob.sum_x[0] / glob.occ[0]
    second = glob.sum_xx[0] if covariance_type == "diag" else np.diag(glob.sum_xx[0])
    gvar = second / n - mean_c ** 2
    constant = np.flatnonzero(gvar <= 1e-12 * np.maximum(1.0, (mean_c + glob.shift) ** 2))
    if len(constant):
        raise DataError(f"feature dimension(s) {constant.tolist()[:10]} are constant over all "
                        f"{glob.n_frames} frames (zero variance); drop them before fitting")
    floor = variance_floor(gvar, var_floor)
    if init == "split":
        stages = growth_schedule(n_components, schedule=schedule)
    elif init in ("kmeans", "random"):
        stages = [n_components]  # one stage, at full size
    else:
        raise ParameterError(f"init must be 'split', 'kmeans' or 'random', got {init!r}")
    history = History()
    state = None
    if checkpoint is not None:
        params = {"n_components": int(n_components), "covariance_type": covariance_type, "init": init,
                  "max_iter": int(max_iter), "tol": float(tol), "var_floor": float(var_floor),
                  "overrelax": float(overrelax), "dtype": np.dtype(dtype).name,
                  "chunk": None if chunk is None else int(chunk)}
        if init == "split":
            params.update(schedule=stages, split_iter=int(split_iter))
        elif random_state is None or isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
            params["random_state"] = None if random_state is None else int(random_state)
        # The frames' fingerprint: a checkpoint of other frames must not be continued on these.
        fingerprint = {"n_frames": int(glob.n_frames), "n_features": len(gvar), "mean": mean_c + glob.shift,
                       "var": gvar}
        state = checkpoint.load(params, fingerprint)
    if state is not None:
        # The saved floor, not the one just computed: the global sums may differ in their last bits (the
        # frames read in other blocks) and the resumed run must be the same computation.
        history, floor, model, stats = state.history, state.floor, state.model, state.stats
        first, start, eta, converged = state.stage, state.iteration, state.eta, state.converged
        if on_resume is not None:
            on_resume(stages[first], len(history.loglik))
    else:
        first, start, eta, converged, stats = 0, 0, 1.0, False, None
        if init == "split":
            model = m_step(glob, floor=floor, dtype=dtype)
        elif init == "kmeans":
            model = kmeans_init(X, n_components, floor=floor, covariance_type=covariance_type, dtype=dtype,
                                rng=random_state)
        else:
            model = random_init(X, n_components, glob_model=m_step(glob, floor=floor, dtype=dtype), dtype=dtype,
                                rng=random_state)
    n_iter, saved_at = 0, time.monotonic()
    for index in range(first, len(stages)):
        size = stages[index]
        if index > first:
            start, eta, converged = 0, 1.0, False
        if size != model.n_components:
            model = split_heaviest(model, size)
            stats = None
        # Right after a split the halves sit near a saddle point, where the first gains are tiny
        # and say nothing about convergence: like HTK's re-estimation after each mix-up, every
        # intermediate stage runs exactly split_iter iterations, and the final one at least that.
        if index == len(stages) - 1:
            length, stage_tol, relax = max_iter, tol, overrelax
            min_iter = min(split_iter, max_iter) if init == "split" else 0
        elif size > 1:
            length, stage_tol, relax, min_iter = split_iter, -1.0, 1.0, 0
        else:  # one Gaussian needs no EM: the global mean and variance are its ML fit
            continue
        if converged or start >= length:  # resumed from the stage's last iteration
            n_iter = start
            continue
        before = len(history.loglik) - start

        def save(model, stats, iteration, eta, converged, stage=index, length=length):
            nonlocal saved_at
            if not (converged or iteration == length) and time.monotonic() - saved_at < CHECKPOINT_SECONDS:
                return
            checkpoint.save(params, fingerprint, TrainState(stage, iteration, eta, converged, model, stats,
                                                            history, floor))
            saved_at = time.monotonic()

        model, stats, converged = run_em(model, X, floor=floor, n_iter=length, tol=stage_tol, history=history,
                                         chunk=chunk, stats=stats, progress=progress, min_iter=min_iter,
                                         overrelax=relax, start=start, eta=eta,
                                         on_iteration=None if checkpoint is None else save)
        n_iter = len(history.loglik) - before
    if checkpoint is not None:
        checkpoint.remove()
    return model, history, converged, n_iter


@dataclass
class TrainState:
    """Where a :func:`train` run stands after an EM iteration: enough to continue it as the same computation.

    ``stage`` indexes the growth schedule (one stage at full size for ``init="kmeans"``/``"random"``),
    ``iteration`` counts the EM iterations done in it, ``eta`` is the over-relaxation's factor for the next
    one, ``converged`` says the stage ended there; ``model`` and its E-step ``stats``, the ``history`` so
    far and the variance ``floor`` in use complete it.
    """

    stage: int
    iteration: int
    eta: float
    converged: bool
    model: DiagGMM | FullGMM
    stats: Stats
    history: History
    floor: np.ndarray
