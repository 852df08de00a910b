"""HMM-state class models through the model set and the command line (train --states N)."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from acoustic_gmm.classes import ModelSet, train_chain
from acoustic_gmm.cli import main
from acoustic_gmm.errors import ModelFileError
from acoustic_gmm.features import MfccConfig
from acoustic_gmm.gmm import DiagGMM
from acoustic_gmm.storage import write_features


def order_archive(path, n, seed):
    """Two classes with the same sounds in opposite order: 'ab' is A then B, 'ba' is B then A."""
    rng = np.random.default_rng(seed)
    A, B = np.array([2.0, 0.0]), np.array([-2.0, 0.0])
    utts = []
    for i in range(n):
        for label, (first, second) in (("ab", (A, B)), ("ba", (B, A))):
            t1, t2 = rng.integers(8, 20, size=2)
            X = np.vstack([first + rng.normal(size=(t1, 2)), second + rng.normal(size=(t2, 2))])
            utts.append((f"{label}{i:03d}", X.astype(np.float32), label, "s"))
    write_features(path, utts, config=MfccConfig(n_mfcc=2, n_mels=4, deltas=0), sample_rate=8000)


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_one_state_scores_as_the_class_gmm():
    rng = np.random.default_rng(0)
    models = {c: [DiagGMM(np.full(3, 1 / 3), rng.normal(size=(3, 2)), rng.uniform(0.5, 2, (3, 2)))] for c in "xyz"}
    plain = ModelSet(models)
    chain = ModelSet(models, log_trans={c: np.zeros((1, 2)) for c in "xyz"})
    utts = [rng.normal(size=(n, 2)) for n in (1, 7, 40)]
    np.testing.assert_allclose(chain.score(utts).total, plain.score(utts).total, rtol=1e-6)


def test_train_with_states_tells_the_order_of_sounds(tmp_path):
    order_archive(tmp_path / "train.h5", 30, seed=1)
    order_archive(tmp_path / "test.h5", 50, seed=2)
    accuracy = {}
    for name, opts in (("bag", ["--slices", "1"]), ("viterbi", ["--states", "2", "--state-training", "viterbi"]),
                       ("baum-welch", ["--states", "2"]), ("default", [])):
        r = run("train", tmp_path / "train.h5", "-k", "2", *opts, "--out", tmp_path / f"{name}.h5")
        assert r.exit_code == 0, r.output
        r = run("evaluate", tmp_path / f"{name}.h5", tmp_path / "test.h5", "--metrics", tmp_path / f"{name}.json")
        assert r.exit_code == 0, r.output
        accuracy[name] = json.loads((tmp_path / f"{name}.json").read_text())["accuracy"]
    assert accuracy["bag"] < 0.7 and accuracy["viterbi"] > 0.95 and accuracy["baum-welch"] > 0.95, accuracy
    assert accuracy["default"] > 0.95, accuracy  # the default: 3 HMM states, Baum-Welch
    default = ModelSet.load(tmp_path / "default.h5")
    assert default.n_slices == 3 and default.log_trans is not None and default.metadata["states"] == "baum-welch"
    ms = ModelSet.load(tmp_path / "viterbi.h5")
    assert ms.n_slices == 2 and ms.log_trans["ab"].shape == (2, 2) and (ms.log_trans["ab"] <= 0).all()
    r = run("train", tmp_path / "train.h5", "--init", "kmeans", "--out", tmp_path / "x.h5")
    assert r.exit_code == 1 and "--init kmeans is for slices" in r.output and "Traceback" not in r.output
    r = run("train", tmp_path / "train.h5", "--init", "kmeans", "--slices", "1", "--out", tmp_path / "x.h5")
    assert r.exit_code == 0, r.output
    r = run("train", tmp_path / "train.h5", "--states", "2", "--slices", "3", "--out", tmp_path / "x.h5",
            "--overwrite")
    assert r.exit_code == 1 and "give one" in r.output
    # a damaged transition table is refused by name
    with h5py.File(tmp_path / "viterbi.h5", "r+") as f:
        meta = json.loads(f.attrs["metadata"])
        meta["log_trans"]["ab"] = [[0.5, -1.0], [0.0, 0.0]]
        f.attrs["metadata"] = json.dumps(meta)
    with pytest.raises(ModelFileError, match=r"viterbi.h5: log_trans must hold log probabilities \(<= 0\)"):
        ModelSet.load(tmp_path / "viterbi.h5")


def test_train_with_mmi_raises_its_objective(tmp_path):
    order_archive(tmp_path / "train.h5", 20, seed=3)
    r = run("train", tmp_path / "train.h5", "-k", "2", "--slices", "1", "--mmi", "2", "--out", tmp_path / "m.h5")
    assert r.exit_code == 0, r.output
    line = next(x for x in r.output.splitlines() if x.startswith("MMI objective"))
    before, after = (float(v) for v in line.split("objective ")[1].split(", ")[0].split(" -> "))
    assert after >= before, line
    assert ModelSet.load(tmp_path / "m.h5").n_slices == 1
    r = run("train", tmp_path / "train.h5", "-k", "2", "--states", "2", "--mmi", "2", "--out", tmp_path / "s.h5")
    assert r.exit_code == 0, r.output
    line = next(x for x in r.output.splitlines() if x.startswith("MMI objective"))
    before, after = (float(v) for v in line.split("objective ")[1].split(", ")[0].split(" -> "))
    assert after >= before, line  # here states separate the classes already (0.0): test_mmi tests the rise
    ms = ModelSet.load(tmp_path / "s.h5")
    assert ms.n_slices == 2 and ms.log_trans is not None


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



@pytest.mark.parametrize("opts", [[], ["--states", "2"], ["--states", "2", "--state-training", "baum-welch"],
                                  ["--slices", "2"]])
def test_train_floors_variances_at_the_given_share_of_the_class_variance(tmp_path, opts):
    # --var-floor reaches every kind of class model (it once stopped short of HMM states, which kept 1e-3).
    # Frames from 4 tight clusters (sd 0.1) at (+-2, +-2) in any order: every slice and state sees the class's
    # own distribution (variance ~4 a feature), which a floor of 0.6 must hold the fitted variances near.
    rng = np.random.default_rng(3)
    corners = np.array([[2, 2], [2, -2], [-2, 2], [-2, -2]], dtype=float)
    utts = [(f"{c}{i:03d}", (corners[rng.integers(4, size=30)] + 0.1 * rng.normal(size=(30, 2))).astype(np.float32),
             c, "s") for c in ("x", "y") for i in range(20)]
    write_features(tmp_path / "train.h5", utts, config=MfccConfig(n_mfcc=2, n_mels=4, deltas=0), sample_rate=8000)
    var = {c: np.concatenate([X for _, X, label, _ in utts if label == c]).var(0) for c in ("x", "y")}
    smallest = {}
    for floor in ("0.001", "0.6"):
        r = run("train", tmp_path / "train.h5", "-k", "4", *opts, "--var-floor", floor, "--out", tmp_path / "m.h5",
                "--overwrite")
        assert r.exit_code == 0, r.output
        ms = ModelSet.load(tmp_path / "m.h5")
        smallest[floor] = min(float((m.variances / var[c]).min()) for c in ms.classes for m in ms.models[c])
    assert smallest["0.001"] < 0.005 and smallest["0.6"] > 0.5, smallest


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
