"""The MFCC front end: configuration, audio reading and frame extraction.

Frames follow HTK/Kaldi conventions: a frame every ``hop_ms``, each ``win_ms`` long, the
first starting at sample 0 and none running past the end (``1 + (n - win) // hop``
frames).  The filters are librosa's (mel filter bank, window); framing, FFT and DCT are
done here with numpy on the whole utterance at once, which is several times faster than
``librosa.feature.mfcc`` and gives the same numbers for the same settings (a test checks
it; librosa's dB scale is ``10 / ln 10`` times our natural log).

Examples
--------
>>> import numpy as np
>>> cfg = MfccConfig(deltas=0, cmvn="none")
>>> t = np.arange(8000) / 8000
>>> extract(np.sin(2 * np.pi * 440 * t), 8000, config=cfg).shape   # 1 s at 8 kHz: 1 + (8000 - 200) // 80
(98, 13)
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import DataError, ParameterError

__all__ = ["MfccConfig", "read_audio", "extract", "extract_segments", "mfcc_frames", "add_deltas", "vad_mask",
           "normalise", "n_frames", "frontend", "frontend_arrays", "preload_frontend", "check_signal"]

LOG_FLOOR = 1e-10  # floor on mel and frame energies: log(0) never reaches an archive


def _opt(default, help, choices=None):
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass(frozen=True)
class MfccConfig:
    """Everything that decides what the frames look like; stored in every archive and model.

    Examples
    --------
    >>> cfg = MfccConfig(n_mfcc=20, cmvn="meanvar")
    >>> MfccConfig.from_json(cfg.to_json()) == cfg
    True
    >>> cfg.n_features
    60
    """

    sample_rate: int | None = _opt(None, "resample every file to this rate (Hz); default: keep the files' own "
                                         "rate, and report files whose rate differs from the first file's")
    n_mfcc: int = _opt(13, "cepstral coefficients, c0 included")
    energy: str = _opt("c0", "first coefficient: c0, or the frame's log energy (HTK's _E)", ("c0", "log-energy"))
    win_ms: float = _opt(25.0, "analysis window length (ms)")
    hop_ms: float = _opt(10.0, "frame shift (ms)")
    n_fft: int | None = _opt(None, "FFT size; default: the next power of two >= the window")
    n_mels: int = _opt(40, "mel filter bank bands")
    fmin: float = _opt(20.0, "lowest filter bank frequency (Hz)")
    fmax: float | None = _opt(None, "highest filter bank frequency (Hz); default: Nyquist")
    preemphasis: float = _opt(0.97, "pre-emphasis coefficient (0 for none)")
    lifter: int = _opt(22, "cepstral liftering, HTK's CEPLIFTER (0 for none)")
    window: str = _opt("hamming", "window function (any scipy.signal.get_window name)")
    dither: float = _opt(1.0 / 32768, "deterministic Gaussian dither added to the samples (0 for none); keeps "
                                      "digital silence from flooring the log spectrum")
    deltas: int = _opt(2, "0: statics only, 1: + deltas, 2: + delta-deltas", (0, 1, 2))
    delta_width: int = _opt(2, "delta regression half-width (HTK's DELTAWINDOW)")
    cmvn: str = _opt("mean", "cepstral mean (and variance) normalisation: per utterance (mean, meanvar), or mean "
                             "and variance over all of a speaker's utterances (speaker: Kaldi's default; an "
                             "utterance with no speaker is its own)", ("none", "mean", "meanvar", "speaker"))
    vad: bool = _opt(False, "drop low-energy frames (for speaker tasks)")
    vad_db: float = _opt(40.0, "with vad: drop frames this many dB below the utterance's loudest frame")
    context_ms: float = _opt(0.0, "with segments: also take the frames up to this many ms beyond each edge "
                                  "(the transitions into and out of a phone carry much of its identity)")

    def __post_init__(self):
        def check(ok, what):
            if not ok:
                raise ParameterError(f"MfccConfig: {what}")
        check(self.sample_rate is None or (isinstance(self.sample_rate, int) and self.sample_rate > 0),
              f"sample_rate must be a positive integer or None, got {self.sample_rate!r}")
        check(isinstance(self.n_mfcc, int) and 1 <= self.n_mfcc <= self.n_mels,
              f"n_mfcc must be between 1 and n_mels={self.n_mels}, got {self.n_mfcc!r}")
        check(self.win_ms > 0 and self.hop_ms > 0, f"win_ms and hop_ms must be positive, got {self.win_ms}, {self.hop_ms}")
        check(self.n_mels >= 1, f"n_mels must be >= 1, got {self.n_mels}")
        check(0 <= self.preemphasis < 1, f"preemphasis must be in [0, 1), got {self.preemphasis}")
        check(self.lifter >= 0 and self.dither >= 0 and self.vad_db > 0 and self.context_ms >= 0,
              "lifter, dither and context_ms must be >= 0 and vad_db > 0")
        check(self.fmin >= 0 and (self.fmax is None or self.fmax > self.fmin),
              f"need 0 <= fmin < fmax, got fmin={self.fmin}, fmax={self.fmax}")
        check(self.delta_width >= 1, f"delta_width must be >= 1, got {self.delta_width}")
        for f in dataclasses.fields(self):
            choices = f.metadata.get("choices")
            check(choices is None or getattr(self, f.name) in choices,
                  f"{f.name} must be one of {list(choices) if choices else ''}, got {getattr(self, f.name)!r}")

    @property
    def n_features(self) -> int:
        return self.n_mfcc * (1 + self.deltas)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> "MfccConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ParameterError(f"MfccConfig: unknown option(s) {unknown}; known: {sorted(names)}")
        return cls(**d)

    @classmethod
    def from_json(cls, text: str) -> "MfccConfig":
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ParameterError(f"MfccConfig: not valid JSON ({exc})") from None
        if not isinstance(d, dict):
            raise ParameterError("MfccConfig: JSON must be an object of option: value")
        return cls.from_dict(d)

    @classmethod
    def from_options(cls, path=None, **options) -> "MfccConfig":
        """The configuration in the JSON file ``path`` (or the defaults), with ``options`` replacing fields.

        Options given as None are left as they are; a choice given as text (``deltas="2"``, as a command
        line gives it) takes the field's type.  Errors name the file.
        """
        values = {}
        if path is not None:
            try:
                values = cls.from_json(Path(path).read_text()).to_dict()
            except (ParameterError, OSError, UnicodeDecodeError) as exc:
                raise ParameterError(f"{path}: {exc}") from None
        defaults = cls()
        for name, value in options.items():
            if value is not None:
                default = getattr(defaults, name, None)
                values[name] = type(default)(value) if isinstance(default, int) and isinstance(value, str) else value
        return cls.from_dict(values)


# --------------------------------------------------------------------------- audio

def read_audio(path, start: float | None = None, end: float | None = None) -> tuple[np.ndarray, int]:
    """Read a sound file as float32 mono in [-1, 1] (stereo is averaged), optionally a slice in seconds.

    Raises :class:`DataError` naming the file for anything soundfile cannot read, an
    empty file, or non-finite samples.
    """
    import soundfile as sf

    try:
        with sf.SoundFile(path) as f:
            sr = f.samplerate
            if f.format == "WAV":
                _check_wav_length(path)
            first = 0 if start is None else int(round(start * sr))
            last = f.frames if end is None else min(f.frames, int(round(end * sr)))
            if first:
                f.seek(first)
            y = f.read(max(0, last - first), dtype="float32", always_2d=True)
    except DataError:
        raise
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError, TypeError ...
        reason = str(exc).replace(f"Error opening {str(path)!r}: ", "")
        raise DataError(f"{path}: cannot read audio ({reason})") from None
    if y.shape[1] > 1:
        y = y.mean(axis=1, dtype=np.float32)
    else:
        y = y[:, 0]
    if len(y) == 0:
        raise DataError(f"{path}: no samples" + ("" if start is None else f" between {start} s and {end} s"))
    return y, sr


def _check_wav_length(path) -> None:
    """Raise if a RIFF file's data chunk declares more bytes than the file holds.

    libsndfile quietly reads what is there, so a cut-off upload would pass for a short one.
    """
    import struct

    with open(path, "rb") as fh:
        head = fh.read(4096)
        size = fh.seek(0, 2)
    pos = 12
    while pos + 8 <= len(head):
        tag, length = head[pos:pos + 4], struct.unpack("<I", head[pos + 4:pos + 8])[0]
        if tag == b"data":
            have = size - pos - 8
            if length not in (0, 0xFFFFFFFF) and have < length:  # 0 / ~0: length unknown (streamed)
                raise DataError(f"{path}: truncated: the header announces {length} bytes of audio, "
                                f"the file holds {have}")
            return
        pos += 8 + length + (length & 1)


def check_signal(y: np.ndarray, where: str) -> None:
    """Reject signals no feature can be computed from: non-finite samples, digital silence."""
    finite = np.isfinite(y)
    if not finite.all():
        raise DataError(f"{where}: {int((~finite).sum())} of {len(y)} samples are NaN or inf")
    if not y.any():
        raise DataError(f"{where}: all {len(y)} samples are zero (digital silence)")


# --------------------------------------------------------------------------- front end

class _Frontend:
    """Constants for one (config, sample rate): window, filter bank, DCT with lifter folded in."""

    def __init__(self, cfg: MfccConfig, sr: int, arrays: dict | None = None):
        if arrays is not None:  # stored with a model set: no librosa import on the way to a first answer
            self.win, self.hop = len(arrays["window"]), max(1, int(round(cfg.hop_ms * sr / 1000)))
            self.n_fft = 2 * (arrays["melfb"].shape[0] - 1)
            self.window, self.melfb, self.dct = (np.asarray(arrays[k], np.float32) for k in ("window", "melfb", "dct"))
            return
        import librosa
        import scipy.fft
        import scipy.ndimage  # noqa: F401  (used by add_deltas; loaded here, before any fork)

        self.win = max(1, int(round(cfg.win_ms * sr / 1000)))
        self.hop = max(1, int(round(cfg.hop_ms * sr / 1000)))
        self.n_fft = cfg.n_fft or 1 << (self.win - 1).bit_length()
        if self.n_fft < self.win:
            raise ParameterError(f"n_fft={self.n_fft} is shorter than the {self.win}-sample window")
        self.window = librosa.filters.get_window(cfg.window, self.win, fftbins=True).astype(np.float32)
        fmax = cfg.fmax if cfg.fmax is not None else sr / 2
        if fmax > sr / 2:
            raise ParameterError(f"fmax={fmax} Hz is above the Nyquist frequency of {sr} Hz audio")
        self.melfb = np.ascontiguousarray(
            librosa.filters.mel(sr=sr, n_fft=self.n_fft, n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=fmax).T,
            dtype=np.float32)  # (bins, mels)
        dct = scipy.fft.dct(np.eye(cfg.n_mels), type=2, norm="ortho", axis=0)[: cfg.n_mfcc].T  # (mels, n_mfcc)
        if cfg.lifter > 0:  # HTK/Kaldi: c_n *= 1 + L/2 sin(pi n / L), c0 untouched
            dct = dct * (1 + cfg.lifter / 2 * np.sin(np.pi * np.arange(cfg.n_mfcc) / cfg.lifter))
        self.dct = np.ascontiguousarray(dct, dtype=np.float32)


_FRONTENDS: dict = {}


def frontend(cfg: MfccConfig, sr: int) -> _Frontend:
    """The (cached) front-end constants for a configuration and sample rate."""
    key = (cfg, sr)
    if key not in _FRONTENDS:
        _FRONTENDS[key] = _Frontend(cfg, sr)
    return _FRONTENDS[key]


def frontend_arrays(cfg: MfccConfig, sr: int) -> dict:
    """The front end's constant arrays, to store beside models that will see new audio."""
    fe = frontend(cfg, sr)
    return {"window": fe.window, "melfb": fe.melfb, "dct": fe.dct}


