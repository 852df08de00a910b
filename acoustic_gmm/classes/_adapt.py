"""Unsupervised speaker adaptation of a class model set: MLLR, then MAP, from first-pass labels.

Models trained on some speakers meet a new speaker whose voice, accent and channel they have
never seen.  Given several of that speaker's utterances (unlabelled), the classic answer of
speech recognisers (Kaldi's two-pass decoding with a per-speaker transform, HTK's HEAdapt) is
to classify them once, adapt the models to the speaker using those first-pass labels, and
classify again:

* **MLLR** (Leggetter & Woodland, 1995): one affine transform ``mu' = W [1, mu - c]`` shared by
  every Gaussian of every class, estimated by maximum likelihood from the frames aligned to
  each Gaussian.  Few parameters (D (D + 1)) for all classes together, so every class moves,
  also those the speaker said rarely.  With little data the transform is diagonal (a scale
  and an offset per feature).
* **MAP** of the means (Gauvain & Lee, 1994), from the transformed models: each Gaussian moves
  further towards the speaker's frames in proportion to its occupancy ``n / (n + r)``.
* or, with ``transform="fmllr"``, **fMLLR** (Gales, 1998) in place of MLLR: one affine map of the speaker's
  frames towards the models (:mod:`acoustic_gmm.transforms`), re-estimated each iteration from the last
  (EM), then MAP on the mapped frames.  The adapted set then carries the map in ``metadata["fmllr"]``
  (D, D + 1) and scores frames only after it; the scores include its ``log |det A|`` per frame.

Both re-estimate from the original models each iteration, with the labels of the previous
one, until no label changes (a fixed point: the same labels give the same models) or
``iterations`` is reached.  On FSDD digits with one speaker held out (trained on the other
five), adapting on all 500 of the speaker's utterances takes the mean accuracy from 92 % to
99.5 %; a speaker far from the training voices needs several iterations (nicolas: 95 errors in
500, then 42, 24, 16, 9, 7, 6, 6), one close to them two.  With 20 utterances there is no gain,
with 100 about half of it (see README): with few utterances the adaptation mostly confirms the
first pass.

The statistics and the MAP update are :mod:`acoustic_gmm.gmm`'s; this module adds the
transform and the loop.  Scoring a whole test set speaker by speaker is
:func:`acoustic_gmm.classes.score_by_speaker`.

Examples
--------
::

    ms = ModelSet.load("digits.h5")
    adapted, scores = adapt_model_set(ms, fa.utterances(fa.ids_where(speaker="nicolas")))
    scores.predict()
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import DataError, ParameterError, check_frames
from ..gmm._model import DiagGMM
from ..gmm._stats import accumulate
from ..gmm._update import map_update
from ..transforms._fmllr import FmllrStats, apply_fmllr, estimate_fmllr

__all__ = ["adapt_model_set", "fmllr_once", "ADAPT_TRANSFORMS"]


ADAPT_TRANSFORMS = ("mllr", "fmllr")   # moving the models' means, or the speaker's frames


ITERATIONS = 10          # at most; adaptation stops earlier once the labels no longer change


MIN_FRAMES = 50           # below this no transform is estimated (Kaldi's --fmllr-min-count)


FULL_FRAMES_PER_ROW = 10  # a full transform needs this many frames per parameter of a row (D + 1)


class MllrStats:
    """What a maximum-likelihood mean transform needs, summed over Gaussians and frames.

    For row ``i`` of ``W`` (feature ``i``): ``G[i] = sum_m n_m / var_mi  xi_m xi_m^T`` and
    ``k[i] = sum_m s_mi / var_mi  xi_m``, with ``xi_m = [1, mu_m - c]``, ``n_m`` the occupancy
    and ``s_m`` the first-order sum of Gaussian ``m``, accumulated by :meth:`add` over every
    (model, frames) pair of the speaker.
    """

    def __init__(self, n_features: int, centre: np.ndarray):
        d = n_features
        self.centre = np.asarray(centre, dtype=np.float64)
        self.G = np.zeros((d, d + 1, d + 1))
        self.k = np.zeros((d, d + 1))
        self.n_frames = 0.0

    def add(self, model: DiagGMM, frames: np.ndarray, align: DiagGMM | None = None) -> None:
        """Add the statistics of ``frames`` for ``model``'s Gaussians.

        The frames are aligned to the Gaussians by ``align``'s responsibilities (default: ``model``'s):
        the currently adapted version of ``model``, so that repeated estimation is EM and converges to
        the maximum-likelihood transform.
        """
        stats = accumulate(model if align is None else align, frames)
        occ = stats.occ
        first = stats.sum_x + occ[:, None] * (stats.shift - self.centre)  # sum of (x - c)
        xi = np.hstack([np.ones((model.n_components, 1)), model.means - self.centre])
        prec = 1.0 / model.variances
        self.G += np.einsum("m,mi,ma,mb->iab", occ, prec, xi, xi)
        self.k += np.einsum("mi,ma->ia", first * prec, xi)
        self.n_frames += stats.n_frames

    def transform(self) -> np.ndarray | None:
        """``W`` (D, D + 1) such that ``mu' = c + W [1, mu - c]``; None when there is too little data.

        A full transform from ``FULL_FRAMES_PER_ROW * (D + 1)`` frames on, else a diagonal one (scale
        and offset per feature).  A small ridge towards the identity keeps a row well posed when the
        aligned Gaussians' means span fewer than D + 1 directions.
        """
        d = self.k.shape[0]
        if self.n_frames < MIN_FRAMES:
            return None
        full = self.n_frames >= FULL_FRAMES_PER_ROW * (d + 1)
        W = np.zeros((d, d + 1))
        for i in range(d):
            use = np.arange(d + 1) if full else np.array([0, i + 1])
            G = self.G[i][np.ix_(use, use)]
            identity = (use == i + 1).astype(np.float64)
            ridge = 1e-6 * np.trace(G) / len(use)
            W[i, use] = np.linalg.solve(G + ridge * np.eye(len(use)), self.k[i, use] + ridge * identity)
        return W


def transform_means(model: DiagGMM, W: np.ndarray, centre: np.ndarray) -> DiagGMM:
    """The model with every mean mapped through ``mu' = c + W [1, mu - c]``."""
    xi = np.hstack([np.ones((model.n_components, 1)), model.means - centre])
    return DiagGMM(model.weights, centre + xi @ W.T, model.variances, dtype=model.dtype)


