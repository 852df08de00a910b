"""Per-class GMMs: training and scoring on real FSDD frames, the reject rule, label files (the command line:
cli/test_classes.py)."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from acoustic_gmm import DataError, ManifestError, ParameterError
from acoustic_gmm.classes import ModelSet, evaluate, slice_of_frames, train_model_set
from acoustic_gmm.cli import main
from acoustic_gmm.features import MfccConfig
from acoustic_gmm.storage import FeatureArchive, extract_corpus, read_htk_lab, read_phn, write_data_dir, write_features

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
    """A raw archive is read as the models' frames were (the view is the models'); one that cannot give them
    (fewer deltas stored), or an archive normalised when written with another configuration, is refused by
    name."""
    data, _ = make_corpus({"a_1": tone(1.0), "b_1": tone(1.0, freq=900)})
    extract_corpus(data, tmp_path / "f.h5", progress=False, jobs=1)
    extract_corpus(data, tmp_path / "g.h5", config=MfccConfig(deltas=1), progress=False, jobs=1)
    extract_corpus(data, tmp_path / "h.h5", config=MfccConfig(vad=True), progress=False, jobs=1)
    ms = train_model_set(tmp_path / "f.h5", label_key="label", slices=1, n_components=2, progress=False, jobs=1)
    with FeatureArchive(tmp_path / "g.h5") as g:
        with pytest.raises(DataError, match="g.h5: the frames hold 13 cepstra and 1 delta order.s.; n_mfcc=13 "
                                            "deltas=2 asks for more: extract them again"):
            evaluate(ms, g)
    with FeatureArchive(tmp_path / "h.h5") as h:  # extracted with VAD: read without it, as the models were
        assert h.config.vad and evaluate(ms, h)["accuracy"] == evaluate(ms, tmp_path / "f.h5")["accuracy"]
    htk = MfccConfig.from_options(htk="TARGETKIND=MFCC_0_D_A TARGETRATE=100000 WINDOWSIZE=250000 NUMCHANS=26")
    extract_corpus(data, tmp_path / "k.h5", config=htk, progress=False, jobs=1)
    ms_htk = train_model_set(tmp_path / "k.h5", label_key="label", slices=1, n_components=2, progress=False, jobs=1)
    with pytest.raises(DataError, match=r"f.h5: the frames were computed with another dither .*, htk "):
        evaluate(ms_htk, tmp_path / "f.h5")
    with FeatureArchive(tmp_path / "f.h5", view={"cmvn": "mean"}) as f:  # normalised when written: format 2
        write_features(tmp_path / "k2.h5", [(u, f[u], f.labels[u], None) for u in f.ids], config=f.config,
                       sample_rate=f.sample_rate)
    with pytest.raises(DataError, match=r"k2.h5: its frames were normalised when they were written .* no other "
                                        r"view \(cmvn: archive 'mean' vs wanted 'speaker'\)"):
        evaluate(ms, tmp_path / "k2.h5")
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
