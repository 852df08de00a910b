"""Every file acoustic_gmm writes or reads in HDF5: feature archives, model files, speaker files.

All of them are self-describing (a ``content`` and a ``format_version`` attribute), opened and
checked by one function (:func:`open_h5`), written to a temporary file beside the target and
renamed into place (:func:`atomic_h5`), so a crash never leaves a half-written file where a good
one was, and read defensively: every way a file can be wrong is an error naming the file.

Feature archive layout (``content="features"``, ``format_version`` 2)::

    /                      attrs: format_version, content="features", config (MfccConfig JSON),
                                  sample_rate, skipped (JSON list of [utt, path, reason])
    /frames                float32 (n_frames_total, n_features), chunked: every utterance's frames,
                           one after the other
    /index/ids, labels, speakers, n_frames, offsets    one entry per utterance: its rows are
                           frames[offset:offset + n_frames]
    /manifest/<table>      the source data directory's tables as text; attr data_dir

Format 1 (before acoustic_gmm stored frames contiguously) had ``/utterances/<utt>``, one dataset
per utterance, and no ``offsets``; it is read transparently (slower to stream: a read per utterance).

Model file layout (``content="models"``)::

    /                      attrs: format_version, content="models", metadata (JSON text)
    /models/<name>/        attrs: covariance_type, dtype
        weights            (n_components,)       float64
        means              (n_components, n_features)     float64
        covariances        (n_components, n_features) diag or (n_components, n_features, n_features) full
    /arrays/<key>          optional constants that travel with the models (a front end's filter bank)

Speaker file layout (``content="speakers"``: MAP-adapted speakers, only what was adapted)::

    /                      attrs: format_version, content="speakers", ubm_id, adapt, relevance, metadata
    /speakers/<name>/      attrs: n_frames
        means (n_components, n_features); weights (n_components,), variances, occupancy (optional)

Extraction shards (``content="shard"``, in ``OUT.partial/``): one batch of utterances,
``ids``, ``n_frames`` and the concatenated ``feats``, with the batch's problems.

A file holds one model or a named set (one per class).  ``metadata`` is free-form JSON:
the estimator's hyper-parameters, the feature configuration a model set was trained on.
"""

from __future__ import annotations

import contextlib
import json
import mmap
import os
from collections import Counter, deque
from pathlib import Path

import numpy as np

from .errors import ArchiveError, DataError, ModelFileError, ParameterError
from .gmm import make_model
from .h5probe import probe
from .outputs import atomic_path

__all__ = ["FORMAT_VERSION", "FEATURES_VERSION", "atomic_h5", "write_text", "open_h5", "file_kind", "save_models",
           "load_models",
           "load_arrays", "write_json", "opened", "save_speakers", "load_speakers", "write_shard", "read_shard",
           "write_features", "convert_archive", "save_bundle", "load_bundle",
           "FeatureArchive", "ArchiveSubset", "describe", "format_description"]

FORMAT_VERSION = 1     # model, speaker and shard files
FEATURES_VERSION = 2   # feature archives: 2 stores frames contiguously; 1 (one dataset per utterance) is still read
VERSIONS = {"features": FEATURES_VERSION}
CHUNK_ROWS = 2048      # HDF5 chunk of /frames: ~0.5 MB at 60 features, so an utterance's read touches one or two
WRITE_ROWS = 1 << 16   # frames buffered before an append to /frames
MAPPED_BYTES = 256 << 20  # streaming: frames kept mapped (clean page cache, counted in RSS) before unmapping
GAP_ROWS = 4096        # ranges closer than this are fetched by one read (reading the gap costs less than a call)
SPAN_ROWS = 1 << 18    # ... but no single read spans more: bounded read buffers
DIRECT_ROWS = 1 << 14  # reads this large go straight into their destination
WEIGHT_SUM_TOL = 1e-6


@contextlib.contextmanager
def atomic_h5(path, tmp_dir=None):
    """Open a temporary HDF5 file (beside ``path``, or in ``tmp_dir`` on the same file system);
    rename it onto ``path`` only on success (see :func:`acoustic_gmm.outputs.atomic_path`)."""
    import h5py

    with atomic_path(path, tmp_dir=tmp_dir) as tmp, h5py.File(tmp, "w") as f:
        yield f