def _by_model(model_set, utterances, labels, align_frames=None):
    """``{(class, slice): frames}``: every utterance's frames, aligned to its label's slices or HMM states
    (the alignment made on ``align_frames``, the same utterances as currently mapped, when given)."""
    by_label: dict[str, list] = {}
    for i, label in enumerate(labels):
        by_label.setdefault(label, []).append(i)
    parts: dict[tuple, np.ndarray] = {}
    for label, index in by_label.items():  # one alignment call a class: its own models' scores only
        frames = np.concatenate([utterances[i] for i in index])
        states = model_set.alignments([(utterances if align_frames is None else align_frames)[i] for i in index],
                                      [label])[:, 0]
        for s in np.unique(states):
            parts[(label, int(s))] = frames[states == s]
    return parts


def fmllr_once(model_set, utterances, labels, W=None):
    """The speaker's fMLLR map ``W`` (D, D + 1) given labels, one EM step from ``W`` (None: the identity):
    frames aligned and Gaussians' responsibilities taken under ``W``, the map re-estimated from the raw frames.
    Full from ``FULL_FRAMES_PER_ROW * (D + 1)`` frames, diagonal from ``MIN_FRAMES``, None below (as MLLR)."""
    mapped = utterances if W is None else [apply_fmllr(W, u) for u in utterances]
    aligned = _by_model(model_set, utterances, labels, mapped)
    d = model_set.n_features
    stats = FmllrStats(d)
    for (c, s), X in aligned.items():
        model = model_set.models[c][s]
        stats.add(model, X, model.posteriors(X if W is None else apply_fmllr(W, X)))
    if stats.beta < MIN_FRAMES:
        return W
    kind = "full" if stats.beta >= FULL_FRAMES_PER_ROW * (d + 1) else "diag"
    return estimate_fmllr(stats, kind=kind, W=W, iterations=3)


def adapt_once(model_set, utterances, labels, *, align=None, mllr: bool = True, relevance: float | None = 16.0):
    """One adaptation of ``model_set`` to the speaker of ``utterances``, given their (hypothesised) labels.

    ``align`` is the model set of the previous adaptation, if any: its responsibilities align the frames.
    """
    aligned = _by_model(model_set, utterances, labels)
    models = {c: list(v) for c, v in model_set.models.items()}
    if mllr:
        centre = model_set.centre
        acc = MllrStats(model_set.n_features, centre)
        for (c, s), X in aligned.items():
            acc.add(models[c][s], X, None if align is None else align.models[c][s])
        W = acc.transform()
        if W is not None:
            models = {c: [transform_means(m, W, centre) for m in v] for c, v in models.items()}
    if relevance is not None:
        for (c, s), X in aligned.items():
            models[c][s] = map_update(accumulate(models[c][s], X), models[c][s], relevance=relevance)
    return model_set.with_models(models)


