"""GMM-UBM verification: MAP adaptation, LLR scoring, score normalisation, EER/minDCF (the CLI: cli/test_speaker.py)."""

from __future__ import annotations

import numpy as np
import pytest

from acoustic_gmm import GMM, ArchiveError, DataError, ParameterError
from acoustic_gmm.speaker import (
    Scorer,
    Trials,
    eer,
    load_speakers,
    map_adapt,
    min_dcf,
    read_scores,
    save_speakers,
    verification_metrics,
)
from acoustic_gmm.speaker._trials import normalise_trials

from .conftest import draw_mixture


@pytest.fixture(scope="module")
def ubm_and_data():
    rng = np.random.default_rng(0)
    means = rng.normal(0, 3, (6, 4))
    X, _ = draw_mixture(np.full(6, 1 / 6), means, np.ones((6, 4)), 12_000, seed=1)
    ubm = GMM(8, dtype="float64").fit(X).model_
    speaker = X[:800] + np.array([0.7, -0.4, 0.2, 0.0])  # a "speaker": the population, shifted
    return ubm, speaker


def test_map_with_infinite_relevance_returns_the_ubm(ubm_and_data):
    ubm, spk = ubm_and_data
    e = map_adapt(ubm, spk, relevance=np.inf, adapt="mwv")
    np.testing.assert_allclose(e.means, ubm.means)
    np.testing.assert_allclose(e.weights, ubm.weights)
    np.testing.assert_allclose(e.variances, ubm.variances)
    np.testing.assert_allclose(map_adapt(ubm, spk, relevance=1e12).means, ubm.means, atol=1e-8)


