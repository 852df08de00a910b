"""`acoustic-gmm ubm`, `enroll`, `verify`, `eer` and `acoustic-gmm ivector ...`: speaker verification from the
command line, GMM-UBM on FSDD speakers and i-vectors from UBM to EER, score files that miss trials, a UBM run
resumed after kill -9, and a UBM trained on a Dask scheduler."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from acoustic_gmm import GMM
from acoustic_gmm.cli import main
from acoustic_gmm.features import MfccConfig
from acoustic_gmm.speaker import Trials, read_scores, verification_metrics
from acoustic_gmm.storage import FeatureArchive, write_features

from ..conftest import FSDD, draw_mixture, invoke
from ..test_ivector import speaker_archive
from ..test_resume import Interrupt, stop_at

ACOUSTIC_GMM = Path(sys.executable).parent / "acoustic-gmm"


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
def test_cli_verify_reads_any_raw_archive_as_the_ubm_did(cli_run):
    """Per-speaker CMVN (the features default) would hand every trial utterance its true speaker's statistics.
    The speakers' UBM was trained on per-utterance CMN: verify reads an archive extracted with the defaults the
    same way (the UBM's view), so the scores are those of the archive extracted for verification, and no warning.
    A UBM trained on per-speaker frames still gets the warning."""
    r = cli_run.verify
    assert "warning" not in r.stderr
    runner, feats = CliRunner(), str(cli_run.dir / "spk_cmvn.h5")
    assert runner.invoke(main, ["features", str(cli_run.dir / "data"), "-o", feats, "--n-mfcc", "20",
                                "--deltas", "1"]).exit_code == 0
    r = runner.invoke(main, ["verify", str(cli_run.dir / "spk.h5"), str(cli_run.dir / "trials"), feats,
                             "--scores", str(cli_run.dir / "scores_spk")])
    assert r.exit_code == 0 and "warning" not in r.stderr, r.output
    assert (cli_run.dir / "scores_spk").read_text() == (cli_run.dir / "scores").read_text()
    for args in (["ubm", feats, "-k", "4", "--cmvn", "speaker", "-o", str(cli_run.dir / "ubm_spk.h5")],
                 ["enroll", str(cli_run.dir / "ubm_spk.h5"), feats, "-o", str(cli_run.dir / "spk_spk.h5")]):
        assert runner.invoke(main, args).exit_code == 0
    r = runner.invoke(main, ["verify", str(cli_run.dir / "spk_spk.h5"), str(cli_run.dir / "trials"), feats,
                             "--scores", str(cli_run.dir / "scores_spk_spk")])
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
    args = ["verify", str(tmp_path / "spk.h5"), str(tmp_path / "trials"), cli_run.feats, "--norm", "s",
            "--cohort-utts", str(tmp_path / "ubm_utts"), "--cohort-models", str(tmp_path / "spk.h5")]
    # the target models themselves as the t cohort: refused, or allowed by name with a warning
    r = runner.invoke(main, args + ["--scores", str(tmp_path / "refused")])
    assert r.exit_code == 1 and not (tmp_path / "refused").exists()
    assert ("--cohort-models holds 3 of the trials' own models (george, jackson, theo): their trials are normalised "
            "against themselves; use other impostors, or pass --allow-cohort-overlap") in r.output, r.output
    r = runner.invoke(main, args + ["--allow-cohort-overlap", "--scores", str(tmp_path / "snorm")])
    assert r.exit_code == 0 and "s-norm" in r.output, r.output
    assert "warning: --cohort-models holds 3 of the trials' own models" in r.stderr
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
    # The shortest FSDD take here has 17 frames, more than the UBM's 16 components: enrol on the first 10.
    tmp_path = cli_run.dir
    short_archive(cli_run, tmp_path / "short.h5")
    (tmp_path / "one").write_text("theo short\n")
    r = CliRunner().invoke(main, ["enroll", str(tmp_path / "ubm.h5"), str(tmp_path / "short.h5"), "--enroll",
                                  str(tmp_path / "one"), "-o", str(tmp_path / "few.h5")])
    assert r.exit_code == 0 and "fewer than the UBM's 16 components; MAP still works" in r.output, r.output
    assert "theo: 10 enrolment frames" in r.output


def test_the_cli_from_ubm_to_eer(tmp_path):
    train, test = tmp_path / "train.h5", tmp_path / "test.h5"
    speaker_archive(train, 30, 6, seed=1)
    utts = speaker_archive(test, 10, 6, seed=2)
    (tmp_path / "enroll").write_text("".join(f"spk2_{s} " + " ".join(f"spk2_{s}-{j}" for j in range(3)) + "\n"
                                             for s in range(10)))
    (tmp_path / "trials").write_text("".join(f"spk2_{m} {u} {'target' if spk == f'spk2_{m}' else 'nontarget'}\n"
                                             for m in range(10) for u, _, _, spk in utts if int(u[-1]) >= 3))
    run = CliRunner()

    def ok(*args):
        result = run.invoke(main, [str(a) for a in args])
        assert result.exit_code == 0, result.output
        return result.output

    ok("ubm", train, "-k", "8", "--out", tmp_path / "ubm.h5")
    out = ok("ivector", "train", tmp_path / "ubm.h5", train, "--dim", "6", "--iterations", "5",
             "--out", tmp_path / "ex.h5")
    assert "dimension 6" in out and "iteration   5" in out
    assert "statistics:" not in out and "it/s" not in out  # no progress bars where stderr is not a terminal
    assert "i-vectors:" not in ok("ivector", "extract", tmp_path / "ex.h5", test, "--out", tmp_path / "bars.h5")
    ok("ivector", "extract", tmp_path / "ex.h5", train, "--out", tmp_path / "train_iv.h5")
    ok("ivector", "extract", tmp_path / "ex.h5", test, "--out", tmp_path / "test_iv.h5")
    eers = {}
    for scoring in ("cosine", "plda"):
        ok("ivector", "backend", tmp_path / "train_iv.h5", "--scoring", scoring, "--lda-dim", "5",
           "--out", tmp_path / f"{scoring}.h5")
        out = ok("ivector", "score", tmp_path / f"{scoring}.h5", tmp_path / "trials", tmp_path / "test_iv.h5",
                 tmp_path / "test_iv.h5", "--enroll", tmp_path / "enroll", "--scores", tmp_path / f"{scoring}.scores")
        assert "300 of 300 trials scored" in out
        out = ok("eer", tmp_path / f"{scoring}.scores", tmp_path / "trials")
        eers[scoring] = float(out.split("EER ")[1].split(" %")[0])
    assert max(eers.values()) < 2.5, eers  # measured 1.85 % for both
    # an i-vector file of another extractor is refused, by name of the problem, with no traceback
    ok("ivector", "train", tmp_path / "ubm.h5", train, "--dim", "4", "--out", tmp_path / "ex4.h5")
    ok("ivector", "extract", tmp_path / "ex4.h5", test, "--out", tmp_path / "test4.h5")
    result = run.invoke(main, ["ivector", "score", str(tmp_path / "plda.h5"), str(tmp_path / "trials"),
                               str(tmp_path / "test_iv.h5"), str(tmp_path / "test4.h5"), "--scores",
                               str(tmp_path / "x.scores")])
    assert result.exit_code == 1 and "come from another extractor" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "x.scores").exists()
    # features of another front end (same width) are refused by the extractor, naming the difference
    with FeatureArchive(test) as fa:
        utts = [(u, fa[u], fa.labels[u], fa.speakers[u]) for u in fa.ids]
    write_features(tmp_path / "other.h5", utts, config=MfccConfig(n_mfcc=5, n_mels=12, deltas=0, cmvn="mean"), sample_rate=8000)
    result = run.invoke(main, ["ivector", "extract", str(tmp_path / "ex.h5"), str(tmp_path / "other.h5"),
                               "--out", str(tmp_path / "o.h5")])
    assert result.exit_code == 1 and "other.h5 was extracted with another front end (n_mels: archive 12 vs " \
                                     "wanted 10)" in result.output


def _checkpoint_stage(path):
    try:
        with h5py.File(path, "r") as f:
            return int(f.attrs["n_components"]), int(f.attrs["n_iter_total"])
    except (OSError, KeyError):                        # not there yet
        return None


@pytest.mark.usefixtures("save_every_iteration")  # as every test of test_resume.py
@pytest.mark.slow
def test_cli_ubm_resumes_after_sigkill(fsdd, tmp_path):
    feats = fsdd[0] / "feats.h5"
    run = [str(ACOUSTIC_GMM), "ubm", str(feats), "-k", "32", "--out"]

    want = subprocess.run(run + [str(tmp_path / "ref.h5")], capture_output=True, text=True, timeout=60)
    assert want.returncode == 0, want.stderr
    assert not (tmp_path / "ref.h5.ckpt").exists()

    out, ckpt = tmp_path / "ubm.h5", tmp_path / "ubm.h5.ckpt"
    proc = subprocess.Popen(run + [str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline, state = time.monotonic() + 30, None
        while proc.poll() is None and time.monotonic() < deadline:
            state = _checkpoint_stage(ckpt)
            if state and state[0] >= 16:               # well into the growth stages, dozens of iterations to go
                break
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        proc.kill()
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert state and state[0] >= 16 and not out.exists()

    again = subprocess.run(run + [str(out)], capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr
    said = re.search(r"resuming from (.+): stage (\d+) components, iteration (\d+)", again.stderr)
    assert said, again.stderr
    assert Path(said[1]) == ckpt and int(said[2]) >= state[0] and int(said[3]) >= state[1]
    assert not ckpt.exists()

    got, ref = GMM.load(out), GMM.load(tmp_path / "ref.h5")
    np.testing.assert_array_equal(got.weights_, ref.weights_)
    np.testing.assert_array_equal(got.means_, ref.means_)
    np.testing.assert_array_equal(got.covariances_, ref.covariances_)
    assert again.stdout.split("ubm_id")[1] == want.stdout.split("ubm_id")[1]


@pytest.mark.usefixtures("save_every_iteration")  # as every test of test_resume.py
def test_cli_ubm_refuses_another_runs_checkpoint_unless_no_resume(fsdd, tmp_path):
    feats = fsdd[0] / "feats.h5"
    out, ckpt = tmp_path / "ubm.h5", tmp_path / "ubm.h5.ckpt"
    with pytest.raises(Interrupt):                     # a checkpoint of a K = 8 run
        GMM(8).fit(feats, checkpoint=ckpt, progress=stop_at(3))

    refused = subprocess.run([str(ACOUSTIC_GMM), "ubm", str(feats), "-k", "4", "--out", str(out)],
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1
    assert str(ckpt) in refused.stderr and "n_components 8 there, 4 here" in refused.stderr
    assert ckpt.exists() and not out.exists()

    fresh = subprocess.run([str(ACOUSTIC_GMM), "ubm", str(feats), "-k", "4", "--out", str(out), "--no-resume"],
                           capture_output=True, text=True, timeout=60)
    assert fresh.returncode == 0, fresh.stderr
    assert "resuming" not in fresh.stderr and out.exists() and not ckpt.exists()


@pytest.mark.slow  # a real Dask cluster, as every test of test_distributed.py
def test_cli_ubm_on_a_scheduler(client, tmp_path):
    from click.testing import CliRunner

    from acoustic_gmm.cli import main

    X, _ = draw_mixture([0.5, 0.5], [[0.0, 0, 0], [4.0, 4, 4]], np.ones((2, 3)), 4000, seed=2)
    write_features(tmp_path / "f.h5", [(f"u{i}", p.astype(np.float32), None, None) for i, p in
                                       enumerate(np.array_split(X, 9))], config=MfccConfig(n_mfcc=3, deltas=0),
                   sample_rate=8000)
    runner = CliRunner()
    r = runner.invoke(main, ["ubm", str(tmp_path / "f.h5"), "-k", "4", "--scheduler", client.scheduler.address,
                             "-o", str(tmp_path / "remote.h5")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["ubm", str(tmp_path / "f.h5"), "-k", "4", "-o", str(tmp_path / "local.h5")])
    assert r.exit_code == 0 and "on 4,000 frames" in r.output
    # the command's UBM is float32: the cluster sums its E-step over other chunks than the local run, and after 8
    # EM iterations the means (unit-variance data) differ by 3e-5 here; the float64 fit above agrees to 1e-5
    np.testing.assert_allclose(GMM.load(tmp_path / "remote.h5").means_, GMM.load(tmp_path / "local.h5").means_,
                               rtol=1e-5, atol=1e-4)


def test_eer_refuses_a_score_file_that_misses_trials(corpus, tmp_path):
    tmp, feats, trials = corpus
    scores = tmp_path / "scores"
    assert invoke("verify", tmp / "spk.h5", trials, feats, "--scores", scores).exit_code == 0
    lines = scores.read_text().splitlines()
    part = tmp_path / "part"
    part.write_text("\n".join(lines[::4]) + "\n")  # 5 of 20 trials
    result = invoke("eer", part, trials)
    assert result.exit_code == 1
    assert f"{part} scores 5 of the 20 labelled trials in {trials}; not scored: " in result.output
    assert "pass --allow-missing" in result.output
    result = invoke("eer", part, trials, "--allow-missing", "--metrics", tmp_path / "m.json")
    assert result.exit_code == 0 and "warning:" in result.output and "5 of 20 labelled trials scored" in result.output
    m = json.loads((tmp_path / "m.json").read_text())
    assert (m["n_scored"], m["n_trials"]) == (5, 20)
    full = invoke("eer", scores, trials)
    assert full.exit_code == 0 and "20 of 20 labelled trials scored" in full.output


@pytest.mark.skipif(not FSDD.is_dir(), reason="FSDD not available")
def test_cli_cohorts_too_small_or_overlapping_are_refused(cli_run):
    tmp_path, runner = cli_run.dir, CliRunner()
    base = ["verify", str(tmp_path / "spk.h5"), str(tmp_path / "trials"), cli_run.feats]
    one = tmp_path / "one_utt"
    one.write_text((tmp_path / "ubm_utts").read_text().split()[0] + "\n")
    # one utterance: std 0, every score +-inf (it wrote them and exited 0); now a named refusal
    r = runner.invoke(main, base + ["--norm", "z", "--cohort-utts", str(one), "--scores", str(tmp_path / "z1")])
    assert r.exit_code == 1 and "--cohort-utts has 1 member(s); --norm z needs at least 2 to estimate a mean and a " \
        "spread" in r.output, r.output
    test_utts = tmp_path / "test_utts"
    test_utts.write_text("".join(f"{u}\n" for u in cli_run.test[:4]))
    r = runner.invoke(main, base + ["--norm", "z", "--cohort-utts", str(test_utts), "--scores", str(tmp_path / "z2")])
    assert r.exit_code == 1 and "--cohort-utts holds 4 of the trials' own utterances" in r.output, r.output


@pytest.mark.skipif(not FSDD.is_dir(), reason="FSDD not available")
def test_cli_repeated_lines_are_errors_naming_both_lines(cli_run):
    tmp_path, runner = cli_run.dir, CliRunner()
    lines = (tmp_path / "scores").read_text().splitlines()
    (tmp_path / "scores_dup").write_text("\n".join(lines + [lines[3]]) + "\n")
    r = runner.invoke(main, ["eer", str(tmp_path / "scores_dup"), str(tmp_path / "trials")])  # was counted twice
    model, utt = lines[3].split()[:2]
    assert r.exit_code == 1 and f"scores_dup:{len(lines) + 1}: duplicate score of trial '{model} {utt}' (first on " \
        f"line 4)" in r.output, r.output
    trials = (tmp_path / "trials").read_text().splitlines()
    (tmp_path / "trials_dup").write_text("\n".join(trials + [trials[0]]) + "\n")
    r = runner.invoke(main, ["eer", str(tmp_path / "scores"), str(tmp_path / "trials_dup")])
    assert r.exit_code == 1 and f"trials_dup:{len(trials) + 1}: duplicate trial" in r.output, r.output
    enrol = (tmp_path / "enroll").read_text().splitlines()
    (tmp_path / "enroll_dup").write_text("\n".join(enrol + [enrol[0].split()[0] + " " + enrol[0].split()[1]]) + "\n")
    r = runner.invoke(main, ["enroll", str(tmp_path / "ubm.h5"), cli_run.feats, "--enroll", str(tmp_path / "enroll_dup"),
                             "-o", str(tmp_path / "spk_dup.h5")])  # the last line won: one utterance's model
    assert r.exit_code == 1 and "enroll_dup:4: duplicate model 'george' (first on line 1)" in r.output, r.output
    assert not (tmp_path / "spk_dup.h5").exists()


@pytest.mark.skipif(not FSDD.is_dir(), reason="FSDD not available")
def test_cli_ml_enrolment_with_too_few_frames_names_the_speaker(cli_run):
    tmp_path = cli_run.dir
    short_archive(cli_run, tmp_path / "short_ml.h5")
    r = CliRunner().invoke(main, ["enroll", str(tmp_path / "ubm.h5"), str(tmp_path / "short_ml.h5"), "--ml",
                                  "-o", str(tmp_path / "few_ml.h5")])
    assert r.exit_code == 1 and "speaker 'theo': 10 frame(s) given" in r.output, r.output  # was "X: 10 frame(s)"


def short_archive(cli_run, path):
    """An archive of one 10-frame utterance of theo's (fewer frames than the UBM's 16 components)."""
    from acoustic_gmm.storage import FeatureArchive, write_features

    with FeatureArchive(cli_run.feats) as fa:
        short = fa[next(u for u in cli_run.test if u.split("_")[1] == "theo")][:10]
        write_features(path, [("short", short, None, "theo")], config=fa.config, sample_rate=fa.sample_rate)


@pytest.mark.skipif(not FSDD.is_dir(), reason="FSDD not available")
def test_cli_a_run_of_notes_is_summarised_unless_verbose(cli_run):
    from acoustic_gmm.storage import FeatureArchive, write_features

    tmp_path = cli_run.dir
    with FeatureArchive(cli_run.feats) as fa:
        takes = [(f"take{i}", fa[u][:10], None, f"s{i}") for i, u in enumerate(cli_run.test[:6])]
        write_features(tmp_path / "takes.h5", takes, config=fa.config, sample_rate=fa.sample_rate)
    args = ["enroll", str(tmp_path / "ubm.h5"), str(tmp_path / "takes.h5")]
    r = CliRunner().invoke(main, args + ["-o", str(tmp_path / "takes_spk.h5")])
    notes = [line for line in r.stderr.splitlines() if line.startswith("note:")]
    assert r.exit_code == 0 and len(notes) == 4, r.stderr  # was 6, one a model: 999 for a thousand
    assert notes[-1] == "note: ... and 3 more like them (acoustic-gmm --verbose shows every one)"
    r = CliRunner().invoke(main, ["--verbose"] + args + ["-o", str(tmp_path / "takes_spk2.h5")])
    assert r.exit_code == 0 and len([line for line in r.stderr.splitlines() if line.startswith("note:")]) == 6
