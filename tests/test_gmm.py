"""The GMM engine on synthetic data from known mixtures and on real MFCC frames."""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from acoustic_gmm import GMM, ConvergenceWarning, DiagGMM, FullGMM
from acoustic_gmm.errors import ComponentWarning, ParameterError
from acoustic_gmm.gmm import (
    History,
    Stats,
    _init,
    accumulate,
    em_step,
    global_stats,
    growth_schedule,
    kmeans_init,
    m_step,
    map_update,
    random_init,
    run_em,
    split_heaviest,
    variance_floor,
)
from acoustic_gmm.gmm._init import _kmeanspp, _model_from_labels, _nearest

from .conftest import draw_mixture


def matched(est_means, true_means):
    """Order estimated components to best match the true ones (Hungarian on distances)."""
    cost = ((est_means[:, None, :] - true_means[None, :, :]) ** 2).sum(-1)
    rows, cols = linear_sum_assignment(cost)
    order = np.empty(len(cols), dtype=int)
    order[cols] = rows
    return order


def assert_recovered(g, weights, means, variances):
    order = matched(g.means_, means)
    assert np.abs(g.means_[order] - means).max() < 0.1
    np.testing.assert_allclose(g.weights_[order], weights, atol=0.015)
    np.testing.assert_allclose(g.covariances_[order], variances, rtol=0.1)


@pytest.mark.parametrize("init", ["split", "kmeans"])
def test_recovers_overlapping_mixture(overlapping_mixture, init):
    X, w, mu, var = overlapping_mixture
    g = GMM(5, init=init, random_state=0, dtype="float64").fit(X)
    assert_recovered(g, w, mu, var)
    assert g.converged_


def test_kmeans_recovers_far_apart_clusters_of_unequal_weight(known_mixture):
    # Splitting the heaviest component is divisive: on clusters this far apart with these weights
    # it can end in a local optimum (two components on the heaviest cluster), as HTK's mix-up does.
    # k-means++ seeding is the initialisation for such data.
    X, w, mu, var = known_mixture
    assert_recovered(GMM(4, init="kmeans", random_state=0, dtype="float64").fit(X), w, mu, var)


def test_kmeans_init_alone_recovers_the_centres_of_well_separated_clusters():
    # 16 clusters at the corners of a 4-D hypercube, 30 standard deviations apart, of unequal weights and
    # variances: the initialisation by itself (no EM) must put one component on each cluster, with the
    # cluster's weight and variance.  max_sample=20,000 of 40,000 frames exercises the subsample.
    rng = np.random.default_rng(3)
    means = np.array(np.meshgrid(*[[0.0, 30.0]] * 4)).reshape(4, -1).T
    weights = rng.dirichlet(np.full(16, 5.0))
    variances = rng.uniform(0.5, 2.0, size=(16, 4))
    X, _ = draw_mixture(weights, means, variances, 40_000, seed=3)
    floor = variance_floor(X.var(0), 1e-3)
    for seed in range(3):
        g = kmeans_init(X, 16, floor=floor, dtype="float64", rng=seed, max_sample=20_000)
        order = matched(g.means, means)
        assert np.abs(g.means[order] - means).max() < 0.2
        np.testing.assert_allclose(g.weights[order], weights, atol=0.01)
        np.testing.assert_allclose(g.variances[order], variances, rtol=0.2)


def test_kmeans_init_is_reproducible_and_independent_of_threads(overlapping_mixture):
    X = overlapping_mixture[0]
    floor = variance_floor(X.var(0), 1e-3)
    a, b = (kmeans_init(X, 12, floor=floor, rng=7, max_sample=5000) for _ in range(2))
    np.testing.assert_array_equal(a.means, b.means)
    np.testing.assert_array_equal(a.variances, b.variances)
    Z = X.astype(np.float32)
    Z1 = np.hstack([Z, np.ones((len(X), 1), np.float32)])
    ZaT = np.vstack([Z.T, (Z * Z).sum(1), np.ones(len(Z))]).astype(np.float32)
    with ThreadPoolExecutor(1) as one, ThreadPoolExecutor(2) as two:
        labels = [_nearest(Z1, X[:12], pool)[0] for pool in (one, two)]
        seeds = [_kmeanspp(Z, ZaT, 12, np.random.default_rng(1), pool) for pool in (one, two)]
    np.testing.assert_array_equal(labels[0], labels[1])
    np.testing.assert_array_equal(labels[0], ((X[:, None] - X[None, :12]) ** 2).sum(-1).argmin(1))
    np.testing.assert_array_equal(seeds[0], seeds[1])