def write_text(path, text: str) -> None:
    """Write a text file (scores, metrics, tables) atomically: a temporary file renamed into place."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)


def write_json(path, obj) -> None:
    """Write ``obj`` as indented JSON, atomically (metrics, reports)."""
    write_text(path, json.dumps(obj, indent=1))


@contextlib.contextmanager
def opened(archive):
    """A :class:`FeatureArchive` from a path (opened here and closed after) or an open archive (left open)."""
    if isinstance(archive, FeatureArchive):
        yield archive
        return
    with FeatureArchive(archive) as fa:
        yield fa


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


KINDS = {"features": "feature archive", "models": "model file", "speakers": "speaker model file",
         "shard": "extraction shard", "ivector-extractor": "i-vector extractor", "ivectors": "i-vector file",
         "backend": "i-vector back end"}


def open_h5(path, content: str | None = None):
    """Open ``path`` read-only and check it is the acoustic_gmm file ``content`` says it is.

    ``content`` is ``"features"``, ``"models"``, ``"speakers"``, ``"shard"`` or None (any HDF5
    file).  Every way this can fail is an :class:`~acoustic_gmm.errors.ArchiveError` naming the
    file (:class:`~acoustic_gmm.errors.ModelFileError` for model files): missing, a folder, not
    HDF5, truncated, another kind of file, a ``format_version`` newer than this code.
    """
    import h5py

    error = ModelFileError if content == "models" else ArchiveError
    what = KINDS.get(content, "file")
    path = Path(path)
    if not path.exists():
        raise error(f"{path}: no such file")
    if path.is_dir():
        raise error(f"{path}: is a folder, not a {what}")
    try:
        is_hdf5 = h5py.is_hdf5(path)
    except OSError as exc:  # unreadable (permissions ...)
        raise error(f"{path}: cannot be read ({exc})") from None
    if not is_hdf5:
        raise error(f"{path}: not an HDF5 file (wrong signature); expected an acoustic_gmm {what}")
    probe(path, error)  # a damaged file can hang libhdf5 itself: find out in a child process first
    try:
        f = h5py.File(path, "r")
    except (OSError, ValueError, RuntimeError) as exc:
        raise error(f"{path}: cannot be read as HDF5, the file is truncated or corrupt ({exc})") from None
    if content is None:
        return f
    try:
        # read as text and number with their types checked: a damaged or foreign file may hold anything here
        found = _attr(f, "content", str(path), error, "str", None)
        version = _attr(f, "format_version", str(path), error, "int", None)
        if found != content or version is None:
            holds = f" (it holds {found})" if found in KINDS else " (no format_version/content attributes)"
            raise error(f"{path}: an HDF5 file but not an acoustic_gmm {what}{holds}")
        newest = VERSIONS.get(content, FORMAT_VERSION)
        if version > newest:
            raise error(f"{path}: format_version {version} is newer than this acoustic_gmm understands "
                        f"({newest}); upgrade acoustic_gmm")
        if version < 1:
            raise error(f"{path}: attribute 'format_version' is {version}, expected a version >= 1")
    except BaseException:
        f.close()
        raise
    return f


def file_kind(path) -> str:
    """What an acoustic_gmm HDF5 file holds: ``"features"``, ``"models"``, ``"speakers"`` or one of the
    i-vector bundles (``"ivector-extractor"``, ``"ivectors"``, ``"backend"``)."""
    with open_h5(path) as f:
        kind = _attr(f, "content", str(path), ArchiveError, "str", None)
    if kind not in KINDS or kind == "shard":
        raise ArchiveError(f"{path}: an HDF5 file but not one acoustic_gmm wrote (no 'content' attribute)")
    return str(kind)


# --------------------------------------------------------------------------- checked reads
# Loaders read attributes and datasets through these, so that a damaged or hand-edited file gives an error
# naming the file and the field (never a numpy or h5py exception), and a declared shape is checked before
# any data is read (a dataset declared (10^9, 39) and never written must not allocate 291 GiB).

MAX_COMPONENTS = 1 << 20   # components of one model
MAX_FEATURES = 1 << 13     # feature dimension
MAX_VALUES = 1 << 28       # values in one stored model array (2 GiB of float64)
MAX_PARAMETER = 1e10       # |means|, variances and covariances: beyond, a model is damaged, not trained
MIN_VARIANCE = 1e-30       # diagonal variances: 1 / var must stay finite in float32 scoring
LOADER_ERRORS = (OSError, KeyError, ValueError, TypeError, AttributeError, RuntimeError, IndexError,
                 OverflowError, UnicodeError)  # what h5py and numpy raise on damaged files
_REQUIRED = object()
_KIND_NAMES = {"str": "text", "int": "an integer", "number": "a number"}


def _attr(obj, name: str, where: str, error, kind: str, default=_REQUIRED):
    """Attribute ``name`` of ``obj`` as Python text (``kind="str"``), integer (``"int"``) or finite number
    (``"number"``); ``default`` if absent (required if not given).  Anything else raises ``error``."""
    try:
        if name not in obj.attrs:
            if default is _REQUIRED:
                raise error(f"{where}: attribute '{name}' is missing")
            return default
        value = obj.attrs[name]
    except LOADER_ERRORS as exc:
        if isinstance(exc, error):
            raise
        raise error(f"{where}: attribute '{name}' cannot be read ({type(exc).__name__}: {exc})") from None
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, (np.generic,)):
        value = value.item()
    if isinstance(value, bytes) and kind == "str":
        try:
            value = value.decode()
        except UnicodeDecodeError:
            raise error(f"{where}: attribute '{name}' is not valid UTF-8 text") from None
    ok = {"str": isinstance(value, str),
          "int": isinstance(value, int) and not isinstance(value, bool),
          "number": isinstance(value, (int, float)) and not isinstance(value, bool)}[kind]
    if kind == "number" and ok and not np.isfinite(value):
        raise error(f"{where}: attribute '{name}' is {value}, expected a finite number")
    if not ok:
        shown = f"an array of shape {value.shape}" if isinstance(value, np.ndarray) else repr(value)[:60]
        raise error(f"{where}: attribute '{name}' is {shown}, expected {_KIND_NAMES[kind]}")
    return value


def _json_attr(obj, name: str, where: str, error, expect: type, default=_REQUIRED):
    """Attribute ``name`` holding JSON text of type ``expect`` (dict or list), parsed."""
    text = _attr(obj, name, where, error, "str", default)
    if text is default and default is not _REQUIRED:
        return default
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise error(f"{where}: attribute '{name}' is not valid JSON ({exc})") from None
    if not isinstance(value, expect):
        raise error(f"{where}: attribute '{name}' holds {type(value).__name__} JSON, expected "
                    f"{'an object' if expect is dict else 'a list'}")
    return value


def _dataset(group, key: str, where: str, error, *, ndim: tuple, kinds: str = "fiu", max_values: int = MAX_VALUES):
    """``group[key]`` as an h5py Dataset whose declared type and shape are checked, nothing read yet."""
    import h5py

    try:
        if key not in group:
            raise error(f"{where}: dataset '{key}' is missing")
        ds = group[key]
        if not isinstance(ds, h5py.Dataset):
            raise error(f"{where}: '{key}' is a group, expected a dataset")
        dtype, shape = ds.dtype, ds.shape
        written = ds.size == 0 or ds.id.get_storage_size() > 0
    except LOADER_ERRORS as exc:
        if isinstance(exc, error):
            raise
        raise error(f"{where}: dataset '{key}' cannot be read ({type(exc).__name__}: {exc})") from None
    if dtype.kind not in kinds or (dtype.kind == "O" and h5py.check_string_dtype(dtype) is None):
        want = "text" if kinds == "OS" else "numbers"
        raise error(f"{where}: dataset '{key}' has dtype {dtype}, expected {want}")
    if shape is None or len(shape) not in ndim:
        raise error(f"{where}: dataset '{key}' has shape {shape}, expected {' or '.join(f'{n}-D' for n in ndim)}")
    if int(np.prod(shape, dtype=np.float64)) > max_values:
        raise error(f"{where}: dataset '{key}' is declared with shape {shape}, more than {max_values:,} values: "
                    f"the file is damaged")
    if not written:
        raise error(f"{where}: dataset '{key}' is declared with shape {shape} but was never written")
    return ds


def _values(ds, where: str, error, dtype=np.float64) -> np.ndarray:
    """All of a checked dataset's values (see :func:`_dataset`)."""
    try:
        return np.asarray(ds[()], dtype=dtype)
    except LOADER_ERRORS as exc:
        raise error(f"{where}: dataset '{ds.name.rsplit('/', 1)[-1]}' cannot be read "
                    f"({type(exc).__name__}: {exc})") from None


def _texts(ds, where: str, error):
    """A checked text dataset's values as ``str`` (a list, or one string for a scalar)."""
    values = _values(ds, where, error, None)
    try:
        out = [v.decode() if isinstance(v, bytes) else str(v) for v in values.ravel()]
    except UnicodeDecodeError:
        raise error(f"{where}: dataset '{ds.name.rsplit('/', 1)[-1]}' holds text that is not UTF-8") from None
    return out[0] if values.ndim == 0 else out


