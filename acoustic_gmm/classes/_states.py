"""Training left-to-right HMM-state chains on the GMM engine's statistics and updates.

:func:`train_chain` starts from equal slices (:func:`~acoustic_gmm.classes.slice_of_frames`, the rule slice models
use), grows each state's GMM with the engine's mix-up (:func:`acoustic_gmm.gmm.train`), then re-estimates by Viterbi
(segmental k-means) or Baum-Welch; every M-step is :func:`acoustic_gmm.gmm.ml_update`, with the engine's variance
floor and empty-component policy.  What is the HMM's own is the alignment and the transitions.

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
from ..gmm._train import train
from ..gmm._update import frames_floor, ml_update
from ._hmm import METHODS, ChainHMM, forward_backward, viterbi
from ._model_set import slice_of_frames

__all__ = ["train_chain"]


# --------------------------------------------------------------------------- training

def _weighted_stats(g: DiagGMM, X: np.ndarray, weight: np.ndarray | None = None) -> Stats:
    """Statistics of frames ``X`` for the components of ``g``: responsibilities times ``weight`` (per frame, a
    state's occupancy in Baum-Welch)."""
    resp = g.posteriors(X).astype(np.float64)
    if weight is not None:
        resp *= weight[:, None]
    return Stats.from_posteriors(X, resp)


def _reestimate(g: DiagGMM, X: np.ndarray, floor: np.ndarray, weight: np.ndarray | None = None) -> DiagGMM:
    """One EM step of a state's GMM on its frames (weighted by occupancy): the engine's ML update and its
    empty-component policy, over the state's (expected) number of frames."""
    stats = _weighted_stats(g, X, weight)
    return ml_update(stats, g, floor=floor, n_frames=float(stats.occ.sum()))[0]


def _grow(X: np.ndarray, n_components: int, *, floor, split_iter: int, dtype) -> DiagGMM:
    """A state's GMM from its frames by the engine's mix-up: one Gaussian, then split the heaviest component and
    ``split_iter`` EM iterations per size, up to ``n_components`` (:func:`acoustic_gmm.gmm.train`, plain EM)."""
    # one Gaussian needs no EM: the frames' mean and variance are its ML fit (max_iter=0 stops there)
    model, _, _, _ = train(X, n_components, init="split", max_iter=split_iter if n_components > 1 else 0, tol=-1.0,
                           split_iter=split_iter, dtype=dtype, overrelax=1.0, floor=floor)
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
                random_state=None, start: ChainHMM | None = None) -> tuple[ChainHMM, list[float]]:
    """Train one class's left-to-right chain from its utterances (HInit + HRest, no skips).

    Start: every utterance cut into ``n_states`` equal slices; each state's GMM grown on its pooled frames
    from one Gaussian by HTK's mix-up (split the heaviest component, ``split_iter`` EM steps per size) up
    to ``n_components``; transitions from the slices' durations.  Then ``n_iter`` iterations of

    * ``method="viterbi"`` (segmental k-means): best-path alignment of every utterance, then one EM step
      of each state's GMM on its aligned frames and the transitions from the aligned durations;
    * ``method="baum-welch"``: forward-backward occupancies, then one EM step of each state's GMM with
      every frame weighted by its state occupancy, transitions from the expected durations.

    The start cuts utterances by the rule slice models use (:func:`~acoustic_gmm.classes.slice_of_frames`), and
    every update is the GMM engine's: its mix-up, its ML update (:func:`acoustic_gmm.gmm.ml_update`) and its
    empty-component policy (a component that loses its frames is replaced by splitting the heaviest, with a
    :class:`~acoustic_gmm.errors.ComponentWarning`).  Variances are floored at ``var_floor`` times the class's
    global variance (:func:`acoustic_gmm.gmm.variance_floor`); a constant feature dimension is refused.

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
    start : ChainHMM, optional
        A chain of ``n_states`` states to re-estimate instead of the equal-slice start (the models of a previous
        pass, as speaker-adaptive and MLLT training continue them); ``n_components`` is then its states'.

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
    >>> chain, hist = train_chain(utts, 2, 1, method="baum-welch", n_iter=2, dtype="float64")
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
    floor = frames_floor(X, var_floor)

    if start is not None:
        if start.n_states != S or start.states[0].n_features != X.shape[1]:
            raise ParameterError(f"start has {start.n_states} state(s) of {start.states[0].n_features} features; "
                                 f"the training asks for {S} of {X.shape[1]}")
        states, log_trans = [g.copy(dtype) for g in start.states], np.array(start.log_trans, dtype=np.float64)
    else:  # equal slices, by the rule slice models use
        labels = np.concatenate([slice_of_frames(T, S) for T in lengths])
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
            states = [_reestimate(g, X[labels == s], floor) for s, g in enumerate(states)]
            log_trans = _trans_from_occupancy(np.bincount(labels, minlength=S).astype(np.float64), N)
        else:
            loglik, gammas = forward_backward(scores, log_trans)
            history.append(float(loglik.sum()))
            if it == n_iter:
                break
            gamma = np.concatenate(gammas)
            states = [_reestimate(g, X, floor, gamma[:, s]) for s, g in enumerate(states)]
            log_trans = _trans_from_occupancy(gamma.sum(0), N)
    return ChainHMM(states, log_trans), history
