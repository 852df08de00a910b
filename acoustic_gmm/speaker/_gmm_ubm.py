"""GMM-UBM speaker verification (Reynolds, Quatieri & Dunn, 2000), every step from Python.

* :func:`train_ubm` -- a universal background model (UBM): one large diagonal GMM of many
  speakers' frames, from a feature archive (streamed, a subset, subsampled, or on Dask);
* :func:`enroll` -- speakers enrolled by MAP adaptation of the UBM (:func:`map_adapt`, the
  statistics and the update are :mod:`acoustic_gmm.gmm`'s), relevance factor ``r``: a component
  moves towards a speaker's data in proportion to ``n_k / (n_k + r)``, its occupancy ``n_k`` in
  the enrolment frames; or ML GMMs trained from scratch (the baseline);
* :func:`verify_trials` -- a trial's score: the average per-frame log-likelihood ratio between
  the speaker's model and the UBM, exactly or over each frame's top-C UBM components (chosen once
  per test utterance and shared by every model it is scored against) (:class:`Scorer`), with
  z-, t- or s-norm against an impostor cohort;
* :func:`score_file_metrics` -- EER, minDCF and DET curves of a Kaldi score file.

Speaker models are stored compactly (only what was adapted) with an identifier of their UBM
(:func:`save_speakers`; the file format is :mod:`acoustic_gmm.storage`'s).

Examples
--------
::

    ubm, meta = train_ubm("train.h5", 256)
    speakers = enroll(ubm.model_, "enrol.h5", relevance=16.0, adapt="m")
    save_speakers("speakers.h5", speakers, ubm.model_, adapt="m", relevance=16.0)
    scores, info = verify_trials("speakers.h5", Trials.read("trials"), "test.h5", ubm=ubm.model_)
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError, ModelFileError, ParameterError, check_frames
from ..gmm._estimator import GMM
from ..gmm._files import ubm_id
from ..gmm._model import DiagGMM, log_normalize, logsumexp
from ..gmm._stats import accumulate
from ..gmm._update import MAP_UPDATES, map_update
from ..storage._archive import opened

__all__ = ["load_ubm", "ubm_config", "train_ubm", "Enrolled", "map_adapt", "enroll", "Scorer"]


ADAPT = MAP_UPDATES


# --------------------------------------------------------------------------- the UBM

def load_ubm(path) -> DiagGMM:
    """The diagonal GMM stored in ``path`` (written by :func:`train_ubm` and ``GMM.save``)."""
    ubm = GMM.load(path)
    if ubm.covariance_type != "diag":
        raise ModelFileError(f"{path}: a UBM must have diagonal covariances (covariance_type is "
                             f"{ubm.covariance_type!r})")
    return ubm.model_


def ubm_config(path):
    """The feature configuration a UBM's frames were read with (its metadata's ``feature_config``, an
    :class:`~acoustic_gmm.features.MfccConfig`), or None when it has none: what enrolment, scoring and i-vectors
    read their archives with, so that a raw archive gives them the UBM's normalisation."""
    from ..features._config import MfccConfig
    from ..gmm._files import load_metadata

    config = load_metadata(path).get("feature_config")  # checked there, the models not read again
    return None if config is None else MfccConfig.from_dict(config)


