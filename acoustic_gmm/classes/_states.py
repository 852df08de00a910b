"""Training left-to-right HMM-state chains on the GMM engine's statistics and updates.

:func:`train_chain` starts from equal slices (:func:`~acoustic_gmm.classes.slice_bounds`), grows each state's GMM
by splitting as EM does, then re-estimates by Viterbi (segmental k-means) or Baum-Welch; every M-step is
:func:`acoustic_gmm.gmm.m_step` with the engine's variance floor and empty-component policy.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> utts = [np.vstack([rng.normal(-3, 1, (10, 2)), rng.normal(3, 1, (10, 2))]) for _ in range(20)]
>>> chain, history = train_chain(utts, 2, 1, n_iter=3, dtype="float64")
>>> np.round(chain.states[0].means[0]).tolist(), np.round(chain.states[1].means[0]).tolist()
([-3.0, -3.0], [3.0, 3.0])
>>> bool(np.all(np.diff(history) >= 0))
True
"""

from __future__ import annotations

import numpy as np

from ..errors import DataError, ParameterError, check_frames
from ..gmm._model import DiagGMM
from ..gmm._stats import Stats
from ..gmm._update import growth_schedule, split_heaviest, variance_floor
from ._hmm import DEAD_OCC, METHODS, ChainHMM, forward_backward, viterbi

__all__ = ["train_chain"]


# --------------------------------------------------------------------------- training

def _update(stats: Stats, prev: DiagGMM, floor: np.ndarray, dtype) -> DiagGMM:
    """Exact ML (EM) update of a diagonal GMM from statistics, variances clipped at ``floor``.

    Components of (almost) no occupancy keep their mean and variance (their weight becomes ~0); a state of
    no occupancy at all keeps ``prev``.  Clipping a variance at the floor is the constrained maximum, so the
    update never lowers the likelihood of a previous model that respected the same floor.
    """
    occ = stats.occ
    if occ.sum() <= DEAD_OCC:
        return prev
    live = occ > DEAD_OCC
    safe = np.where(live, occ, 1.0)[:, None]
    mean_c = stats.sum_x / safe
    var = stats.sum_xx / safe - mean_c * mean_c
    means = np.where(live[:, None], mean_c + stats.shift, prev.means)
    var = np.where(live[:, None], np.maximum(var, floor), prev.variances)
    return DiagGMM(occ / occ.sum(), means, var, dtype=dtype)


def _weighted_stats(g: DiagGMM, X: np.ndarray, weight: np.ndarray | None = None) -> Stats:
    """Statistics of frames ``X`` for the components of ``g``: responsibilities times ``weight`` (per frame)."""
    resp = g.posteriors(X).astype(np.float64)
    if weight is not None:
        resp *= weight[:, None]
    return Stats.from_posteriors(X, resp)


def _grow(X: np.ndarray, n_components: int, *, floor, split_iter: int, dtype) -> DiagGMM:
    """HTK-style mix-up on one state's frames: 1 Gaussian, then split and ``split_iter`` EM steps per size."""
    glob = Stats.from_posteriors(X)
    one = DiagGMM([1.0], glob.means, np.maximum(glob.sum_xx / glob.occ[0] - (glob.sum_x / glob.occ[0]) ** 2,
                                                floor), dtype=dtype)
    model = one
    for size in growth_schedule(n_components)[1:]:
        model = split_heaviest(model, size)
        for _ in range(split_iter):
            model = _update(_weighted_stats(model, X), model, floor, dtype)
    return model


def _trans_from_occupancy(occ: np.ndarray, n_utts: int) -> np.ndarray:
    """ML transitions from each state's (expected) number of frames: every utterance leaves every state once.

    With ``d`` frames in a state over ``N`` utterances there are ``d - N`` self-loops and ``N`` moves.  A
    1-state chain gets ``[0, 0]`` (no duration model: its score is the GMM's).
    """
    if len(occ) == 1:
        return np.zeros((1, 2))
    occ = np.maximum(occ, n_utts)
    with np.errstate(divide="ignore"):
        return np.log(np.column_stack([(occ - n_utts) / occ, n_utts / occ]))


