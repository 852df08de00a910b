"""Reading a raw feature archive (format 3) through a view: its frames normalised as they are read.

A raw archive stores each utterance's frames before VAD and CMVN, a voiced flag per frame (``/voiced``) and, in
the index, each utterance's count, sums and sums of squares of all and of its voiced frames (``/index/sums``,
(U, 2, 1 + 2D) float64).  A :class:`ViewPlan` is what a :class:`~acoustic_gmm.storage.FeatureArchive` needs to
give any view of them (:mod:`acoustic_gmm.features._view`): the columns kept, the voiced flags when the view
drops unvoiced frames, each speaker's CMVN statistics (added from the index, in archive order, as extraction
adds them), and each utterance's length in the view.  Every frame read is the frame extraction with the view's
configuration would have written, bit for bit.
"""

from __future__ import annotations

import contextlib
import os
import weakref
from dataclasses import dataclass

import numpy as np

from ..errors import ArchiveError, DataError, ParameterError
from ._hdf5 import checked_dataset, checked_values

__all__: list = []  # the helpers FeatureArchive reads a raw archive with; nothing public


@dataclass
class ViewPlan:
    columns: np.ndarray          # stored columns the view keeps
    voiced: np.ndarray | None    # (N stored,) bool, when the view drops unvoiced frames
    speakers: dict               # speaker -> (mean, 1 / std) over the view's frames, with cmvn="speaker"
    stored_frames: dict          # utterance -> stored rows
    recordings: dict | None      # segment -> its recording's (mean, 1 / std), with cmvn="mean" or "meanvar"


def plan_view(fa, view) -> ViewPlan:
    """Check ``view`` against ``fa``'s stored configuration and set ``fa.config``, ``fa.n_frames`` (as the view
    reads them) and ``fa.ids`` (less any utterance the view leaves without a frame, which joins ``fa.skipped``)."""
    from ..features._view import speaker_scale, view_config, view_of

    f, where = fa._f, f"{fa.path}"
    stored = fa.config
    try:
        config = view_config(stored, view)
        columns = view_of(stored, config)
    except ParameterError as exc:
        raise DataError(f"{fa.path}: {exc}") from None
    D, U = stored.n_features, len(fa.ids)
    sums_ds = checked_dataset(f["index"], "sums", f"{where}: index", ArchiveError, ndim=(3,), kinds="f",
                              max_values=1 << 40)
    if sums_ds.shape != (U, 2, 1 + 2 * D):
        raise ArchiveError(f"{where}: index/sums has shape {sums_ds.shape}, expected {(U, 2, 1 + 2 * D)}")
    sums = checked_values(sums_ds, f"{where}: index", ArchiveError)
    stored_frames = dict(fa.n_frames)
    if (sums[:, 0, 0] != [stored_frames[u] for u in fa.ids]).any() or (sums[:, 1, 0] > sums[:, 0, 0]).any():
        raise ArchiveError(f"{where}: index/sums does not agree with the frame counts")
    voiced = None
    if config.vad:
        flags = checked_dataset(f, "voiced", where, ArchiveError, ndim=(1,), kinds="iub", max_values=1 << 40)
        if flags.shape != (len(fa._data),):
            raise ArchiveError(f"{where}: {flags.shape[0]} voiced flags for {len(fa._data)} stored frames")
        voiced = flags[()] != 0
    which = 1 if config.vad else 0
    recordings = None
    if "recording_sums" in f["index"]:  # segments: per-utterance CMVN with the recording's statistics
        from ..features._view import SLIDING

        if config.cmvn in SLIDING:
            raise DataError(f"{fa.path}: segments whose recordings are not stored: cmvn={config.cmvn!r} needs "
                            f"their sliding windows; extract with that normalisation")
        rec_ds = checked_dataset(f["index"], "recording_sums", f"{where}: index", ArchiveError, ndim=(3,), kinds="f",
                                 max_values=1 << 40)
        if rec_ds.shape != (U, 2, 1 + 2 * D):
            raise ArchiveError(f"{where}: index/recording_sums has shape {rec_ds.shape}, expected {(U, 2, 1 + 2 * D)}")
        if config.cmvn in ("mean", "meanvar"):
            rec = checked_values(rec_ds, f"{where}: index", ArchiveError)
            recordings = {u: speaker_scale(rec[i, which], columns) for i, u in enumerate(fa.ids)}
    speakers: dict = {}
    if config.cmvn == "speaker":
        for i, u in enumerate(fa.ids):  # archive order, as extraction added them
            key = fa.speakers[u] or u
            speakers[key] = speakers[key] + sums[i, which] if key in speakers else sums[i, which].copy()
        speakers = {k: speaker_scale(s, columns) for k, s in speakers.items()}
    counts = {u: int(sums[i, which, 0]) for i, u in enumerate(fa.ids)}
    empty = [u for u in fa.ids if counts[u] == 0]
    if empty:  # only a VAD view of an archive made without VAD can leave an utterance silent
        fa.skipped = fa.skipped + [[u, "", "no frames left after VAD"] for u in empty]
        fa.ids = [u for u in fa.ids if counts[u]]
    fa.config, fa.n_frames = config, {u: counts[u] for u in fa.ids}
    return ViewPlan(columns, voiced, speakers, stored_frames, recordings)


