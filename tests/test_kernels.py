"""The fused float32 E-step kernel against a float64 numpy reference."""

from __future__ import annotations

import numpy as np
import pytest

from acoustic_gmm.gmm._kernels import expand, posteriors_and_scale


def test_fused_posteriors_match_float64():
    rng = np.random.default_rng(0)
    n, K, width = 500, 203, 79  # K not a multiple of any vector width
    L = (rng.normal(size=(n, K)) * rng.uniform(1, 40, size=(n, 1)) - 60).astype(np.float32)
    L[::7, 3] = 40.0            # positive log-densities
    L[::11, 5] = -np.inf        # a component of weight 0
    L[1, :] = -1e4              # a frame far from every component: all equal
    L[2, 10] = L[2].max() + 30  # one component dominates
    E = rng.normal(size=(n, width)).astype(np.float32)
    L64, E64 = L.astype(np.float64), E.astype(np.float64)

    top, total, occ = np.empty(n, np.float32), np.empty(n, np.float32), np.zeros(K, np.float32)
    posteriors_and_scale(L, E, width - 1, top, total, occ)

    ref_top = L64.max(1)
    P = np.exp(L64 - ref_top[:, None])
    np.testing.assert_array_equal(top, ref_top.astype(np.float32))
    np.testing.assert_allclose(total, P.sum(1), rtol=1e-6)
    # every term to 3e-7 of its row's largest (1); the large ones to 3e-7 relative
    assert np.abs(L - P).max() < 3e-7
    big = P > 1e-3
    assert np.abs(L[big] / P[big] - 1).max() < 3e-7
    np.testing.assert_allclose(occ, (P / P.sum(1, keepdims=True)).sum(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(E[:, :-1], E64[:, :-1] / P.sum(1, keepdims=True), rtol=1e-6)
    np.testing.assert_array_equal(E[:, -1], E64[:, -1].astype(np.float32))  # columns past n_scaled untouched
    assert np.all(np.isfinite(L)) and total[1] == K


def test_float32_e_step_matches_float64_on_real_frames(fsdd_frames):
    """The fused float32 path inside accumulate, against the numpy float64 one, same parameters."""
    from acoustic_gmm.gmm import DiagGMM, accumulate

    X = fsdd_frames
    rng = np.random.default_rng(1)
    K = 64
    means = X[rng.choice(len(X), K, replace=False)].astype(np.float64)
    variances = np.tile(X.var(0, dtype=np.float64), (K, 1)) * rng.uniform(0.05, 0.5, size=(K, 1))
    args = (rng.dirichlet(np.ones(K)), means, variances)
    s32 = accumulate(DiagGMM(*args, dtype="float32"), X)
    s64 = accumulate(DiagGMM(*args, dtype="float64"), X.astype(np.float64))
    assert s32.loglik == pytest.approx(s64.loglik, rel=1e-6)
    np.testing.assert_allclose(s32.occ, s64.occ, rtol=1e-3, atol=1e-3 * len(X) / K)
    np.testing.assert_allclose(s32.sum_x, s64.sum_x, atol=1e-3 * np.abs(s64.sum_x).max())
    np.testing.assert_allclose(s32.sum_xx, s64.sum_xx, atol=1e-3 * np.abs(s64.sum_xx).max())


def test_expand_kernel_equals_the_numpy_expand():
    from acoustic_gmm.gmm import DiagGMM

    rng = np.random.default_rng(2)
    g = DiagGMM(np.full(3, 1 / 3), rng.normal(300, 50, size=(3, 13)), np.ones((3, 13)))
    for X in (rng.normal(300, 50, size=(100, 13)).astype(np.float32), rng.normal(300, 50, size=(100, 13)),
              np.asfortranarray(rng.normal(size=(100, 13)).astype(np.float32))):
        E = np.empty((len(X), 27), np.float32)
        expand(X, g.offset.astype(np.float32), E)
        np.testing.assert_array_equal(E, g.expand(X, ones=True))
