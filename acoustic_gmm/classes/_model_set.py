"""One GMM per class (word, phone, speaker), and classifying utterances by their likelihood.

A :class:`ModelSet` holds, for every class, ``n_slices`` diagonal GMMs: slice ``s`` models
the frames in the ``s``-th of ``n_slices`` equal parts of an utterance (one slice is the
classic bag of frames; three model a word's or phone's beginning, middle and end, a
left-to-right HMM with fixed durations).  An utterance's score for a class is the sum of
its frames' log-likelihoods, each frame under its slice's model, plus the class's log prior
when priors are used.

Scoring stacks every model's components into one matrix, so one matrix product per chunk
of frames serves all classes at once.  Evaluation on labelled archives, with or without
speaker adaptation, is :mod:`acoustic_gmm.classes`, above this module and
:mod:`acoustic_gmm.classes`.

Examples
--------
::

    ms = train_model_set("train.h5", label_key="label", n_components=16, slices=3)
    ms.save("digits.h5")
    with FeatureArchive("test.h5") as fa:
        ms.score(fa.utterances(fa.ids)).predict()
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from ..errors import DataError, ModelFileError, ParameterError, check_frames
from ..gmm._files import load_models, save_models
from ..gmm._model import DiagGMM, logsumexp
from ..storage._hdf5 import load_arrays

__all__ = ["ModelSet", "Scores", "slice_of_frames", "split_slices", "UNKNOWN"]


LABEL_KEYS = ("label", "speaker")


UNKNOWN = "<unknown>"


def slice_of_frames(n_frames: int, n_slices: int) -> np.ndarray:
    """Which of ``n_slices`` equal parts each of ``n_frames`` frames falls in: ``t * S // T``.

    The one equal-slice rule of the package: slice models are trained and scored by it, HMM-state chains start
    from it, and MMI and adaptation align by it.  An earlier part never has fewer frames than a later one.

    Examples
    --------
    >>> slice_of_frames(5, 3).tolist()
    [0, 0, 1, 1, 2]
    """
    return (np.arange(n_frames) * n_slices) // max(n_frames, 1)


def split_slices(frames: np.ndarray, n_slices: int) -> list[np.ndarray]:
    """An utterance's frames cut into its ``n_slices`` parts (views; a short utterance's may be empty)."""
    return np.split(frames, np.searchsorted(slice_of_frames(len(frames), n_slices), np.arange(1, n_slices)))


@dataclass
class Scores:
    """Scores of utterances (rows) against classes (columns)."""

    classes: list[str]
    total: np.ndarray      # (n_utterances, n_classes) summed frame log-likelihood (+ log prior when used)
    n_frames: np.ndarray   # (n_utterances,)
    frame_best: np.ndarray | None = None  # (sum of n_frames,) each frame's own best class index

    @property
    def average(self) -> np.ndarray:
        """Per-frame average log-likelihood (n_utterances, n_classes)."""
        return self.total / self.n_frames[:, None]

    def predict(self) -> list[str]:
        return [self.classes[i] for i in self.total.argmax(1)]

    def proba(self) -> np.ndarray:
        """Posterior over classes (n_utterances, n_classes), from the summed scores (a softmax per row)."""
        return np.exp(self.total - logsumexp(self.total)[:, None])

    def top(self, n: int = 5) -> list[list[tuple[str, float]]]:
        order = np.argsort(-self.total, axis=1)[:, :n]
        return [[(self.classes[j], float(self.total[i, j])) for j in row] for i, row in enumerate(order)]


@dataclass
class ModelSet:
    """Per-class GMMs (``models[class][slice]``) and what is needed to use them on new audio."""

    models: dict[str, list[DiagGMM]]
    label_key: str = "label"
    config: object = None                      # the MfccConfig the models were trained on
    log_priors: dict[str, float] | None = None
    reject_threshold: float | None = None      # per-frame margin of the best class over the runner-up
    metadata: dict = field(default_factory=dict)
    sample_rate: int | None = None             # of the training audio: new audio must match or be resampled
    log_trans: dict | None = None              # HMM states: {class: (n_states, 2) log stay / move}; None: slices
    transform: object = None                   # a FeatureTransform the frames go through first (LDA + MLLT)

    def __post_init__(self):
        if not self.models:
            raise ParameterError("a model set needs at least one class")
        sizes = {len(v) for v in self.models.values()}
        if len(sizes) != 1:
            raise ParameterError(f"every class needs the same number of slices, got {sorted(sizes)}")
        dims = {m.n_features for v in self.models.values() for m in v}
        if len(dims) != 1:
            raise ParameterError(f"models disagree on the feature dimension: {sorted(dims)}")
        if self.log_trans is not None:
            from ._hmm import check_transitions

            S = len(next(iter(self.models.values())))
            if set(self.log_trans) != set(self.models):
                raise ParameterError("log_trans must give every class its transitions")
            self.log_trans = {c: check_transitions(t, (S, 2), f"log_trans of class {c!r}")
                              for c, t in self.log_trans.items()}
            if any((t > 0).any() for t in self.log_trans.values()):
                raise ParameterError("log_trans must hold log probabilities (<= 0)")
        self._stack = None

    @property
    def classes(self) -> list[str]:
        return sorted(self.models)

    @property
    def n_slices(self) -> int:
        return len(next(iter(self.models.values())))

    @property
    def n_features(self) -> int:
        return next(iter(self.models.values()))[0].n_features

    @property
    def n_inputs(self) -> int:
        """Features per frame of what the set scores: its transform's input, or the models' own dimension."""
        return self.n_features if self.transform is None else self.transform.n_in

    def inputs(self, utterances) -> list[np.ndarray]:
        """The utterances checked (``n_inputs`` features) and mapped through the transform: what the models see."""
        utterances = [check_frames(u, n_features=self.n_inputs, what=f"utterance {i}")
                      for i, u in enumerate(utterances)]
        return utterances if self.transform is None else [self.transform.apply(u) for u in utterances]

    def untransformed(self) -> "ModelSet":
        """This set without its transform: it scores frames already mapped (adaptation, MMI and MLLT work there,
        and hand the transform back)."""
        return dataclasses.replace(self, transform=None)

    @property
    def centre(self) -> np.ndarray:
        """The weighted mean of every model's means (n_features,): a reference point shared by all classes."""
        return self._stacked()[0].centre

    # ------------------------------------------------------------------ scoring
    def _stacked(self, classes=None):
        """The models' components (of ``classes``, default all) in one DiagGMM, and where each model's start."""
        if classes is not None or self._stack is None:
            flat = [self.models[c][s] for c in (classes or self.classes) for s in range(self.n_slices)]
            sizes = np.array([m.n_components for m in flat])
            stack = DiagGMM(np.concatenate([m.weights for m in flat]), np.vstack([m.means for m in flat]),
                            np.vstack([m.variances for m in flat]), dtype="float32")
            if classes is not None:
                return stack, np.r_[0, np.cumsum(sizes)[:-1]], sizes
            self._stack = (stack, np.r_[0, np.cumsum(sizes)[:-1]], sizes)
        return self._stack

    def frame_scores(self, X: np.ndarray, chunk: int = 8192, classes=None) -> np.ndarray:
        """Log-likelihood of every frame under every (class, slice) model: (n_frames, n_classes, n_slices), float32
        (only the ``classes`` given, in their order)."""
        stack, starts, _ = self._stacked(classes)
        n_classes = len(self.classes if classes is None else classes)
        out = np.empty((len(X), n_classes * self.n_slices), dtype=np.float32)
        for a in range(0, len(X), chunk):
            out[a:a + chunk] = logsumexp(stack.log_joint(X[a:a + chunk]), starts=starts, overwrite=True)
        return out.reshape(len(X), n_classes, self.n_slices)

    def score(self, utterances) -> Scores:
        """Score a list of utterances (each an (n_frames, n_inputs) array) against every class."""
        utterances = self.inputs(utterances)
        if not utterances:
            raise DataError("nothing to score: the list of utterances is empty")
        lengths = np.array([len(u) for u in utterances])
        F = self.frame_scores(np.concatenate(utterances).astype(np.float32, copy=False))
        slices = np.concatenate([slice_of_frames(n, self.n_slices) for n in lengths])
        per_frame = F[np.arange(len(F)), :, slices].astype(np.float64)  # (n, C): each frame under its slice
        total = np.add.reduceat(per_frame, np.r_[0, np.cumsum(lengths)[:-1]], axis=0)
        if self.log_trans is not None:  # HMM states: each class's best path, all classes at once
            from ._hmm import viterbi_many

            trans = np.stack([np.asarray(self.log_trans[c], dtype=np.float64) for c in self.classes])
            best = viterbi_many(F, lengths, trans)
            long_enough = lengths >= self.n_slices  # shorter ones keep the equal-slice score (no path exists)
            total[long_enough] = best[long_enough]
            per_frame = F.max(axis=2).astype(np.float64)
        if self.log_priors:
            total += np.array([self.log_priors[c] for c in self.classes])
        return Scores(self.classes, total, lengths, per_frame.argmax(1))

    def alignments(self, utterances, classes=None) -> np.ndarray:
        """Which model (slice or HMM state) of each class every frame belongs to, (n_frames, n_classes), for the
        utterances one after the other: equal slices (:func:`slice_of_frames`), or with HMM states each class's
        best path, all classes in one Viterbi pass (equal slices for an utterance shorter than the chain, which
        has no path).  The one aligner: MMI and adaptation both use it."""
        classes = self.classes if classes is None else list(classes)
        utterances = self.inputs(utterances)
        lengths = [len(u) for u in utterances]
        slices = np.concatenate([slice_of_frames(n, self.n_slices) for n in lengths])
        parts = np.repeat(slices[:, None], len(classes), axis=1)
        if self.log_trans is not None:
            from ._hmm import viterbi_paths

            F = self.frame_scores(np.concatenate(utterances).astype(np.float32, copy=False), classes=classes)
            trans = np.stack([self.log_trans[c] for c in classes])
            for a, n in zip(np.r_[0, np.cumsum(lengths)[:-1]], lengths):
                if n >= self.n_slices:
                    parts[a:a + n] = viterbi_paths(F[a:a + n], trans)
        return parts

    def align(self, frames: np.ndarray, label: str) -> np.ndarray:
        """Which of class ``label``'s models each frame of one utterance belongs to (see :meth:`alignments`)."""
        return self.alignments([np.asarray(frames)], [label])[:, 0]

    def with_models(self, models: dict) -> "ModelSet":
        """This set with other models of the same shape (adapted, re-estimated): the one way to derive a changed
        set; everything else (front end, priors, threshold, transitions) is kept and the metadata copied."""
        return dataclasses.replace(self, models=models, metadata=dict(self.metadata))

    def predict(self, utterances, *, reject: bool = False) -> list[str]:
        scores = self.score(utterances)
        labels = scores.predict()
        if reject:
            labels = [UNKNOWN if r else lab for lab, r in zip(labels, self.rejected(scores))]
        return labels

    def predict_proba(self, utterances) -> np.ndarray:
        return self.score(utterances).proba()

    def margins(self, scores: Scores) -> np.ndarray:
        """Per-frame average log-likelihood of the best class minus the runner-up's (priors left out).

        This, not the best class's likelihood itself, tells enrolled from unseen speakers: an unseen
        speaker fits no model much better than the next (on FSDD, the absolute rule turned away as
        few unseen speakers' utterances as enrolled ones, the margin 99 % against 4 %).
        """
        raw = scores.total - (np.array([self.log_priors[c] for c in self.classes]) if self.log_priors else 0)
        if raw.shape[1] < 2:
            return np.full(len(raw), np.inf)
        top2 = np.sort(raw / scores.n_frames[:, None], axis=1)[:, -2:]
        return top2[:, 1] - top2[:, 0]

    def check_reject(self) -> None:
        """Raise unless this set can reject (it was trained with a reject quantile): the one rule, asked before any
        work that needs it."""
        if self.reject_threshold is None:
            raise ParameterError("this model set has no reject threshold (it was trained with reject_quantile=None)")

    def rejected(self, scores: Scores) -> np.ndarray:
        """Which utterances the open-set rule turns away: margin below the calibrated threshold."""
        self.check_reject()
        return self.margins(scores) < self.reject_threshold

    # ------------------------------------------------------------------ storage
    def save(self, path) -> None:
        """One HDF5 file: every model (named ``class/slice``), the feature config and the settings."""
        from ..features._frontend import frontend_arrays

        named = {f"{c}#{s}": m for c in self.classes for s, m in enumerate(self.models[c])}
        meta = {"kind": "model_set", "label_key": self.label_key, "classes": self.classes,
                "n_slices": self.n_slices, "log_priors": self.log_priors, "reject_threshold": self.reject_threshold,
                "log_trans": None if self.log_trans is None else
                {c: np.asarray(t, dtype=np.float64).tolist() for c, t in self.log_trans.items()},
                "feature_config": None if self.config is None else self.config.to_dict(),
                "sample_rate": self.sample_rate, **self.metadata,
                "feature_transform": None if self.transform is None else self.transform.to_dict()}
        arrays = frontend_arrays(self.config, self.sample_rate) if self.config and self.sample_rate else None
        save_models(path, named, metadata=meta, arrays=arrays)

    @classmethod
    def load(cls, path) -> "ModelSet":
        """Read a model set written by :meth:`save`.

        The models are checked by :func:`~acoustic_gmm.gmm.load_models`; the settings here: every
        metadata field used has its type checked, ``classes`` must name models in the file, the stored
        front-end arrays must fit the feature configuration.  Any problem is a
        :class:`~acoustic_gmm.errors.ModelFileError` naming the file and the field.
        """
        from ..features._config import MfccConfig
        from ..features._frontend import preload_frontend

        named, meta = load_models(path)
        if meta.get("kind") != "model_set":
            raise ModelFileError(f"{path}: holds models but not a class model set (train one with "
                                 f"'acoustic-gmm train')")

        def bad(field, problem):
            return ModelFileError(f"{path}: metadata '{field}' {problem}")

        n_slices, classes, label_key = meta.get("n_slices"), meta.get("classes"), meta.get("label_key")
        if isinstance(n_slices, bool) or not isinstance(n_slices, int) or n_slices < 1:
            raise bad("n_slices", f"is {n_slices!r}, expected an integer >= 1")
        if not isinstance(classes, list) or not classes or not all(isinstance(c, str) and c for c in classes):
            raise bad("classes", f"is {str(classes)[:60]}, expected a non-empty list of class names")
        if len(set(classes)) != len(classes):
            raise bad("classes", "names a class more than once")
        if label_key not in LABEL_KEYS:
            raise bad("label_key", f"is {label_key!r}, expected one of {list(LABEL_KEYS)}")
        for c in classes:
            for s in range(n_slices):
                if f"{c}#{s}" not in named:
                    raise bad("classes", f"names class {c!r} but the file has no model '{c}#{s}' "
                                         f"({n_slices} slice(s) each)")
        models = {c: [named[f"{c}#{s}"] for s in range(n_slices)] for c in classes}
        log_priors = meta.get("log_priors")
        if log_priors is not None and not (
                isinstance(log_priors, dict) and set(classes) <= set(log_priors)
                and all(_finite_number(log_priors[c]) for c in classes)):
            raise bad("log_priors", "must map every class to a finite number")
        log_trans = meta.get("log_trans")
        if log_trans is not None:  # checked with the rest by the constructor below
            try:
                log_trans = {c: np.array(log_trans[c], dtype=np.float64) for c in classes}
            except (KeyError, TypeError, ValueError):
                raise bad("log_trans", f"must give every class an ({n_slices}, 2) array of log probabilities") \
                    from None
        threshold = meta.get("reject_threshold")
        if threshold is not None and not _finite_number(threshold):
            raise bad("reject_threshold", f"is {threshold!r}, expected a finite number or null")
        rate = meta.get("sample_rate")
        if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int) or rate <= 0):
            raise bad("sample_rate", f"is {rate!r}, expected a positive integer or null")
        cfg = meta.get("feature_config")
        try:  # load_models has checked it parses and fits the models' dimension
            config = MfccConfig.from_dict(cfg) if cfg else None
        except (ParameterError, TypeError) as exc:
            raise bad("feature_config", f"is not a feature configuration ({exc})") from None
        transform = meta.get("feature_transform")
        if transform is not None:
            from ..transforms._feature_transform import FeatureTransform

            try:
                transform = FeatureTransform.from_dict(transform)
            except (ParameterError, AttributeError) as exc:
                raise bad("feature_transform", f"is not a feature transform ({exc})") from None
            if transform.n_out != next(iter(models.values()))[0].n_features or (
                    config is not None and transform.n_in != config.n_features):
                raise bad("feature_transform", f"maps {transform.n_in} features to {transform.n_out}, which does not "
                                               f"fit the feature configuration and the models")
        known = {"kind", "label_key", "classes", "n_slices", "log_priors", "reject_threshold", "feature_config",
                 "sample_rate", "log_trans", "feature_transform"}
        extra = {k: v for k, v in meta.items() if k not in known}
        if config is not None and rate:
            arrays = load_arrays(path)
            if arrays:
                try:
                    preload_frontend(config, rate, arrays)
                except ParameterError as exc:
                    raise ModelFileError(f"{path}: arrays: {exc}") from None
        try:
            return cls(models, label_key, config, log_priors, None if threshold is None else float(threshold),
                       extra, rate, log_trans, transform)
        except ParameterError as exc:  # the models disagree with each other, or the transitions are not valid
            raise ModelFileError(f"{path}: {exc}") from None


def _finite_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and np.isfinite(x)


def check_compatible(model_set: ModelSet, archive) -> None:
    """Features and models must agree on dimension and front-end configuration."""
    if archive.n_features != model_set.n_inputs:
        raise DataError(f"{archive.path} has {archive.n_features}-dimensional features but the models expect "
                        f"{model_set.n_inputs}")
    if model_set.config is not None and archive.config != model_set.config:
        from ..features._config import config_differences

        diff = ", ".join(config_differences(model_set.config, archive.config))
        raise DataError(f"{archive.path} was extracted with another feature configuration than the models ({diff})")
