"""The feature archive: every utterance's frames in one HDF5 dataset, with an index, read by id, label or speaker.

:class:`FeatureArchive` reads one (whole, a subset, or in blocks straight from a memory-mapped window of the
file); ``_archive_write`` writes them.

Feature archive layout (``content="features"``, ``format_version`` 2, or 3 for a raw archive)::

    /                      attrs: format_version, content="features", config (MfccConfig JSON),
                                  sample_rate, skipped (JSON list of [utt, path, reason])
    /frames                float32 (n_frames_total, n_features), chunked: every utterance's frames,
                           one after the other
    /index/ids, labels, speakers, n_frames, offsets    one entry per utterance: its rows are
                           frames[offset:offset + n_frames]
    /manifest/<table>      the source data directory's tables as text; attr data_dir
    /voiced, /index/sums   format 3 only: frames before VAD and CMVN, a voiced flag per frame, and per utterance
                           the count, sums and sums of squares of all and of the voiced frames (``_archive_view``)

Format 1 (before acoustic_gmm stored frames contiguously) had ``/utterances/<utt>``, one dataset
per utterance, and no ``offsets``; it is read transparently (slower to stream: a read per utterance).
"""

from __future__ import annotations

import contextlib
import dataclasses
import mmap
import os
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ArchiveError, DataError, ParameterError
from ._archive_view import cached_view_chunks, view_rows, view_utterances
from ._hdf5 import LOADER_ERRORS, checked_attr, checked_dataset, checked_json, checked_texts, checked_values, open_h5

__all__ = ["FeatureArchive", "ArchiveSubset"]


MAPPED_BYTES = 256 << 20  # streaming: frames kept mapped (clean page cache, counted in RSS) before unmapping


GAP_ROWS = 4096        # ranges closer than this are fetched by one read (reading the gap costs less than a call)


SPAN_ROWS = 1 << 18    # ... but no single read spans more: bounded read buffers


DIRECT_ROWS = 1 << 14  # reads this large go straight into their destination


@contextlib.contextmanager
def opened(archive, view=None):
    """A :class:`FeatureArchive` from a path (opened here and closed after) or an open archive (left open).

    ``view``: how the frames are to be read (an :class:`~acoustic_gmm.features.MfccConfig`, the one models
    were trained on, or a dict of changes to the stored one, see :mod:`acoustic_gmm.features._view`).  An open
    archive read another way is opened again with it, unless it was opened with a view on purpose: frames read
    one way for models trained on another are an error, never a silent result."""
    if isinstance(archive, FeatureArchive):
        wanted = view if not isinstance(view, dict) else dataclasses.replace(archive.stored_config, **view)
        if view is None or archive.config == wanted:
            yield archive
            return
        if archive.view_asked:  # frames read one way, models trained on another: never silently
            from ..features._config import config_differences

            diff = "; ".join(config_differences(archive.config, wanted, names=("open", "wanted")))
            raise DataError(f"{archive.path} is open with another view than the frames are wanted in ({diff}): "
                            f"pass the path, or the archive opened without a view, and the wanted one is read")
        archive = archive.path
    with FeatureArchive(archive, view=view) as fa:
        yield fa


