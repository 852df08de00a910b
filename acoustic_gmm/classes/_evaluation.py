"""Using a class model set on test data: classifying, scoring by speaker with adaptation, metrics.

This is the layer above :mod:`acoustic_gmm.classes` (model sets, scores) and
:mod:`acoustic_gmm.classes` (adapting a model set to one speaker): it decides, per speaker of
the test data, whether and how the models are adapted before the final scores, and turns the
scores into decisions and metrics.

* :func:`score_utterances` -- scores of utterances, adapted to each speaker's or not (one branch
  for ``evaluate`` and ``classify``); :func:`score_by_speaker` the adapted case;
* :func:`evaluate` -- accuracy, per-class and frame accuracy, confusion on a labelled archive;
* :func:`load_inputs` and :func:`classify` -- audio files and feature archives to labels, as
  ``acoustic-gmm classify`` prints them;
* :func:`metrics`, :func:`confusion_text`, :func:`confusion_png`, :func:`write_metrics`.

Examples
--------
::

    ms = ModelSet.load("digits.h5")
    with FeatureArchive("test.h5") as fa:
        m = evaluate(ms, fa, adapt={})     # {} : adapt with the defaults; None: do not adapt
    m["accuracy"], m["frame_accuracy"]
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..errors import DataError, ParameterError
from ..storage._archive import FeatureArchive, opened
from ..storage._hdf5 import file_kind, write_json
from ..storage._outputs import save_png
from ._adapt import adapt_model_set
from ._model_set import UNKNOWN, ModelSet, Scores, check_compatible

__all__ = ["evaluate", "confusion_text", "confusion_png", "write_metrics", "load_inputs", "classify", "score_by_speaker"]


def score_by_speaker(model_set: ModelSet, utterances, speakers, **options) -> Scores:
    """Scores of ``utterances`` after adapting ``model_set`` to each speaker's share of them.

    ``speakers`` names each utterance's speaker; ``options`` go to
    :func:`~acoustic_gmm.classes.adapt_model_set`.  Returns one
    :class:`~acoustic_gmm.classes.Scores` in the order of ``utterances``.
    """
    if len(speakers) != len(utterances):
        raise ParameterError(f"{len(utterances)} utterances but {len(speakers)} speakers")
    total = np.empty((len(utterances), len(model_set.classes)))
    lengths = np.array([len(u) for u in utterances])
    frame_best: list = [None] * len(utterances)
    for spk in dict.fromkeys(speakers):
        idx = [i for i, s in enumerate(speakers) if s == spk]
        _, scores = adapt_model_set(model_set, [utterances[i] for i in idx], **options)
        total[idx] = scores.total
        for i, best in zip(idx, np.split(scores.frame_best, np.cumsum(scores.n_frames)[:-1])):
            frame_best[i] = best
    return Scores(model_set.classes, total, lengths, np.concatenate(frame_best))


def score_utterances(model_set: ModelSet, utterances, speakers=None, *, adapt: dict | None = None) -> Scores:
    """Scores of utterances (each (n_frames, n_features)) against every class.

    With ``adapt`` (options of :func:`~acoustic_gmm.classes.adapt_model_set`, ``{}`` for the defaults)
    the models are first adapted, without labels, to each speaker's utterances (``speakers``, one
    name per utterance; default: all one speaker's).
    """
    if model_set.metadata.get("sat") and (adapt or {}).get("transform") != "fmllr":
        warnings.warn("the models were trained on speakers' frames through their fMLLR maps (speaker-adaptive "
                      "training): map each test speaker's frames too (adapt=True, adapt_transform='fmllr')",
                      stacklevel=3)
    if adapt is None:
        return model_set.score(utterances)
    speakers = [""] * len(utterances) if speakers is None else list(speakers)
    return score_by_speaker(model_set, utterances, speakers, **adapt)


def evaluate(model_set: ModelSet, archive, ids=None, *, label_key: str | None = None,
             adapt: dict | None = None) -> dict:
    """Accuracy, per-class accuracy, frame accuracy and the confusion matrix on a labelled archive.

    ``archive`` is a path or a :class:`~acoustic_gmm.storage.FeatureArchive`; ``ids`` the
    utterances to use (default all); ``label_key`` the truth (default: what the models were
    trained on); ``adapt`` as in :func:`score_utterances`, per speaker of the archive's utt2spk.
    """
    label_key = label_key or model_set.label_key
    with opened(archive, model_set.config) as fa:  # a raw archive is read as the models' frames were
        check_compatible(model_set, fa)
        ids = fa.ids if ids is None else fa.check_ids(ids)
        if not ids:
            raise DataError(f"{fa.path}: no utterances to evaluate")
        table = fa.labels if label_key == "label" else fa.speakers
        truth = [table.get(u) or "" for u in ids]
        unlabelled = [u for u, t in zip(ids, truth) if not t]
        if unlabelled:  # scoring them against "" would report a meaningless accuracy
            source = "utt2label" if label_key == "label" else "utt2spk"
            raise DataError(f"{fa.path}: {len(unlabelled)} of the {len(ids)} utterances to evaluate have no "
                            f"{label_key} (the data dir's {source}), e.g. {', '.join(unlabelled[:3])}; the models "
                            f"were trained on {label_key}s")
        utterances = fa.utterances(ids)
        speakers = [fa.speakers.get(u) or u for u in ids]
    scores = score_utterances(model_set, utterances, speakers, adapt=adapt)
    out = metrics(truth, scores.predict(), model_set.classes, ids=ids)
    # frame accuracy: each frame classified alone (under its slice's models), against its utterance's label
    index = {c: i for i, c in enumerate(model_set.classes)}
    frame_truth = np.repeat([index.get(t, -1) for t in truth], scores.n_frames)
    out["frame_accuracy"] = float((scores.frame_best == frame_truth).mean())
    return out


def metrics(truth, predicted, classes, ids=None) -> dict:
    """Accuracy, per-class accuracy, confusion counts and the misclassified utterances."""
    truth, predicted = list(truth), list(predicted)
    labels = sorted(set(classes) | set(truth) | set(predicted))
    index = {c: i for i, c in enumerate(labels)}
    confusion = np.zeros((len(labels), len(labels)), dtype=int)
    for t, p in zip(truth, predicted):
        confusion[index[t], index[p]] += 1
    correct = np.array([t == p for t, p in zip(truth, predicted)])
    out = {"n": len(truth), "accuracy": float(correct.mean()),
           "per_class_accuracy": {c: float(confusion[i, i] / confusion[i].sum()) for c, i in index.items()
                                  if confusion[i].sum()},
           "classes": labels, "confusion": confusion.tolist()}
    if ids is not None:
        out["errors"] = [[u, t, p] for u, t, p, ok in zip(ids, truth, predicted, correct) if not ok]
    return out


def confusion_text(m: dict, limit: int = 40) -> str:
    """The confusion matrix as aligned text (rows: truth, columns: predicted)."""
    labels, C = m["classes"][:limit], np.array(m["confusion"])[:limit, :limit]
    width = max(4, *(len(c) for c in labels)) + 1
    lines = [" " * width + "".join(f"{c:>{width}}" for c in labels)]
    lines += [f"{c:>{width}}" + "".join(f"{v:>{width}}" for v in row) for c, row in zip(labels, C)]
    return "\n".join(lines)


def confusion_png(m: dict, path) -> None:
    """Draw the confusion matrix (row-normalised) to a PNG; needs matplotlib (the 'plot' extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ParameterError("drawing the confusion matrix needs matplotlib: pip install 'acoustic-gmm[plot]'") from None
    C = np.array(m["confusion"], dtype=float)
    C = C / np.maximum(C.sum(1, keepdims=True), 1)
    n = len(m["classes"])
    fig, ax = plt.subplots(figsize=(2 + 0.3 * n, 1.5 + 0.3 * n))
    im = ax.imshow(C, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), m["classes"], rotation=90, fontsize=7)
    ax.set_yticks(range(n), m["classes"], fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"accuracy {100 * m['accuracy']:.2f} % ({m['n']} utterances)")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    save_png(fig, path)