def _check_weights(where: str, w: np.ndarray, error, key: str = "weights") -> None:
    """Finite, non-negative, summing to one (each problem said as it is: a negative weight is not a bad sum)."""
    if not np.isfinite(w).all():
        raise error(f"{where}: {key} contain NaN or inf")
    if (w < 0).any():
        raise error(f"{where}: {int((w < 0).sum())} of {key} are negative (smallest {w.min():.6g})")
    if abs(w.sum() - 1.0) > WEIGHT_SUM_TOL:
        raise error(f"{where}: {key} must be non-negative and sum to 1 (sum is {w.sum():.9g})")


def _check_range(where: str, key: str, a: np.ndarray, error, *, positive: bool = False) -> None:
    """Finite and within +-``MAX_PARAMETER`` (and > 0 if ``positive``): 1e300 variances are damage."""
    if not np.isfinite(a).all():
        raise error(f"{where}: {key} contain NaN or inf")
    if positive and (a <= 0).any():
        raise error(f"{where}: {int((a <= 0).sum())} variance(s) are not positive")
    if positive and (a < MIN_VARIANCE).any():  # 1 / var would overflow the scoring constants
        raise error(f"{where}: {int((a < MIN_VARIANCE).sum())} variance(s) are below {MIN_VARIANCE:.0e} "
                    f"(smallest {a.min():.3g})")
    big = np.abs(a) > MAX_PARAMETER
    if big.any():
        raise error(f"{where}: {int(big.sum())} of {key} are beyond {MAX_PARAMETER:.0e} in magnitude "
                    f"(largest {np.abs(a).max():.3g})")


def load_arrays(path) -> dict:
    """The extra arrays stored with :func:`save_models` (empty if there are none)."""
    import h5py

    path = Path(path)
    with open_h5(path, "models") as f:
        try:
            if "arrays" not in f:
                return {}
            group = f["arrays"]
            if not isinstance(group, h5py.Group):
                raise ModelFileError(f"{path}: 'arrays' is a dataset, expected a group of arrays")
            where = f"{path}: arrays"
            return {k: _values(_dataset(group, k, where, ModelFileError, ndim=(0, 1, 2, 3)), where, ModelFileError,
                               None) for k in group}
        except LOADER_ERRORS as exc:
            if isinstance(exc, ModelFileError):
                raise
            raise ModelFileError(f"{path}: damaged model file ({type(exc).__name__}: {exc})") from None


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
            metadata = _json_attr(f, "metadata", str(path), ModelFileError, dict, {})
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


def _config_features(path, metadata: dict) -> int | None:
    """The feature dimension the metadata's ``feature_config`` gives (None without one): models must match it."""
    from .features import MfccConfig

    cfg = metadata.get("feature_config")
    if cfg is None:
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
    w_ds = _dataset(g, "weights", where, ModelFileError, ndim=(1,))
    mu_ds = _dataset(g, "means", where, ModelFileError, ndim=(2,))
    cov_ds = _dataset(g, "covariances", where, ModelFileError, ndim=(2, 3))
    ctype = _attr(g, "covariance_type", where, ModelFileError, "str", "")
    dtype = _attr(g, "dtype", where, ModelFileError, "str", "float32")
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
    w, mu, cov = (_values(ds, where, ModelFileError) for ds in (w_ds, mu_ds, cov_ds))
    _check_weights(where, w, ModelFileError)
    _check_range(where, "means", mu, ModelFileError)
    _check_range(where, "covariances", cov, ModelFileError, positive=ctype == "diag")
    try:
        return make_model(ctype, w, mu, cov, dtype)
    except np.linalg.LinAlgError:
        raise ModelFileError(f"{where}: a covariance matrix is not positive definite") from None


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
            metadata = _json_attr(f, "metadata", where, ArchiveError, dict, {})
            groups = {}
            for name in ("arrays", "texts"):
                if name not in f or not isinstance(f[name], h5py.Group):
                    raise ArchiveError(f"{path}: damaged {KINDS[content]} (no {name} group)")
                groups[name] = f[name]
            arrays = {}
            for key in list(groups["arrays"]):
                ds = _dataset(groups["arrays"], key, f"{where}: arrays", ArchiveError, ndim=(0, 1, 2, 3),
                              max_values=max_values)
                values = _values(ds, f"{where}: arrays", ArchiveError,
                                 np.int64 if ds.dtype.kind in "iu" else np.float64)
                if not np.isfinite(values).all():
                    raise ArchiveError(f"{path}: array '{key}' holds NaN or inf")
                if np.abs(values).max(initial=0) > MAX_PARAMETER:
                    raise ArchiveError(f"{path}: array '{key}' holds values beyond {MAX_PARAMETER:g}: the file is damaged")
                arrays[key] = values
            texts = {key: _texts(_dataset(groups["texts"], key, f"{where}: texts", ArchiveError, ndim=(1,),
                                          kinds="OS", max_values=1 << 40), f"{where}: texts", ArchiveError)
                     for key in list(groups["texts"])}
        except LOADER_ERRORS as exc:
            if isinstance(exc, ArchiveError):
                raise
            raise ArchiveError(f"{path}: damaged {KINDS[content]} ({type(exc).__name__}: {exc})") from None
    return arrays, texts, metadata


