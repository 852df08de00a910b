"""Choosing the front end and the class models per corpus, by held-out speakers of the training data.

No fixed front end serves every corpus (per-speaker CMVN is worth nine points on FSDD and costs two on a keyword
corpus of 30 speakers), so :func:`select_model_set` decides on the user's own training data: speaker-disjoint
cross-validation over the training speakers only (every speaker, or every group of speakers, held out once),
over a small documented grid (:data:`GRID`), reading one raw archive through each configuration's view
(:mod:`acoustic_gmm.features._view`: no second extraction).  The earliest configuration of the grid (the defaults
first) that the best one does not beat by more than a standard error of their paired fold differences is kept
(:func:`one_standard_error`); its models are then trained on every training utterance.  The per-fold accuracies
travel with the models (``metadata["selection"]``).

Examples
--------
::

    ms, report = select_model_set("train.h5", jobs=2)
    print(report.table())
    ms.save("models.h5")
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..errors import DataError, ParameterError
from ..storage._archive import opened
from ._fit import fit_configuration
from ._training import DEFAULT_COMPONENTS, DEFAULT_STATES, VAR_FLOOR, class_ids, class_structure

__all__ = ["GRID", "MIN_SPEAKERS", "MAX_FOLDS", "SelectionReport", "select_model_set", "speaker_folds",
           "one_standard_error", "grid_accuracy", "TRANSFORM_GRID"]


# (name, view, training settings): the defaults (for words) first, so that a tie keeps them.  Normalisation per
# speaker or per utterance; 3 HMM states of 8 Gaussians, 3 fixed slices of 8 (what the TIMIT phones chose in the
# defaults study) or one GMM of 16; the class-variance floor of the defaults study or a lower one; 13 cepstra, or
# 20 where the archive holds them.
GRID = [
    (f"{cmvn} {model} floor {floor:g} {n} cepstra", {"cmvn": cmvn, "n_mfcc": n}, {**settings, "var_floor": floor})
    for n in (13, 20)
    for cmvn in ("speaker", "meanvar")
    for model, settings in (("3 states x 8", {"states": 3, "n_components": 8}),
                            ("3 slices x 8", {"slices": 3, "n_components": 8}),
                            ("1 GMM x 16", {"slices": 1, "n_components": 16}))
    for floor in (VAR_FLOOR, 0.1)
]


# Added by select_model_set(transforms=True): the default front end's statics spliced, LDA to 40 and MLLT
# (classes.train_lda_mllt), with HMM states or fixed slices.  Not in the default grid: each fit trains three times,
# and on FSDD and the TIMIT sample they lose (README).
TRANSFORM_GRID = [
    (f"speaker {model} floor {VAR_FLOOR:g} 13 cepstra LDA+MLLT 40", {"cmvn": "speaker", "n_mfcc": 13},
     {**settings, "var_floor": VAR_FLOOR, "lda_mllt": 40})
    for model, settings in (("3 states x 8", {"states": 3, "n_components": 8}),
                            ("3 slices x 8", {"slices": 3, "n_components": 8}))
]


# The defaults for short segments (phones; train_model_set's length rule): fixed slices, moved to the grid's front.
SHORT_DEFAULTS = {"slices": DEFAULT_STATES, "n_components": DEFAULT_COMPONENTS, "var_floor": VAR_FLOOR}


MIN_SPEAKERS = 3  # fewer cannot hold one out and still train on more than one: the defaults are used instead


MAX_FOLDS = 6     # more speakers are grouped into this many folds


def speaker_folds(speakers: list[str], max_folds: int = MAX_FOLDS) -> list[list[str]]:
    """The held-out groups: each speaker alone, or with more than ``max_folds`` speakers, ``max_folds`` groups
    dealt round-robin from the sorted speakers.

    >>> speaker_folds(["c", "a", "b"])
    [['a'], ['b'], ['c']]
    >>> speaker_folds([f"s{i}" for i in range(8)], 3)
    [['s0', 's3', 's6'], ['s1', 's4', 's7'], ['s2', 's5']]
    """
    ordered = sorted(set(speakers))
    n = min(len(ordered), max_folds)
    return [ordered[i::n] for i in range(n)]


@dataclass
class SelectionReport:
    """What selection measured: per configuration its held-out accuracy on every fold, and the winner."""

    names: list[str]
    folds: list[list[str]]
    accuracy: np.ndarray              # (configurations, folds)
    chosen: int
    seconds: float = 0.0
    skipped: list[str] = field(default_factory=list)   # configurations the archive cannot give, and why

    def table(self) -> str:
        width = max(len(n) for n in self.names)
        lines = [f"{'configuration':<{width}}  mean %  spread  " + "  ".join(
                 "+".join(f)[:8].rjust(8) for f in self.folds)]
        for i, name in enumerate(self.names):
            row = self.accuracy[i]
            mark = "  <- chosen" if i == self.chosen else ""
            lines.append(f"{name:<{width}}  {100 * row.mean():6.2f}  {100 * row.std():6.2f}  "
                         + "  ".join(f"{100 * a:8.2f}" for a in row) + mark)
        return "\n".join(lines + [f"skipped: {s}" for s in self.skipped])

    def to_dict(self) -> dict:
        return {"configurations": self.names, "folds": self.folds, "accuracy": self.accuracy.tolist(),
                "chosen": self.names[self.chosen], "seconds": round(self.seconds, 1)}


def one_standard_error(accuracy: np.ndarray) -> int:
    """The configuration to keep, from held-out accuracies (configurations, folds): the earliest (the defaults
    first) that the best does not beat by more than one standard error of their paired fold differences.

    Breiman's one-standard-error rule, paired: folds differ in difficulty for every configuration alike, so
    the spread that matters is that of the differences.  A configuration ahead by less than its noise does not
    displace the defaults (on FSDD one fold's choice of a configuration 0.24 points ahead cost a point on the
    held-out speaker).

    >>> one_standard_error(np.array([[0.90, 0.80, 0.70], [0.91, 0.79, 0.72], [0.95, 0.85, 0.75]]))
    2
    >>> one_standard_error(np.array([[0.90, 0.80, 0.70], [0.91, 0.79, 0.72]]))
    0
    """
    best = int(np.argmax(accuracy.mean(axis=1)))
    diff = accuracy[best] - accuracy
    se = diff.std(axis=1, ddof=1) / np.sqrt(accuracy.shape[1]) if accuracy.shape[1] > 1 else 0.0
    return int(np.flatnonzero(diff.mean(axis=1) <= se + 1e-12)[0])


def _fit_fold(task):
    """Train one configuration on one split's training utterances and score its test ones (runs in a worker)."""
    from ._evaluation import evaluate

    i, path, view, settings, train_ids, test_path, test_ids, label_key, priors = task
    t0 = time.perf_counter()
    with warnings.catch_warnings():  # a fold's notes (a phone with too few frames for 8 Gaussians) repeat in
        warnings.simplefilter("ignore")  # every configuration; the final models' training shows them once
        ms = fit_configuration(path, settings, label_key=label_key, ids=train_ids, view=view, jobs=1,
                               progress=False, reject_quantile=None, priors=priors)
    return i, evaluate(ms, test_path, ids=test_ids)["accuracy"], time.perf_counter() - t0


