"""`acoustic-gmm train`, `evaluate` and `classify`: class models from the command line (slices, HMM states, MMI,
variance floors, the library's defaults), their evaluation, and the classification of audio files and archives
(adaptation, one-speaker normalisation, a cold start without librosa, inputs it cannot use)."""

from __future__ import annotations

import json
import subprocess
import sys

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from acoustic_gmm.classes import ModelSet, train_model_set
from acoustic_gmm.cli import main
from acoustic_gmm.errors import ModelFileError
from acoustic_gmm.features import MfccConfig
from acoustic_gmm.storage import FeatureArchive, extract_corpus, write_features

from ..conftest import classify_scores, invoke, tone
from ..conftest import invoke as run  # the name test_states.py gave the same helper


def order_archive(path, n, seed):
    """Two classes with the same sounds in opposite order: 'ab' is A then B, 'ba' is B then A."""
    rng = np.random.default_rng(seed)
    A, B = np.array([2.0, 0.0]), np.array([-2.0, 0.0])
    utts = []
    for i in range(n):
        for label, (first, second) in (("ab", (A, B)), ("ba", (B, A))):
            t1, t2 = rng.integers(8, 20, size=2)
            X = np.vstack([first + rng.normal(size=(t1, 2)), second + rng.normal(size=(t2, 2))])
            utts.append((f"{label}{i:03d}", X.astype(np.float32), label, "s"))
    write_features(path, utts, config=MfccConfig(n_mfcc=2, n_mels=4, deltas=0), sample_rate=8000)


def test_train_with_states_tells_the_order_of_sounds(tmp_path):
    order_archive(tmp_path / "train.h5", 30, seed=1)
    order_archive(tmp_path / "test.h5", 50, seed=2)
    accuracy = {}
    for name, opts in (("bag", ["--slices", "1"]), ("viterbi", ["--states", "2", "--state-training", "viterbi"]),
                       ("baum-welch", ["--states", "2"]), ("default", [])):
        r = run("train", tmp_path / "train.h5", "-k", "2", *opts, "--out", tmp_path / f"{name}.h5")
        assert r.exit_code == 0, r.output
        r = run("evaluate", tmp_path / f"{name}.h5", tmp_path / "test.h5", "--metrics", tmp_path / f"{name}.json")
        assert r.exit_code == 0, r.output
        accuracy[name] = json.loads((tmp_path / f"{name}.json").read_text())["accuracy"]
    assert accuracy["bag"] < 0.7 and accuracy["viterbi"] > 0.95 and accuracy["baum-welch"] > 0.95, accuracy
    assert accuracy["default"] > 0.95, accuracy  # the default: 3 HMM states, Baum-Welch
    default = ModelSet.load(tmp_path / "default.h5")
    assert default.n_slices == 3 and default.log_trans is not None and default.metadata["states"] == "baum-welch"
    ms = ModelSet.load(tmp_path / "viterbi.h5")
    assert ms.n_slices == 2 and ms.log_trans["ab"].shape == (2, 2) and (ms.log_trans["ab"] <= 0).all()
    r = run("train", tmp_path / "train.h5", "--init", "kmeans", "--out", tmp_path / "x.h5")
    assert r.exit_code == 1 and "--init kmeans is for slices" in r.output and "Traceback" not in r.output
    r = run("train", tmp_path / "train.h5", "--init", "kmeans", "--slices", "1", "--out", tmp_path / "x.h5")
    assert r.exit_code == 0, r.output
    r = run("train", tmp_path / "train.h5", "--states", "2", "--slices", "3", "--out", tmp_path / "x.h5",
            "--overwrite")
    assert r.exit_code == 1 and "give one" in r.output
    # a damaged transition table is refused by name
    with h5py.File(tmp_path / "viterbi.h5", "r+") as f:
        meta = json.loads(f.attrs["metadata"])
        meta["log_trans"]["ab"] = [[0.5, -1.0], [0.0, 0.0]]
        f.attrs["metadata"] = json.dumps(meta)
    with pytest.raises(ModelFileError, match=r"viterbi.h5: log_trans must hold log probabilities \(<= 0\)"):
        ModelSet.load(tmp_path / "viterbi.h5")


