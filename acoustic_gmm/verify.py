"""GMM-UBM speaker verification (Reynolds, Quatieri & Dunn, 2000), every step from Python.

* :func:`train_ubm` -- a universal background model (UBM): one large diagonal GMM of many
  speakers' frames, from a feature archive (streamed, a subset, subsampled, or on Dask);
* :func:`enroll` -- speakers enrolled by MAP adaptation of the UBM (:func:`map_adapt`, the
  statistics and the update are :mod:`acoustic_gmm.em`'s), relevance factor ``r``: a component
  moves towards a speaker's data in proportion to ``n_k / (n_k + r)``, its occupancy ``n_k`` in
  the enrolment frames; or ML GMMs trained from scratch (the baseline);
* :func:`verify_trials` -- a trial's score: the average per-frame log-likelihood ratio between
  the speaker's model and the UBM, exactly or over each frame's top-C UBM components (chosen once
  per test utterance and shared by every model it is scored against) (:class:`Scorer`), with
  z-, t- or s-norm against an impostor cohort;
* :func:`score_file_metrics` -- EER, minDCF and DET curves of a Kaldi score file.

Speaker models are stored compactly (only what was adapted) with an identifier of their UBM
(:func:`save_speakers`; the file format is :mod:`acoustic_gmm.archive`'s).

Examples
--------
::

    ubm, meta = train_ubm("train.h5", 256)
    speakers = enroll(ubm.model_, "enrol.h5", relevance=16.0, adapt="m")
    save_speakers("speakers.h5", speakers, ubm.model_, adapt="m", relevance=16.0)
    scores, info = verify_trials("speakers.h5", Trials.read("trials"), "test.h5", ubm=ubm.model_)
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .archive import load_speakers as _read_speakers
from .archive import opened, save_speakers as _write_speakers, write_text
from .em import MAP_UPDATES, accumulate, map_update
from .errors import ArchiveError, DataError, ModelFileError, ParameterError, check_frames
from .estimator import GMM
from .gmm import DiagGMM, log_normalize, logsumexp
from .outputs import save_png

__all__ = ["ubm_id", "load_ubm", "train_ubm", "Enrolled", "map_adapt", "enrollment_groups", "enroll",
           "save_speakers", "load_speakers", "require_ubm", "Scorer", "Trials", "read_scores", "write_scores",
           "score_trials", "normalise_trials", "verify_trials", "eer", "min_dcf", "error_rates", "det_png",
           "verification_metrics", "score_file_metrics"]

ADAPT = MAP_UPDATES
NORMS = ("none", "z", "t", "s")


def ubm_id(ubm: DiagGMM) -> str:
    """A short fingerprint of a UBM's parameters: speaker models name the UBM they came from."""
    h = hashlib.sha1()
    for a in (ubm.weights, ubm.means, ubm.variances):
        h.update(np.ascontiguousarray(a, dtype=np.float64).tobytes())
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------- the UBM

def load_ubm(path) -> DiagGMM:
    """The diagonal GMM stored in ``path`` (written by :func:`train_ubm` and ``GMM.save``)."""
    ubm = GMM.load(path)
    if ubm.covariance_type != "diag":
        raise ModelFileError(f"{path}: a UBM must have diagonal covariances (covariance_type is "
                             f"{ubm.covariance_type!r})")
    return ubm.model_


def train_ubm(archive, n_components: int = 256, *, ids=None, subsample: int = 1, client=None,
              max_memory: int | None = None, progress=None, checkpoint=None,
              on_resume=None) -> tuple[GMM, dict]:
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
        if it exists (see :meth:`GMM.fit <acoustic_gmm.estimator.GMM.fit>`): a killed run, started again with
        the same arguments, ends with the model an uninterrupted one gives.  Removed on success.
    on_resume : callable, optional
        ``on_resume(path, n_components, iteration)`` once, when training continues from ``checkpoint``.

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
    with opened(archive) as fa:
        X = fa if ids is None else fa.subset(ids)
        if client is not None:
            if subsample != 1:
                raise ParameterError("subsampling is not available on a Dask cluster (--subsample with --scheduler)")
            from .distributed import DaskFrames, connect

            with connect(client) as c:
                X = DaskFrames(fa.path, c, ids=None if ids is None else X.ids)
                try:
                    model = GMM(n_components).fit(X, progress=progress, checkpoint=checkpoint, on_resume=on_resume)
                finally:
                    X.close()
        else:
            if subsample != 1:  # only the kept rows are read
                X = X.rows(np.arange(0, X.n_frames_total, subsample))
            model = GMM(n_components, max_memory=max_memory).fit(X, progress=progress, checkpoint=checkpoint,
                                                                 on_resume=on_resume)
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

    The statistics are :func:`acoustic_gmm.em.accumulate`'s and the update
    :func:`acoustic_gmm.em.map_update`'s.  ``relevance`` -> infinity returns the UBM;
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
            raise DataError(f"{archive.path}: utterance {u} has no speaker; give the enrolment lists (--enroll)")
        groups.setdefault(archive.speakers[u], []).append(u)
    return groups


