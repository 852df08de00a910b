"""Speaker files and i-vector bundles in HDF5: written atomically, read defensively.

Speaker file layout (``content="speakers"``: enrolled speakers, only what was adapted)::

    /                      attrs: format_version, content="speakers", ubm_id, adapt, relevance, metadata
    /speakers/<name>/      attrs: n_frames
        means (n_components, n_features); weights (n_components,), variances, occupancy (optional)

:func:`save_speakers` and :func:`load_speakers` carry the UBM's fingerprint and refuse speakers of another UBM.
Bundles (:func:`save_bundle`, :func:`load_bundle`) hold named arrays, texts and JSON metadata: the i-vector
extractor, i-vector files and back ends.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import ArchiveError, ParameterError
from ..gmm._files import ubm_id
from ..gmm._model import DiagGMM
from ..storage._hdf5 import (
    FORMAT_VERSION,
    KINDS,
    LOADER_ERRORS,
    MAX_COMPONENTS,
    MAX_FEATURES,
    MAX_PARAMETER,
    MAX_VALUES,
    atomic_h5,
    check_range,
    check_weights,
    checked_attr,
    checked_dataset,
    checked_json,
    checked_texts,
    checked_values,
    open_h5,
)
from ._gmm_ubm import Enrolled

__all__ = ["save_speakers", "load_speakers"]


# --------------------------------------------------------------------------- speaker files

SPEAKER_ARRAYS = ("means", "weights", "variances", "occupancy")


def save_bundle(path, content: str, *, arrays: dict, texts: dict | None = None, metadata: dict | None = None) -> None:
    """Write named numeric arrays, lists of text and JSON metadata as an acoustic_gmm file of kind ``content``.

    The i-vector files (extractors, i-vectors, back ends) are such bundles; their modules check what
    the arrays mean, :func:`load_bundle` checks that they are sound.

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "b.h5")
    >>> save_bundle(p, "ivectors", arrays={"x": np.ones((2, 3))}, texts={"ids": ["a", "b"]}, metadata={"n": 1})
    >>> arrays, texts, meta = load_bundle(p, "ivectors")
    >>> arrays["x"].shape, texts["ids"], meta
    ((2, 3), ['a', 'b'], {'n': 1})
    """
    import h5py

    if content not in KINDS:
        raise ParameterError(f"unknown content {content!r}")
    with atomic_h5(path) as f:
        f.attrs.update(format_version=FORMAT_VERSION, content=content, metadata=json.dumps(metadata or {}))
        g = f.create_group("arrays")
        for key, value in arrays.items():
            g.create_dataset(key, data=np.asarray(value))
        g = f.create_group("texts")
        for key, value in (texts or {}).items():
            g.create_dataset(key, data=np.array([str(v) for v in value], dtype=object), dtype=h5py.string_dtype())


def load_bundle(path, content: str, *, max_values: int = MAX_VALUES) -> tuple[dict, dict, dict]:
    """Read a file written by :func:`save_bundle`: ``(arrays, texts, metadata)``.

    Arrays come back as float64 (or int64 for integer arrays), finite, each declared no larger than
    ``max_values`` before it is read; every problem is an :class:`~acoustic_gmm.errors.ArchiveError`
    naming the file and the field.
    """
    import h5py

    path = Path(path)
    where = str(path)
    with open_h5(path, content) as f:
        try:
            metadata = checked_json(f, "metadata", where, ArchiveError, dict, {})
            groups = {}
            for name in ("arrays", "texts"):
                if name not in f or not isinstance(f[name], h5py.Group):
                    raise ArchiveError(f"{path}: damaged {KINDS[content]} (no {name} group)")
                groups[name] = f[name]
            arrays = {}
            for key in list(groups["arrays"]):
                ds = checked_dataset(groups["arrays"], key, f"{where}: arrays", ArchiveError, ndim=(0, 1, 2, 3),
                              max_values=max_values)
                values = checked_values(ds, f"{where}: arrays", ArchiveError,
                                 np.int64 if ds.dtype.kind in "iu" else np.float64)
                if not np.isfinite(values).all():
                    raise ArchiveError(f"{path}: array '{key}' holds NaN or inf")
                if np.abs(values).max(initial=0) > MAX_PARAMETER:
                    raise ArchiveError(f"{path}: array '{key}' holds values beyond {MAX_PARAMETER:g}: the file is damaged")
                arrays[key] = values
            texts = {key: checked_texts(checked_dataset(groups["texts"], key, f"{where}: texts", ArchiveError, ndim=(1,),
                                          kinds="OS", max_values=1 << 40), f"{where}: texts", ArchiveError)
                     for key in list(groups["texts"])}
        except LOADER_ERRORS as exc:
            if isinstance(exc, ArchiveError):
                raise
            raise ArchiveError(f"{path}: damaged {KINDS[content]} ({type(exc).__name__}: {exc})") from None
    return arrays, texts, metadata


def write_speaker_arrays(path, speakers: dict, *, ubm_id: str, adapt: str, relevance: float,
                  metadata: dict | None = None) -> None:
    """Write speaker models, with the identifier of the UBM they were adapted from.

    ``speakers`` is ``{name: {"means": (n_components, n_features), and optionally "weights",
    "variances", "occupancy", "n_frames"}}``.
    """
    with atomic_h5(path) as f:
        f.attrs.update(format_version=FORMAT_VERSION, content="speakers", ubm_id=ubm_id, adapt=adapt,
                       relevance=relevance, metadata=json.dumps(metadata or {}))
        for name, arrays in speakers.items():
            g = f.create_group(f"speakers/{name}")
            g.attrs["n_frames"] = int(arrays.get("n_frames", 0))
            for key in SPEAKER_ARRAYS:
                if arrays.get(key) is not None:
                    g.create_dataset(key, data=arrays[key])


def read_speaker_arrays(path) -> tuple[dict, dict]:
    """Read and check a speaker file: ``({name: {array name: array, "n_frames": int}}, attributes)``.

    Checked like model files: declared shapes within limits and agreeing across speakers before
    anything is read, finite values within range, positive variances, weights summing to one, and
    the attributes' types (``ubm_id`` and ``adapt`` text, ``relevance`` a number, ``metadata`` a
    JSON object).  Every problem is an :class:`~acoustic_gmm.errors.ArchiveError` naming the file.
    """
    import h5py

    path = Path(path)
    where = str(path)
    with open_h5(path, "speakers") as f:
        try:
            missing = [k for k in ("ubm_id", "adapt", "relevance", "metadata") if k not in f.attrs]
            if missing or "speakers" not in f or not isinstance(f["speakers"], h5py.Group):
                raise ArchiveError(f"{path}: damaged speaker model file (missing {missing or ['speakers']})")
            info = {}
            for k in list(f.attrs):  # not attrs.items(): see load_models
                v = f.attrs[k]
                info[k] = v.item() if isinstance(v, np.generic) or (isinstance(v, np.ndarray) and v.size == 1) else v
            info.update(ubm_id=checked_attr(f, "ubm_id", where, ArchiveError, "str"),
                        adapt=checked_attr(f, "adapt", where, ArchiveError, "str"),
                        relevance=checked_attr(f, "relevance", where, ArchiveError, "number"))
            checked_json(f, "metadata", where, ArchiveError, dict)  # its users parse it: it must be an object
            if info["relevance"] < 0:
                raise ArchiveError(f"{path}: attribute 'relevance' is {info['relevance']}, expected >= 0")
            speakers, shape = {}, None
            group = f["speakers"]
            for name in list(group):  # not items(): see load_models
                g, here = group[name], f"{path}: speaker {name!r}"
                if not isinstance(g, h5py.Group):
                    raise ArchiveError(f"{here}: is a dataset, expected a group of arrays")
                ds = {k: checked_dataset(g, k, here, ArchiveError, ndim=(2,) if k in ("means", "variances") else (1,))
                      for k in SPEAKER_ARRAYS if k in g or k == "means"}
                if shape is None:  # the first speaker's means set the shape all must have
                    shape = ds["means"].shape
                    if not (1 <= shape[0] <= MAX_COMPONENTS and 1 <= shape[1] <= MAX_FEATURES):
                        raise ArchiveError(f"{here}: means have shape {shape}, expected 1 to {MAX_COMPONENTS} "
                                           f"components of 1 to {MAX_FEATURES} features")
                want = {"means": shape, "variances": shape, "weights": shape[:1], "occupancy": shape[:1]}
                for key, d in ds.items():  # declared shapes, before reading
                    if d.shape != want[key]:
                        raise ArchiveError(f"{here}: {key} have shape {d.shape}, expected {want[key]}")
                arrays = {k: checked_values(d, here, ArchiveError) for k, d in ds.items()}
                n_frames = checked_attr(g, "n_frames", here, ArchiveError, "int", 0)
                if n_frames < 0:
                    raise ArchiveError(f"{here}: attribute 'n_frames' is {n_frames}, expected >= 0")
                arrays["n_frames"] = n_frames
                speakers[name] = arrays
        except LOADER_ERRORS as exc:
            if isinstance(exc, ArchiveError):
                raise
            raise ArchiveError(f"{path}: damaged speaker model file ({type(exc).__name__}: {exc})") from None
    if not speakers:
        raise ArchiveError(f"{path}: holds no speakers")
    for name, a in speakers.items():
        _check_speaker(path, name, a, shape)
    return speakers, info


def _check_speaker(path, name: str, a: dict, shape: tuple) -> None:
    where = f"{path}: speaker {name!r}"
    if "means" not in a:
        raise ArchiveError(f"{where}: dataset 'means' is missing")
    expected = {"means": shape, "variances": shape, "weights": shape[:1], "occupancy": shape[:1]}
    for key, want in expected.items():
        if key in a and (len(shape) != 2 or a[key].shape != want):
            raise ArchiveError(f"{where}: {key} have shape {a[key].shape}, expected {want}")
    check_range(where, "means", a["means"], ArchiveError)
    if "variances" in a:
        check_range(where, "variances", a["variances"], ArchiveError, positive=True)
    if "weights" in a:
        check_weights(where, a["weights"], ArchiveError)
    if "occupancy" in a:
        occ = a["occupancy"]
        if not np.isfinite(occ).all() or (occ < 0).any():
            raise ArchiveError(f"{where}: occupancy must be finite and non-negative")


# --------------------------------------------------------------------------- storage

def save_speakers(path, speakers: dict[str, Enrolled], ubm: DiagGMM, *, adapt: str, relevance: float,
                  metadata: dict | None = None) -> None:
    """Speaker models in one HDF5 file: only the adapted arrays, plus their UBM's identifier."""
    arrays = {name: {"means": e.means, "weights": e.weights, "variances": e.variances, "occupancy": e.occupancy,
                     "n_frames": e.n_frames} for name, e in speakers.items()}
    write_speaker_arrays(path, arrays, ubm_id=ubm_id(ubm), adapt=adapt, relevance=relevance, metadata=metadata)


def load_speakers(path, ubm: DiagGMM | None = None) -> tuple[dict[str, Enrolled], dict]:
    """Read speaker models; with ``ubm``, check they were adapted from it (and fit its shape)."""
    arrays, info = read_speaker_arrays(path)
    speakers = {name: Enrolled(**a) for name, a in arrays.items()}
    if ubm is not None:
        require_ubm(path, info, ubm)
        shape = next(iter(speakers.values())).means.shape  # all speakers share it (checked when read)
        if shape != ubm.means.shape:  # an identifier can be copied; the shapes must fit the UBM too
            raise ArchiveError(f"{path}: speaker means have shape {shape}, the UBM's {ubm.means.shape}")
    return speakers, info


def require_ubm(path, info: dict, ubm: DiagGMM) -> None:
    """Raise unless the speakers described by ``info`` (from :func:`load_speakers`) were adapted from ``ubm``."""
    if info["ubm_id"] != ubm_id(ubm):
        raise ArchiveError(f"{path}: speakers were adapted from UBM {info['ubm_id']}, not from the given UBM "
                           f"{ubm_id(ubm)}")