def adapt_model_set(model_set, utterances, *, iterations: int = ITERATIONS, mllr: bool = True,
                    relevance: float | None = 16.0, transform: str = "mllr"):
    """Adapt a model set to one speaker's unlabelled utterances; returns ``(adapted, scores)``.

    Classifies the utterances, adapts (MLLR of all means, then MAP with relevance ``relevance``;
    either can be switched off with ``mllr=False`` / ``relevance=None``) from those labels, and
    repeats, each time from the original models, until an adaptation changes no label or after
    ``iterations`` adaptations.  ``transform="fmllr"`` maps the speaker's frames instead of moving the means
    (then ``mllr`` is not used; the map is in the adapted set's ``metadata["fmllr"]``).  ``scores`` are the
    utterances' :class:`~acoustic_gmm.classes.Scores` under ``adapted``.  The more utterances,
    the better: a transform needs ``MIN_FRAMES`` frames; below that only MAP moves the models.

    Examples
    --------
    >>> import numpy as np
    >>> from acoustic_gmm.classes import ModelSet
    >>> one = lambda mu: [DiagGMM([1.0], [[mu, 0.0]], [[1.0, 1.0]])]
    >>> ms = ModelSet({"a": one(0.0), "b": one(4.0)})
    >>> rng = np.random.default_rng(0)   # the new speaker says "a" at 1.8 and "b" at 5.8
    >>> utts = [rng.normal(size=(40, 2)) + [1.8 + 4 * (i % 2), 0] for i in range(20)]
    >>> adapted, scores = adapt_model_set(ms, utts)
    >>> scores.predict()[:4], round(float(adapted.models["a"][0].means[0, 0]), 1)
    (['a', 'b', 'a', 'b'], 1.8)
    """
    if not isinstance(iterations, int) or iterations < 1:
        raise ParameterError(f"iterations must be an integer >= 1, got {iterations!r}")
    if relevance is not None and not relevance >= 0:
        raise ParameterError(f"relevance must be >= 0 or None, got {relevance!r}")
    if relevance == float("inf"):  # an infinite relevance leaves the means where MLLR put them: no MAP pass
        relevance = None
    if transform not in ADAPT_TRANSFORMS:
        raise ParameterError(f"transform must be one of {ADAPT_TRANSFORMS}, got {transform!r}")
    if not mllr and relevance is None and transform == "mllr":
        raise ParameterError("nothing to adapt: give mllr=True, a relevance, or both")
    if not len(utterances):
        raise DataError("nothing to adapt to: the list of utterances is empty")
    if model_set.transform is not None:  # adapt in the models' own space, then hand the transform back
        adapted, scores = adapt_model_set(model_set.untransformed(), model_set.inputs(utterances),
                                          iterations=iterations, mllr=mllr, relevance=relevance, transform=transform)
        return dataclasses.replace(adapted, transform=model_set.transform), scores
    utterances = [check_frames(u, n_features=model_set.n_features, what=f"utterance {i}")
                  for i, u in enumerate(utterances)]
    if transform == "fmllr":
        return _adapt_fmllr(model_set, utterances, iterations, relevance)
    adapted, scores = model_set, model_set.score(utterances)
    labels = scores.predict()
    for _ in range(iterations):
        adapted = adapt_once(model_set, utterances, labels, align=None if adapted is model_set else adapted,
                             mllr=mllr, relevance=relevance)
        scores = adapted.score(utterances)
        labels, previous = scores.predict(), labels
        if labels == previous:
            break
    return adapted, scores


def _adapt_fmllr(model_set, utterances, iterations, relevance):
    """:func:`adapt_model_set` with an fMLLR map of the frames, then MAP on the mapped frames."""
    adapted, scores, W = model_set, model_set.score(utterances), None
    labels = scores.predict()
    for _ in range(iterations):
        W = fmllr_once(model_set, utterances, labels, W)
        mapped = utterances if W is None else [apply_fmllr(W, u) for u in utterances]
        adapted = adapt_once(model_set, mapped, labels, mllr=False, relevance=relevance) if relevance is not None \
            else model_set.with_models(model_set.models)
        scores = adapted.score(mapped)
        if W is not None:  # the Jacobian: the same for every class, so it changes no decision
            scores.total += scores.n_frames[:, None] * np.linalg.slogdet(W[:, :-1])[1]
            adapted.metadata["fmllr"] = W.tolist()
        labels, previous = scores.predict(), labels
        if labels == previous:
            break
    return adapted, scores
