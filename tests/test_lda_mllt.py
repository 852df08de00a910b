"""Class models on spliced frames with LDA + MLLT: the transform travels with the models, every reader maps frames
through it (archive, audio files, adaptation, MMI), frames of the wrong kind are refused."""

from __future__ import annotations

import numpy as np
import pytest

from acoustic_gmm import DataError
from acoustic_gmm.classes import ModelSet, evaluate, train_lda_mllt
from acoustic_gmm.storage import FeatureArchive, extract_corpus

from .conftest import classify_scores, invoke, tone


def test_lda_mllt_models_keep_their_transform_and_score_files_as_the_archive(make_corpus, tmp_path):
    signals = {f"{c}_{i}": tone(0.5, freq=f * (1 + 0.02 * i), seed=i) for c, f in (("lo", 300), ("mid", 800),
                                                                                    ("hi", 1500)) for i in range(4)}
    data, paths = make_corpus(signals, speakers={u: "one" for u in signals})
    extract_corpus(data, tmp_path / "f.h5", progress=False, jobs=1)
    ms = train_lda_mllt(tmp_path / "f.h5", dim=6, slices=3, n_components=2, jobs=1, progress=False)
    t = ms.transform
    assert (t.context, t.n_in, t.n_out) == (4, 13, 6) and ms.n_features == 6 and ms.n_inputs == 13
    assert ms.config.deltas == 0 and ms.metadata["transform"] == "splice +-4, LDA to 6, MLLT x 2"
    ms.save(tmp_path / "m.h5")
    back = ModelSet.load(tmp_path / "m.h5")
    np.testing.assert_allclose(back.transform.matrix, t.matrix)
    assert evaluate(back, tmp_path / "f.h5")["accuracy"] == 1.0
    with FeatureArchive(tmp_path / "f.h5") as fa:  # the archive's own view: 39 features, not the models' 13
        with pytest.raises(DataError, match="utterance 0: .*13"):
            back.score(fa.utterances(fa.ids[:1]))
    archive = classify_scores(tmp_path / "m.h5", tmp_path / "f.h5")
    files = classify_scores(tmp_path / "m.h5", *paths.values(), "--one-speaker")
    assert archive.keys() == files.keys()
    np.testing.assert_allclose([files[u] for u in archive], list(archive.values()), rtol=1e-5)
    adapted = evaluate(back, tmp_path / "f.h5", adapt={})  # adaptation in the models' space, the map kept
    assert adapted["accuracy"] == 1.0
    r = invoke("train", tmp_path / "f.h5", "--lda-mllt", 6, "--slices", 3, "-k", 2, "-j", 1, "--mmi", 1,
               "-o", tmp_path / "cli.h5")
    assert r.exit_code == 0, r.output
    assert "on splice +-4, LDA to 6, MLLT x 2 (label)" in r.output
    np.testing.assert_allclose(ModelSet.load(tmp_path / "cli.h5").transform.matrix, t.matrix, rtol=1e-6)
    one = train_lda_mllt(tmp_path / "f.h5", dim=6, slices=1, n_components=2, jobs=1, progress=False)
    assert one.transform.n_out == 2  # whole classes as LDA classes: 3 of them, so at most 2 directions


def test_models_moved_through_an_mllt_score_moved_frames_as_before(tmp_path):
    """Between MLLT passes the models move into the new space (means A mu, variances diag(A Sigma A^T)): for a
    scaled permutation that is exact, so moved frames score as before less log |det A|; training continues them
    only with the classes and structure they have."""
    from acoustic_gmm import ParameterError
    from acoustic_gmm.classes import train_model_set
    from acoustic_gmm.classes._lda_mllt import _rotated
    from acoustic_gmm.features import MfccConfig
    from acoustic_gmm.gmm import DiagGMM
    from acoustic_gmm.storage import write_features

    rng = np.random.default_rng(0)
    items = [(f"{c}{k}", rng.normal(size=(30, 4)).astype(np.float32), c, "s", np.ones(30, bool))
             for c in "ab" for k in range(3)]
    write_features(tmp_path / "f.h5", items, config=MfccConfig(n_mfcc=4, n_mels=8, deltas=0), sample_rate=8000,
                   raw=True)
    g = DiagGMM(np.full(3, 1 / 3), rng.normal(size=(3, 4)), rng.uniform(0.3, 2.0, size=(3, 4)), dtype="float64")
    ms = ModelSet({"a": [g], "b": [g.copy()]}, "label", MfccConfig(n_mfcc=4, n_mels=8, deltas=0), None, None, {},
                  8000)
    A = np.diag([2.0, 0.5, 1.5, 3.0])[[2, 0, 3, 1]]
    X = rng.normal(size=(50, 4))
    moved = _rotated(ms, A).models["a"][0]
    np.testing.assert_allclose(moved.score_samples(X @ A.T), g.score_samples(X) - np.log(abs(np.linalg.det(A))),
                               rtol=1e-10)
    with pytest.raises(ParameterError, match=r"start must have the classes and structure being trained \(2 classes "
                                             r"x 3 slices\), got 2 classes x \[1\] slices"):
        train_model_set(tmp_path / "f.h5", slices=3, n_components=1, start=ms, jobs=1, progress=False)
