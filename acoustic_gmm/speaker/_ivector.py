"""i-vectors: a total-variability subspace of a UBM's mean supervectors (Dehak et al., 2011).

An utterance's GMM mean supervector is modelled as ``m + T w``: ``m`` the UBM's means, ``T`` a
low-rank (K*D, R) matrix, ``w ~ N(0, I)`` the utterance's *i-vector*.  Everything works on the
utterance's Baum-Welch statistics against the UBM (``_bw_stats``: :func:`utterance_stats`, and
:class:`StatsStream` computing them again on every pass; ``_ivector_files.DaskStats`` on a Dask cluster):
occupancies ``N_k = sum_t g_tk`` and centred first-order sums ``F_k = sum_t g_tk (x_t - m_k)``.

* :func:`train_extractor` -- EM for ``T`` (Kenny, Boulianne & Dumouchel 2005) with minimum-divergence
  re-estimation (Brümmer; Kenny 2008), initialised by PCA of the utterances' shrunk mean supervectors;
  the accumulators are :class:`TvStats`, which add up over batches (and could over processes);
* :meth:`IvectorExtractor.extract` -- the posterior mean (and covariance) of ``w`` for every utterance.

Work is done in the UBM-variance-normalised space (``F_k / sigma_k``, ``T_k / sigma_k``), where the
per-component precision products ``T_k' S_k^-1 T_k`` become ``T_k' T_k`` and are computed once per
extractor.  The posterior precision of a batch of U utterances is then *one* product,
``I + N @ P`` with ``P`` the (K, R*R) stack of those products, and the linear terms another,
``F @ T``: throughput is set by matrix products, not by a loop over utterances and components.

Why PCA for the start: the leading directions of the utterances' mean-supervector deviations are
where ``T`` ends up; starting there, the objective after a few EM iterations is higher than from a
random ``T`` (``init="random"``, Kaldi's choice, is offered; ``bench`` and the tests compare them).

Examples
--------
::

    stats = utterance_stats(ubm, "train.h5")
    extractor = train_extractor(ubm, stats, 100, n_iter=10)
    ivectors = extractor.extract(utterance_stats(ubm, "test.h5"))
"""

from __future__ import annotations

import functools
import hashlib
import os
import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import ArchiveError, DataError, ParameterError
from ..gmm._files import ubm_id
from ..gmm._model import DiagGMM
from ..gmm._stats import ordered_map
from ..storage._parallel import progress_bar
from ._bw_stats import BWStats, utterance_stats
from ._files import load_bundle, save_bundle

__all__ = ["utterance_stats", "IvectorExtractor", "train_extractor", "load_extractor"]


BATCH_UTTS = 256         # utterances per batch in the E-step and extraction: (U, R, R) of float64 in memory


TRI_LEAF = 8             # blocks this small are inverted by LAPACK (batched) in _tri_inv


PCA_UTTS = 8192          # utterances (at most) whose supervectors initialise T


PCA_RELEVANCE = 16.0     # shrinks the mean supervectors of the PCA start towards the UBM, as MAP does


PCA_OVERSAMPLE = 10      # extra directions of the PCA start's randomised range finder


PCA_POWER = 4            # its power iterations (see _pca_start)


def _in_batches(stats):
    """A :class:`BWStats` or :class:`StatsStream` as batches of at most BATCH_UTTS utterances."""
    for part in (stats,) if isinstance(stats, BWStats) else stats:
        for lo in range(0, len(part), BATCH_UTTS):  # views, not copies: the E-step reads them once
            hi = min(len(part), lo + BATCH_UTTS)
            yield BWStats(part.ids[lo:hi], part.N[lo:hi], part.F[lo:hi], part.ubm_id, part.speakers[lo:hi],
                          part.labels[lo:hi]) if len(part) > BATCH_UTTS else part


