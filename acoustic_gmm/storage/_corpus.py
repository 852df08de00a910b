"""Feature extraction for a whole data directory: parallel, resumable, atomic.

The recordings, in sorted order, are cut into fixed batches.  Each batch is extracted by
a worker process and written, atomically, as one shard file in ``OUT.partial/``; a
finished shard is never redone.  When every batch is done the shards are merged into
``OUT`` (written to a temporary file and renamed into place) and ``OUT.partial/`` is
removed.  So a crash, a ``kill -9`` or Ctrl-C loses at most the batches in flight: the same
command run again picks up where it stopped, and an ``OUT`` that already exists is never
touched unless replacing it is asked for, and then only by the final rename.  A job that fails
for its data (``strict=True`` stopped it, or no utterance could be extracted) leaves nothing:
no ``OUT.partial/``, and ``OUT`` as it was.  One run at a time writes ``OUT``: it holds the lock
file ``.OUT.lock`` beside it (:func:`acoustic_gmm.storage.locked`) from start to end, and a
second run stops at once.

Bad audio (unreadable, truncated, empty, shorter than a window, digital silence, NaN
samples, another sample rate, a missing file) is reported per utterance and skipped;
with ``strict=True`` the first problem stops the job.  The archive's sample rate is that of
most recordings (or ``MfccConfig.sample_rate``, to which every file is then resampled).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import AcousticGMMError, ArchiveError, DataError
from ..features._analysis import analyse_file, raw_frames, segment_frames, segment_rows, utterance_frames
from ..features._audio import AudioFile
from ..features._config import MfccConfig
from ..features._frontend import frontend
from ..features._normalise import speaker_cmvn
from ..features._view import SLIDING, frame_sums
from ._archive_write import write_features
from ._datadir import DataDir, read_data_dir
from ._hdf5 import (
    FORMAT_VERSION,
    LOADER_ERRORS,
    atomic_h5,
    checked_attr,
    checked_dataset,
    checked_json,
    checked_values,
    open_h5,
)
from ._outputs import check_free_space, writing
from ._parallel import parallel_map, progress_bar

__all__ = ["ExtractionReport", "extract_corpus", "extract_files"]


# --------------------------------------------------------------------------- extraction shards

def write_shard(path, ids: list, feats: list, *, n_features: int, problems: list, audio_seconds: float,
                voiced: list | None = None, units: list | None = None) -> None:
    """One extracted batch, atomically: its utterances' frames concatenated (and, for a raw archive, their
    voiced-frame masks), and what went wrong."""
    import h5py

    with atomic_h5(path) as f:
        f.attrs.update(format_version=FORMAT_VERSION, content="shard", problems=json.dumps(problems),
                       audio_seconds=audio_seconds)
        f.create_dataset("ids", data=np.array(ids, dtype=object), dtype=h5py.string_dtype())
        f.create_dataset("n_frames", data=np.array([len(x) for x in feats], dtype=np.int64))
        f.create_dataset("feats", data=np.concatenate(feats) if feats else np.zeros((0, n_features), np.float32))
        if voiced is not None:
            flags = np.concatenate(voiced).astype(np.uint8) if voiced else np.zeros(0, np.uint8)
            f.create_dataset("voiced", data=flags)
        if units is not None:
            f.create_dataset("units", data=np.array(units).reshape(len(ids), 2, 1 + 2 * n_features))


def read_shard(path) -> tuple[list, float, list]:
    """``(problems, audio_seconds, [(utt, frames, voiced or None, recording sums or None), ...])`` of a shard
    written by :func:`write_shard`.

    Checked before the frames are read: text ids, one non-negative count per id, counts adding up
    to the stored frames; any damage is an :class:`~acoustic_gmm.errors.ArchiveError` naming the file.
    """
    path = Path(path)
    where = str(path)
    with open_h5(path, "shard") as f:
        try:
            problems = checked_json(f, "problems", where, ArchiveError, list)
            if not all(isinstance(p, list) for p in problems):
                raise ArchiveError(f"{path}: attribute 'problems' must be a JSON list of lists")
            seconds = float(checked_attr(f, "audio_seconds", where, ArchiveError, "number"))
            ids_ds = checked_dataset(f, "ids", where, ArchiveError, ndim=(1,), kinds="OS", max_values=1 << 31)
            n_ds = checked_dataset(f, "n_frames", where, ArchiveError, ndim=(1,), kinds="iu", max_values=1 << 31)
            feats_ds = checked_dataset(f, "feats", where, ArchiveError, ndim=(2,), kinds="f", max_values=1 << 40)
            if ids_ds.shape != n_ds.shape:
                raise ArchiveError(f"{path}: {len(ids_ds)} ids but {len(n_ds)} frame counts")
            counts = checked_values(n_ds, where, ArchiveError, np.int64)
            if (counts < 0).any() or counts.sum() != feats_ds.shape[0]:
                raise ArchiveError(f"{path}: frame counts (total {int(counts.sum())}) do not match the "
                                   f"{feats_ds.shape[0]} stored frames")
            feats, pos, utterances = checked_values(feats_ds, where, ArchiveError, np.float32), 0, []
            voiced = None
            if "voiced" in f:
                voiced = checked_values(checked_dataset(f, "voiced", where, ArchiveError, ndim=(1,), kinds="iub",
                                                        max_values=1 << 40), where, ArchiveError, np.uint8) != 0
                if len(voiced) != len(feats):
                    raise ArchiveError(f"{path}: {len(voiced)} voiced flags for {len(feats)} frames")
            units = None
            if "units" in f:
                units = checked_values(checked_dataset(f, "units", where, ArchiveError, ndim=(3,), kinds="f",
                                                       max_values=1 << 40), where, ArchiveError)
                if units.shape != (len(counts), 2, 1 + 2 * feats.shape[1]):
                    raise ArchiveError(f"{path}: recording sums of shape {units.shape} for {len(counts)} utterances")
            for i, (utt, n) in enumerate(zip(checked_values(ids_ds, where, ArchiveError, None), counts)):
                utterances.append((utt.decode() if isinstance(utt, bytes) else str(utt), feats[pos:pos + n],
                                   None if voiced is None else voiced[pos:pos + n], None if units is None else units[i]))
                pos += n
        except LOADER_ERRORS as exc:
            if isinstance(exc, ArchiveError):
                raise
            raise ArchiveError(f"{path}: damaged extraction shard ({type(exc).__name__}: {exc})") from None
    return [tuple(p) for p in problems], seconds, utterances


BATCH_SIZE = 256  # recordings per shard: a crash loses little, and per-shard costs (~6 ms) stay small


JOB_FILE = "job.json"


@dataclass
class ExtractionReport:
    """What an extraction did: counts, time, and every utterance it skipped with the reason."""

    out: Path
    n_utterances: int
    n_frames: int
    audio_seconds: float
    seconds: float
    batches_done_before: int = 0
    skipped: list[tuple[str, str, str]] = field(default_factory=list)  # (utt, path, reason)

    def summary(self) -> str:
        speed = self.audio_seconds / self.seconds if self.seconds > 0 else float("inf")
        lines = [f"{self.out}: {self.n_utterances} utterances, {self.n_frames:,} frames, "
                 f"{self.audio_seconds / 60:.1f} min of audio in {self.seconds:.1f} s ({speed:,.0f}x real time)"]
        if self.batches_done_before:
            lines.append(f"resumed: {self.batches_done_before} batch(es) were already done")
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} utterance(s) ({_kind_counts(self.skipped)}):")
            lines += [f"  {utt} ({path}): {reason}" for utt, path, reason in self.skipped[:20]]
            if len(self.skipped) > 20:
                lines.append(f"  ... and {len(self.skipped) - 20} more (all are listed in the archive)")
        return "\n".join(lines)


def plan_batches(dd: DataDir, batch_size: int = BATCH_SIZE) -> list[list[tuple]]:
    """Recordings in sorted order, ``batch_size`` at a time: ``[(rec, path, [(utt, start, end)...])...]``."""
    per_rec: dict[str, list] = {}
    for utt in dd.utterances:
        rec, _, start, end = dd.source(utt)
        per_rec.setdefault(rec, []).append((utt, start, end))
    recs = [(rec, str(dd.wav[rec]), sorted(per_rec[rec], key=lambda u: (u[1] or 0.0, u[0])))
            for rec in sorted(per_rec)]
    return [recs[i:i + batch_size] for i in range(0, len(recs), batch_size)]


def _reason(exc: Exception, path: str) -> str:
    text = str(exc)
    return text[len(path) + 2:] if text.startswith(f"{path}: ") else text


def _check_file(path) -> None:
    if os.path.isdir(path):
        raise DataError(f"{path}: is a directory, not an audio file")
    if not os.path.isfile(path):
        if os.path.islink(path):
            try:
                os.stat(path)
            except OSError as exc:  # a loop or a link to nothing: say which, not "not found"
                raise DataError(f"{path}: a symbolic link that cannot be followed ({exc.strerror})") from None
        if os.path.exists(path):
            raise DataError(f"{path}: not a regular file (a FIFO, socket or device), not an audio file")
        raise DataError(f"{path}: file not found")


def extract_recording(rec_path: str, utts: list, config: MfccConfig, sample_rate: int, *, given_rate: bool = False,
                      raw: bool = False):
    """Frames of each utterance of one recording, and the seconds of audio read.

    The file is read a block at a time (:func:`~acoustic_gmm.features.analyse_file`): memory is
    the recording's frames, not its samples, so hours-long recordings are fine.

    ``given_rate``: ``sample_rate`` was fixed by the caller (the rate a model set was trained at), not
    chosen from the corpus, and a file at another rate is told so.

    Returns ``([(utt, frames or None, reason or None), ...], seconds)``; with ``raw`` the frames are a pair: the
    frames before VAD and CMVN and the voiced-frame mask (:func:`~acoustic_gmm.features.raw_frames`), and for a
    segment a triple, with its recording's :func:`~acoustic_gmm.features.frame_sums` (all, voiced).
    """
    duration = 0.0
    try:
        _check_file(rec_path)
        with AudioFile(rec_path) as audio:
            sr = audio.sample_rate
            duration = audio.n_samples / sr
            if config.sample_rate is None and sr != sample_rate and given_rate:
                raise DataError(f"{rec_path}: sample rate {sr} Hz, but the models were trained on {sample_rate} Hz "
                                f"audio: resample the file to {sample_rate} Hz first")
            if config.sample_rate is None and sr != sample_rate:
                raise DataError(f"{rec_path}: sample rate {sr} Hz differs from the archive's {sample_rate} Hz "
                                f"(the rate of most recordings): pass sample_rate={sample_rate} "
                                f"(MfccConfig.sample_rate) to resample every file to {sample_rate} Hz, "
                                f"or sample_rate={sr} to resample every file to {sr} Hz")
            analysis = analyse_file(audio, config=config)
        duration = analysis.duration
        whole = len(utts) == 1 and utts[0][1] is None
        if raw and whole:
            feats, voiced = raw_frames(analysis)
            if config.vad and not voiced.any():  # what utterance_frames refuses, so the archive's own view can
                raise DataError(f"no frames left after VAD ({config.vad_rule} rule: all {len(voiced)} frames "
                                f"are silent)")
            return [(utts[0][0], (feats, voiced), None)], duration
        if whole:
            return [(utts[0][0], utterance_frames(analysis), None)], duration
        if raw:  # each segment's rows, and its recording's sums: per-utterance CMVN of a segment uses them all
            every, voiced = raw_frames(analysis)
            unit = np.stack([frame_sums(every), frame_sums(every[voiced])])
            feats = [(every[lo:hi].copy(), voiced[lo:hi].copy(), unit)
                     for lo, hi in segment_rows(analysis, [(s, e) for _, s, e in utts])]
        else:
            feats = segment_frames(analysis, [(s, e) for _, s, e in utts])
    except DataError as exc:
        return [(utt, None, _reason(exc, rec_path)) for utt, _, _ in utts], duration
    out = []
    # a segments file's times are rounded: an end up to one analysis window past the recording is its end
    overshoot = config.win_ms / 1000
    for (utt, start, end), f in zip(utts, feats):
        if start >= duration:
            out.append((utt, None, f"segment {start:g}-{end:g} s starts after the recording's end ({duration:.3f} s)"))
        elif end > duration + overshoot:  # cut silently, it changed what the utterance was
            out.append((utt, None, f"segment {start:g}-{end:g} s ends after the recording's end ({duration:.3f} s)"))
        elif (int(f[1].sum()) if raw and config.vad else len(f[0]) if raw else len(f)) == 0:
            out.append((utt, None, f"segment {start:g}-{end:g} s has no frames left after VAD"))
        else:
            out.append((utt, f, None))
    return out, duration


def _run_batch(task) -> dict:
    """Extract one batch and write its shard atomically (runs in a worker process)."""
    index, batch, config_json, sample_rate, shard, strict, raw = task
    config = MfccConfig.from_json(config_json)
    ids, feats, voiced, units, problems, seconds = [], [], [], [], [], 0.0
    for _, path, utts in batch:
        results, duration = extract_recording(path, utts, config, sample_rate, raw=raw)
        for utt, frames, reason in results:
            if reason is not None:
                if strict:
                    raise DataError(f"{utt} ({path}): {reason}")
                problems.append((utt, path, reason))
            else:
                ids.append(utt)
                if raw:
                    frames, mask, *unit = frames
                    voiced.append(mask)
                    units.extend(unit)
                feats.append(frames)
        seconds += duration
    write_shard(shard, ids, feats, n_features=config.n_features, problems=problems, audio_seconds=seconds,
                voiced=voiced if raw else None, units=units or None)  # units: segments' recording sums
    return {"index": index, "n": sum(len(u) for _, _, u in batch)}


_run_batch.preload = ("h5py",)  # write_shard's; see parallel_map


def _extract_files_batch(task) -> list:
    paths, config_json, sample_rate, given = task
    config = MfccConfig.from_json(config_json)
    return [extract_recording(p, [(p, None, None)], config, sample_rate, given_rate=given)[0][0][1:] for p in paths]


def extract_files(paths, *, config: MfccConfig | None = None, jobs: int | None = None,
                  sample_rate: int | None = None, batch_size: int = BATCH_SIZE, one_speaker: bool = False) -> list:
    """Features of many audio files in parallel: ``[(frames or None, reason or None), ...]`` in order.

    A file that cannot be used gets ``None`` and the reason.  Without ``config.sample_rate``,
    every file must have the rate of most of the readable ones (or ``sample_rate`` if given).
    With ``cmvn="speaker"`` each file is its own speaker, unless ``one_speaker`` says they are all
    one speaker's: then they are normalised together, as :func:`extract_corpus` would.

    Examples
    --------
    ::

        results = extract_files(["a.wav", "b.wav"], config=MfccConfig())
        [None if x is None else x.shape for x, why in results]   # [(98, 39), None]
    """
    config = config or MfccConfig()
    together = one_speaker and config.cmvn == "speaker"
    worker_config = dataclasses.replace(config, cmvn="none") if together else config
    paths = [str(p) for p in paths]
    given = sample_rate is not None
    sample_rate = sample_rate or config.sample_rate or _survey(config, [[(p, p, [(p, None, None)]) for p in paths]])[0]
    frontend(config, sample_rate)
    tasks = [(paths[i:i + batch_size], worker_config.to_json(), sample_rate, given)
             for i in range(0, len(paths), batch_size)]
    with parallel_map(_extract_files_batch, tasks, jobs) as results:
        out = [item for batch in results for item in batch]
    if together and any(x is not None for x, _ in out):
        mean, scale = speaker_cmvn(("", x) for x, _ in out if x is not None)[""]
        out = [(x if x is None else ((x - mean) * scale).astype(np.float32), why) for x, why in out]
    return out


def _survey(config: MfccConfig, batches) -> tuple[int, float]:
    """``(sample rate to extract at, at least this many frames)``: the configured rate, or that of most of the
    readable files; the frames are those of the segments or, without segments, the recordings, before VAD (for
    the free-space check before the work).

    Only the headers are read (a WAV header with numpy, anything else with soundfile): a few tens
    of microseconds a file.  A tie goes to the rate met first in the batches' order.
    """
    rates: Counter = Counter()
    problems, frames = [], 0.0
    for _, path, utts in (rec for batch in batches for rec in batch):
        try:
            _check_file(path)
            with AudioFile(path) as audio:
                rates[audio.sample_rate] += 1
                length = audio.n_samples / audio.sample_rate
        except Exception as exc:  # unreadable, missing, empty: its batch reports it
            problems.append((os.path.basename(path), path, _reason(exc, path)))
            continue
        for _, start, end in utts:  # a frame a hop, less the window's overhang (librosa's padding adds frames)
            seconds = min(length, length if end is None else end) - (start or 0.0)
            frames += max(0.0, (1000 * seconds - config.win_ms) / config.hop_ms)
    if not rates and not config.sample_rate:
        raise DataError(f"none of the {len(problems)} audio file(s) can be read; nothing to extract: "
                        + describe_problems(problems))
    return config.sample_rate or rates.most_common(1)[0][0], frames


_KINDS = [("file not found", "file not found"), ("is a directory", "a directory, not a file"),
          ("cannot read audio", "cannot read audio"),
          ("truncated", "truncated"), ("no samples", "no samples"), ("digital silence", "digital silence"),
          ("NaN or inf", "NaN or inf samples"), ("shorter than one", "shorter than one analysis window"),
          ("sample rate", "another sample rate"), ("after VAD", "no frames left after VAD"),
          ("after the recording's end", "segment after the recording's end")]


def _kind(reason: str) -> str:
    for needle, kind in _KINDS:
        if needle in reason:
            return kind
    return reason.split(":")[0][:60]


def _kind_counts(problems) -> str:
    """How many ``(utt, path, reason)`` problems of each kind: "3 digital silence, 1 file not found"."""
    from collections import Counter

    return ", ".join(f"{n} {kind}" for kind, n in Counter(_kind(r) for _, _, r in problems).most_common())


def describe_problems(problems, first: int = 3) -> str:
    """``(utt, path, reason)`` problems in a line: how many of each kind, then the first few in full."""
    counts = _kind_counts(problems)
    shown = "; ".join(f"{u} ({p}): {r}" for u, p, r in problems[:first])
    more = f"; ... and {len(problems) - first} more" if len(problems) > first else ""
    return f"{counts}; first problems: {shown}{more}"


def _job_description(dd: DataDir, config: MfccConfig, batch_size: int) -> dict:
    tables = json.dumps(dd.tables(), sort_keys=True).encode()
    return {"config": config.to_dict(), "data_dir": str(dd.path.resolve()), "batch_size": batch_size,
            "tables_sha1": hashlib.sha1(tables).hexdigest(),
            "layout": "raw" if raw_layout(dd, config) else "normalised"}


def raw_layout(dd: DataDir, config: MfccConfig) -> bool:
    """Whether ``dd`` is extracted to a raw archive (frames before VAD and CMVN, normalised when read: any view of
    :mod:`acoustic_gmm.features._view`), or with the normalisation of ``config`` applied once: an HTK front end
    (HCopy's frames are what it gives), and segments with sliding-window CMVN (a segment's windows run over its
    whole recording, which a raw archive does not keep; it keeps the recording's sums, for per-utterance CMVN)."""
    return not (config.htk or config.computed_by or (dd.segments and config.cmvn in SLIDING))


def _same_setting(key: str, before, now) -> bool:
    if key == "config" and isinstance(before, dict):  # a job file from before a new field: it has the default
        from ..features._config import MfccConfig

        try:
            return MfccConfig.from_dict(before) == MfccConfig.from_dict(now)
        except AcousticGMMError:
            return False
    return before == now


def _prepare_partial(partial: Path, job: dict) -> None:
    job_file = partial / JOB_FILE
    if partial.exists():
        try:
            before = json.loads(job_file.read_text())
        except (OSError, ValueError):
            raise ArchiveError(f"{partial}: an unfinished extraction without a readable {JOB_FILE}; "
                               f"delete the folder to start over") from None
        differ = [k for k in job if k != "sample_rate" and not _same_setting(k, before.get(k), job[k])]
        if differ:
            raise ArchiveError(f"{partial}: an unfinished extraction with other settings ({', '.join(differ)} "
                               f"differ); rerun it with the same ones, or delete the folder to start over")
        return
    partial.mkdir(parents=True)
    try:
        _write_job(partial, job)
    except BaseException:  # a folder without its job file would stop every later run: it goes
        shutil.rmtree(partial, ignore_errors=True)
        raise


def _write_job(partial: Path, job: dict) -> None:
    tmp = partial / (JOB_FILE + ".tmp")
    try:
        tmp.write_text(json.dumps(job, indent=1, sort_keys=True))
        os.replace(tmp, partial / JOB_FILE)
    except OSError as exc:  # a full disk names the file, not "[Errno 28]" alone
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise OSError(exc.errno, exc.strerror, str(partial / JOB_FILE)) from None


def extract_corpus(data_dir, out, *, config: MfccConfig | None = None, jobs: int | None = None,
                   strict: bool = False, overwrite: bool = False, batch_size: int = BATCH_SIZE,
                   progress: bool | None = None, client=None) -> ExtractionReport:
    """Extract features for every utterance of ``data_dir`` into the archive ``out``.

    Parameters
    ----------
    jobs : worker processes (default: all cores); 1 runs in this process.
    strict : stop at the first bad utterance instead of reporting and skipping it.
    overwrite : replace an existing ``out`` (only once the new archive is complete).
    progress : progress bar; None shows it only on a terminal.
    client : a ``dask.distributed.Client`` or a scheduler address: batches run as tasks on its workers,
        which must see the audio and ``out``'s folder at the same paths (a shared file system); the
        merge runs here.

    Examples
    --------
    ::

        report = extract_corpus("data/train", "feats.h5", config=MfccConfig(vad=True))
        print(report.summary())
    """
    t0 = time.perf_counter()
    config = config or MfccConfig()
    dd = read_data_dir(data_dir)
    out = Path(out)
    # One run per output: a second one stops here, before it looks at OUT or OUT.partial/.
    with writing({out: "out"}, [data_dir], overwrite=overwrite):
        out = out.resolve()  # workers elsewhere write their shards by this path
        partial = out.parent / (out.name + ".partial")
        batches = plan_batches(dd, batch_size)
        job = _job_description(dd, config, batch_size)
        _prepare_partial(partial, job)  # refuses another job's folder without touching it
        try:
            report, done_before = _extract(dd, out, partial, batches, config, jobs, strict, progress, client)
        except (KeyboardInterrupt, OSError) as exc:
            if isinstance(exc, AcousticGMMError):
                shutil.rmtree(partial, ignore_errors=True)
            else:  # interrupted, or the disk/system failed: finished shards are kept, to resume from
                _remove_temporaries(partial)
            raise
        except BaseException:  # bad data (--strict, nothing extracted), a bug: nothing to resume
            shutil.rmtree(partial, ignore_errors=True)
            raise
        shutil.rmtree(partial)
    report.seconds = time.perf_counter() - t0
    report.batches_done_before = done_before
    return report


def _remove_temporaries(partial: Path) -> None:
    """Temporary files of writers that were stopped (every worker is gone by now)."""
    for tmp in partial.glob(".*.tmp"):
        with contextlib.suppress(OSError):
            tmp.unlink()


def _extract(dd: DataDir, out: Path, partial: Path, batches, config: MfccConfig, jobs, strict, progress, client):
    saved = json.loads((partial / JOB_FILE).read_text())
    rate, n_frames = _survey(config, batches)
    if "sample_rate" not in saved:  # fixed once, so a resumed job keeps the rate it started with
        saved["sample_rate"] = rate
        _write_job(partial, saved)
    sample_rate = saved["sample_rate"]

    shards = [partial / f"batch-{i:06d}.h5" for i in range(len(batches))]
    pending = [i for i, s in enumerate(shards) if not s.exists()]
    raw = raw_layout(dd, config)
    # the archive and the shards still to write (kept until the end, to resume from); a raw archive keeps every
    # frame and its voiced flag; a normalised one with VAD counts half the frames, so that the check never
    # refuses a job that fits: a shortfall it misses still ends in the write's one-line error
    frame_bytes = n_frames * (config.n_features * 4 + 1 if raw else config.n_features * 4 * (0.5 if config.vad else 1))
    check_free_space(out, frame_bytes * (1 + len(pending) / len(batches)), what="the features")
    # Speaker CMVN needs every utterance of a speaker: workers leave the frames as they are, the merge normalises.
    worker_config = dataclasses.replace(config, cmvn="none") if config.cmvn == "speaker" else config
    tasks = [(i, batches[i], worker_config.to_json(), sample_rate, str(shards[i]), strict, raw) for i in pending]
    frontend(config, sample_rate)  # filters and imports built once, here, and inherited by forked workers
    sizes = [sum(len(u) for _, _, u in b) for b in batches]
    with contextlib.ExitStack() as stack:
        if client is not None:
            from ._parallel import connect

            client = stack.enter_context(connect(client))
        bar = stack.enter_context(progress_bar(sum(sizes), desc="features", unit="utt", progress=progress))
        bar.update(sum(sizes) - sum(sizes[i] for i in pending))
        results = stack.enter_context(parallel_map(_run_batch, tasks, jobs, client))

        def finished_shards():
            todo = set(pending)
            for i, shard in enumerate(shards):
                if i in todo:
                    bar.update(next(results)["n"])
                yield shard

        report = _merge(dd, finished_shards(), out, config, sample_rate, partial, raw)
    return report, len(batches) - len(pending)


def _merge(dd: DataDir, shards, out: Path, config: MfccConfig, sample_rate: int, tmp_dir: Path,
           raw: bool) -> ExtractionReport:
    """Copy the shards, in order, into the archive ``out`` (its temporary file lives in ``tmp_dir``): raw frames
    with their voiced flags, or frames normalised here (per speaker: every shard is read first)."""
    problems, totals = [], {"frames": 0, "audio": 0.0}
    norm = None
    if config.cmvn == "speaker" and not raw:
        shards = list(shards)  # every shard first: a speaker's statistics span them all
        norm = speaker_cmvn((dd.utt2spk.get(u, u), x) for shard in shards for u, x, *_ in read_shard(shard)[2])

    def items():
        # a shard's problems count even when none of its utterances could be extracted
        n = 0
        for shard_problems, seconds, utterances in map(read_shard, shards):
            problems.extend(shard_problems)
            totals["audio"] += seconds
            for utt, frames, voiced, unit in utterances:
                totals["frames"] += int(voiced.sum()) if raw and config.vad else len(frames)  # as the archive reads
                if norm is not None:
                    mean, scale = norm[dd.utt2spk.get(utt, utt)]
                    frames = ((frames - mean) * scale).astype(np.float32)
                n += 1
                yield (utt, frames, dd.utt2label.get(utt), dd.utt2spk.get(utt)) + (
                    () if not raw else (voiced,) if unit is None else (voiced, unit))
        if n == 0:  # raised inside write_features: its temporary file goes, and ``out`` is never replaced
            raise DataError(f"{dd.path}: no utterance could be extracted from its {len(problems)} utterance(s): "
                            + describe_problems(problems))

    n = write_features(out, items(), config=config, sample_rate=sample_rate, manifest=dd.tables(), skipped=problems,
                       data_dir=str(dd.path.resolve()), tmp_dir=tmp_dir, raw=raw)
    return ExtractionReport(out, n, totals["frames"], totals["audio"], 0.0, 0, problems)