@pytest.mark.parametrize("covariance_type", ["diag", "full"])
def test_model_from_labels_equals_one_hot_statistics(covariance_type):
    rng = np.random.default_rng(0)
    Y = rng.normal(5.0, 3.0, size=(10_000, 4))
    labels = rng.integers(7, size=len(Y))
    labels[labels == 3] = 4  # an empty cluster too
    floor = np.full(4, 1e-3)
    resp = np.eye(7)[labels]
    stats = Stats.from_posteriors(Y, resp, covariance_type=covariance_type)
    stats.occ += 1e-10
    want = m_step(stats, floor=floor, dtype="float64")
    got = _model_from_labels(Y, labels, 7, floor, covariance_type, "float64")
    np.testing.assert_allclose(got.weights, want.weights, rtol=1e-12)
    np.testing.assert_allclose(got.means, want.means, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got.covariances, want.covariances, rtol=1e-10)


def test_kmeanspp_picks_what_the_one_candidate_at_a_time_loop_picks(overlapping_mixture, monkeypatch):
    # The blocked, vectorised seeding draws and chooses exactly as the plain greedy k-means++ loop
    # (rng.choice by d2, then each candidate's total in its own pass), given the same generator.
    monkeypatch.setattr(_init, "KMEANS_SEED_CHUNK", 512)  # several blocks: draws go block, then frame
    Z = overlapping_mixture[0][:3000].astype(np.float32)
    Zd = Z.astype(np.float64)
    rng = np.random.default_rng(4)
    chosen = [rng.integers(len(Z))]
    d2 = ((Zd - Zd[chosen[0]]) ** 2).sum(1)
    for _ in range(1, 24):
        cands = rng.choice(len(Z), size=2 + int(np.log(24)), p=d2 / d2.sum())
        best = min(cands, key=lambda c: np.minimum(d2, ((Zd - Zd[c]) ** 2).sum(1)).sum())
        chosen.append(best)
        d2 = np.minimum(d2, ((Zd - Zd[best]) ** 2).sum(1))
    ZaT = np.vstack([Z.T, (Zd * Zd).sum(1), np.ones(len(Z))]).astype(np.float32)
    with ThreadPoolExecutor(2) as pool:
        got = _kmeanspp(Z, ZaT, 24, np.random.default_rng(4), pool)
    np.testing.assert_array_equal(got, chosen)


def test_random_init_fits_and_improves(overlapping_mixture):
    X = overlapping_mixture[0]
    g = GMM(5, init="random", random_state=0, dtype="float64").fit(X)
    assert g.means_.shape == (5, 3) and np.isclose(g.weights_.sum(), 1.0)
    assert g.history_[-1] > g.history_[0] and np.all(np.diff(g.history_) >= -1e-10)


@pytest.mark.parametrize("K", [1, 5, 12, 64])
def test_split_reaches_exactly_k(K):
    X, _ = draw_mixture([0.5, 0.5], [[0.0, 0.0], [5.0, 5.0]], [[1.0, 1.0], [1.0, 2.0]], 8000, seed=K)
    g = GMM(K, dtype="float64").fit(X)
    assert g.weights_.shape == (K,) and g.means_.shape == (K, 2) and g.covariances_.shape == (K, 2)
    assert g.history_n_components_[-1] == K
    stages = list(dict.fromkeys(g.history_n_components_.tolist()))
    assert stages == [k for k in growth_schedule(K) if k > 1 or K == 1]
    assert np.isclose(g.weights_.sum(), 1.0)


