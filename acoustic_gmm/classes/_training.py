"""Training a model set from a feature archive: the one workflow behind ``acoustic-gmm train``.

:func:`train_model_set` owns the defaults and rules of class-model training (3 HMM states x 8 Gaussians by
Baum-Welch, variances floored at 0.3 of the class's own, the reject margin's calibration); classes train in
parallel worker processes.  :func:`class_ids` and :func:`class_frames` group an archive's utterances by class.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..errors import DataError, ParameterError
from ..storage._archive import opened
from ..storage._outputs import check_free_space
from ._model_set import LABEL_KEYS, ModelSet, split_slices

__all__ = ["train_model_set", "class_structure", "DEFAULT_STATES", "DEFAULT_COMPONENTS", "SHORT_FRAMES_PER_STATE"]


# --------------------------------------------------------------------------- training

def class_ids(archive, label_key: str, ids=None) -> dict[str, list[str]]:
    """Utterance ids of an archive grouped by label or speaker: ``{class: [utt, ...]}``, in archive order."""
    if label_key not in LABEL_KEYS:
        raise ParameterError(f"label_key must be one of {list(LABEL_KEYS)}, got {label_key!r}")
    table = archive.labels if label_key == "label" else archive.speakers
    ids = archive.ids if ids is None else list(ids)
    missing = [u for u in ids if not table.get(u)]
    if missing:
        raise DataError(f"{archive.path}: {len(missing)} utterance(s) have no {label_key} "
                        f"(e.g. {missing[0]!r}); the data directory needs utt2{'spk' if label_key == 'speaker' else 'label'}")
    groups: dict[str, list] = {}
    for u in ids:
        groups.setdefault(table[u], []).append(u)
    return groups


def class_frames(archive, label_key: str, ids=None) -> dict[str, list[np.ndarray]]:
    """Utterances of an archive grouped by label or speaker: ``{class: [frames, ...]}``."""
    return {c: archive.utterances(group) for c, group in class_ids(archive, label_key, ids).items()}


def _fit_class(task):
    """Train one class's models; runs in a worker, which reads the class's frames from the archive itself
    (the parent sends a path and ids, not frames)."""
    label, path, view, ids, n_components, n_slices, gmm_params, states, transform, maps, start = task
    from ..gmm._estimator import GMM
    from ..gmm._train import History, run_em
    from ..gmm._update import frames_floor
    from ..storage._archive import FeatureArchive
    from ..transforms._fmllr import apply_fmllr

    def read(fa, ids):
        utts = fa.utterances(ids)
        utts = utts if transform is None else [transform.apply(u) for u in utts]
        if maps:  # speaker-adaptive training: each utterance through its speaker's fMLLR map
            utts = [x if maps.get(u) is None else apply_fmllr(maps[u], x) for u, x in zip(ids, utts)]
        return utts

    models, notes = [], []
    if states is not None:  # an HMM chain of n_slices states, trained by Viterbi or Baum-Welch
        from ._hmm import ChainHMM
        from ._states import train_chain

        with FeatureArchive(path, view=view) as fa:
            utts = [u for u in read(fa, ids) if len(u) >= n_slices]
        if len(utts) < len(ids):
            notes.append(f"class {label!r}: {len(ids) - len(utts)} utterance(s) shorter than {n_slices} frames "
                         f"left out of training")
        if not utts:
            raise DataError(f"class {label!r}: no utterance has {n_slices} frames, one per state")
        k = max(1, min(n_components, sum(len(u) for u in utts) // (10 * n_slices)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            chain, _ = train_chain(utts, n_slices, k, method=states,
                                   n_iter=STATE_ITERATIONS if start is None else REFINE_ITERATIONS,
                                   start=None if start is None else ChainHMM(*start),
                                   **{p: gmm_params[p] for p in ("var_floor", "split_iter", "dtype")
                                      if p in gmm_params})
        return label, (list(chain.states), chain.log_trans), notes
    with FeatureArchive(path, view=view) as fa:
        if n_slices == 1 and transform is None and not maps and start is None:  # in memory or streamed (GMM.fit)
            parts = [fa.subset(ids)]
        elif n_slices == 1:
            parts = [np.concatenate(read(fa, ids))]
        else:
            per_slice = [[] for _ in range(n_slices)]
            for u in read(fa, ids):
                for s, part in enumerate(split_slices(u, n_slices)):
                    per_slice[s].append(part)
            width = fa.n_features if transform is None else transform.n_out
            parts = [np.concatenate(p) if p else np.zeros((0, width), np.float32) for p in per_slice]
        for s, X in enumerate(parts):
            n = len(X) if isinstance(X, np.ndarray) else X.n_frames_total
            k = n_components
            if n < 10 * n_components:  # ~10 frames a component at least, as Kaldi's min occupancy asks
                k = max(1, n // 10)
                notes.append(f"class {label!r} slice {s}: {n} frames, too few for {n_components} "
                             f"components; using {k}")
            if n < 2:
                raise DataError(f"class {label!r} has {n} frame(s) in slice {s}: too few to train on")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # convergence on small classes is not worth a warning each
                if start is None:
                    models.append(GMM(k, **gmm_params).fit(X).model_)
                else:  # the previous pass's GMM re-estimated on the frames as they now are
                    floor = frames_floor(X, gmm_params["var_floor"])
                    model = start[s].copy(gmm_params.get("dtype", "float32"))
                    models.append(run_em(model, X, floor=floor, n_iter=REFINE_ITERATIONS, tol=-1.0,
                                         history=History())[0])
    return label, models, notes


def _check_start(start: ModelSet, groups: dict, n_slices: int, states: bool) -> None:
    """A model set to continue must have the classes and the structure being trained."""
    if sorted(start.models) != sorted(groups) or (start.log_trans is not None) != states \
            or any(len(start.models[c]) != n_slices for c in groups):
        raise ParameterError(f"start must have the classes and structure being trained ({len(groups)} classes x "
                             f"{n_slices} {'states' if states else 'slices'}), got {len(start.models)} classes x "
                             f"{sorted({len(m) for m in start.models.values()})} "
                             f"{'states' if start.log_trans is not None else 'slices'}")


# Variance floor of class models, as a share of each class's variance: chosen by the defaults study
# (recipes/*/local/defaults_study.py; README "Choosing the defaults"). 0.3 was better than 1e-3 (the GMM
# estimator's floor, right for a UBM) for digits of unseen speakers (FSDD, leave one speaker out) and for
# TIMIT phones of unseen speakers, on the training speakers alone.
VAR_FLOOR = 0.3


SCORE_BATCH = 4096  # utterances scored at a time when calibrating the reject threshold


STATE_ITERATIONS = 10  # Viterbi or Baum-Welch iterations of HMM-state training after the equal-slice start


# EM (or Viterbi / Baum-Welch) iterations when training continues a previous pass's models (start=): the passes
# of speaker-adaptive and MLLT training re-estimate, as Kaldi's train_sat.sh and train_lda_mllt.sh do, instead
# of growing every model again from one Gaussian (which held those trainings to 3-4x a plain fit).
REFINE_ITERATIONS = 4


# A class model when neither states nor slices are asked for: a left-to-right HMM of 3 states of 8 Gaussians each,
# trained by Baum-Welch (the defaults study's choice for speakers the models have not heard) -- unless the
# utterances are short: with a median below SHORT_FRAMES_PER_STATE frames per state (phone segments, not words)
# 3 fixed equal slices of 8.  Across three corpora (recipes/choose_defaults.py) states win on words (FSDD
# leave-one-speaker-out 92.17 % against 90.00 %, its speed-perturbed 16 kHz copy 90.00 against 86.90 %: median
# 40 frames) and fixed slices on TIMIT phones (67.91 against 63.34 %: median 11 frames with 20 ms of context);
# a state that a segment crosses in two or three frames gains nothing from being aligned.
DEFAULT_STATES = 3
DEFAULT_COMPONENTS = 8
SHORT_FRAMES_PER_STATE = 5
STATE_TRAINING = ("viterbi", "baum-welch")


def class_structure(states: int | None = None, slices: int | None = None, init: str = "split", *,
                    median_frames: float | None = None) -> tuple[int | None, int]:
    """``(HMM states or None, parts per class)`` from what was asked: states by default; slices instead when given.

    With neither asked and utterances of ``median_frames`` below ``SHORT_FRAMES_PER_STATE`` per default state,
    the default parts are fixed slices instead of HMM states.

    Examples
    --------
    >>> class_structure(), class_structure(slices=1), class_structure(states=5)
    ((3, 3), (None, 1), (5, 5))
    >>> class_structure(median_frames=40), class_structure(median_frames=11)
    ((3, 3), (None, 3))
    """
    for name, value in (("states", states), ("slices", slices)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1):
            raise ParameterError(f"{name} must be an integer >= 1, got {value!r}")
    if states is not None and slices is not None:
        raise ParameterError("states= and slices= both cut a class into parts: give one")
    if states is None and slices is None:
        if median_frames is not None and median_frames < SHORT_FRAMES_PER_STATE * DEFAULT_STATES:
            slices = DEFAULT_STATES
        else:
            states = DEFAULT_STATES
    if states is not None and init == "kmeans":
        raise ParameterError("init='kmeans' is for slices: HMM states grow their GMMs by splitting (give slices=, "
                             "or leave init=)")
    return (int(states), int(states)) if states is not None else (None, int(slices))


def train_model_set(archive, *, label_key: str = "label", n_components: int = DEFAULT_COMPONENTS,
                    states: int | None = None, slices: int | None = None, state_training: str = "baum-welch",
                    ids=None, priors: bool = False, reject_quantile: float | None = 0.05, jobs: int | None = None,
                    progress: bool | None = None, var_floor: float = VAR_FLOOR, view=None, out=None,
                    transform=None, frame_maps: dict | None = None, start: ModelSet | None = None,
                    **gmm_params) -> ModelSet:
    """Train every class's models from a feature archive (a path or a FeatureArchive): ``acoustic-gmm train``.

    By default each class is a left-to-right HMM of ``states=3`` emitting states of ``n_components=8`` Gaussians,
    trained by ``state_training="baum-welch"`` (or ``"viterbi"``) after an equal-slice start
    (:func:`acoustic_gmm.classes.train_chain`); an utterance's score is then its best path, transitions included.
    ``slices=S`` asks instead for one GMM per class on each of S equal parts of an utterance (``slices=1``: one GMM
    per class, trained by :class:`~acoustic_gmm.GMM`, whose ``init`` and other settings ``gmm_params`` pass on).

    ``var_floor`` floors every variance at that share of its class's own variance (per feature). Class
    models meet speakers they were not trained on, and a high floor keeps them from fitting the training
    speakers' fine detail: see :data:`VAR_FLOOR`.

    ``priors`` adds each class's log frequency to its scores; ``reject_quantile`` calibrates the
    open-set threshold: that quantile of the training utterances' margins (see
    :meth:`ModelSet.margins`), so about that share of utterances like the training ones is
    turned away.  Classes are trained in parallel over ``jobs`` processes, each reading its class's
    frames from the archive; this process never holds more than ``SCORE_BATCH`` utterances.

    ``view`` reads a raw archive with another normalisation than it was extracted with (a dict of ``cmvn``,
    ``vad``, ``n_mfcc``, ``deltas``: see :class:`~acoustic_gmm.storage.FeatureArchive`); the models record it,
    and evaluation reads any archive with it.

    ``transform`` (a :class:`~acoustic_gmm.transforms.FeatureTransform`) trains on frames mapped through it, and
    the models keep it; :func:`acoustic_gmm.classes.train_lda_mllt` estimates one (spliced frames, LDA, MLLT).
    ``frame_maps`` ``{utterance: W}`` maps an utterance's frames (after ``transform``) by its speaker's fMLLR
    ``W`` (D, D + 1) before training: speaker-adaptive training (:func:`acoustic_gmm.classes.train_sat`).
    ``start``, a model set of the same classes and structure, is re-estimated for ``REFINE_ITERATIONS`` instead
    of training every model afresh (the passes of those two trainings); its reject threshold is not kept.

    ``out``, the file the models are for (the caller saves them there), has its device's free space checked
    against the models' size once the classes are known, before any training
    (:func:`acoustic_gmm.storage.check_free_space`).

    Examples
    --------
    ::

        ms = train_model_set("train.h5")                         # 3 HMM states x 8 Gaussians a class
        ms = train_model_set("train.h5", slices=1, n_components=16)  # one GMM of 16 a class
        ms.save("digits.h5")
    """
    from ..storage._parallel import parallel_map, progress_bar

    class_structure(states, slices, gmm_params.get("init", "split"))  # bad values refused before any reading
    if state_training not in STATE_TRAINING:
        raise ParameterError(f"state_training must be one of {STATE_TRAINING}, got {state_training!r}")
    if not (isinstance(var_floor, (int, float)) and 0 <= var_floor < 1):
        raise ParameterError(f"var_floor must be a number in [0, 1), got {var_floor!r}")
    gmm_params = {**gmm_params, "var_floor": float(var_floor)}
    with opened(archive, view) as fa:  # closed before the workers fork; each opens the file itself
        groups = class_ids(fa, label_key, None if ids is None else fa.check_ids(ids))
        if not groups:
            raise DataError(f"{fa.path}: no utterances to train on")
        median = float(np.median([fa.n_frames[u] for g in groups.values() for u in g]))
        n_states, n_slices = class_structure(states, slices, gmm_params.get("init", "split"), median_frames=median)
        if states is None and slices is None and n_states is None:
            warnings.warn(f"{fa.path}: short utterances (median {median:g} frames): {n_slices} fixed slices of "
                          f"{n_components} Gaussians a class instead of {DEFAULT_STATES} HMM states (give states= or "
                          f"slices= to choose)", stacklevel=2)
        config, source, rate = fa.config, str(fa.path), fa.sample_rate
        if out is not None:  # at least a GMM's arrays and 2 kB of HDF5 structure each (3 kB measured)
            check_free_space(out, len(groups) * n_slices * (n_components * (2 * fa.n_features + 1) * 8 + 2048),
                             what=f"the models of {len(groups)} classes")
    states = state_training if n_states is not None else None  # what the workers and the metadata call it
    if start is not None:
        _check_start(start, groups, n_slices, bool(states))
    tasks = [(c, source, config, groups[c], n_components, n_slices, gmm_params, states, transform,
              None if frame_maps is None else {u: frame_maps.get(u) for u in groups[c]},
              None if start is None else ((start.models[c], start.log_trans[c]) if states else start.models[c]))
             for c in sorted(groups)]
    models, log_trans = {}, ({} if states else None)
    with parallel_map(_fit_class, tasks, jobs) as results, \
            progress_bar(len(tasks), desc="train", unit="class", progress=progress) as bar:
        for label, fitted, notes in results:
            for note in notes:
                warnings.warn(note, stacklevel=2)
            if states:
                fitted, log_trans[label] = fitted
            models[label] = fitted
            bar.set_postfix_str(label)
            bar.update()
    counts = {c: len(groups[c]) for c in groups}
    log_priors = {c: float(np.log(n / sum(counts.values()))) for c, n in counts.items()} if priors else None
    ms = ModelSet(models, label_key, config, log_priors, None,
                  {"n_components": n_components, "trained_on": source, "utterances": counts,
                   "states": states}, rate, log_trans, transform)
    if reject_quantile is not None:
        train_ids = [u for c in sorted(groups) for u in groups[c]]
        with opened(archive, config) as fa:
            margins = [ms.margins(ms.score(fa.utterances(train_ids[i:i + SCORE_BATCH])))
                       for i in range(0, len(train_ids), SCORE_BATCH)]
        ms.reject_threshold = float(np.quantile(np.concatenate(margins), reject_quantile))
    return ms
