"""Two-covariance PLDA (Ioffe 2006; Sizov, Lee & Kinnunen 2014) for i-vector trials.

``x = mu + y + e`` with a speaker variable ``y ~ N(0, Sb)`` shared by all of a speaker's vectors and a per-vector
``e ~ N(0, Sw)``; a trial's score is the exact log-likelihood ratio of "same speaker" against "different
speakers", with speaker models enrolled from any number of vectors.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg

from ..errors import DataError, NotFittedError, ParameterError
from ._vectors import as_vectors, check_int, class_stats, model_list, speaker_index

__all__ = ["PLDA"]


_LOG_2PI = float(np.log(2 * np.pi))


class PLDA:
    """Two-covariance PLDA: ``x = mu + y + e``, ``y ~ N(0, Sb)`` per speaker, ``e ~ N(0, Sw)`` per vector.

    Trained by EM (Sizov, Lee & Kinnunen 2014, section 3; Ioffe 2006). Every computation goes
    through the simultaneous diagonalisation ``A^T Sw A = I``, ``A^T Sb A = diag(psi)``: in the
    coordinates ``u = A^T (x - mu)`` the dimensions are independent, each ``u_k = y_k + e_k`` with
    ``y_k ~ N(0, psi_k)``, ``e_k ~ N(0, 1)``, so posteriors, marginal likelihoods and
    log-likelihood ratios have per-dimension closed forms in the count and mean of each speaker's
    vectors (no ``(n d) x (n d)`` matrices).

    Attributes
    ----------
    mean_ : ndarray, shape (d,)
        ``mu``.
    between_ : ndarray, shape (d, d)
        ``Sb``, the speaker (between-class) covariance.
    within_ : ndarray, shape (d, d)
        ``Sw``, the within-speaker covariance.
    history_ : list of float
        Training log-likelihood (exact marginal, summed over speakers): ``history_[0]`` at the
        initialisation, ``history_[i]`` after EM iteration ``i``. Never decreases.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> spk = np.repeat(np.arange(50), 4)
    >>> X = rng.normal(0, 2, (50, 3))[spk] + rng.normal(0, 1, (200, 3))
    >>> plda = PLDA().fit(X, spk, n_iter=5)
    >>> bool(np.all(np.diff(plda.history_) >= 0))
    True
    >>> plda.llr([X[:3], X[4:7]], X[[3, 7]]).shape     # 2 models x 2 tests
    (2, 2)
    """

    def __init__(self):
        self.mean_ = self.between_ = self.within_ = None
        self.history_: list[float] = []

    def __repr__(self) -> str:
        state = "unfitted" if self.mean_ is None else f"dim={len(self.mean_)}"
        return f"PLDA({state})"

    # ----- parameters
    @classmethod
    def from_params(cls, mean, between, within) -> PLDA:
        """A PLDA model with given ``mu`` ``(d,)``, ``Sb`` ``(d, d)`` (PSD) and ``Sw`` ``(d, d)`` (PD)."""
        mean = np.asarray(mean, dtype=np.float64)
        if mean.ndim != 1 or len(mean) == 0:
            raise ParameterError(f"PLDA: mean must be a non-empty 1-D array, got shape {mean.shape}")
        d = len(mean)
        between = as_vectors(between, what="PLDA between", dim=d, min_rows=d)
        within = as_vectors(within, what="PLDA within", dim=d, min_rows=d)
        if not np.isfinite(mean).all():
            raise ParameterError("PLDA: mean contains NaN or inf")
        for name, M in (("between", between), ("within", within)):
            if M.shape != (d, d):
                raise ParameterError(f"PLDA: {name} must have shape {(d, d)}, got {M.shape}")
            if not np.allclose(M, M.T, rtol=1e-10, atol=1e-12 * np.abs(M).max()):
                raise ParameterError(f"PLDA: {name} covariance is not symmetric")
        plda = cls()
        plda._set(mean, between, within)
        return plda

    def _set(self, mean, between, within) -> None:
        within = (within + within.T) / 2
        between = (between + between.T) / 2
        try:
            psi, A = linalg.eigh(between, within)
        except linalg.LinAlgError:
            raise DataError("PLDA: the within-speaker covariance is not positive definite (fewer independent "
                            "vectors than dimensions?); reduce the dimension with LDA first") from None
        if psi.min() < -1e-8 * max(psi.max(), 1.0):
            raise ParameterError("PLDA: the between-speaker covariance is not positive semi-definite")
        self.mean_, self.between_, self.within_ = mean, between, within
        # rounding makes tiny eigenvalues of a singular Sb slightly negative; a variance cannot be
        self._psi = np.clip(psi, 0.0, None)
        self._A = A
        self._logdet_w = float(np.linalg.slogdet(within)[1])

    def _check_fitted(self) -> int:
        if self.mean_ is None:
            raise NotFittedError("PLDA: call fit() (or from_params()) first")
        return len(self.mean_)

    # ----- training
    def fit(self, X, speakers, *, n_iter: int = 10) -> PLDA:
        """Estimate ``mu``, ``Sb``, ``Sw`` by EM from the scatter-matrix initialisation.

        Parameters
        ----------
        X : array_like, shape (n, d)
            Training vectors (centred and length-normalised in the usual pipeline).
        speakers : array_like, shape (n,)
            Speaker label of each vector: at least 2 speakers, and ``n - n_speakers >= d`` so that
            ``Sw`` is estimable. Speakers with a single vector are allowed (they inform ``Sb``).
        n_iter : int, default 10
            EM iterations (0 keeps the initialisation: ``Sw`` the within-class covariance, ``Sb``
            the covariance of the speaker means).

        Returns
        -------
        self
        """
        X = as_vectors(X)
        index, n_spk = speaker_index(speakers, len(X))
        n_iter = check_int(n_iter, "n_iter", low=0)
        n, d = X.shape
        if n - n_spk < d:
            raise DataError(f"PLDA: {n} vectors of {n_spk} speakers leave {n - n_spk} within-speaker degrees "
                            f"of freedom, fewer than the dimension {d}: Sw would be singular; reduce the "
                            "dimension (LDA) or add data")
        counts, means, W = class_stats(X, index, n_spk)
        mu = means.mean(axis=0)
        C = means - mu
        self._set(mu, C.T @ C / n_spk, W / n)
        self.history_ = []
        for it in range(n_iter + 1):
            self.history_.append(self._loglik(counts, means, W))
            if it == n_iter:
                break
            self._em_step(counts, means, W)
        return self

    def _em_step(self, counts, means, W) -> None:
        psi, A = self._psi, self._A
        n_spk, n = len(counts), counts.sum()
        nk = counts[:, None]
        U = (means - self.mean_) @ A
        # posterior of each speaker's latent (mu + y) in u-coordinates: mean n psi/(1 + n psi) ubar,
        # variance psi/(1 + n psi), dimension by dimension
        V = psi / (1 + nk * psi)
        T = self.within_ @ A                       # = A^-T, back from u- to x-coordinates
        M = self.mean_ + (nk * V * U) @ T.T        # posterior means, (S, d)
        # M-step (Sizov et al. eqs. for the two-covariance model): mu and Sb from the posterior moments
        # of the speaker latents, Sw from the expected residuals x - (mu + y)
        mu = M.mean(axis=0)
        Mc = M - mu
        Sb = (Mc.T @ Mc + (T * V.sum(axis=0)) @ T.T) / n_spk
        D = means - M
        Sw = (W + (D * nk).T @ D + (T * (nk * V).sum(axis=0)) @ T.T) / n
        self._set(mu, Sb, Sw)

    def _loglik(self, counts, means, W) -> float:
        """Exact marginal log-likelihood from per-speaker counts and means and the within scatter."""
        psi, A = self._psi, self._A
        n = counts.sum()
        d = len(psi)
        nk = counts[:, None]
        U = (means - self.mean_) @ A
        # per speaker and dimension, n values u_i with covariance I + psi 11^T: log-determinant
        # log(1 + n psi), quadratic form sum (u_i - ubar)^2 + n ubar^2 / (1 + n psi);
        # the Jacobian of x -> u contributes -n/2 log det Sw
        quad = np.sum(W * (A @ A.T)) + np.sum(nk * U ** 2 / (1 + nk * psi))
        logdet = n * self._logdet_w + np.sum(np.log1p(nk * psi))
        return float(-0.5 * (n * d * _LOG_2PI + logdet + quad))

    def log_likelihood(self, X, speakers) -> float:
        """Exact log-likelihood of ``X`` under the model, speakers independent, each with one ``y``.

        Parameters
        ----------
        X : array_like, shape (n, d)
        speakers : array_like, shape (n,)
            Speaker label of each vector (at least 2 speakers).

        Returns
        -------
        float
            ``sum_s log N([x_s1..x_sn]; [mu..mu], I (x) Sw + 11^T (x) Sb)``.
        """
        d = self._check_fitted()
        X = as_vectors(X, dim=d)
        index, n_spk = speaker_index(speakers, len(X))
        counts, means, W = class_stats(X, index, n_spk)
        return self._loglik(counts, means, W)

    # ----- scoring
    def llr(self, models, test) -> np.ndarray:
        """Log-likelihood ratios of every speaker model against every test vector.

        For a model enrolled with ``n`` vectors ``E`` and a test vector ``t``:
        ``LLR = log p(E, t | one speaker) - log p(E | one speaker) - log p(t)``. Only the count
        and mean of each model's vectors matter, so ``M x T`` scores cost two matrix products.

        Parameters
        ----------
        models : list of array_like (n_i, d), or dict name -> array_like (n_i, d)
            Enrolment vectors of each model (``n_i >= 1``); a dict's order gives the row order.
        test : array_like, shape (T, d)

        Returns
        -------
        ndarray, shape (M, T)
        """
        d = self._check_fitted()
        mats = model_list(models, d)
        t = as_vectors(test, what="test", dim=d)
        psi, A = self._psi, self._A
        n = np.array([len(E) for E in mats], dtype=np.float64)[:, None]
        Ue = (np.stack([E.mean(axis=0) for E in mats]) - self.mean_) @ A
        Ut = (t - self.mean_) @ A
        # per dimension, with a = psi/(1+(n+1)psi), c = psi/(1+n psi), b = psi/(1+psi):
        # 2 LLR = log(1+n psi) + log(1+psi) - log(1+(n+1)psi) + a (n ubar + t)^2 - c n^2 ubar^2 - b t^2;
        # a - c and a - b are written out so large psi does not cancel
        den = 1 + (n + 1) * psi
        a = psi / den
        a_c = -psi ** 2 / (den * (1 + n * psi))
        a_b = -n * psi ** 2 / (den * (1 + psi))
        const = np.sum(np.log1p(n * psi) + np.log1p(psi) - np.log1p((n + 1) * psi) + a_c * (n * Ue) ** 2, axis=1)
        return 0.5 * (const[:, None] + (2 * n * a * Ue) @ Ut.T + a_b @ (Ut ** 2).T)