def train_ubm(archive, n_components: int = 256, *, ids=None, subsample: int = 1, client=None,
              max_memory: int | None = None, progress=None, checkpoint=None, resume: bool = True,
              on_resume=None, view=None, gselect="auto") -> tuple[GMM, dict]:
    """Train a UBM on the pooled frames of a feature archive; returns the fitted GMM and its metadata.

    Parameters
    ----------
    archive : str, Path or FeatureArchive
        The frames (n_frames, n_features): read into memory once when they fit ``max_memory``,
        else streamed from disk on every EM pass (the same result).
    ids : list of str, optional
        Train on these utterances only.
    subsample : int
        Keep every ``subsample``-th frame (of ``ids``' frames).
    client : dask.distributed.Client or str, optional
        Run the E-steps as Dask tasks (a client or a scheduler address); the workers must see the
        archive at the same path.
    max_memory : int, optional
        Bytes of frames to hold in memory (see :class:`~acoustic_gmm.GMM`); 0 always streams.
    progress : callable, optional
        ``progress(iteration, n_components, avg_loglik)`` after every EM iteration.
    checkpoint : str or path-like, optional
        Save the training's state to this file after every growth stage and every 30 s, and continue from it
        if it exists (see :meth:`GMM.fit <acoustic_gmm.gmm.GMM.fit>`): a killed run, started again with
        the same arguments, ends with the model an uninterrupted one gives.  Removed on success.  The
        command line keeps it beside the model (:func:`acoustic_gmm.gmm.checkpoint_path`).
    resume : bool
        Continue from ``checkpoint`` if it exists; False removes it first and starts afresh.
    on_resume : callable, optional
        ``on_resume(path, n_components, iteration)`` once, when training continues from ``checkpoint``.
    gselect : "auto", None or int
        Gaussian selection in the E-steps of large models (see :class:`~acoustic_gmm.GMM`): from 1,024
        components on by default, None for exact EM.

    Returns
    -------
    (GMM, dict)
        The fitted estimator, and what to store with it (``GMM.save(path, name="ubm", metadata=...)``):
        kind, ubm_id, feature_config, sample_rate, trained_on, n_frames.

    Examples
    --------
    ::

        ubm, meta = train_ubm("feats.h5", 512)
        ubm.save("ubm.h5", name="ubm", metadata=meta)
    """
    if isinstance(subsample, bool) or not isinstance(subsample, int) or subsample < 1:
        raise ParameterError(f"subsample must be an integer >= 1, got {subsample!r}")
    if client is not None and subsample != 1:
        raise ParameterError(f"subsample={subsample} is not available with client= (on a Dask cluster every frame "
                             f"is read)")
    if checkpoint is not None and not resume:
        Path(checkpoint).unlink(missing_ok=True)
    fit_options = dict(progress=progress, checkpoint=checkpoint, on_resume=on_resume)
    with opened(archive, view) as fa:
        X = fa if ids is None else fa.subset(ids)
        if client is not None:
            from ..gmm._dask import DaskFrames
            from ..storage._parallel import connect

            with connect(client) as c:
                X = DaskFrames(fa.path, c, ids=None if ids is None else X.ids, view=fa.config)
                try:
                    model = GMM(n_components, gselect=gselect).fit(X, **fit_options)
                finally:
                    X.close()
        else:
            if subsample != 1:  # only the kept rows are read
                X = X.rows(np.arange(0, X.n_frames_total, subsample))
            model = GMM(n_components, max_memory=max_memory, gselect=gselect).fit(X, **fit_options)
        n = X.n_frames_total if not isinstance(X, np.ndarray) else len(X)
        meta = {"kind": "ubm", "ubm_id": ubm_id(model.model_), "feature_config": fa.config.to_dict(),
                "sample_rate": fa.sample_rate, "trained_on": str(fa.path), "n_frames": n}
    return model, meta


# --------------------------------------------------------------------------- enrolment

@dataclass
class Enrolled:
    """An enrolled speaker: what was adapted (means always), and the enrolment occupancy.

    ``means`` (n_components, n_features); ``weights`` (n_components,) and ``variances``
    (n_components, n_features) when adapted (else the UBM's); ``occupancy`` (n_components,).
    """

    means: np.ndarray
    weights: np.ndarray | None = None
    variances: np.ndarray | None = None
    n_frames: int = 0
    occupancy: np.ndarray | None = None  # per UBM component

    def model(self, ubm: DiagGMM) -> DiagGMM:
        return DiagGMM(ubm.weights if self.weights is None else self.weights, self.means,
                       ubm.variances if self.variances is None else self.variances, dtype=ubm.dtype)