def test_map_with_zero_relevance_gives_the_ml_statistics(ubm_and_data):
    ubm, spk = ubm_and_data
    g = ubm.posteriors(spk).astype(np.float64)                       # responsibilities under the UBM
    n = g.sum(0)
    ml_means = g.T @ spk / n[:, None]
    ml_vars = g.T @ (spk * spk) / n[:, None] - ml_means ** 2
    e = map_adapt(ubm, [spk[:300], spk[300:]], relevance=0.0, adapt="mwv")   # two utterances, one speaker
    np.testing.assert_allclose(e.means, ml_means, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(e.weights, n / n.sum(), rtol=1e-6)
    np.testing.assert_allclose(e.variances, ml_vars, rtol=1e-5, atol=1e-8)
    assert e.n_frames == 800 and np.isclose(e.occupancy.sum(), 800)


def test_map_interpolates_by_occupancy(ubm_and_data):
    ubm, spk = ubm_and_data
    e = map_adapt(ubm, spk, relevance=16.0)
    ml = map_adapt(ubm, spk, relevance=0.0).means
    alpha = (e.occupancy / (e.occupancy + 16.0))[:, None]   # a component moves as far as its data supports
    np.testing.assert_allclose(e.means, alpha * ml + (1 - alpha) * ubm.means, rtol=1e-10)
    assert 0 < alpha.min() < alpha.max() < 1
    with pytest.raises(ParameterError, match=r"adapt must be one of \['m', 'mw', 'mwv'\], got 'v'"):
        map_adapt(ubm, spk, adapt="v")


def test_scores_are_llrs_and_top_c_approaches_exact(ubm_and_data):
    ubm, spk = ubm_and_data
    models = {"a": map_adapt(ubm, spk, relevance=4.0, adapt="mwv"),
              "b": map_adapt(ubm, spk[:50] - 1.0, relevance=4.0)}
    sc = Scorer(ubm, models)
    test = spk[:120]
    exact = sc.score(test, top_c=None)
    for name in ("a", "b"):
        direct = (models[name].model(ubm).score_samples(test) - ubm.score_samples(test)).mean()
        assert exact[sc.index[name]] == pytest.approx(direct, rel=1e-4, abs=1e-4)
    np.testing.assert_allclose(sc.score(test, top_c=8), exact, rtol=1e-5)   # C = K: every component
    np.testing.assert_allclose(sc.score(test, top_c=3), exact, atol=0.05)
    # the right speaker scores higher: a (enrolled on these frames) beats the UBM, b (shifted frames) loses to it.
    # measured: a 0.314, b -0.382 per frame
    assert exact[sc.index["a"]] > 0 > exact[sc.index["b"]]
    assert exact[sc.index["a"]] - exact[sc.index["b"]] > 0.65  # measured: 0.696
    many = sc.score_many([test[:40], test[40:]], top_c=None)
    np.testing.assert_allclose(many[0], sc.score(test[:40], top_c=None), rtol=1e-6)


def test_eer_and_min_dcf_by_hand():
    tar, non = [0.9, 0.8, 0.3], [0.1, 0.2, 0.4, 0.85]
    # Thresholds between sorted scores: the miss rate stays 1/3 while false alarms fall from 1/2 to 1/4.
    assert eer(tar, non) == pytest.approx(1 / 3)
    assert min_dcf(tar, non, 0.5) == pytest.approx(0.5)        # miss + fa, best at threshold above 0.2
    assert min_dcf(tar, non, 0.01) == pytest.approx(2 / 3)     # only the threshold above 0.85 avoids all fa
    assert eer([2, 3], [0, 1]) == 0.0
    assert eer([0, 1], [2, 3]) == 1.0


def test_eer_is_undefined_without_both_kinds_of_trial():
    with pytest.raises(DataError, match=r"the trials are all target \(3 trials\): EER and minDCF are undefined"):
        verification_metrics([1.0, 2.0, 3.0], [True, True, True])
    with pytest.raises(DataError, match="EER needs target and non-target trials; got 0 target"):
        eer([], [1.0])


def test_score_normalisations_match_their_definitions():
    rng = np.random.default_rng(3)
    S, imp, coh = rng.normal(size=(3, 5)), rng.normal(1, 2, size=(3, 40)), rng.normal(-1, 3, size=(20, 5))
    z = (S - imp.mean(1)[:, None]) / imp.std(1)[:, None]
    t = (S - coh.mean(0)[None]) / coh.std(0)[None]
    # every model against every utterance, normalised trial by trial from the cohort statistics
    trials = Trials([f"m{i}" for i in range(3) for _ in range(5)], [f"u{j}" for _ in range(3) for j in range(5)],
                    [None] * 15)
    z_stats = {f"m{i}": (imp[i].mean(), imp[i].std()) for i in range(3)}
    t_stats = {f"u{j}": (coh[:, j].mean(), coh[:, j].std()) for j in range(5)}
    for norm, want in (("z", z), ("t", t), ("s", (z + t) / 2)):
        got = normalise_trials(trials, S.ravel(), norm, z_stats, t_stats)
        np.testing.assert_allclose(got, want.ravel(), rtol=1e-12)
    trials = Trials(["m0", "m1"], ["u0", "u1"], [True, False])
    got = normalise_trials(trials, np.array([1.0, 2.0]), "s", {"m0": (0.0, 2.0), "m1": (1.0, 1.0)},
                           {"u0": (1.0, 1.0), "u1": (0.0, 4.0)})
    np.testing.assert_allclose(got, [0.5 * (0.5 + 0.0), 0.5 * (1.0 + 0.5)])


def test_speaker_files_name_their_ubm(tmp_path, ubm_and_data):
    ubm, spk = ubm_and_data
    save_speakers(tmp_path / "s.h5", {"ann": map_adapt(ubm, spk)}, ubm, adapt="m", relevance=16.0)
    speakers, info = load_speakers(tmp_path / "s.h5", ubm)
    np.testing.assert_array_equal(speakers["ann"].means, map_adapt(ubm, spk).means)
    assert speakers["ann"].weights is None and info["adapt"] == "m"  # only the means are stored
    other = GMM(8, dtype="float64", init="kmeans", random_state=5).fit(spk).model_
    with pytest.raises(ArchiveError, match="speakers were adapted from UBM [0-9a-f]{16}, not from the given UBM"):
        load_speakers(tmp_path / "s.h5", other)


def test_malformed_inputs(tmp_path):
    (tmp_path / "scores").write_text("a u1 0.5\na u2 x\n")
    with pytest.raises(DataError, match=r"scores:2: expected 'model utterance score', got 'a u2 x'"):
        read_scores(tmp_path / "scores")
    (tmp_path / "scores").write_text("a u1 nan\n")
    with pytest.raises(DataError, match="score is not finite"):
        read_scores(tmp_path / "scores")
    (tmp_path / "trials").write_text("a u1 target\na u2 maybe\n")
    with pytest.raises(DataError, match=r"trials:2: expected 'model utterance \[target\|nontarget\]'"):
        Trials.read(tmp_path / "trials")
