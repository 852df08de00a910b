"""HDF5 storage for models (and, later, features), written atomically and read defensively.

Model file layout (``format_version`` 1)::

    /                      attrs: format_version, content="models", metadata (JSON text)
    /models/<name>/        attrs: covariance_type, dtype
        weights            (K,)       float64
        means              (K, D)     float64
        covariances        (K, D) diag or (K, D, D) full, float64

A file holds one model or a named set (one per class).  ``metadata`` is free-form JSON:
the estimator's hyper-parameters, and later the feature configuration it was trained on.
Writes go to a temporary file in the target's folder and are renamed into place, so a
crash never leaves a half-written file where a good one was.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from .errors import ModelFileError, ParameterError
from .gmm import make_model

FORMAT_VERSION = 1
WEIGHT_SUM_TOL = 1e-6


@contextlib.contextmanager
def atomic_h5(path):
    """Open a temporary HDF5 file beside ``path``; rename it onto ``path`` only on success."""
    import h5py

    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def save_models(path, models: dict, metadata: dict | None = None) -> None:
    """Write named models (``{name: DiagGMM | FullGMM}``) and JSON metadata to ``path``.

    Examples
    --------
    >>> from acoustic_gmm.gmm import DiagGMM
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "m.h5")
    >>> save_models(p, {"a": DiagGMM([1.0], [[0.0]], [[1.0]])}, {"note": "demo"})
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
        group = f.create_group("models")
        for name, m in models.items():
            g = group.create_group(name)
            g.attrs["covariance_type"] = m.covariance_type
            g.attrs["dtype"] = np.dtype(m.dtype).name
            g.create_dataset("weights", data=m.weights)
            g.create_dataset("means", data=m.means)
            g.create_dataset("covariances", data=m.covariances)


def open_h5(path):
    """Open ``path`` read-only, turning every way it can fail into :class:`ModelFileError`."""
    import h5py

    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"{path}: no such file")
    if path.is_dir():
        raise ModelFileError(f"{path}: is a folder, not a model file")
    if not h5py.is_hdf5(path):
        raise ModelFileError(f"{path}: not an HDF5 file (wrong signature); expected an acoustic_gmm model file")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot be read as HDF5, the file is truncated or corrupt ({exc})") from None


def load_models(path) -> tuple[dict, dict]:
    """Read every model in ``path``; returns ``({name: model}, metadata)``.

    Everything is validated: a format this version understands, agreeing shapes, finite
    values, positive variances (positive-definite covariances), weights summing to one.
    """
    path = Path(path)
    with open_h5(path) as f:
        try:
            version = f.attrs.get("format_version")
            if version is None or f.attrs.get("content") != "models" or "models" not in f:
                raise ModelFileError(f"{path}: an HDF5 file but not an acoustic_gmm model file "
                                     f"(no format_version/models group)")
            if int(version) > FORMAT_VERSION:
                raise ModelFileError(f"{path}: format_version {int(version)} is newer than this "
                                     f"acoustic_gmm understands ({FORMAT_VERSION}); upgrade acoustic_gmm")
            metadata = json.loads(f.attrs.get("metadata", "{}"))
            models = {name: _read_model(path, name, g) for name, g in f["models"].items()}
        except (OSError, KeyError, ValueError) as exc:
            if isinstance(exc, ModelFileError):
                raise
            raise ModelFileError(f"{path}: damaged model file ({type(exc).__name__}: {exc})") from None
    if not models:
        raise ModelFileError(f"{path}: holds no models")
    return models, metadata


def _read_model(path, name, g):
    where = f"{path}: model {name!r}"
    for key in ("weights", "means", "covariances"):
        if key not in g:
            raise ModelFileError(f"{where}: dataset '{key}' is missing")
    ctype = g.attrs.get("covariance_type", "")
    w, mu, cov = (np.asarray(g[k][()], dtype=np.float64) for k in ("weights", "means", "covariances"))
    if mu.ndim != 2 or w.shape != (mu.shape[0],):
        raise ModelFileError(f"{where}: weights {w.shape} and means {mu.shape} do not agree")
    K, D = mu.shape
    expected = {"diag": (K, D), "full": (K, D, D)}.get(ctype)
    if expected is None:
        raise ModelFileError(f"{where}: unknown covariance_type {ctype!r}")
    if cov.shape != expected:
        raise ModelFileError(f"{where}: covariances have shape {cov.shape}, expected {expected}")
    for key, arr in (("weights", w), ("means", mu), ("covariances", cov)):
        if not np.isfinite(arr).all():
            raise ModelFileError(f"{where}: {key} contain NaN or inf")
    if (w < 0).any() or abs(w.sum() - 1.0) > WEIGHT_SUM_TOL:
        raise ModelFileError(f"{where}: weights must be non-negative and sum to 1 (sum is {w.sum():.9g})")
    if ctype == "diag" and (cov <= 0).any():
        raise ModelFileError(f"{where}: {int((cov <= 0).sum())} variance(s) are not positive")
    try:
        return make_model(ctype, w, mu, cov, g.attrs.get("dtype", "float32"))
    except np.linalg.LinAlgError:
        raise ModelFileError(f"{where}: a covariance matrix is not positive definite") from None
