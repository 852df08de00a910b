"""Per-class GMMs: training and scoring on real FSDD frames, the reject rule, label files, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from acoustic_gmm import DataError, ManifestError, ParameterError
from acoustic_gmm.classes import ModelSet, evaluate, slice_of_frames, train_model_set
from acoustic_gmm.cli import main
from acoustic_gmm.features import MfccConfig
from acoustic_gmm.storage import FeatureArchive, extract_corpus, read_htk_lab, read_phn, write_data_dir

from .conftest import needs_fsdd, tone


@needs_fsdd
def test_digits_on_real_speech(fsdd):
    _, fa, train, test = fsdd
    ms = train_model_set(fa, label_key="label", slices=1, n_components=8, ids=train, progress=False)
    m = evaluate(ms, fa, test)
    assert m["n"] == 300 and m["accuracy"] >= 0.97  # measured: 97.3 % (8 errors in 300)
    assert set(m["per_class_accuracy"]) == set("0123456789")
    assert np.array(m["confusion"]).sum() == 300 and np.trace(m["confusion"]) == round(300 * m["accuracy"])
    assert 0.60 < m["frame_accuracy"] < m["accuracy"]  # measured: 62.1 % of frames


@needs_fsdd
def test_stacked_scores_equal_each_model_scored_alone(fsdd):
    _, fa, train, test = fsdd
    ms = train_model_set(fa, label_key="speaker", n_components=4, slices=3, ids=train, progress=False,
                         reject_quantile=None)
    utts = [fa[u] for u in test[:20]]
    scores = ms.score(utts)
    for i, u in enumerate(utts):
        s = slice_of_frames(len(u), 3)
        expected = [sum(ms.models[c][k].score_samples(u[s == k]).sum() for k in range(3)) for c in ms.classes]
        np.testing.assert_allclose(scores.total[i], expected, rtol=2e-5)
    P = scores.proba()
    np.testing.assert_allclose(P.sum(1), 1)
    assert [t[0][0] for t in scores.top(3)] == scores.predict()
    assert all(t[0][1] >= t[1][1] >= t[2][1] for t in scores.top(3))


@needs_fsdd
def test_reject_rule_turns_away_an_unseen_speaker(fsdd):
    _, fa, train, test = fsdd
    unseen = "nicolas"
    ms = train_model_set(fa, label_key="speaker", slices=1, n_components=16, ids=[u for u in train if unseen not in u],
                         reject_quantile=0.05,
                         progress=False)
    known = ms.rejected(ms.score([fa[u] for u in test if unseen not in u])).mean()
    stranger = ms.rejected(ms.score([fa[u] for u in fa.ids if unseen in u])).mean()
    # measured: 11.2 % (28/250) and 100 % (150/150) rejected (plain EM, overrelax=1: 8.4 % and 98.0 %)
    assert known <= 0.125 and stranger >= 0.98
    labels = ms.predict([fa[u] for u in fa.ids if unseen in u][:10], reject=True)
    assert labels.count("<unknown>") == 10  # measured: all 10


@needs_fsdd
def test_model_set_save_load_keeps_everything(fsdd, tmp_path):
    _, fa, train, test = fsdd
    ms = train_model_set(fa, label_key="label", n_components=4, slices=2, ids=train, priors=True, progress=False)
    ms.save(tmp_path / "m.h5")
    back = ModelSet.load(tmp_path / "m.h5")
    assert back.classes == ms.classes and back.n_slices == 2 and back.config == fa.config
    assert back.sample_rate == 8000 and back.log_priors == ms.log_priors
    assert back.reject_threshold == ms.reject_threshold
    utts = [fa[u] for u in test[:30]]
    np.testing.assert_array_equal(back.score(utts).total, ms.score(utts).total)


def test_too_few_frames_for_k_reduces_it_with_a_warning(make_corpus, tmp_path):
    data, _ = make_corpus({"a_1": tone(1.0), "a_2": tone(1.0, seed=2), "b_1": tone(0.3, freq=900)})
    extract_corpus(data, tmp_path / "f.h5", progress=False, jobs=1)
    with pytest.warns(UserWarning, match=r"class 'b' slice 0: 28 frames, too few for 16 components; using 2"):
        ms = train_model_set(tmp_path / "f.h5", label_key="label", slices=1, n_components=16, jobs=1, progress=False)
    assert ms.models["b"][0].n_components == 2 and ms.models["a"][0].n_components == 16


def test_label_key_the_archive_lacks(make_corpus, tmp_path):
    data, paths = make_corpus({"a_1": tone(0.5), "b_1": tone(0.5, freq=900)})
    write_data_dir(data, paths, utt2label={"a_1": "a", "b_1": "b"})  # no utt2spk
    extract_corpus(data, tmp_path / "f.h5", progress=False, jobs=1, overwrite=True)
    with pytest.raises(DataError, match=r"2 utterance\(s\) have no speaker .*needs utt2spk"):
        train_model_set(tmp_path / "f.h5", label_key="speaker", slices=1, n_components=2, progress=False)
    with pytest.raises(ParameterError, match=r"label_key must be one of \['label', 'speaker'\], got 'word'"):
        train_model_set(tmp_path / "f.h5", label_key="word", slices=1, n_components=2, progress=False)


def test_mismatched_features_and_empty_test_sets(make_corpus, tmp_path):
    data, _ = make_corpus({"a_1": tone(1.0), "b_1": tone(1.0, freq=900)})
    extract_corpus(data, tmp_path / "f.h5", progress=False, jobs=1)
    extract_corpus(data, tmp_path / "g.h5", config=MfccConfig(deltas=1), progress=False, jobs=1)
    extract_corpus(data, tmp_path / "h.h5", config=MfccConfig(vad=True), progress=False, jobs=1)
    ms = train_model_set(tmp_path / "f.h5", label_key="label", slices=1, n_components=2, progress=False, jobs=1)
    with FeatureArchive(tmp_path / "g.h5") as g:
        with pytest.raises(DataError, match="g.h5 has 26-dimensional features but the models expect 39"):
            evaluate(ms, g)
    with FeatureArchive(tmp_path / "h.h5") as h:
        with pytest.raises(DataError, match="another feature configuration than the models .vad: models False vs "
                                            "features True"):
            evaluate(ms, h)
    with FeatureArchive(tmp_path / "f.h5") as f:
        with pytest.raises(DataError, match="no utterances to evaluate"):
            evaluate(ms, f, ids=[])
    with pytest.raises(DataError, match="nothing to score"):
        ms.score([])


def test_label_files(tmp_path):
    (tmp_path / "a.phn").write_text("0 3200 h#\n3200 4800 sh\n4800 8000 iy\n")
    assert read_phn(tmp_path / "a.phn", 16000) == [(0.0, 0.2, "h#"), (0.2, 0.3, "sh"), (0.3, 0.5, "iy")]
    (tmp_path / "a.lab").write_text("0 2000000 sil\n2000000 3500000 ah -12.5\n.\n")
    assert read_htk_lab(tmp_path / "a.lab") == [(0.0, 0.2, "sil"), (0.2, 0.35, "ah")]
    (tmp_path / "b.phn").write_text("0 3200 h#\n3200 x sh\n")
    with pytest.raises(ManifestError, match=r"b.phn:2: start and end must be integers"):
        read_phn(tmp_path / "b.phn", 16000)
    (tmp_path / "c.lab").write_text("500 100 x\n")
    with pytest.raises(ManifestError, match=r"c.lab:1: need 0 <= start < end, got 500 100"):
        read_htk_lab(tmp_path / "c.lab")


def test_cli_train_evaluate_classify(make_corpus, tmp_path):
    signals = {f"{c}_{i}": tone(0.6, freq=f, seed=i) for c, f in (("lo", 300), ("hi", 1500)) for i in range(4)}
    data, paths = make_corpus(signals)
    runner = CliRunner()
    # per-utterance CMN: classify normalises each file on its own, as training then did (a pure tone's
    # spectrum is all in its mean, which per-speaker CMVN of two tones keeps and one file's alone removes)
    assert runner.invoke(main, ["features", str(data), "-o", str(tmp_path / "f.h5"), "-j", "1",
                                "--cmvn", "mean"]).exit_code == 0
    result = runner.invoke(main, ["train", str(tmp_path / "f.h5"), "-k", "2", "--slices", "2", "-o",
                                  str(tmp_path / "m.h5"), "-j", "1"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["evaluate", str(tmp_path / "m.h5"), str(tmp_path / "f.h5"), "--metrics",
                                  str(tmp_path / "m.json"), "--show-confusion", "--confusion", str(tmp_path / "c.png")])
    assert result.exit_code == 0 and "accuracy 100.00 % (8/8)" in result.output
    assert " hi   lo" in result.output and "   hi    4    0" in result.output
    png = (tmp_path / "c.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert json.loads((tmp_path / "m.json").read_text())["accuracy"] == 1.0
    broken = tmp_path / "broken.wav"
    broken.write_text("not audio")
    result = runner.invoke(main, ["classify", str(tmp_path / "m.h5"), str(paths["hi_1"]), str(broken),
                                  str(paths["lo_2"]), "--json", "--top", "2"])
    assert result.exit_code == 1
    lines = [json.loads(ln) for ln in result.stdout.splitlines()]
    assert [(d["id"], d["label"]) for d in lines] == [(str(paths["hi_1"]), "hi"), (str(paths["lo_2"]), "lo")]
    assert lines[0]["top"][0] == ["hi", lines[0]["score"]] and len(lines[0]["top"]) == 2
    assert f"error: {broken}: cannot read audio" in result.stderr
    result = runner.invoke(main, ["classify", str(tmp_path / "m.h5"), str(tmp_path / "f.h5")])
    assert result.exit_code == 0 and len(result.output.splitlines()) == 8


def test_classify_cold_start_does_not_import_librosa(make_corpus, tmp_path):
    data, paths = make_corpus({"a_1": tone(0.5), "b_1": tone(0.5, freq=1200)})
    extract_corpus(data, tmp_path / "f.h5", config=MfccConfig(cmvn="mean"), progress=False, jobs=1)
    ms = train_model_set(tmp_path / "f.h5", label_key="label", slices=1, n_components=1, progress=False, jobs=1)
    ms.save(tmp_path / "m.h5")
    code = ("import sys; from acoustic_gmm.cli import main\n"
            f"sys.argv = ['acoustic-gmm', 'classify', {str(tmp_path / 'm.h5')!r}, {str(paths['b_1'])!r}]\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print('librosa' in sys.modules, file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.split("\t")[1] == "b" and proc.stderr.strip() == "False"


def test_classify_one_speaker_normalises_the_files_together(make_corpus, tmp_path):
    # models on per-speaker CMVN (the default front end): --one-speaker gives audio files the frames
    # `features` gives the same files as one speaker's, and so the same scores as the archive
    signals = {f"{c}_{i}": tone(0.5, freq=f, seed=i) for c, f in (("lo", 300), ("hi", 1500)) for i in range(3)}
    data, paths = make_corpus(signals, speakers={u: "one" for u in signals})
    runner = CliRunner()
    assert runner.invoke(main, ["features", str(data), "-o", str(tmp_path / "f.h5"), "-j", "1"]).exit_code == 0
    assert FeatureArchive(tmp_path / "f.h5").config.cmvn == "speaker"
    r = runner.invoke(main, ["train", str(tmp_path / "f.h5"), "-k", "1", "-o", str(tmp_path / "m.h5"), "-j", "1"])
    assert r.exit_code == 0, r.output

    def scores(*args):
        r = runner.invoke(main, ["classify", str(tmp_path / "m.h5"), *args, "--json"])
        assert r.exit_code == 0, r.output
        return {Path(d["id"]).stem: d["score"] for d in map(json.loads, r.stdout.splitlines())}

    archive = scores(str(tmp_path / "f.h5"))
    together = scores(*map(str, paths.values()), "--one-speaker")
    alone = scores(*map(str, paths.values()))
    assert together.keys() == archive.keys() == alone.keys()
    np.testing.assert_allclose([together[u] for u in archive], list(archive.values()), rtol=1e-5)
    assert max(abs(alone[u] - archive[u]) for u in archive) > 1.0


def test_library_and_cli_train_the_same_default_model(make_corpus, tmp_path):
    # `acoustic-gmm train` maps flags to train_model_set's parameters and adds no default of its own
    data, _ = make_corpus({f"{c}_{i}": tone(0.6, freq=f, seed=i) for c, f in (("a", 500), ("b", 900)) for i in range(3)})
    extract_corpus(data, tmp_path / "f.h5", progress=False, jobs=1)
    ms = train_model_set(tmp_path / "f.h5", jobs=1, progress=False)
    r = CliRunner().invoke(main, ["train", str(tmp_path / "f.h5"), "--jobs", "1", "--out", str(tmp_path / "m.h5")])
    assert r.exit_code == 0, r.output
    cli = ModelSet.load(tmp_path / "m.h5")
    assert ms.n_slices == cli.n_slices == 3 and ms.log_trans is not None  # 3 HMM states by default
    assert ms.metadata["states"] == cli.metadata["states"] == "baum-welch"
    assert ms.reject_threshold == cli.reject_threshold
    for c in ms.classes:
        np.testing.assert_array_equal(ms.log_trans[c], cli.log_trans[c])
        for a, b in zip(ms.models[c], cli.models[c]):
            assert a.n_components == b.n_components
            np.testing.assert_array_equal(a.means, b.means)
            np.testing.assert_array_equal(a.variances, b.variances)


def test_the_library_owns_the_structure_rules(make_corpus, tmp_path):
    data, _ = make_corpus({"a_1": tone(0.5), "b_1": tone(0.5, freq=900)})
    extract_corpus(data, tmp_path / "f.h5", progress=False, jobs=1)
    with pytest.raises(ParameterError, match=r"states= and slices= both cut a class into parts: give one"):
        train_model_set(tmp_path / "f.h5", states=3, slices=2, progress=False)
    with pytest.raises(ParameterError, match=r"init='kmeans' is for slices"):
        train_model_set(tmp_path / "f.h5", init="kmeans", progress=False)
    # the CLI says the same in its own words
    r = CliRunner().invoke(main, ["train", str(tmp_path / "f.h5"), "--states", "3", "--slices", "2",
                                  "--out", str(tmp_path / "m.h5")])
    assert r.exit_code == 1 and "--states and --slices both cut a class into parts: give one" in r.output
    r = CliRunner().invoke(main, ["train", str(tmp_path / "f.h5"), "--init", "kmeans", "--out", str(tmp_path / "m.h5")])
    assert r.exit_code == 1 and "--init kmeans is for slices" in r.output and "give --slices" in r.output