def view_utterances(fa, ids) -> list[np.ndarray]:
    """The frames of each of ``ids`` in ``fa``'s view: the stored rows read in a few large reads, then each
    utterance made as extraction makes it (:func:`~acoustic_gmm.features._view.view_frames`)."""
    ids = list(ids)
    frames, counts = _view_batch(fa, ids)
    return frames if isinstance(frames, list) else np.split(frames, np.cumsum(counts)[:-1])


def _view_batch(fa, ids: list):
    """``(frames, counts)`` of ``ids`` in the view: one array for a view whose statistics are known before the
    frames are read (none, per speaker, a segment's recording) or that are short utterances' own CMN or CMVN,
    made for the whole batch at once with the same operations row by row; else (sliding windows, warping, long
    utterances) a list, an utterance at a time (:func:`~acoustic_gmm.features._view.view_frames`)."""
    from ..features._view import view_frames

    plan, config = fa._plan, fa.config
    starts = np.array([fa._offset[u] for u in ids], dtype=np.int64)
    lengths = np.array([plan.stored_frames[u] for u in ids], dtype=np.int64)
    raw = np.empty((int(lengths.sum()), fa._width), np.float32)
    fa._copy(starts, lengths, raw)
    counts = np.array([fa.n_frames[u] for u in ids], dtype=np.int64)
    known = config.cmvn in ("none", "speaker") or (config.cmvn in ("mean", "meanvar") and (
        plan.recordings is not None or 0 < counts.min(initial=1) and counts.max(initial=0) < SHORT))
    if ids and known:
        x = raw[:, plan.columns]
        if plan.voiced is not None:
            x = x[np.concatenate([plan.voiced[s:s + n] for s, n in zip(starts, lengths)])]
        if config.cmvn in ("mean", "meanvar") and plan.recordings is None:
            return _utterance_cmvn(x, counts, config.cmvn == "meanvar"), counts
        if config.cmvn != "none":
            stats = [plan.speakers[fa.speakers[u] or u] if config.cmvn == "speaker" else plan.recordings[u]
                     for u in ids]
            mean = np.repeat(np.array([m for m, _ in stats]), counts, axis=0)
            scale = 1.0 if config.cmvn == "mean" else np.repeat(np.array([c for _, c in stats]), counts, axis=0)
            x = ((x - mean) * scale).astype(np.float32)
        return x, counts
    out, pos = [], 0
    for s, n in zip(starts, lengths):
        out.append(view_frames(raw[pos:pos + n], None if plan.voiced is None else plan.voiced[s:s + n], config,
                               plan.columns))
        pos += n
    return out, counts


SHORT = 2048  # utterances shorter than this (frames) get their per-utterance CMN in one pass over the batch


def _utterance_cmvn(x: np.ndarray, counts: np.ndarray, variance: bool) -> np.ndarray:
    """Per-utterance CMN (CMVN with ``variance``) of short utterances laid end to end in ``x``, bit for bit as
    :func:`~acoustic_gmm.features.normalise` makes them one at a time: its float32 sums add an utterance's rows
    one after the other, so the batch adds every utterance's i-th row at step i (``np.add.reduceat`` adds in
    another order, and differs in the last bit)."""
    starts = np.r_[0, np.cumsum(counts)[:-1]]

    def means(y):
        total = np.zeros((len(counts), y.shape[1]), np.float32)
        for i in range(int(counts.max())):
            live = counts > i
            total[live] += y[starts[live] + i]
        return (total.astype(np.float64) / counts[:, None]).astype(np.float32)

    x = np.ascontiguousarray(x, dtype=np.float32)
    x -= np.repeat(means(x), counts, axis=0)
    if variance:
        d = x - np.repeat(means(x), counts, axis=0)
        np.multiply(d, d, out=d)
        x /= np.repeat(np.where((sd := np.sqrt(means(d))) > 0, sd, 1), counts, axis=0)
    return x