def enroll(ubm: DiagGMM, archive, groups: dict | None = None, *, relevance: float = 16.0, adapt: str = "m",
           method: str = "map") -> dict[str, Enrolled]:
    """Enrol speakers from a feature archive: ``{model: Enrolled}``.

    ``groups`` maps each model to its utterances (Kaldi's spk2utt; default: the archive's
    speakers).  ``method="map"`` adapts the UBM (:func:`map_adapt`); ``"ml"`` trains each
    speaker's GMM from scratch, with as many components (the baseline MAP should beat).  A
    speaker with fewer frames than components, or an ML fit that met trouble, is reported as a
    ``UserWarning``.
    """
    if method not in ("map", "ml"):
        raise ParameterError(f"method must be 'map' or 'ml', got {method!r}")
    if adapt not in ADAPT:
        raise ParameterError(f"adapt must be one of {list(ADAPT)}, got {adapt!r}")
    K = ubm.n_components
    speakers = {}
    with opened(archive) as fa:
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
        g = GMM(n_components).fit(np.vstack(frames)).model_
    if caught:
        warnings.warn(f"{name}: the ML GMM met {len(caught)} warning(s) (too few frames for {n_components} "
                      f"components?): {caught[0].message}", stacklevel=3)
    return Enrolled(g.means, g.weights, g.variances, sum(map(len, frames)))


# --------------------------------------------------------------------------- storage

def save_speakers(path, speakers: dict[str, Enrolled], ubm: DiagGMM, *, adapt: str, relevance: float,
                  metadata: dict | None = None) -> None:
    """Speaker models in one HDF5 file: only the adapted arrays, plus their UBM's identifier."""
    arrays = {name: {"means": e.means, "weights": e.weights, "variances": e.variances, "occupancy": e.occupancy,
                     "n_frames": e.n_frames} for name, e in speakers.items()}
    _write_speakers(path, arrays, ubm_id=ubm_id(ubm), adapt=adapt, relevance=relevance, metadata=metadata)


def load_speakers(path, ubm: DiagGMM | None = None) -> tuple[dict[str, Enrolled], dict]:
    """Read speaker models; with ``ubm``, check they were adapted from it (and fit its shape)."""
    arrays, info = _read_speakers(path)
    speakers = {name: Enrolled(**a) for name, a in arrays.items()}
    if ubm is not None:
        require_ubm(path, info, ubm)
        shape = next(iter(speakers.values())).means.shape  # all speakers share it (checked when read)
        if shape != ubm.means.shape:  # an identifier can be copied; the shapes must fit the UBM too
            raise ArchiveError(f"{path}: speaker means have shape {shape}, the UBM's {ubm.means.shape}")
    return speakers, info


def require_ubm(path, info: dict, ubm: DiagGMM) -> None:
    """Raise unless the speakers described by ``info`` (from :func:`load_speakers`) were adapted from ``ubm``."""
    if info["ubm_id"] != ubm_id(ubm):
        raise ArchiveError(f"{path}: speakers were adapted from UBM {info['ubm_id']}, not from the given UBM "
                           f"{ubm_id(ubm)}")


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


# --------------------------------------------------------------------------- trials

