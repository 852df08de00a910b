"""Discriminative training of class GMMs: maximum mutual information (MMI) by extended Baum-Welch.

Maximum likelihood fits each class's models to that class's frames alone.  MMI instead
raises the posterior probability of the correct class of every training utterance,

    F = sum_u [ kappa * ll(u, y_u) - log sum_c exp(kappa * ll(u, c)) ],

where ``ll(u, c)`` is utterance ``u``'s score under class ``c`` (summed frame log-likelihoods
plus the class's log prior if the model set has priors, exactly what
:meth:`~acoustic_gmm.classes.ModelSet.score` adds up) and ``kappa`` is the acoustic scale.
A small ``kappa`` flattens the class posteriors, so that many utterances, not only the
misclassified ones, shape the update.

The statistics of one (class, slice) model are

* numerator: the frames of the utterances of that class, each weighted by its within-model
  component posteriors (the same statistics as a maximum-likelihood E-step);
* denominator: the frames of *every* utterance, weighted by the class posterior
  ``p(c | u)`` (computed with ``kappa``, and with ``boost`` added to the wrong classes for
  boosted MMI) times the within-model component posteriors.

Each Gaussian is then updated by extended Baum-Welch (EBW) with a per-Gaussian smoothing
constant ``D = max(E * gamma_den, 2 * D_min)``, ``D_min`` the smallest constant that keeps
every new variance positive (the larger root of a quadratic in ``D``, per dimension);
optionally with I-smoothing (``tau`` points of the numerator's ML estimate added to the
numerator) and boosting.  Weights use Povey's iterative update of the weight auxiliary
function ``sum_m gamma_num_m log c_m - gamma_den_m c_m / c_m_old`` (thesis section 4.4, the
one Kaldi uses too), then a floor.

Model sets of several slices are handled: frames of slice ``s`` of an utterance (as
:func:`~acoustic_gmm.classes.split_slices` cuts them) go to the models of slice ``s``.
In HMM-state model sets (``log_trans`` set) every utterance is aligned to every class's chain
by its best path (one-best Viterbi alignment, as Kaldi aligns numerator and denominator
for isolated units), ``ll(u, c)`` is that path's score (transitions included, as
:meth:`~acoustic_gmm.classes.ModelSet.score` gives it), and the frames on state ``s`` of
class ``c``'s path feed model ``(c, s)``; the transitions are kept.

References
----------
* D. Povey, *Discriminative Training for Large Vocabulary Speech Recognition*, PhD thesis,
  University of Cambridge, 2003 (EBW, the choice of ``D``, the weight update, I-smoothing).
* D. Povey and P. C. Woodland, "Minimum phone error and I-smoothing for improved
  discriminative training", ICASSP 2002.
* D. Povey et al., "Boosted MMI for model and feature-space discriminative training",
  ICASSP 2008.
* HTK's ``HMMIRest`` and Kaldi's ``gmm-est-mmi`` (``ebw-diag-gmm``) implement the same
  update; nothing here is copied from either.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from ..errors import DataError, ParameterError, check_frames
from ..gmm._ebw import ebw_update
from ..gmm._model import DiagGMM, logsumexp
from ..gmm._stats import Stats, global_mean_var, global_stats
from ..gmm._update import variance_floor
from ._model_set import ModelSet

__all__ = ["MMIHistory", "mmi_objective", "mmi_stats", "mmi_update", "train_mmi", "train_mmi_from_archive"]


# --------------------------------------------------------------------------- statistics

@dataclass
class MMIStats:
    """Numerator and denominator statistics of every (class, slice) model, and the objective.

    Attributes
    ----------
    num, den : dict of str to list of Stats
        ``num[c][s]`` and ``den[c][s]``: the statistics of model ``s`` of class ``c`` (about
        that model's centre).
    objective : float
        The (boosted, if ``boost`` > 0) MMI objective of the model set the statistics came from.
    n_utterances : int
    n_correct : int
        Training utterances whose best-scoring class (unscaled, unboosted) is the right one.
    """

    num: dict[str, list[Stats]]
    den: dict[str, list[Stats]]
    objective: float
    n_utterances: int
    n_correct: int = 0
    global_var: np.ndarray = field(default=None, repr=False)  # of all frames: the variance floor's reference


def _check(model_set: ModelSet, utterances, labels, scale: float, boost: float):
    """Validated frames (list of float64 arrays) and labels as class indices."""
    if not isinstance(model_set, ModelSet):
        raise ParameterError(f"model_set must be a ModelSet, got {type(model_set).__name__}")
    if not (np.isfinite(scale) and scale > 0):
        raise ParameterError(f"scale (the acoustic scale kappa) must be > 0, got {scale!r}")
    if not (np.isfinite(boost) and boost >= 0):
        raise ParameterError(f"boost must be >= 0, got {boost!r}")
    utterances = [np.asarray(check_frames(u, n_features=model_set.n_features, what=f"utterance {i}"), np.float64)
                  for i, u in enumerate(utterances)]
    labels = list(labels)
    if not utterances:
        raise DataError("no utterances to train on")
    if len(labels) != len(utterances):
        raise ParameterError(f"{len(utterances)} utterances but {len(labels)} labels")
    index = {c: i for i, c in enumerate(model_set.classes)}
    unknown = sorted({str(y) for y in labels if y not in index})
    if unknown:
        raise DataError(f"labels {unknown[:5]} name no class of the model set ({model_set.classes[:5]}...)")
    return utterances, np.array([index[y] for y in labels])


def _frames(model_set: ModelSet, utterances):
    """All frames, each frame's utterance, and its model under every class, (n_frames, n_classes): its
    slice, or with HMM states its state on that class's best path (equal slices if shorter than the chain)."""
    lengths = np.array([len(u) for u in utterances])
    utt = np.repeat(np.arange(len(utterances)), lengths)
    return np.concatenate(utterances), utt, model_set.alignments(utterances)


def _log_joint(model: DiagGMM, X: np.ndarray) -> np.ndarray:
    """``log w_k + log N(x | k)`` in float64, (n_frames, K): the model's own :meth:`DiagGMM.log_joint` in
    float64, which expands about the model's centre (features far from zero lose no digits)."""
    return model.copy(dtype="float64").log_joint(X)


def _totals(model_set: ModelSet, X, utt, parts, n_utts):
    """Utterance scores (n_utts, n_classes) in float64, log priors (and HMM transitions) included."""
    classes = model_set.classes
    total = np.zeros((n_utts, len(classes)))
    for j, c in enumerate(classes):
        for s in range(model_set.n_slices):
            idx = parts[:, j] == s
            if idx.any():
                ll = logsumexp(_log_joint(model_set.models[c][s], X[idx]))
                total[:, j] += np.bincount(utt[idx], weights=ll, minlength=n_utts)
    if model_set.log_trans is not None:  # the best path's transitions: stays and moves it takes, and the exit
        for j, c in enumerate(classes):
            lt = np.asarray(model_set.log_trans[c], dtype=np.float64)
            state = parts[:, j]
            last = np.r_[utt[1:] != utt[:-1], True]                          # an utterance's last frame
            step = np.where(last, 1, np.r_[state[1:] - state[:-1], 0])      # 0 stay, 1 move (or exit)
            with np.errstate(invalid="ignore"):
                w = np.where(step == 1, lt[state, 1], lt[state, 0])
            # utterances shorter than the chain have no path: scored by equal slices, no transitions (as score)
            w[np.bincount(utt)[utt] < model_set.n_slices] = 0.0
            total[:, j] += np.bincount(utt, weights=w, minlength=n_utts)
    if model_set.log_priors:
        total += np.array([model_set.log_priors[c] for c in classes])
    return total


def _objective(total, y, scale, boost):
    """Objective and (boosted) class posteriors (n_utts, n_classes)."""
    z = scale * total
    if boost:
        z = z + boost * (np.arange(total.shape[1])[None, :] != y[:, None])
    norm = logsumexp(z)
    post = np.exp(z - norm[:, None])
    return float((scale * total[np.arange(len(y)), y] - norm).sum()), post


def mmi_objective(model_set: ModelSet, utterances, labels, *, scale: float = 1.0, boost: float = 0.0) -> float:
    """The MMI objective: summed log posterior of each utterance's correct class.

    Parameters
    ----------
    model_set : ModelSet
    utterances : list of ndarray
        Each (n_frames, n_features).
    labels : sequence of str
        The class of every utterance.
    scale : float
        Acoustic scale ``kappa``: ``F = sum_u kappa ll(u, y_u) - log sum_c exp(kappa ll(u, c))``,
        ``ll`` including the log priors if the model set has them (``scale=1`` gives the log of
        :meth:`~acoustic_gmm.classes.Scores.proba`).
    boost : float
        Boosted MMI: ``boost`` is added to every wrong class inside the denominator's sum.

    Returns
    -------
    float
        At most 0; 0 when every utterance's correct class has posterior 1.
    """
    utterances, y = _check(model_set, utterances, labels, scale, boost)
    X, utt, parts = _frames(model_set, utterances)
    return _objective(_totals(model_set, X, utt, parts, len(utterances)), y, scale, boost)[0]


def mmi_stats(model_set: ModelSet, utterances, labels, *, scale: float = 1.0, boost: float = 0.0) -> MMIStats:
    """Numerator and denominator statistics of every (class, slice) model.

    Parameters
    ----------
    model_set, utterances, labels, scale, boost
        As for :func:`mmi_objective`.

    Returns
    -------
    MMIStats
        ``num[c][s]``: slice-``s`` frames of class-``c`` utterances, weighted by model
        ``(c, s)``'s component posteriors; ``den[c][s]``: slice-``s`` frames of every utterance
        weighted by ``p(c | u)`` (scaled, boosted) times the same component posteriors.
    """
    utterances, y = _check(model_set, utterances, labels, scale, boost)
    X, utt, parts = _frames(model_set, utterances)
    total = _totals(model_set, X, utt, parts, len(utterances))
    objective, post = _objective(total, y, scale, boost)
    num, den = {}, {}
    for j, c in enumerate(model_set.classes):
        num[c], den[c] = [], []
        for s, model in enumerate(model_set.models[c]):
            idx = parts[:, j] == s
            Xs, us = X[idx], utt[idx]
            shift = model.centre
            L = _log_joint(model, Xs)
            resp = np.exp(L - logsumexp(L)[:, None]) if len(Xs) else L
            num_w = (y[us] == j).astype(np.float64)
            num[c].append(Stats.from_posteriors(Xs, resp * num_w[:, None], shift=shift))
            den[c].append(Stats.from_posteriors(Xs, resp * post[us, j][:, None], shift=shift))
    return MMIStats(num, den, objective, len(utterances), int((total.argmax(1) == y).sum()),
                    global_mean_var(global_stats(X))[1])


def _check_update(E, tau, var_floor):
    if not (np.isfinite(E) and E >= 0):
        raise ParameterError(f"E must be >= 0, got {E!r}")
    if not (np.isfinite(tau) and tau >= 0):
        raise ParameterError(f"tau must be >= 0, got {tau!r}")
    if not (0 <= var_floor < 1):
        raise ParameterError(f"var_floor must be in [0, 1) (a fraction of the global variance), got {var_floor!r}")


def _apply(model_set: ModelSet, stats: MMIStats, E, tau, var_floor, weight_floor) -> ModelSet:
    floor = variance_floor(stats.global_var, var_floor)
    models = {c: [ebw_update(m, stats.num[c][s], stats.den[c][s], E=E, tau=tau, floor=floor,
                             weight_floor=weight_floor)
                  for s, m in enumerate(model_set.models[c])] for c in model_set.classes}
    return model_set.with_models(models)


def mmi_update(model_set: ModelSet, utterances, labels, *, scale: float = 1.0, E: float = 2.0, tau: float = 0.0,
               boost: float = 0.0, var_floor: float = 1e-3, weight_floor: float = 1e-5) -> ModelSet:
    """One extended Baum-Welch iteration of MMI (or boosted MMI) on every model of a model set.

    Parameters
    ----------
    model_set : ModelSet
        Equal-slice model set (one or more slices), e.g. maximum-likelihood trained.
    utterances : list of ndarray
    labels : sequence of str
    scale : float
        Acoustic scale ``kappa`` of the class posteriors.
    E : float
        EBW constant: ``D = max(E * gamma_den, 2 * D_min)`` per Gaussian.
    tau : float
        I-smoothing towards the numerator's ML estimate, in frames.
    boost : float
        Boosted MMI margin (0: plain MMI).
    var_floor : float
        Variances are floored at ``var_floor`` times the global variance of ``utterances``'
        frames (the rule of :func:`acoustic_gmm.gmm.variance_floor`, as in ML training).
    weight_floor : float

    Returns
    -------
    ModelSet
        New models; every other field (priors, reject threshold, config, metadata, ...) copied.
        The reject threshold is kept as it was, not recalibrated.
    """
    _check_update(E, tau, var_floor)
    stats = mmi_stats(model_set, utterances, labels, scale=scale, boost=boost)
    return _apply(model_set, stats, E, tau, var_floor, weight_floor)


# --------------------------------------------------------------------------- training loop

@dataclass
class MMIHistory:
    """Per iteration, starting with the initial model set (so ``n_iter + 1`` entries each).

    ``objective``: MMI objective on the training data (with the training's ``scale`` and
    ``boost``); ``train_accuracy``: share of training utterances classified right;
    ``held_out_accuracy``: the same on the held-out set (empty without one).
    """

    objective: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    held_out_accuracy: list[float] = field(default_factory=list)


def train_mmi(model_set: ModelSet, utterances, labels, *, n_iter: int = 4, scale: float = 1.0, E: float = 2.0,
              tau: float = 0.0, boost: float = 0.0, var_floor: float = 1e-3, weight_floor: float = 1e-5,
              held_out=None) -> tuple[ModelSet, MMIHistory]:
    """``n_iter`` iterations of :func:`mmi_update`, recording the objective and accuracies.

    Parameters
    ----------
    model_set, utterances, labels, scale, E, tau, boost, var_floor, weight_floor
        As for :func:`mmi_update`.  A smaller ``scale`` softens the class posteriors (long
        utterances make them nearly hard at ``kappa = 1``); on the synthetic data of the tests
        ``kappa = 0.1`` raised its own objective but lost training accuracy, ``kappa = 1`` gained.
    n_iter : int
    held_out : tuple (utterances, labels), optional
        Scored after every iteration (accuracy only).

    Returns
    -------
    model_set : ModelSet
        After the last iteration.
    history : MMIHistory
    """
    if isinstance(n_iter, bool) or not isinstance(n_iter, (int, np.integer)) or n_iter < 0:
        raise ParameterError(f"n_iter must be an integer >= 0, got {n_iter!r}")
    _check_update(E, tau, var_floor)
    if held_out is not None:
        if len(held_out) != 2:
            raise ParameterError("held_out must be a pair (utterances, labels)")
        h_utts, h_labels = held_out
        h_utts, h_y = _check(model_set, h_utts, h_labels, scale, boost)
        h_classes = [model_set.classes[i] for i in h_y]
    history = MMIHistory()
    for it in range(n_iter + 1):
        stats = mmi_stats(model_set, utterances, labels, scale=scale, boost=boost)
        history.objective.append(stats.objective)
        history.train_accuracy.append(stats.n_correct / stats.n_utterances)
        if held_out is not None:
            pred = model_set.predict(h_utts)
            history.held_out_accuracy.append(float(np.mean([p == t for p, t in zip(pred, h_classes)])))
        if it < n_iter:
            model_set = _apply(model_set, stats, E, tau, var_floor, weight_floor)
    return model_set, history


def train_mmi_from_archive(model_set: ModelSet, archive, *, ids=None, n_iter: int = 4, scale: float = 1.0,
                       E: float = 2.0, tau: float = 0.0, boost: float = 0.0) -> tuple[ModelSet, MMIHistory]:
    """:func:`train_mmi` on the utterances of a feature archive (``ids``, default all), labelled by the
    model set's ``label_key``; every utterance is held in memory."""
    from ..storage._archive import opened
    from ._training import class_ids

    with opened(archive, model_set.config) as fa:
        groups = class_ids(fa, model_set.label_key, None if ids is None else fa.check_ids(ids))
        ids = [u for c in sorted(groups) for u in groups[c] if c in model_set.models]
        labels = [c for c in sorted(groups) for _ in groups[c] if c in model_set.models]
        utterances = fa.utterances(ids)
    if model_set.metadata.get("sat"):
        raise ParameterError("MMI after speaker-adaptive training would need every training speaker's fMLLR map, "
                             "which the models do not keep: train without sat=True or with mmi=0")
    if model_set.transform is not None:  # MMI in the models' own space: the frames mapped, the transform kept
        inner, history = train_mmi(model_set.untransformed(), model_set.inputs(utterances), labels, n_iter=n_iter,
                                   scale=scale, E=E, tau=tau, boost=boost)
        return dataclasses.replace(inner, transform=model_set.transform), history
    return train_mmi(model_set, utterances, labels, n_iter=n_iter, scale=scale, E=E, tau=tau, boost=boost)