def view_chunks(fa, chunk_frames: int, ids):
    """Blocks of ``chunk_frames`` frames of ``ids`` in the view (the last may be shorter), made a thousand
    utterances at a time; every block is a new array."""
    pending, n_pending = [], 0
    for a in range(0, len(ids), 1024):
        frames, _ = _view_batch(fa, ids[a:a + 1024])
        for x in frames if isinstance(frames, list) else (frames,):
            pending.append(x)
            n_pending += len(x)
        if n_pending >= chunk_frames:
            block = np.concatenate(pending) if len(pending) > 1 else pending[0]
            for b in range(0, len(block) - chunk_frames + 1, chunk_frames):
                yield block[b:b + chunk_frames]
            rest = len(block) % chunk_frames
            pending, n_pending = ([block[len(block) - rest:]], rest) if rest else ([], 0)
    if n_pending:
        yield np.concatenate(pending)


def cached_view_chunks(fa, chunk_frames: int, ids: list):
    """:func:`view_chunks`, whose first complete pass also writes the view to a temporary file (plain writes: a
    full disk is an ``OSError``, and the blocks are then made on every pass as before); later passes over the
    same ids are views of that file, mapped, as a normalised archive's are.  Streaming EM reads the archive on
    every pass; this makes the view once.  The files go when the archive is closed."""
    import tempfile

    key = tuple(ids)
    mapped = fa._view_cache.get(key)
    if mapped is not None:
        for b in range(0, len(mapped), chunk_frames):
            yield mapped[b:b + chunk_frames]
        return
    total = sum(fa.n_frames[u] for u in ids)
    try:
        fd, path = tempfile.mkstemp(prefix="acoustic-gmm-view-", suffix=".f32")
        out = os.fdopen(fd, "wb")
    except OSError:
        out = path = None
    written = 0
    try:
        for block in view_chunks(fa, chunk_frames, ids):
            if out is not None:
                try:
                    out.write(np.ascontiguousarray(block, dtype=np.float32).data)
                    written += len(block)
                except OSError:  # no room for the copy: the view is made on every pass instead
                    out.close()
                    os.unlink(path)
                    out = path = None
            yield block
        if out is not None:
            out.close()
            out = None
            if written == total:
                fa._view_cache[key] = np.memmap(path, np.float32, "c", shape=(total, fa.n_features))
                fa._view_files.append(path)
                weakref.finalize(fa, _unlink, path)  # an archive never closed: at collection or exit
                path = None
    finally:
        if out is not None:
            out.close()
        if path is not None:  # a pass left unfinished
            _unlink(path)


def _unlink(path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def view_rows(fa, index: np.ndarray, ids) -> np.ndarray:
    """Frames at positions ``index`` among the view's frames of ``ids``: only the utterances they fall in are
    made."""
    lengths = np.array([fa.n_frames[u] for u in ids], dtype=np.int64)
    ends = np.cumsum(lengths)
    owner = np.searchsorted(ends, index, side="right")
    if len(index) and (index.min() < 0 or owner.max() >= len(lengths)):
        raise ParameterError(f"row positions must lie in [0, {int(ends[-1]) if len(ends) else 0})")
    out = np.empty((len(index), fa.n_features), dtype=np.float32)
    order = np.argsort(owner, kind="stable")  # the positions grouped by the utterance they fall in
    needed, first = np.unique(owner[order], return_index=True)
    bounds = np.r_[first, len(order)]
    for a in range(0, len(needed), 1024):
        part = needed[a:a + 1024]
        for k, x in enumerate(view_utterances(fa, [ids[i] for i in part]), start=a):
            at = order[bounds[k]:bounds[k + 1]]
            i = needed[k]
            out[at] = x[index[at] - (ends[i] - lengths[i])]
    return out
