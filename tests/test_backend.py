"""The i-vector back end: LDA, WCCN, length normalisation, two-covariance PLDA (EM and LLR), the pipeline."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from acoustic_gmm import DataError, NotFittedError, ParameterError
from acoustic_gmm.speaker import PLDA, Backend, cosine_scores, eer, lda, length_norm, wccn


def random_spd(rng, eigenvalues):
    """A random covariance with the given eigenvalues (random orientation)."""
    Q = np.linalg.qr(rng.normal(size=(len(eigenvalues), len(eigenvalues))))[0]
    return Q @ np.diag(eigenvalues) @ Q.T


def draw_speakers(rng, mu, Sb, Sw, counts):
    """Vectors of the two-covariance model, ``counts[s]`` for speaker ``s``, with their labels."""
    d = len(mu)
    spk = np.repeat(np.arange(len(counts)), counts)
    y = rng.multivariate_normal(np.zeros(d), Sb, len(counts))
    return mu + y[spk] + rng.multivariate_normal(np.zeros(d), Sw, len(spk)), spk


def class_covariances(Y, spk):
    """Within- and between-class covariances as the module defines them (divided by N, Sb count-weighted)."""
    labels = np.unique(spk)
    means = np.array([Y[spk == s].mean(axis=0) for s in labels])
    counts = np.array([(spk == s).sum() for s in labels])
    R = Y - means[np.searchsorted(labels, spk)]
    C = means - Y.mean(axis=0)
    return R.T @ R / len(Y), (C * counts[:, None]).T @ C / len(Y)


@pytest.fixture(scope="module")
def labelled():
    """d=10, 20 speakers with 5..24 vectors each, anisotropic within-class covariance."""
    rng = np.random.default_rng(3)
    d = 10
    X, spk = draw_speakers(rng, rng.normal(0, 3, d), random_spd(rng, np.linspace(4, 0.5, d)),
                           random_spd(rng, np.geomspace(5, 0.2, d)), rng.integers(5, 25, 20))
    return X, spk


# --------------------------------------------------------------------------- transforms

def test_lda_whitens_within_and_diagonalises_between(labelled):
    X, spk = labelled
    P = lda(X, spk, 6)
    assert P.shape == (10, 6)
    Sw, Sb = class_covariances((X - X.mean(axis=0)) @ P, spk)
    np.testing.assert_allclose(Sw, np.eye(6), atol=1e-8)
    lam = np.diag(Sb)
    np.testing.assert_allclose(Sb, np.diag(lam), atol=1e-8)
    assert np.all(np.diff(lam) < 0) and lam[-1] > 0
    # the kept directions are the most discriminant: the full projection's leading eigenvalues
    full = np.diag(class_covariances(X @ lda(X, spk, 10), spk)[1])
    np.testing.assert_allclose(lam, full[:6], rtol=1e-8)


def test_lda_dimension_limits(labelled):
    X, spk = labelled
    with pytest.raises(ParameterError, match="n_speakers - 1"):
        lda(X[spk < 5], spk[spk < 5], 5)      # 5 speakers: at most 4 directions
    with pytest.raises(ParameterError, match="exceeds the input dimension"):
        lda(X, spk, 11)
    with pytest.raises(ParameterError, match="dim"):
        lda(X, spk, 0)


def test_lda_survives_a_singular_within_covariance():
    rng = np.random.default_rng(0)
    spk = np.repeat(np.arange(6), 3)          # 18 vectors, 12 within-speaker dof < d = 30
    X = rng.normal(0, 3, (6, 30))[spk] + rng.normal(size=(18, 30))
    P = lda(X, spk, 5)
    assert np.isfinite(P).all()
    Y = (X - X.mean(axis=0)) @ P
    Sw, Sb = class_covariances(Y, spk)
    # the projection finds directions with (nearly) no within-speaker spread
    assert np.trace(Sb) > 1e12 * np.trace(Sw)  # measured: 7e21 (the ridge sets the floor)


def test_wccn_whitens_within(labelled):
    X, spk = labelled
    B = wccn(X, spk)
    Sw, _ = class_covariances(X @ B, spk)
    np.testing.assert_allclose(Sw, np.eye(10), atol=1e-8)
    np.testing.assert_allclose(B @ B.T, np.linalg.inv(class_covariances(X, spk)[0]), rtol=1e-7)


def test_length_norm_gives_unit_rows_and_keeps_zero_rows():
    rng = np.random.default_rng(0)
    X = rng.normal(0, 7, (50, 5))
    X[3] = 0
    Y = length_norm(X)
    norms = np.linalg.norm(Y, axis=1)
    np.testing.assert_allclose(np.delete(norms, 3), 1.0, rtol=1e-14)
    assert np.all(Y[3] == 0)
    np.testing.assert_allclose(Y * np.linalg.norm(X, axis=1, keepdims=True), X, rtol=1e-13)


def test_cosine_scores_match_the_definition():
    rng = np.random.default_rng(0)
    E, T = rng.normal(size=(4, 6)), rng.normal(size=(7, 6))
    expected = np.array([[e @ t / np.linalg.norm(e) / np.linalg.norm(t) for t in T] for e in E])
    np.testing.assert_allclose(cosine_scores(E, T), expected, rtol=1e-12)


# --------------------------------------------------------------------------- PLDA

@pytest.fixture(scope="module")
def two_cov():
    """300 speakers x 8 vectors drawn from a known two-covariance model, d=6."""
    rng = np.random.default_rng(0)
    Sb = random_spd(rng, [4, 2.5, 1.5, 1, 0.6, 0.3])
    Sw = random_spd(rng, [1.5, 1.2, 1, 0.8, 0.6, 0.4])
    mu = rng.normal(size=6)
    X, spk = draw_speakers(rng, mu, Sb, Sw, np.full(300, 8))
    return X, spk, mu, Sb, Sw


def test_plda_em_increases_likelihood_and_recovers_the_covariances(two_cov):
    X, spk, _, Sb, Sw = two_cov
    plda = PLDA().fit(X, spk, n_iter=10)
    h = np.array(plda.history_)
    assert len(h) == 11
    assert np.all(np.diff(h) >= -1e-12 * abs(h[-1]))
    assert h[-1] - h[0] > 60                   # measured: 63.9 nats gained over the scatter initialisation
    assert plda.log_likelihood(X, spk) == pytest.approx(h[-1], rel=1e-13)
    rel = lambda A, B: np.linalg.norm(A - B) / np.linalg.norm(B)
    # measured (seed 0): 0.107 and 0.059; these are sampling errors of 300 speakers / 2100 dof
    # (0.099..0.138 and 0.045..0.059 over seeds 0-4), EM itself has converged by iteration 10
    assert rel(plda.between_, Sb) < 0.13
    assert rel(plda.within_, Sw) < 0.07
    # the initialisation overestimates Sb by about Sw / 8; EM removes that bias (measured: 0.123 -> 0.107)
    init = PLDA().fit(X, spk, n_iter=0)
    assert rel(init.between_, Sb) > rel(plda.between_, Sb) + 0.01


def test_plda_log_likelihood_is_the_joint_gaussian(two_cov):
    X, spk, mu, Sb, Sw = two_cov
    plda = PLDA.from_params(mu, Sb, Sw)
    keep = spk < 4
    X, spk = X[keep][:-3], spk[keep][:-3]     # speakers with 8, 8, 8 and 5 vectors
    direct = 0.0
    for s in range(4):
        E = X[spk == s]
        k = len(E)
        C = np.kron(np.eye(k), Sw) + np.kron(np.ones((k, k)), Sb)
        direct += multivariate_normal(np.tile(mu, k), C).logpdf(E.ravel())
    assert plda.log_likelihood(X, spk) == pytest.approx(direct, rel=1e-12)


def joint_logpdf(V, mu, Sb, Sw):
    """log p(v_1..v_k | one speaker) directly: block covariance Sb + Sw on the diagonal, Sb off it."""
    k = len(V)
    C = np.kron(np.eye(k), Sw) + np.kron(np.ones((k, k)), Sb)
    return multivariate_normal(np.tile(mu, k), C).logpdf(V.ravel())


@pytest.mark.parametrize("d", [2, 3])
def test_plda_llr_equals_the_direct_gaussian_ratio(d):
    rng = np.random.default_rng(d)
    mu = rng.normal(size=d)
    Sb = random_spd(rng, np.linspace(3, 0.2, d))
    Sw = random_spd(rng, np.linspace(1.5, 0.5, d))
    plda = PLDA.from_params(mu, Sb, Sw)
    models = {"one": rng.normal(0, 2, (1, d)), "three": rng.normal(0, 2, (3, d))}
    test = rng.normal(0, 2, (4, d))
    got = plda.llr(models, test)
    assert got.shape == (2, 4)
    for i, E in enumerate(models.values()):
        for j, t in enumerate(test):
            want = (joint_logpdf(np.vstack([E, t]), mu, Sb, Sw) - joint_logpdf(E, mu, Sb, Sw)
                    - multivariate_normal(mu, Sb + Sw).logpdf(t))
            assert got[i, j] == pytest.approx(want, abs=1e-8)
    np.testing.assert_array_equal(plda.llr(list(models.values()), test), got)


def test_plda_refuses_bad_input(two_cov):
    X, spk, mu, Sb, Sw = two_cov
    with pytest.raises(NotFittedError):
        PLDA().llr([X[:2]], X[:3])
    with pytest.raises(DataError, match="at least 2"):
        PLDA().fit(X[:8], spk[:8])
    with pytest.raises(DataError, match="degrees of freedom"):
        PLDA().fit(X[:14:2], spk[:14:2])      # 2 speakers, 7 vectors: 5 dof for d = 6
    bad = X.copy()
    bad[5, 2] = np.nan
    with pytest.raises(DataError, match="NaN"):
        PLDA().fit(bad, spk)
    with pytest.raises(DataError, match="one label per vector"):
        PLDA().fit(X, spk[:-1])
    with pytest.raises(ParameterError, match="n_iter"):
        PLDA().fit(X, spk, n_iter=-1)
    plda = PLDA.from_params(mu, Sb, Sw)
    with pytest.raises(DataError, match="5 dimensions"):
        plda.llr([X[:2]], X[:3, :5])
    with pytest.raises(DataError, match="0 vector"):
        plda.llr([X[:0]], X[:3])
    with pytest.raises(DataError, match="no speaker model"):
        plda.llr({}, X[:3])
    with pytest.raises(DataError, match=r"x\[None, :\]"):
        plda.llr([X[0]], X[:3])


def test_lda_and_wccn_need_within_speaker_variation():
    X = np.random.default_rng(0).normal(size=(5, 3))
    with pytest.raises(DataError, match="no speaker has two"):
        lda(X, np.arange(5), 2)
    with pytest.raises(DataError, match="at least 2"):
        wccn(X, np.zeros(5))


# --------------------------------------------------------------------------- the pipeline

@pytest.fixture(scope="module")
def synthetic_ivectors():
    """d=30 "i-vectors": 12 strong speaker directions, 6 strong nuisance directions, a large offset.

    Training: 200 speakers x 8. Evaluation: 60 other speakers, 3 enrolment + 5 test vectors each.
    """
    rng = np.random.default_rng(0)
    d = 30
    Sb = random_spd(rng, np.r_[np.linspace(3, 0.5, 12), np.full(18, 0.01)])
    Sw = random_spd(rng, np.r_[np.full(6, 3.0), np.linspace(1.0, 0.5, 24)])
    mu = rng.normal(0, 5, d)
    Xtr, str_ = draw_speakers(rng, mu, Sb, Sw, np.full(200, 8))
    Xev, sev = draw_speakers(rng, mu, Sb, Sw, np.full(60, 8))
    models = {f"spk{s:02d}": Xev[sev == s][:3] for s in range(60)}
    test = np.concatenate([Xev[sev == s][3:] for s in range(60)])
    target = np.arange(60)[:, None] == np.repeat(np.arange(60), 5)[None, :]
    return Xtr, str_, models, test, target


def backend_eer(be, models, test, target):
    names, scores = be.score(models, test)
    assert names == list(models) and scores.shape == target.shape
    return eer(scores[target], scores[~target]), scores


def test_backend_separates_held_out_speakers(synthetic_ivectors):
    Xtr, spk, models, test, target = synthetic_ivectors
    # measured: 5.63 % (PLDA, LDA to 15), 7.17 % (cosine, LDA to 15), 12.0 % (cosine, no LDA);
    # the true model's LLR gives 4.00 % on these trials (300 target, 17,700 non-target)
    plda, _ = backend_eer(Backend(lda_dim=15, scoring="plda").fit(Xtr, spk), models, test, target)
    cos, _ = backend_eer(Backend(lda_dim=15, scoring="cosine").fit(Xtr, spk), models, test, target)
    raw, _ = backend_eer(Backend(scoring="cosine").fit(Xtr, spk), models, test, target)
    assert plda < 0.065
    assert cos < 0.08
    assert plda < cos < raw and raw > 0.10    # LDA removes the nuisance directions cosine cannot ignore


@pytest.mark.parametrize("kw", [{"lda_dim": 15, "scoring": "plda", "plda_iter": 3},
                                {"scoring": "plda"}, {"lda_dim": 8, "scoring": "cosine"}])
def test_backend_round_trips_through_arrays(synthetic_ivectors, kw):
    Xtr, spk, models, test, _ = synthetic_ivectors
    be = Backend(**kw).fit(Xtr, spk)
    arrays, params = be.to_arrays(), json.loads(json.dumps(be.params()))
    assert all(a.dtype == np.float64 for a in arrays.values())
    clone = Backend.from_arrays(arrays, params)
    assert repr(clone) == repr(be)
    np.testing.assert_array_equal(clone.transform(test), be.transform(test))
    np.testing.assert_array_equal(clone.score(models, test)[1], be.score(models, test)[1])
    arrays["mean"] = arrays["mean"][:-1]
    with pytest.raises(ParameterError, match="'mean' has shape"):
        Backend.from_arrays(arrays, params)


def test_backend_refuses_bad_input(synthetic_ivectors):
    Xtr, spk, models, test, _ = synthetic_ivectors
    with pytest.raises(ParameterError, match="scoring"):
        Backend(scoring="svm")
    with pytest.raises(ParameterError, match="lda_dim"):
        Backend(lda_dim=0)
    with pytest.raises(NotFittedError):
        Backend().transform(test)
    with pytest.raises(ParameterError, match="n_speakers - 1"):
        Backend(lda_dim=25).fit(Xtr[:160], spk[:160])   # 20 speakers
    be = Backend(lda_dim=10).fit(Xtr, spk)
    with pytest.raises(DataError, match="29 dimensions"):
        be.score(models, test[:, 1:])
    with pytest.raises(DataError, match="dict"):
        be.score(list(models.values()), test)
    with pytest.raises(ParameterError, match="format"):
        Backend.from_arrays(be.to_arrays(), {})
    with pytest.raises(ParameterError, match="missing"):
        Backend.from_arrays({"mean": be.mean_}, be.params())
