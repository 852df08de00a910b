"""i-vectors: statistics, total-variability training on data drawn from a known model, extraction against
the textbook formulas, files and fingerprints (the CLI from UBM to EER: cli/test_speaker.py)."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.linalg import subspace_angles

from acoustic_gmm import DataError, ParameterError
from acoustic_gmm.cli import main
from acoustic_gmm.errors import ArchiveError
from acoustic_gmm.features import MfccConfig
from acoustic_gmm.gmm import DiagGMM
from acoustic_gmm.speaker import (
    IvectorExtractor,
    Ivectors,
    Trials,
    eer,
    load_extractor,
    load_ivectors,
    save_ivectors,
    score_ivector_trials,
    train_extractor,
    utterance_stats,
)
from acoustic_gmm.speaker._bw_stats import BWStats, _ubm_id
from acoustic_gmm.storage import FeatureArchive, write_features

K, D, R = 16, 6, 4


def tv_problem(U=2000, seed=0):
    """Statistics drawn from a known total-variability model: F_uk ~ N(N_uk T_k w_u, N_uk S_k)."""
    rng = np.random.default_rng(seed)
    var = rng.uniform(0.5, 2, size=(K, D))
    ubm = DiagGMM(np.full(K, 1 / K), rng.normal(size=(K, D)), var)
    T = rng.normal(size=(K, D, R))  # in the variance-normalised space
    W = rng.normal(size=(U, R))
    N = rng.gamma(2.0, 5.0, size=(U, K))
    F = (N[:, :, None] * np.einsum("kdr,ur->ukd", T, W) + np.sqrt(N)[:, :, None] * rng.normal(size=(U, K, D)))
    return ubm, T, W, BWStats([f"u{i}" for i in range(U)], N, F * np.sqrt(var), _ubm_id(ubm))


@pytest.fixture(scope="module")
def problem():
    return tv_problem()


@pytest.mark.parametrize("init", ["pca", "random"])
def test_training_recovers_the_subspace_and_the_factors(problem, init):
    ubm, T, W, stats = problem
    ex = train_extractor(ubm, stats, R, n_iter=10, init=init)
    angles = np.degrees(subspace_angles(T.reshape(K * D, R), ex.T.reshape(K * D, R)))
    assert angles.max() < 0.8  # measured 0.51 degrees for both starts
    What = ex.extract(stats)
    B, *_ = np.linalg.lstsq(What, W, rcond=None)  # i-vectors are the true factors up to a rotation
    r2 = 1 - ((W - What @ B) ** 2).sum(0) / (W ** 2).sum(0)
    assert r2.min() > 0.998  # measured 0.9987
    steps = np.diff(ex.history)
    assert (steps >= -1e-9 * np.abs(ex.history[1:])).all(), ex.history  # EM never lowers the objective
    assert len(ex.history) == 10


def test_the_pca_start_converges_sooner(problem):
    ubm, _, _, stats = problem
    pca = train_extractor(ubm, stats, R, n_iter=3, init="pca").history
    rnd = train_extractor(ubm, stats, R, n_iter=3, init="random").history
    assert pca[1] > rnd[1] + 10  # measured 2008.80 against 1993.08 per utterance after one iteration
    assert pca[2] - rnd[2] > 0.03  # and still ahead after two (2008.80 against 2008.75)


def test_without_minimum_divergence_em_still_rises(problem):
    ubm, _, _, stats = problem
    h = train_extractor(ubm, stats.take(np.arange(300)), R, n_iter=6, min_divergence=False).history
    assert (np.diff(h) >= -1e-9 * np.abs(h[1:])).all() and h[-1] > h[0]


def textbook(ex: IvectorExtractor, stats: BWStats):
    """One utterance at a time, in the model's own parameters (unnormalised T, precisions)."""
    Tk = ex.T * np.sqrt(ex.ubm.variances)[:, :, None]
    prec = 1 / ex.ubm.variances
    means, covs = [], []
    for u in range(len(stats)):
        L = np.eye(ex.dim) + sum(stats.N[u, k] * Tk[k].T @ (prec[k][:, None] * Tk[k]) for k in range(K))
        b = sum(Tk[k].T @ (prec[k] * stats.F[u, k]) for k in range(K))
        covs.append(np.linalg.inv(L))
        means.append(covs[-1] @ b)
    return np.array(means), np.array(covs)


