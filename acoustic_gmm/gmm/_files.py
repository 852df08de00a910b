"""Model files: one GMM or a named set of them in HDF5, written atomically and read defensively.

Layout (``content="models"``)::

    /                      attrs: format_version, content="models", metadata (JSON text)
    /models/<name>/        attrs: covariance_type, dtype
        weights            (n_components,)       float64
        means              (n_components, n_features)     float64
        covariances        (n_components, n_features) diag or (n_components, n_features, n_features) full
    /arrays/<key>          optional constants that travel with the models (a front end's filter bank)

``metadata`` is free-form JSON: the estimator's hyper-parameters, the feature configuration a model set was trained
on.  :func:`ubm_id` is a model's fingerprint, which speaker models and i-vector extractors carry to name the UBM
they were made from.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from ..errors import ModelFileError, ParameterError
from ..storage._hdf5 import (
    FORMAT_VERSION,
    LOADER_ERRORS,
    MAX_COMPONENTS,
    MAX_FEATURES,
    atomic_h5,
    check_range,
    check_weights,
    checked_attr,
    checked_dataset,
    checked_json,
    checked_values,
    open_h5,
)
from ._model import DiagGMM, make_model

__all__ = ["save_models", "load_models", "load_metadata", "ubm_id"]


def save_models(path, models: dict, *, metadata: dict | None = None, arrays: dict | None = None) -> None:
    """Write named models (``{name: DiagGMM | FullGMM}``) and JSON metadata to ``path``.

    Examples
    --------
    >>> from acoustic_gmm.gmm import DiagGMM
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "m.h5")
    >>> save_models(p, {"a": DiagGMM([1.0], [[0.0]], [[1.0]])}, metadata={"note": "demo"})
    >>> models, meta = load_models(p)
    >>> list(models), meta["note"]
    (['a'], 'demo')
    """
    if not models:
        raise ParameterError("save_models: no models to save")
    for name in models:
        if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
            raise ParameterError(f"model name {name!r} cannot be stored: use a non-empty name without '/'")
    try:
        meta_text = json.dumps(metadata or {})
    except TypeError as exc:
        raise ParameterError(f"metadata must be JSON-serialisable: {exc}") from None
    with atomic_h5(path) as f:
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["content"] = "models"
        f.attrs["metadata"] = meta_text
        if arrays:  # extra constants that travel with the models (a front end's filter bank ...)
            extra = f.create_group("arrays")
            for key, value in arrays.items():
                extra.create_dataset(key, data=value)
        group = f.create_group("models")
        for name, m in models.items():
            g = group.create_group(name)
            g.attrs["covariance_type"] = m.covariance_type
            g.attrs["dtype"] = np.dtype(m.dtype).name
            g.create_dataset("weights", data=m.weights)
            g.create_dataset("means", data=m.means)
            g.create_dataset("covariances", data=m.covariances)


def load_models(path) -> tuple[dict, dict]:
    """Read every model in ``path``; returns ``({name: model}, metadata)``.

    Everything is validated: a format this version understands, declared shapes within limits and
    agreeing (with each other and with the ``feature_config`` in the metadata) before any data is read,
    finite values within range, positive variances (positive-definite covariances), weights summing
    to one.  Every problem is a :class:`~acoustic_gmm.errors.ModelFileError` naming the file and field.
    """
    import h5py

    path = Path(path)
    with open_h5(path, "models") as f:
        try:
            if "models" not in f or not isinstance(f["models"], h5py.Group):
                raise ModelFileError(f"{path}: an HDF5 file but not an acoustic_gmm model file (no models group)")
            metadata = checked_json(f, "metadata", str(path), ModelFileError, dict, {})
            n_features = _config_features(path, metadata)
            # names first: h5py's items() holds its global lock between items, and an error raised mid-way
            # would leave that suspended generator (and the lock) to the garbage collector of another thread
            group = f["models"]
            models = {name: _read_model(path, name, group[name], n_features) for name in list(group)}
        except LOADER_ERRORS as exc:
            if isinstance(exc, ModelFileError):
                raise
            raise ModelFileError(f"{path}: damaged model file ({type(exc).__name__}: {exc})") from None
    if not models:
        raise ModelFileError(f"{path}: holds no models")
    return models, metadata


def load_metadata(path) -> dict:
    """A model file's JSON metadata, checked as :func:`load_models` checks it, without reading the models (what
    a UBM's feature configuration needs: its view of the archives it reads)."""
    path = Path(path)
    with open_h5(path, "models") as f:
        try:
            metadata = checked_json(f, "metadata", str(path), ModelFileError, dict, {})
        except LOADER_ERRORS as exc:
            if isinstance(exc, ModelFileError):
                raise
            raise ModelFileError(f"{path}: damaged model file ({type(exc).__name__}: {exc})") from None
    _config_features(path, metadata)
    return metadata


