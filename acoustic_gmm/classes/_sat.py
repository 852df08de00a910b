"""Speaker-adaptive training: class models of the speakers' frames after each one's fMLLR map (Kaldi's
``train_sat.sh``; Anastasakos et al. 1996, Gales 1998).

Models trained on many speakers spend Gaussians on the differences between voices.  SAT alternates: each
training speaker's fMLLR map (:mod:`acoustic_gmm.transforms`) is estimated against the current models from its
own utterances and their labels, then the models are trained again on every speaker's mapped frames: a
"canonical" model set (each pass re-estimates the last pass's models), for which an unseen speaker's map is estimated at test time without labels
(``evaluate --adapt --adapt-transform fmllr``; :func:`~acoustic_gmm.classes.adapt_model_set` with
``transform="fmllr"``).  The maps are full or diagonal by the frames each speaker has, as adaptation's are.

Examples
--------
::

    ms = train_sat("train.h5")      # acoustic-gmm train train.h5 --sat
    evaluate(ms, "test.h5", adapt={"transform": "fmllr"})
"""

from __future__ import annotations

import numpy as np

from ..errors import DataError, ParameterError
from ..storage._archive import opened
from ..transforms._fmllr import apply_fmllr
from ._adapt import fmllr_once
from ._training import class_ids, train_model_set

__all__ = ["train_sat", "SAT_ITERATIONS"]


SAT_ITERATIONS = 2     # map estimates, each followed by training the models again


MAP_STEPS = 2          # EM steps of each speaker's map per SAT iteration (from its last)


def train_sat(archive, *, iterations: int = SAT_ITERATIONS, view=None, ids=None, label_key: str = "label",
              **train_options):
    """Speaker-adaptive training (see the module): returns the canonical ModelSet.

    ``iterations`` map estimates, each followed by training; the other options are :func:`train_model_set`'s.
    Every speaker of the archive's utt2spk gets a map (an utterance without a speaker counts as its own).  The
    models' ``metadata["sat"]`` holds the training objective (per frame, see :func:`_objective`) before SAT
    and after every iteration.
    """
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ParameterError(f"iterations must be an integer >= 1, got {iterations!r}")
    options = dict(view=view, ids=ids, label_key=label_key, **train_options)
    ms = train_model_set(archive, **{**options, "reject_quantile": None})
    with opened(archive, ms.config) as fa:
        groups = class_ids(fa, label_key, None if ids is None else fa.check_ids(ids))
        label = {u: c for c, us in groups.items() for u in us}
        by_speaker: dict[str, list] = {}
        for u in label:
            by_speaker.setdefault(fa.speakers.get(u) or u, []).append(u)
        path = fa.path
    if len(by_speaker) < 2:
        raise DataError(f"{path}: speaker-adaptive training needs at least 2 speakers (the archive's utt2spk), "
                        f"got {len(by_speaker)}")
    maps = {spk: None for spk in by_speaker}
    objective = [_objective(ms, path, by_speaker, label, maps)]
    for iteration in range(iterations):
        with opened(path, ms.config) as fa:
            for spk, utts in by_speaker.items():
                frames = fa.utterances(utts)
                for _ in range(MAP_STEPS):
                    maps[spk] = fmllr_once(ms, frames, [label[u] for u in utts], maps[spk])
        maps = _centred(maps)
        last = iteration == iterations - 1  # the reject margin is calibrated on the final models only
        ms = train_model_set(archive, frame_maps={u: maps[spk] for spk, us in by_speaker.items() for u in us},
                             start=ms, **(options if last else {**options, "reject_quantile": None}))
        objective.append(_objective(ms, path, by_speaker, label, maps))
    ms.metadata["sat"] = {"iterations": iterations, "objective": objective}
    return ms


def _centred(maps: dict) -> dict:
    """The maps composed with the inverse of their average, so that the average speaker's map is the identity:
    the canonical space stays where the speakers are on average, and an unseen speaker's first pass (before its
    own map is known) meets models in its own neighbourhood."""
    known = [W for W in maps.values() if W is not None]
    if not known:
        return maps
    mean = np.mean(known, axis=0)
    inverse = np.linalg.inv(mean[:, :-1])
    return {spk: None if W is None else np.hstack([inverse @ W[:, :-1], (inverse @ (W[:, -1] - mean[:, -1]))[:, None]])
            for spk, W in maps.items()}


def _objective(ms, path, by_speaker, label, maps) -> float:
    """Per frame: the training utterances' log-likelihood under their own class, each speaker's frames through its
    map, the map's ``log |det A|`` included (what SAT raises)."""
    total = frames = 0.0
    column = {c: i for i, c in enumerate(ms.classes)}
    with opened(path, ms.config) as fa:
        for spk, utts in by_speaker.items():
            W = maps[spk]
            x = fa.utterances(utts)
            scores = ms.score(x if W is None else [apply_fmllr(W, u) for u in x])
            n = scores.n_frames.sum()
            total += sum(scores.total[i, column[label[u]]] for i, u in enumerate(utts))
            total += 0.0 if W is None else n * np.linalg.slogdet(W[:, :-1])[1]
            frames += n
    return float(total / frames)
