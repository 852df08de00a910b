"""Left-to-right chain HMMs: Viterbi against brute force, Baum-Welch / Viterbi training, 1-state = GMM,
and classification by the order of sounds."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from acoustic_gmm.classes import ChainHMM, forward_backward, score_utterance, train_chain, viterbi
from acoustic_gmm.classes._hmm import score_classes, viterbi_batch
from acoustic_gmm.errors import ComponentWarning, DataError, ParameterError
from acoustic_gmm.gmm import DiagGMM


def monotone_paths(T, S):
    """Every state sequence that starts in 0, ends in S - 1 and steps by 0 or 1."""
    for moves in itertools.combinations(range(1, T), S - 1):  # frames at which the state advances
        path = np.zeros(T, dtype=int)
        for m in moves:
            path[m:] += 1
        yield path


def path_score(B, log_trans, path):
    score = B[np.arange(len(path)), path].sum()
    score += sum(log_trans[a, 0] if a == b else log_trans[a, 1] for a, b in itertools.pairwise(path))
    return score + log_trans[path[-1], 1]


def brute_force(B, log_trans):
    return max(((path_score(B, log_trans, p), p) for p in monotone_paths(*B.shape)), key=lambda x: x[0])


# --------------------------------------------------------------------------- Viterbi

def test_viterbi_tiny_hand_chain():
    # S = 3, T = 5: frames favour states 0, 0, 1, 2, 2, except that frame 2 slightly prefers state 2
    B = np.log([[0.8, 0.1, 0.1],
                [0.6, 0.3, 0.1],
                [0.1, 0.4, 0.5],
                [0.1, 0.2, 0.7],
                [0.1, 0.1, 0.8]])
    lt = np.log([[0.6, 0.4], [0.5, 0.5], [0.7, 0.3]])
    score, path = viterbi(B, lt)
    best, best_path = brute_force(B, lt)
    assert path.tolist() == best_path.tolist() == [0, 0, 1, 2, 2]
    # by hand: .8 .6 .4 .7 .8 along the path; stay .6, move .4, move .5, stay .7, exit .3
    hand = np.log(0.8 * 0.6 * 0.4 * 0.7 * 0.8 * 0.6 * 0.4 * 0.5 * 0.7 * 0.3)
    assert score == pytest.approx(best, rel=1e-12) == pytest.approx(hand, rel=1e-12)


@pytest.mark.parametrize("T,S", [(1, 1), (4, 1), (3, 3), (6, 2), (8, 3), (9, 4)])
def test_viterbi_equals_brute_force_random(T, S):
    rng = np.random.default_rng(T * 10 + S)
    for _ in range(20):
        B = rng.normal(scale=3.0, size=(T, S))
        p = rng.uniform(0.05, 0.95, size=S)
        lt = np.log(np.column_stack([p, 1 - p]))
        score, path = viterbi(B, lt)
        best, _ = brute_force(B, lt)
        assert score == pytest.approx(best, rel=1e-12, abs=1e-12)
        assert path_score(B, lt, path) == pytest.approx(score, rel=1e-12, abs=1e-12)  # the path is a best one
        assert path[0] == 0 and path[-1] == S - 1 and set(np.diff(path)) <= {0, 1}


def test_viterbi_state_without_self_loop():
    B = np.random.default_rng(0).normal(size=(6, 3))
    with np.errstate(divide="ignore"):
        lt = np.log([[0.5, 0.5], [0.0, 1.0], [0.9, 0.1]])  # state 1 lasts exactly one frame
    score, path = viterbi(B, lt)
    best, _ = brute_force(B, lt)
    assert score == pytest.approx(best, rel=1e-12)
    assert (path == 1).sum() == 1


def test_viterbi_too_short_is_minus_inf():
    score, path = viterbi(np.zeros((2, 3)), np.log(np.full((3, 2), 0.5)))
    assert score == -np.inf and path is None
    assert (viterbi_batch(np.zeros((2, 4, 3)), np.log(np.full((4, 3, 2), 0.5))) == -np.inf).all()


def test_viterbi_batch_equals_per_class():
    rng = np.random.default_rng(3)
    T, C, S = 40, 7, 3
    B = rng.normal(scale=2.0, size=(T, C, S))
    p = rng.uniform(0.1, 0.9, size=(C, S))
    lt = np.log(np.stack([p, 1 - p], axis=-1))
    lt[2, 1, 0] = -np.inf  # one class with a one-frame state
    batch = viterbi_batch(B, lt)
    single = [viterbi(B[:, c], lt[c])[0] for c in range(C)]
    np.testing.assert_allclose(batch, single, rtol=1e-12)


def test_viterbi_bad_input():
    with pytest.raises(ParameterError):
        viterbi(np.zeros((4, 3)), np.zeros((2, 2)))
    with pytest.raises(DataError):
        viterbi(np.full((4, 2), np.nan), np.zeros((2, 2)))
    with pytest.raises(DataError):
        viterbi_batch(np.zeros((4, 3)), np.zeros((3, 2)))


def test_forward_backward_equals_enumeration():
    rng = np.random.default_rng(5)
    Bs = [rng.normal(size=(T, 3)) for T in (3, 5, 7)]
    lt = np.log([[0.6, 0.4], [0.3, 0.7], [0.8, 0.2]])
    loglik, gammas = forward_backward(Bs, lt)
    for B, ll, gamma in zip(Bs, loglik, gammas):
        paths = list(monotone_paths(*B.shape))
        scores = np.array([path_score(B, lt, p) for p in paths])
        assert ll == pytest.approx(np.logaddexp.reduce(scores), rel=1e-12)
        post = np.exp(scores - ll)
        expected = sum(w * np.eye(3)[p] for w, p in zip(post, paths))
        np.testing.assert_allclose(gamma, expected, atol=1e-12)


# --------------------------------------------------------------------------- training

# three states, each a distinct 2-component 2-D Gaussian mixture
TRUE_W = np.array([[0.6, 0.4], [0.5, 0.5], [0.3, 0.7]])
TRUE_MU = np.array([[[-4.0, 0.0], [-3.0, 2.0]],
                    [[0.0, -3.0], [2.0, -1.0]],
                    [[4.0, 1.0], [3.0, 3.0]]])
TRUE_VAR = np.array([[[0.5, 0.4], [0.3, 0.6]],
                     [[0.4, 0.4], [0.6, 0.3]],
                     [[0.5, 0.5], [0.4, 0.4]]])


def sample_chain(rng, order=(0, 1, 2), durations=(4, 16)):
    """One utterance: the given states in turn, each for a uniformly random number of frames."""
    parts = []
    for s in order:
        d = rng.integers(*durations)
        k = rng.choice(2, size=d, p=TRUE_W[s])
        parts.append(TRUE_MU[s][k] + rng.standard_normal((d, 2)) * np.sqrt(TRUE_VAR[s][k]))
    return np.vstack(parts)


@pytest.fixture(scope="module")
def chain_data():
    rng = np.random.default_rng(11)
    return [sample_chain(rng) for _ in range(100)]


def state_means(chain):
    return np.array([g.weights @ g.means for g in chain.states])


@pytest.mark.parametrize("method", ["viterbi", "baum-welch"])
def test_training_raises_likelihood_and_recovers_states(chain_data, method):
    chain, history = train_chain(chain_data, 3, 2, method=method, n_iter=15, dtype="float64")
    assert len(history) == 16
    steps = np.diff(history)
    assert (steps >= -1e-9 * np.abs(history[1:])).all(), history
    assert history[-1] > history[0]
    true_means = (TRUE_W[:, :, None] * TRUE_MU).sum(1)
    # measured: largest error 0.034 (Viterbi), 0.037 (Baum-Welch)
    assert np.abs(state_means(chain) - true_means).max() < 0.08
    # and the components, each state's matched to the true ones by order along the second axis
    # (measured: largest error 0.061 Viterbi, 0.070 Baum-Welch)
    for g, mu in zip(chain.states, TRUE_MU):
        est = g.means[np.argsort(g.means[:, 1])]
        ref = mu[np.argsort(mu[:, 1])]
        assert np.abs(est - ref).max() < 0.15
    # transitions: mean duration 9.5 frames -> stay 8.5 / 9.5 = 0.895 (measured 0.896 - 0.898)
    stay = np.exp(chain.log_trans[:, 0])
    assert np.all(np.abs(stay - 8.5 / 9.5) < 0.01)
    assert all(g.dtype == np.float64 for g in chain.states)


def test_float32_training_is_monotone_to_rounding(chain_data):
    _, history = train_chain(chain_data, 3, 2, method="baum-welch", n_iter=5)
    assert (np.diff(history) >= -1e-6 * np.abs(history[1:])).all(), history


@pytest.mark.parametrize("method", ["viterbi", "baum-welch"])
def test_more_components_than_the_data_supports(method):
    # 4 short utterances, 8 Gaussians per state (about 6 frames per Gaussian): components lose their frames and
    # the engine's policy replaces them by splitting, with its warning; no NaN, still monotone
    rng = np.random.default_rng(0)
    data = [sample_chain(rng, durations=(3, 6)) for _ in range(4)]
    with pytest.warns(ComponentWarning, match="fell below the minimum occupancy"):
        chain, history = train_chain(data, 3, 8, method=method, n_iter=10, dtype="float64")
    assert all(np.isfinite(g.means).all() and np.isfinite(g.variances).all() for g in chain.states)
    assert (np.diff(history) >= -1e-9 * np.abs(history[1:])).all(), history


def test_doctests():
    import doctest

    from acoustic_gmm.classes import _hmm as hmm

    assert doctest.testmod(hmm).failed == 0


def test_one_state_chain_is_the_gmm(chain_data):
    chain, history = train_chain(chain_data, 1, 4, n_iter=2, dtype="float64")
    assert chain.log_trans.tolist() == [[0.0, 0.0]]
    g = chain.states[0]
    for X in chain_data[:5]:
        assert score_utterance(chain, X) == pytest.approx(g.score_samples(X).sum(), rel=1e-6)
    assert history[-1] == pytest.approx(sum(g.score_samples(X).sum() for X in chain_data), rel=1e-9)


def test_training_bad_input(chain_data):
    with pytest.raises(DataError):
        train_chain([np.zeros((2, 2)) + np.arange(2)], 3, 1)  # shorter than the chain
    with pytest.raises(DataError):
        train_chain([chain_data[0], chain_data[1][:, :1]], 3, 1)
    with pytest.raises(ParameterError):
        train_chain(chain_data, 3, 1, method="hrest")
    with pytest.raises(ParameterError):
        train_chain(chain_data, 0, 1)
    with pytest.raises(ParameterError):
        ChainHMM([DiagGMM([1.0], [[0.0]], [[1.0]])], np.zeros((2, 2)))


# --------------------------------------------------------------------------- classification by order

def two_sound_utterances(rng, n, first, second):
    """Sound ``first`` then sound ``second`` (each a 1-D-separated 2-D Gaussian), random durations."""
    sounds = {"a": np.array([-2.0, 0.0]), "b": np.array([2.0, 0.0])}
    out = []
    for _ in range(n):
        d1, d2 = rng.integers(5, 20, size=2)
        out.append(np.vstack([sounds[first] + rng.standard_normal((d1, 2)),
                              sounds[second] + rng.standard_normal((d2, 2))]))
    return out


@pytest.mark.parametrize("method", ["viterbi", "baum-welch"])
def test_order_of_sounds_needs_states(method):
    rng = np.random.default_rng(7)
    train = {"ab": two_sound_utterances(rng, 40, "a", "b"), "ba": two_sound_utterances(rng, 40, "b", "a")}
    test = [(u, 0) for u in two_sound_utterances(rng, 100, "a", "b")] + \
           [(u, 1) for u in two_sound_utterances(rng, 100, "b", "a")]

    def accuracy(n_states):
        chains = [train_chain(train[c], n_states, 2, method=method, n_iter=5)[0] for c in ("ab", "ba")]
        return np.mean([np.argmax(score_classes(chains, X)) == y for X, y in test])

    bag, chain2, chain3 = accuracy(1), accuracy(2), accuracy(3)
    assert bag < 0.7          # measured: 0.565 (the bag of frames is the same for both classes)
    assert chain2 > 0.95      # measured: 1.0
    assert chain3 > 0.95      # measured: 1.0


def test_viterbi_many_equals_one_call_per_utterance():
    # padded batches of utterances give exactly the per-utterance scores, whatever the batch size
    from acoustic_gmm.classes import _hmm as hmm

    rng = np.random.default_rng(5)
    C, S = 4, 3
    lengths = np.array([1, 2, 3, 7, 3, 40, 12, 12, 5, 90, 4])
    B = rng.normal(size=(lengths.sum(), C, S))
    trans = np.log(rng.dirichlet([1, 1], size=(C, S)))
    starts = np.r_[0, np.cumsum(lengths)[:-1]]
    want = np.array([hmm.viterbi_batch(B[a:a + n], trans) for a, n in zip(starts, lengths)])
    for cells in (1, 30, 200, 1 << 21):  # blocks of 1 or 2 frames, one utterance a batch, a few, all at once
        old, hmm.VITERBI_BATCH_CELLS = hmm.VITERBI_BATCH_CELLS, cells
        try:
            got = hmm.viterbi_many(B, lengths, trans)
        finally:
            hmm.VITERBI_BATCH_CELLS = old
        np.testing.assert_allclose(got, want, rtol=1e-12)  # blocks sum in another order: equal to rounding
    assert np.isneginf(want[:2]).all() and np.isfinite(want[2:]).all()


def test_viterbi_paths_equal_one_chain_at_a_time():
    from acoustic_gmm.classes import _hmm as hmm

    rng = np.random.default_rng(7)
    B = rng.normal(size=(30, 5, 3))
    trans = np.log(rng.dirichlet([1, 1], size=(5, 3)))
    paths = hmm.viterbi_paths(B, trans)
    for c in range(5):
        assert np.array_equal(paths[:, c], hmm.viterbi(B[:, c], trans[c])[1])
    with pytest.raises(DataError):
        hmm.viterbi_paths(B[:2], trans)  # fewer frames than states
