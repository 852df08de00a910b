"""MMI (extended Baum-Welch) re-estimation of class GMMs: acoustic_gmm.classes."""

import warnings

import numpy as np
import pytest

from acoustic_gmm import GMM, DiagGMM
from acoustic_gmm.classes import ModelSet, mmi_objective, mmi_stats, mmi_update, split_slices, train_mmi
from acoustic_gmm.errors import DataError, ParameterError
from acoustic_gmm.gmm import Stats, ebw_update, m_step

CENTRES = {"a": [[0, 0], [2, 1]], "b": [[1, 0.5], [3, -1]], "c": [[0.5, 1.5], [2.5, 2]]}


def make(rng, n_per, lengths=(2, 6), noise=1.2):
    """Overlapping classes in 2-D, each a 2-component mixture; short utterances, so ML makes errors."""
    utts, labels = [], []
    for c, mus in CENTRES.items():
        for _ in range(n_per):
            n = rng.integers(*lengths)
            X = np.array(mus, dtype=float)[rng.integers(0, 2, n)] + rng.normal(scale=noise, size=(n, 2))
            utts.append(X)
            labels.append(c)
    return utts, labels


def ml_model_set(utts, labels, n_slices=1):
    models = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for c in CENTRES:
            parts = [np.concatenate([split_slices(u, n_slices)[s]
                                     for u, y in zip(utts, labels) if y == c]) for s in range(n_slices)]
            models[c] = [GMM(2, random_state=0).fit(X).model_ for X in parts]
    return ModelSet(models, metadata={"note": "ml"}, reject_threshold=0.5)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    train, y_train = make(rng, 40)
    test, y_test = make(rng, 100)
    return train, y_train, test, y_test, ml_model_set(train, y_train)


def accuracy(ms, utts, labels):
    return float(np.mean([p == t for p, t in zip(ms.predict(utts), labels)]))


def test_objective_matches_scores(data):
    train, y, _, _, ms = data
    scores = ms.score(train)
    idx = [scores.classes.index(c) for c in y]
    expected = np.log(scores.proba()[np.arange(len(y)), idx]).sum()
    assert mmi_objective(ms, train, y) == pytest.approx(expected, rel=1e-4)
    assert mmi_objective(ms, train, y) < 0


def test_objective_rises_every_update(data):
    train, y, _, _, ms = data
    previous = mmi_objective(ms, train, y)
    for _ in range(4):
        ms = mmi_update(ms, train, y)  # defaults: scale 1, E = 2
        now = mmi_objective(ms, train, y)
        assert now > previous
        previous = now


def test_parameters_stay_valid_and_fields_kept(data):
    train, y, _, _, ms = data
    new = mmi_update(ms, train, y, E=0.5, boost=0.5, tau=5.0)  # aggressive: D_min must keep variances positive
    for c in new.classes:
        for g in new.models[c]:
            assert np.all(g.variances > 0)
            assert g.weights.sum() == pytest.approx(1.0)
            assert np.all(g.weights > 0)
            assert g.dtype == ms.models[c][0].dtype
    assert new.metadata == ms.metadata and new.reject_threshold == 0.5 and new.label_key == ms.label_key
    assert new.models is not ms.models


def test_training_beats_ml(data):
    train, y, test, y_test, ms = data
    new, hist = train_mmi(ms, train, y, n_iter=4, held_out=(test, y_test))
    assert len(hist.objective) == 5 and len(hist.held_out_accuracy) == 5
    assert np.all(np.diff(hist.objective) > 0)
    assert hist.objective[-1] > hist.objective[0]
    assert hist.train_accuracy[-1] >= hist.train_accuracy[0]
    assert accuracy(new, train, y) == pytest.approx(hist.train_accuracy[-1])
    assert hist.train_accuracy[0] == pytest.approx(accuracy(ms, train, y))
    assert hist.held_out_accuracy[-1] >= hist.held_out_accuracy[0] - 0.03  # does not collapse
    print("objective", np.round(hist.objective, 3), "train", hist.train_accuracy, "held out", hist.held_out_accuracy)