def map_adapt(ubm: DiagGMM, frames, *, relevance: float = 16.0, adapt: str = "m") -> Enrolled:
    """MAP-adapt the UBM to one speaker's frames (one array (n_frames, n_features), or a list of utterances).

    The statistics are :func:`acoustic_gmm.gmm.accumulate`'s and the update
    :func:`acoustic_gmm.gmm.map_update`'s.  ``relevance`` -> infinity returns the UBM;
    ``relevance = 0`` gives the maximum-likelihood parameters under the UBM's responsibilities.

    Examples
    --------
    >>> ubm = DiagGMM([0.5, 0.5], [[0.0], [4.0]], [[1.0], [1.0]], dtype="float64")
    >>> e = map_adapt(ubm, np.full((16, 1), 1.0), relevance=16.0)
    >>> np.round(e.means, 2).ravel().tolist(), e.n_frames   # the near component moves halfway, the far one barely
    ([0.5, 3.95], 16)
    """
    parts = frames if isinstance(frames, (list, tuple)) else [frames]
    X = np.concatenate([check_frames(x, n_features=ubm.n_features, what="enrolment frames") for x in parts])
    stats = accumulate(ubm, X)  # one pass over all utterances: per-utterance calls cost more than the arithmetic
    adapted = map_update(stats, ubm, relevance=relevance, update=adapt)
    return Enrolled(adapted.means, adapted.weights if "w" in adapt else None,
                    adapted.variances if "v" in adapt else None, stats.n_frames, stats.occ)


def enrollment_groups(archive) -> dict[str, list[str]]:
    """``{speaker: [utterance, ...]}`` from an archive's utt2spk (every utterance must have a speaker)."""
    groups: dict[str, list[str]] = {}
    for u in archive.ids:
        if not archive.speakers[u]:
            raise DataError(f"{archive.path}: utterance {u} has no speaker; give the enrolment lists (groups=)")
        groups.setdefault(archive.speakers[u], []).append(u)
    return groups


def enroll(ubm: DiagGMM, archive, groups: dict | None = None, *, relevance: float = 16.0, adapt: str = "m",
           method: str = "map", view=None) -> dict[str, Enrolled]:
    """Enrol speakers from a feature archive: ``{model: Enrolled}``.

    ``groups`` maps each model to its utterances (Kaldi's spk2utt; default: the archive's
    speakers).  ``method="map"`` adapts the UBM (:func:`map_adapt`); ``"ml"`` trains each
    speaker's GMM from scratch, with as many components (the baseline MAP should beat).  A
    speaker with fewer frames than components, or an ML fit that met trouble, is reported as a
    ``UserWarning``.  ``view``: how the archive is read, the UBM's (:func:`ubm_config`).
    """
    if method not in ("map", "ml"):
        raise ParameterError(f"method must be 'map' or 'ml', got {method!r}")
    if adapt not in ADAPT:
        raise ParameterError(f"adapt must be one of {list(ADAPT)}, got {adapt!r}")
    K = ubm.n_components
    speakers = {}
    with opened(archive, view) as fa:
        groups = enrollment_groups(fa) if groups is None else {m: fa.check_ids(ids) for m, ids in groups.items()}
        for name, ids in groups.items():
            frames = fa.utterances(ids)
            speakers[name] = (_ml_speaker(name, frames, K) if method == "ml"
                              else map_adapt(ubm, frames, relevance=relevance, adapt=adapt))
            e = speakers[name]
            if e.n_frames < K:
                occupied = "" if e.occupancy is None else f" (occupied components: {int((e.occupancy > 1).sum())})"
                warnings.warn(f"{name}: {e.n_frames} enrolment frames, fewer than the UBM's {K} components; "
                              f"MAP still works{occupied}", stacklevel=2)
    return speakers


