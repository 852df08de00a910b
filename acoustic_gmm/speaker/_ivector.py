"""i-vectors: a total-variability subspace of a UBM's mean supervectors (Dehak et al., 2011).

An utterance's GMM mean supervector is modelled as ``m + T w``: ``m`` the UBM's means, ``T`` a
low-rank (K*D, R) matrix, ``w ~ N(0, I)`` the utterance's *i-vector*.  Everything works on the
utterance's Baum-Welch statistics against the UBM (:func:`utterance_stats`): occupancies
``N_k = sum_t g_tk`` and centred first-order sums ``F_k = sum_t g_tk (x_t - m_k)``.

* :func:`utterance_stats` -- the statistics of every utterance of an archive, batches of
  utterances at a time (one planned read and one posterior product per batch), optionally with
  each frame's posteriors pruned to its top-C components;
* :class:`StatsStream`, :class:`DaskStats` -- the statistics computed again on every pass, in one batch's
  memory, or on a Dask cluster (the extractor's E-step there too);
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

import hashlib
import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import ArchiveError, DataError, ParameterError
from ..gmm._model import DiagGMM, log_normalize
from ..storage._archive import opened
from ._files import load_bundle, save_bundle

__all__ = ["utterance_stats", "IvectorExtractor", "train_extractor", "load_extractor"]


BATCH_BYTES = 256 << 20  # posteriors of one batch of utterances in utterance_stats (float32 + float64 copy)


BATCH_FRAMES = 1 << 17   # ... and at most this many frames


BATCH_UTTS = 256         # utterances per batch in the E-step and extraction: (U, R, R) of float64 in memory


PCA_UTTS = 8192          # utterances (at most) whose supervectors initialise T


PCA_RELEVANCE = 16.0     # shrinks the mean supervectors of the PCA start towards the UBM, as MAP does


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
        with _bar(progress, len(ids), "statistics", "utt") as bar:
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


def _in_batches(stats):
    """A :class:`BWStats` or :class:`StatsStream` as batches of at most BATCH_UTTS utterances."""
    for part in (stats,) if isinstance(stats, BWStats) else stats:
        for lo in range(0, len(part), BATCH_UTTS):
            yield part.take(np.arange(lo, min(len(part), lo + BATCH_UTTS))) if len(part) > BATCH_UTTS else part


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


def _bar(progress: bool | None, total: int, desc: str, unit: str):
    """A progress bar: shown (True), not (False), or only on a terminal (None: never into a log file)."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, leave=False, disable=None if progress is None else not progress)


@dataclass
class TvStats:
    """Accumulators of one EM iteration for ``T``, in float64; they add up over batches and processes.

    ``A`` (K, R, R): ``sum_u N_uk E[w w']``; ``C`` (K*D, R): ``sum_u f_u E[w]'`` (normalised ``f``);
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
        return cls(np.zeros((K, R, R)), np.zeros((K * D, R)), np.zeros((R, R)))

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
        # computed once: T_k' S_k^-1 T_k for every component (normalised space: T_k' T_k)
        self._P = np.einsum("kdr,kds->krs", self.T, self.T).reshape(K, R * R)
        self._inv_sd = 1 / np.sqrt(self.ubm.variances.astype(np.float64))
        self._ubm_id = _ubm_id(self.ubm)
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
        """i-vector posteriors of one batch: means (U, R), and covariances (U, R, R) when asked."""
        U, R = len(N), self.dim
        L = (N @ self._P).reshape(U, R, R)
        L[:, np.arange(R), np.arange(R)] += 1.0
        b = F.reshape(U, -1) @ self._Tsd
        if not (covariance or accumulate is not None):
            return np.linalg.solve(L, b[:, :, None])[:, :, 0], None
        chol = np.linalg.cholesky(L)
        cov = _cho_solve(chol, np.broadcast_to(np.eye(R), (U, R, R)))
        w = np.einsum("urs,us->ur", cov, b)
        if accumulate is not None:
            second = cov + w[:, :, None] * w[:, None, :]
            accumulate.A += (N.T @ second.reshape(U, R * R)).reshape(-1, R, R)
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
        with _bar(progress, U, "i-vectors", "utt") as bar:
            for batch in _in_batches(stats):
                hi = lo + len(batch)
                W[lo:hi], c = self._posterior(batch.N, batch.F, covariance=covariance)
                if covariance:
                    covs[lo:hi] = c
                lo = hi
                bar.update(len(batch))
        return (W, covs) if covariance else W

    def accumulate(self, stats) -> TvStats:
        """The E-step over ``stats``: accumulators for :meth:`updated`."""
        self._check(stats)
        if hasattr(stats, "accumulate_tv"):  # a source that runs the E-step itself, e.g. on a Dask cluster
            return stats.accumulate_tv(self)
        K, D, R = self.T.shape
        acc = TvStats.zeros(K, D, R)
        for batch in _in_batches(stats):
            self._posterior(batch.N, batch.F, accumulate=acc)
        return acc

    def updated(self, acc: TvStats, *, min_divergence: bool = True) -> "IvectorExtractor":
        """The M-step: ``T_k = C_k A_k^-1``, then (minimum divergence) ``T <- T chol(H / n)``."""
        K, D, R = self.T.shape
        C = acc.C.reshape(K, D, R)
        T = np.linalg.solve(acc.A, C.transpose(0, 2, 1)).transpose(0, 2, 1)  # A_k symmetric
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


def _cho_solve(chol: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solve ``L x = b`` for a stack of Cholesky factors ``chol`` (U, R, R); ``b`` (U, R) or (U, R, M)."""
    from scipy.linalg import solve_triangular

    vec = b.ndim == 2
    rhs = b[:, :, None] if vec else b
    out = np.empty(rhs.shape)
    for i in range(len(chol)):  # LAPACK's triangular solves: a few microseconds each against the products
        y = solve_triangular(chol[i], rhs[i], lower=True, check_finite=False)
        out[i] = solve_triangular(chol[i], y, lower=True, trans="T", check_finite=False)
    return out[:, :, 0] if vec else out


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
    """T from the leading principal directions of the utterances' shrunk, normalised mean supervectors."""
    S = (sample.F * inv_sd[None] / (sample.N[:, :, None] + PCA_RELEVANCE)).reshape(len(sample), -1)
    gram = S @ S.T / len(sample)
    vals, vecs = np.linalg.eigh(gram)
    order = np.argsort(vals)[::-1][:R]
    # the direction S'u / sqrt(n lambda) scaled by sqrt(lambda): a w ~ N(0, I) then spans the data's spread
    T = S.T @ vecs[:, order] / np.sqrt(len(sample))
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
    ...                 _ubm_id(ubm))
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
    if stats.ubm_id != _ubm_id(ubm):
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