def test_train_with_mmi_raises_its_objective(tmp_path):
    order_archive(tmp_path / "train.h5", 20, seed=3)
    r = run("train", tmp_path / "train.h5", "-k", "2", "--slices", "1", "--mmi", "2", "--out", tmp_path / "m.h5")
    assert r.exit_code == 0, r.output
    line = next(x for x in r.output.splitlines() if x.startswith("MMI objective"))
    before, after = (float(v) for v in line.split("objective ")[1].split(", ")[0].split(" -> "))
    assert after >= before, line
    assert ModelSet.load(tmp_path / "m.h5").n_slices == 1
    r = run("train", tmp_path / "train.h5", "-k", "2", "--states", "2", "--mmi", "2", "--out", tmp_path / "s.h5")
    assert r.exit_code == 0, r.output
    line = next(x for x in r.output.splitlines() if x.startswith("MMI objective"))
    before, after = (float(v) for v in line.split("objective ")[1].split(", ")[0].split(" -> "))
    assert after >= before, line  # here states separate the classes already (0.0): test_mmi tests the rise
    ms = ModelSet.load(tmp_path / "s.h5")
    assert ms.n_slices == 2 and ms.log_trans is not None


@pytest.mark.parametrize("opts", [[], ["--states", "2"], ["--states", "2", "--state-training", "baum-welch"],
                                  ["--slices", "2"]])
def test_train_floors_variances_at_the_given_share_of_the_class_variance(tmp_path, opts):
    # --var-floor reaches every kind of class model (it once stopped short of HMM states, which kept 1e-3).
    # Frames from 4 tight clusters (sd 0.1) at (+-2, +-2) in any order: every slice and state sees the class's
    # own distribution (variance ~4 a feature), which a floor of 0.6 must hold the fitted variances near.
    rng = np.random.default_rng(3)
    corners = np.array([[2, 2], [2, -2], [-2, 2], [-2, -2]], dtype=float)
    utts = [(f"{c}{i:03d}", (corners[rng.integers(4, size=30)] + 0.1 * rng.normal(size=(30, 2))).astype(np.float32),
             c, "s") for c in ("x", "y") for i in range(20)]
    write_features(tmp_path / "train.h5", utts, config=MfccConfig(n_mfcc=2, n_mels=4, deltas=0), sample_rate=8000)
    var = {c: np.concatenate([X for _, X, label, _ in utts if label == c]).var(0) for c in ("x", "y")}
    smallest = {}
    for floor in ("0.001", "0.6"):
        r = run("train", tmp_path / "train.h5", "-k", "4", *opts, "--var-floor", floor, "--out", tmp_path / "m.h5",
                "--overwrite")
        assert r.exit_code == 0, r.output
        ms = ModelSet.load(tmp_path / "m.h5")
        smallest[floor] = min(float((m.variances / var[c]).min()) for c in ms.classes for m in ms.models[c])
    assert smallest["0.001"] < 0.005 and smallest["0.6"] > 0.5, smallest


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
    threshold = ModelSet.load(tmp_path / "m.h5").reject_threshold  # printed to 4 digits, kept whole in the file
    assert result.output.rstrip().endswith(f"reject threshold {threshold:.4g}") and len(f"{threshold:.4g}") <= 10
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

    archive = classify_scores(tmp_path / "m.h5", tmp_path / "f.h5")
    together = classify_scores(tmp_path / "m.h5", *paths.values(), "--one-speaker")
    alone = classify_scores(tmp_path / "m.h5", *paths.values())
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