def _config_features(path, metadata: dict) -> int | None:
    """The feature dimension the metadata's ``feature_config`` gives (None without one): models must match it.

    Models trained on transformed frames (a ``feature_transform`` in the metadata: LDA + MLLT) are checked
    against that transform's output when they are read as a model set, not here."""
    from ..features._config import MfccConfig

    cfg = metadata.get("feature_config")
    if cfg is None or metadata.get("feature_transform") is not None:
        return None
    if not isinstance(cfg, dict):
        raise ModelFileError(f"{path}: metadata 'feature_config' is {type(cfg).__name__}, expected an object")
    try:
        return MfccConfig.from_dict(cfg).n_features
    except ParameterError as exc:
        raise ModelFileError(f"{path}: metadata 'feature_config': {exc}") from None


def _read_model(path, name, g, n_features: int | None = None):
    import h5py

    where = f"{path}: model {name!r}"
    if not isinstance(g, h5py.Group):
        raise ModelFileError(f"{where}: is a dataset, expected a group of weights, means and covariances")
    # Shapes and types first, from the declarations: nothing is read until they are known to be sane.
    w_ds = checked_dataset(g, "weights", where, ModelFileError, ndim=(1,))
    mu_ds = checked_dataset(g, "means", where, ModelFileError, ndim=(2,))
    cov_ds = checked_dataset(g, "covariances", where, ModelFileError, ndim=(2, 3))
    ctype = checked_attr(g, "covariance_type", where, ModelFileError, "str", "")
    dtype = checked_attr(g, "dtype", where, ModelFileError, "str", "float32")
    if dtype not in ("float32", "float64"):
        raise ModelFileError(f"{where}: attribute 'dtype' is {dtype!r}, expected 'float32' or 'float64'")
    K, D = mu_ds.shape
    if not (1 <= K <= MAX_COMPONENTS and 1 <= D <= MAX_FEATURES):
        raise ModelFileError(f"{where}: means have shape {mu_ds.shape}, expected 1 to {MAX_COMPONENTS} components "
                             f"of 1 to {MAX_FEATURES} features")
    if w_ds.shape != (K,):
        raise ModelFileError(f"{where}: weights {w_ds.shape} and means {mu_ds.shape} do not agree")
    expected = {"diag": (K, D), "full": (K, D, D)}.get(ctype)
    if expected is None:
        raise ModelFileError(f"{where}: unknown covariance_type {ctype!r}")
    if cov_ds.shape != expected:
        raise ModelFileError(f"{where}: covariances have shape {cov_ds.shape}, expected {expected}")
    if n_features is not None and D != n_features:
        raise ModelFileError(f"{where}: means have {D} features but the metadata's feature_config gives "
                             f"{n_features}")
    w, mu, cov = (checked_values(ds, where, ModelFileError) for ds in (w_ds, mu_ds, cov_ds))
    check_weights(where, w, ModelFileError)
    check_range(where, "means", mu, ModelFileError)
    check_range(where, "covariances", cov, ModelFileError, positive=ctype == "diag")
    try:
        return make_model(ctype, w, mu, cov, dtype)
    except np.linalg.LinAlgError:
        raise ModelFileError(f"{where}: a covariance matrix is not positive definite") from None


def ubm_id(ubm: DiagGMM) -> str:
    """A short fingerprint of a UBM's parameters: speaker models name the UBM they came from."""
    h = hashlib.sha1()
    for a in (ubm.weights, ubm.means, ubm.variances):
        h.update(np.ascontiguousarray(a, dtype=np.float64).tobytes())
    return h.hexdigest()[:16]