def _ml_speaker(name: str, frames: list, n_components: int) -> Enrolled:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            g = GMM(n_components).fit(np.vstack(frames)).model_
        except DataError as exc:  # the estimator calls its frames X: say whose they are
            raise DataError(f"speaker {name!r}: {str(exc).removeprefix('X: ')}") from None
    if caught:
        warnings.warn(f"{name}: the ML GMM met {len(caught)} warning(s) (too few frames for {n_components} "
                      f"components?): {caught[0].message}", stacklevel=3)
    return Enrolled(g.means, g.weights, g.variances, sum(map(len, frames)))


# --------------------------------------------------------------------------- scoring

class Scorer:
    """LLR scores of test utterances against enrolled speakers, exact or over top-C UBM components.

    Every model's components are written as a projection of ``[x - c, (x - c)^2]`` (``c`` the
    UBM's centre), so exact scoring is one matrix product for all models and components, and
    top-C scoring is one product per UBM component, over only the frames that chose it.
    """

    def __init__(self, ubm: DiagGMM, speakers: dict[str, Enrolled]):
        self.ubm, self.names = ubm, sorted(speakers)
        self.index = {s: i for i, s in enumerate(self.names)}
        A, b = zip(*(speakers[s].model(ubm).projection(ubm.offset) for s in self.names))
        self.A = np.ascontiguousarray(np.stack(A).transpose(0, 2, 1), dtype=np.float32)   # (N, K, 2D)
        self.b = np.stack(b).astype(np.float32)                                           # (N, K)

    def score_many(self, utterances, *, top_c: int | None = 5, chunk: int = 4096) -> np.ndarray:
        """Average per-frame LLR of each utterance against every model: (n_utterances, n_models)."""
        utts = [check_frames(u, n_features=self.ubm.n_features, what=f"test utterance {i}")
                for i, u in enumerate(utterances)]
        lengths = np.array([len(u) for u in utts])
        X = np.concatenate(utts).astype(np.float32)
        owner = np.repeat(np.arange(len(utts)), lengths)
        N, K, _ = self.A.shape
        totals = np.zeros((len(utts), N))
        A2 = self.A.reshape(N * K, -1)
        exact = top_c is None or top_c >= K
        # bound the (frames x models x components) block: about 32 M values
        chunk = max(16, min(chunk, (1 << 25) // (N * (K if exact else top_c))))
        for a in range(0, len(X), chunk):
            E = self.ubm.expand(X[a:a + chunk])
            L = self.ubm.log_joint(X[a:a + chunk], E)
            ubm_ll = log_normalize(L.copy())
            if exact:
                S = (E @ A2.T).reshape(len(E), N, K) + self.b
                S = S.transpose(0, 2, 1)                                # (n, K, N)
            else:
                sel = np.argpartition(L, -top_c, axis=1)[:, -top_c:]   # (n, C): the UBM's best components
                S = np.empty((len(E), top_c, N), dtype=np.float32)
                order = np.argsort(sel, axis=None, kind="stable")
                ks = sel.ravel()[order]
                bounds = np.flatnonzero(np.diff(ks)) + 1
                for idx in np.split(order, bounds):
                    k = sel.flat[idx[0]]
                    rows, cols = np.divmod(idx, top_c)
                    S[rows, cols] = E[rows] @ self.A[:, k, :].T + self.b[:, k]
            spk_ll = logsumexp(S, axis=1, overwrite=True)              # (n, N)
            llr = spk_ll - ubm_ll[:, None]
            who = owner[a:a + chunk]
            starts = np.r_[0, np.flatnonzero(np.diff(who)) + 1]
            totals[who[starts]] += np.add.reduceat(llr, starts, axis=0)
        return totals / lengths[:, None]

    def score(self, frames, models=None, *, top_c: int | None = 5) -> np.ndarray:
        """Average per-frame LLR of one utterance against ``models`` (names; default all)."""
        scores = self.score_many([frames], top_c=top_c)[0]
        return scores if models is None else scores[[self.index[m] for m in models]]
