"""Bad input gets a clear error of our own type, naming the value or the file."""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest

from acoustic_gmm import GMM, AcousticGMMError, DataError, DiagGMM, ModelFileError, NotFittedError, ParameterError
from acoustic_gmm.gmm import load_models, save_models


@pytest.fixture()
def frames():
    return np.random.default_rng(0).normal(size=(500, 4))


@pytest.fixture()
def fitted(frames):
    return GMM(3).fit(frames)


def test_error_hierarchy():
    assert issubclass(ParameterError, AcousticGMMError) and issubclass(ParameterError, ValueError)
    assert issubclass(DataError, AcousticGMMError) and issubclass(DataError, ValueError)
    assert issubclass(ModelFileError, AcousticGMMError) and issubclass(ModelFileError, OSError)
    assert issubclass(NotFittedError, AcousticGMMError) and issubclass(NotFittedError, AttributeError)


@pytest.mark.parametrize("bad, what", [(np.nan, "1 NaN, 0 inf"), (np.inf, "0 NaN, 1 inf"), (-np.inf, "0 NaN, 1 inf")])
def test_non_finite_frames(frames, bad, what):
    frames[17, 2] = bad
    with pytest.raises(DataError, match=rf"X: 1 frame\(s\) contain non-finite values \({what}; first at frame 17\)"):
        GMM(2).fit(frames)


def test_non_finite_frames_when_scoring(fitted, frames):
    frames[3] = np.nan
    with pytest.raises(DataError, match=r"4 NaN.*first at frame 3"):
        fitted.score_samples(frames)


def test_wrong_dimensionality(fitted, frames):
    with pytest.raises(DataError, match="X: X has 5 features, but GMM is expecting 4 features as input"):
        fitted.score_samples(np.ones((10, 5)))
    with pytest.raises(DataError, match=r"expected a 2-D array \(n_frames, n_features\), got shape \(500,\)"):
        GMM(2).fit(frames[:, 0])
    with pytest.raises(DataError, match=r"got shape \(2, 3, 4\)"):
        fitted.predict(np.ones((2, 3, 4)))
    with pytest.raises(DataError, match="frames must be numeric, got dtype <U1"):
        GMM(2).fit(np.array([["a", "b"], ["c", "d"]]))


def test_fewer_frames_than_components(frames):
    with pytest.raises(DataError, match=r"X: 5 frame\(s\) given \(n_samples=5\), at least 8 needed"):
        GMM(8).fit(frames[:5])


@pytest.mark.parametrize("k", [0, -3, 2.5, "4", True, None])
def test_n_components_must_be_a_positive_integer(frames, k):
    with pytest.raises(ParameterError, match=rf"n_components must be an integer >= 1, got {k!r}"):
        GMM(k).fit(frames)


@pytest.mark.parametrize("params, message", [
    ({"covariance_type": "tied"}, "covariance_type must be 'diag' or 'full', got 'tied'"),
    ({"init": "kmeans++"}, "init must be 'split', 'kmeans' or 'random', got 'kmeans\\+\\+'"),
    ({"dtype": "float16"}, "dtype must be 'float32' or 'float64', got 'float16'"),
    ({"tol": -1.0}, "tol must be a finite number >= 0, got -1.0"),
    ({"var_floor": 2.0}, r"var_floor must be in \[0, 1\)"),
    ({"max_iter": 0}, "max_iter must be an integer >= 1, got 0"),
    ({"schedule": [4, 2]}, r"split schedule must be increasing positive sizes, got \[4, 2\]"),
    ({"schedule": [2, 9]}, r"split schedule \[2, 9\] goes past n_components=3"),
])
def test_bad_hyper_parameters(frames, params, message):
    with pytest.raises(ParameterError, match=message):
        GMM(3, **params).fit(frames)


def test_constant_feature_is_named(frames):
    frames[:, 2] = 7.0
    with pytest.raises(DataError, match=r"feature dimension\(s\) \[2\] are constant over all 500 frames"):
        GMM(2).fit(frames)
    frames[:, 2] = 0.0
    with pytest.raises(DataError, match=r"\[2\] are constant"):
        GMM(2, covariance_type="full").fit(frames)


def test_not_fitted():
    with pytest.raises(NotFittedError, match=r"not fitted yet: call fit\(X\) or GMM.load\(path\) first"):
        GMM(2).score_samples(np.ones((3, 2)))
    with pytest.raises(NotFittedError):
        _ = GMM(2).means_