@pytest.mark.filterwarnings("ignore::acoustic_gmm.errors.ConvergenceWarning")
def test_history_never_decreases_within_a_stage(known_mixture):
    X = known_mixture[0]
    g = GMM(12, dtype="float64", split_iter=5, tol=1e-6).fit(X)
    for k in np.unique(g.history_n_components_):
        stage = g.history_[g.history_n_components_ == k]
        assert np.all(np.diff(stage) >= -1e-10), f"log-likelihood fell in stage K={k}: {np.diff(stage).min()}"
    # ... and growing the model pays off overall.
    assert g.history_[-1] > g.history_[0] + 1.0


def test_history_rises_in_float32_on_real_frames(fsdd_frames):
    g = GMM(16).fit(fsdd_frames)
    for k in np.unique(g.history_n_components_):
        stage = g.history_[g.history_n_components_ == k]
        assert np.all(np.diff(stage) >= -1e-4 * abs(stage).max())


def test_overrelaxed_em_converges_in_fewer_iterations_on_real_frames(fsdd_frames):
    """Measured, K=16, 13.6k FSDD frames: plain EM 34 iterations at full size to -87.7625, over-relaxed
    (1.5) 22 to -87.7539; every over-relaxed iteration raised the likelihood."""
    plain = GMM(16, overrelax=1).fit(fsdd_frames)
    fast = GMM(16).fit(fsdd_frames)
    assert fast.converged_ and plain.converged_
    assert fast.n_iter_ <= 0.7 * plain.n_iter_
    assert fast.history_[-1] >= plain.history_[-1] - 0.005
    final = fast.history_[fast.history_n_components_ == 16]
    assert np.all(np.diff(final) > 0)
    # the intermediate stages are plain EM either way
    stages = plain.history_n_components_ < 16
    np.testing.assert_array_equal(fast.history_[:stages.sum()], plain.history_[stages])


def test_overrelax_one_is_plain_em(known_mixture):
    """``overrelax=1``: every iteration at full size is exactly one EM step of the previous model."""
    X = known_mixture[0]
    g = GMM(4, overrelax=1, init="random", random_state=0, max_iter=6, tol=0, dtype="float64")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        g.fit(X)
    start = GMM(4, init="random", random_state=0, max_iter=1, tol=0, dtype="float64")
    floor = variance_floor(X.var(0), 1e-3)
    model = random_init(X, 4, glob_model=m_step(global_stats(X), floor=floor, dtype="float64"),
                           dtype="float64", rng=start.random_state)
    for _ in range(6):
        model, _ = em_step(model, X, floor=floor)
    np.testing.assert_allclose(g.means_, model.means, rtol=1e-10, atol=1e-10)


def test_overrelax_leaves_full_covariances_alone_and_is_validated(known_mixture):
    X = known_mixture[0]
    a, b = GMM(3, covariance_type="full", overrelax=1).fit(X), GMM(3, covariance_type="full").fit(X)
    np.testing.assert_array_equal(a.means_, b.means_)
    for bad in (0.5, 5, "fast", True, float("nan")):
        with pytest.raises(ParameterError, match="overrelax must be a number in"):
            GMM(2, overrelax=bad).fit(X)


@pytest.mark.filterwarnings("ignore::acoustic_gmm.errors.ConvergenceWarning")
def test_split_schedule_is_configurable():
    X, _ = draw_mixture([1.0], [[0.0, 0.0]], [[1.0, 1.0]], 2000)
    g = GMM(7, schedule=[1, 3, 5], split_iter=2, tol=0).fit(X)
    assert list(dict.fromkeys(g.history_n_components_.tolist())) == [3, 5, 7]
    assert (np.bincount(g.history_n_components_)[[3, 5]] == 2).all()


def test_split_heaviest_halves_weight_and_moves_means():
    g = DiagGMM([0.3, 0.7], [[0.0, 0.0], [10.0, 10.0]], [[1.0, 1.0], [4.0, 9.0]], dtype="float64")
    s = split_heaviest(g, 3)
    np.testing.assert_allclose(s.weights, [0.3, 0.35, 0.35])
    np.testing.assert_allclose(s.means[1], [10 - 0.4, 10 - 0.6])
    np.testing.assert_allclose(s.means[2], [10 + 0.4, 10 + 0.6])
    np.testing.assert_allclose(s.variances[2], [4.0, 9.0])


