"""Speaker-adaptive training: speakers who are one canonical voice through different affine maps are brought
together: the training objective (with each map's log-determinant) rises from the plain models' likelihood."""

from __future__ import annotations

import numpy as np
import pytest

from acoustic_gmm import DataError
from acoustic_gmm.classes import train_model_set, train_sat
from acoustic_gmm.features import MfccConfig
from acoustic_gmm.storage import write_features

from .conftest import invoke


def _speakers(path, n_speakers=5, seed=0):
    """Three classes, each speaker's frames the canonical ones through its own map x = A y + b."""
    rng = np.random.default_rng(seed)
    centres = np.array([[2.0, 0.0, 0.0], [-2.0, 1.0, 0.0], [0.0, -2.0, 1.5]])
    items = []
    for s in range(n_speakers):
        A = np.diag(rng.uniform(0.7, 1.4, size=3)) + rng.normal(scale=0.15, size=(3, 3))
        b = rng.normal(scale=1.2, size=3)
        for c in range(3):
            for k in range(8):
                y = centres[c] + rng.normal(scale=0.7, size=(20, 3))
                items.append((f"s{s}_c{c}_{k}", (y @ A.T + b).astype(np.float32), f"c{c}", f"s{s}",
                              np.ones(20, bool)))
    write_features(path, items, config=MfccConfig(n_mfcc=3, n_mels=8, deltas=0, cmvn="none"), sample_rate=8000,
                   raw=True)
    return path


def _ids(path, ids):
    path.write_text("".join(f"{u}\n" for u in ids))
    return path


def _own_class_likelihood(ms, feats, ids) -> float:
    """Per frame: the utterances' log-likelihood under their own class (no maps)."""
    from acoustic_gmm.storage import FeatureArchive

    with FeatureArchive(feats, view=ms.config) as fa:
        scores = ms.score(fa.utterances(ids))
        own = [scores.total[i, ms.classes.index(fa.labels[u])] for i, u in enumerate(ids)]
    return float(np.sum(own) / scores.n_frames.sum())


def test_sat_raises_its_objective(tmp_path):
    feats = _speakers(tmp_path / "f.h5")
    train = [f"s{s}_c{c}_{k}" for s in range(4) for c in range(3) for k in range(8)]
    test = [f"s4_c{c}_{k}" for c in range(3) for k in range(8)]  # one speaker alone: no SAT
    options = dict(ids=train, slices=1, n_components=2, jobs=1, progress=False, reject_quantile=None)
    sat = train_sat(feats, iterations=2, **options)
    objective = sat.metadata["sat"]["objective"]
    assert len(objective) == 3 and objective[0] < objective[1] < objective[2], objective
    assert objective[-1] > objective[0] + 1.5, objective  # measured: -4.73 -> -3.36 -> -3.05 nats a frame
    # the canonical models fit the training speakers' mapped frames better than one model set fits them all
    plain = train_model_set(feats, **options)
    assert objective[0] == pytest.approx(_own_class_likelihood(plain, feats, train), rel=1e-9)
    sat.save(tmp_path / "sat.h5")
    result = invoke("evaluate", tmp_path / "sat.h5", feats, "--utts", _ids(tmp_path / "test", test))
    assert result.exit_code == 0 and ("warning: the models were trained on speakers' frames through their fMLLR maps "
                                      "(speaker-adaptive training): map each test speaker's frames too (--adapt, "
                                      "--adapt-transform fmllr)") in result.output, result.output
    result = invoke("evaluate", tmp_path / "sat.h5", feats, "--utts", tmp_path / "test", "--adapt",
                    "--adapt-transform", "fmllr")
    assert result.exit_code == 0 and "warning" not in result.output, result.output
    (tmp_path / "train").write_text("".join(f"{u}\n" for u in train))
    result = invoke("train", feats, "--utts", tmp_path / "train", "--slices", 1, "-k", 2, "-j", 1, "--sat", "--mmi", 1,
                    "-o", tmp_path / "mmi.h5")
    assert result.exit_code == 1 and result.output.strip().endswith(
        "Error: MMI after speaker-adaptive training would need every training speaker's fMLLR map, which the models "
        "do not keep: train without --sat or with --mmi 0"), result.output
    assert not (tmp_path / "mmi.h5").exists()
    with pytest.raises(DataError, match="speaker-adaptive training needs at least 2 speakers"):
        train_sat(feats, ids=test, slices=1, n_components=2, jobs=1, progress=False)
