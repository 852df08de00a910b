"""``GMM``: the scikit-learn-style face of the mixture engine.

Hyper-parameters are set in ``__init__`` and never changed by ``fit``; what is learned
ends in ``_``.  The parameters live in ``model_`` (a :class:`~acoustic_gmm.gmm.DiagGMM`
or :class:`~acoustic_gmm.gmm.FullGMM`); training is :func:`acoustic_gmm.gmm.train`.
"""

from __future__ import annotations

import functools
import inspect
import math
import os
import warnings

import numpy as np

from ..errors import ConvergenceWarning, DataError, ParameterError, check_frames, not_fitted
from ._gselect import gselect_for
from ._model import resolve_dtype
from ._sources import FrameSource, within_budget
from ._train import train as em_train

__all__ = ["GMM"]


class GMM:
    """Gaussian mixture model trained by EM with component splitting.

    Parameters
    ----------
    n_components : int
        Number of mixture components K.
    covariance_type : {"diag", "full"}
        ``"diag"`` is the fast path for cepstral features; ``"full"`` models rotated clusters.
    init : {"split", "kmeans", "random"}
        ``"split"`` grows 1 -> 2 -> 4 ... -> K by splitting the heaviest component (HTK's
        mix-up); ``"kmeans"`` seeds with k-means++ and Lloyd iterations; ``"random"`` puts
        the means on random frames.
    max_iter : int
        EM iterations at full size, at most.
    tol : float
        Stop when the average per-frame log-likelihood gains less than this.
    var_floor : float
        Variances are floored at ``var_floor`` times the global variance of the data.
    split_iter : int
        EM iterations after each growth step of ``init="split"``.
    schedule : sequence of int, optional
        Sizes to grow through with ``init="split"``; doubling (1, 2, 4, ...) by default.
    random_state : int or numpy Generator, optional
        Seeds ``init="kmeans"``/``"random"`` and :meth:`sample`.
    dtype : {"float32", "float64"}
        Precision of the arithmetic on frames; statistics are always summed in float64.
    chunk_size : int, optional
        Frames per block in the E-step (default: sized to the number of components).
    max_memory : int, optional
        Fitting on a feature archive: bytes of float32 frames read into memory once, so that EM
        runs on them in memory; a larger archive is streamed from disk on every pass.  Default:
        a quarter of the machine's RAM, at most 4 GiB (:func:`acoustic_gmm.gmm.default_max_memory`);
        0 always streams.  The result is the same either way.
    overrelax : float
        Diagonal models: EM at full size takes adaptive over-relaxed steps (Salakhutdinov & Roweis,
        2003), each ``eta`` times EM's own, ``eta`` growing by this factor while the likelihood rises
        and back to 1 when it would not; the likelihood still rises every iteration, in about half
        as many of them on speech.  1 gives plain EM (as HTK, Kaldi and scikit-learn run it).
    gselect : "auto", None or int
        Gaussian selection: from 1,024 components on (``"auto"``), each frame's E-step visits only its 30
        best components, chosen with the model every few iterations (Kaldi's ``gmm-gselect``); None for exact
        EM at every size, or a number of components to keep (:mod:`acoustic_gmm.gmm._gselect`).

    Attributes
    ----------
    weights_, means_, covariances_ : ndarray
        (n_components,), (n_components, n_features), and (n_components, n_features) for diag or
        (n_components, n_features, n_features) for full.
    converged_ : bool
    n_iter_ : int
        EM iterations run at full size.
    history_ : ndarray
        Average per-frame log-likelihood after every EM iteration, across all split stages.
    history_n_components_ : ndarray
        Number of components in use at each entry of ``history_``.

    Examples
    --------
    >>> import numpy as np
    >>> from acoustic_gmm import GMM
    >>> rng = np.random.default_rng(0)
    >>> X = np.vstack([rng.normal(-3, 1, (500, 2)), rng.normal(3, 1, (500, 2))])
    >>> g = GMM(2, random_state=0).fit(X)
    >>> np.round(np.sort(g.means_[:, 0]))
    array([-3.,  3.])
    >>> g.predict(np.array([[-3.0, -3.0], [3.0, 3.0]])).tolist() in ([0, 1], [1, 0])
    True
    """

    def __init__(self, n_components=1, *, covariance_type="diag", init="split", max_iter=100, tol=1e-3,
                 var_floor=1e-3, split_iter=4, schedule=None, random_state=None, dtype="float32",
                 chunk_size=None, max_memory=None, overrelax=1.5, gselect="auto"):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.init = init
        self.max_iter = max_iter
        self.tol = tol
        self.var_floor = var_floor
        self.split_iter = split_iter
        self.schedule = schedule
        self.random_state = random_state
        self.dtype = dtype
        self.chunk_size = chunk_size
        self.max_memory = max_memory
        self.overrelax = overrelax
        self.gselect = gselect

    # ------------------------------------------------------------------ sklearn plumbing
    def __sklearn_tags__(self):
        # A density estimator in scikit-learn's terms.  Not by deriving from BaseEstimator and DensityMixin:
        # importing sklearn.base costs ~1.2 s here, which every command line run would pay (a cold
        # `acoustic-gmm classify` takes 0.7 s in all); scikit-learn is imported only when it asks.
        from sklearn.utils import InputTags, Tags, TargetTags

        return Tags(estimator_type="density_estimator", target_tags=TargetTags(required=False),
                    input_tags=InputTags(two_d_array=True))

    def get_params(self, deep=True) -> dict:
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {name: getattr(self, name) for name in names}

    def set_params(self, **params) -> "GMM":
        valid = self.get_params()
        for key, value in params.items():
            if key not in valid:
                raise ParameterError(f"GMM has no parameter {key!r}; valid: {sorted(valid)}")
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        defaults = {p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()}
        shown = [f"{k}={v!r}" for k, v in self.get_params().items() if v != defaults.get(k)]
        return f"GMM({', '.join(shown)})"

    def _check_params(self) -> None:
        def positive_int(name, value, minimum=1):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
                raise ParameterError(f"{name} must be an integer >= {minimum}, got {value!r}")
        positive_int("n_components", self.n_components)
        positive_int("max_iter", self.max_iter)
        positive_int("split_iter", self.split_iter, 0)
        if self.covariance_type not in ("diag", "full"):
            raise ParameterError(f"covariance_type must be 'diag' or 'full', got {self.covariance_type!r}")
        if self.init not in ("split", "kmeans", "random"):
            raise ParameterError(f"init must be 'split', 'kmeans' or 'random', got {self.init!r}")
        if not (isinstance(self.tol, (int, float)) and self.tol >= 0 and math.isfinite(self.tol)):
            raise ParameterError(f"tol must be a finite number >= 0, got {self.tol!r}")
        if not (isinstance(self.var_floor, (int, float)) and 0 <= self.var_floor < 1):
            raise ParameterError(f"var_floor must be in [0, 1) (a fraction of the global variance), "
                                 f"got {self.var_floor!r}")
        if self.chunk_size is not None:
            positive_int("chunk_size", self.chunk_size)
        if self.max_memory is not None:
            positive_int("max_memory", self.max_memory, 0)
        if not (isinstance(self.overrelax, (int, float)) and not isinstance(self.overrelax, bool)
                and 1 <= self.overrelax <= 4):
            raise ParameterError(f"overrelax must be a number in [1, 4] (1 = plain EM), got {self.overrelax!r}")
        resolve_dtype(self.dtype)
        gselect_for(self.gselect, self.n_components)  # a bad value refused before any reading

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y=None, *, progress=None, checkpoint=None, on_resume=None) -> "GMM":
        """Estimate the mixture from frames ``X`` (n_frames, n_features).

        Parameters
        ----------
        X : array_like, FeatureArchive or path
            Frames (n_frames, n_features), or a feature archive (a
            :class:`~acoustic_gmm.storage.FeatureArchive`, a subset of one, or the path of one): its
            frames are read into memory once if they fit ``max_memory``, else EM streams them from
            disk, block by block, in bounded memory.
        y : ignored
        progress : callable, optional
            Called as ``progress(iteration, n_components, avg_loglik)`` after every EM iteration.
        checkpoint : str or path-like, optional
            A file where training saves its state after every growth stage and at most every 30 s
            (atomically), so that a run that is killed can be continued: if the file exists, ``fit``
            resumes from it and ends with the model, ``history_`` and ``n_iter_`` of an uninterrupted run.
            A checkpoint of other frames or other hyper-parameters is refused (:class:`~acoustic_gmm.errors.ParameterError` naming
            the file and what differs).  The file is removed once ``fit`` succeeds.  Its directory must
            exist.  Format: :mod:`acoustic_gmm.gmm`.
        on_resume : callable, optional
            Called once as ``on_resume(path, n_components, iteration)`` when ``fit`` continues from
            ``checkpoint``: the stage's size and the EM iterations done before.

        Returns
        -------
        GMM
            ``self``, fitted.

        Examples
        --------
        ::

            g = GMM(256).fit("feats.h5", checkpoint="ubm.ckpt.h5")   # run again after a crash: it resumes
        """
        self._check_params()
        if isinstance(X, (str, os.PathLike)):
            from ..storage._archive import FeatureArchive

            with FeatureArchive(X) as archive:
                return self.fit(archive, y, progress=progress, checkpoint=checkpoint, on_resume=on_resume)
        if isinstance(X, FrameSource):  # its frames were checked when it was written
            if X.n_frames_total < max(2, self.n_components):
                raise DataError(f"{getattr(X, 'path', 'frame source')}: {X.n_frames_total} frame(s), at least "
                                f"{max(2, self.n_components)} needed")
            X = within_budget(X, self.max_memory)
        else:
            X = check_frames(X, min_frames=max(2, self.n_components))
        if checkpoint is not None:
            from ._checkpoint import CheckpointFile

            checkpoint = CheckpointFile(checkpoint)
            if on_resume is not None:  # _train.train does not know the checkpoint is a file: name it here
                on_resume = functools.partial(on_resume, checkpoint.path)
        model, history, converged, n_iter = em_train(
            X, self.n_components, covariance_type=self.covariance_type, init=self.init,
            max_iter=self.max_iter, tol=self.tol, var_floor=self.var_floor, split_iter=self.split_iter,
            schedule=self.schedule, dtype=self.dtype, random_state=self.random_state,
            chunk=self.chunk_size, progress=progress, overrelax=self.overrelax, checkpoint=checkpoint,
            gselect=self.gselect,
            on_resume=on_resume)
        self._set_model(model)
        self.history_ = np.array(history.loglik)
        self.history_n_components_ = np.array(history.n_components, dtype=int)
        self.converged_ = converged
        self.n_iter_ = n_iter
        if not converged:
            gain = self.history_[-1] - self.history_[-2] if len(self.history_) > 1 else float("nan")
            warnings.warn(f"EM stopped after max_iter={self.max_iter} iterations with a per-frame "
                          f"log-likelihood gain of {gain:.3g} > tol={self.tol}; raise max_iter or tol",
                          ConvergenceWarning, stacklevel=2)
        return self

    def _set_model(self, model) -> None:
        self.model_ = model
        self.n_features_in_ = model.n_features

    def _model(self):
        try:
            return self.model_
        except AttributeError:
            raise not_fitted("this GMM is not fitted yet: call fit(X) or GMM.load(path) first") from None

    def _frames(self, X):
        return check_frames(X, n_features=self._model().n_features, owner="GMM")

    @property
    def weights_(self) -> np.ndarray:
        return self._model().weights

    @property
    def means_(self) -> np.ndarray:
        return self._model().means

    @property
    def covariances_(self) -> np.ndarray:
        return self._model().covariances

    # ------------------------------------------------------------------ inference
    def _model64(self):
        """The model in float64 for the scikit-learn face's scores: a float32 matrix product rounds a frame's score
        by where the frame sits in its block (1 ulp), and a frame's score must not depend on its neighbours."""
        m = self._model()
        return m if m.dtype == np.float64 else m.copy(dtype="float64")

    def score_samples(self, X) -> np.ndarray:
        """Per-frame log-likelihood ``log p(x)``, shape (n_frames,), float64 (computed in float64)."""
        return self._model64().score_samples(self._frames(X), self.chunk_size)

    def score(self, X, y=None) -> float:
        """Average per-frame log-likelihood."""
        return float(self.score_samples(X).mean())

    def predict_proba(self, X) -> np.ndarray:
        """Responsibilities p(k | x), shape (n_frames, K); each row sums to 1."""
        return self._model64().posteriors(self._frames(X), self.chunk_size)

    def predict(self, X) -> np.ndarray:
        """Most likely component of every frame (hard clustering)."""
        return self._model().posteriors(self._frames(X), self.chunk_size).argmax(1)

    def fit_predict(self, X, y=None) -> np.ndarray:
        return self.fit(X).predict(X)

    def n_parameters(self) -> int:
        """Free parameters: K-1 weights, K*D means, and the covariances."""
        return self._model().n_parameters()

    def bic(self, X) -> float:
        """Bayesian information criterion ``-2 log L + p log N`` (lower is better)."""
        X = self._frames(X)
        return float(-2 * self.score_samples(X).sum() + self.n_parameters() * np.log(len(X)))

    def aic(self, X) -> float:
        """Akaike information criterion ``-2 log L + 2 p`` (lower is better)."""
        return float(-2 * self.score_samples(X).sum() + 2 * self.n_parameters())

    def sample(self, n_samples=1):
        """Draw ``n_samples`` frames; returns ``(X, component_labels)``."""
        if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
            raise ParameterError(f"n_samples must be an integer >= 1, got {n_samples!r}")
        m = self._model()
        rng = np.random.default_rng(self.random_state)
        labels = rng.choice(m.n_components, size=n_samples, p=m.weights / m.weights.sum())
        z = rng.standard_normal((n_samples, m.n_features))
        if m.covariance_type == "diag":
            X = m.means[labels] + z * np.sqrt(m.variances[labels])
        else:
            chol = np.linalg.cholesky(m.covariances)
            X = m.means[labels] + np.einsum("nij,nj->ni", chol[labels], z)
        return X, labels

    # ------------------------------------------------------------------ storage
    def save(self, path, *, name: str = "gmm", metadata: dict | None = None) -> None:
        """Write the fitted model to an HDF5 file (atomically), with its hyper-parameters."""
        from ..errors import ModelFileError, OutputError
        from ._files import save_models

        params = {k: (list(v) if k == "schedule" and v is not None else v)
                  for k, v in self.get_params().items() if k != "random_state"}
        meta = {"estimator": params, **(metadata or {})}
        model = self._model()
        try:
            save_models(path, {name: model}, metadata=meta)
        except OutputError as exc:  # a directory, no such directory, another writer: a model file problem here
            raise ModelFileError(str(exc)) from None
        except ModelFileError:
            raise
        except OSError as exc:
            raise ModelFileError(f"{path}: cannot be written ({exc.strerror or exc})") from None

    @classmethod
    def load(cls, path, *, name: str | None = None) -> "GMM":
        """Read a model written by :meth:`save` (or one named model of a set)."""
        from ..errors import ModelFileError
        from ._files import load_models

        models, meta = load_models(path)
        if name is None:
            if len(models) != 1:
                raise ModelFileError(f"{path}: holds {len(models)} models ({', '.join(sorted(models)[:5])}"
                                     f"{', ...' if len(models) > 5 else ''}), not one GMM "
                                     f"(a model set from `acoustic-gmm train`?); GMM.load(path, name=...) reads one")
            name = next(iter(models))
        if name not in models:
            raise ModelFileError(f"{path}: no model named {name!r}")
        model = models[name]
        params = meta.get("estimator", {})
        if not isinstance(params, dict):
            raise ModelFileError(f"{path}: metadata 'estimator' is {type(params).__name__}, expected an object "
                                 f"of hyper-parameters")
        valid = set(inspect.signature(cls.__init__).parameters) - {"self"}
        est = cls(**{k: v for k, v in params.items() if k in valid})
        est.n_components = model.n_components
        est.covariance_type = model.covariance_type
        try:  # they are used when scoring (chunk_size, dtype ...): a wrong type must not fail there
            est._check_params()
            if est.schedule is not None and not (isinstance(est.schedule, list) and all(
                    isinstance(k, int) and not isinstance(k, bool) for k in est.schedule)):
                raise ParameterError(f"schedule must be a list of integers, got {est.schedule!r}")
        except ParameterError as exc:
            raise ModelFileError(f"{path}: metadata 'estimator': {exc}") from None
        est._set_model(model)
        return est