_fit_fold.preload = ("h5py",)


def grid_accuracy(archive, splits, grid, *, test_archive=None, label_key: str = "label", priors: bool = False,
                  jobs: int | None = None, progress: bool | None = None, on_estimate=None) -> np.ndarray:
    """Held-out accuracy (configurations, splits) of every configuration of ``grid`` on every split.

    ``splits`` is ``[(train_ids, test_ids), ...]``; the models of a configuration are trained on a split's
    training ids of ``archive`` (read through the configuration's view) and score its test ids of
    ``test_archive`` (default: ``archive``).  Fits run over ``jobs`` processes; ``on_estimate`` is called once
    with the seconds the remaining fits should take, when every configuration has met the first split.  This
    is :func:`select_model_set`'s loop over its speaker folds, and a study's over its test speakers.

    Examples
    --------
    ::

        acc = grid_accuracy("train.h5", [(train_ids, test_ids)], GRID, test_archive="test.h5")
    """
    from ..storage._parallel import parallel_map, progress_bar

    path = str(archive.path if hasattr(archive, "path") else archive)
    test_path = path if test_archive is None else str(getattr(test_archive, "path", test_archive))
    n = len(splits)
    tasks = [(i * n + k, path, view, settings, train, test_path, test, label_key, priors)
             for k, (train, test) in enumerate(splits) for i, (_, view, settings) in enumerate(grid)]
    accuracy = np.zeros((len(grid), n))
    workers = max(1, min(jobs or len(os.sched_getaffinity(0)), len(tasks)))
    with progress_bar(len(tasks), desc="select", unit="fit", progress=progress) as bar, \
            parallel_map(_fit_fold, tasks, jobs) as results:
        took = np.zeros(len(grid))
        for done, (index, acc, seconds) in enumerate(results, 1):
            accuracy[index // n, index % n] = acc
            took[index // n] += seconds
            if done == len(grid) and on_estimate is not None:  # every configuration met once: the rest measured
                on_estimate(took.sum() * (n - 1) / workers)
            bar.update()
    return accuracy


def select_model_set(archive, *, ids=None, label_key: str = "label", grid=None, priors: bool = False,
                     transforms: bool = False, jobs: int | None = None, progress: bool | None = None,
                     on_estimate=None, **final):
    """Choose a configuration by speaker-disjoint cross-validation on ``archive`` (``ids``, default all) and
    train it on every utterance: returns ``(ModelSet, SelectionReport)``.

    Parameters
    ----------
    archive : a raw feature archive (a path or a FeatureArchive): every configuration reads it through its view.
    grid : ``[(name, view, training settings), ...]``; default :data:`GRID` (24 configurations; those
        needing more cepstra than the archive holds are skipped and listed).
    priors : every configuration adds each class's log frequency to its scores (as ``train --priors``).
    transforms : add :data:`TRANSFORM_GRID` (spliced frames, LDA + MLLT) to the default grid.
    jobs : fits run in parallel over this many processes (default: all cores).
    on_estimate : called once with the seconds the remaining fits should take, measured on the first fold
        of every configuration.
    final : further :func:`train_model_set` settings for the final models (``reject_quantile``).

    With fewer than :data:`MIN_SPEAKERS` speakers a :class:`~acoustic_gmm.errors.DataError` says so (train
    with the defaults instead).  Classes are words or phones: with ``label_key="speaker"`` no speaker can be
    held out.
    """
    if label_key != "label":
        raise ParameterError("selection holds speakers out, so the classes must be labels: label_key='label'")
    grid = (GRID + TRANSFORM_GRID if transforms else GRID) if grid is None else list(grid)
    t0 = time.perf_counter()
    with opened(archive) as fa:
        if not fa.raw:
            raise DataError(f"{fa.path}: selection reads the archive through each configuration's view, and this "
                            f"one was normalised when written: extract it again (acoustic-gmm features)")
        ids = fa.ids if ids is None else fa.check_ids(ids)
        groups = class_ids(fa, label_key, ids)
        speakers = {u: fa.speakers[u] for u in ids}
        missing = [u for u, s in speakers.items() if not s]
        if missing:
            raise DataError(f"{fa.path}: {len(missing)} utterance(s) have no speaker (e.g. {missing[0]!r}): "
                            f"selection holds speakers out, and needs utt2spk")
        if len(set(speakers.values())) < MIN_SPEAKERS:
            raise DataError(f"{fa.path}: {len(set(speakers.values()))} speaker(s); holding speakers out needs at "
                            f"least {MIN_SPEAKERS}: train with the defaults (acoustic-gmm train)")
        usable, skipped = [], []
        for name, view, settings in grid:
            if view.get("n_mfcc", 0) > fa.stored_config.n_mfcc:
                skipped.append(f"{name} (the archive holds {fa.stored_config.n_mfcc} cepstra)")
            else:
                usable.append((name, view, settings))
        median = float(np.median([fa.n_frames[u] for u in ids]))
        path = str(fa.path)
    short = class_structure(median_frames=median)[0] is None
    if grid[:len(GRID)] == GRID and short:  # short segments: the defaults are slices
        first = next((i for i, (_, v, t) in enumerate(usable) if t == SHORT_DEFAULTS and v == GRID[0][1]), 0)
        usable.insert(0, usable.pop(first))
    folds = speaker_folds(list(speakers.values()))
    kept = [u for c in sorted(groups) for u in groups[c]]
    split = [([u for u in kept if speakers[u] not in f], [u for u in kept if speakers[u] in f]) for f in folds]
    accuracy = grid_accuracy(path, split, usable, label_key=label_key, priors=priors, jobs=jobs, progress=progress,
                             on_estimate=on_estimate)
    chosen = one_standard_error(accuracy)
    name, view, settings = usable[chosen]
    report = SelectionReport([u[0] for u in usable], folds, accuracy, chosen, skipped=skipped)
    ms = fit_configuration(archive, {**settings, **final}, label_key=label_key, ids=kept, view=view, jobs=jobs,
                           progress=progress, priors=priors)
    report.seconds = time.perf_counter() - t0
    ms.metadata["selection"] = report.to_dict()
    return ms, report