def test_full_covariance_recovers_rotated_cluster():
    rng = np.random.default_rng(3)
    angle = np.pi / 5
    R = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    cov = R @ np.diag([9.0, 0.25]) @ R.T
    X = np.vstack([rng.multivariate_normal([0, 0], cov, 6000), rng.multivariate_normal([8, -8], np.eye(2), 4000)])
    g = GMM(2, covariance_type="full", dtype="float64").fit(X)
    k = int(np.argmin(np.linalg.norm(g.means_, axis=1)))
    np.testing.assert_allclose(g.covariances_[k], cov, atol=0.25)
    assert g.covariances_.shape == (2, 2, 2)
    # The diagonal model cannot represent the rotation: full fits better, even after BIC's penalty.
    diag = GMM(2, dtype="float64").fit(X)
    assert g.bic(X) < diag.bic(X)


def test_bic_aic_match_their_formulas(known_mixture):
    X = known_mixture[0][:5000]
    for ctype, p in (("diag", 3 + 4 * 3 + 4 * 3), ("full", 3 + 4 * 3 + 4 * 6)):
        g = GMM(4, covariance_type=ctype, dtype="float64").fit(X)
        log_l = g.score_samples(X).sum()
        assert g.n_parameters() == p
        assert g.bic(X) == pytest.approx(-2 * log_l + p * np.log(len(X)), rel=1e-12)
        assert g.aic(X) == pytest.approx(-2 * log_l + 2 * p, rel=1e-12)


def test_predict_proba_rows_sum_to_one_and_predict_is_argmax(known_mixture):
    X, *_ = known_mixture
    for dtype in ("float32", "float64"):
        g = GMM(4, dtype=dtype).fit(X)
        P = g.predict_proba(X[:500])
        np.testing.assert_allclose(P.sum(1), 1.0, atol=1e-5)
        assert (P >= 0).all()
        np.testing.assert_array_equal(g.predict(X[:500]), P.argmax(1))


def test_score_samples_matches_direct_density():
    rng = np.random.default_rng(4)
    w, mu, var = np.array([0.2, 0.8]), rng.normal(size=(2, 3)), rng.uniform(0.5, 2, (2, 3))
    X = rng.normal(size=(50, 3))
    dens = sum(w[k] * np.prod(np.exp(-0.5 * (X - mu[k]) ** 2 / var[k]) / np.sqrt(2 * np.pi * var[k]), axis=1)
               for k in range(2))
    np.testing.assert_allclose(DiagGMM(w, mu, var, dtype="float64").score_samples(X), np.log(dens), rtol=1e-12)


@pytest.mark.parametrize("make", [lambda: DiagGMM([0.5, 0.5], [[0.0, 1.0], [4.0, 2.0]], [[1.0, 2.0], [0.5, 1.0]]),
                                  lambda: FullGMM([0.5, 0.5], [[0.0, 1.0], [4.0, 2.0]], [np.eye(2), 2 * np.eye(2)])])
def test_a_model_cache_cannot_go_stale(make):
    g = make()
    X = np.array([[0.0, 1.0], [4.0, 2.0], [1.0, 1.0]])
    before = g.score_samples(X)
    names = ("weights", "means", "covariances") + (("variances",) if g.covariance_type == "diag" else ())
    for name in names:
        with pytest.raises(ValueError, match="read-only"):
            getattr(g, name)[...] = 3.0              # in place: the cached constants would not follow
        with pytest.raises(AttributeError):
            setattr(g, name, np.ones_like(getattr(g, name)))
    for cached in ("const", "offset", "proj", "prec_chol"):
        if hasattr(g, cached):
            with pytest.raises(ValueError, match="read-only"):
                getattr(g, cached)[...] = 0.0
    np.testing.assert_array_equal(g.score_samples(X), before)
    # the caller's arrays are copied: changing them afterwards does not reach the model
    means = np.array([[0.0, 1.0], [4.0, 2.0]])
    h = type(g)(g.weights, means, g.covariances)
    means[:] = 9.0
    np.testing.assert_allclose(h.score_samples(X), before, rtol=1e-6)
    # a changed model is a new model, and it scores differently
    moved = type(g)(g.weights, g.means + 1.0, g.covariances)
    assert np.abs(moved.score_samples(X) - before).max() > 0.4


