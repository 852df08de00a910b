"""Verification trials: Kaldi trial lists and score files, GMM-UBM trial scoring, z-, t- and s-norm.

:class:`Trials` reads ``model utterance [target|nontarget]`` lists; :func:`verify_trials` scores them against a
speaker file and an archive (top-C or exact) and normalises the scores against a cohort; :func:`score_file_metrics`
reads a score file back for :mod:`~acoustic_gmm.speaker._metrics`.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError, ParameterError
from ..gmm._model import DiagGMM
from ..storage._archive import opened
from ..storage._datadir import check_unique
from ..storage._hdf5 import write_text
from ._files import load_speakers, require_ubm
from ._gmm_ubm import Scorer, load_ubm, ubm_config
from ._metrics import det_png, verification_metrics

__all__ = ["Trials", "read_scores", "write_scores", "verify_trials", "score_file_metrics", "score_trials"]


NORMS = ("none", "z", "t", "s")


# --------------------------------------------------------------------------- trials

@dataclass
class Trials:
    """Kaldi-style trials: ``model utterance target|nontarget`` per line."""

    models: list[str] = field(default_factory=list)
    utterances: list[str] = field(default_factory=list)
    targets: list[bool | None] = field(default_factory=list)

    @classmethod
    def read(cls, path) -> "Trials":
        t, seen = cls(), {}
        for lineno, line in enumerate(Path(path).read_text().splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("target", "nontarget")):
                raise DataError(f"{path}:{lineno}: expected 'model utterance [target|nontarget]', got {line!r}")
            check_unique(path, seen, (parts[0], parts[1]), lineno, f"trial '{parts[0]} {parts[1]}'", DataError)
            t.models.append(parts[0])
            t.utterances.append(parts[1])
            t.targets.append(None if len(parts) == 2 else parts[2] == "target")
        if not t.models:
            raise DataError(f"{path}: no trials")
        return t


def read_scores(path) -> tuple[list[tuple[str, str]], np.ndarray]:
    """A Kaldi score file (``model utterance score`` per line)."""
    pairs, values, seen = [], [], {}
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
        check_unique(path, seen, (parts[0], parts[1]), lineno, f"score of trial '{parts[0]} {parts[1]}'", DataError)
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
        warnings.warn(f"{fa.path}: frames normalised per speaker (cmvn='speaker', the features default): each "
                      f"utterance used its utt2spk speaker's statistics, which a verification system does not know "
                      f"and which favour the true speaker; extract speaker-recognition features with cmvn='mean' "
                      f"or cmvn='sliding'", stacklevel=3)


MIN_COHORT = 2  # a mean and a spread need two scores at least; one gives std 0 and every score +-inf


def check_cohort(norm: str, what: str, cohort, trial_side, *, allow_overlap: bool = False) -> None:
    """The one rule for a normalisation cohort (``verify`` and ``ivector score``): at least :data:`MIN_COHORT`
    members, and none of them one of the trials' own ``trial_side`` (test utterances for a z cohort, target
    models for a t cohort): a trial normalised against itself is no normalisation.  ``allow_overlap`` lets the
    overlap through with a warning."""
    n = len(set(cohort))
    if n < MIN_COHORT:
        raise ParameterError(f"{what}= has {n} member(s); norm={norm!r} needs at least {MIN_COHORT} to estimate a "
                             f"mean and a spread")
    shared = sorted(set(cohort) & set(trial_side))
    if shared:
        text = (f"{what}= holds {len(shared)} of the trials' own {'models' if 'models' in what else 'utterances'} "
                f"({', '.join(shared[:5])}{', ...' if len(shared) > 5 else ''}): their trials are normalised "
                f"against themselves")
        if not allow_overlap:
            raise ParameterError(text + "; use other impostors, or pass allow_cohort_overlap=True")
        warnings.warn(text, stacklevel=3)


def verify_trials(speakers_path, trials: Trials, archive, *, ubm: DiagGMM | str | None = None,
                  top_c: int | None = 5, norm: str = "none", cohort_utts=None, cohort_models=None,
                  allow_cohort_overlap: bool = False, view=None) -> tuple[np.ndarray, dict]:
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
        (a speaker file of impostor models on the same UBM), s both; each cohort at least 2 strong and, unless
        ``allow_cohort_overlap``, holding none of the trials' test utterances or models (:func:`check_cohort`).

    view : how ``archive`` is read: by default the UBM's, when the UBM comes from a file
        (:func:`~acoustic_gmm.speaker.ubm_config`); a raw archive then gives the frames the UBM was trained on.

    Returns
    -------
    (ndarray, dict)
        One score per trial (n_trials,), and how they were made: ``top_c`` (None if exact),
        ``norm``, ``seconds`` (scoring time without the normalisation).
    """
    if norm not in NORMS:
        raise ParameterError(f"norm must be one of {list(NORMS)}, got {norm!r}")
    if norm in ("z", "s") and cohort_utts is None:
        raise ParameterError(f"norm={norm!r} needs impostor utterances (cohort_utts=)")
    if norm in ("t", "s") and cohort_models is None:
        raise ParameterError(f"norm={norm!r} needs impostor models (cohort_models=)")
    if norm in ("z", "s"):
        check_cohort(norm, "cohort_utts", cohort_utts, trials.utterances, allow_overlap=allow_cohort_overlap)
    speakers, info = load_speakers(speakers_path)
    if ubm is None or isinstance(ubm, (str, Path)):
        ubm_path = ubm or json.loads(info["metadata"]).get("ubm", "")
        ubm = load_ubm(ubm_path)
        view = ubm_config(ubm_path) if view is None else view  # the frames as the UBM's were read
    require_ubm(speakers_path, info, ubm)
    c = None if info["adapt"] == "ml" else top_c
    with opened(archive, view) as fa:
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
            impostors = load_speakers(cohort_models, ubm)[0]
            check_cohort(norm, "cohort_models", impostors, trials.models, allow_overlap=allow_cohort_overlap)
            cohort = Scorer(ubm, impostors)
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
            raise DataError(what + "; score them all, or pass allow_missing=True for metrics over the scored ones")
        warnings.warn(what + "; the metrics are over the scored ones only", UserWarning, stacklevel=2)
    targets = np.array([label[p] for p in pairs])
    m = verification_metrics(values, targets)
    m.update(n_scored=len(scored), n_trials=len(labelled))
    if det:
        det_png({Path(scores_path).stem: (values[targets], values[~targets])}, det)
    return m
