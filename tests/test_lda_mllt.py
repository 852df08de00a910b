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