def test_statistics_from_posteriors_and_global_statistics():
    rng = np.random.default_rng(8)
    X = rng.normal(size=(300, 3)) * [1.0, 2.0, 3.0] + [10.0, -5.0, 0.0]
    labels = (X[:, 0] > 10.0).astype(int)
    s = Stats.from_posteriors(X, np.eye(2)[labels])
    for k in range(2):
        mine = X[labels == k]
        assert s.occ[k] == len(mine)
        np.testing.assert_allclose(s.means[k], mine.mean(0), rtol=1e-12)
        np.testing.assert_allclose(s.sum_xx[k] / s.occ[k] - (s.means[k] - s.shift) ** 2, mine.var(0), rtol=1e-10)
    g = global_stats(X[:, :], chunk=7)                       # streamed in blocks of 7 frames
    np.testing.assert_allclose(g.means[0], X.mean(0), rtol=1e-12)
    np.testing.assert_allclose(g.sum_xx[0] / g.occ[0] - (g.means[0] - g.shift) ** 2, X.var(0), rtol=1e-10)
    assert g.n_frames == 300 and (s + s).n_frames == 600


def test_map_update_interpolates_prior_and_statistics():
    prior = DiagGMM([0.25, 0.75], [[0.0], [100.0]], [[1.0], [4.0]], dtype="float64")
    X = np.concatenate([np.full((30, 1), 1.0), np.full((10, 1), 102.0)])
    stats = accumulate(prior, X)
    n = stats.occ                                              # 30 and 10 frames
    for r in (0.0, 10.0, np.inf):
        m = map_update(stats, prior, relevance=r, update="mwv")
        alpha = n / (n + r) if np.isfinite(r) else np.zeros(2)
        np.testing.assert_allclose(m.means[:, 0], alpha * stats.means[:, 0] + (1 - alpha) * prior.means[:, 0])
        np.testing.assert_allclose(m.weights, (w := alpha * n / 40 + (1 - alpha) * prior.weights) / w.sum())
    ml = map_update(stats, prior, relevance=0.0, update="mwv")
    np.testing.assert_allclose(ml.means[:, 0], [1.0, 102.0])             # r = 0: the frames' own means
    np.testing.assert_allclose(ml.variances[:, 0], [0.01, 0.01])        # zero spread, floored at 1 % of 1.0
    assert map_update(stats, prior, relevance=1e9).means[1, 0] == pytest.approx(100.0, abs=1e-6)
    with pytest.raises(Exception, match=r"adapt must be one of \['m', 'mw', 'mwv'\], got 'w'"):
        map_update(stats, prior, update="w")


def test_save_load_round_trip_gives_identical_scores(tmp_path, known_mixture):
    X = known_mixture[0]
    for ctype in ("diag", "full"):
        g = GMM(4, covariance_type=ctype).fit(X)
        g.save(tmp_path / f"{ctype}.h5", metadata={"note": "round trip"})
        h = GMM.load(tmp_path / f"{ctype}.h5")
        np.testing.assert_array_equal(h.score_samples(X), g.score_samples(X))
        assert h.covariance_type == ctype and h.n_components == 4 and h.dtype == g.dtype


def test_sample_draws_from_the_model(known_mixture):
    X, w, mu, _ = known_mixture
    g = GMM(4, random_state=0, dtype="float64").fit(X)
    S, labels = g.sample(40_000)
    for k in range(4):
        np.testing.assert_allclose(S[labels == k].mean(0), g.means_[k], atol=0.1)
    np.testing.assert_allclose(np.bincount(labels) / len(labels), g.weights_, atol=0.01)


