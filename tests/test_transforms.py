"""Feature transforms: spliced frames, LDA against the generalised eigenproblem, MLLT never lowering the
likelihood, fMLLR recovering a known affine map."""

from __future__ import annotations

import numpy as np
import pytest

from acoustic_gmm import DataError, ParameterError
from acoustic_gmm.gmm import GMM, DiagGMM
from acoustic_gmm.transforms import (
    FmllrStats,
    LdaStats,
    MlltStats,
    apply_fmllr,
    estimate_fmllr,
    estimate_lda,
    estimate_mllt,
    splice,
)


def test_splice_puts_neighbours_side_by_side_and_repeats_the_edges():
    X = np.arange(12, dtype=np.float32).reshape(6, 2)
    S = splice(X, context=2)
    assert S.shape == (6, 10) and S.dtype == np.float32
    np.testing.assert_array_equal(S[3], X[[1, 2, 3, 4, 5]].ravel())
    np.testing.assert_array_equal(S[0], X[[0, 0, 0, 1, 2]].ravel())
    np.testing.assert_array_equal(S[5], X[[3, 4, 5, 5, 5]].ravel())
    np.testing.assert_array_equal(splice(X, context=0), X)
    with pytest.raises(ParameterError, match="context must be an integer >= 0, got -1"):
        splice(X, context=-1)


def _classes(n_classes=5, d=6, n=400, seed=0):
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d))
    centres = rng.normal(scale=2.0, size=(n_classes, d))
    y = np.repeat(np.arange(n_classes), n)
    X = (rng.normal(size=(len(y), d)) + centres[y]) @ mix   # classes apart, features correlated
    return X, y


def test_lda_maximises_the_between_to_within_ratio():
    X, y = _classes()
    stats, half = LdaStats(6, 5), LdaStats(6, 5)
    stats.add(X[: 1000], y[: 1000])
    half.add(X[1000:], y[1000:])
    stats += half                                           # statistics add up over parts
    M, offset = estimate_lda(stats, 4)
    # the direct route: within and between covariances from the frames, eigenvectors of W^-1 B
    mean = X.mean(axis=0)
    means = np.array([X[y == c].mean(axis=0) for c in range(5)])
    W = sum(((X[y == c] - means[c]).T @ (X[y == c] - means[c])) for c in range(5)) / len(X)
    B = sum(np.sum(y == c) * np.outer(means[c] - mean, means[c] - mean) for c in range(5)) / len(X)
    values = np.sort(np.linalg.eigvals(np.linalg.solve(W, B)).real)[::-1]
    ratio = np.diag(M @ B @ M.T) / np.diag(M @ W @ M.T)
    np.testing.assert_allclose(ratio, values[:4], rtol=1e-8)
    np.testing.assert_allclose(M @ W @ M.T, np.eye(4), atol=1e-8)  # within-class covariance the identity
    np.testing.assert_allclose(X @ M.T + offset, (X - mean) @ M.T, atol=1e-9)  # centred on the global mean
    with pytest.raises(ParameterError, match=r"dim must be an integer in \[1, 6\], got 7"):
        estimate_lda(stats, 7)
    one = LdaStats(6, 5)
    one.add(X[:10], np.zeros(10, dtype=int))
    with pytest.raises(DataError, match="an LDA needs frames of at least 2 classes, got 1"):
        estimate_lda(one, 2)


def test_mllt_never_lowers_the_likelihood_of_the_diagonal_models():
    X, y = _classes(n_classes=3, d=4, n=1500, seed=1)
    models = {c: GMM(2, random_state=0).fit(X[y == c]).model_ for c in range(3)}
    before = np.mean(np.concatenate([models[c].score_samples(X[y == c]) for c in range(3)]))
    stats = MlltStats(4)
    for c in range(3):
        stats.add(c, models[c].copy("float64"), X[y == c])
    A, objective = estimate_mllt(stats, iterations=20)
    assert all(b >= a - 1e-10 for a, b in zip(objective, objective[1:])), objective
    after_models = stats.models(A, var_floor=0.0)
    logdet = np.linalg.slogdet(A)[1]
    after = np.mean(np.concatenate([after_models[c].score_samples(X[y == c] @ A.T) for c in range(3)])) + logdet
    # measured: -5.83 -> -4.99 nats a frame (strongly correlated features, 2 diagonal Gaussians a class)
    assert after > before + 0.7, (before, after)


