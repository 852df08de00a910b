"""HMM-state class models through the model set (`train --states N` from the command line: cli/test_classes.py)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from acoustic_gmm.classes import ModelSet, train_chain
from acoustic_gmm.gmm import DiagGMM


def test_one_state_scores_as_the_class_gmm():
    rng = np.random.default_rng(0)
    models = {c: [DiagGMM(np.full(3, 1 / 3), rng.normal(size=(3, 2)), rng.uniform(0.5, 2, (3, 2)))] for c in "xyz"}
    plain = ModelSet(models)
    chain = ModelSet(models, log_trans={c: np.zeros((1, 2)) for c in "xyz"})
    utts = [rng.normal(size=(n, 2)) for n in (1, 7, 40)]
    np.testing.assert_allclose(chain.score(utts).total, plain.score(utts).total, rtol=1e-6)


def test_adaptation_aligns_frames_to_hmm_states_by_their_best_path():
    from acoustic_gmm.classes._adapt import _by_model

    A, B = np.array([[3.0, 0.0]]), np.array([[-3.0, 0.0]])
    one = lambda m: DiagGMM([1.0], m, [[1.0, 1.0]])  # noqa: E731
    ms = ModelSet({"ab": [one(A), one(B)]}, log_trans={"ab": np.log([[0.9, 0.1], [0.9, 0.1]])})
    X = np.vstack([np.repeat(A, 3, 0), np.repeat(B, 9, 0)])  # 3 frames of A, then 9 of B: not equal halves
    np.testing.assert_array_equal(ms.align(X, "ab"), [0] * 3 + [1] * 9)
    parts = _by_model(ms, [X], ["ab"])
    assert len(parts[("ab", 0)]) == 3 and len(parts[("ab", 1)]) == 9
    np.testing.assert_array_equal(ModelSet(ms.models).align(X, "ab"), [0] * 6 + [1] * 6)  # slices: equal halves


def test_hmm_states_and_mmi_train_on_the_engines_updates(monkeypatch):
    """One training engine: HMM states grow and re-estimate their GMMs with the GMM engine's mix-up and ML update
    (its variance floor and empty-component policy), MMI updates with the engine's EBW update, and both start
    from the one equal-slice rule; none of them builds a GMM of its own."""
    import inspect

    from acoustic_gmm.classes import _mmi, _model_set, _states
    from acoustic_gmm.gmm import _ebw, _train, _update

    assert _states.ml_update is _update.ml_update and _states.train is _train.train
    assert _states.slice_of_frames is _model_set.slice_of_frames
    assert _mmi.ebw_update is _ebw.ebw_update
    for module in (_states, _mmi):
        assert "DiagGMM(" not in inspect.getsource(module), module.__name__
    calls = []
    monkeypatch.setattr(_states, "ml_update", lambda *a, **k: calls.append(k["n_frames"]) or _update.ml_update(*a, **k))
    rng = np.random.default_rng(0)
    utts = [np.vstack([rng.normal(-3, 1, (9, 2)), rng.normal(3, 1, (9, 2))]) for _ in range(6)]
    train_chain(utts, 2, 1, n_iter=2, method="baum-welch", dtype="float64")
    assert len(calls) == 2 * 2  # every state, every iteration: the engine's update
    assert sum(calls[:2]) == pytest.approx(6 * 18)  # over the states' expected frames, which add to all frames


def test_a_chain_continues_from_a_start_without_losing_likelihood():
    """start= re-estimates a previous pass's chain (SAT's and MLLT's passes): its history begins at the start's
    likelihood and never falls; a start of another shape is refused."""
    from acoustic_gmm import ParameterError

    rng = np.random.default_rng(4)
    utts = [np.vstack([rng.normal(-3, 1, (9, 2)), rng.normal(3, 1, (9, 2))]) for _ in range(8)]
    first, history = train_chain(utts, 2, 2, n_iter=1, method="baum-welch", dtype="float64")
    more, _ = train_chain(utts, 2, 2, n_iter=4, method="baum-welch", dtype="float64")
    again, continued = train_chain(utts, 2, 2, n_iter=3, method="baum-welch", dtype="float64", start=first)
    assert continued[0] == pytest.approx(history[-1], rel=1e-12)
    assert all(b >= a - 1e-9 for a, b in zip(continued, continued[1:])) and continued[-1] > continued[0]
    # one iteration then three from it is the four-iteration run
    np.testing.assert_allclose(again.states[1].means, more.states[1].means, rtol=1e-10)
    with pytest.raises(ParameterError, match="start has 2 state"):
        train_chain(utts, 3, 2, start=first)


def _lengths_archive(path, n_frames):
    """Two classes of utterances of ``n_frames`` frames each (a raw archive)."""
    from acoustic_gmm.features import MfccConfig
    from acoustic_gmm.storage import write_features

    rng = np.random.default_rng(0)
    items = [(f"{c}_{k}", (rng.normal(size=(n_frames, 4)) + 2.0 * i).astype(np.float32), c, f"s{k % 3}",
              np.ones(n_frames, bool)) for i, c in enumerate("ab") for k in range(12)]
    write_features(path, items, config=MfccConfig(n_mfcc=4, n_mels=8, deltas=0), sample_rate=8000, raw=True)
    return path


def test_short_utterances_get_fixed_slices_by_default_and_say_so(tmp_path):
    """Phone segments (median under 5 frames a state) train 3 fixed slices unless states or slices are asked for."""
    from acoustic_gmm.classes import SHORT_FRAMES_PER_STATE, train_model_set

    short = _lengths_archive(tmp_path / "short.h5", 3 * SHORT_FRAMES_PER_STATE - 1)
    with pytest.warns(UserWarning, match=r"short.h5: short utterances \(median 14 frames\): 3 fixed slices of 2 "
                                         r"Gaussians a class instead of 3 HMM states \(give states= or slices= to"):
        ms = train_model_set(short, n_components=2, jobs=1, progress=False, reject_quantile=None)
    assert ms.n_slices == 3 and ms.log_trans is None and ms.metadata["states"] is None
    asked = train_model_set(short, n_components=2, states=3, jobs=1, progress=False, reject_quantile=None)
    assert asked.log_trans is not None and asked.metadata["states"] == "baum-welch"
    long = _lengths_archive(tmp_path / "long.h5", 3 * SHORT_FRAMES_PER_STATE)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # words: the HMM states, without a word
        ms = train_model_set(long, n_components=2, jobs=1, progress=False, reject_quantile=None)
    assert ms.log_trans is not None and ms.metadata["states"] == "baum-welch"