@dataclass
class TvStats:
    """Accumulators of one EM iteration for ``T``, in float64; they add up over batches and processes.

    ``A`` (K, R (R + 1) / 2): ``sum_u N_uk E[w w']``, the lower triangles packed row by row (``np.tril_indices``:
    half the work of the full matrices, unpacked once by :meth:`IvectorExtractor.updated`); ``C`` (K*D, R):
    ``sum_u f_u E[w]'`` (normalised ``f``);
    ``H`` (R, R): ``sum_u E[w w']``; ``n`` utterances; ``objective``: the summed log-likelihood of the
    statistics under the current ``T``, up to a constant that does not depend on ``T``.
    """

    A: np.ndarray
    C: np.ndarray
    H: np.ndarray
    n: int = 0
    objective: float = 0.0

    @classmethod
    def zeros(cls, K: int, D: int, R: int) -> "TvStats":
        return cls(np.zeros((K, R * (R + 1) // 2)), np.zeros((K * D, R)), np.zeros((R, R)))

    def __iadd__(self, other: "TvStats") -> "TvStats":
        self.A += other.A
        self.C += other.C
        self.H += other.H
        self.n += other.n
        self.objective += other.objective
        return self

    def __add__(self, other: "TvStats") -> "TvStats":
        return TvStats(self.A + other.A, self.C + other.C, self.H + other.H, self.n + other.n,
                       self.objective + other.objective)


@dataclass
class IvectorExtractor:
    """A UBM and a total-variability matrix: extracts i-vectors from Baum-Welch statistics.

    ``T`` is (K, D, R) in the UBM-variance-normalised space (``T_k / sigma_k``).  ``history`` holds the
    training objective (log-likelihood per utterance, up to a constant) under each successive ``T``.
    """

    ubm: DiagGMM
    T: np.ndarray
    history: list = field(default_factory=list)
    init: str = "pca"
    features: dict | None = None  # the training archive's feature configuration and sample rate
    top_c: int | None = None      # the posterior pruning its statistics were computed with

    def __post_init__(self):
        self.T = np.ascontiguousarray(self.T, dtype=np.float64)
        K, D, R = self.T.shape
        # computed once: T_k' S_k^-1 T_k for every component (normalised space: T_k' T_k), its lower triangle
        self._tril = np.tril_indices(R)
        self._P = (self.T.transpose(0, 2, 1) @ self.T)[:, self._tril[0], self._tril[1]]
        self._inv_sd = 1 / np.sqrt(self.ubm.variances.astype(np.float64))
        self._ubm_id = ubm_id(self.ubm)
        # the linear term straight from the raw statistics: T_k' S_k^-1/2 F_k for every k in one product
        self._Tsd = (self.T * self._inv_sd[:, :, None]).reshape(K * D, R)

    def __reduce__(self):  # pickled (to Dask workers) without the products, which are rebuilt on arrival
        return IvectorExtractor, (self.ubm, self.T, self.history, self.init, self.features, self.top_c)

    @property
    def dim(self) -> int:
        return self.T.shape[2]

    @property
    def fingerprint(self) -> str:
        """Identifies this extractor: i-vector files and back ends carry it, and are refused by another."""
        h = hashlib.sha1(self._ubm_id.encode())
        h.update(self.T.tobytes())
        return h.hexdigest()[:16]

    def _check(self, stats: BWStats) -> None:
        if stats.ubm_id != self._ubm_id:
            raise DataError("these statistics were computed with another UBM than the extractor's")

    def _posterior(self, N, F, *, accumulate: TvStats | None = None, covariance: bool = False):
        """i-vector posteriors of one batch: means (U, R), and covariances (U, R, R) when asked.

        Every step is a product over the whole batch: the precisions ``I + N @ P`` and the accumulator of
        ``N_k E[w w']`` on the packed lower triangles (half the multiplications of the full matrices), the
        covariances from batched Cholesky factors and their blocked inverses (:func:`_tri_inv`); no call per
        utterance.
        """
        U, R = len(N), self.dim
        rows, cols = self._tril
        L = np.empty((U, R, R))
        L[:, rows, cols] = N @ self._P
        L[:, cols, rows] = L[:, rows, cols]
        L[:, np.arange(R), np.arange(R)] += 1.0
        b = F.reshape(U, -1) @ self._Tsd
        if not (covariance or accumulate is not None):
            return np.linalg.solve(L, b[:, :, None])[:, :, 0], None
        chol = np.linalg.cholesky(L)
        inv = _tri_inv(chol)
        cov = np.ascontiguousarray(inv.transpose(0, 2, 1)) @ inv  # L^-1 = chol^-T chol^-1 (contiguous: BLAS)
        w = (cov @ b[:, :, None])[:, :, 0]
        if accumulate is not None:
            second = cov + w[:, :, None] * w[:, None, :]
            accumulate.A += N.T @ second[:, rows, cols]
            accumulate.C += (F * self._inv_sd[None]).reshape(U, -1).T @ w
            accumulate.H += second.sum(0)
            accumulate.n += U
            logdet = 2 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(1)
            accumulate.objective += float((-0.5 * logdet + 0.5 * np.einsum("ur,ur->u", b, w)).sum())
        return w, cov

    def extract(self, stats, *, covariance: bool = False, progress: bool = False):
        """The i-vectors (posterior means) of ``stats``' utterances.

        Parameters
        ----------
        stats : BWStats or StatsStream
            Statistics from :func:`utterance_stats` with this extractor's UBM, or a stream of them.
        covariance : bool
            Also return each posterior covariance.

        Returns
        -------
        W : ndarray, shape (U, R)
        covariances : ndarray, shape (U, R, R)
            Only when ``covariance`` is True.
        """
        self._check(stats)
        U, R = len(stats), self.dim
        W = np.empty((U, R))
        covs = np.empty((U, R, R)) if covariance else None
        lo = 0
        with progress_bar(U, desc="i-vectors", unit="utt", progress=progress) as bar:
            posterior = functools.partial(self._posterior, covariance=covariance)
            threads = len(os.sched_getaffinity(0))
            for w, c in ordered_map(((posterior, b.N, b.F) for b in _in_batches(stats)), threads=threads,
                                    ahead=threads):
                hi = lo + len(w)
                W[lo:hi] = w
                if covariance:
                    covs[lo:hi] = c
                lo = hi
                bar.update(len(w))
        return (W, covs) if covariance else W

    def accumulate(self, stats) -> TvStats:
        """The E-step over ``stats``: accumulators for :meth:`updated`."""
        self._check(stats)
        if hasattr(stats, "accumulate_tv"):  # a source that runs the E-step itself, e.g. on a Dask cluster
            return stats.accumulate_tv(self)
        K, D, R = self.T.shape

        def part(batch):
            acc = TvStats.zeros(K, D, R)
            self._posterior(batch.N, batch.F, accumulate=acc)
            return acc
        total = TvStats.zeros(K, D, R)
        # batches side by side, one a core (numpy's batched factorisations run on one): added in batch order, so
        # the same sums on any core count; one batch more than the threads in flight (~80 MB each at R = 200)
        threads = len(os.sched_getaffinity(0))
        for acc in ordered_map(((part, b) for b in _in_batches(stats)), threads=threads, ahead=threads):
            total += acc
        return total

    def updated(self, acc: TvStats, *, min_divergence: bool = True) -> "IvectorExtractor":
        """The M-step: ``T_k = C_k A_k^-1``, then (minimum divergence) ``T <- T chol(H / n)``."""
        K, D, R = self.T.shape
        C = acc.C.reshape(K, D, R)
        rows, cols = self._tril
        A = np.empty((K, R, R))
        A[:, rows, cols] = acc.A
        A[:, cols, rows] = acc.A
        T = np.linalg.solve(A, C.transpose(0, 2, 1)).transpose(0, 2, 1)  # A_k symmetric
        if min_divergence:
            # the prior of w re-estimated as N(0, H/n) and folded into T, so that w stays N(0, I)
            T = T @ np.linalg.cholesky(acc.H / acc.n)
        return IvectorExtractor(self.ubm, T, list(self.history), self.init, self.features, self.top_c)

    def save(self, path, *, metadata: dict | None = None) -> None:
        """Write the extractor (its UBM included) to an HDF5 file."""
        ubm = self.ubm
        meta = {"fingerprint": self.fingerprint, "ubm_id": self._ubm_id, "history": self.history, "init": self.init,
                "dtype": np.dtype(ubm.dtype).name, "features": self.features, "top_c": self.top_c,
                **(metadata or {})}
        save_bundle(path, "ivector-extractor", arrays={"T": self.T, "ubm_weights": ubm.weights,
                                                        "ubm_means": ubm.means, "ubm_variances": ubm.variances},
                    metadata=meta)


def _tri_inv(chol: np.ndarray) -> np.ndarray:
    """Inverses of a stack of lower-triangular matrices (U, R, R), by halves: ``[[A, 0], [C, B]]^-1`` is
    ``[[A^-1, 0], [-B^-1 C A^-1, B^-1]]``, so all but the smallest blocks are batched matrix products (numpy has
    no batched triangular inverse; a LAPACK call per utterance cost more than the arithmetic)."""
    n = chol.shape[1]
    if n <= TRI_LEAF:
        return np.linalg.inv(chol)
    h = n // 2
    out = np.zeros(chol.shape)
    out[:, :h, :h] = top = _tri_inv(chol[:, :h, :h])
    out[:, h:, h:] = bottom = _tri_inv(chol[:, h:, h:])
    out[:, h:, :h] = -(bottom @ chol[:, h:, :h]) @ top
    return out


def load_extractor(path) -> IvectorExtractor:
    """Read an extractor written by :meth:`IvectorExtractor.save` (every array checked)."""
    arrays, _, meta = load_bundle(path, "ivector-extractor")
    try:
        T = arrays["T"]
        w, m, v = arrays["ubm_weights"], arrays["ubm_means"], arrays["ubm_variances"]
        if T.ndim != 3 or m.shape != T.shape[:2] or v.shape != m.shape or w.shape != m.shape[:1]:
            raise ArchiveError(f"{path}: T has shape {T.shape}, UBM means {m.shape}, variances {v.shape}, "
                               f"weights {w.shape}: they do not agree")
        ubm = DiagGMM(w, m, v, dtype=meta.get("dtype", "float32"))
    except KeyError as exc:
        raise ArchiveError(f"{path}: damaged i-vector extractor (no array {exc})") from None
    except ParameterError as exc:
        raise ArchiveError(f"{path}: the UBM in this extractor is not valid ({exc})") from None
    features = meta.get("features")
    if features is not None and not (isinstance(features, dict) and isinstance(features.get("config"), dict)):
        raise ArchiveError(f"{path}: metadata 'features' is not a feature configuration")
    top_c = meta.get("top_c")
    if top_c is not None and (isinstance(top_c, bool) or not isinstance(top_c, int) or not 1 <= top_c <= len(w)):
        raise ArchiveError(f"{path}: metadata 'top_c' is {top_c!r}, expected null or 1 to {len(w)}")
    ex = IvectorExtractor(ubm, T, list(meta.get("history", [])), str(meta.get("init", "pca")), features, top_c)
    if meta.get("fingerprint") not in (None, ex.fingerprint):
        raise ArchiveError(f"{path}: the stored fingerprint does not match the stored parameters (damaged file)")
    return ex


def _pca_start(sample: BWStats, R: int, inv_sd: np.ndarray, rng) -> np.ndarray:
    """T from the leading principal directions of the utterances' shrunk, normalised mean supervectors.

    The directions come from a randomised range finder with ``PCA_POWER`` power iterations (Halko, Martinsson
    & Tropp 2011): products of the (n, K*D) supervectors with n x (R + ``PCA_OVERSAMPLE``) blocks, where the
    n x n eigenproblem they replace took 43 s of a 90 s ``ivector train`` at 7,200 utterances.  A start needs
    the subspace, not its last digits (EM moves it at once): see the module.
    """
    S = (sample.F * inv_sd[None] / (sample.N[:, :, None] + PCA_RELEVANCE)).reshape(len(sample), -1)
    n = len(S)
    k = min(R + PCA_OVERSAMPLE, n, S.shape[1])
    Y = S @ rng.normal(size=(S.shape[1], k))
    for _ in range(PCA_POWER):
        Y = S @ (S.T @ np.linalg.qr(Y)[0])
    Q = np.linalg.qr(Y)[0]
    _, sv, Vt = np.linalg.svd(Q.T @ S, full_matrices=False)
    # direction v_i scaled by its spread s_i / sqrt(n): a w ~ N(0, I) then spans the data's spread
    T = Vt[:R].T * (sv[:R] / np.sqrt(n))
    if T.shape[1] < R:  # fewer utterances than dimensions: the rest start small and random
        extra = rng.normal(scale=1e-3 * np.sqrt((S * S).mean()), size=(S.shape[1], R - T.shape[1]))
        T = np.hstack([T, extra])
    return T


def train_extractor(ubm: DiagGMM, stats, dim: int, *, n_iter: int = 10, init: str = "pca",
                    min_divergence: bool = True, seed: int = 0, callback=None) -> IvectorExtractor:
    """Train a total-variability matrix of rank ``dim`` by EM on utterance statistics.

    Parameters
    ----------
    ubm : DiagGMM
        The UBM the statistics were computed with.
    stats : BWStats or StatsStream
        Training utterances' statistics (:func:`utterance_stats`), or a :class:`StatsStream` that computes
        them again on every iteration (memory: one batch).
    dim : int
        The i-vector dimension R.
    n_iter : int
        EM iterations.
    init : {"pca", "random"}
        The starting ``T`` (see the module's docstring).
    min_divergence : bool
        Re-estimate the prior after each M-step and fold it into ``T`` (faster convergence).
    callback : callable, optional
        Called as ``callback(iteration, objective_per_utterance, seconds)`` after each E-step.

    Returns
    -------
    IvectorExtractor
        With ``history``: the objective per utterance under the initial ``T`` and after each update
        but the last (each is measured by the E-step that uses that ``T``); EM never lowers it.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> ubm = DiagGMM(np.full(4, 0.25), rng.normal(size=(4, 3)), np.ones((4, 3)))
    >>> N = rng.uniform(5, 20, size=(40, 4))
    >>> stats = BWStats([f"u{i}" for i in range(40)], N, rng.normal(size=(40, 4, 3)) * N[:, :, None] ** 0.5,
    ...                 ubm_id(ubm))
    >>> ex = train_extractor(ubm, stats, 2, n_iter=3)
    >>> ex.extract(stats).shape, len(ex.history)
    ((40, 2), 3)
    """
    if not isinstance(ubm, DiagGMM):
        raise ParameterError("train_extractor: the UBM must be a diagonal GMM")
    K, D = ubm.n_components, ubm.n_features
    if not isinstance(dim, (int, np.integer)) or not 1 <= dim <= K * D:
        raise ParameterError(f"dim must be an integer between 1 and K*D = {K * D}, got {dim!r}")
    if init not in ("pca", "random"):
        raise ParameterError(f"init must be 'pca' or 'random', got {init!r}")
    if n_iter < 1:
        raise ParameterError(f"n_iter must be >= 1, got {n_iter}")
    if len(stats) < 2:
        raise DataError(f"train_extractor: {len(stats)} utterance(s); an extractor needs many")
    if isinstance(stats, BWStats) and (stats.N.shape != (len(stats), K) or stats.F.shape != (len(stats), K, D)):
        raise DataError(f"statistics of shape {stats.F.shape} do not match the UBM's ({K}, {D})")
    if stats.ubm_id != ubm_id(ubm):
        raise DataError("these statistics were computed with another UBM")
    rng = np.random.default_rng(seed)
    inv_sd = 1 / np.sqrt(ubm.variances.astype(np.float64))
    # the start looks at a sample of utterances, in memory: at most PCA_UTTS, and (with the copies the PCA
    # makes) within the frames' memory budget; the random start needs only the data's spread
    from ..gmm._sources import default_max_memory

    n = min(PCA_UTTS, max(2 * dim, default_max_memory() // (3 * K * (D + 1) * 8))) if init == "pca" else 256
    sample = stats.take(np.sort(rng.choice(len(stats), size=min(len(stats), n), replace=False)))
    if init == "pca":
        T = _pca_start(sample, dim, inv_sd, rng)
    else:  # Kaldi's way: random, of the size of the data's spread
        spread = np.sqrt((sample.F * sample.F).sum() / max(sample.N.sum(), 1.0) / (K * D))
        T = rng.normal(scale=spread, size=(K * D, dim))
    extractor = IvectorExtractor(ubm, T.reshape(K, D, dim), [], init)
    for it in range(n_iter):
        t0 = time.perf_counter()
        acc = extractor.accumulate(stats)
        objective = acc.objective / acc.n
        history = extractor.history + [objective]
        extractor = extractor.updated(acc, min_divergence=min_divergence)
        extractor.history = history
        if callback is not None:
            callback(it + 1, objective, time.perf_counter() - t0)
    return extractor