def _speaker(d=3, seed=2):
    rng = np.random.default_rng(seed)
    models = [DiagGMM(np.full(3, 1 / 3), rng.normal(scale=3.0, size=(3, d)), rng.uniform(0.2, 1.0, size=(3, d)),
                      dtype="float64") for _ in range(4)]
    A = np.eye(d) + rng.normal(scale=0.2, size=(d, d))
    b = rng.normal(scale=0.8, size=d)
    frames = []
    for m in models:  # y drawn from the models, the speaker's x through the inverse map: y = A x + b
        k = rng.choice(3, size=3000, p=m.weights)
        yy = m.means[k] + rng.normal(size=(3000, d)) * np.sqrt(m.variances[k])
        frames.append(np.linalg.solve(A, (yy - b).T).T)
    return models, frames, np.hstack([A, b[:, None]])


@pytest.mark.parametrize("kind", ["full", "diag"])
def test_fmllr_recovers_a_known_affine_map(kind):
    models, frames, truth = _speaker()
    if kind == "diag":
        d = truth.shape[0]
        diag = np.hstack([np.diag(np.diag(truth[:, :d])), truth[:, d:]])
        frames = [np.linalg.solve(diag[:, :d], (apply_fmllr(truth, x) - diag[:, d]).T).T for x in frames]
        truth = diag
    W, values = None, []
    for _ in range(8):  # EM: align by the models under the current transform, re-estimate from the original x
        stats = FmllrStats(3)
        for m, x in zip(models, frames):
            stats.add(m, x, m.posteriors(x if W is None else apply_fmllr(W, x)))
        W = estimate_fmllr(stats, kind=kind, W=W)
        values.append(stats.auxiliary(W))
    assert np.abs(W - truth).max() < 0.015, np.abs(W - truth).max()  # measured: 0.0071 (full), 0.0054 (diag)
    offset = FmllrStats(3)
    for m, x in zip(models, frames):
        offset.add(m, x)
    W0 = estimate_fmllr(offset, kind="offset")
    np.testing.assert_array_equal(W0[:, :3], np.eye(3))
    with pytest.raises(ParameterError, match="kind must be one of"):
        estimate_fmllr(offset, kind="block")
    with pytest.raises(DataError, match="an fMLLR transform needs frames"):
        estimate_fmllr(FmllrStats(3))


def test_fmllr_row_updates_never_lower_the_auxiliary_function():
    models, frames, _ = _speaker(seed=5)
    stats = FmllrStats(3)
    for m, x in zip(models, frames):
        stats.add(m, x)
    W = np.hstack([np.eye(3), np.zeros((3, 1))])
    values = [stats.auxiliary(W)]
    for _ in range(5):
        W = estimate_fmllr(stats, W=W, iterations=1)
        values.append(stats.auxiliary(W))
    assert all(b >= a - 1e-9 for a, b in zip(values, values[1:])) and values[-1] > values[0] + 0.1, values


def test_statistics_of_long_utterances_equal_the_direct_sums():
    """The fMLLR and MLLT accumulators add frames' outer products in blocks of matrix products: the sums equal
    the three-operand sums they replace, across a block boundary."""
    from acoustic_gmm.transforms._fmllr import _BLOCK

    rng = np.random.default_rng(3)
    d, T = 3, _BLOCK + 700
    model = DiagGMM(np.full(2, 0.5), rng.normal(size=(2, d)), rng.uniform(0.5, 2.0, size=(2, d)), dtype="float64")
    X = rng.normal(size=(T, d)) * 2.0
    fm = FmllrStats(d)
    fm.add(model, X)
    resp = model.posteriors(X)
    xi = np.hstack([X, np.ones((T, 1))])
    np.testing.assert_allclose(fm.G, np.einsum("ti,ta,tb->iab", resp @ (1 / model.variances), xi, xi), rtol=1e-12)
    ml = MlltStats(d)
    ml.add("a", model, X)
    np.testing.assert_allclose(ml.parts["a"][3], np.einsum("tm,ta,tb->mab", resp, X, X), rtol=1e-12)
