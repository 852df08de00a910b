"""Unsupervised speaker adaptation: MLLR recovers a known transform, adaptation rescues a held-out speaker."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from acoustic_gmm import DataError, ParameterError
from acoustic_gmm.classes import ModelSet, adapt_model_set, evaluate, train_model_set
from acoustic_gmm.classes._adapt import MllrStats, transform_means
from acoustic_gmm.classes._evaluation import score_by_speaker
from acoustic_gmm.cli import main
from acoustic_gmm.gmm import DiagGMM

from .conftest import draw_mixture, needs_fsdd


def _model_set(n_features, n_classes=3, n_components=4, seed=0):
    rng = np.random.default_rng(seed)
    return ModelSet({f"c{i}": [DiagGMM(np.full(n_components, 1 / n_components),
                                        rng.normal(scale=3.0, size=(n_components, n_features)),
                                        rng.uniform(0.3, 1.0, size=(n_components, n_features)), dtype="float64")]
                     for i in range(n_classes)})


def _speaker_frames(ms, W, centre, n_per_class, seed=1):
    """Frames of every class drawn from its models with the means mapped through ``W``."""
    out = {}
    for i, c in enumerate(ms.classes):
        m = transform_means(ms.models[c][0], W, centre)
        out[c], _ = draw_mixture(m.weights, m.means, m.variances, n_per_class, seed=seed + i)
    return out


def test_mllr_recovers_a_known_affine_transform():
    D = 4
    ms = _model_set(D)
    centre = ms._stacked()[0].centre
    rng = np.random.default_rng(5)
    W = np.hstack([rng.normal(scale=0.5, size=(D, 1)), np.eye(D) + rng.normal(scale=0.15, size=(D, D))])
    frames = _speaker_frames(ms, W, centre, 20_000)
    est, gaps = None, []
    for _ in range(6):  # EM: align with the current transform, estimate from the original means
        acc = MllrStats(D, centre)
        for c, X in frames.items():
            acc.add(ms.models[c][0], X, None if est is None else transform_means(ms.models[c][0], est, centre))
        est = acc.transform()
        gaps.append(np.abs(est - W).max())
    assert gaps[-1] < 0.007 and gaps[-1] < gaps[0]  # measured: 0.049 after one pass, 0.0058 after six
    assert np.abs(est - np.hstack([np.zeros((D, 1)), np.eye(D)])).max() > 0.2  # it did move away from identity


def test_mllr_goes_diagonal_with_little_data_and_stops_with_none():
    D = 10  # a full row has 11 parameters: 110 frames needed, 50 for any transform
    ms = _model_set(D, n_classes=1, n_components=8)
    centre = ms._stacked()[0].centre
    W = np.hstack([np.ones((D, 1)), 1.1 * np.eye(D)])
    X = _speaker_frames(ms, W, centre, 100)["c0"]
    acc = MllrStats(D, centre)
    acc.add(ms.models["c0"][0], X)
    est = acc.transform()
    off_diagonal = est[:, 1:] - np.diag(np.diag(est[:, 1:]))
    assert np.all(off_diagonal == 0) and np.all(np.abs(np.diag(est[:, 1:]) - 1.1) < 0.08)  # measured: 0.066 at most
    few = MllrStats(D, centre)
    few.add(ms.models["c0"][0], X[:49])
    assert few.transform() is None


def test_adaptation_fixes_a_shifted_speaker_and_keeps_order():
    ms = _model_set(3, n_classes=3, n_components=2, seed=3)
    centre = ms._stacked()[0].centre
    W = np.hstack([np.full((3, 1), 2.5), 0.7 * np.eye(3)])  # the new speaker: every mean shifted and shrunk
    truth, utts = [], []
    for c, X in _speaker_frames(ms, W, centre, 600).items():
        for part in np.split(X, 60):  # utterances of 10 frames
            truth.append(c)
            utts.append(part)
    before = np.mean(np.array(ms.predict(utts)) == truth)
    adapted, scores = adapt_model_set(ms, utts)
    after = np.mean(np.array(scores.predict()) == truth)
    assert 0.64 < before < 0.67 and after == 1.0  # measured: 65.6 % (118/180) -> 100 %
    # the log-likelihood of the speaker's frames under its own classes' models went up
    own = lambda s: sum(s.models[c][0].score_samples(u).sum() for c, u in zip(truth, utts))  # noqa: E731
    assert own(adapted) > own(ms)
    # two speakers interleaved: each adapted on its own, scores back in input order
    other = [u + 0.0 for u in utts[::2]]
    mixed = [x for pair in zip(utts[:len(other)], other) for x in pair]
    speakers = ["a", "b"] * len(other)
    both = score_by_speaker(ms, mixed, speakers)
    _, alone_a = adapt_model_set(ms, mixed[0::2])
    np.testing.assert_allclose(both.total[0::2], alone_a.total)
    assert len(both.frame_best) == sum(len(u) for u in mixed)


def test_adaptation_bad_input():
    ms = _model_set(3)
    with pytest.raises(DataError, match="nothing to adapt to: the list of utterances is empty"):
        adapt_model_set(ms, [])
    with pytest.raises(DataError, match="utterance 1"):
        adapt_model_set(ms, [np.zeros((5, 3)), np.zeros((5, 4))])
    with pytest.raises(ParameterError, match="iterations must be an integer >= 1, got 0"):
        adapt_model_set(ms, [np.zeros((5, 3))], iterations=0)
    with pytest.raises(ParameterError, match="relevance must be >= 0 or None, got -1"):
        adapt_model_set(ms, [np.zeros((5, 3))], relevance=-1)
    with pytest.raises(ParameterError, match="nothing to adapt: give mllr=True, a relevance, or both"):
        adapt_model_set(ms, [np.zeros((5, 3))], mllr=False, relevance=None)
    with pytest.raises(ParameterError, match="2 utterances but 1 speakers"):
        score_by_speaker(ms, [np.zeros((5, 3))] * 2, ["a"])


@needs_fsdd
def test_adaptation_rescues_a_held_out_speaker_on_real_speech(fsdd, tmp_path):
    """Digits of five speakers, tested on the sixth (nicolas, Belgian accent), features without CMN."""
    _, fa, _, _ = fsdd
    held_out = [u for u in fa.ids if fa.speakers[u] == "nicolas"]
    ms = train_model_set(fa, label_key="label", slices=1, n_components=8, ids=[u for u in fa.ids if fa.speakers[u] != "nicolas"],
                         progress=False, var_floor=1e-3)  # the figures below were measured at this floor
    before = evaluate(ms, fa, held_out)
    after = evaluate(ms, fa, held_out, adapt={})
    # measured: 76.7 % (115/150) -> 97.3 % (146/150); frames 38.0 % -> 67.7 % (plain EM, overrelax=1:
    # 76.7 % -> 98.7 %, frames 38.2 % -> 68.3 %)
    assert before["n"] == 150 and 0.75 <= before["accuracy"] <= 0.785 and after["accuracy"] >= 0.965
    assert after["frame_accuracy"] > before["frame_accuracy"] + 0.28
    mllr_only = evaluate(ms, fa, held_out, adapt={"relevance": None})
    assert mllr_only["accuracy"] >= 0.92  # measured: 92.7 % (139/150), MLLR without MAP (plain EM: 94.0 %)
    # the CLI gives the same figure
    ms.save(tmp_path / "m.h5")
    (tmp_path / "utts").write_text("\n".join(held_out) + "\n")
    result = CliRunner().invoke(main, ["evaluate", str(tmp_path / "m.h5"), str(fa.path), "--utts",
                                       str(tmp_path / "utts"), "--adapt", "--metrics", str(tmp_path / "m.json")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "m.json").read_text())["accuracy"] == after["accuracy"]
    fmllr = evaluate(ms, fa, held_out, adapt={"transform": "fmllr"})
    assert fmllr["accuracy"] >= 0.96, fmllr["accuracy"]  # measured: 96.7 % (145/150), fMLLR then MAP
    result = CliRunner().invoke(main, ["evaluate", str(tmp_path / "m.h5"), str(fa.path), "--utts", str(tmp_path / "utts"),
                                       "--adapt", "--adapt-transform", "fmllr", "--metrics", str(tmp_path / "f.json")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "f.json").read_text())["accuracy"] == fmllr["accuracy"]


def test_adaptation_repeats_until_no_label_changes(monkeypatch):
    """Each adaptation starts from the first models with the last labels: once the labels repeat, so would the models."""
    import acoustic_gmm.classes._adapt as module
    ms = _model_set(3, n_classes=3, n_components=2, seed=3)
    centre = ms._stacked()[0].centre
    W = np.hstack([np.full((3, 1), 2.5), 0.7 * np.eye(3)])
    utts = [part for X in _speaker_frames(ms, W, centre, 600).values() for part in np.split(X, 60)]
    calls, labels = [], []
    once = module.adapt_once

    def counted(model_set, utterances, hypothesis, **options):
        calls.append(1)
        labels.append(list(hypothesis))
        return once(model_set, utterances, hypothesis, **options)

    monkeypatch.setattr(module, "adapt_once", counted)
    adapted, scores = adapt_model_set(ms, utts)
    n = len(calls)
    assert 2 <= n < module.ITERATIONS  # measured: 2 adaptations, the second changing no label
    assert labels[-1] == scores.predict() and labels[-2] != labels[-1]
    final = labels[-1]
    calls.clear()
    _, capped = adapt_model_set(ms, utts, iterations=n - 1)
    assert len(calls) == n - 1 and capped.predict() == final  # one fewer: the labels the last one confirmed
    np.testing.assert_array_equal(adapt_model_set(ms, utts, iterations=n)[1].total, scores.total)


def test_fmllr_adaptation_maps_a_speaker_back_to_the_models():
    """The speaker's frames are the models' frames through an affine map: fMLLR finds its inverse."""
    ms = _model_set(3, n_classes=3, n_components=2, seed=3)
    rng = np.random.default_rng(7)
    A = np.array([[0.6, 0.5, 0.0], [-0.4, 1.2, 0.1], [0.0, 0.3, 0.7]])
    b = np.array([3.0, -3.5, 2.0])
    truth, utts = [], []
    for c in ms.classes:
        m = ms.models[c][0]
        k = rng.choice(2, size=600, p=m.weights)
        y = m.means[k] + rng.normal(size=(600, 3)) * np.sqrt(m.variances[k])
        for part in np.split(y @ A.T + b, 60):  # what the speaker says: x = A y + b, utterances of 10 frames
            truth.append(c)
            utts.append(part)
    before = np.mean(np.array(ms.predict(utts)) == truth)
    adapted, scores = adapt_model_set(ms, utts, transform="fmllr", relevance=None)
    after = np.mean(np.array(scores.predict()) == truth)
    W = np.array(adapted.metadata["fmllr"])
    inverse = np.linalg.inv(A)
    assert before < 0.75 and after == 1.0, (before, after)  # measured: 73.3 % -> 100 %
    assert np.abs(W - np.hstack([inverse, (-inverse @ b)[:, None]])).max() < 0.08  # measured: 0.054
    with pytest.raises(ParameterError, match=r"transform must be one of \('mllr', 'fmllr'\), got 'cmllr'"):
        adapt_model_set(ms, utts, transform="cmllr")