def save_speakers(path, speakers: dict, *, ubm_id: str, adapt: str, relevance: float,
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


def load_speakers(path) -> tuple[dict, dict]:
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
            info.update(ubm_id=_attr(f, "ubm_id", where, ArchiveError, "str"),
                        adapt=_attr(f, "adapt", where, ArchiveError, "str"),
                        relevance=_attr(f, "relevance", where, ArchiveError, "number"))
            _json_attr(f, "metadata", where, ArchiveError, dict)  # its users parse it: it must be an object
            if info["relevance"] < 0:
                raise ArchiveError(f"{path}: attribute 'relevance' is {info['relevance']}, expected >= 0")
            speakers, shape = {}, None
            group = f["speakers"]
            for name in list(group):  # not items(): see load_models
                g, here = group[name], f"{path}: speaker {name!r}"
                if not isinstance(g, h5py.Group):
                    raise ArchiveError(f"{here}: is a dataset, expected a group of arrays")
                ds = {k: _dataset(g, k, here, ArchiveError, ndim=(2,) if k in ("means", "variances") else (1,))
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
                arrays = {k: _values(d, here, ArchiveError) for k, d in ds.items()}
                n_frames = _attr(g, "n_frames", here, ArchiveError, "int", 0)
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
    _check_range(where, "means", a["means"], ArchiveError)
    if "variances" in a:
        _check_range(where, "variances", a["variances"], ArchiveError, positive=True)
    if "weights" in a:
        _check_weights(where, a["weights"], ArchiveError)
    if "occupancy" in a:
        occ = a["occupancy"]
        if not np.isfinite(occ).all() or (occ < 0).any():
            raise ArchiveError(f"{where}: occupancy must be finite and non-negative")


# --------------------------------------------------------------------------- extraction shards

def write_shard(path, ids: list, feats: list, *, n_features: int, problems: list, audio_seconds: float) -> None:
    """One extracted batch, atomically: its utterances' frames concatenated, and what went wrong."""
    import h5py

    with atomic_h5(path) as f:
        f.attrs.update(format_version=FORMAT_VERSION, content="shard", problems=json.dumps(problems),
                       audio_seconds=audio_seconds)
        f.create_dataset("ids", data=np.array(ids, dtype=object), dtype=h5py.string_dtype())
        f.create_dataset("n_frames", data=np.array([len(x) for x in feats], dtype=np.int64))
        f.create_dataset("feats", data=np.concatenate(feats) if feats else np.zeros((0, n_features), np.float32))


def read_shard(path) -> tuple[list, float, list]:
    """``(problems, audio_seconds, [(utt, frames), ...])`` of a shard written by :func:`write_shard`.

    Checked before the frames are read: text ids, one non-negative count per id, counts adding up
    to the stored frames; any damage is an :class:`~acoustic_gmm.errors.ArchiveError` naming the file.
    """
    path = Path(path)
    where = str(path)
    with open_h5(path, "shard") as f:
        try:
            problems = _json_attr(f, "problems", where, ArchiveError, list)
            if not all(isinstance(p, list) for p in problems):
                raise ArchiveError(f"{path}: attribute 'problems' must be a JSON list of lists")
            seconds = float(_attr(f, "audio_seconds", where, ArchiveError, "number"))
            ids_ds = _dataset(f, "ids", where, ArchiveError, ndim=(1,), kinds="OS", max_values=1 << 31)
            n_ds = _dataset(f, "n_frames", where, ArchiveError, ndim=(1,), kinds="iu", max_values=1 << 31)
            feats_ds = _dataset(f, "feats", where, ArchiveError, ndim=(2,), kinds="f", max_values=1 << 40)
            if ids_ds.shape != n_ds.shape:
                raise ArchiveError(f"{path}: {len(ids_ds)} ids but {len(n_ds)} frame counts")
            counts = _values(n_ds, where, ArchiveError, np.int64)
            if (counts < 0).any() or counts.sum() != feats_ds.shape[0]:
                raise ArchiveError(f"{path}: frame counts (total {int(counts.sum())}) do not match the "
                                   f"{feats_ds.shape[0]} stored frames")
            feats, pos, utterances = _values(feats_ds, where, ArchiveError, np.float32), 0, []
            for utt, n in zip(_values(ids_ds, where, ArchiveError, None), counts):
                utterances.append((utt.decode() if isinstance(utt, bytes) else str(utt), feats[pos:pos + n]))
                pos += n
        except LOADER_ERRORS as exc:
            if isinstance(exc, ArchiveError):
                raise
            raise ArchiveError(f"{path}: damaged extraction shard ({type(exc).__name__}: {exc})") from None
    return [tuple(p) for p in problems], seconds, utterances


# --------------------------------------------------------------------------- feature archives

def write_features(path, utterances, *, config, sample_rate: int, manifest: dict | None = None,
                   skipped=(), data_dir: str = "", tmp_dir=None) -> int:
    """Write a feature archive (format 2) atomically from ``(utt, frames, label, speaker)`` tuples.

    Frames are appended, in the order given, to one float32 dataset ``/frames``
    (n_frames_total, n_features); the index records each utterance's offset and length.
    ``label``/``speaker`` may be None.  ``manifest`` maps table names to their text.
    ``skipped`` (``(utt, path, reason)`` tuples) is read after ``utterances`` is exhausted,
    so both may be filled as the utterances are produced.  Returns the number of utterances.

    Examples
    --------
    ::

        write_features("feats.h5", [("u1", X1, "7", "ann"), ("u2", X2, "3", "bob")],
                       config=MfccConfig(), sample_rate=8000)
    """
    import h5py

    D = config.n_features
    ids, labels, speakers, counts, seen = [], [], [], [], set()
    with atomic_h5(path, tmp_dir) as f:
        f.attrs.update(format_version=FEATURES_VERSION, content="features", config=config.to_json(),
                       sample_rate=int(sample_rate))
        data = f.create_dataset("frames", shape=(0, D), maxshape=(None, D), dtype=np.float32,
                                chunks=(CHUNK_ROWS, D))
        pending, n_pending = [], 0

        def flush():  # large appends: one resize per block of frames, not per utterance
            nonlocal n_pending
            if n_pending:
                end = len(data)
                data.resize(end + n_pending, axis=0)
                data[end:] = np.concatenate(pending)
                pending.clear()
                n_pending = 0

        for utt, frames, label, speaker in utterances:
            frames = np.asarray(frames, dtype=np.float32)
            if frames.ndim != 2 or frames.shape[1] != D:
                raise DataError(f"utterance {utt!r}: frames of shape {frames.shape}, expected (n, {D})")
            if utt in seen:
                raise DataError(f"utterance id {utt!r} occurs twice")
            seen.add(utt)
            pending.append(frames)
            n_pending += len(frames)
            if n_pending >= WRITE_ROWS:
                flush()
            ids.append(utt)
            labels.append("" if label is None else label)
            speakers.append("" if speaker is None else speaker)
            counts.append(len(frames))
        flush()
        f.attrs["skipped"] = json.dumps([list(map(str, s)) for s in skipped])
        index = f.create_group("index")
        text = h5py.string_dtype()
        index.create_dataset("ids", data=np.array(ids, dtype=object), dtype=text)
        index.create_dataset("labels", data=np.array(labels, dtype=object), dtype=text)
        index.create_dataset("speakers", data=np.array(speakers, dtype=object), dtype=text)
        counts = np.array(counts, dtype=np.int64)
        index.create_dataset("n_frames", data=counts)
        index.create_dataset("offsets", data=np.cumsum(counts) - counts)
        m = f.create_group("manifest")
        m.attrs["data_dir"] = str(data_dir)
        for name, content in (manifest or {}).items():
            m.create_dataset(name, data=content, dtype=text)
    return len(ids)


def _groups(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Where to cut sorted row ranges into reads: a new read after a gap of more than ``GAP_ROWS`` rows or at
    a ``SPAN_ROWS`` boundary (so no read buffer outgrows it).  Returns the first range of each read."""
    gap = starts[1:] - np.maximum.accumulate(ends)[:-1] > GAP_ROWS
    window = starts[1:] // SPAN_ROWS != starts[:-1] // SPAN_ROWS
    return np.concatenate([[0], np.flatnonzero(gap | window) + 1])


class FeatureArchive:
    """Read access to a feature archive; use as a context manager or call :meth:`close`.

    Reads are planned over the stored rows: an utterance, a label's or speaker's utterances, a
    subset or the next block of frames are one or a few large reads (nearby ranges are read
    together), in format 2.  Format 1 archives (one dataset per utterance, acoustic_gmm before
    format 2) are read transparently through the same methods, one dataset at a time; ``acoustic-gmm
    convert OLD NEW`` rewrites one in format 2.

    Examples
    --------
    ::

        with FeatureArchive("feats.h5") as fa:
            X = fa.frames(fa.ids_where(label="7"))   # all frames of digit 7
            for chunk in fa.iter_chunks(65536):      # stream, never all in memory
                ...
    """

    reuses_buffers = True  # iter_chunks(..., reuse=N) is supported (em.accumulate asks for it)

    def __init__(self, path):
        import h5py

        from .features import MfccConfig

        self.path = Path(path)
        self._f = open_h5(self.path, "features")
        try:
            # Everything the reading methods rely on is checked here, from the declarations and the (small)
            # index, so that a damaged archive is one ArchiveError naming the field, not a failure later.
            f, where = self._f, str(self.path)
            self.format_version = _attr(f, "format_version", where, ArchiveError, "int")
            body = "frames" if self.format_version >= 2 else "utterances"
            if "index" not in f or body not in f or not isinstance(f["index"], h5py.Group):
                raise ArchiveError(f"{self.path}: damaged feature archive (no index or {body})")
            try:
                self.config = MfccConfig.from_json(_attr(f, "config", where, ArchiveError, "str"))
            except ParameterError as exc:
                raise ArchiveError(f"{self.path}: attribute 'config': {exc}") from None
            self.sample_rate = _attr(f, "sample_rate", where, ArchiveError, "int")
            if self.sample_rate <= 0:
                raise ArchiveError(f"{self.path}: attribute 'sample_rate' is {self.sample_rate}, expected > 0")
            self.skipped = _json_attr(f, "skipped", where, ArchiveError, list, [])
            if not all(isinstance(x, list) and len(x) == 3 for x in self.skipped):
                raise ArchiveError(f"{self.path}: attribute 'skipped' must be a JSON list of [utt, path, reason]")
            idx, here = f["index"], f"{self.path}: index"
            declared = {k: _dataset(idx, k, here, ArchiveError, ndim=(1,), kinds="OS", max_values=1 << 40)
                        for k in ("ids", "labels", "speakers")}
            declared["n_frames"] = _dataset(idx, "n_frames", here, ArchiveError, ndim=(1,), kinds="iu",
                                            max_values=1 << 40)
            if self.format_version >= 2:
                declared["offsets"] = _dataset(idx, "offsets", here, ArchiveError, ndim=(1,), kinds="iu",
                                               max_values=1 << 40)
            n_utts = declared["ids"].shape[0]
            for key, ds in declared.items():
                if ds.shape[0] != n_utts:
                    raise ArchiveError(f"{here}: dataset '{key}' has {ds.shape[0]} entries, 'ids' has {n_utts}")
            self.ids = _texts(declared["ids"], here, ArchiveError)
            if len(set(self.ids)) != len(self.ids):
                twice = next(u for u, c in Counter(self.ids).items() if c > 1)
                raise ArchiveError(f"{here}: utterance id {twice!r} occurs more than once in 'ids'")
            self.labels = dict(zip(self.ids, _texts(declared["labels"], here, ArchiveError)))
            self.speakers = dict(zip(self.ids, _texts(declared["speakers"], here, ArchiveError)))
            counts = _values(declared["n_frames"], here, ArchiveError, np.int64)
            if (counts < 0).any():
                raise ArchiveError(f"{here}: dataset 'n_frames' holds negative frame counts")
            self.n_frames = dict(zip(self.ids, counts.tolist()))
            if "manifest" not in f or not isinstance(f["manifest"], h5py.Group):
                raise ArchiveError(f"{self.path}: damaged feature archive (no manifest group)")
            here = f"{self.path}: manifest"
            self.manifest = {k: _texts(_dataset(f["manifest"], k, here, ArchiveError, ndim=(0,), kinds="OS"), here,
                                       ArchiveError) for k in f["manifest"]}
            self.data_dir = _attr(f["manifest"], "data_dir", here, ArchiveError, "str", "")
            if self.format_version >= 2:
                offsets = _values(declared["offsets"], f"{self.path}: index", ArchiveError, np.int64)
                self._data = _dataset(f, "frames", where, ArchiveError, ndim=(2,), kinds="f", max_values=1 << 62)
                if self._data.ndim != 2 or self._data.shape[1] != self.n_features:
                    raise ArchiveError(f"{self.path}: frames have shape {self._data.shape}, the configuration "
                                       f"says {self.n_features} features")
                if len(offsets) != len(self.ids) or len(counts) != len(self.ids) or (
                        len(offsets) and ((offsets < 0).any() or (offsets + counts).max() > len(self._data))):
                    raise ArchiveError(f"{self.path}: damaged feature archive (the index points outside the "
                                       f"{len(self._data)} stored frames)")
            else:  # format 1: positions in the utterances' concatenation, in archive order
                offsets = np.cumsum(counts) - counts
                self._data, self._v1_starts = f["utterances"], offsets
                if not isinstance(self._data, h5py.Group):
                    raise ArchiveError(f"{self.path}: 'utterances' is a dataset, expected a group")
                here = f"{self.path}: utterances"
                for u in self.ids:  # one dataset per utterance: each must be there, of its indexed shape
                    ds = _dataset(self._data, u, here, ArchiveError, ndim=(2,), kinds="f", max_values=1 << 40)
                    if ds.shape != (self.n_frames[u], self.n_features):
                        raise ArchiveError(f"{here}: dataset '{u}' has shape {ds.shape}, the index and "
                                           f"configuration say {(self.n_frames[u], self.n_features)}")
            self._offset = dict(zip(self.ids, offsets.tolist()))
            self._rings = {}
            # stored in archive order with no gaps (what write_features makes): the archive's frames are
            # one range of stored rows, starting at _base
            self._base = int(offsets[0]) if len(offsets) else 0
            self._in_order = bool(np.array_equal(offsets - self._base, np.cumsum(counts) - counts))
            self._chunks = self._map_chunks() if self.format_version >= 2 else None
        except LOADER_ERRORS as exc:
            self._f.close()
            if isinstance(exc, ArchiveError):
                raise
            raise ArchiveError(f"{self.path}: damaged feature archive ({type(exc).__name__}: {exc})") from None
        except BaseException:
            self._f.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        if getattr(self, "_chunks", None) is not None:
            os.close(self._chunks[2])
            if self._chunks[4] is not None:
                try:
                    self._chunks[4].close()
                except BufferError:  # blocks still viewing it keep the mapping alive until they go
                    pass
            self._chunks = None
        self._f.close()

    def _view(self, start: int, stop: int):
        """Stored rows ``[start, stop)`` as a view of the mapped file, or None if they are not one span of bytes."""
        if self._chunks is None or self._chunks[4] is None or stop <= start:
            return None
        rows, offsets, _, run, mapped = self._chunks
        c0, c1 = start // rows, (stop - 1) // rows
        if run[c0] != run[c1]:
            return None
        D = self.n_features
        first = offsets[c0] + (start - c0 * rows) * 4 * D
        return np.frombuffer(mapped, np.float32, count=(stop - start) * D, offset=first).reshape(stop - start, D)

    def _release(self, block: np.ndarray) -> None:
        """Drop the mapped pages under ``block`` (a view from :meth:`_view`) from this process: reading
        them again maps them again from the page cache, so the resident size stays a few blocks."""
        mapped = self._chunks[4] if self._chunks is not None else None
        if mapped is None or not hasattr(mapped, "madvise"):
            return
        base = np.frombuffer(mapped, np.uint8, count=1).ctypes.data
        lo = block.ctypes.data - base
        hi = lo + block.nbytes
        lo = -(-lo // mmap.PAGESIZE) * mmap.PAGESIZE  # whole pages inside the block only
        hi = hi // mmap.PAGESIZE * mmap.PAGESIZE
        if hi > lo:
            mapped.madvise(mmap.MADV_DONTNEED, lo, hi - lo)

    def __len__(self) -> int:
        return len(self.ids)

    def _map_chunks(self):
        """``(rows per chunk, byte offset of each chunk, file descriptor)``, or None.

        h5py's chunked reads cost about three memory copies' worth of CPU per byte, and EM streaming an
        archive reads all of it on every pass; a plain, unfiltered chunk is just bytes at a known offset, so
        its rows are read straight into place with ``os.preadv`` instead (the same numbers, a test checks;
        unlike a memory map, nothing stays mapped to swell the resident size).  Any other layout (filters,
        another driver, a chunk beyond the end of the file, no ``preadv``) is left to h5py.
        """
        d = self._data
        try:
            rows, width = d.chunks or (0, 0)
            if (not rows or width != d.shape[1] or d.dtype != np.dtype("<f4") or self._f.driver != "sec2"
                    or d.id.get_create_plist().get_nfilters() or not hasattr(os, "preadv")):
                return None
            info = sorted((d.id.get_chunk_info(i) for i in range(d.id.get_num_chunks())),
                          key=lambda c: c.chunk_offset[0])
            size = rows * width * 4
            if (not info or [c.chunk_offset[0] for c in info] != list(range(0, len(d), rows))
                    or any(c.size != size or c.filter_mask for c in info)):
                return None
            fd = os.open(self.path, os.O_RDONLY)
            if max(c.byte_offset for c in info) + size > os.fstat(fd).st_size:
                os.close(fd)
                return None
            offsets = np.array([c.byte_offset for c in info], np.int64)
            # chunks stored back to back form runs: rows within one run are one contiguous span of bytes
            run = np.maximum.accumulate(np.where(np.r_[True, np.diff(offsets) != size], np.arange(len(info)), 0))
            try:  # private (copy-on-write) mapping: writable arrays for the kernels, the file never touched
                mapped = mmap.mmap(fd, 0, access=mmap.ACCESS_COPY)
            except (OSError, ValueError):
                mapped = None
            return rows, offsets.tolist(), fd, run, mapped
        except (AttributeError, OSError, ValueError, RuntimeError):  # an h5py without chunk queries ...
            return None

    def __contains__(self, utt) -> bool:
        return utt in self.n_frames

    @property
    def n_features(self) -> int:
        return self.config.n_features

    @property
    def n_frames_total(self) -> int:
        return sum(self.n_frames.values())

    # ------------------------------------------------------------------ reading rows
    def _read(self, start: int, stop: int, out: np.ndarray) -> None:
        """Stored rows ``[start, stop)`` into ``out``: one read in format 2, one per utterance in format 1."""
        if stop <= start:
            return
        if self._chunks is not None and out.flags.c_contiguous:
            rows, offsets, fd = self._chunks[:3]
            row_bytes = 4 * self.n_features
            for c in range(start // rows, (stop - 1) // rows + 1):
                lo, hi = max(start, c * rows), min(stop, (c + 1) * rows)
                into = memoryview(out[lo - start:hi - start]).cast("B")
                if os.preadv(fd, [into], offsets[c] + (lo - c * rows) * row_bytes) != len(into):
                    raise ArchiveError(f"{self.path}: damaged feature archive (a chunk of frames is cut short)")
            return
        try:
            self._read_h5py(start, stop, out)
        except (OSError, ValueError, KeyError) as exc:  # libhdf5 on a damaged file: addresses past its end ...
            raise ArchiveError(f"{self.path}: damaged feature archive (reading stored frames {start} to {stop}: "
                               f"{exc})") from None

    def _read_h5py(self, start: int, stop: int, out: np.ndarray) -> None:
        if self.format_version >= 2:
            if stop - start >= DIRECT_ROWS:  # straight into place: no temporary of this size
                self._data.read_direct(out, source_sel=np.s_[start:stop], dest_sel=np.s_[0:stop - start])
            else:  # h5py's slicing has a fast path; read_direct builds its selections in Python (~0.4 ms)
                out[:stop - start] = self._data[start:stop]
            return
        k = int(np.searchsorted(self._v1_starts, start, side="right")) - 1
        pos = start
        while pos < stop:
            while self.n_frames[self.ids[k]] == 0 or pos >= self._v1_starts[k] + self.n_frames[self.ids[k]]:
                k += 1
            first, last = pos - self._v1_starts[k], min(stop, self._v1_starts[k] + self.n_frames[self.ids[k]])
            self._data[self.ids[k]].read_direct(out, source_sel=np.s_[first:first + last - pos],
                                                dest_sel=np.s_[pos - start:last - start])
            pos = last

    def _copy(self, starts, lengths, out: np.ndarray) -> None:
        """The stored row ranges ``[starts[i], starts[i] + lengths[i])``, concatenated in the order given, into
        ``out``; nearby ranges are fetched by one read."""
        starts, lengths = np.asarray(starts, np.int64), np.asarray(lengths, np.int64)
        dest = np.cumsum(lengths) - lengths
        order = np.argsort(starts, kind="stable")
        s, n, d = starts[order], lengths[order], dest[order]
        cuts = _groups(s, s + n) if len(s) else []
        for a, b in zip(cuts, list(cuts[1:]) + [len(s)]):
            lo, hi = s[a], (s[a:b] + n[a:b]).max()
            if (np.diff(s[a:b]) == n[a:b - 1]).all() and (np.diff(d[a:b]) == n[a:b - 1]).all() \
                    and hi - lo == n[a:b].sum():  # adjacent on disk and in out: read straight into place
                self._read(lo, hi, out[d[a]:d[a] + hi - lo])
                continue
            buf = np.empty((hi - lo, self.n_features), np.float32)
            self._read(lo, hi, buf)
            for s_i, n_i, d_i in zip(s[a:b], n[a:b], d[a:b]):
                out[d_i:d_i + n_i] = buf[s_i - lo:s_i - lo + n_i]

    def _ranges(self, ids) -> tuple[np.ndarray, np.ndarray]:
        return (np.array([self._offset[u] for u in ids], dtype=np.int64),
                np.array([self.n_frames[u] for u in ids], dtype=np.int64))

    def __getitem__(self, utt: str) -> np.ndarray:
        if utt not in self.n_frames:
            raise KeyError(f"{self.path}: no utterance {utt!r}")
        out = np.empty((self.n_frames[utt], self.n_features), np.float32)
        self._read(self._offset[utt], self._offset[utt] + len(out), out)
        return out

    def ids_where(self, label: str | None = None, speaker: str | None = None) -> list[str]:
        """Utterance ids with this label and/or speaker, in archive order."""
        return [u for u in self.ids if (label is None or self.labels[u] == label)
                and (speaker is None or self.speakers[u] == speaker)]

    def by_label(self, label: str) -> dict[str, np.ndarray]:
        ids = self.ids_where(label=label)
        return dict(zip(ids, self.utterances(ids)))

    def by_speaker(self, speaker: str) -> dict[str, np.ndarray]:
        ids = self.ids_where(speaker=speaker)
        return dict(zip(ids, self.utterances(ids)))

    def frames(self, ids=None) -> np.ndarray:
        """All frames of ``ids`` (default: every utterance) concatenated, float32 (n_frames, n_features)."""
        starts, lengths = self._ranges(self.ids if ids is None else ids)
        out = np.empty((int(lengths.sum()), self.n_features), dtype=np.float32)
        self._copy(starts, lengths, out)
        return out

    def utterances(self, ids) -> list[np.ndarray]:
        """The frames of each of ``ids``, in order: views into one array filled by a few large reads."""
        ids = list(ids)
        X = self.frames(ids)
        return np.split(X, np.cumsum([self.n_frames[u] for u in ids])[:-1]) if ids else []

    def check_ids(self, ids) -> list[str]:
        """``ids`` as a list, or :class:`~acoustic_gmm.errors.DataError` naming those not in the archive."""
        ids = list(ids)
        unknown = [u for u in ids if u not in self.n_frames]
        if unknown:
            raise DataError(f"{len(unknown)} listed utterance(s) are not in {self.path}: {', '.join(unknown[:5])}"
                            + (", ..." if len(unknown) > 5 else ""))
        return ids

    def subset(self, ids) -> "ArchiveSubset":
        """The frames of utterances ``ids`` only, as a frame source (streamed, nothing loaded)."""
        return ArchiveSubset(self, self.check_ids(ids))

    def rows(self, index, ids=None) -> np.ndarray:
        """Frames at positions ``index`` among the frames of ``ids`` (default all, in archive order); only
        the stored rows near them are read."""
        index = np.asarray(index, dtype=np.int64)
        starts, lengths = self._ranges(self.ids if ids is None else ids)
        ends = np.cumsum(lengths)
        owner = np.searchsorted(ends, index, side="right")
        if len(index) and (index.min() < 0 or owner.max() >= len(lengths)):
            raise ParameterError(f"row positions must lie in [0, {int(ends[-1]) if len(ends) else 0})")
        stored = starts[owner] + index - (ends - lengths)[owner]
        out = np.empty((len(index), self.n_features), dtype=np.float32)
        self._copy(stored, np.ones(len(index), np.int64), out)
        return out

    def iter_chunks(self, chunk_frames: int = 65536, ids=None, *, reuse: int = 0):
        """Frames in blocks of ``chunk_frames`` (the last may be shorter), in the order of ``ids`` (default:
        the archive's).  Blocks cross utterance boundaries; each is filled by a few large reads.

        Each block is a new array, unless ``reuse`` > 0: then a block is valid only until ``reuse`` more
        blocks have been taken, and the caller must be done with it by then.  A streaming EM pass does that,
        and gets blocks without a copy: views of the memory-mapped file (at most ``MAPPED_BYTES`` of it
        stay mapped), or where the layout does not allow it, reads into a ring of ``reuse`` buffers
        (fresh memory would cost a page fault per 4 KiB, as much again as the read).
        """
        if chunk_frames < 1:
            raise ParameterError(f"chunk_frames must be >= 1, got {chunk_frames}")
        in_order = ids is None and self._in_order  # then the blocks are ranges of stored rows
        if in_order:
            total = self.n_frames_total
        else:
            starts, lengths = self._ranges(self.ids if ids is None else ids)
            ends = np.cumsum(lengths)
            total = int(ends[-1]) if len(ends) else 0
        # The ring's buffers outlive the call, so the next pass finds their pages already mapped; the ring is
        # taken out of the archive while in use, so two passes at once never share one.
        ring = self._rings.pop((chunk_frames, reuse), None) or [None] * reuse
        views, mapped = deque(), 0  # blocks handed out as views, oldest first, and their bytes
        try:
            for i, b0 in enumerate(range(0, total, chunk_frames)):
                b1 = min(b0 + chunk_frames, total)
                slot = i % reuse if reuse else 0
                if reuse and in_order:  # no copy at all: the block is the mapped file itself
                    view = self._view(self._base + b0, self._base + b1)
                    if view is not None:
                        # Pages stay mapped up to MAPPED_BYTES, so an archive that fits is read without a
                        # fault after the first pass; beyond, the oldest blocks (once done with) are unmapped.
                        views.append(view)
                        mapped += view.nbytes
                        while len(views) > reuse and mapped > MAPPED_BYTES:
                            mapped -= views[0].nbytes
                            self._release(views.popleft())
                        yield view
                        continue
                if reuse:
                    if ring[slot] is None:
                        ring[slot] = np.empty((chunk_frames, self.n_features), np.float32)
                    block = ring[slot][:b1 - b0]
                else:
                    block = np.empty((b1 - b0, self.n_features), np.float32)
                if in_order:
                    self._read(self._base + b0, self._base + b1, block)
                else:
                    i0, i1 = np.searchsorted(ends, [b0, b1 - 1], side="right")
                    s, n = starts[i0:i1 + 1].copy(), lengths[i0:i1 + 1].copy()
                    first = b0 - (ends[i0] - lengths[i0])  # the block starts inside segment i0 ...
                    s[0] += first
                    n[0] -= first
                    n[-1] -= ends[i1] - b1                 # ... and ends inside segment i1
                    self._copy(s, n, block)
                yield block
        finally:
            if reuse:
                self._rings[chunk_frames, reuse] = ring


def convert_archive(src, out) -> int:
    """Rewrite the feature archive ``src`` (any format this code reads) in the current format, as ``out``.

    Frames, index, manifest and skipped list are copied unchanged; ``out`` must not exist (it is
    written to a temporary file and renamed into place).  Returns the number of utterances.

    Examples
    --------
    ::

        convert_archive("feats_v1.h5", "feats.h5")    # acoustic-gmm convert feats_v1.h5 --out feats.h5
    """
    out = Path(out)
    if out.exists():
        raise ArchiveError(f"{out}: already exists; choose a new name (the source archive is never replaced)")
    with FeatureArchive(src) as fa:
        def items():
            for i in range(0, len(fa.ids), 4096):  # a few thousand utterances at a time: bounded memory
                ids = fa.ids[i:i + 4096]
                for u, x in zip(ids, fa.utterances(ids)):
                    yield u, x, fa.labels[u] or None, fa.speakers[u] or None

        return write_features(out, items(), config=fa.config, sample_rate=fa.sample_rate, manifest=fa.manifest,
                              skipped=fa.skipped, data_dir=fa.data_dir)


class ArchiveSubset:
    """Some utterances of an open :class:`FeatureArchive` as a frame source (see :mod:`acoustic_gmm.frames`)."""

    reuses_buffers = True

    def __init__(self, archive: FeatureArchive, ids: list[str]):
        self.archive, self.ids = archive, ids
        self.path = archive.path

    @property
    def n_features(self) -> int:
        return self.archive.n_features

    def frames(self) -> np.ndarray:
        return self.archive.frames(self.ids)

    @property
    def n_frames_total(self) -> int:
        return sum(self.archive.n_frames[u] for u in self.ids)

    def iter_chunks(self, size: int, *, reuse: int = 0):
        return self.archive.iter_chunks(size, self.ids, reuse=reuse)

    def rows(self, index) -> np.ndarray:
        return self.archive.rows(index, self.ids)


# --------------------------------------------------------------------------- describing a file

def describe(path) -> dict:
    """The facts of an acoustic_gmm HDF5 file (what ``acoustic-gmm info`` prints), JSON-ready.

    Examples
    --------
    ::

        describe("feats.h5")["utterances"]      # 3000
        describe("ubm.h5")["models"]["ubm"]     # {'n_components': 256, 'n_features': 39, ...}
    """
    kind = file_kind(path)
    if kind in ("ivector-extractor", "ivectors", "backend"):  # bundles: their arrays' shapes and the metadata
        arrays, texts, meta = load_bundle(path, kind)
        return {"path": str(path), "content": kind, "arrays": {k: list(v.shape) for k, v in arrays.items()},
                "texts": {k: len(v) for k, v in texts.items()}, "metadata": meta}
    if kind == "features":
        with FeatureArchive(path) as fa:
            return {"path": str(path), "content": "features", "format_version": fa.format_version,
                    "utterances": len(fa),
                    "frames": fa.n_frames_total, "n_features": fa.n_features, "sample_rate": fa.sample_rate,
                    "config": fa.config.to_dict(), "labels": dict(Counter(v for v in fa.labels.values() if v)),
                    "speakers": dict(Counter(v for v in fa.speakers.values() if v)),
                    "skipped": fa.skipped, "data_dir": fa.data_dir}
    if kind == "speakers":
        speakers, attrs = load_speakers(path)
        return {"path": str(path), "content": "speakers", "speakers": sorted(speakers), "ubm_id": attrs["ubm_id"],
                "adapt": attrs["adapt"], "relevance": attrs["relevance"], "metadata": json.loads(attrs["metadata"])}
    models, meta = load_models(path)
    return {"path": str(path), "content": "models", "metadata": meta,
            "models": {name: {"n_components": m.n_components, "n_features": m.n_features,
                              "covariance_type": m.covariance_type} for name, m in models.items()}}


def _counts(counts: dict, limit: int = 12) -> str:
    shown = ", ".join(f"{k} ({n})" for k, n in sorted(counts.items())[:limit])
    return f"{len(counts)}: {shown}" + (", ..." if len(counts) > limit else "")


def format_description(facts: dict) -> str:
    """:func:`describe`'s facts as the lines ``acoustic-gmm info`` prints."""
    path = facts["path"]
    if facts["content"] == "speakers":
        return (f"{path}: speakers ({facts['adapt']}, r={facts['relevance']}), UBM {facts['ubm_id']}\n"
                f"  {len(facts['speakers'])}: {', '.join(facts['speakers'][:20])}")
    if "arrays" in facts:
        meta = {k: v for k, v in facts["metadata"].items() if k != "history"}
        return "\n".join([f"{path}: {KINDS[facts['content']]}"]
                          + [f"  {k:<14}{' x '.join(map(str, shape)) or 'scalar'}" for k, shape in facts["arrays"].items()]
                          + [f"  {k:<14}{n} entries" for k, n in facts["texts"].items()]
                          + [f"  metadata    {json.dumps(meta)[:400]}"])
    lines = [f"{path}: {facts['content']}" + (f" (format {facts['format_version']})" if "format_version" in facts
                                              else "")]
    if facts["content"] == "features":
        lines.append(f"  utterances  {facts['utterances']}  ({facts['frames']:,} frames x {facts['n_features']} "
                     f"features, {facts['sample_rate']} Hz)")
        if facts["labels"]:
            lines.append(f"  labels      {_counts(facts['labels'])}")
        if facts["speakers"]:
            lines.append(f"  speakers    {_counts(facts['speakers'])}")
        skipped = facts["skipped"]
        lines.append(f"  skipped     {len(skipped)}"
                     + "".join(f"\n    {u}: {r}" for u, _, r in skipped[:5])
                     + (f"\n    ... and {len(skipped) - 5} more" if len(skipped) > 5 else ""))
        lines.append(f"  source      {facts['data_dir']}")
        if facts.get("format_version", FEATURES_VERSION) < FEATURES_VERSION:
            lines.append(f"  format      {facts['format_version']}: read one utterance at a time; "
                         f"'acoustic-gmm convert {path} --out NEW.h5' rewrites it in format {FEATURES_VERSION}")
        lines.append("  config      " + " ".join(f"{k}={v}" for k, v in facts["config"].items()))
        return "\n".join(lines)
    for name, m in list(facts["models"].items())[:20]:
        lines.append(f"  {name}: {m['n_components']} components x {m['n_features']} features ({m['covariance_type']})")
    if len(facts["models"]) > 20:
        lines.append(f"  ... {len(facts['models']) - 20} more models")
    lines.append(f"  metadata    {json.dumps(facts['metadata'])}")
    return "\n".join(lines)