@dataclass
class Trials:
    """Kaldi-style trials: ``model utterance target|nontarget`` per line."""

    models: list[str] = field(default_factory=list)
    utterances: list[str] = field(default_factory=list)
    targets: list[bool | None] = field(default_factory=list)

    @classmethod
    def read(cls, path) -> "Trials":
        t = cls()
        for lineno, line in enumerate(Path(path).read_text().splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("target", "nontarget")):
                raise DataError(f"{path}:{lineno}: expected 'model utterance [target|nontarget]', got {line!r}")
            t.models.append(parts[0])
            t.utterances.append(parts[1])
            t.targets.append(None if len(parts) == 2 else parts[2] == "target")
        if not t.models:
            raise DataError(f"{path}: no trials")
        return t


def read_scores(path) -> tuple[list[tuple[str, str]], np.ndarray]:
    """A Kaldi score file (``model utterance score`` per line)."""
    pairs, values = [], []
    for lineno, line in enumerate(Path(path).read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        try:
            if len(parts) != 3:
                raise ValueError
            values.append(float(parts[2]))
        except ValueError:
            raise DataError(f"{path}:{lineno}: expected 'model utterance score', got {line!r}") from None
        if not np.isfinite(values[-1]):
            raise DataError(f"{path}:{lineno}: score is not finite: {line!r}")
        pairs.append((parts[0], parts[1]))
    if not pairs:
        raise DataError(f"{path}: no scores")
    return pairs, np.array(values)


def write_scores(path, trials: Trials, scores) -> None:
    """A Kaldi score file, ``model utterance score`` per trial, written atomically."""
    write_text(path, "".join(f"{m} {u} {x:.6f}\n" for m, u, x in zip(trials.models, trials.utterances, scores)))


def score_trials(scorer: Scorer, trials: Trials, archive, *, top_c: int | None = 5) -> np.ndarray:
    """One score per trial; every test utterance is scored once against all models."""
    unknown_models = sorted(set(trials.models) - set(scorer.names))
    if unknown_models:
        raise DataError(f"{len(unknown_models)} trial model(s) are not enrolled: {', '.join(unknown_models[:5])}"
                        + (", ..." if len(unknown_models) > 5 else ""))
    utts = list(dict.fromkeys(trials.utterances))
    missing = [u for u in utts if u not in archive]
    if missing:
        raise DataError(f"{len(missing)} trial utterance(s) are not in {archive.path}: {', '.join(missing[:5])}"
                        + (", ..." if len(missing) > 5 else ""))
    S = scorer.score_many(archive.utterances(utts), top_c=top_c)
    row = {u: i for i, u in enumerate(utts)}
    return np.array([S[row[u], scorer.index[m]] for m, u in zip(trials.models, trials.utterances)])


def normalise_trials(trials: Trials, raw: np.ndarray, norm: str, z_stats=None, t_stats=None) -> np.ndarray:
    """Apply z/t/s-norm per trial from ``{model: (mean, std)}`` and ``{utterance: (mean, std)}`` statistics."""
    z = t = None
    if norm in ("z", "s"):
        z = np.array([(x - z_stats[m][0]) / z_stats[m][1] for x, m in zip(raw, trials.models)])
    if norm in ("t", "s"):
        t = np.array([(x - t_stats[u][0]) / t_stats[u][1] for x, u in zip(raw, trials.utterances)])
    return {"z": z, "t": t, "s": None if z is None or t is None else 0.5 * (z + t)}[norm]


def warn_speaker_cmvn(fa) -> None:
    """Warn when an archive's frames were normalised per speaker (``cmvn="speaker"``, the front end's default):
    every utterance then carries its utt2spk speaker's statistics, the very answer a verification trial asks."""
    if getattr(fa.config, "cmvn", None) == "speaker":
        warnings.warn(f"{fa.path}: frames normalised per speaker (--cmvn speaker, the features default): each "
                      f"utterance used its utt2spk speaker's statistics, which a verification system does not know "
                      f"and which favour the true speaker; extract speaker-recognition features with --cmvn mean "
                      f"or --cmvn sliding", stacklevel=3)


def verify_trials(speakers_path, trials: Trials, archive, *, ubm: DiagGMM | str | None = None,
                  top_c: int | None = 5, norm: str = "none", cohort_utts=None, cohort_models=None
                  ) -> tuple[np.ndarray, dict]:
    """Score every trial: the average per-frame LLR of its utterance (in ``archive``) against its model.

    Parameters
    ----------
    speakers_path : str or Path
        Enrolled speakers (:func:`save_speakers`).
    trials : Trials
    archive : str, Path or FeatureArchive
        Holds the trials' utterances (and the cohort utterances).
    ubm : DiagGMM or path, optional
        The UBM the speakers were adapted from (default: the one recorded at enrolment).
    top_c : int or None
        Score each frame on its ``top_c`` best UBM components; None: exactly.  Speakers trained
        from scratch (``enroll(method="ml")``) are always scored exactly.
    norm : {"none", "z", "t", "s"}
        Score normalisation: z needs ``cohort_utts`` (impostor utterance ids), t ``cohort_models``
        (a speaker file of impostor models on the same UBM), s both.

    Returns
    -------
    (ndarray, dict)
        One score per trial (n_trials,), and how they were made: ``top_c`` (None if exact),
        ``norm``, ``seconds`` (scoring time without the normalisation).
    """
    if norm not in NORMS:
        raise ParameterError(f"norm must be one of {list(NORMS)}, got {norm!r}")
    if norm in ("z", "s") and cohort_utts is None:
        raise ParameterError(f"{norm}-norm needs impostor utterances (cohort_utts)")
    if norm in ("t", "s") and cohort_models is None:
        raise ParameterError(f"{norm}-norm needs impostor models (cohort_models)")
    speakers, info = load_speakers(speakers_path)
    if ubm is None or isinstance(ubm, (str, Path)):
        ubm = load_ubm(ubm or json.loads(info["metadata"]).get("ubm", ""))
    require_ubm(speakers_path, info, ubm)
    c = None if info["adapt"] == "ml" else top_c
    with opened(archive) as fa:
        warn_speaker_cmvn(fa)
        t0 = time.perf_counter()
        scorer = Scorer(ubm, speakers)
        raw = score_trials(scorer, trials, fa, top_c=c)
        seconds = time.perf_counter() - t0
        z_stats = t_stats = None
        if norm in ("z", "s"):
            imp = scorer.score_many(fa.utterances(fa.check_ids(cohort_utts)), top_c=c)            # (I, N)
            z_stats = {m: (imp[:, i].mean(), imp[:, i].std()) for m, i in scorer.index.items()}
        if norm in ("t", "s"):
            cohort = Scorer(ubm, load_speakers(cohort_models, ubm)[0])
            utts = list(dict.fromkeys(trials.utterances))
            coh = cohort.score_many(fa.utterances(utts), top_c=c)                                    # (U, Nc)
            t_stats = {u: (coh[i].mean(), coh[i].std()) for i, u in enumerate(utts)}
    if norm != "none":
        raw = normalise_trials(trials, raw, norm, z_stats, t_stats)
    return raw, {"top_c": c, "norm": norm, "seconds": seconds}


def score_file_metrics(scores_path, trials_path, *, det=None, allow_missing: bool = False) -> dict:
    """EER and minDCF of a score file (``model utterance score``) against the labels of a trials file.

    Every scored pair must be labelled in the trials, and every labelled trial scored: metrics over a part
    of the trials are not the trial list's, so a score file that misses some is an error, or with
    ``allow_missing`` a warning.  ``n_scored`` and ``n_trials`` in the result say how many of how many;
    ``det`` draws the DET curve to a PNG.
    """
    pairs, values = read_scores(scores_path)
    trials = Trials.read(trials_path)
    label = {(m, u): t for m, u, t in zip(trials.models, trials.utterances, trials.targets)}
    missing = [p for p in pairs if label.get(p) is None]
    if missing:
        raise DataError(f"{len(missing)} scored pair(s) have no target/nontarget label in {trials_path}: "
                        + ", ".join(" ".join(p) for p in missing[:3]))
    labelled = [p for p, t in label.items() if t is not None]
    scored = set(pairs)
    unscored = [p for p in labelled if p not in scored]
    if unscored:
        what = (f"{scores_path} scores {len(labelled) - len(unscored):,} of the {len(labelled):,} labelled trials "
                f"in {trials_path}; not scored: " + ", ".join(" ".join(p) for p in unscored[:3])
                + (", ..." if len(unscored) > 3 else ""))
        if not allow_missing:
            raise DataError(what + "; score them all, or pass --allow-missing for metrics over the scored ones")
        warnings.warn(what + "; the metrics are over the scored ones only", UserWarning, stacklevel=2)
    targets = np.array([label[p] for p in pairs])
    m = verification_metrics(values, targets)
    m.update(n_scored=len(scored), n_trials=len(labelled))
    if det:
        det_png({Path(scores_path).stem: (values[targets], values[~targets])}, det)
    return m


def verification_metrics(scores, targets) -> dict:
    """EER and minDCF (p_target 0.01 and 0.001) of scores with target/non-target labels."""
    targets = np.asarray(targets, dtype=bool)
    tar, non = np.asarray(scores)[targets], np.asarray(scores)[~targets]
    if len(tar) == 0 or len(non) == 0:
        raise DataError(f"the trials are all {'non-target' if len(tar) == 0 else 'target'} "
                        f"({len(scores)} trials): EER and minDCF are undefined")
    return {"eer": eer(tar, non), "min_dcf_0.01": min_dcf(tar, non, 0.01), "min_dcf_0.001": min_dcf(tar, non, 0.001),
            "n_target": int(len(tar)), "n_nontarget": int(len(non))}


# --------------------------------------------------------------------------- metrics

def error_rates(target, nontarget):
    """Miss and false-alarm rates at every threshold between the sorted scores."""
    target, nontarget = np.asarray(target, float), np.asarray(nontarget, float)
    if len(target) == 0 or len(nontarget) == 0:
        raise DataError(f"EER needs target and non-target trials; got {len(target)} target and "
                        f"{len(nontarget)} non-target")
    scores = np.concatenate([target, nontarget])
    labels = np.concatenate([np.ones(len(target)), np.zeros(len(nontarget))])
    order = np.argsort(scores, kind="mergesort")
    labels = labels[order]
    # threshold just above the i-th lowest score: misses are targets at or below it
    p_miss = np.concatenate([[0], np.cumsum(labels)]) / len(target)
    p_fa = 1 - np.concatenate([[0], np.cumsum(1 - labels)]) / len(nontarget)
    return p_miss, p_fa


def eer(target, nontarget) -> float:
    """Equal error rate: where the miss and false-alarm curves cross (linearly interpolated)."""
    p_miss, p_fa = error_rates(target, nontarget)
    i = int(np.argmax(p_miss >= p_fa))
    if i == 0:
        return float(p_miss[0])
    # the curves cross between points i-1 and i
    d0, d1 = p_fa[i - 1] - p_miss[i - 1], p_fa[i] - p_miss[i]
    t = d0 / (d0 - d1) if d0 != d1 else 0.0
    return float(p_miss[i - 1] + t * (p_miss[i] - p_miss[i - 1]))


def min_dcf(target, nontarget, p_target: float, c_miss: float = 1.0, c_fa: float = 1.0) -> float:
    """Minimum normalised detection cost (NIST): min over thresholds, divided by the best trivial cost."""
    p_miss, p_fa = error_rates(target, nontarget)
    cost = c_miss * p_target * p_miss + c_fa * (1 - p_target) * p_fa
    return float(cost.min() / min(c_miss * p_target, c_fa * (1 - p_target)))


def det_png(curves: dict, path) -> None:
    """DET curves (probit axes) of ``{name: (target, nontarget)}`` to a PNG (needs matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from scipy.stats import norm
    except ImportError:
        raise ParameterError("DET plots need matplotlib: pip install 'acoustic-gmm[plot]'") from None
    ticks = np.array([0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4])
    fig, ax = plt.subplots(figsize=(5, 5))
    for name, (tar, non) in curves.items():
        pm, pf = error_rates(tar, non)
        eps = 0.5 / (len(tar) + len(non))
        ax.plot(norm.ppf(np.clip(pf, eps, 1 - eps)), norm.ppf(np.clip(pm, eps, 1 - eps)),
                label=f"{name} (EER {100 * eer(tar, non):.2f} %)")
    ax.set_xticks(norm.ppf(ticks), [f"{100 * t:g}" for t in ticks])
    ax.set_yticks(norm.ppf(ticks), [f"{100 * t:g}" for t in ticks])
    lim = norm.ppf([0.0005, 0.5])
    ax.set_xlim(*lim)
    ax.set_ylim(*lim)
    ax.set_xlabel("false alarm rate (%)")
    ax.set_ylabel("miss rate (%)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    save_png(fig, path)