def test_one_em_iteration_matches_scikit_learn(known_mixture):
    from sklearn.mixture import GaussianMixture

    X, *_ = known_mixture
    rng = np.random.default_rng(7)
    w0 = np.full(6, 1 / 6)
    mu0 = X[rng.choice(len(X), 6, replace=False)]
    var0 = np.tile(X.var(0), (6, 1))
    ours, _ = em_step(DiagGMM(w0, mu0, var0, dtype="float64"), X)
    sk = GaussianMixture(6, covariance_type="diag", max_iter=1, tol=0.0, reg_covar=0.0, weights_init=w0,
                         means_init=mu0, precisions_init=1 / var0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk.fit(X)
    np.testing.assert_allclose(ours.weights, sk.weights_, rtol=1e-6)
    np.testing.assert_allclose(ours.means, sk.means_, rtol=1e-6)
    np.testing.assert_allclose(ours.variances, sk.covariances_, rtol=1e-6)
    np.testing.assert_allclose(ours.score_samples(X), sk.score_samples(X), rtol=1e-6)


def test_float32_and_float64_fits_agree(fsdd_frames):
    X = fsdd_frames
    assert np.abs(X[:, 0]).mean() > 100  # raw c0 sits in the hundreds: a real test of float32 honesty
    f32 = GMM(16, dtype="float32").fit(X)
    f64 = GMM(16, dtype="float64").fit(X.astype(np.float64))
    assert f32.score(X) == pytest.approx(f64.score(X), rel=1e-4)
    # The same float64 parameters scored on the float32 path agree much more tightly.
    m32 = f64.model_.copy(dtype="float32")
    np.testing.assert_allclose(m32.score_samples(X), f64.model_.score_samples(X), rtol=2e-5, atol=1e-3)


def test_statistics_add_up_across_chunks(known_mixture):
    X = known_mixture[0]
    g = GMM(4, dtype="float64").fit(X).model_
    whole = accumulate(g, X)
    parts = accumulate(g, X[:7000]) + accumulate(g, X[7000:13001]) + accumulate(g, X[13001:])
    for a, b in ((whole.occ, parts.occ), (whole.sum_x, parts.sum_x), (whole.sum_xx, parts.sum_xx)):
        np.testing.assert_allclose(a, b, rtol=1e-10)
    assert parts.n_frames == len(X) and parts.loglik == pytest.approx(whole.loglik, rel=1e-12)


def test_statistics_about_different_shifts_add_correctly(known_mixture):
    X = known_mixture[0][:4000]
    for ctype in ("diag", "full"):
        model = GMM(3, covariance_type=ctype, dtype="float64").fit(X).model_
        a = accumulate(model, X[:1500])
        b = accumulate(model, X[1500:])
        np.testing.assert_array_equal(a.shift, b.shift)  # same shift: both accumulated about the model's centre
        moved = b.reshifted(b.shift + np.array([5.0, -2.0, 1.0]))
        assert not np.allclose(moved.shift, a.shift)  # ... so the sum below really adds different shifts
        total = a + moved
        ref = accumulate(model, X)
        assert isinstance(total, Stats)
        np.testing.assert_array_equal(total.shift, a.shift)  # the sum is about the left operand's shift
        np.testing.assert_allclose(total.occ, ref.occ, rtol=1e-12)
        np.testing.assert_allclose(total.sum_x, ref.sum_x, rtol=1e-9, atol=1e-6)
        np.testing.assert_allclose(total.sum_xx, ref.sum_xx, rtol=1e-9, atol=1e-6)


# float32: one E-step's sums agree to 1e-6; a whole fit (about 40 iterations through the splits) lets the
# chunk-order rounding grow to about 1e-4.
@pytest.mark.parametrize("dtype, step_tol, fit_tol", [("float64", 1e-12, 1e-9), ("float32", 1e-6, 1e-3)])
def test_fit_does_not_depend_on_chunk_size(known_mixture, dtype, step_tol, fit_tol):
    X = known_mixture[0].astype(dtype)
    a = GMM(8, dtype=dtype, chunk_size=257).fit(X)
    b = GMM(8, dtype=dtype, chunk_size=50_000).fit(X)
    assert a.n_iter_ == b.n_iter_
    np.testing.assert_allclose(a.means_, b.means_, rtol=fit_tol, atol=fit_tol)
    np.testing.assert_allclose(a.covariances_, b.covariances_, rtol=fit_tol)
    small, large = accumulate(a.model_, X, chunk=257), accumulate(a.model_, X, chunk=50_000)
    for u, v in ((small.occ, large.occ), (small.sum_x, large.sum_x), (small.sum_xx, large.sum_xx)):
        np.testing.assert_allclose(u, v, rtol=step_tol, atol=step_tol * np.abs(v).max())
    assert small.loglik == pytest.approx(large.loglik, rel=step_tol)


def test_empty_component_is_replaced_by_a_split_with_a_warning():
    X, _ = draw_mixture([0.5, 0.5], [[0.0, 0.0], [6.0, 6.0]], [[1.0, 1.0], [1.0, 1.0]], 4000)
    # Component 2 sits far from every frame: it will collect (almost) nothing.
    start = DiagGMM([0.45, 0.45, 0.1], [[0.0, 0.0], [6.0, 6.0], [500.0, 500.0]], np.ones((3, 2)), dtype="float64")
    with pytest.warns(ComponentWarning, match=r"1 of 3 components fell below .*: 2 \(occupancy 0 frames"):
        model, stats, _ = run_em(start, X, floor=np.full(2, 1e-3), n_iter=3, tol=0.0, history=History())
    assert model.n_components == 3
    assert np.all(stats.occ > 100)


def test_max_iter_warns_instead_of_failing(known_mixture):
    X = known_mixture[0]
    with pytest.warns(ConvergenceWarning, match="max_iter=1"):
        g = GMM(4, init="kmeans", max_iter=1, tol=0.0, random_state=0).fit(X)
    assert not g.converged_ and g.n_iter_ == 1


def test_variance_floor_is_relative_to_global_variance():
    rng = np.random.default_rng(5)
    # Dimension 1 has a tight cluster: its variance must stop at var_floor * global variance.
    X = np.column_stack([rng.normal(0, 10, 3000), np.r_[rng.normal(0, 10, 1500), np.full(1500, 3.0)]])
    g = GMM(4, var_floor=0.01, dtype="float64").fit(X)
    assert g.covariances_[:, 1].min() >= 0.01 * X[:, 1].var() * (1 - 1e-9)


def test_fsdd_model_fits_and_scores_real_frames(fsdd_frames):
    X = fsdd_frames
    small, big = GMM(2).fit(X), GMM(32).fit(X)
    assert big.score(X) > small.score(X) + 1.0
    assert big.bic(X) < small.bic(X)


def test_statistics_do_not_depend_on_the_thread_count(known_mixture):
    X = known_mixture[0].astype(np.float32)
    model = GMM(8).fit(X).model_
    one, two = accumulate(model, X, chunk=1000, threads=1), accumulate(model, X, chunk=1000, threads=2)
    for a, b in ((one.occ, two.occ), (one.sum_x, two.sum_x), (one.sum_xx, two.sum_xx)):
        np.testing.assert_array_equal(a, b)
    assert one.loglik == two.loglik


@pytest.mark.parametrize("init", ["split", "kmeans"])
def test_fit_streamed_from_an_archive_equals_fit_in_memory(tmp_path, overlapping_mixture, init):
    from acoustic_gmm.features import MfccConfig
    from acoustic_gmm.storage import FeatureArchive, write_features

    X = overlapping_mixture[0].astype(np.float32)
    pieces = np.split(X, np.cumsum([137, 2000, 5, 4000, 911]))  # utterances of uneven length
    write_features(tmp_path / "f.h5", [(f"u{i:02d}", p, None, None) for i, p in enumerate(pieces)],
                   config=MfccConfig(n_mfcc=3, deltas=0), sample_rate=8000)
    in_memory = GMM(5, init=init, random_state=0, chunk_size=1000).fit(X)
    with FeatureArchive(tmp_path / "f.h5") as fa:
        streamed = GMM(5, init=init, random_state=0, chunk_size=1000).fit(fa)
    np.testing.assert_array_equal(streamed.means_, in_memory.means_)
    np.testing.assert_array_equal(streamed.history_, in_memory.history_)
    by_path = GMM(5, init=init, random_state=0, chunk_size=1000).fit(str(tmp_path / "f.h5"))
    np.testing.assert_array_equal(by_path.covariances_, in_memory.covariances_)
