"""Frames from audio: the one place a file, a segment or an array becomes normalised feature frames.

:func:`analyse_file` reads a file block by block and runs the front end (``_frontend``), then VAD, CMVN and, for
HTK configurations, ENORMALISE and ``_Z`` on the whole utterance; :func:`segment_frames` cuts segments out of a
recording's frames; :func:`extract`, :func:`extract_file` and :func:`extract_segments` are the array-in, array-out
faces of the same path.

Examples
--------
>>> import numpy as np
>>> cfg = MfccConfig(deltas=0, cmvn="none")
>>> t = np.arange(8000) / 8000
>>> extract(np.sin(2 * np.pi * 440 * t), 8000, config=cfg).shape   # 1 s at 8 kHz: 1 + (8000 - 200) // 80
(98, 13)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DataError, ParameterError
from ._audio import AudioFile, check_signal
from ._config import MfccConfig
from ._frontend import (
    FRAME_BLOCK,
    Frontend,
    block_reader,
    check_block,
    default_config,
    deltas_in_place,
    frontend,
    stream_statics,
)
from ._htk_config import HtkSettings
from ._htk_dsp import normalise_log_energy, regression
from ._normalise import compact, kaldi_energy_offset, normalise, vad_mask

__all__ = ["extract", "extract_segments", "extract_file", "raw_frames", "segment_rows"]


# --------------------------------------------------------------------------- utterances

@dataclass
class Analysis:
    """Frames of one recording before VAD and CMVN, from :func:`analyse` or :func:`analyse_file`.

    :func:`utterance_frames` and :func:`segment_frames` turn it into features; they work in
    place, on ``feats``.
    """

    feats: np.ndarray       # (T, config.n_features) float32: cepstra and their deltas
    log_energy: np.ndarray  # (T,) float32, for VAD
    sample_rate: int        # of the frames (the configured rate when the audio was resampled)
    config: MfccConfig
    duration: float         # seconds of audio analysed


def _too_short(n: int, sr: int, cfg: MfccConfig, fe: Frontend, where) -> DataError:
    win_ms = 1000 * fe.win / sr if cfg.htk else cfg.win_ms
    return DataError(f"{where}: {n} samples ({1000 * n / sr:.1f} ms) is shorter than one "
                     f"{win_ms:g} ms analysis window ({fe.win} samples)")


def _n_columns(cfg: MfccConfig) -> int:
    """Columns the frames are computed in: the features, or for HTK all statics and their differences (before _N)."""
    s = cfg.htk_settings
    return cfg.n_features if s is None else s.n_statics * (1 + len(s.windows))


def _finish(feats, energy, sr: int, cfg: MfccConfig, duration: float, block_frames: int) -> Analysis:
    if cfg.htk:
        return Analysis(_htk_finish(feats, cfg.htk_settings, block_frames), energy, sr, cfg, duration)
    deltas_in_place(feats, cfg.n_mfcc, (cfg.delta_width,) * cfg.deltas, block_frames)
    return Analysis(feats, energy, sr, cfg, duration)


def _htk_finish(feats: np.ndarray, s: HtkSettings, block_frames: int) -> np.ndarray:
    """The utterance-wide steps of HTK's front end, in HParm's order, a block at a time, in place.

    ``feats`` (T, n_statics * (1 + orders)) holds the statics.  ENORMALISE (with _E), then the
    deltas, accelerations and thirds (a block with its context frames), then _Z (the mean of the
    cepstra and c0 over the utterance, summed in float64 row after row), then _N (the absolute
    energy column dropped: the rows are moved down within the same buffer).  Returns (T, n_features).
    """
    T, S = len(feats), s.n_statics
    if not T:
        return feats[:, : s.n_features]
    if s.has("E") and s.enormalise:
        e = feats[:, S - 1]
        e_max = e.max()
        for a in range(0, T, block_frames):
            e[a:a + block_frames] = normalise_log_energy(e[a:a + block_frames], e_max, s.sil_floor, s.escale)
    if s.windows:
        deltas_in_place(feats, S, s.windows, block_frames,
                         lambda part, width: regression(part, width, s.simple_diffs))
    if s.has("Z"):
        cols = s.n_base + s.has("0")
        total = None
        for a in range(0, T, block_frames):  # axis-0 sums add row after row: the same sums whatever the blocks
            part = feats[a:a + block_frames, :cols].astype(np.float64)
            if total is not None:
                part = np.concatenate([total[None], part])
            total = np.add.reduce(part, axis=0)
        mean = (total / T).astype(np.float32)
        for a in range(0, T, block_frames):
            feats[a:a + block_frames, :cols] -= mean
    if s.has("N"):  # HTK drops the absolute energy (or c0) when it hands the vector over: rows move down in place
        D = feats.shape[1] - 1
        out = feats.reshape(-1)[: T * D].reshape(T, D)
        for a in range(0, T, block_frames):
            b = min(T, a + block_frames)
            out[a:b] = np.concatenate([feats[a:b, : S - 1], feats[a:b, S:]], axis=1)  # read before written
        feats = out
    return feats


def analyse(signal, sample_rate: int, *, config: MfccConfig | None = None, where: str = "signal",
            block_frames: int = FRAME_BLOCK) -> Analysis:
    """Frames (cepstra and deltas) and log energies of a signal in memory, ``block_frames`` frames at a time.

    The signal is resampled to ``config.sample_rate`` when that is set and differs.  Raises
    :class:`DataError` (naming ``where``) for NaN/inf samples, digital silence, or a signal
    shorter than one analysis window.
    """
    cfg = config or default_config()
    block_frames = check_block(block_frames)
    y = np.asarray(signal)
    if y.ndim != 1:
        raise DataError(f"{where}: expected a 1-D signal, got shape {y.shape}")
    check_signal(y, where)
    sr = int(sample_rate)
    duration = len(y) / sr
    if cfg.sample_rate and cfg.sample_rate != sr:
        import librosa

        y = librosa.resample(y.astype(np.float32), orig_sr=sr, target_sr=cfg.sample_rate)
        sr = cfg.sample_rate
    fe = frontend(cfg, sr)
    if len(y) < fe.win:
        raise _too_short(len(y), sr, cfg, fe, where)
    feats, energy = stream_statics(block_reader(y), len(y), fe, cfg, _n_columns(cfg), block_frames)
    return _finish(feats, energy, sr, cfg, duration, block_frames)


def analyse_file(source, *, config: MfccConfig | None = None, block_frames: int = FRAME_BLOCK) -> Analysis:
    """:func:`analyse` of a sound file, read a block at a time: memory is the frames, not the signal.

    ``source`` is a path or an :class:`AudioFile` not read from yet.  The frames are
    identical, bit for bit, to ``analyse(*read_audio(path))``, and the same problems raise the
    same :class:`DataError` (naming the file).  The one exception to bounded memory: when
    ``config.sample_rate`` asks for another rate, the whole file is read and resampled at once
    (``librosa.resample``), then framed in blocks.
    """
    cfg = config or default_config()
    if not isinstance(source, AudioFile):
        with AudioFile(source) as audio:
            return analyse_file(audio, config=cfg, block_frames=block_frames)
    audio, block_frames = source, check_block(block_frames)
    if audio.n_read:
        raise ParameterError(f"{audio.path}: analyse_file needs the file from its start; {audio.n_read} samples "
                             f"were already read")
    sr = audio.sample_rate
    if cfg.sample_rate and cfg.sample_rate != sr:
        return analyse(audio.read(audio.n_samples), sr, config=cfg, where=str(audio.path), block_frames=block_frames)
    fe = frontend(cfg, sr)
    read = audio.read
    if audio.n_samples <= (block_frames - 1) * fe.hop + fe.win + fe.hop:
        read = block_reader(audio.read(audio.n_samples))  # one block: one read (soundfile costs ~0.1 ms a call)
    feats, energy = stream_statics(read, audio.n_samples, fe, cfg, _n_columns(cfg), block_frames)
    audio.read_rest()  # the samples after the last frame are checked too, as check_signal checks them
    audio.check(str(audio.path))
    if audio.n_read < fe.win:
        raise _too_short(audio.n_read, sr, cfg, fe, audio.path)
    return _finish(feats, energy, sr, cfg, audio.n_read / sr, block_frames)


def _voiced(analysis: Analysis) -> np.ndarray:
    """The configured VAD's mask of the recording's frames."""
    cfg = analysis.config
    offset = 0.0
    if cfg.vad_rule == "kaldi" and not cfg.htk:  # HTK's log energies are already Kaldi's raw 16-bit ones
        offset = kaldi_energy_offset(frontend(cfg, analysis.sample_rate).window)
    return vad_mask(analysis.log_energy, cfg.vad_db, rule=cfg.vad_rule, energy_offset=offset)


def utterance_frames(analysis: Analysis) -> np.ndarray:
    """The features of a whole recording as one utterance: VAD (if configured), then CMVN, in place.

    CMVN (any of its kinds) sees only the voiced frames: a sliding window spans N voiced frames.
    Raises :class:`DataError` if VAD leaves no frame (only Kaldi's rule can: ours keeps the loudest).
    """
    cfg = analysis.config
    feats = analysis.feats
    if cfg.vad:
        keep = _voiced(analysis)
        if not keep.any():
            raise DataError(f"no frames left after VAD ({cfg.vad_rule} rule: all {len(keep)} frames are silent)")
        feats = compact(feats, keep)
    return normalise(feats, cfg.cmvn, cmvn_window=cfg.cmvn_window)


def raw_frames(analysis: Analysis) -> tuple[np.ndarray, np.ndarray]:
    """A whole recording's frames before VAD and CMVN, and its voiced-frame mask under the configuration's VAD
    rule (whether or not ``vad`` is on): what a raw archive stores, for :mod:`~acoustic_gmm.features._view` to
    make any view of.  Its view with the analysis's own configuration is :func:`utterance_frames`."""
    return analysis.feats, _voiced(analysis)


def segment_rows(analysis: Analysis, spans) -> list[tuple[int, int]]:
    """The rows ``[lo, hi)`` of a recording's frames each segment ``(start_s, end_s)`` takes: the frames whose
    centres fall inside it (widened by ``context_ms`` on each side), or the one nearest its middle if none does."""
    cfg, sr = analysis.config, analysis.sample_rate
    fe = frontend(cfg, sr)
    centres = (np.arange(len(analysis.feats)) * fe.hop + fe.win / 2) / sr
    ctx = cfg.context_ms / 1000
    rows = []
    for start, end in spans:
        lo, hi = np.searchsorted(centres, [start - ctx, end + ctx])
        if hi <= lo:
            lo = int(np.clip(np.searchsorted(centres, (start + end) / 2), 0, len(centres) - 1))
            hi = lo + 1
        rows.append((int(lo), int(hi)))
    return rows


def segment_frames(analysis: Analysis, spans) -> list[np.ndarray]:
    """The features of several segments ``[(start_s, end_s), ...]`` of one analysed recording.

    CMVN uses the recording's (voiced, with ``vad``) frames, sliding windows included, and deltas
    see their context across segment edges; a segment takes the rows :func:`segment_rows` gives.  Each
    segment is its own array.
    """
    cfg = analysis.config
    rows = segment_rows(analysis, spans)
    keep = _voiced(analysis) if cfg.vad else None
    feats = normalise(analysis.feats, cfg.cmvn, keep, cfg.cmvn_window)
    return [feats[lo:hi].copy() if keep is None else feats[lo:hi][keep[lo:hi]] for lo, hi in rows]


def extract(signal, sample_rate: int, *, config: MfccConfig | None = None, where: str = "signal",
            block_frames: int = FRAME_BLOCK) -> np.ndarray:
    """MFCC (+ deltas, VAD, CMVN) frames of one utterance: float32 (n_frames, config.n_features).

    The signal is resampled to ``config.sample_rate`` when that is set and differs.
    Raises :class:`DataError` (naming ``where``) for NaN/inf samples, digital silence, or a
    signal shorter than one analysis window.  ``block_frames`` changes memory use, never a frame.
    """
    return utterance_frames(analyse(signal, sample_rate, config=config, where=where, block_frames=block_frames))


def extract_segments(signal, sample_rate: int, spans, *, config: MfccConfig | None = None,
                     where: str = "recording", block_frames: int = FRAME_BLOCK) -> list[np.ndarray]:
    """Frames of several segments ``[(start_s, end_s), ...]`` of one recording.

    Features are computed over the whole recording, so that deltas see their context and
    CMVN uses the recording's (voiced, with ``vad``) frames; a segment takes the frames
    whose centres fall inside it (widened by ``context_ms`` on each side), or the one nearest
    its middle if none does.  For a recording in a file, ``segment_frames(analyse_file(path),
    spans)`` gives the same frames without the whole signal in memory.
    """
    return segment_frames(analyse(signal, sample_rate, config=config, where=where, block_frames=block_frames), spans)


def extract_file(path, *, config: MfccConfig | None = None, spans=None, block_frames: int = FRAME_BLOCK):
    """Features of a sound file, read a block at a time: the whole file as one utterance, or its ``spans``.

    The same frames as ``extract(*read_audio(path), config=config)`` (or :func:`extract_segments`
    with ``spans``), bit for bit, in memory bounded by the frames themselves.

    Examples
    --------
    ::

        feats = extract_file("meeting.wav", config=MfccConfig(vad=True))   # 2 hours: ~0.3 GB at most
        words = extract_file("meeting.wav", spans=[(1.0, 1.4), (2.5, 3.1)])
    """
    analysis = analyse_file(path, config=config, block_frames=block_frames)
    return utterance_frames(analysis) if spans is None else segment_frames(analysis, spans)