def train_chain(utterances, n_states: int, n_components: int, *, method: str = "viterbi", n_iter: int = 10,
                var_floor: float = 1e-3, split_iter: int = 4, dtype="float32",
                random_state=None) -> tuple[ChainHMM, list[float]]:
    """Train one class's left-to-right chain from its utterances (HInit + HRest, no skips).

    Start: every utterance cut into ``n_states`` equal slices; each state's GMM grown on its pooled frames
    from one Gaussian by HTK's mix-up (split the heaviest component, ``split_iter`` EM steps per size) up
    to ``n_components``; transitions from the slices' durations.  Then ``n_iter`` iterations of

    * ``method="viterbi"`` (segmental k-means): best-path alignment of every utterance, then one EM step
      of each state's GMM on its aligned frames and the transitions from the aligned durations;
    * ``method="baum-welch"``: forward-backward occupancies, then one EM step of each state's GMM with
      every frame weighted by its state occupancy, transitions from the expected durations.

    The number of components stays fixed after the start; a component with no occupancy keeps its mean and
    variance (weight ~0), and a state with no frames keeps its previous GMM (possible only for
    Baum-Welch's vanishing occupancies: Viterbi always aligns at least one frame per state).  Variances are
    floored at ``var_floor`` times the class's global variance (:func:`acoustic_gmm.gmm.variance_floor`).

    Parameters
    ----------
    utterances : list of ndarray, each (T_n, D), or ndarray (N, T, D)
        The class's training utterances; each needs at least ``n_states`` frames.
    n_states, n_components : int
        States in the chain, Gaussians per state.
    method : {"viterbi", "baum-welch"}
    n_iter : int
        Re-estimation iterations after the start.
    var_floor : float
        Relative variance floor.
    split_iter : int
        EM iterations after each mix-up step of the start.
    dtype : {"float32", "float64"}
        Arithmetic of the states' GMMs.  With float64 the history never decreases (exact EM steps); with
        float32 only to float32 rounding of the frame scores.
    random_state : ignored
        The start is deterministic; accepted for symmetry with :func:`acoustic_gmm.gmm.train`.

    Returns
    -------
    chain : ChainHMM
    history : list of float, length ``n_iter + 1``
        Total log-likelihood of the training utterances under the start model and after every iteration:
        the best-path score (Viterbi) or the forward log-likelihood (Baum-Welch), transitions included.
        Never decreases (see ``dtype``).

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> utts = [np.vstack([rng.normal(0, 1, (8, 3)), rng.normal(5, 1, (12, 3))]) for _ in range(10)]
    >>> chain, hist = train_chain(utts, 2, 2, method="baum-welch", n_iter=2, dtype="float64")
    >>> chain.n_states, len(hist), hist[0] <= hist[1] <= hist[2]
    (2, 3, True)
    """
    if method not in METHODS:
        raise ParameterError(f"method must be one of {METHODS}, got {method!r}")
    for name, value, low in (("n_states", n_states, 1), ("n_components", n_components, 1), ("n_iter", n_iter, 0),
                             ("split_iter", split_iter, 0)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
            raise ParameterError(f"{name} must be an integer >= {low}, got {value!r}")
    if not var_floor >= 0:
        raise ParameterError(f"var_floor must be >= 0, got {var_floor!r}")
    if isinstance(utterances, np.ndarray) and utterances.ndim == 3:  # equal-length utterances, (N, T, D)
        utterances = list(utterances)
    if isinstance(utterances, np.ndarray) or not len(utterances):
        raise DataError("utterances must be a non-empty list of (n_frames, n_features) arrays")
    D = np.asarray(utterances[0]).shape[-1] if np.ndim(utterances[0]) == 2 else None
    utts = [check_frames(u, n_features=D, min_frames=n_states, what=f"utterances[{i}]", owner="the first utterance")
            for i, u in enumerate(utterances)]
    S, N = n_states, len(utts)
    lengths = np.array([len(u) for u in utts])
    offsets = np.r_[0, np.cumsum(lengths)]
    X = np.concatenate(utts).astype(np.float64, copy=False)
    gvar = X.var(0)
    constant = np.flatnonzero(gvar <= 1e-12 * np.maximum(1.0, X.mean(0) ** 2))
    if len(constant):
        raise DataError(f"feature dimension(s) {constant.tolist()[:10]} are constant over all {len(X)} frames")
    floor = variance_floor(gvar, var_floor)

    # start: equal slices
    labels = np.concatenate([np.repeat(np.arange(S), np.diff((np.arange(S + 1) * T) // S)) for T in lengths])
    states = [_grow(X[labels == s], n_components, floor=floor, split_iter=split_iter, dtype=dtype)
              for s in range(S)]
    log_trans = _trans_from_occupancy(np.bincount(labels, minlength=S).astype(np.float64), N)

    history: list[float] = []
    for it in range(n_iter + 1):
        B = np.column_stack([g.score_samples(X) for g in states])
        scores = [B[offsets[n]:offsets[n + 1]] for n in range(N)]
        if method == "viterbi":
            results = [viterbi(b, log_trans) for b in scores]
            history.append(float(sum(r[0] for r in results)))
            if it == n_iter:
                break
            labels = np.concatenate([r[1] for r in results])
            states = [_update(_weighted_stats(g, X[labels == s]), g, floor, dtype) for s, g in enumerate(states)]
            log_trans = _trans_from_occupancy(np.bincount(labels, minlength=S).astype(np.float64), N)
        else:
            loglik, gammas = forward_backward(scores, log_trans)
            history.append(float(loglik.sum()))
            if it == n_iter:
                break
            gamma = np.concatenate(gammas)
            states = [_update(_weighted_stats(g, X, gamma[:, s]), g, floor, dtype) for s, g in enumerate(states)]
            log_trans = _trans_from_occupancy(gamma.sum(0), N)
    return ChainHMM(states, log_trans), history