def preload_frontend(cfg: MfccConfig, sr: int, arrays: dict) -> None:
    """Install stored constants (from :func:`frontend_arrays`) so extraction needs no librosa."""
    _FRONTENDS.setdefault((cfg, sr), _Frontend(cfg, sr, arrays))


_NOISE = np.random.default_rng(20261122).standard_normal(1 << 16).astype(np.float32)


def _noise(n: int) -> np.ndarray:
    """``n`` samples of fixed unit Gaussian noise (the table repeated as needed)."""
    return _NOISE[:n] if n <= len(_NOISE) else np.resize(_NOISE, n)


def n_frames(n_samples: int, cfg: MfccConfig, sr: int) -> int:
    """Frames an utterance of ``n_samples`` gives: ``1 + (n - win) // hop``, or 0 if shorter than a window."""
    fe = frontend(cfg, sr)
    return 0 if n_samples < fe.win else 1 + (n_samples - fe.win) // fe.hop


def mfcc_frames(y: np.ndarray, sr: int, cfg: MfccConfig) -> tuple[np.ndarray, np.ndarray]:
    """Static cepstra (T, n_mfcc) and per-frame log energy (T,), both float32; no deltas, no CMVN."""
    fe = frontend(cfg, sr)
    y = np.asarray(y, dtype=np.float32)
    if cfg.dither > 0:  # a fixed noise table: the same file always gives the same frames
        noise = _noise(len(y))
        y = y + np.float32(cfg.dither) * noise
    if cfg.preemphasis > 0:
        y = np.concatenate([y[:1], y[1:] - np.float32(cfg.preemphasis) * y[:-1]])
    frames = np.lib.stride_tricks.sliding_window_view(y, fe.win)[:: fe.hop] * fe.window
    spec = np.fft.rfft(frames, n=fe.n_fft)
    power = np.square(spec.real) + np.square(spec.imag)  # float32: numpy keeps single precision
    log_energy = np.log(np.maximum(power.sum(1) / fe.n_fft, LOG_FLOOR))  # Parseval: sum of squares
    log_mel = np.log(np.maximum(power @ fe.melfb, LOG_FLOOR))
    ceps = log_mel @ fe.dct
    if cfg.energy == "log-energy":
        ceps[:, 0] = log_energy
    return ceps, log_energy


