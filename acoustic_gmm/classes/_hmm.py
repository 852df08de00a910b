"""Left-to-right HMM class models: chains of diagonal-GMM states (HTK's HInit / HRest, isolated units).

A class (a word, a phone, a digit) is a chain of ``S`` emitting states visited in order, each a
:class:`~acoustic_gmm.gmm.DiagGMM`, with a self-loop and a move to the next state (the last state's move
is the exit).  No skips: every path visits every state for at least one frame, so an utterance shorter
than ``S`` frames cannot be explained and scores ``-inf``.

* :class:`ChainHMM` -- the model: ``states`` and ``log_trans`` (S, 2).
* :func:`viterbi` -- best path of one utterance through one chain, from its per-state frame scores.
* :func:`viterbi_batch` -- best-path scores of one utterance against ``C`` chains at once, from a
  (T, C, S) array of frame scores: what classification uses.
* :func:`forward_backward` -- state occupancies and the total log-likelihood (Baum-Welch's E-step).
* :func:`score_utterance`, :func:`score_classes` -- best-path log-likelihoods, transitions included.

A 1-state chain is today's class GMM: its ``log_trans`` is ``[0, 0]`` (no duration model), so its score
is the sum of the GMM's frame log-likelihoods.

Training is ``_states``'.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DataError, ParameterError, check_frames
from ..gmm._model import DiagGMM

__all__ = ["ChainHMM", "viterbi", "forward_backward", "score_utterance"]


METHODS = ("viterbi", "baum-welch")



# --------------------------------------------------------------------------- the model

@dataclass
class ChainHMM:
    """A left-to-right chain of ``S`` emitting GMM states.

    Parameters
    ----------
    states : list of DiagGMM
        The ``S`` states, in order; all of the same number of features.
    log_trans : ndarray, shape (S, 2)
        ``log_trans[s, 0]``: log-probability of staying in state ``s``; ``log_trans[s, 1]``: of moving to
        ``s + 1`` (for the last state: of exiting).  Rows need not be normalised (a 1-state chain uses
        ``[0, 0]``: no duration model).

    Examples
    --------
    >>> g = DiagGMM([1.0], [[0.0]], [[1.0]], dtype="float64")
    >>> ChainHMM([g, g], np.log([[0.5, 0.5], [0.9, 0.1]])).n_states
    2
    """

    states: list
    log_trans: np.ndarray

    def __post_init__(self):
        self.states = list(self.states)
        if not self.states or not all(isinstance(g, DiagGMM) for g in self.states):
            raise ParameterError("states must be a non-empty list of DiagGMM")
        if len({g.n_features for g in self.states}) != 1:
            raise ParameterError("all states must have the same number of features")
        self.log_trans = np.asarray(self.log_trans, dtype=np.float64)
        if self.log_trans.shape != (len(self.states), 2):
            raise ParameterError(f"log_trans must have shape ({len(self.states)}, 2), got {self.log_trans.shape}")
        if np.isnan(self.log_trans).any() or (self.log_trans > 0).any():
            raise ParameterError("log_trans must hold log-probabilities (<= 0, no NaN)")
        if not np.isfinite(self.log_trans[:, 1]).all():
            raise ParameterError("every state's move (exit) log-probability must be finite")

    @property
    def n_states(self) -> int:
        return len(self.states)

    @property
    def n_features(self) -> int:
        return self.states[0].n_features

    def frame_scores(self, X: np.ndarray) -> np.ndarray:
        """Each frame's log-likelihood under each state's GMM, (n_frames, n_states), float64."""
        return np.column_stack([g.score_samples(X) for g in self.states])


# --------------------------------------------------------------------------- Viterbi

def check_transitions(log_trans, shape, what="log_trans") -> np.ndarray:
    lt = np.asarray(log_trans, dtype=np.float64)
    if lt.shape != shape:
        raise ParameterError(f"{what} must have shape {shape}, got {lt.shape}")
    if np.isnan(lt).any() or not np.isfinite(lt[..., 1]).all():
        raise ParameterError(f"{what}: no NaN, and every move (exit) log-probability must be finite")
    return lt


def _viterbi_core(B: np.ndarray, stay: np.ndarray, move: np.ndarray, backtrack: bool, ends: np.ndarray | None = None,
                  carry: np.ndarray | None = None):
    """Best-path scores of frames ``B`` (T, C, S) through C chains (``stay``, ``move`` (C, S)).

    ``ends`` (C,) reads chain c's score at frame ``ends[c]`` instead of the last one: the recursion only
    looks back, so frames after a chain's end (padding) change nothing before it.  ``carry`` (C, S) continues
    a recursion: the best scores of every state at the frame before ``B`` (None: the chain starts here, in
    state 0), so that a long utterance can be scored a block of frames at a time.

    A loop over the states with vector operations over time: the best score of being in state ``s`` at
    frame ``t`` is ``cum_s[t] + t a_s + max_{tau <= t} (entry_s[tau] - cum_s[tau - 1] - tau a_s)``, with
    ``cum_s`` the running sum of the state's frame scores and ``entry_s[tau]`` the best score of entering
    ``s`` at frame ``tau``; the max over entry times is a cumulative max.  Returns the (C,) scores, if
    ``backtrack`` each state's best entry frame for every end frame, (S, T, C), and every state's best score
    at the last frame, (C, S) (the next block's ``carry``).
    """
    T, C, S = B.shape
    t = np.arange(T, dtype=np.float64)[:, None]
    entry = np.full((T, C), -np.inf)
    if carry is None:
        entry[0] = 0.0
    args = np.empty((S, T, C), dtype=np.intp) if backtrack else None
    last = np.empty((C, S))
    idx = np.arange(T)[:, None]
    with np.errstate(invalid="ignore"):  # -inf - -inf where no path exists; masked below
        for s in range(S):
            a = stay[:, s]
            finite = np.isfinite(a)
            a0 = np.where(finite, a, 0.0)
            if carry is not None:  # staying in s from the frame before the block
                entry[0] = np.maximum(entry[0], carry[:, s] + a)
            cum = np.cumsum(B[:, :, s], axis=0)
            G = entry - np.concatenate([np.zeros((1, C)), cum[:-1]]) - t * a0
            M = np.maximum.accumulate(G, axis=0)
            D = cum + t * a0 + M
            if not finite.all():  # no self-loop: the state holds exactly one frame
                D = np.where(finite, D, entry + B[:, :, s])
            D[np.isnan(D)] = -np.inf
            if backtrack:
                arg = np.maximum.accumulate(np.where(G == M, idx, 0), axis=0)
                args[s] = np.where(finite, arg, idx)
            last[:, s] = D[T - 1]
            entry = np.full((T, C), -np.inf)
            entry[1:] = D[:-1] + move[:, s]
            if carry is not None:  # moving on into s + 1 from the frame before the block
                entry[0] = carry[:, s] + move[:, s]
    final = D[T - 1] if ends is None else D[ends, np.arange(C)]
    return final + move[:, S - 1], args, last


def viterbi(frame_scores: np.ndarray, log_trans: np.ndarray) -> tuple[float, np.ndarray | None]:
    """Best path through a left-to-right chain, starting in state 0 at frame 0, ending in the last state.

    Parameters
    ----------
    frame_scores : ndarray, shape (T, S)
        Log-likelihood of each frame under each state (finite).
    log_trans : ndarray, shape (S, 2)
        Log-probabilities of staying in / moving on from each state (see :class:`ChainHMM`); the last
        state's exit is added after the last frame.

    Returns
    -------
    best_log_score : float
        Frame scores plus transitions along the best path; ``-inf`` if ``T < S``.
    path : ndarray of int, shape (T,), or None
        The state of every frame on the best path (non-decreasing, steps of 0 or 1); None if ``T < S``.

    Examples
    --------
    >>> B = np.log([[0.9, 0.1], [0.6, 0.4], [0.1, 0.9]])
    >>> score, path = viterbi(B, np.log([[0.5, 0.5], [0.5, 1.0]]))
    >>> path.tolist(), round(score, 4) == round(float(np.log(0.9 * 0.5 * 0.6 * 0.5 * 0.9)), 4)
    ([0, 0, 1], True)
    """
    B = np.asarray(frame_scores, dtype=np.float64)
    if B.ndim != 2 or B.shape[1] == 0:
        raise DataError(f"frame_scores must be (n_frames, n_states), got shape {B.shape}")
    T, S = B.shape
    lt = check_transitions(log_trans, (S, 2))
    if not np.isfinite(B).all():
        raise DataError("frame_scores must be finite")
    if T < S:
        return -np.inf, None
    best, args, _ = _viterbi_core(B[:, None, :], lt[None, :, 0], lt[None, :, 1], backtrack=True)
    return float(best[0]), _backtrack(args)[:, 0]


def _backtrack(args: np.ndarray) -> np.ndarray:
    """Every chain's best path (T, C) from :func:`_viterbi_core`'s entry frames (S, T, C): from the last
    state's entry at the last frame back to state 0's."""
    S, T, C = args.shape
    path = np.empty((T, C), dtype=np.intp)
    for c in range(C):
        end = T - 1
        for s in range(S - 1, -1, -1):
            start = int(args[s, end, c])
            path[start:end + 1, c] = s
            end = start - 1
    return path


def viterbi_paths(frame_scores: np.ndarray, log_trans: np.ndarray) -> np.ndarray:
    """Best paths of one utterance through ``C`` chains at once: the state of every frame in every chain.

    Parameters
    ----------
    frame_scores : ndarray, shape (T, C, S)
        Finite log-likelihoods of every frame under every chain's every state, ``T >= S``.
    log_trans : ndarray, shape (C, S, 2)

    Returns
    -------
    ndarray of int, shape (T, C)
        Column ``c`` is what :func:`viterbi` returns as the path for chain ``c``.

    Examples
    --------
    >>> B = np.log([[[0.9, 0.1]], [[0.6, 0.4]], [[0.1, 0.9]]])
    >>> viterbi_paths(B, np.log([[[0.5, 0.5], [0.5, 1.0]]]))[:, 0].tolist()
    [0, 0, 1]
    """
    B = np.asarray(frame_scores, dtype=np.float64)
    if B.ndim != 3 or B.shape[0] < B.shape[2] or not np.isfinite(B).all():
        raise DataError(f"frame_scores must be finite (n_frames >= n_states, n_classes, n_states), got {B.shape}")
    lt = check_transitions(log_trans, B.shape[1:] + (2,))
    return _backtrack(_viterbi_core(B, lt[:, :, 0], lt[:, :, 1], backtrack=True)[1])


def viterbi_batch(frame_scores: np.ndarray, log_trans: np.ndarray) -> np.ndarray:
    """Best-path scores of one utterance against ``C`` chains of ``S`` states at once.

    Parameters
    ----------
    frame_scores : ndarray, shape (T, C, S)
        Log-likelihood of every frame under every class's every state.
    log_trans : ndarray, shape (C, S, 2)
        Every class's transitions (see :class:`ChainHMM`).

    Returns
    -------
    ndarray, shape (C,)
        What :func:`viterbi` would return for each class; all ``-inf`` if ``T < S``.

    Examples
    --------
    >>> B = np.zeros((4, 2, 3))
    >>> viterbi_batch(B, np.log(np.full((2, 3, 2), 0.5))).round(4).tolist()
    [-2.7726, -2.7726]
    """
    B = np.asarray(frame_scores, dtype=np.float64)
    if B.ndim != 3 or 0 in B.shape[1:]:
        raise DataError(f"frame_scores must be (n_frames, n_classes, n_states), got shape {B.shape}")
    T, C, S = B.shape
    lt = check_transitions(log_trans, (C, S, 2))
    if not np.isfinite(B).all():
        raise DataError("frame_scores must be finite")
    if T < S:
        return np.full(C, -np.inf)
    return _viterbi_core(B, lt[:, :, 0], lt[:, :, 1], backtrack=False)[0]


VITERBI_BATCH_CELLS = 1 << 21  # padded frames x chains x states per batch of utterances (16 MiB of float64)


def viterbi_many(frame_scores: np.ndarray, lengths, log_trans: np.ndarray) -> np.ndarray:
    """:func:`viterbi_batch` for many utterances, batched: (U, C) best-path scores.

    ``frame_scores`` (N, C, S) holds the utterances' frames one after another (any float type), ``lengths``
    (U,) how many each has.  Utterances of similar length are padded to a common length and run through the
    recursion together (a batch of utterances is more chains), and an utterance too long for one batch is
    run a block of frames at a time, carrying its states' scores from block to block: the same numbers as
    one call per utterance (a test checks it), in bounded memory (``VITERBI_BATCH_CELLS``) and without a
    Python loop per utterance.  Shorter than the chain: ``-inf``.
    """
    lengths = np.asarray(lengths, dtype=np.intp)
    _, C, S = frame_scores.shape
    lt = check_transitions(log_trans, (C, S, 2))
    stay, move = lt[:, :, 0], lt[:, :, 1]
    starts = np.r_[0, np.cumsum(lengths)[:-1]]
    out = np.full((len(lengths), C), -np.inf)
    order = [u for u in np.argsort(lengths, kind="stable") if lengths[u] >= S]
    block = max(1, VITERBI_BATCH_CELLS // (C * S))
    i = 0
    while i < len(order):  # a batch: the next utterances by length, as many as fit the cell budget
        j = i + 1
        while j < len(order) and lengths[order[j]] * (j + 1 - i) * C * S <= VITERBI_BATCH_CELLS:
            j += 1
        batch = order[i:j]
        if len(batch) == 1 and lengths[batch[0]] > block:  # one long utterance, a block of frames at a time
            u = batch[0]
            carry = None
            for a in range(starts[u], starts[u] + lengths[u], block):
                b = min(a + block, starts[u] + lengths[u])
                scores, _, carry = _viterbi_core(np.asarray(frame_scores[a:b], dtype=np.float64), stay, move,
                                                 backtrack=False, carry=carry)
            out[u] = scores
        else:
            T = int(lengths[batch[-1]])
            P = np.zeros((T, len(batch), C, S))
            for k, u in enumerate(batch):
                P[:lengths[u], k] = frame_scores[starts[u]:starts[u] + lengths[u]]
            ends = np.repeat(lengths[batch] - 1, C)
            scores, _, _ = _viterbi_core(P.reshape(T, len(batch) * C, S), np.tile(stay, (len(batch), 1)),
                                         np.tile(move, (len(batch), 1)), backtrack=False, ends=ends)
            out[batch] = scores.reshape(len(batch), C)
        i = j
    return out


# --------------------------------------------------------------------------- forward-backward

def forward_backward(frame_scores_list, log_trans: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """State occupancies of utterances in a chain, by the forward-backward algorithm in log space.

    The utterances are padded to the longest and processed together: a loop over time of vector
    operations over utterances and states.

    Parameters
    ----------
    frame_scores_list : list of ndarray, each (T_n, S)
        Each utterance's per-state frame log-likelihoods; every ``T_n >= S``.
    log_trans : ndarray, shape (S, 2)

    Returns
    -------
    loglik : ndarray, shape (N,)
        Each utterance's total log-likelihood (all paths, exit included).
    occupancy : list of ndarray, each (T_n, S)
        ``P(state s at frame t | utterance)``; rows sum to 1.

    Examples
    --------
    >>> ll, gam = forward_backward([np.zeros((3, 2))], np.log([[0.5, 0.5], [0.5, 0.5]]))
    >>> gam[0].round(3).tolist()
    [[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]]
    """
    Bs = [np.asarray(b, dtype=np.float64) for b in frame_scores_list]
    if not Bs or any(b.ndim != 2 for b in Bs) or len({b.shape[1] for b in Bs}) != 1:
        raise DataError("frame_scores_list must be a non-empty list of (T_n, S) arrays with one S")
    S = Bs[0].shape[1]
    lt = check_transitions(log_trans, (S, 2))
    stay, move = lt[:, 0], lt[:, 1]
    L = np.array([len(b) for b in Bs])
    if (L < S).any():
        raise DataError(f"utterance(s) {np.flatnonzero(L < S).tolist()[:10]} have fewer frames than the {S} states")
    N, Tmax = len(Bs), int(L.max())
    valid = np.arange(Tmax)[None, :] < L[:, None]  # (N, Tmax)
    B = np.zeros((N, Tmax, S))
    B[valid] = np.concatenate(Bs)
    B = B.transpose(1, 0, 2)  # (Tmax, N, S)
    ninf = np.full((N, 1), -np.inf)
    alpha = np.empty((Tmax, N, S))
    alpha[0] = -np.inf
    alpha[0, :, 0] = B[0, :, 0]
    for t in range(1, Tmax):
        prev = alpha[t - 1]
        alpha[t] = np.logaddexp(prev + stay, np.hstack([ninf, prev[:, :-1] + move[:-1]])) + B[t]
    loglik = alpha[L - 1, np.arange(N), S - 1] + move[S - 1]
    end = np.full(S, -np.inf)
    end[-1] = move[-1]
    beta = np.full((Tmax, N, S), -np.inf)
    for t in range(Tmax - 1, -1, -1):
        if t < Tmax - 1:
            nxt = B[t + 1] + beta[t + 1]
            rec = np.logaddexp(stay + nxt, np.hstack([move[:-1] + nxt[:, 1:], ninf]))
            beta[t] = np.where((t < L - 1)[:, None], rec, -np.inf)
        beta[t, L - 1 == t] = end
    with np.errstate(invalid="ignore"):
        gamma = np.exp(alpha + beta - loglik[None, :, None])
    gamma = np.nan_to_num(gamma, nan=0.0).transpose(1, 0, 2)[valid]
    return loglik, np.split(gamma, np.cumsum(L)[:-1])


# --------------------------------------------------------------------------- scoring

def score_utterance(chain: ChainHMM, X: np.ndarray) -> float:
    """Best-path (Viterbi) log-likelihood of frames ``X`` (T, D) in ``chain``, transitions included.

    ``-inf`` if ``T < n_states``.  For a 1-state chain with ``log_trans = [[0, 0]]`` (what
    :func:`train_chain` gives) this is ``chain.states[0].score_samples(X).sum()``.

    Examples
    --------
    >>> g = DiagGMM([1.0], [[0.0]], [[1.0]], dtype="float64")
    >>> X = np.array([[0.0], [1.0]])
    >>> bool(np.isclose(score_utterance(ChainHMM([g], [[0.0, 0.0]]), X), g.score_samples(X).sum()))
    True
    """
    X = check_frames(X, n_features=chain.n_features, what="X", owner="the chain")
    return viterbi(chain.frame_scores(X), chain.log_trans)[0]


def frame_scores(chains, X: np.ndarray) -> np.ndarray:
    """Frame scores of ``X`` (T, D) under every state of ``C`` chains of equal length: (T, C, S)."""
    chains = list(chains)
    if not chains or len({c.n_states for c in chains}) != 1:
        raise ParameterError("chains must be a non-empty list of chains with the same number of states")
    X = check_frames(X, n_features=chains[0].n_features, what="X", owner="the chains")
    return np.stack([c.frame_scores(X) for c in chains], axis=1)


def score_classes(chains, X: np.ndarray) -> np.ndarray:
    """Best-path log-likelihood of ``X`` (T, D) in each of ``C`` chains (same ``n_states``): (C,).

    Examples
    --------
    >>> g0 = DiagGMM([1.0], [[0.0]], [[1.0]], dtype="float64")
    >>> g1 = DiagGMM([1.0], [[5.0]], [[1.0]], dtype="float64")
    >>> chains = [ChainHMM([g0], [[0.0, 0.0]]), ChainHMM([g1], [[0.0, 0.0]])]
    >>> int(np.argmax(score_classes(chains, np.zeros((3, 1)))))
    0
    """
    B = frame_scores(chains, X)
    return viterbi_batch(B, np.stack([c.log_trans for c in chains]))
