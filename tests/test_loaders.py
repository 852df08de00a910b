"""Damaged or hand-edited model, speaker and feature files: each problem is one error of our own type,
naming the file and the field, raised before anything large is read.

Every bad file here starts as a good one written by the library, then is altered with h5py.
"""

from __future__ import annotations

import json
import re

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from acoustic_gmm import GMM, ArchiveError, ModelFileError
from acoustic_gmm.classes import ModelSet
from acoustic_gmm.cli import main
from acoustic_gmm.features import MfccConfig
from acoustic_gmm.gmm import load_models
from acoustic_gmm.interop import describe, format_description
from acoustic_gmm.speaker import load_speakers, load_ubm, map_adapt, save_speakers
from acoustic_gmm.storage import write_features


def raises(error, path, *fields):
    """``pytest.raises(error)`` that also wants the exact type and a one-line message naming the file and fields."""
    class Check:
        def __enter__(self):
            self.ctx = pytest.raises(error)
            self.info = self.ctx.__enter__()
            return self.info

        def __exit__(self, *exc):
            swallowed = self.ctx.__exit__(*exc)
            e = self.info.value
            assert type(e) is error, f"{type(e).__name__}: {e}"
            msg = str(e)
            assert "\n" not in msg, msg
            assert msg.startswith(str(path)), msg
            for field in fields:
                assert field in msg, f"{field!r} not in {msg!r}"
            return swallowed

    return Check()


@pytest.fixture()
def frames():
    return np.random.default_rng(0).normal(size=(400, 3)) * [1.0, 2.0, 0.5]


@pytest.fixture()
def model_file(tmp_path, frames):
    path = tmp_path / "gmm.h5"
    GMM(4, random_state=0).fit(frames).save(path, name="ubm", metadata={"kind": "ubm"})
    return path


@pytest.fixture()
def set_file(tmp_path):
    """A two-class model set with its feature configuration and stored front end (39-D, 8 kHz)."""
    rng = np.random.default_rng(1)
    models = {c: [GMM(2, random_state=0).fit(rng.normal(i, 1, (200, 39))).model_] for i, c in enumerate("ab")}
    path = tmp_path / "set.h5"
    ModelSet(models, config=MfccConfig(), sample_rate=8000, reject_threshold=0.5).save(path)
    return path


@pytest.fixture()
def speakers_file(tmp_path, model_file, frames):
    ubm = load_ubm(model_file)
    path = tmp_path / "spk.h5"
    save_speakers(path, {"ann": map_adapt(ubm, frames[:200], adapt="mwv"), "bob": map_adapt(ubm, frames[200:])},
                  ubm, adapt="mwv", relevance=16.0)
    return path


def _replace(path, name, value=None, **create):
    """Replace dataset ``name`` of the HDF5 file ``path`` by ``value`` (or an empty one declared by ``create``)."""
    with h5py.File(path, "r+") as f:
        del f[name]
        if value is None:
            f.create_dataset(name, **create)
        else:
            f[name] = value


def _set_attr(path, obj, key, value):
    with h5py.File(path, "r+") as f:
        f[obj].attrs[key] = value


def _set_metadata(path, **changes):
    with h5py.File(path, "r+") as f:
        meta = json.loads(f.attrs["metadata"])
        meta.update(changes)
        f.attrs["metadata"] = json.dumps(meta)


# --------------------------------------------------------------------------- declared shapes

def test_huge_declared_means_are_refused_before_reading(model_file, tmp_path):
    # declared (10^9, 39) and never written: reading it used to try to allocate 291 GiB
    _replace(model_file, "models/ubm/means", shape=(10**9, 39), dtype="f8")
    for load in (load_models, GMM.load, load_ubm, describe):
        with raises(ModelFileError, model_file, "model 'ubm'", "'means'", "(1000000000, 39)"):
            load(model_file)
    r = CliRunner().invoke(main, ["info", str(model_file)])
    assert r.exit_code == 1 and r.output.count("\n") == 1 and "'means'" in r.output, r.output


def test_huge_declared_means_in_a_model_set(set_file):
    _replace(set_file, "models/a#0/means", shape=(10**9, 39), dtype="f8")
    with raises(ModelFileError, set_file, "model 'a#0'", "'means'"):
        ModelSet.load(set_file)


def test_dataset_declared_but_never_written(model_file):
    _replace(model_file, "models/ubm/means", shape=(4, 3), dtype="f8")
    with raises(ModelFileError, model_file, "'means'", "never written"):
        GMM.load(model_file)