def write_metrics(m: dict, path) -> None:
    """The metrics as JSON, written atomically."""
    write_json(path, m)


# --------------------------------------------------------------------------- classifying new input

def load_inputs(model_set: ModelSet, inputs, *, jobs: int | None = 1, one_speaker: bool = False):
    """Features of audio files and feature archives, ready for ``model_set``.

    Audio is extracted with the configuration the models were trained on (files that cannot be
    used are reported, not raised); an archive (``.h5``/``.hdf5``) gives all its utterances, after
    a compatibility check.  Speakers: an archive's utt2spk; audio files are each their own
    speaker, or with ``one_speaker`` all one (then, for models trained on per-speaker CMVN, the
    files are normalised together, as one speaker's utterances are in an archive).

    Returns
    -------
    (ids, frames, speakers, problems)
        Lists: utterance ids (an audio file's path), (n_frames, n_features) arrays, speaker names,
        and ``(path, reason)`` for every audio file that could not be used.
    """
    from ..storage._corpus import extract_files

    ids, feats, speakers, problems, audio = [], [], [], [], []
    for path in inputs:
        p = Path(path)
        if p.suffix in (".h5", ".hdf5") and p.is_file() and file_kind(p) == "features":
            with FeatureArchive(p, view=model_set.config) as fa:
                check_compatible(model_set, fa)
                ids += fa.ids
                feats += fa.utterances(fa.ids)
                speakers += [f"{p}:{fa.speakers.get(u) or u}" for u in fa.ids]
        else:
            audio.append(str(path))
    if audio:
        if model_set.config is None:
            raise DataError("the model set does not record its feature configuration; classify a feature archive "
                            "instead")
        results = extract_files(audio, config=model_set.config, jobs=jobs, sample_rate=model_set.sample_rate,
                                one_speaker=one_speaker)
        for path, (frames, reason) in zip(audio, results):
            if frames is None:
                problems.append((path, reason))
            else:
                ids.append(path)
                feats.append(frames)
                speakers.append("" if one_speaker else path)
    return ids, feats, speakers, problems


def classify(model_set: ModelSet, ids, utterances, speakers=None, *, top: int = 3, reject: bool = False,
             adapt: dict | None = None) -> list[dict]:
    """Label every utterance: ``[{"id", "label", "score", "avg_frame_score", "n_frames", "top"}, ...]``.

    ``top`` lists the best classes with their scores; ``reject`` labels ``<unknown>`` the
    utterances whose best class beats the runner-up by less than the calibrated margin;
    ``adapt`` as in :func:`score_utterances`.
    """
    if reject:
        model_set.check_reject()
    scores = score_utterances(model_set, utterances, speakers, adapt=adapt)
    labels = scores.predict()
    if reject:
        labels = [UNKNOWN if r else lab for lab, r in zip(labels, model_set.rejected(scores))]
    avg = scores.average.max(1)
    return [{"id": utt, "label": label, "score": best[0][1], "avg_frame_score": float(avg[i]),
             "n_frames": int(scores.n_frames[i]), "top": [[c, v] for c, v in best]}
            for i, (utt, label, best) in enumerate(zip(ids, labels, scores.top(top)))]
