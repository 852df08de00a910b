"""Choosing per corpus: speaker-disjoint folds, every configuration scored on speakers it was not trained on (the
same accuracies a plain train and evaluate give), the best mean kept (a tie keeps the earlier), its models trained
on everything and carrying the table; clear refusals where holding speakers out cannot work."""

from __future__ import annotations

import numpy as np
import pytest

from acoustic_gmm import DataError, ParameterError
from acoustic_gmm.classes import ModelSet, evaluate, select_model_set, speaker_folds, train_model_set
from acoustic_gmm.features import MfccConfig
from acoustic_gmm.storage import write_features


def _archive(path, n_speakers=4, raw=True):
    """Three classes a few units apart, each speaker shifted by its own offset (so speaker CMVN helps)."""
    rng = np.random.default_rng(0)
    cfg = MfccConfig(n_mfcc=4, n_mels=8, deltas=0)
    items = []
    for s in range(n_speakers):
        shift = rng.normal(scale=3.0, size=4)
        for c in range(3):
            for k in range(6):
                x = (rng.normal(size=(30, 4)) + 1.5 * c + shift).astype(np.float32)
                items.append((f"s{s}_c{c}_{k}", x, f"c{c}", f"s{s}") + ((np.ones(30, bool),) if raw else ()))
    write_features(path, items, config=cfg, sample_rate=8000, raw=raw)
    return path


GRID = [("per speaker", {"cmvn": "speaker"}, {"slices": 1, "n_components": 1}),
        ("none", {"cmvn": "none"}, {"slices": 1, "n_components": 1}),
        ("per speaker again", {"cmvn": "speaker"}, {"slices": 1, "n_components": 1}),
        ("more cepstra", {"cmvn": "none", "n_mfcc": 13}, {"slices": 1, "n_components": 1})]


def test_selection_scores_held_out_speakers_and_keeps_the_best(tmp_path):
    feats = _archive(tmp_path / "f.h5")
    estimates = []
    ms, report = select_model_set(feats, grid=GRID, jobs=1, progress=False, on_estimate=estimates.append)
    assert report.folds == [["s0"], ["s1"], ["s2"], ["s3"]]
    assert report.names == ["per speaker", "none", "per speaker again"]
    assert report.skipped == ["more cepstra (the archive holds 4 cepstra)"]
    assert report.accuracy.shape == (3, 4) and len(estimates) == 1 and estimates[0] > 0
    # each figure is a plain train without the fold's speaker and an evaluation on it
    from acoustic_gmm.storage import FeatureArchive

    with FeatureArchive(feats) as fa:
        held, rest = ([u for u in fa.ids if fa.speakers[u] == "s2"], [u for u in fa.ids if fa.speakers[u] != "s2"])
    for i, (_, view, settings) in enumerate(GRID[:2]):
        plain = train_model_set(feats, ids=rest, view=view, jobs=1, progress=False, reject_quantile=None, **settings)
        assert report.accuracy[i, 2] == evaluate(plain, feats, ids=held)["accuracy"]
    assert report.accuracy[0].mean() > report.accuracy[1].mean()  # speaker offsets: per-speaker CMVN wins
    assert report.chosen == 0 and report.names[report.chosen] == "per speaker"  # tie with its copy: the earlier
    np.testing.assert_array_equal(report.accuracy[0], report.accuracy[2])
    assert ms.config.cmvn == "speaker" and ms.metadata["selection"]["chosen"] == "per speaker"
    ms.save(tmp_path / "m.h5")
    assert ModelSet.load(tmp_path / "m.h5").metadata["selection"]["accuracy"] == report.accuracy.tolist()
    assert "<- chosen" in report.table().splitlines()[1] and report.table().count("\n") == 4


def test_selection_says_why_it_cannot_run(tmp_path):
    with pytest.raises(DataError, match=r"2 speaker\(s\); holding speakers out needs at least 3: train with the "
                                        r"defaults"):
        select_model_set(_archive(tmp_path / "two.h5", n_speakers=2), grid=GRID, jobs=1, progress=False)
    with pytest.raises(DataError, match="baked.h5: selection reads the archive through each configuration's view, "
                                        "and this one was normalised when written"):
        select_model_set(_archive(tmp_path / "baked.h5", raw=False), grid=GRID, jobs=1, progress=False)
    with pytest.raises(ParameterError, match="the classes must be labels"):
        select_model_set(tmp_path / "two.h5", label_key="speaker", jobs=1, progress=False)


def test_folds_group_many_speakers():
    folds = speaker_folds([f"s{i:02d}" for i in range(30)] * 2)
    assert len(folds) == 6 and sorted(sum(folds, [])) == [f"s{i:02d}" for i in range(30)]
    assert all(len(f) == 5 for f in folds)