def test_dataset_of_text_is_refused(model_file):
    _replace(model_file, "models/ubm/weights", np.array([b"a", b"b", b"c", b"d"]))
    with raises(ModelFileError, model_file, "'weights'", "dtype"):
        GMM.load(model_file)


def test_model_disagreeing_with_its_feature_config(model_file):
    _set_metadata(model_file, feature_config=MfccConfig().to_dict())  # 39 features, the model has 3
    with raises(ModelFileError, model_file, "means", "3 features", "feature_config", "39"):
        GMM.load(model_file)


def test_feature_config_of_the_wrong_type(set_file):
    cfg = MfccConfig().to_dict()
    cfg["n_mels"] = "40"  # used to be a TypeError from a comparison deep in MfccConfig
    _set_metadata(set_file, feature_config=cfg)
    with raises(ModelFileError, set_file, "feature_config", "n_mels"):
        ModelSet.load(set_file)


# --------------------------------------------------------------------------- model set metadata

def test_classes_naming_a_missing_model(set_file):
    _set_metadata(set_file, classes=["a", "b", "zebra"])  # used to be KeyError: 'zebra#0'
    with raises(ModelFileError, set_file, "'classes'", "'zebra'"):
        ModelSet.load(set_file)


def test_reject_threshold_stored_as_text(set_file):
    _set_metadata(set_file, reject_threshold="0.5")  # used to fail inside numpy at classify --reject
    with raises(ModelFileError, set_file, "'reject_threshold'", "'0.5'"):
        ModelSet.load(set_file)


@pytest.mark.parametrize("field, value", [("n_slices", "1"), ("n_slices", True), ("classes", "ab"),
                                          ("log_priors", {"a": "x", "b": 0.0}), ("sample_rate", 8000.5),
                                          ("label_key", 3)])
def test_model_set_metadata_of_the_wrong_type(set_file, field, value):
    _set_metadata(set_file, **{field: value})
    with raises(ModelFileError, set_file, f"'{field}'"):
        ModelSet.load(set_file)


def test_filter_bank_of_the_wrong_shape(set_file):
    # used to load, then fail with a matmul shape error when extracting features from new audio
    with h5py.File(set_file, "r") as f:
        melfb = f["arrays/melfb"][()]
    _replace(set_file, "arrays/melfb", melfb[:, :-1])
    with raises(ModelFileError, set_file, "arrays", "'melfb'", str(melfb.shape)):
        ModelSet.load(set_file)


def test_the_good_model_set_still_loads(set_file):
    ms = ModelSet.load(set_file)
    assert ms.classes == ["a", "b"] and ms.reject_threshold == 0.5 and ms.n_features == 39


# --------------------------------------------------------------------------- parameter values

@pytest.mark.parametrize("key, scale, field", [("covariances", 1e300, "covariances"), ("means", 1e300, "means")])
def test_absurd_parameters_are_refused(model_file, key, scale, field):
    with h5py.File(model_file, "r") as f:
        value = f[f"models/ubm/{key}"][()]
    value[0, 0] = scale  # finite, so it used to load and change every decision
    _replace(model_file, f"models/ubm/{key}", value)
    with raises(ModelFileError, model_file, "model 'ubm'", field, "1e+10"):
        GMM.load(model_file)


def test_negative_weight_is_called_negative(model_file):
    with h5py.File(model_file, "r") as f:
        w = f["models/ubm/weights"][()]
    w[0], w[1] = w[0] + w[1] + 0.5, -0.5  # still sums to 1: the old message said "sum is 1"
    _replace(model_file, "models/ubm/weights", w)
    with raises(ModelFileError, model_file, "weights", "negative") as info:
        GMM.load(model_file)
    assert "sum is" not in str(info.value)


def test_speaker_with_a_negative_weight(speakers_file):
    with h5py.File(speakers_file, "r") as f:
        w = f["speakers/ann/weights"][()]
    w[0], w[1] = w[0] + w[1] + 0.5, -0.5
    _replace(speakers_file, "speakers/ann/weights", w)
    with raises(ArchiveError, speakers_file, "speaker 'ann'", "weights", "negative"):
        load_speakers(speakers_file)


def test_speaker_with_absurd_variances(speakers_file):
    with h5py.File(speakers_file, "r") as f:
        v = f["speakers/ann/variances"][()]
    _replace(speakers_file, "speakers/ann/variances", v * 1e300)
    with raises(ArchiveError, speakers_file, "speaker 'ann'", "variances"):
        load_speakers(speakers_file)


