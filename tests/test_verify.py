"""GMM-UBM verification: MAP adaptation, LLR scoring, score normalisation, EER/minDCF, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from acoustic_gmm import GMM, ArchiveError, DataError, ParameterError
from acoustic_gmm.cli import main
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

from .conftest import FSDD, draw_mixture


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


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """Three FSDD speakers through the CLI once: features, a 16-component UBM, enrolment, and scores.

    Takes 5-14 enrol (every digit), takes 0-3 test, every other enrolment take trains the UBM.
    """
    from types import SimpleNamespace

    from acoustic_gmm.storage import write_data_dir

    if not FSDD.is_dir():
        pytest.skip("FSDD not available")
    tmp_path = tmp_path_factory.mktemp("verify_cli")
    spk = ["george", "jackson", "theo"]
    wav = {w.stem: w for w in sorted(FSDD.glob("*.wav")) if w.stem.split("_")[1] in spk and int(w.stem.split("_")[2]) < 15}
    write_data_dir(tmp_path / "data", wav, utt2spk={u: u.split("_")[1] for u in wav})
    runner = CliRunner()
    feats = str(tmp_path / "f.h5")
    r = runner.invoke(main, ["features", str(tmp_path / "data"), "-o", feats, "--n-mfcc", "20", "--deltas", "1",
                             "--cmvn", "mean"])
    assert r.exit_code == 0, r.output
    enrol = {s: [u for u in wav if u.split("_")[1] == s and int(u.split("_")[2]) >= 5] for s in spk}
    test = [u for u in wav if int(u.split("_")[2]) < 4]
    (tmp_path / "ubm_utts").write_text("".join(f"{u}\n" for s in spk for u in enrol[s][::2]))
    ubm = runner.invoke(main, ["ubm", feats, "-k", "16", "--utts", str(tmp_path / "ubm_utts"),
                               "-o", str(tmp_path / "ubm.h5")])
    (tmp_path / "enroll").write_text("".join(f"{s} {' '.join(enrol[s])}\n" for s in spk))
    enroll = runner.invoke(main, ["enroll", str(tmp_path / "ubm.h5"), feats, "--enroll", str(tmp_path / "enroll"),
                                  "-o", str(tmp_path / "spk.h5")])
    (tmp_path / "trials").write_text("".join(f"{m} {u} {'target' if u.split('_')[1] == m else 'nontarget'}\n"
                                             for u in test for m in spk))
    verify = runner.invoke(main, ["verify", str(tmp_path / "spk.h5"), str(tmp_path / "trials"), feats,
                                  "--scores", str(tmp_path / "scores")])
    return SimpleNamespace(dir=tmp_path, feats=feats, test=test, ubm=ubm, enroll=enroll, verify=verify)


@pytest.mark.skipif(not FSDD.is_dir(), reason="FSDD not available")
def test_cli_ubm_and_enroll(cli_run):
    assert cli_run.ubm.exit_code == 0, cli_run.ubm.output
    assert "UBM of 16 components on 6,308 frames" in cli_run.ubm.output  # every other enrolment take: 150
    r = cli_run.enroll
    assert r.exit_code == 0 and "3 speaker model(s), MAP m, r=16" in r.output, r.output


@pytest.mark.skipif(not FSDD.is_dir(), reason="FSDD not available")
def test_cli_verify_scores_every_trial_far_from_chance(cli_run):
    r = cli_run.verify
    assert r.exit_code == 0 and "360 trials scored" in r.output, r.output
    m = verification_metrics(read_scores(cli_run.dir / "scores")[1], Trials.read(cli_run.dir / "trials").targets)
    # 3 speakers, a 16-component UBM: far from chance (0.5); measured: EER 8.33 %
    assert m["eer"] < 0.095 and m["n_target"] == 120


@pytest.mark.skipif(not FSDD.is_dir(), reason="FSDD not available")
def test_cli_verify_warns_of_per_speaker_cmvn(cli_run):
    # per-speaker CMVN (the features default) normalises every trial utterance with its true speaker's statistics
    r = cli_run.verify
    assert "warning" not in r.stderr  # these features: per-utterance CMN
    runner, feats = CliRunner(), str(cli_run.dir / "spk_cmvn.h5")
    assert runner.invoke(main, ["features", str(cli_run.dir / "data"), "-o", feats, "--n-mfcc", "20",
                                "--deltas", "1"]).exit_code == 0
    r = runner.invoke(main, ["verify", str(cli_run.dir / "spk.h5"), str(cli_run.dir / "trials"), feats,
                             "--scores", str(cli_run.dir / "scores_spk")])
    assert r.exit_code == 0, r.output
    assert f"warning: {feats}: frames normalised per speaker (--cmvn speaker" in r.stderr
    assert "--cmvn mean or --cmvn sliding" in r.stderr and "Traceback" not in r.output


@pytest.mark.skipif(not FSDD.is_dir(), reason="FSDD not available")
def test_cli_eer_writes_det_plot_and_metrics(cli_run):
    tmp_path = cli_run.dir
    r = CliRunner().invoke(main, ["eer", str(tmp_path / "scores"), str(tmp_path / "trials"), "--det",
                                  str(tmp_path / "det.png"), "--metrics", str(tmp_path / "m.json")])
    assert r.exit_code == 0 and "(120 target, 240 non-target trials; 360 of 360 labelled trials scored)" in r.output, \
        r.output
    assert (tmp_path / "det.png").read_bytes()[:4] == b"\x89PNG"
    m = verification_metrics(read_scores(tmp_path / "scores")[1], Trials.read(tmp_path / "trials").targets)
    assert json.loads((tmp_path / "m.json").read_text())["eer"] == pytest.approx(m["eer"])


@pytest.mark.skipif(not FSDD.is_dir(), reason="FSDD not available")
def test_cli_score_normalisation(cli_run):
    tmp_path, runner = cli_run.dir, CliRunner()
    # s-norm: z statistics from impostor utterances, t statistics from cohort models (here the same three).
    r = runner.invoke(main, ["verify", str(tmp_path / "spk.h5"), str(tmp_path / "trials"), cli_run.feats,
                             "--norm", "s", "--cohort-utts", str(tmp_path / "ubm_utts"),
                             "--cohort-models", str(tmp_path / "spk.h5"), "--scores", str(tmp_path / "snorm")])
    assert r.exit_code == 0 and "s-norm" in r.output, r.output
    raw, normed = read_scores(tmp_path / "scores")[1], read_scores(tmp_path / "snorm")[1]
    assert not np.allclose(raw, normed)
    assert abs(normed.mean()) < 0.1 < abs(raw.mean())  # measured: mean score -0.423 raw, 0.041 s-normed
    r = runner.invoke(main, ["verify", str(tmp_path / "spk.h5"), str(tmp_path / "trials"), cli_run.feats,
                             "--norm", "z", "--scores", str(tmp_path / "z")])
    assert r.exit_code == 1 and "--norm z needs impostor utterances (--cohort-utts)" in r.output


@pytest.mark.skipif(not FSDD.is_dir(), reason="FSDD not available")
def test_cli_info_on_a_speaker_file(cli_run):
    r = CliRunner().invoke(main, ["info", str(cli_run.dir / "spk.h5")])
    assert r.exit_code == 0 and "speakers (m, r=16.0)" in r.output and "3: george, jackson, theo" in r.output


@pytest.mark.skipif(not FSDD.is_dir(), reason="FSDD not available")
def test_cli_verify_refuses_bad_trials(cli_run):
    tmp_path, runner = cli_run.dir, CliRunner()
    (tmp_path / "bad_trials").write_text("spk9 0_theo_1 target\ntheo nope nontarget\n")
    r = runner.invoke(main, ["verify", str(tmp_path / "spk.h5"), str(tmp_path / "bad_trials"), cli_run.feats,
                             "--scores", str(tmp_path / "s2")])
    assert r.exit_code == 1 and "1 trial model(s) are not enrolled: spk9" in r.output
    (tmp_path / "bad_trials").write_text("theo nope nontarget\n")
    r = runner.invoke(main, ["verify", str(tmp_path / "spk.h5"), str(tmp_path / "bad_trials"), cli_run.feats,
                             "--scores", str(tmp_path / "s2")])
    assert r.exit_code == 1 and "1 trial utterance(s) are not in" in r.output and "nope" in r.output


@pytest.mark.skipif(not FSDD.is_dir(), reason="FSDD not available")
def test_cli_enrolment_with_fewer_frames_than_components_says_so(cli_run):
    from acoustic_gmm.storage import FeatureArchive, write_features

    # The shortest FSDD take here has 17 frames, more than the UBM's 16 components: enrol on the first 10.
    tmp_path = cli_run.dir
    with FeatureArchive(cli_run.feats) as fa:
        short = fa[next(u for u in cli_run.test if u.split("_")[1] == "theo")][:10]
        write_features(tmp_path / "short.h5", [("short", short, None, "theo")], config=fa.config,
                       sample_rate=fa.sample_rate)
    (tmp_path / "one").write_text("theo short\n")
    r = CliRunner().invoke(main, ["enroll", str(tmp_path / "ubm.h5"), str(tmp_path / "short.h5"), "--enroll",
                                  str(tmp_path / "one"), "-o", str(tmp_path / "few.h5")])
    assert r.exit_code == 0 and "fewer than the UBM's 16 components; MAP still works" in r.output, r.output
    assert "theo: 10 enrolment frames" in r.output
