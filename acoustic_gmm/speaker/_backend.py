"""The i-vector back end as one object: centring, LDA or WCCN, length norm, then PLDA or cosine scoring.

:class:`Backend` chains the steps of ``_vectors`` and ``_plda`` (Kaldi's ``egs/sre10/v1`` order) and is stored as
plain arrays plus JSON-able parameters (:meth:`Backend.to_arrays`, :meth:`Backend.params`,
:meth:`Backend.from_arrays`).

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> speakers = np.repeat(np.arange(40), 5)
>>> X = rng.normal(0, 2, (40, 8))[speakers] + rng.normal(0, 1, (200, 8))   # 40 speakers x 5 i-vectors
>>> be = Backend(lda_dim=6).fit(X, speakers)
>>> names, scores = be.score({"a": X[:3], "b": X[5:8]}, X[[3, 4, 8]])
>>> names, scores.shape
(['a', 'b'], (2, 3))
>>> bool(scores[0, 0] > scores[1, 0] and scores[1, 2] > scores[0, 2])
True
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..errors import DataError, NotFittedError, ParameterError
from ._plda import PLDA
from ._vectors import as_vectors, check_int, cosine_scores, lda, length_norm, model_list, speaker_index

__all__ = ["Backend"]


#: The scoring methods :class:`Backend` knows.
SCORINGS = ("plda", "cosine")


_FORMAT = "acoustic_gmm.speaker"


_VERSION = 1


# --------------------------------------------------------------------------- the pipeline

class Backend:
    """Centring -> optional LDA -> length normalisation -> PLDA or cosine scoring.

    Parameters
    ----------
    lda_dim : int or None, default None
        LDA output dimension (``<= n_speakers - 1`` and ``<=`` the i-vector dimension), or no LDA.
    scoring : {"plda", "cosine"}, default "plda"
    plda_iter : int, default 10
        EM iterations of the PLDA (ignored for cosine scoring).

    Attributes
    ----------
    mean_ : ndarray, shape (d,)
        Mean of the training i-vectors.
    lda_ : ndarray, shape (d, lda_dim), or None
    plda_ : PLDA or None
        Trained on the transformed training vectors (``scoring="plda"`` only).

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> spk = np.repeat(np.arange(30), 4)
    >>> X = rng.normal(0, 2, (30, 6))[spk] + rng.normal(0, 1, (120, 6))
    >>> be = Backend(lda_dim=4).fit(X, spk)
    >>> be.transform(X).shape
    (120, 4)
    >>> clone = Backend.from_arrays(be.to_arrays(), be.params())
    >>> names, s = clone.score({"m": X[:2]}, X[2:4])
    >>> bool(np.array_equal(s, be.score({"m": X[:2]}, X[2:4])[1]))
    True
    """

    def __init__(self, lda_dim: int | None = None, scoring: str = "plda", plda_iter: int = 10):
        if lda_dim is not None:
            lda_dim = check_int(lda_dim, "lda_dim", low=1)
        if scoring not in SCORINGS:
            raise ParameterError(f"scoring must be one of {SCORINGS}, got {scoring!r}")
        self.lda_dim = lda_dim
        self.scoring = scoring
        self.plda_iter = check_int(plda_iter, "plda_iter", low=0)
        self.mean_ = self.lda_ = self.plda_ = None

    def __repr__(self) -> str:
        return f"Backend(lda_dim={self.lda_dim!r}, scoring={self.scoring!r}, plda_iter={self.plda_iter!r})"

    def _check_fitted(self) -> int:
        if self.mean_ is None:
            raise NotFittedError("Backend: call fit() (or from_arrays()) first")
        return len(self.mean_)

    def fit(self, X, speakers) -> Backend:
        """Train the mean, the LDA (if ``lda_dim``) and the PLDA (if ``scoring="plda"``).

        Parameters
        ----------
        X : array_like, shape (n, d)
            Training i-vectors.
        speakers : array_like, shape (n,)
            Speaker label of each (at least 2 speakers; several vectors per speaker for LDA/PLDA).

        Returns
        -------
        self
        """
        X = as_vectors(X)
        speaker_index(speakers, len(X))  # fail on the labels before any work
        mean = X.mean(axis=0)
        Xc = X - mean
        P = lda(Xc, speakers, self.lda_dim) if self.lda_dim is not None else None
        Y = length_norm(Xc if P is None else Xc @ P)
        plda = PLDA().fit(Y, speakers, n_iter=self.plda_iter) if self.scoring == "plda" else None
        self.mean_, self.lda_, self.plda_ = mean, P, plda
        return self

    def transform(self, X) -> np.ndarray:
        """Raw i-vectors ``(n, d)`` -> centred, projected, length-normalised ``(n, lda_dim or d)``."""
        d = self._check_fitted()
        Xc = as_vectors(X, dim=d, min_rows=0) - self.mean_
        return length_norm(Xc if self.lda_ is None else Xc @ self.lda_)

    def score(self, models, test) -> tuple[list, np.ndarray]:
        """Score speaker models against test i-vectors.

        Parameters
        ----------
        models : dict name -> array_like (n_i, d)
            Raw enrolment i-vectors of each model (``n_i >= 1``).
        test : array_like, shape (T, d)
            Raw test i-vectors.

        Returns
        -------
        names : list
            The model names, in the dict's order (the rows of ``scores``).
        scores : ndarray, shape (M, T)
            PLDA log-likelihood ratios (multi-vector enrolment), or cosine similarities between
            the length-normalised mean of each model's transformed vectors and each test vector.
        """
        d = self._check_fitted()
        if not isinstance(models, Mapping):
            raise DataError(f"models: expected a dict name -> (n_i, d) array, got {type(models).__name__}")
        names = list(models)
        mats = [self.transform(E) for E in model_list(models, d)]
        t = self.transform(as_vectors(test, what="test", dim=d))
        if self.scoring == "plda":
            return names, self.plda_.llr(mats, t)
        return names, cosine_scores(np.stack([E.mean(axis=0) for E in mats]), t)

    # ----- storage
    def params(self) -> dict:
        """JSON-able hyper-parameters and provenance; with :meth:`to_arrays`, all :meth:`from_arrays` needs."""
        d = self._check_fitted()
        return {"format": _FORMAT, "version": _VERSION, "dim": d, "lda_dim": self.lda_dim,
                "scoring": self.scoring, "plda_iter": self.plda_iter,
                "plda_history": [] if self.plda_ is None else [float(v) for v in self.plda_.history_]}

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The trained parameters as float64 arrays: ``mean``, ``lda`` (with LDA), and ``plda_mean``,
        ``plda_between``, ``plda_within`` (with PLDA scoring)."""
        self._check_fitted()
        out = {"mean": self.mean_.copy()}
        if self.lda_ is not None:
            out["lda"] = self.lda_.copy()
        if self.plda_ is not None:
            out.update(plda_mean=self.plda_.mean_.copy(), plda_between=self.plda_.between_.copy(),
                       plda_within=self.plda_.within_.copy())
        return out

    @classmethod
    def from_arrays(cls, arrays: Mapping, params: Mapping) -> Backend:
        """Rebuild the back end written by :meth:`to_arrays` and :meth:`params` (scores are identical).

        Raises
        ------
        ParameterError
            ``params`` or ``arrays`` are not those of a back end, or are mutually inconsistent.
        """
        if not isinstance(params, Mapping) or params.get("format") != _FORMAT:
            raise ParameterError(f"params: not the parameters of an {_FORMAT} (format is "
                                 f"{params.get('format') if isinstance(params, Mapping) else params!r})")
        if params.get("version") != _VERSION:
            raise ParameterError(f"params: version {params.get('version')!r} is not supported (expected {_VERSION})")
        try:
            be = cls(lda_dim=params["lda_dim"], scoring=params["scoring"], plda_iter=params["plda_iter"])
            d = check_int(params["dim"], "dim", low=1)
        except KeyError as exc:
            raise ParameterError(f"params: missing {exc.args[0]!r}") from None
        need = {"mean"} | ({"lda"} if be.lda_dim is not None else set()) \
            | ({"plda_mean", "plda_between", "plda_within"} if be.scoring == "plda" else set())
        missing = need - set(arrays)
        if missing:
            raise ParameterError(f"arrays: missing {sorted(missing)} for {be!r}")
        extra = set(arrays) - need
        if extra:
            raise ParameterError(f"arrays: unexpected {sorted(extra)} for {be!r}")
        get = {k: np.array(arrays[k], dtype=np.float64) for k in need}
        k = be.lda_dim if be.lda_dim is not None else d
        shapes = {"mean": (d,), "lda": (d, k), "plda_mean": (k,), "plda_between": (k, k), "plda_within": (k, k)}
        for key, arr in get.items():
            if arr.shape != shapes[key]:
                raise ParameterError(f"arrays: {key!r} has shape {arr.shape}, expected {shapes[key]} for {be!r} "
                                     f"of dimension {d}")
            if not np.isfinite(arr).all():
                raise ParameterError(f"arrays: {key!r} contains NaN or inf")
        be.mean_ = get["mean"]
        be.lda_ = get.get("lda")
        if be.scoring == "plda":
            try:
                be.plda_ = PLDA.from_params(get["plda_mean"], get["plda_between"], get["plda_within"])
            except DataError as exc:
                raise ParameterError(f"arrays: {exc}") from None
            be.plda_.history_ = [float(v) for v in params.get("plda_history", [])]
        return be