def test_cli_classify_adapts_to_the_inputs(make_corpus, tmp_path):
    signals = {f"{c}_{i}": tone(0.6, freq=f, seed=i) for c, f in (("lo", 300), ("hi", 1500)) for i in range(6)}
    data, paths = make_corpus(signals)
    extract_corpus(data, tmp_path / "f.h5", progress=False, jobs=1)
    ms = train_model_set(tmp_path / "f.h5", label_key="label", slices=1, n_components=2, progress=False, jobs=1)
    ms.save(tmp_path / "m.h5")
    # a "new speaker": the same tones, a little higher
    new = {f"{c}_new{i}": tone(0.6, freq=f * 1.06, seed=10 + i) for c, f in (("lo", 300), ("hi", 1500)) for i in range(6)}
    _, new_paths = make_corpus(new, name="new")
    wavs = [str(new_paths[u]) for u in sorted(new)]
    result = CliRunner().invoke(main, ["classify", str(tmp_path / "m.h5"), *wavs, "--adapt", "--json"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(ln) for ln in result.stdout.splitlines()]
    assert [d["label"] for d in lines] == [u.split("_")[0] for u in sorted(new)]
    result = CliRunner().invoke(main, ["classify", str(tmp_path / "m.h5"), str(tmp_path / "f.h5"), "--adapt",
                                       "--adapt-iterations", "1", "-r", "inf"])
    assert result.exit_code == 0, result.output
    assert [ln.split("\t")[1] for ln in result.output.splitlines()] == [u.split("_")[0] for u in sorted(signals)]


def test_cli_classify_adapt_normalises_audio_files_as_one_speaker(make_corpus, tmp_path):
    """With per-speaker CMVN models, --adapt gives audio files exactly the features an archive would."""
    signals = {f"{c}_{i}": tone(0.5, freq=f * (1 + 0.01 * i), seed=i) for c, f in (("lo", 300), ("hi", 1500))
               for i in range(5)}
    data, paths = make_corpus(signals, speakers={u: "one" for u in signals})
    extract_corpus(data, tmp_path / "f.h5", config=MfccConfig(cmvn="speaker"), progress=False, jobs=1)
    ms = train_model_set(tmp_path / "f.h5", label_key="label", slices=1, n_components=2, progress=False, jobs=1)
    ms.save(tmp_path / "m.h5")
    runner = CliRunner()
    from_audio = runner.invoke(main, ["classify", str(tmp_path / "m.h5"), *[str(paths[u]) for u in sorted(signals)],
                                      "--adapt", "--json"])
    from_archive = runner.invoke(main, ["classify", str(tmp_path / "m.h5"), str(tmp_path / "f.h5"), "--adapt", "--json"])
    assert from_audio.exit_code == 0 and from_archive.exit_code == 0, from_audio.output + from_archive.output
    a = [json.loads(ln) for ln in from_audio.stdout.splitlines()]
    b = [json.loads(ln) for ln in from_archive.stdout.splitlines()]
    assert [d["label"] for d in a] == [d["label"] for d in b] == [u.split("_")[0] for u in sorted(signals)]
    np.testing.assert_allclose([d["score"] for d in a], [d["score"] for d in b], rtol=1e-5)


def test_evaluate_refuses_an_archive_without_the_labels(corpus, tmp_path):
    tmp, _, _ = corpus
    rng = np.random.default_rng(1)
    bare = tmp_path / "bare.h5"
    write_features(bare, [(f"u{i}", rng.normal(size=(30, 4)).astype(np.float32), None, None) for i in range(5)],
                   config=MfccConfig(n_mfcc=4, n_mels=8, deltas=0), sample_rate=8000)
    result = invoke("evaluate", tmp / "models.h5", bare)
    assert result.exit_code == 1
    assert f"{bare}: 5 of the 5 utterances to evaluate have no label (the data dir's utt2label)" in result.output
    assert "accuracy" not in result.output.replace("no label", "")


def test_classify_of_a_file_at_another_rate_names_what_to_do(corpus, tmp_path):
    import soundfile as sf

    tmp, _, _ = corpus
    wav = tmp_path / "sixteen.wav"
    sf.write(wav, (0.3 * np.sin(np.arange(16000) * 0.2)).astype(np.float32), 16000)
    result = invoke("classify", tmp / "models.h5", wav)
    assert result.exit_code == 1
    assert (f"error: {wav}: sample rate 16000 Hz, but the models were trained on 8000 Hz audio: resample the "
            f"file to 8000 Hz first") in result.output
    assert "--sample-rate" not in result.output  # classify has no such option


def test_a_directory_given_as_audio_is_called_a_directory(corpus, tmp_path):
    tmp, _, _ = corpus
    (tmp_path / "notawav").mkdir()
    result = invoke("classify", tmp / "models.h5", tmp_path / "notawav")
    assert result.exit_code == 1
    assert f"{tmp_path / 'notawav'}: is a directory, not an audio file" in result.output
    assert "not found" not in result.output