def test_batched_extraction_equals_the_textbook_formulas(problem, monkeypatch):
    import acoustic_gmm.speaker._ivector as iv

    ubm, T, _, stats = problem
    few = stats.take(np.arange(40))
    ex = IvectorExtractor(ubm, T)
    monkeypatch.setattr(iv, "BATCH_UTTS", 16)  # several batches, the last one short
    W, C = ex.extract(few, covariance=True)
    W_ref, C_ref = textbook(ex, few)
    np.testing.assert_allclose(W, W_ref, rtol=0, atol=1e-10)
    np.testing.assert_allclose(C, C_ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ex.extract(few), W, rtol=0, atol=1e-10)  # the fast path (no covariance)


def test_the_batched_e_step_equals_the_textbook_sums(monkeypatch):
    """The E-step's products on packed triangles and its blocked triangular inverses (R = 21: halves of 10 and
    11, then 5 and 6, then LAPACK) give the per-utterance textbook accumulators."""
    import acoustic_gmm.speaker._ivector as iv

    rng = np.random.default_rng(7)
    ubm = DiagGMM(np.full(K, 1 / K), rng.normal(size=(K, D)), rng.uniform(0.5, 2, size=(K, D)))
    ex = IvectorExtractor(ubm, rng.normal(scale=0.5, size=(K, D, 21)))
    N = rng.gamma(2.0, 5.0, size=(30, K))
    stats = BWStats([f"u{i}" for i in range(30)], N, rng.normal(size=(30, K, D)) * N[:, :, None] ** 0.5,
                    _ubm_id(ubm))
    monkeypatch.setattr(iv, "BATCH_UTTS", 8)
    acc = ex.accumulate(stats)
    W, C = textbook(ex, stats)
    second = C + W[:, :, None] * W[:, None, :]
    rows, cols = np.tril_indices(21)  # A holds the lower triangles
    np.testing.assert_allclose(acc.A, np.einsum("uk,urs->krs", N, second)[:, rows, cols], rtol=1e-10)
    np.testing.assert_allclose(acc.H, second.sum(0), rtol=1e-10)
    f = (stats.F / np.sqrt(ubm.variances)).reshape(30, -1)
    np.testing.assert_allclose(acc.C, f.T @ W, rtol=1e-10, atol=1e-12)
    chol = np.linalg.cholesky(np.linalg.inv(C))
    np.testing.assert_allclose(iv._tri_inv(chol), np.linalg.inv(chol), rtol=1e-10, atol=1e-14)


def test_accumulators_add_up_over_parts(problem):
    ubm, T, _, stats = problem
    ex = IvectorExtractor(ubm, T)
    whole = ex.accumulate(stats.take(np.arange(500)))
    parts = ex.accumulate(stats.take(np.arange(200))) + ex.accumulate(stats.take(np.arange(200, 500)))
    for a, b in ((whole.A, parts.A), (whole.C, parts.C), (whole.H, parts.H)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-8)
    assert whole.n == parts.n == 500 and whole.objective == pytest.approx(parts.objective, rel=1e-12)


def test_statistics_from_an_archive(tmp_path):
    rng = np.random.default_rng(1)
    ubm = DiagGMM(np.full(4, 0.25), rng.normal(size=(4, 3)) * 2, rng.uniform(0.5, 2, (4, 3)), dtype="float64")
    utts = [(f"s{i % 3}_u{i}", rng.normal(size=(int(rng.integers(0, 90)), 3)).astype("f4"), "x", f"s{i % 3}")
            for i in range(12)]
    path = tmp_path / "f.h5"
    write_features(path, utts, config=MfccConfig(n_mfcc=3, n_mels=6, deltas=0, cmvn="mean"), sample_rate=8000)
    stats = utterance_stats(ubm, path)
    with FeatureArchive(path) as fa:
        for i, u in enumerate(stats.ids):
            X = fa[u].astype(np.float64)
            G = ubm.posteriors(X) if len(X) else np.zeros((0, 4))
            np.testing.assert_allclose(stats.N[i], G.sum(0), atol=1e-9)
            np.testing.assert_allclose(stats.F[i], G.T @ X - G.sum(0)[:, None] * ubm.means, atol=1e-8)
            assert stats.speakers[i] == fa.speakers[u]
    top = utterance_stats(ubm, path, top_c=2)
    np.testing.assert_allclose(top.N.sum(1), [len(x) for _, x, _, _ in utts], atol=1e-9)
    assert not np.allclose(top.N, stats.N)
    with pytest.raises(ParameterError, match="top_c must be between 1 and 4"):
        utterance_stats(ubm, path, top_c=5)
    with pytest.raises(DataError, match="not in"):
        utterance_stats(ubm, path, ["nope"])