def test_the_select_command_prints_the_table_and_writes_the_chosen_models(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from acoustic_gmm.classes import _select
    from acoustic_gmm.cli import main

    monkeypatch.setattr(_select, "GRID", GRID[:2])
    feats = _archive(tmp_path / "f.h5")
    result = CliRunner().invoke(main, ["select", str(feats), "-j", "1", "--out", str(tmp_path / "m.h5")])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["configuration", "mean", "%"] and lines[1].endswith("<- chosen")
    assert lines[-1].startswith(f"{tmp_path / 'm.h5'}: per speaker, 3 classes; selection took ")
    assert result.stderr.startswith("every configuration met once: about ")
    assert ModelSet.load(tmp_path / "m.h5").metadata["selection"]["configurations"] == ["per speaker", "none"]
    two = CliRunner().invoke(main, ["select", str(_archive(tmp_path / "two.h5", n_speakers=2)), "--out",
                                    str(tmp_path / "n.h5")])
    assert two.exit_code == 1 and "2 speaker(s); holding speakers out needs at least 3" in two.output
    assert not (tmp_path / "n.h5").exists()


def test_grid_accuracy_scores_a_test_archive_of_its_own(tmp_path):
    """A study's outer split: trained on one archive's speakers, scored on another archive's."""
    from acoustic_gmm.classes import grid_accuracy
    from acoustic_gmm.storage import FeatureArchive

    train, test = _archive(tmp_path / "train.h5"), _archive(tmp_path / "test.h5", n_speakers=6)
    with FeatureArchive(train) as fa:
        train_ids = [u for u in fa.ids if fa.speakers[u] != "s3"]
    with FeatureArchive(test) as fa:
        test_ids = [u for u in fa.ids if fa.speakers[u] in ("s4", "s5")]
    acc = grid_accuracy(train, [(train_ids, test_ids), (train_ids[:36], test_ids)], GRID[:2], test_archive=test,
                        jobs=1, progress=False)
    assert acc.shape == (2, 2)
    for i, (_, view, settings) in enumerate(GRID[:2]):
        for k, ids in enumerate((train_ids, train_ids[:36])):
            ms = train_model_set(train, ids=ids, view=view, jobs=1, progress=False, reject_quantile=None, **settings)
            assert acc[i, k] == evaluate(ms, test, ids=test_ids)["accuracy"]
    assert acc[0, 0] > acc[1, 0]  # unseen speakers' offsets: per-speaker CMVN wins on them too


def test_short_segments_put_the_slice_defaults_first(tmp_path):
    """Phone-length utterances: train_model_set's defaults are fixed slices, so a tie in select keeps those."""
    from acoustic_gmm.classes._select import GRID as FULL

    rng = np.random.default_rng(1)
    items = [(f"s{s}_c{c}_{k}", (rng.normal(size=(8, 13)) + 2.0 * c).astype(np.float32), f"c{c}", f"s{s}",
              np.ones(8, bool)) for s in range(3) for c in range(2) for k in range(4)]
    write_features(tmp_path / "short.h5", items, config=MfccConfig(n_mfcc=13, n_mels=20, deltas=0),
                   sample_rate=8000, raw=True)
    with pytest.warns(UserWarning, match="frames, too few for 8 components; using "):  # the final models' notes
        ms, report = select_model_set(tmp_path / "short.h5", jobs=1, progress=False)
    assert report.names[0] == "speaker 3 slices x 8 floor 0.3 13 cepstra" and len(report.names) == 12
    assert report.names[1:] == [n for n, v, t in FULL if v.get("n_mfcc") == 13 and n != report.names[0]]


def test_lda_mllt_configurations_are_trained_and_scored_as_train_lda_mllt_does(tmp_path):
    from acoustic_gmm.classes import TRANSFORM_GRID, train_lda_mllt
    from acoustic_gmm.storage import FeatureArchive

    feats = _archive(tmp_path / "f.h5")
    grid = [GRID[0], ("lda", {"cmvn": "speaker"}, {"slices": 3, "n_components": 1, "lda_mllt": 4})]
    ms, report = select_model_set(feats, grid=grid, jobs=1, progress=False)
    with FeatureArchive(feats) as fa:
        held, rest = ([u for u in fa.ids if fa.speakers[u] == "s1"], [u for u in fa.ids if fa.speakers[u] != "s1"])
    plain = train_lda_mllt(feats, dim=4, ids=rest, view={"cmvn": "speaker"}, slices=3, n_components=1, jobs=1,
                           progress=False, reject_quantile=None)
    assert report.accuracy[1, 1] == evaluate(plain, feats, ids=held)["accuracy"]
    assert [n for n, _, _ in TRANSFORM_GRID] == ["speaker 3 states x 8 floor 0.3 13 cepstra LDA+MLLT 40",
                                                 "speaker 3 slices x 8 floor 0.3 13 cepstra LDA+MLLT 40"]