def add_deltas(ceps: np.ndarray, order: int, width: int) -> np.ndarray:
    """Append HTK regression deltas (and deltas of deltas): ``d_t = sum n (c_{t+n} - c_{t-n}) / 2 sum n^2``.

    Edges repeat the first and last frame, as HTK does.
    """
    if not order:
        return ceps
    from scipy.ndimage import correlate1d  # preloaded by _Frontend, so forked workers share it

    n = np.arange(-width, width + 1, dtype=np.float32)
    kernel = n / np.float32(2 * (n[width + 1:] ** 2).sum())
    out = [ceps]
    for _ in range(order):
        out.append(correlate1d(out[-1], kernel, axis=0, mode="nearest"))
    return np.hstack(out)


def vad_mask(log_energy: np.ndarray, vad_db: float) -> np.ndarray:
    """Frames whose energy is within ``vad_db`` dB of the loudest frame."""
    return log_energy >= log_energy.max() - vad_db * np.log(10) / 10


def normalise(feats: np.ndarray, cmvn: str, keep: np.ndarray | None = None) -> np.ndarray:
    """Per-utterance cepstral mean (and variance) normalisation in place; statistics from ``keep`` frames."""
    if cmvn == "none" or len(feats) == 0:
        return feats
    ref = feats if keep is None else feats[keep]
    feats -= ref.mean(0)
    if cmvn in ("meanvar", "speaker"):  # alone, an utterance is its own speaker
        sd = ref.std(0)
        feats /= np.where(sd > 0, sd, 1)
    return feats