def test_files_round_trip_and_fingerprints_guard_mixing(problem, tmp_path):
    ubm, T, W, stats = problem
    ex = train_extractor(ubm, stats.take(np.arange(200)), R, n_iter=2)
    ex.save(tmp_path / "ex.h5")
    back = load_extractor(tmp_path / "ex.h5")
    assert back.fingerprint == ex.fingerprint and back.history == ex.history
    np.testing.assert_array_equal(back.extract(stats.take(np.arange(5))), ex.extract(stats.take(np.arange(5))))
    iv = Ivectors(stats.ids[:6], ex.extract(stats.take(np.arange(6))), ["a", "a", "a", "b", "b", "b"],
                  ["x"] * 6, ex.fingerprint)
    save_ivectors(tmp_path / "iv.h5", iv)
    again = load_ivectors(tmp_path / "iv.h5")
    assert again.ids == iv.ids and again.speakers == iv.speakers and again.extractor == ex.fingerprint
    np.testing.assert_array_equal(again.vectors, iv.vectors)
    # a back end refuses i-vectors of another extractor
    other = Ivectors(iv.ids, iv.vectors, iv.speakers, iv.labels, "0123456789abcdef")
    with pytest.raises(DataError, match="come from another extractor"):
        score_ivector_trials(None, ex.fingerprint, Trials(["a"], ["u3"], [None]), other, iv)
    # a damaged extractor: parameters changed under the stored fingerprint
    import h5py

    with h5py.File(tmp_path / "ex.h5", "r+") as f:
        f["arrays/T"][0, 0, 0] += 1.0
    with pytest.raises(ArchiveError, match="fingerprint does not match"):
        load_extractor(tmp_path / "ex.h5")
    with pytest.raises(DataError, match="another UBM"):
        ex.extract(BWStats(stats.ids, stats.N, stats.F, "elsewhere"))