def _groups(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Where to cut sorted row ranges into reads: a new read after a gap of more than ``GAP_ROWS`` rows or at
    a ``SPAN_ROWS`` boundary (so no read buffer outgrows it).  Returns the first range of each read."""
    gap = starts[1:] - np.maximum.accumulate(ends)[:-1] > GAP_ROWS
    window = starts[1:] // SPAN_ROWS != starts[:-1] // SPAN_ROWS
    return np.concatenate([[0], np.flatnonzero(gap | window) + 1])


@dataclass
class ChunkMap:
    """Where a format-2 archive's frames lie in its file, for reads that bypass h5py (:meth:`FeatureArchive._read`).

    ``rows`` frames per chunk; ``offsets[c]`` the byte offset of chunk ``c``; ``fd`` the file, open for
    ``os.preadv``; ``run[c]`` the first chunk of the run of back-to-back chunks that ``c`` belongs to (rows within
    one run are one span of bytes); ``mapped`` a private, copy-on-write map of the whole file whose spans are
    viewed without a copy, or None where the file cannot be mapped.
    """

    rows: int
    offsets: list
    fd: int
    run: np.ndarray
    mapped: object = None

    def close(self) -> None:
        os.close(self.fd)
        if self.mapped is not None:
            try:
                self.mapped.close()
            except BufferError:  # blocks still viewing it keep the mapping alive until they go
                pass



class FeatureArchive:
    """Read access to a feature archive; use as a context manager or call :meth:`close`.

    What it holds: ``ids`` (the utterances, in stored order), ``n_frames``, ``labels`` and ``speakers`` (dicts by
    id; ``""`` where utt2label or utt2spk had none), ``config`` (the :class:`~acoustic_gmm.features.MfccConfig` the
    frames were made with), ``sample_rate``, ``n_features``, ``skipped`` (the utterances extraction left out, with
    their paths and reasons) and ``manifest`` (the source data directory's tables).  One utterance's frames are
    ``fa["utt"]`` (or ``fa.frames("utt")``), several utterances' ``fa.utterances(ids)`` (a list) or
    ``fa.frames(ids)`` (one array), a label's or speaker's ids ``fa.ids_where(label=..., speaker=...)``, and blocks
    of frames for streaming ``fa.iter_chunks(n)``.

    A raw archive (format 3, what ``acoustic-gmm features`` writes unless the front end is HTK's or the data
    has segments) stores the frames before VAD and CMVN, and is read through a *view*: ``view`` (a dict of
    ``cmvn``, ``cmvn_window``, ``vad``, ``n_mfcc``, ``deltas``, changes to the stored ``config``, or a whole
    :class:`~acoustic_gmm.features.MfccConfig`) normalises the frames as they are read, exactly as extraction
    with that configuration would have (:mod:`acoustic_gmm.features._view`); by default, the configuration it
    was extracted with.  ``config`` is then the view's and ``stored_config`` the extraction's; ``raw`` says
    which kind the archive is.  An archive normalised when written has only its own view.

    Reads are planned over the stored rows: an utterance, a label's or speaker's utterances, a
    subset or the next block of frames are one or a few large reads (nearby ranges are read
    together), in format 2.  Format 1 archives (one dataset per utterance, acoustic_gmm before
    format 2) are read transparently through the same methods, one dataset at a time; ``acoustic-gmm
    convert OLD NEW`` rewrites one in format 2.

    Examples
    --------
    ::

        with FeatureArchive("feats.h5") as fa:
            x = fa["7_jackson_0"]                    # one utterance: (n_frames, n_features) float32
            X = fa.frames(fa.ids_where(label="7"))   # all frames of digit 7
        with FeatureArchive("feats.h5", view={"cmvn": "mean", "vad": True}) as fa:   # for speaker recognition
            X = fa.frames()
            for chunk in fa.iter_chunks(65536):      # stream, never all in memory
                ...
    """

    reuses_buffers = True  # iter_chunks(..., reuse=N) is supported (the GMM engine's accumulate asks for it)

    def __init__(self, path, view=None):
        import h5py

        from ..features._config import MfccConfig

        self.path = Path(path)
        self._f = open_h5(self.path, "features")
        try:
            # Everything the reading methods rely on is checked here, from the declarations and the (small)
            # index, so that a damaged archive is one ArchiveError naming the field, not a failure later.
            f, where = self._f, str(self.path)
            self.format_version = checked_attr(f, "format_version", where, ArchiveError, "int")
            body = "frames" if self.format_version >= 2 else "utterances"
            if "index" not in f or body not in f or not isinstance(f["index"], h5py.Group):
                raise ArchiveError(f"{self.path}: damaged feature archive (no index or {body})")
            try:
                self.config = MfccConfig.from_json(checked_attr(f, "config", where, ArchiveError, "str"))
            except ParameterError as exc:
                raise ArchiveError(f"{self.path}: attribute 'config': {exc}") from None
            self.sample_rate = checked_attr(f, "sample_rate", where, ArchiveError, "int")
            if self.sample_rate <= 0:
                raise ArchiveError(f"{self.path}: attribute 'sample_rate' is {self.sample_rate}, expected > 0")
            self.skipped = checked_json(f, "skipped", where, ArchiveError, list, [])
            if not all(isinstance(x, list) and len(x) == 3 for x in self.skipped):
                raise ArchiveError(f"{self.path}: attribute 'skipped' must be a JSON list of [utt, path, reason]")
            idx, here = f["index"], f"{self.path}: index"
            declared = {k: checked_dataset(idx, k, here, ArchiveError, ndim=(1,), kinds="OS", max_values=1 << 40)
                        for k in ("ids", "labels", "speakers")}
            declared["n_frames"] = checked_dataset(idx, "n_frames", here, ArchiveError, ndim=(1,), kinds="iu",
                                            max_values=1 << 40)
            if self.format_version >= 2:
                declared["offsets"] = checked_dataset(idx, "offsets", here, ArchiveError, ndim=(1,), kinds="iu",
                                               max_values=1 << 40)
            n_utts = declared["ids"].shape[0]
            for key, ds in declared.items():
                if ds.shape[0] != n_utts:
                    raise ArchiveError(f"{here}: dataset '{key}' has {ds.shape[0]} entries, 'ids' has {n_utts}")
            self.ids = checked_texts(declared["ids"], here, ArchiveError)
            if len(set(self.ids)) != len(self.ids):
                twice = next(u for u, c in Counter(self.ids).items() if c > 1)
                raise ArchiveError(f"{here}: utterance id {twice!r} occurs more than once in 'ids'")
            self.labels = dict(zip(self.ids, checked_texts(declared["labels"], here, ArchiveError)))
            self.speakers = dict(zip(self.ids, checked_texts(declared["speakers"], here, ArchiveError)))
            counts = checked_values(declared["n_frames"], here, ArchiveError, np.int64)
            if (counts < 0).any():
                raise ArchiveError(f"{here}: dataset 'n_frames' holds negative frame counts")
            self.n_frames = dict(zip(self.ids, counts.tolist()))
            if "manifest" not in f or not isinstance(f["manifest"], h5py.Group):
                raise ArchiveError(f"{self.path}: damaged feature archive (no manifest group)")
            here = f"{self.path}: manifest"
            self.manifest = {k: checked_texts(checked_dataset(f["manifest"], k, here, ArchiveError, ndim=(0,), kinds="OS"), here,
                                       ArchiveError) for k in f["manifest"]}
            self.data_dir = checked_attr(f["manifest"], "data_dir", here, ArchiveError, "str", "")
            if self.format_version >= 2:
                offsets = checked_values(declared["offsets"], f"{self.path}: index", ArchiveError, np.int64)
                self._data = checked_dataset(f, "frames", where, ArchiveError, ndim=(2,), kinds="f", max_values=1 << 62)
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
                    ds = checked_dataset(self._data, u, here, ArchiveError, ndim=(2,), kinds="f", max_values=1 << 40)
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
            self.stored_config, self._width, self._plan = self.config, self.n_features, None
            self.view_asked = view is not None
            self._view_cache, self._view_files = {}, []
            self.raw = self.format_version >= 3
            if self.raw:
                from ._archive_view import plan_view

                self._plan = plan_view(self, view)
                c = self._plan.columns
                if self.config.cmvn == "none" and not self.config.vad and np.array_equal(c, np.arange(self._width)):
                    self._plan = None  # the stored frames themselves: the fast readers
            elif view is not None and view != self.config:
                from ..features._config import VIEW_FIELDS, MfccConfig, config_differences

                wanted = view if isinstance(view, MfccConfig) else dataclasses.replace(self.config, **view)
                diff = "; ".join(config_differences(self.config, wanted, names=("archive", "wanted")))
                if any(getattr(self.config, k) != getattr(wanted, k) for k in vars(wanted) if k not in VIEW_FIELDS):
                    raise DataError(f"{self.path} was extracted with another front end ({diff})")
                raise DataError(f"{self.path}: its frames were normalised when they were written (an HTK front "
                                f"end, segments, or an archive from before format 3): it has no other view ({diff})")
        except LOADER_ERRORS as exc:
            self._f.close()
            if isinstance(exc, (ArchiveError, DataError)):  # damage named, or a view the archive cannot give
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
            self._chunks.close()
            self._chunks = None
        self._view_cache = {}
        for path in getattr(self, "_view_files", ()):  # a view made once for streaming (_archive_view)
            with contextlib.suppress(OSError):
                os.unlink(path)
        self._view_files = []
        self._f.close()

    def _view(self, start: int, stop: int):
        """Stored rows ``[start, stop)`` as a view of the mapped file, or None if they are not one span of bytes."""
        if self._chunks is None or self._chunks.mapped is None or stop <= start:
            return None
        rows, offsets, run = self._chunks.rows, self._chunks.offsets, self._chunks.run
        c0, c1 = start // rows, (stop - 1) // rows
        if run[c0] != run[c1]:
            return None
        D = self._width
        first = offsets[c0] + (start - c0 * rows) * 4 * D
        return np.frombuffer(self._chunks.mapped, np.float32, count=(stop - start) * D,
                             offset=first).reshape(stop - start, D)

    def _release(self, block: np.ndarray) -> None:
        """Drop the mapped pages under ``block`` (a view from :meth:`_view`) from this process: reading
        them again maps them again from the page cache, so the resident size stays a few blocks."""
        mapped = self._chunks.mapped if self._chunks is not None else None
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

    def _map_chunks(self) -> "ChunkMap | None":
        """Where the frames' chunks lie in the file (a :class:`ChunkMap`), or None to read through h5py.

        h5py's chunked reads cost about three memory copies' worth of CPU per byte, and EM streaming an
        archive reads all of it on every pass; a plain, unfiltered chunk is just bytes at a known offset, so
        its rows are read straight into place with ``os.preadv``, or, where consecutive chunks lie back to back,
        viewed in a private map of the file without a copy (the same numbers, tests check; :meth:`_release`
        drops the pages a streamed block used, so the resident size stays a few blocks).  Any other layout
        (filters, another driver, a chunk beyond the end of the file, no ``preadv``) is left to h5py.
        """
        d = self._data
        try:
            rows, width = d.chunks or (0, 0)
            if (not rows or width != d.shape[1] or d.dtype != np.dtype("<f4") or self._f.driver != "sec2"
                    or d.id.get_create_plist().get_nfilters() or not hasattr(os, "preadv")):
                return None
            info = []
            if hasattr(d.id, "chunk_iter"):  # one call for all chunks; one each took 0.6 s at 4,900 chunks, on
                d.id.chunk_iter(info.append)  # every open (every Dask task of a streamed E-step)
            else:
                info = [d.id.get_chunk_info(i) for i in range(d.id.get_num_chunks())]
            info.sort(key=lambda c: c.chunk_offset[0])
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
            return ChunkMap(rows, offsets.tolist(), fd, run, mapped)
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
            rows, offsets, fd = self._chunks.rows, self._chunks.offsets, self._chunks.fd
            row_bytes = 4 * self._width
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
            buf = np.empty((hi - lo, self._width), np.float32)
            self._read(lo, hi, buf)
            for s_i, n_i, d_i in zip(s[a:b], n[a:b], d[a:b]):
                out[d_i:d_i + n_i] = buf[s_i - lo:s_i - lo + n_i]

    def _ranges(self, ids) -> tuple[np.ndarray, np.ndarray]:
        return (np.array([self._offset[u] for u in ids], dtype=np.int64),
                np.array([self.n_frames[u] for u in ids], dtype=np.int64))

    def __getitem__(self, utt: str) -> np.ndarray:
        if utt not in self.n_frames:
            raise KeyError(f"{self.path}: no utterance {utt!r}")
        if self._plan is not None:
            return view_utterances(self, [utt])[0]
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
        """All frames of ``ids`` (a list of utterance ids, one id, or by default every utterance) concatenated,
        float32 (n_frames, n_features); an id the archive lacks is a :class:`~acoustic_gmm.errors.DataError`."""
        if isinstance(ids, str):
            ids = [ids]
        if self._plan is not None:
            parts = view_utterances(self, self.ids if ids is None else self.check_ids(ids))
            return np.concatenate(parts) if parts else np.empty((0, self.n_features), np.float32)
        starts, lengths = self._ranges(self.ids if ids is None else self.check_ids(ids))
        out = np.empty((int(lengths.sum()), self.n_features), dtype=np.float32)
        self._copy(starts, lengths, out)
        return out

    def utterances(self, ids) -> list[np.ndarray]:
        """The frames of each of ``ids``, in order: views into one array filled by a few large reads."""
        ids = list(ids)
        if self._plan is not None:
            return view_utterances(self, self.check_ids(ids))
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
        if self._plan is not None:
            return view_rows(self, index, self.ids if ids is None else list(ids))
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
        if self._plan is not None:  # made once, then mapped (cached_view_chunks)
            yield from cached_view_chunks(self, chunk_frames, self.ids if ids is None else list(ids))
            return
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


class ArchiveSubset:
    """Some utterances of an open :class:`FeatureArchive` as a frame source (see :mod:`acoustic_gmm.gmm`)."""

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
