"""Gaussian selection: each frame's best components found exactly, the selected E-step against the dense one,
and EM with selection ending where exact EM does."""

from __future__ import annotations

import numpy as np
import pytest

from acoustic_gmm import GMM, ParameterError
from acoustic_gmm.gmm import DiagGMM, accumulate, gselect_for, select_components


def _mixture(K=64, D=6, n=20000, seed=0, alpha=5.0):
    rng = np.random.default_rng(seed)
    model = DiagGMM(rng.dirichlet(np.full(K, alpha)), rng.normal(scale=4.0, size=(K, D)), rng.uniform(0.3, 1.5, (K, D)))
    z = rng.choice(K, size=n, p=model.weights)
    X = (model.means[z] + rng.normal(size=(n, D)) * np.sqrt(model.variances[z])).astype(np.float32)
    return model, X


def test_selection_keeps_each_frames_best_components():
    model, X = _mixture()
    sel = select_components(model, X, 7)
    L = model.log_joint(X)
    best = np.sort(np.argsort(-L, axis=1, kind="stable")[:, :7], axis=1)
    assert sel.shape == (len(X), 7) and sel.dtype == np.int32
    np.testing.assert_array_equal(np.sort(sel.astype(int), axis=1), best)


def test_the_selected_e_step_is_the_dense_one_restricted_to_the_selection():
    model, X = _mixture()
    dense = accumulate(model, X)
    top = accumulate(model, X, selection=select_components(model, X, 12))
    # the mass outside each frame's 12 best of 64 well-spread components is below float32's resolution
    np.testing.assert_allclose(top.occ, dense.occ, rtol=1e-4, atol=1e-2)
    np.testing.assert_allclose(top.sum_x, dense.sum_x, rtol=1e-4, atol=1e-2)
    np.testing.assert_allclose(top.sum_xx, dense.sum_xx, rtol=1e-4, atol=1e-1)
    assert top.n_frames == dense.n_frames and top.loglik <= dense.loglik + 1e-6 * abs(dense.loglik)
    assert top.avg_loglik == pytest.approx(dense.avg_loglik, abs=1e-4)
    one = accumulate(model, X, selection=select_components(model, X, 1))  # hard assignments
    assert one.loglik < dense.loglik and one.occ.sum() == pytest.approx(len(X))
    with pytest.raises(ParameterError, match="a selection of 10 frames"):
        accumulate(model, X, selection=np.zeros((10, 3), np.int32))


def test_em_with_selection_ends_where_exact_em_does():
    """EM whose E-steps visit each frame's 4 best of 16 components (selected again every GSELECT_REFRESH
    iterations) has exact EM's fixed point: started at exact EM's converged model it stays there (held-out
    likelihood and means), and its likelihood does not fall.  (From a poor start the two take different paths to
    different optima, either one the better.)"""
    from acoustic_gmm.gmm import History, run_em

    _, X = _mixture(K=16, D=4, n=40000, seed=3, alpha=200.0)
    held, train = X[::7], np.delete(X, np.s_[::7], axis=0)
    floor = np.full(4, 1e-3)
    start = GMM(16, gselect=None, random_state=0, max_iter=300, tol=1e-7, overrelax=1.0).fit(train).model_
    exact, _, _ = run_em(start, train, floor=floor, n_iter=6, tol=-1.0, history=History())
    history = History()
    fast, _, _ = run_em(start, train, floor=floor, n_iter=6, tol=-1.0, history=history, gselect=4)
    gap = exact.score_samples(held).mean() - fast.score_samples(held).mean()
    assert abs(gap) < 1e-5, gap  # measured: 6e-7 nats a frame, means 2.4e-5 apart
    assert np.abs(exact.means - fast.means).max() < 5e-4, np.abs(exact.means - fast.means).max()
    assert np.all(np.diff(history.loglik) > -1e-5), np.diff(history.loglik)


def test_gselect_values():
    assert gselect_for("auto", 2048) == 30 and gselect_for("auto", 512) is None
    assert gselect_for(None, 4096) is None and gselect_for(0, 4096) is None
    assert gselect_for(20, 4096) == 20 and gselect_for(20, 16) is None  # no fewer than the model has
    for bad in (-1, 2.5, "all", True):
        with pytest.raises(ParameterError, match="gselect must be 'auto', None or a number of components"):
            GMM(4, gselect=bad).fit(np.random.default_rng(0).normal(size=(100, 2)))


def test_the_ubm_command_takes_gselect(tmp_path):
    """``ubm --gselect N`` trains with selection at every size above N (here 4 of 8: another path, a fit as
    good to 0.1 nats), 0 is exact EM; a bad value is one line."""
    from acoustic_gmm.features import MfccConfig
    from acoustic_gmm.speaker import load_ubm
    from acoustic_gmm.storage import write_features

    from .conftest import invoke

    _, X = _mixture(K=8, D=3, n=6000, seed=5, alpha=200.0)
    items = [(f"u{i}", X[i * 600:(i + 1) * 600], None, None) for i in range(10)]
    write_features(tmp_path / "f.h5", items, config=MfccConfig(n_mfcc=3, n_mels=8, deltas=0), sample_rate=8000)
    scores = {}
    for value in ("4", "0"):
        r = invoke("ubm", tmp_path / "f.h5", "-k", 8, "--gselect", value, "-o", tmp_path / f"u{value}.h5")
        assert r.exit_code == 0, r.output
        scores[value] = load_ubm(tmp_path / f"u{value}.h5").score_samples(X).mean()
    exact = GMM(8, gselect=None).fit(np.concatenate([x for _, x, _, _ in items])).model_
    assert scores["0"] == exact.score_samples(X).mean()  # 0: the library's exact EM, bit for bit
    assert scores["4"] != scores["0"] and scores["4"] == pytest.approx(scores["0"], abs=0.1), scores
    r = invoke("ubm", tmp_path / "f.h5", "-k", 8, "--gselect", "some", "-o", tmp_path / "bad.h5")
    assert r.exit_code == 2 and "'some' is neither 'auto' nor a number of components" in r.output, r.output


def test_selection_streamed_from_an_archive_gives_the_in_memory_fit(tmp_path):
    """The selection rows follow the frames in the order the E-step reads them, so a fit streamed from an
    archive on every pass (max_memory=0) is the in-memory fit, bit for bit, with selection as without."""
    from acoustic_gmm.features import MfccConfig
    from acoustic_gmm.storage import write_features

    _, X = _mixture(K=16, D=3, n=30000, seed=6, alpha=200.0)
    pieces = np.array_split(X, 37)
    write_features(tmp_path / "f.h5", [(f"u{i:02d}", p, None, None) for i, p in enumerate(pieces)],
                   config=MfccConfig(n_mfcc=3, n_mels=8, deltas=0), sample_rate=8000)
    memory = GMM(16, gselect=3, chunk_size=1000).fit(X)
    streamed = GMM(16, gselect=3, chunk_size=1000, max_memory=0).fit(tmp_path / "f.h5")
    np.testing.assert_array_equal(streamed.means_, memory.means_)
    np.testing.assert_array_equal(streamed.history_, memory.history_)
    assert not np.array_equal(memory.means_, GMM(16, gselect=None, chunk_size=1000).fit(X).means_)