def speaker_archive(path, n_speakers, utts_per_speaker, seed):
    """Frames whose mean shifts with the speaker (a 'voice' offset) plus per-utterance noise."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(8, 5)) * 3
    utts = []
    for s in range(n_speakers):
        voice = 2 * rng.normal(size=5)
        for j in range(utts_per_speaker):
            comp = rng.integers(0, 8, size=200)
            X = centres[comp] + voice + 0.3 * rng.normal(size=5) + rng.normal(size=(200, 5))
            utts.append((f"spk{seed}_{s}-{j}", X.astype("f4"), "x", f"spk{seed}_{s}"))
    write_features(path, utts, config=MfccConfig(n_mfcc=5, n_mels=10, deltas=0, cmvn="mean"), sample_rate=8000)
    return utts


def test_bad_arguments_are_clear(problem):
    ubm, _, _, stats = problem
    with pytest.raises(ParameterError, match="dim must be an integer between 1 and"):
        train_extractor(ubm, stats, 0)
    with pytest.raises(ParameterError, match="init must be"):
        train_extractor(ubm, stats, 2, init="zeros")
    with pytest.raises(DataError, match="another UBM"):
        train_extractor(ubm, BWStats(stats.ids, stats.N, stats.F, "x"), 2)
    assert eer(np.array([1.0]), np.array([0.0])) == 0.0


def test_score_normalisation_of_ivector_trials():
    from acoustic_gmm.speaker import Backend

    rng = np.random.default_rng(3)
    spk = np.repeat(np.arange(12), 6)
    X = rng.normal(size=(12, 5))[spk] * 2 + rng.normal(size=(72, 5))
    iv = Ivectors([f"u{i}" for i in range(72)], X, [f"s{s}" for s in spk], ["x"] * 72, "ex")
    backend = Backend(scoring="cosine").fit(X[:36], [f"s{s}" for s in spk[:36]])
    groups = {"s6": ["u36", "u37"], "s7": ["u42", "u43"]}
    tests = [f"u{i}" for i in (38, 39, 44, 45, 50)]
    trials = Trials([m for m in groups for _ in tests], [u for _ in groups for u in tests], [None] * 10)
    cohort = [f"u{i}" for i in range(0, 36, 3)]
    raw = score_ivector_trials(backend, "ex", trials, iv, iv, groups=groups)
    z = score_ivector_trials(backend, "ex", trials, iv, iv, groups=groups, norm="z", cohort_utts=cohort)
    t = score_ivector_trials(backend, "ex", trials, iv, iv, groups=groups, norm="t", cohort_utts=cohort)
    s = score_ivector_trials(backend, "ex", trials, iv, iv, groups=groups, norm="s", cohort_utts=cohort)
    for k, (m, u) in enumerate(zip(trials.models, trials.utterances)):
        _, against_cohort = backend.score({m: iv.rows(groups[m])}, iv.rows(cohort))
        assert z[k] == pytest.approx((raw[k] - against_cohort.mean()) / against_cohort.std(), rel=1e-12)
        _, cohort_models = backend.score({c: iv.rows([c]) for c in cohort}, iv.rows([u]))
        assert t[k] == pytest.approx((raw[k] - cohort_models.mean()) / cohort_models.std(), rel=1e-12)
    np.testing.assert_allclose(s, 0.5 * (z + t), rtol=1e-12)
    with pytest.raises(ParameterError, match=r"cohort_utts= has 0 member\(s\); norm='s' needs at least 2"):
        score_ivector_trials(backend, "ex", trials, iv, iv, groups=groups, norm="s")
    with pytest.raises(ParameterError, match=r"cohort_utts= holds 1 of the trials' own utterances \(u38\)"):
        score_ivector_trials(backend, "ex", trials, iv, iv, groups=groups, norm="z", cohort_utts=cohort + ["u38"])


def test_streamed_statistics_train_and_extract_as_in_memory(tmp_path, monkeypatch):
    import acoustic_gmm.speaker._bw_stats as bw
    from acoustic_gmm.speaker import extract_archive, train_extractor_from_archive
    from acoustic_gmm.speaker._bw_stats import StatsStream

    path = tmp_path / "train.h5"
    speaker_archive(path, 12, 4, seed=5)
    ubm = DiagGMM(np.full(8, 1 / 8), np.random.default_rng(0).normal(size=(8, 5)) * 3, np.ones((8, 5)))
    monkeypatch.setattr(bw, "BATCH_FRAMES", 700)  # batches of 3 utterances: many passes over the archive
    memory = train_extractor(ubm, utterance_stats(ubm, path), 3, n_iter=4)
    streamed = train_extractor(ubm, StatsStream(ubm, path), 3, n_iter=4)
    np.testing.assert_allclose(streamed.T, memory.T, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(streamed.history, memory.history, rtol=1e-12)
    # the workflow streams when the statistics exceed the budget, and gives the same extractor
    budget = train_extractor_from_archive(ubm, path, 3, n_iter=4, max_memory=1000)
    np.testing.assert_allclose(budget.T, memory.T, rtol=1e-9, atol=1e-12)
    ivs = extract_archive(memory, path)
    np.testing.assert_allclose(ivs.vectors, memory.extract(utterance_stats(ubm, path)), rtol=0, atol=1e-12)
    np.testing.assert_allclose(memory.extract(StatsStream(ubm, path)), ivs.vectors, rtol=0, atol=1e-12)
    assert ivs.ids[:2] == ["spk5_0-0", "spk5_0-1"] and ivs.speakers[0] == "spk5_0"


def test_info_describes_the_ivector_files(problem, tmp_path):
    from acoustic_gmm.interop import describe, format_description

    ubm, T, _, stats = problem
    ex = train_extractor(ubm, stats.take(np.arange(100)), R, n_iter=1)
    ex.save(tmp_path / "ex.h5")
    facts = describe(tmp_path / "ex.h5")
    assert facts["content"] == "ivector-extractor" and facts["arrays"]["T"] == [K, D, R]
    text = format_description(facts)
    assert text.startswith(f"{tmp_path / 'ex.h5'}: i-vector extractor") and f"{K} x {D} x {R}" in text
    r = CliRunner().invoke(main, ["info", str(tmp_path / "ex.h5")])
    assert r.exit_code == 0 and "i-vector extractor" in r.output