def _analyse(signal, sample_rate: int, cfg: MfccConfig, where: str):
    """Checked, resampled, framed: (cepstra with deltas (T, D), log energy (T,), rate, front end)."""
    y = np.asarray(signal)
    if y.ndim != 1:
        raise DataError(f"{where}: expected a 1-D signal, got shape {y.shape}")
    check_signal(y, where)
    sr = int(sample_rate)
    if cfg.sample_rate and cfg.sample_rate != sr:
        import librosa

        y = librosa.resample(y.astype(np.float32), orig_sr=sr, target_sr=cfg.sample_rate)
        sr = cfg.sample_rate
    fe = frontend(cfg, sr)
    if len(y) < fe.win:
        raise DataError(f"{where}: {len(y)} samples ({1000 * len(y) / sr:.1f} ms) is shorter than one "
                        f"{cfg.win_ms:g} ms analysis window ({fe.win} samples)")
    ceps, log_energy = mfcc_frames(y, sr, cfg)
    return add_deltas(ceps, cfg.deltas, cfg.delta_width), log_energy, sr, fe


def extract(signal, sample_rate: int, *, config: MfccConfig | None = None, where: str = "signal") -> np.ndarray:
    """MFCC (+ deltas, VAD, CMVN) frames of one utterance: float32 (n_frames, config.n_features).

    The signal is resampled to ``config.sample_rate`` when that is set and differs.
    Raises :class:`DataError` (naming ``where``) for NaN/inf samples, digital silence, or a
    signal shorter than one analysis window.
    """
    cfg = config or MfccConfig()
    feats, log_energy, _, _ = _analyse(signal, sample_rate, cfg, where)
    if cfg.vad:
        feats = feats[vad_mask(log_energy, cfg.vad_db)]
    return normalise(feats, cfg.cmvn)


def extract_segments(signal, sample_rate: int, spans, *, config: MfccConfig | None = None,
                     where: str = "recording") -> list[np.ndarray]:
    """Frames of several segments ``[(start_s, end_s), ...]`` of one recording.

    Features are computed over the whole recording, so that deltas see their context and
    CMVN uses the recording's (voiced, with ``vad``) frames; a segment takes the frames
    whose centres fall inside it (widened by ``context_ms`` on each side), or the one nearest
    its middle if none does.
    """
    cfg = config or MfccConfig()
    feats, log_energy, sr, fe = _analyse(signal, sample_rate, cfg, where)
    keep = vad_mask(log_energy, cfg.vad_db) if cfg.vad else np.ones(len(feats), bool)
    feats = normalise(feats, cfg.cmvn, keep)
    centres = (np.arange(len(feats)) * fe.hop + fe.win / 2) / sr
    ctx = cfg.context_ms / 1000
    out = []
    for start, end in spans:
        lo, hi = np.searchsorted(centres, [start - ctx, end + ctx])
        if hi <= lo:
            lo = int(np.clip(np.searchsorted(centres, (start + end) / 2), 0, len(feats) - 1))
            hi = lo + 1
        out.append(feats[lo:hi][keep[lo:hi]])
    return out