def test_unknown_parameter_in_set_params():
    with pytest.raises(ParameterError, match="GMM has no parameter 'n_mix'"):
        GMM(2).set_params(n_mix=4)


def test_missing_model_file(tmp_path):
    with pytest.raises(ModelFileError, match=rf"{tmp_path / 'nope.h5'}: no such file"):
        GMM.load(tmp_path / "nope.h5")


def test_non_hdf5_model_file(tmp_path):
    path = tmp_path / "model.h5"
    path.write_text("this is not a model\n")
    with pytest.raises(ModelFileError, match=rf"{path}: not an HDF5 file \(wrong signature\)"):
        GMM.load(path)


def test_truncated_model_file(tmp_path, fitted):
    path = tmp_path / "model.h5"
    fitted.save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match=rf"{path}: (cannot be read as HDF5, the file is truncated or corrupt|damaged)"):
        GMM.load(path)


def test_hdf5_file_that_is_not_a_model(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(ModelFileError, match="an HDF5 file but not an acoustic_gmm model file"):
        load_models(path)


def _tamper(path, key, value):
    with h5py.File(path, "r+") as f:
        del f["models/gmm"][key]
        f["models/gmm"][key] = value


@pytest.mark.parametrize("key, value, message", [
    ("weights", [0.5, 0.4, 0.3], r"weights must be non-negative and sum to 1 \(sum is 1.2\)"),
    ("weights", [0.5, np.nan, 0.5], "weights contain NaN or inf"),
    ("covariances", -np.ones((3, 4)), r"12 variance\(s\) are not positive"),
    ("covariances", np.ones((3, 5)), r"covariances have shape \(3, 5\), expected \(3, 4\)"),
    ("means", np.ones((2, 4)), r"weights \(3,\) and means \(2, 4\) do not agree"),
])
def test_inconsistent_model_file(tmp_path, fitted, key, value, message):
    path = tmp_path / "m.h5"
    fitted.save(path)
    _tamper(path, key, value)
    with pytest.raises(ModelFileError, match=rf"{path}: model 'gmm': {message}"):
        GMM.load(path)


def test_not_positive_definite_full_covariance(tmp_path, frames):
    path = tmp_path / "m.h5"
    GMM(2, covariance_type="full").fit(frames).save(path)
    _tamper(path, "covariances", np.stack([np.eye(4), -np.eye(4)]))
    with pytest.raises(ModelFileError, match="a covariance matrix is not positive definite"):
        GMM.load(path)


def test_newer_format_version_is_refused(tmp_path, fitted):
    path = tmp_path / "m.h5"
    fitted.save(path)
    with h5py.File(path, "r+") as f:
        f.attrs["format_version"] = 99
    with pytest.raises(ModelFileError, match="format_version 99 is newer than this acoustic_gmm understands"):
        GMM.load(path)


def test_model_set_needs_a_name(tmp_path):
    path = tmp_path / "set.h5"
    g = DiagGMM([1.0], [[0.0]], [[1.0]])
    save_models(path, {"yes": g, "no": g})
    with pytest.raises(ModelFileError, match=r"holds 2 models \(no, yes\), not one GMM \(a model set from `acoustic-gmm train`\?\); "
                                               r"GMM.load\(path, name=...\) reads one"):
        GMM.load(path)
    assert GMM.load(path, name="yes").n_components == 1
    with pytest.raises(ModelFileError, match="no model named 'maybe'"):
        GMM.load(path, name="maybe")


def test_bad_model_names_and_metadata(tmp_path):
    g = DiagGMM([1.0], [[0.0]], [[1.0]])
    with pytest.raises(ParameterError, match="model name 'a/b' cannot be stored"):
        save_models(tmp_path / "m.h5", {"a/b": g})
    with pytest.raises(ParameterError, match="metadata must be JSON-serialisable"):
        save_models(tmp_path / "m.h5", {"a": g}, metadata={"x": object()})
    assert not list(tmp_path.iterdir())


def test_failed_save_leaves_the_existing_file_intact(tmp_path, fitted, frames):
    path = tmp_path / "m.h5"
    fitted.save(path)
    before = path.read_bytes()

    class Exploding(DiagGMM):
        @property
        def covariances(self):
            raise RuntimeError("disk full (simulated)")

    bad = Exploding([1.0], [[0.0, 0, 0, 0]], [[1.0, 1, 1, 1]])
    with pytest.raises(RuntimeError, match="simulated"):
        save_models(path, {"gmm": bad})
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.h5"]  # no temporary file left behind
    np.testing.assert_array_equal(GMM.load(path).score_samples(frames), fitted.score_samples(frames))