def test_speaker_means_declared_huge(speakers_file):
    _replace(speakers_file, "speakers/bob/means", shape=(10**9, 3), dtype="f8")
    with raises(ArchiveError, speakers_file, "speaker 'bob'", "'means'"):
        load_speakers(speakers_file)


# --------------------------------------------------------------------------- saving

def test_save_to_a_directory(tmp_path, frames):
    g = GMM(2, random_state=0).fit(frames)
    (tmp_path / "models").mkdir()
    with raises(ModelFileError, tmp_path / "models", "directory"):
        g.save(tmp_path / "models")  # used to be IsADirectoryError
    with raises(ModelFileError, tmp_path / "nowhere" / "m.h5", "does not exist"):
        g.save(tmp_path / "nowhere" / "m.h5")


# --------------------------------------------------------------------------- attribute types

@pytest.mark.parametrize("obj, key, value", [
    ("/", "metadata", 42),
    ("/", "metadata", "[1, 2]"),
    ("/", "format_version", "one"),
    ("/", "content", np.array([1, 2])),
    ("models/ubm", "covariance_type", 3),
    ("models/ubm", "dtype", "float16"),
])
def test_model_attribute_of_the_wrong_type(model_file, obj, key, value):
    _set_attr(model_file, obj, key, value)
    with raises(ModelFileError, model_file, key):
        GMM.load(model_file)


def test_estimator_metadata_of_the_wrong_type(model_file):
    with h5py.File(model_file, "r+") as f:
        meta = json.loads(f.attrs["metadata"])
        meta["estimator"]["chunk_size"] = "big"  # used when scoring: range(0, n, "big")
        f.attrs["metadata"] = json.dumps(meta)
    with raises(ModelFileError, model_file, "estimator", "chunk_size"):
        GMM.load(model_file)


@pytest.mark.parametrize("obj, key, value", [("/", "relevance", "16"), ("/", "ubm_id", 7),
                                             ("/", "metadata", "not json"), ("speakers/ann", "n_frames", "200")])
def test_speaker_attribute_of_the_wrong_type(speakers_file, obj, key, value):
    _set_attr(speakers_file, obj, key, value)
    with raises(ArchiveError, speakers_file, key):
        load_speakers(speakers_file)


def _archive(path, n_skipped=0):
    rng = np.random.default_rng(2)
    items = [(f"u{i}", rng.normal(size=(20 + i, 39)).astype(np.float32), "a", "s") for i in range(4)]
    write_features(path, items, config=MfccConfig(), sample_rate=8000,
                   skipped=[(f"bad{i}", f"/x/bad{i}.wav", "too short") for i in range(n_skipped)])
    return path


@pytest.mark.parametrize("obj, key, value", [("/", "sample_rate", "8000"), ("/", "config", 5),
                                             ("/", "config", json.dumps({"n_mfcc": "13"})),
                                             ("/", "skipped", "{}"), ("manifest", "data_dir", 1.5)])
def test_archive_attribute_of_the_wrong_type(tmp_path, obj, key, value):
    from acoustic_gmm.storage import FeatureArchive

    path = _archive(tmp_path / "feats.h5")
    _set_attr(path, obj, key, value)
    with raises(ArchiveError, path, key):
        FeatureArchive(path)


def test_archive_index_of_the_wrong_type(tmp_path):
    from acoustic_gmm.storage import FeatureArchive

    path = _archive(tmp_path / "feats.h5")
    _replace(path, "index/n_frames", np.array([1.5, 2, 3, 4]))
    with raises(ArchiveError, path, "index", "'n_frames'", "dtype"):
        FeatureArchive(path)
    path = _archive(tmp_path / "feats2.h5")
    _replace(path, "index/ids", np.array([b"u0", b"u1", b"u0", b"u3"]))
    with raises(ArchiveError, path, "'u0'", "more than once"):
        FeatureArchive(path)


# --------------------------------------------------------------------------- info

def test_info_says_how_many_more_were_skipped(tmp_path):
    path = _archive(tmp_path / "feats.h5", n_skipped=8)
    text = format_description(describe(path))
    assert re.search(r"skipped +8\n", text)
    assert "bad4: too short" in text and "bad5" not in text
    assert "... and 3 more" in text
    assert "... and" not in format_description(describe(_archive(tmp_path / "f5.h5", n_skipped=5)))
