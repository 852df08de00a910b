"""HDF5 storage for feature archives and models, written atomically and read defensively.

Feature archive layout (``format_version`` 1)::

    /                      attrs: format_version, content="features", config (MfccConfig JSON),
                                  sample_rate, skipped (JSON list of [utt, path, reason])
    /utterances/<utt>      float32 (n_frames, n_features); attrs: label, speaker (when known)
    /index/ids, labels, speakers, n_frames    the same facts as arrays, for fast look-ups
    /manifest/<table>      the source data directory's tables as text; attr data_dir

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

from .errors import ArchiveError, ModelFileError, ParameterError
from .gmm import make_model

FORMAT_VERSION = 1
WEIGHT_SUM_TOL = 1e-6


@contextlib.contextmanager
def atomic_h5(path, tmp_dir=None):
    """Open a temporary HDF5 file (beside ``path``, or in ``tmp_dir`` on the same file system);
    rename it onto ``path`` only on success."""
    import h5py

    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=tmp_dir or path.parent or ".")
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def save_models(path, models: dict, metadata: dict | None = None, arrays: dict | None = None) -> None:
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


def open_h5(path, what: str = "model file", error=ModelFileError):
    """Open ``path`` read-only, turning every way it can fail into ``error`` naming the file."""
    import h5py

    path = Path(path)
    if not path.exists():
        raise error(f"{path}: no such file")
    if path.is_dir():
        raise error(f"{path}: is a folder, not a {what}")
    if not h5py.is_hdf5(path):
        raise error(f"{path}: not an HDF5 file (wrong signature); expected an acoustic_gmm {what}")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise error(f"{path}: cannot be read as HDF5, the file is truncated or corrupt ({exc})") from None


def file_kind(path) -> str:
    """``"features"``, ``"models"`` or ``"speakers"``: what an acoustic_gmm HDF5 file holds."""
    with open_h5(path, "file", ArchiveError) as f:
        kind = f.attrs.get("content")
    if kind not in ("features", "models", "speakers"):
        raise ArchiveError(f"{path}: an HDF5 file but not one acoustic_gmm wrote (no 'content' attribute)")
    return str(kind)


def load_arrays(path) -> dict:
    """The extra arrays stored with :func:`save_models` (empty if there are none)."""
    with open_h5(path) as f:
        return {k: v[()] for k, v in f["arrays"].items()} if "arrays" in f else {}


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


# --------------------------------------------------------------------------- feature archives

def write_features(path, utterances, config, sample_rate: int, manifest: dict | None = None,
                   skipped=(), data_dir: str = "", tmp_dir=None) -> int:
    """Write a feature archive atomically from ``(utt, frames, label, speaker)`` tuples; returns the count.

    ``label``/``speaker`` may be None.  ``manifest`` maps table names to their text.
    ``skipped`` (``(utt, path, reason)`` tuples) is read after ``utterances`` is exhausted,
    so both may be filled as the utterances are produced.
    """
    import h5py

    ids, labels, speakers, counts = [], [], [], []
    with atomic_h5(path, tmp_dir) as f:
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["content"] = "features"
        f.attrs["config"] = config.to_json()
        f.attrs["sample_rate"] = int(sample_rate)
        group = f.create_group("utterances")
        for utt, frames, label, speaker in utterances:
            frames = np.ascontiguousarray(frames, dtype=np.float32)
            # h5py's low-level calls: half the cost of create_dataset for thousands of small utterances.
            dsid = h5py.h5d.create(group.id, utt.encode(), h5py.h5t.IEEE_F32LE, h5py.h5s.create_simple(frames.shape))
            dsid.write(h5py.h5s.ALL, h5py.h5s.ALL, frames)
            attrs = h5py.Dataset(dsid).attrs
            if label is not None:
                attrs.create("label", label)
            if speaker is not None:
                attrs.create("speaker", speaker)
            ids.append(utt)
            labels.append("" if label is None else label)
            speakers.append("" if speaker is None else speaker)
            counts.append(len(frames))
        f.attrs["skipped"] = json.dumps([list(map(str, s)) for s in skipped])
        index = f.create_group("index")
        text = h5py.string_dtype()
        index.create_dataset("ids", data=np.array(ids, dtype=object), dtype=text)
        index.create_dataset("labels", data=np.array(labels, dtype=object), dtype=text)
        index.create_dataset("speakers", data=np.array(speakers, dtype=object), dtype=text)
        index.create_dataset("n_frames", data=np.array(counts, dtype=np.int64))
        m = f.create_group("manifest")
        m.attrs["data_dir"] = str(data_dir)
        for name, content in (manifest or {}).items():
            m.create_dataset(name, data=content, dtype=text)
    return len(ids)


class FeatureArchive:
    """Read access to a feature archive; use as a context manager or call :meth:`close`.

    Examples
    --------
    ::

        with FeatureArchive("feats.h5") as fa:
            X = fa.frames(fa.ids_where(label="7"))   # all frames of digit 7
            for chunk in fa.iter_chunks(65536):      # stream, never all in memory
                ...
    """

    def __init__(self, path):
        from .features import MfccConfig

        self.path = Path(path)
        self._f = open_h5(self.path, "feature archive", ArchiveError)
        try:
            f = self._f
            if f.attrs.get("content") != "features" or "index" not in f or "utterances" not in f:
                raise ArchiveError(f"{self.path}: not an acoustic_gmm feature archive"
                                   + (" (it holds models)" if f.attrs.get("content") == "models" else ""))
            if int(f.attrs["format_version"]) > FORMAT_VERSION:
                raise ArchiveError(f"{self.path}: format_version {int(f.attrs['format_version'])} is newer than "
                                   f"this acoustic_gmm understands ({FORMAT_VERSION})")
            self.config = MfccConfig.from_json(f.attrs["config"])
            self.sample_rate = int(f.attrs["sample_rate"])
            self.skipped = json.loads(f.attrs.get("skipped", "[]"))
            idx = f["index"]
            self.ids = [s.decode() for s in idx["ids"][()]]
            self.labels = dict(zip(self.ids, (s.decode() for s in idx["labels"][()])))
            self.speakers = dict(zip(self.ids, (s.decode() for s in idx["speakers"][()])))
            self.n_frames = dict(zip(self.ids, idx["n_frames"][()].tolist()))
            self.manifest = {k: v[()].decode() for k, v in f["manifest"].items()}
            self.data_dir = f["manifest"].attrs.get("data_dir", "")
        except (KeyError, ValueError, OSError) as exc:
            self._f.close()
            if isinstance(exc, ArchiveError):
                raise
            raise ArchiveError(f"{self.path}: damaged feature archive ({type(exc).__name__}: {exc})") from None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        self._f.close()

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, utt) -> bool:
        return utt in self.n_frames

    @property
    def n_features(self) -> int:
        return self.config.n_features

    def __getitem__(self, utt: str) -> np.ndarray:
        if utt not in self.n_frames:
            raise KeyError(f"{self.path}: no utterance {utt!r}")
        return self._f["utterances"][utt][()]

    def ids_where(self, label: str | None = None, speaker: str | None = None) -> list[str]:
        """Utterance ids with this label and/or speaker, in archive order."""
        return [u for u in self.ids if (label is None or self.labels[u] == label)
                and (speaker is None or self.speakers[u] == speaker)]

    def by_label(self, label: str) -> dict[str, np.ndarray]:
        return {u: self[u] for u in self.ids_where(label=label)}

    def by_speaker(self, speaker: str) -> dict[str, np.ndarray]:
        return {u: self[u] for u in self.ids_where(speaker=speaker)}

    def frames(self, ids=None) -> np.ndarray:
        """All frames of ``ids`` (default: every utterance) concatenated, float32 (N, D)."""
        ids = self.ids if ids is None else list(ids)
        out = np.empty((sum(self.n_frames[u] for u in ids), self.n_features), dtype=np.float32)
        pos = 0
        for u in ids:
            n = self.n_frames[u]
            self._f["utterances"][u].read_direct(out, dest_sel=np.s_[pos:pos + n])
            pos += n
        return out

    @property
    def n_frames_total(self) -> int:
        return sum(self.n_frames.values())

    def rows(self, index) -> np.ndarray:
        """Frames at sorted global positions ``index`` (in archive order), reading only the utterances hit."""
        index = np.asarray(index)
        ends = np.cumsum([self.n_frames[u] for u in self.ids])
        owner = np.searchsorted(ends, index, side="right")
        out = np.empty((len(index), self.n_features), dtype=np.float32)
        for k in np.unique(owner):
            hit = owner == k
            start = ends[k] - self.n_frames[self.ids[k]]
            out[hit] = self[self.ids[k]][index[hit] - start]
        return out

    def iter_chunks(self, chunk_frames: int = 65536, ids=None):
        """Frames in blocks of ``chunk_frames`` (the last may be shorter), in archive order.

        Blocks cross utterance boundaries; at most one block is in memory at a time.
        """
        if chunk_frames < 1:
            raise ParameterError(f"chunk_frames must be >= 1, got {chunk_frames}")
        ids = self.ids if ids is None else list(ids)
        buf = np.empty((chunk_frames, self.n_features), dtype=np.float32)
        fill = 0
        for u in ids:
            data = self._f["utterances"][u]
            n, start = self.n_frames[u], 0
            while start < n:
                take = min(n - start, chunk_frames - fill)
                data.read_direct(buf, source_sel=np.s_[start:start + take], dest_sel=np.s_[fill:fill + take])
                fill += take
                start += take
                if fill == chunk_frames:
                    yield buf.copy()
                    fill = 0
        if fill:
            yield buf[:fill].copy()
