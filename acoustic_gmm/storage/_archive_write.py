"""Writing feature archives: :func:`write_features` (atomically, a batch of frames at a time) and
:func:`convert_archive` (a format-1 archive rewritten in the current format).

The layout is :mod:`acoustic_gmm.storage`'s feature archive (``_archive``'s description); the file is written to
a temporary file beside the target and renamed into place, so a crash never leaves half an archive.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import DataError
from ._archive import FeatureArchive
from ._hdf5 import FEATURES_VERSION, RAW_FEATURES_VERSION, atomic_h5
from ._outputs import writing

__all__ = ["write_features", "convert_archive"]


CHUNK_ROWS = 2048      # HDF5 chunk of /frames: ~0.5 MB at 60 features, so an utterance's read touches one or two


WRITE_ROWS = 1 << 16   # frames buffered before an append to /frames


# --------------------------------------------------------------------------- feature archives

def write_features(path, utterances, *, config, sample_rate: int, manifest: dict | None = None,
                   skipped=(), data_dir: str = "", tmp_dir=None, raw: bool = False) -> int:
    """Write a feature archive (format 2) atomically from ``(utt, frames, label, speaker)`` tuples.

    Frames are appended, in the order given, to one float32 dataset ``/frames``
    (n_frames_total, n_features); the index records each utterance's offset and length.
    ``label``/``speaker`` may be None.  ``manifest`` maps table names to their text.
    ``skipped`` (``(utt, path, reason)`` tuples) is read after ``utterances`` is exhausted,
    so both may be filled as the utterances are produced.  Returns the number of utterances.

    With ``raw`` (format 3) the tuples end with the voiced-frame mask, ``(utt, frames, label, speaker,
    voiced)``: the frames are stored before VAD and CMVN, their flags in ``/voiced`` and each utterance's
    :func:`~acoustic_gmm.features.frame_sums` (of all and of its voiced frames) in the index, and readers
    apply ``config``'s normalisation, or another view of it, when they read (:mod:`acoustic_gmm.features._view`).
    Segments add their recording's sums (all, voiced: (2, 1 + 2D)) as a sixth element, for per-utterance CMVN.

    Examples
    --------
    ::

        write_features("feats.h5", [("u1", X1, "7", "ann"), ("u2", X2, "3", "bob")],
                       config=MfccConfig(), sample_rate=8000)
    """
    import h5py

    from ..features._view import frame_sums

    D = config.n_features
    ids, labels, speakers, counts, seen, sums, units = [], [], [], [], set(), [], []
    with atomic_h5(path, tmp_dir, in_memory=False) as f:  # streamed: an archive may not fit in memory
        f.attrs.update(format_version=RAW_FEATURES_VERSION if raw else FEATURES_VERSION, content="features",
                       config=config.to_json(), sample_rate=int(sample_rate))
        data = f.create_dataset("frames", shape=(0, D), maxshape=(None, D), dtype=np.float32,
                                chunks=(CHUNK_ROWS, D))
        flags = f.create_dataset("voiced", shape=(0,), maxshape=(None,), dtype=np.uint8,
                                 chunks=(CHUNK_ROWS * 16,)) if raw else None
        pending, pending_flags, n_pending = [], [], 0

        def flush():  # large appends: one resize per block of frames, not per utterance
            nonlocal n_pending
            if n_pending:
                end = len(data)
                data.resize(end + n_pending, axis=0)
                data[end:] = np.concatenate(pending)
                if raw:
                    flags.resize(end + n_pending, axis=0)
                    flags[end:] = np.concatenate(pending_flags)
                pending.clear()
                pending_flags.clear()
                n_pending = 0

        for utt, frames, label, speaker, *layout in utterances:  # raw: (voiced,) or (voiced, recording sums)
            frames = np.asarray(frames, dtype=np.float32)
            if frames.ndim != 2 or frames.shape[1] != D:
                raise DataError(f"utterance {utt!r}: frames of shape {frames.shape}, expected (n, {D})")
            if utt in seen:
                raise DataError(f"utterance id {utt!r} occurs twice")
            seen.add(utt)
            if raw:
                mask = np.asarray(layout[0], dtype=bool)
                if mask.shape != (len(frames),):
                    raise DataError(f"utterance {utt!r}: {mask.shape} voiced flags for {len(frames)} frames")
                pending_flags.append(mask.astype(np.uint8))
                sums.append(np.stack([frame_sums(frames), frame_sums(frames[mask])]))
                units.extend(layout[1:])
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
        if raw:  # (U, 2, 1 + 2D): count, sums and sums of squares of all, then of the voiced, frames
            index.create_dataset("sums", data=np.array(sums).reshape(len(ids), 2, 1 + 2 * D))
            if units:  # segments: the same of each one's recording
                if len(units) != len(ids):
                    raise DataError(f"recording sums for {len(units)} of {len(ids)} utterances")
                index.create_dataset("recording_sums", data=np.array(units).reshape(len(ids), 2, 1 + 2 * D))
        m = f.create_group("manifest")
        m.attrs["data_dir"] = str(data_dir)
        for name, content in (manifest or {}).items():
            m.create_dataset(name, data=content, dtype=text)
    return len(ids)


def convert_archive(src, out, *, overwrite: bool = False) -> int:
    """Rewrite the feature archive ``src`` (any format this code reads) in the current format, as ``out``.

    Frames, index, manifest and skipped list are copied unchanged; ``out`` may not be ``src``, and an existing
    ``out`` is replaced only with ``overwrite`` (once the new archive is complete).  Returns the number of
    utterances.

    Examples
    --------
    ::

        convert_archive("feats_v1.h5", "feats.h5")    # acoustic-gmm convert feats_v1.h5 --out feats.h5
    """
    out = Path(out)
    with writing({out: "out"}, [src], overwrite=overwrite), FeatureArchive(src) as fa:
        if fa.raw:  # rewriting it would store one view of it, and lose the others
            raise DataError(f"{src}: a raw archive (format {fa.format_version}), the current format: nothing to "
                            f"convert")

        def items():
            for i in range(0, len(fa.ids), 4096):  # a few thousand utterances at a time: bounded memory
                ids = fa.ids[i:i + 4096]
                for u, x in zip(ids, fa.utterances(ids)):
                    yield u, x, fa.labels[u] or None, fa.speakers[u] or None

        return write_features(out, items(), config=fa.config, sample_rate=fa.sample_rate, manifest=fa.manifest,
                              skipped=fa.skipped, data_dir=fa.data_dir)
