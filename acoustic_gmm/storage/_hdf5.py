"""HDF5 basics: every file acoustic_gmm writes is self-describing, opened by one function and read with limits.

Each file has a ``content`` and a ``format_version`` attribute.  :func:`open_h5` opens and checks it (a damaged
file's metadata is read first in a child process, ``_probe``); :func:`atomic_h5` writes to a temporary file
beside the target and renames it into place, so a crash never leaves a half-written file where a good one was;
the ``checked_*`` readers turn every way a value can be wrong (missing, wrong type or shape, out of range, NaN)
into an error naming the file, and are what the model, speaker and archive readers are built on.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np

from ..errors import ArchiveError, ModelFileError
from ._outputs import atomic_path
from ._probe import probe

__all__ = ["open_h5", "file_kind"]


FORMAT_VERSION = 1     # model, speaker and shard files


FEATURES_VERSION = 2   # feature archives: 2 stores frames contiguously; 1 (one dataset per utterance) is still read


RAW_FEATURES_VERSION = 3  # format 2 with the frames before VAD and CMVN, their voiced flags and sums: read as a view


VERSIONS = {"features": RAW_FEATURES_VERSION}


WEIGHT_SUM_TOL = 1e-6


@contextlib.contextmanager
def atomic_h5(path, tmp_dir=None, *, in_memory: bool = True):
    """Open a new HDF5 file to be renamed onto ``path`` only on success (see
    :func:`acoustic_gmm.storage.atomic_path`; the temporary file is beside ``path``, or in ``tmp_dir`` on
    the same file system).

    With ``in_memory`` (models, speakers, checkpoints, shards: files that fit in memory) the file is built in
    memory and written out in one plain write when the block ends: a full disk is then an ordinary
    ``OSError`` naming the file, never a write failing inside libhdf5, which leaves h5py objects that cannot
    be released and has crashed the interpreter on its way out.  Feature archives stream to disk
    (``in_memory=False``) through a file that drops every write after the first failed one, so that libhdf5
    can still close the file; that first failure is what is raised.
    """
    import h5py

    with atomic_path(path, tmp_dir=tmp_dir) as tmp:
        if not in_memory:
            with open(tmp, "w+b") as raw:
                out = _WriteOnce(raw)
                try:
                    with h5py.File(out, "w") as f:
                        yield f
                finally:
                    if out.failure is not None:  # the one error to tell, whatever libhdf5 made of it
                        raise OSError(out.failure.errno, out.failure.strerror, str(path)) from None
            return
        with h5py.File(tmp, "w", driver="core", backing_store=False) as f:  # libhdf5's own memory, not disk
            yield f
            f.flush()
            image = f.id.get_file_image()
        with open(tmp, "wb") as out:
            out.write(image)


class _WriteOnce:
    """The file libhdf5 streams an archive to: once a write fails (a full disk), the rest are dropped.

    A file whose writes keep failing cannot be closed by libhdf5, and such a file has crashed the interpreter
    when it was collected; this one is closed, and removed by :func:`acoustic_gmm.storage.atomic_path`, and the
    first failure is what the caller is told."""

    def __init__(self, raw):
        self.raw, self.failure = raw, None

    def write(self, data) -> int:
        if self.failure is None:
            try:
                return self.raw.write(data)
            except OSError as exc:
                self.failure = exc
        return memoryview(data).nbytes

    def flush(self) -> None:
        if self.failure is None:
            try:
                self.raw.flush()
            except OSError as exc:
                self.failure = exc

    def read(self, *args):
        return self.raw.read(*args)

    def readinto(self, buffer):
        return self.raw.readinto(buffer)

    def seek(self, *args):
        return self.raw.seek(*args)

    def tell(self) -> int:
        return self.raw.tell()

    def truncate(self, size=None):
        return self.raw.truncate(size) if self.failure is None else size


def write_text(path, text: str) -> None:
    """Write a text file (scores, metrics, tables) atomically: a temporary file renamed into place."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)


def write_json(path, obj) -> None:
    """Write ``obj`` as indented JSON, atomically (metrics, reports)."""
    write_text(path, json.dumps(obj, indent=1))


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
        found = checked_attr(f, "content", str(path), error, "str", None)
        version = checked_attr(f, "format_version", str(path), error, "int", None)
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
        kind = checked_attr(f, "content", str(path), ArchiveError, "str", None)
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


def checked_attr(obj, name: str, where: str, error, kind: str, default=_REQUIRED):
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


def checked_json(obj, name: str, where: str, error, expect: type, default=_REQUIRED):
    """Attribute ``name`` holding JSON text of type ``expect`` (dict or list), parsed."""
    text = checked_attr(obj, name, where, error, "str", default)
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


def checked_dataset(group, key: str, where: str, error, *, ndim: tuple, kinds: str = "fiu", max_values: int = MAX_VALUES):
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


def checked_values(ds, where: str, error, dtype=np.float64) -> np.ndarray:
    """All of a checked dataset's values (see :func:`_dataset`)."""
    try:
        return np.asarray(ds[()], dtype=dtype)
    except LOADER_ERRORS as exc:
        raise error(f"{where}: dataset '{ds.name.rsplit('/', 1)[-1]}' cannot be read "
                    f"({type(exc).__name__}: {exc})") from None


def checked_texts(ds, where: str, error):
    """A checked text dataset's values as ``str`` (a list, or one string for a scalar)."""
    values = checked_values(ds, where, error, None)
    try:
        out = [v.decode() if isinstance(v, bytes) else str(v) for v in values.ravel()]
    except UnicodeDecodeError:
        raise error(f"{where}: dataset '{ds.name.rsplit('/', 1)[-1]}' holds text that is not UTF-8") from None
    return out[0] if values.ndim == 0 else out


def check_weights(where: str, w: np.ndarray, error, key: str = "weights") -> None:
    """Finite, non-negative, summing to one (each problem said as it is: a negative weight is not a bad sum)."""
    if not np.isfinite(w).all():
        raise error(f"{where}: {key} contain NaN or inf")
    if (w < 0).any():
        raise error(f"{where}: {int((w < 0).sum())} of {key} are negative (smallest {w.min():.6g})")
    if abs(w.sum() - 1.0) > WEIGHT_SUM_TOL:
        raise error(f"{where}: {key} must be non-negative and sum to 1 (sum is {w.sum():.9g})")


def check_range(where: str, key: str, a: np.ndarray, error, *, positive: bool = False) -> None:
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
            return {k: checked_values(checked_dataset(group, k, where, ModelFileError, ndim=(0, 1, 2, 3)), where, ModelFileError,
                               None) for k in group}
        except LOADER_ERRORS as exc:
            if isinstance(exc, ModelFileError):
                raise
            raise ModelFileError(f"{path}: damaged model file ({type(exc).__name__}: {exc})") from None
