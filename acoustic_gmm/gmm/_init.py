"""Starting points for EM other than splitting: k-means (k-means++ seeding, Lloyd) and random frames.

:func:`kmeans_init` runs on a sample of at most ``max_sample`` frames, blocks of frames on a thread pool, and gives
the same model whatever the number of threads; :func:`random_init` takes components' means from random frames.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ._model import make_model
from ._sources import as_frames
from ._stats import Stats, one_blas_thread
from ._update import m_step

__all__ = ["kmeans_init", "random_init"]


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

    with one_blas_thread(), ThreadPoolExecutor(len(os.sched_getaffinity(0))) as pool:
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