def test_priors_enter_the_objective(data):
    train, y, _, _, ms = data
    lp = {"a": np.log(0.6), "b": np.log(0.3), "c": np.log(0.1)}
    with_priors = ModelSet(ms.models, log_priors=lp)
    scores = with_priors.score(train)
    idx = [scores.classes.index(c) for c in y]
    assert mmi_objective(with_priors, train, y) == pytest.approx(
        np.log(scores.proba()[np.arange(len(y)), idx]).sum(), rel=1e-4)
    assert mmi_update(with_priors, train, y).log_priors == lp


def _gauss_logpdf(x, mu, var):
    return -0.5 * np.sum(np.log(2 * np.pi * var) + (x - mu) ** 2 / var)


def test_statistics_match_direct_loop():
    rng = np.random.default_rng(1)
    classes = ["p", "q"]
    models = {c: [DiagGMM([0.4, 0.6], rng.normal(size=(2, 2)), rng.uniform(0.5, 2, size=(2, 2)), dtype="float64")]
              for c in classes}
    ms = ModelSet(models, log_priors={"p": np.log(0.3), "q": np.log(0.7)})
    utts = [rng.normal(size=(n, 2)) for n in (3, 1, 4)]
    labels = ["p", "q", "q"]
    kappa, boost = 0.7, 0.4
    st = mmi_stats(ms, utts, labels, scale=kappa, boost=boost)
    # direct, one frame and component at a time
    ll = np.zeros((3, 2))
    for u, X in enumerate(utts):
        for j, c in enumerate(classes):
            g = models[c][0]
            for x in X:
                ll[u, j] += np.log(sum(g.weights[k] * np.exp(_gauss_logpdf(x, g.means[k], g.variances[k]))
                                       for k in range(2)))
            ll[u, j] += ms.log_priors[c]
    objective = 0.0
    for j, c in enumerate(classes):
        occ_n, x_n, xx_n = np.zeros(2), np.zeros((2, 2)), np.zeros((2, 2))
        occ_d, x_d, xx_d = np.zeros(2), np.zeros((2, 2)), np.zeros((2, 2))
        g = models[c][0]
        for u, X in enumerate(utts):
            z = [kappa * ll[u, i] + (boost if classes[i] != labels[u] else 0.0) for i in range(2)]
            post = np.exp(z[j]) / sum(np.exp(v) for v in z)
            if j == 0:
                objective += kappa * ll[u, classes.index(labels[u])] - np.log(sum(np.exp(v) for v in z))
            for x in X:
                dens = np.array([g.weights[k] * np.exp(_gauss_logpdf(x, g.means[k], g.variances[k]))
                                 for k in range(2)])
                r = dens / dens.sum()
                for k in range(2):
                    if labels[u] == c:
                        occ_n[k] += r[k]
                        x_n[k] += r[k] * x
                        xx_n[k] += r[k] * x * x
                    occ_d[k] += post * r[k]
                    x_d[k] += post * r[k] * x
                    xx_d[k] += post * r[k] * x * x
        for s, (occ, sx, sxx) in ((st.num[c][0], (occ_n, x_n, xx_n)), (st.den[c][0], (occ_d, x_d, xx_d))):
            raw = s.reshifted(np.zeros(2))
            np.testing.assert_allclose(raw.occ, occ, rtol=1e-10)
            np.testing.assert_allclose(raw.sum_x, sx, rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(raw.sum_xx, sxx, rtol=1e-9, atol=1e-12)
    assert st.objective == pytest.approx(objective, rel=1e-10)
    assert mmi_objective(ms, utts, labels, scale=kappa, boost=boost) == pytest.approx(objective, rel=1e-10)


def test_large_E_barely_moves(data):
    train, y, _, _, ms = data
    new = mmi_update(ms, train, y, E=1e6)
    for c in ms.classes:
        old, g = ms.models[c][0], new.models[c][0]
        np.testing.assert_allclose(g.means, old.means, atol=1e-4)
        np.testing.assert_allclose(g.variances, old.variances, rtol=1e-4)
    # the step shrinks as E grows
    steps = [np.abs(mmi_update(ms, train, y, E=E).models["a"][0].means - ms.models["a"][0].means).max()
             for E in (2.0, 20.0, 200.0)]
    assert steps[0] > steps[1] > steps[2]


def test_no_denominator_is_ml():
    """With empty denominator statistics (and tau = 0) EBW is the ML M-step of the numerator."""
    rng = np.random.default_rng(2)
    g = DiagGMM([0.5, 0.5], [[0.0, 0.0], [2.0, 2.0]], [[1.0, 1.0], [1.0, 1.0]], dtype="float64")
    X = rng.normal(size=(200, 2)) + rng.integers(0, 2, (200, 1)) * 2
    num = Stats.from_posteriors(X, g.posteriors(X), shift=g.centre)
    den = Stats.zeros(2, g.centre)
    new = ebw_update(g, num, den, E=2.0)
    ml = m_step(num, floor=np.full(2, 1e-10), dtype="float64")
    np.testing.assert_allclose(new.means, ml.means, rtol=1e-10)
    np.testing.assert_allclose(new.variances, ml.variances, rtol=1e-10)
    np.testing.assert_allclose(new.weights, ml.weights, rtol=1e-8)


def test_slices(data):
    train, y, _, _, _ = data
    long = [np.repeat(u, 3, axis=0) for u in train]  # >= 6 frames: every slice has frames
    ms = ml_model_set(long, y, n_slices=2)
    before = mmi_objective(ms, long, y)
    new = mmi_update(ms, long, y)
    assert new.n_slices == 2
    assert mmi_objective(new, long, y) > before


def test_errors(data):
    train, y, _, _, ms = data
    with pytest.raises(DataError):
        mmi_update(ms, train, ["zzz"] * len(train))
    with pytest.raises(ParameterError):
        mmi_update(ms, train, y[:-1])
    with pytest.raises(ParameterError):
        mmi_update(ms, train, y, scale=0)
    with pytest.raises(ParameterError):
        mmi_update(ms, train, y, E=-1)
    with pytest.raises(DataError):
        mmi_objective(ms, [np.zeros((3, 5))], ["a"])


def test_hmm_states():
    # chains of 2 states: frames on class c's best path through state s train model (c, s); the objective is
    # the best-path scores' (transitions included, as ModelSet.score), and it rises; transitions are kept
    from acoustic_gmm.classes import train_chain

    rng = np.random.default_rng(1)
    utts, y = make(rng, 30, lengths=(2, 12))
    utts = [np.vstack([u, u[::-1] + [1.0, 0.0]]) for u in utts]  # a second half unlike the first
    utts.append(rng.normal(size=(1, 2)))  # shorter than the chain: equal slices, no path
    y.append("a")
    models, trans = {}, {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for c in CENTRES:
            chain, _ = train_chain([u for u, t in zip(utts, y) if t == c and len(u) >= 2], 2, 2, method="viterbi")
            models[c], trans[c] = list(chain.states), chain.log_trans
    ms = ModelSet(models, log_trans=trans)
    scores = ms.score(utts)
    idx = [scores.classes.index(c) for c in y]
    assert mmi_objective(ms, utts, y) == pytest.approx(np.log(scores.proba()[np.arange(len(y)), idx]).sum(), rel=1e-4)
    previous = mmi_objective(ms, utts, y)
    for _ in range(3):
        ms = mmi_update(ms, utts, y)
        now = mmi_objective(ms, utts, y)
        assert now > previous
        previous = now
        assert all(np.array_equal(ms.log_trans[c], trans[c]) for c in CENTRES)
        assert all((m.variances > 0).all() for c in CENTRES for m in ms.models[c])


def test_far_from_zero_features_keep_their_precision(data):
    # the objective is expanded about each model's centre: moving data and models by 1e4 changes nothing
    train, y, _, _, ms = data
    offset = np.array([1e4, -3e4])
    moved = ModelSet({c: [DiagGMM(m.weights, m.means + offset, m.variances, dtype="float64") for m in ms.models[c]]
                      for c in ms.classes})
    exact = ModelSet({c: [DiagGMM(m.weights, m.means, m.variances, dtype="float64") for m in ms.models[c]]
                      for c in ms.classes})
    shifted = [u + offset for u in train]
    assert mmi_objective(moved, shifted, y) == pytest.approx(mmi_objective(exact, train, y), rel=1e-9)
