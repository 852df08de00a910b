"""The MFCC front end: configuration and frame extraction (audio reading is :mod:`acoustic_gmm.audio`).

Frames follow HTK/Kaldi conventions: a frame every ``hop_ms``, each ``win_ms`` long, the
first starting at sample 0 and none running past the end (``1 + (n - win) // hop``
frames).  The filters are librosa's (Slaney mel filter bank, scipy's periodic window),
computed here with numpy so that extracting features never imports librosa or scipy (about a
second of a new process's start-up); framing, FFT and DCT are done here with numpy, which is
several times faster than ``librosa.feature.mfcc`` and gives the same numbers for the same
settings (a test checks it; librosa's dB scale is ``10 / ln 10`` times our natural log).

Memory is bounded whatever the length of a recording: frames are computed
:data:`FRAME_BLOCK` at a time, and :func:`analyse_file` reads a file block by block, so a
recording costs its (n_frames, n_features) float32 output (a 2-hour 8 kHz file: 112 MB) plus
one block's temporaries.  The frames do not depend on the block size, bit for bit: each
block gets the samples before it that its first frame's pre-emphasis needs, the dither is
indexed by absolute sample position, deltas get their context frames, and every matrix
product is done in independent pieces of a fixed number of rows (see :func:`_rows_product`).
VAD and CMVN then work in place on the whole utterance's frames, as they always did (sliding-window
CMVN and feature warping a block at a time as well).

HTK's front end: ``MfccConfig.from_htk_config("hcopy.cfg")`` (or the ``htk`` field) computes the
frames as HCopy does, in HTK's column layout (:mod:`acoustic_gmm.htkfront` defines each step);
``win_ms`` and ``hop_ms`` then follow HTK's WINDOWSIZE and TARGETRATE, the other analysis fields keep
their defaults, and there is no dither and no CMVN (``_Z`` in TARGETKIND is HTK's mean subtraction).
The same block-by-block path gives them, bit for bit; ENORMALISE and ``_Z``, which need the whole
utterance, are applied to the utterance's frames afterwards.

Examples
--------
>>> import numpy as np
>>> cfg = MfccConfig(deltas=0, cmvn="none")
>>> t = np.arange(8000) / 8000
>>> extract(np.sin(2 * np.pi * 440 * t), 8000, config=cfg).shape   # 1 s at 8 kHz: 1 + (8000 - 200) // 80
(98, 13)
"""

from __future__ import annotations

import functools
import dataclasses
import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import htkfront
from .audio import AudioFile, check_signal, read_audio
from .errors import DataError, ParameterError

__all__ = ["MfccConfig", "config_differences", "Analysis", "AudioFile", "FRAME_BLOCK", "read_audio", "analyse", "analyse_file",
           "utterance_frames", "segment_frames", "extract", "extract_segments", "extract_file", "mfcc_frames",
           "add_deltas", "vad_mask", "normalise", "n_frames", "frontend", "frontend_arrays", "preload_frontend",
           "check_signal", "mel_filters", "dct_matrix", "window_function", "kaldi_energy_offset",
           "MAX_CMVN_WINDOW"]

LOG_FLOOR = 1e-10  # floor on mel and frame energies: log(0) never reaches an archive
FRAME_BLOCK = 2048  # frames computed at once: a block's temporaries are a few MB, whatever the recording's length
_GEMM_ROWS = 64  # most rows of a matrix product call; FRAME_BLOCK and any block_frames are multiples of it
_GEMM_ONE_THREAD = 1 << 18  # OpenBLAS runs a product on one thread below m * n * k = 65536 * 4
MAX_CMVN_WINDOW = 100_000  # frames: the largest MfccConfig.cmvn_window


def _opt(default, help, choices=None, cli=True):
    return field(default=default, metadata={"help": help, "choices": choices, "cli": cli})


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
    cmvn: str = _opt("speaker", "cepstral mean (and variance) normalisation: mean and variance over all of a "
                                "speaker's utterances (speaker: Kaldi's default for recognition, and the best of "
                                "these for unseen speakers in the defaults study; an utterance with no speaker is "
                                "its own; for speaker recognition use mean or sliding), per utterance (mean, "
                                "meanvar), or over a sliding window of cmvn_window "
                             "frames (sliding: mean, sliding-var: mean and variance, as Kaldi's "
                             "apply-cmvn-sliding; warp: feature warping to a standard normal)",
                     ("none", "mean", "meanvar", "speaker", "sliding", "sliding-var", "warp"))
    cmvn_window: int = _opt(300, "with cmvn sliding, sliding-var or warp: the centred window, in frames (300: "
                                 "3 s at a 10 ms hop), moved inwards to stay whole at the utterance's edges")
    vad: bool = _opt(False, "drop low-energy frames (for speaker tasks)")
    vad_db: float = _opt(40.0, "with vad and vad-rule peak: drop frames this many dB below the utterance's "
                               "loudest frame")
    vad_rule: str = _opt("peak", "with vad: peak (frames within vad_db of the loudest) or kaldi (Kaldi's "
                                 "compute-vad: log energy above 5.5 + half the utterance's mean in at least 60% "
                                 "of the frames within 2 of the frame)", ("peak", "kaldi"))
    context_ms: float = _opt(0.0, "with segments: also take the frames up to this many ms beyond each edge "
                                  "(the transitions into and out of a phone carry much of its identity)")
    htk: str = _opt("", "HTK front end: HCopy's MFCC/FBANK frames for these HTK settings, 'NAME=value ...' "
                        "as in an HCopy configuration (e.g. 'TARGETKIND=MFCC_0_D_A TARGETRATE=100000 "
                        "WINDOWSIZE=250000 NUMCHANS=26'); win_ms and hop_ms then follow WINDOWSIZE and "
                        "TARGETRATE, the other analysis fields keep their defaults, dither is 0 and cmvn "
                        "none; empty: this package's front end")
    computed_by: str = _opt("", "frames imported from another toolkit ('kaldi: feats.scp'): their front end is "
                                "not this package's, which then refuses to compute frames from audio with this "
                                "configuration; empty: frames computed here", cli=False)

    # fields an HTK configuration replaces: left at their defaults when ``htk`` is set
    _HTK_REPLACES = ("n_mfcc", "energy", "win_ms", "hop_ms", "n_fft", "n_mels", "fmin", "fmax", "preemphasis",
                     "lifter", "window", "deltas", "delta_width")

    def __post_init__(self):
        def check(ok, what):
            if not ok:
                raise ParameterError(f"MfccConfig: {what}")
        # Types first: a configuration read from a file (an archive's, a model set's) may hold anything, and
        # the comparisons below would fail on text with a TypeError instead of saying which option is wrong.
        optional = {"sample_rate": int, "n_fft": int, "fmax": float}
        for f in dataclasses.fields(self):
            value, default = getattr(self, f.name), f.default
            want = optional.get(f.name, type(default))
            if value is None and f.name in optional:
                continue
            if want is float:
                ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            elif want is int:
                ok = isinstance(value, int) and not isinstance(value, bool)
            else:
                ok = isinstance(value, want)
            kind = {float: "a finite number", int: "an integer", str: "text", bool: "true or false"}[want]
            check(ok, f"{f.name} must be {kind}, got {value!r}")
        # bounds that keep a damaged configuration from sizing huge front-end arrays
        check(self.n_mels <= 4096 and (self.n_fft is None or 1 <= self.n_fft <= 1 << 20)
              and self.win_ms <= 10_000 and self.hop_ms <= 10_000 and self.delta_width <= 1000
              and (self.sample_rate is None or self.sample_rate <= 10_000_000),
              "n_mels <= 4096, 1 <= n_fft <= 2^20, win_ms and hop_ms <= 10000, delta_width <= 1000 and "
              "sample_rate <= 10^7 are needed")
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
        # A window of one frame would map every frame to 0; the upper bound keeps a damaged configuration from
        # sizing huge windows (100,000 frames: 1000 s at 10 ms; warping costs time in proportion to it).
        check(2 <= self.cmvn_window <= MAX_CMVN_WINDOW,
              f"cmvn_window must be between 2 and {MAX_CMVN_WINDOW} frames, got {self.cmvn_window}")
        for f in dataclasses.fields(self):
            choices = f.metadata.get("choices")
            check(choices is None or getattr(self, f.name) in choices,
                  f"{f.name} must be one of {list(choices) if choices else ''}, got {getattr(self, f.name)!r}")
        if self.htk:
            try:
                settings = htkfront.htk_settings(self.htk)
            except ParameterError as exc:
                raise ParameterError(f"MfccConfig: htk: {exc}") from None
            object.__setattr__(self, "htk", settings.canonical())  # one text per configuration: equal ones are equal
            defaults = {f.name: f.default for f in dataclasses.fields(self)}
            # the frame length and shift, for whoever reads them (segment times, HTK file headers): HTK's own
            derived = {"win_ms": settings.window_size / 1e4, "hop_ms": settings.target_rate / 1e4}
            for name, value in derived.items():
                check(getattr(self, name) in (defaults[name], value),
                      f"{name}={getattr(self, name)} disagrees with the HTK settings ({value:g} ms)")
                object.__setattr__(self, name, value)
            changed = [name for name in self._HTK_REPLACES
                       if name not in derived and getattr(self, name) != defaults[name]]
            check(not changed, f"{', '.join(changed)} cannot be set with htk: the HTK settings decide them")
            check(self.dither == 0 and self.cmvn == "none",
                  f"with htk, dither must be 0 and cmvn 'none' (HCopy adds no dither, and subtracts the cepstral "
                  f"mean only with _Z in TARGETKIND), got dither={self.dither}, cmvn={self.cmvn!r}")

    @property
    def htk_settings(self) -> htkfront.HtkSettings | None:
        """The parsed HTK settings (None for this package's own front end)."""
        return htkfront.htk_settings(self.htk) if self.htk else None

    @property
    def htk_kind(self) -> str | None:
        """HTK's parameter kind of the frames (``"MFCC_D_A_0"``, HTK's spelling), None without ``htk``."""
        return htkfront.htk_settings(self.htk).target_kind if self.htk else None

    @property
    def n_features(self) -> int:
        if self.htk:
            return htkfront.htk_settings(self.htk).n_features
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
        if not isinstance(text, (str, bytes)):
            raise ParameterError(f"MfccConfig: expected JSON text, got {type(text).__name__}")
        try:
            d = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
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
        if options.get("htk"):  # HCopy adds no dither and no CMVN: the defaults of HTK's front end, unless given
            for name, neutral in (("cmvn", "none"), ("dither", 0.0)):
                if options.get(name) is None:
                    values[name] = neutral
        return cls.from_dict(values)

    @classmethod
    def from_htk_config(cls, path, **options) -> "MfccConfig":
        """HCopy's front end as an HTK configuration file sets it up (``HCopy -C path``).

        The file holds ``NAME = value`` lines (``# comments``, optional module prefixes such as
        ``HPARM:``, quoted values): TARGETKIND (MFCC or FBANK with _E _0 _D _A _T _N _Z; _C and _K
        only concern files) and TARGETRATE are required, every other setting has HTK's default.
        Settings HTK has that this front end does not implement are refused by name.  ``options``
        set the fields that HTK's settings leave open (``sample_rate``, ``vad``, ``context_ms`` ...),
        as :meth:`from_options` does; errors name the file.

        Examples
        --------
        ::

            cfg = MfccConfig.from_htk_config("hcopy.cfg")   # TARGETKIND = MFCC_0_D_A ...
            feats = extract_file("a.wav", config=cfg)         # (frames, 39): c1..c12 c0, deltas, accelerations
        """
        try:
            text = Path(path).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise ParameterError(f"{path}: cannot read the HTK configuration ({exc})") from None
        try:
            settings = htkfront.HtkSettings.from_text(text)
        except ParameterError as exc:
            raise ParameterError(f"{path}: {exc}") from None
        if options.pop("htk", None) is not None:
            raise ParameterError("from_htk_config: the HTK settings come from the file, not the htk option")
        return cls.from_options(None, **options, htk=settings.canonical())


# --------------------------------------------------------------------------- front-end constants

@functools.lru_cache(maxsize=1)
def _default_config() -> MfccConfig:
    """``MfccConfig()``, made once: its checks cost as much as a short file's frames."""
    return MfccConfig()


def config_differences(ours: MfccConfig, theirs: MfccConfig, *, names=("models", "features")) -> list[str]:
    """The fields in which two configurations differ, as ``"field: models X vs features Y"``."""
    a, b = ours.to_dict(), theirs.to_dict()
    return [f"{k}: {names[0]} {a.get(k)!r} vs {names[1]} {b.get(k)!r}"
            for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def window_function(name: str, n: int) -> np.ndarray:
    """``scipy.signal.get_window(name, n, fftbins=True)`` (periodic), float64.

    Hamming and Hann, the windows speech front ends use, are computed here exactly as scipy
    does, so that they need no scipy import; other names go to scipy.
    """
    alpha = {"hamming": 0.54, "hann": 0.5}.get(name)
    if alpha is None:
        from scipy.signal import get_window

        try:
            return get_window(name, n, fftbins=True)
        except ValueError as exc:
            raise ParameterError(f"window {name!r}: {exc}") from None
    if n <= 1:
        return np.ones(n)
    # scipy's general_cosine: a symmetric window one sample longer, its last sample dropped
    fac = np.linspace(-np.pi, np.pi, n + 1)
    w = np.zeros(n + 1)
    for k, a in enumerate((alpha, 1.0 - alpha)):
        w += a * np.cos(k * fac)
    return w[:-1]


_F_SP, _MIN_LOG_HZ = 200.0 / 3, 1000.0  # Slaney's mel scale: linear below 1 kHz, logarithmic above
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = np.log(6.4) / 27.0


def _hz_to_mel(f: float) -> float:
    mel = (np.float64(f) - 0.0) / _F_SP
    return _MIN_LOG_MEL + np.log(np.float64(f) / _MIN_LOG_HZ) / _LOGSTEP if f >= _MIN_LOG_HZ else mel


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    freqs = 0.0 + _F_SP * mels
    log_t = mels >= _MIN_LOG_MEL
    freqs[log_t] = _MIN_LOG_HZ * np.exp(_LOGSTEP * (mels[log_t] - _MIN_LOG_MEL))
    return freqs


def mel_filters(sr: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
    """The mel filter bank (n_mels, 1 + n_fft // 2), float32: librosa's default (Slaney scale, area-normalised).

    The same operations as ``librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin,
    fmax=fmax)`` in the same order, so the same numbers (a test checks it), without importing
    librosa.
    """
    fmax = float(sr) / 2 if fmax is None else fmax
    weights = np.zeros((n_mels, 1 + n_fft // 2), dtype=np.float32)
    fftfreqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sr)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels]))[:, np.newaxis]
    if not np.all((mel_f[:-2] == 0) | (weights.max(axis=1) > 0)):
        warnings.warn("Empty filters detected in mel frequency basis. Some channels will produce empty "
                      "responses. Try increasing your sampling rate (and fmax) or reducing n_mels.", stacklevel=2)
    return weights


def dct_matrix(n_mels: int, n_mfcc: int, lifter: int = 0) -> np.ndarray:
    """Orthonormal DCT-II (n_mels, n_mfcc), float32, with HTK's lifter folded in: log-mel @ it = cepstra.

    The closed form of ``scipy.fft.dct(np.eye(n_mels), type=2, norm="ortho", axis=0)[:n_mfcc].T``
    (equal to it within 3e-16) without importing scipy.  The cosine's argument is reduced in
    integers first, so the true zeros are exact zeros.
    """
    k = np.arange(n_mfcc)[:, None]
    m = (k * (2 * np.arange(n_mels) + 1)) % (4 * n_mels)  # cos(pi m / 2N) has period 4N in m
    basis = np.cos(np.pi * m / (2 * n_mels)) * np.sqrt(2.0 / n_mels)
    basis[m % (2 * n_mels) == n_mels] = 0.0
    basis[0] = np.sqrt(1.0 / n_mels)
    dct = basis.T
    if lifter > 0:  # HTK/Kaldi: c_n *= 1 + L/2 sin(pi n / L), c0 untouched
        dct = dct * (1 + lifter / 2 * np.sin(np.pi * np.arange(n_mfcc) / lifter))
    return np.ascontiguousarray(dct, dtype=np.float32)


class _Frontend:
    """Constants for one (config, sample rate): window, filter bank, DCT with lifter folded in.

    With an HTK configuration (``htk``): HTK's frame sizes, window, filter bank and DCT (lifter and
    CEPSCALE folded in, c0 as a last column; the identity for FBANK), float32 as stored with models,
    and float64 copies (``melfb64``, ``dct64``) for the products.
    """

    def __init__(self, cfg: MfccConfig, sr: int, arrays: dict | None = None):
        self.htk = cfg.htk_settings
        if self.htk is not None:
            _, self.win, self.hop, fbank_period = self.htk.geometry(sr)
            self.n_fft = htkfront.fft_size(self.win, self.htk.double_fft)
            n_out = self.htk.num_ceps + self.htk.has("0") if self.htk.base == "MFCC" else self.htk.num_chans
            expected = {"window": (self.win,), "melfb": (1 + self.n_fft // 2, self.htk.num_chans),
                        "dct": (self.htk.num_chans, n_out)}
        else:
            self.hop = max(1, int(round(cfg.hop_ms * sr / 1000)))
            self.win = max(1, int(round(cfg.win_ms * sr / 1000)))
            self.n_fft = cfg.n_fft or 1 << (self.win - 1).bit_length()
            expected = {"window": (self.win,), "melfb": (1 + self.n_fft // 2, cfg.n_mels),
                        "dct": (cfg.n_mels, cfg.n_mfcc)}
        if arrays is not None:  # stored with a model set: they must be what this configuration computes
            for key, shape in expected.items():
                a = arrays.get(key)
                if a is None:
                    raise ParameterError(f"front-end array '{key}' is missing")
                a = np.asarray(a)
                if a.shape != shape or a.dtype.kind not in "fiu":
                    raise ParameterError(f"front-end array '{key}' has shape {a.shape} ({a.dtype}), the feature "
                                         f"configuration needs {shape} numbers")
                if not np.isfinite(a).all():
                    raise ParameterError(f"front-end array '{key}' contains NaN or inf")
            self.window, self.melfb, self.dct = (np.asarray(arrays[k], np.float32) for k in ("window", "melfb", "dct"))
            self._product_rows()
            return
        if self.htk is not None:
            s = self.htk
            self.window = htkfront.hamming_window(self.win) if s.use_hamming else np.ones(self.win, np.float32)
            self.melfb = htkfront.mel_filterbank(s.num_chans, fbank_period, self.n_fft, s.lo_freq, s.hi_freq,
                                                 s.warp_freq, s.warp_lcutoff, s.warp_ucutoff)[0]
            self.dct = (htkfront.dct_matrix(s.num_chans, s.num_ceps, s.cep_lifter, s.has("0"), s.cep_scale)
                        if s.base == "MFCC" else np.eye(s.num_chans, dtype=np.float32))
            self._product_rows()
            return
        if self.n_fft < self.win:
            raise ParameterError(f"n_fft={self.n_fft} is shorter than the {self.win}-sample window")
        fmax = cfg.fmax if cfg.fmax is not None else sr / 2
        if fmax > sr / 2:
            raise ParameterError(f"fmax={fmax} Hz is above the Nyquist frequency of {sr} Hz audio")
        self.window = window_function(cfg.window, self.win).astype(np.float32)
        self.melfb = np.ascontiguousarray(mel_filters(sr, self.n_fft, cfg.n_mels, cfg.fmin, fmax).T,
                                          dtype=np.float32)  # (bins, mels)
        self.dct = dct_matrix(cfg.n_mels, cfg.n_mfcc, cfg.lifter)
        self._product_rows()

    def _product_rows(self) -> None:
        # rows per matrix product call (see _rows_product): a divisor of _GEMM_ROWS small enough for one BLAS thread
        self.mel_rows, self.dct_rows = (_gemm_rows(*m.shape) for m in (self.melfb, self.dct))
        if self.htk is not None:  # HTK's products are done in float64 (the constants are float32 numbers)
            self.melfb64, self.dct64 = (np.ascontiguousarray(m, dtype=np.float64) for m in (self.melfb, self.dct))


def _gemm_rows(k: int, n: int) -> int:
    rows = _GEMM_ROWS
    while rows > 1 and rows * k * n > _GEMM_ONE_THREAD:
        rows //= 2
    return rows


_FRONTENDS: dict = {}


def frontend(cfg: MfccConfig, sr: int) -> _Frontend:
    """The (cached) front-end constants for a configuration and sample rate."""
    if cfg.computed_by:  # a model trained on imported frames must not meet frames of our own front end
        raise ParameterError(f"these features were computed by {cfg.computed_by}, not by acoustic_gmm, which "
                             f"cannot compute them from audio: compute them with that tool and import them "
                             f"(acoustic-gmm import)")
    key = (cfg, sr)
    fe = _FRONTENDS.get(key)  # one lookup: hashing a config costs ~10 us, extracting a short file ~300 us
    if fe is None:
        fe = _FRONTENDS[key] = _Frontend(cfg, sr)
    return fe


def frontend_arrays(cfg: MfccConfig, sr: int) -> dict:
    """The front end's constant arrays, to store beside models that will see new audio (none for frames
    computed by another toolkit: such models never see audio here)."""
    if cfg.computed_by:
        return {}
    fe = frontend(cfg, sr)
    return {"window": fe.window, "melfb": fe.melfb, "dct": fe.dct}


def preload_frontend(cfg: MfccConfig, sr: int, arrays: dict) -> None:
    """Install stored constants (from :func:`frontend_arrays`) for this configuration and rate."""
    if not cfg.computed_by:
        _FRONTENDS.setdefault((cfg, sr), _Frontend(cfg, sr, arrays))


_NOISE = np.random.default_rng(20261122).standard_normal(1 << 16).astype(np.float32)
_NOISE2 = np.concatenate([_NOISE, _NOISE])  # any len(_NOISE) samples of the repeated table are one slice of it


def _noise(start: int, n: int) -> np.ndarray:
    """Fixed unit Gaussian noise for samples ``start ... start + n - 1``: sample i gets ``_NOISE[i % len(_NOISE)]``."""
    s = start % len(_NOISE)
    return _NOISE2[s:s + n] if n <= len(_NOISE) else np.resize(_NOISE2[s:s + len(_NOISE)], n)


def n_frames(n_samples: int, cfg: MfccConfig, sr: int) -> int:
    """Frames an utterance of ``n_samples`` gives: ``1 + (n - win) // hop``, or 0 if shorter than a window."""
    fe = frontend(cfg, sr)
    return _count_frames(n_samples, fe)


def _count_frames(n_samples: int, fe: _Frontend) -> int:
    return 0 if n_samples < fe.win else 1 + (n_samples - fe.win) // fe.hop


# --------------------------------------------------------------------------- frames, block by block

def _check_block(block_frames: int) -> int:
    if not isinstance(block_frames, (int, np.integer)) or block_frames <= 0 or block_frames % _GEMM_ROWS:
        raise ParameterError(f"block_frames must be a positive multiple of {_GEMM_ROWS}, got {block_frames!r}")
    return int(block_frames)


def _rows_product(a: np.ndarray, b: np.ndarray, rows: int) -> np.ndarray:
    """``a @ b`` (float32; float64 for float64 operands), as independent products of exactly ``rows`` rows of ``a``.

    BLAS sums a row's products in an order that depends on how many rows the call has and on
    the thread count (OpenBLAS: a row's last bit changes with the call's height, and with two
    threads instead of one), so one big product would make a frame depend on the block it was
    computed in, and on the machine's load.  Every call here has the same shape (the last rows
    padded with zeros), small enough (``rows * k * n`` at most ``_GEMM_ONE_THREAD``) that BLAS
    runs it on one thread whatever its thread setting, and every block starts at a multiple of
    ``rows`` frames: a frame's result then depends on nothing but its own row.  Small calls
    are also faster here than threaded big ones on a busy machine.
    """
    n, k = a.shape
    dtype = np.result_type(a, b)
    out = np.empty((-(-n // rows) * rows, b.shape[1]), dtype=dtype)
    full = n - n % rows
    if full:
        np.matmul(a[:full].reshape(-1, rows, k), b, out=out[:full].reshape(-1, rows, b.shape[1]))
    if full < n:
        tail = np.zeros((rows, k), dtype=dtype)
        tail[: n - full] = a[full:]
        np.matmul(tail, b, out=out[full:])
    return out[:n]


def _block_statics(fe: _Frontend, cfg: MfccConfig, x: np.ndarray, start: int, lead: int):
    """Static cepstra (B, n_mfcc) and log energy (B,) of the frames whose samples ``x`` holds.

    ``x`` is samples ``start ...`` of the signal; the first frame starts ``lead`` samples in
    (1: ``x[0]`` is only there as the pre-emphasis predecessor of the first frame's first
    sample; 0: the signal's first sample, which keeps its value).
    """
    if fe.htk is not None:
        return _htk_block_statics(fe, np.asarray(x[lead:], dtype=np.float32))
    x = np.asarray(x, dtype=np.float32)
    if cfg.dither > 0:  # a fixed noise table, indexed by sample position: the same file always gives the same frames
        x = x + np.float32(cfg.dither) * _noise(start, len(x))
    if cfg.preemphasis > 0:
        y = x[1:] - np.float32(cfg.preemphasis) * x[:-1]
        if not lead:
            y = np.concatenate([x[:1], y])
    else:
        y = x[lead:]
    y = np.ascontiguousarray(y)
    n = 1 + (len(y) - fe.win) // fe.hop  # frames as windows on y itself, no copy (sliding_window_view costs more)
    frames = np.ndarray((n, fe.win), dtype=np.float32, buffer=y, strides=(fe.hop * 4, 4)) * fe.window
    spec = np.fft.rfft(frames, n=fe.n_fft)
    power = np.square(spec.real) + np.square(spec.imag)  # float32: numpy keeps single precision
    # Parseval on the one-sided spectrum: half the windowed, pre-emphasised frame's sum of squares, plus half
    # of (DC + Nyquist power) / n_fft (see kaldi_energy_offset)
    log_energy = np.log(np.maximum(power.sum(1) / fe.n_fft, LOG_FLOOR))
    log_mel = np.log(np.maximum(_rows_product(power, fe.melfb, fe.mel_rows), LOG_FLOOR))
    ceps = _rows_product(log_mel, fe.dct, fe.dct_rows)
    if cfg.energy == "log-energy":
        ceps[:, 0] = log_energy
    return ceps, log_energy


def _htk_block_statics(fe: _Frontend, x: np.ndarray):
    """HTK's statics (B, n_statics) and raw log energies (B,) of the frames starting at ``x[0]``, float32.

    Each frame on its own, in HCopy's order (see :mod:`acoustic_gmm.htkfront`): 16-bit units,
    ZMEANSOURCE, raw energy, pre-emphasis within the frame, window, FFT, magnitudes (powers),
    filter bank, ``ln(max(., 1))``, DCT with lifter, c0, log energy.  The columns are c1 ... cN
    (or the filter bank values), c0, E.
    """
    s = fe.htk
    x = x * np.float32(32768)  # the 16-bit amplitudes HTK reads (exact for 16-bit PCM)
    n = 1 + (len(x) - fe.win) // fe.hop
    frames = np.ndarray((n, fe.win), dtype=np.float32, buffer=x, strides=(fe.hop * 4, 4)).copy()
    if s.zmean_source:
        frames = htkfront.zero_mean_frames(frames)
    raw = htkfront.sum_of_squares(frames)
    if s.preemphasis > 0:
        frames = htkfront.preemphasise(frames, s.preemphasis)
    if s.use_hamming:
        frames *= fe.window
    spec = np.fft.rfft(frames.astype(np.float64), n=fe.n_fft)
    mag = np.square(spec.real) + np.square(spec.imag)
    if not s.use_power:
        np.sqrt(mag, out=mag)
    log_fb = np.log(np.maximum(_rows_product(mag, fe.melfb64, fe.mel_rows), 1.0))  # HTK floors at 1.0
    stat = _rows_product(log_fb, fe.dct64, fe.dct_rows) if s.base == "MFCC" else log_fb
    out = np.empty((n, s.n_statics), dtype=np.float32)
    out[:, : stat.shape[1]] = stat
    if s.has("E"):
        out[:, -1] = htkfront.log_energy(raw if s.raw_energy else htkfront.sum_of_squares(frames))
    return out, np.log(np.maximum(raw, LOG_FLOOR)).astype(np.float32)


def _stream_statics(read, n_samples: int, fe: _Frontend, cfg: MfccConfig, n_columns: int, block_frames: int):
    """Static cepstra, block by block, from samples that ``read(k)`` hands over in order.

    Returns ``(frames, log_energy)``: float32 (T, n_columns) with the statics in the first
    ``n_mfcc`` columns (the rest for deltas), and (T,).  ``n_samples`` is how many samples
    there should be; if ``read`` runs dry earlier, the frames are those of what it gave.
    Only a block's samples (and the few its first frame shares with the previous block) are
    held at a time.
    """
    total = _count_frames(n_samples, fe)
    feats = np.empty((total, n_columns), dtype=np.float32)
    energy = np.empty(total, dtype=np.float32)
    buf, buf_start = np.empty(0, np.float32), 0  # samples buf_start ... of the signal
    f0 = 0
    while f0 < total:
        f1 = min(total, f0 + block_frames)
        start = max(0, f0 * fe.hop - 1)  # one sample early: the pre-emphasis predecessor
        stop = (f1 - 1) * fe.hop + fe.win
        buf, buf_start = buf[start - buf_start:], start
        missing = stop - buf_start - len(buf)
        if missing > 0:
            new = read(missing)
            buf = np.concatenate([buf, new]) if len(buf) else new
            if len(new) < missing:  # the signal ends before its announced length
                total = _count_frames(buf_start + len(buf), fe)
                if f0 >= total:
                    break
                f1 = min(total, f1)
                stop = (f1 - 1) * fe.hop + fe.win
        ceps, log_energy = _block_statics(fe, cfg, buf[: stop - buf_start], start, f0 * fe.hop - start)
        feats[f0:f1, : ceps.shape[1]] = ceps
        energy[f0:f1] = log_energy
        f0 = f1
    return feats[:total], energy[:total]


_DELTA_KERNELS: dict = {}


def _delta_kernel(width: int) -> np.ndarray:
    """The regression weights ``n / 2 sum n^2`` (n = -W..W), float32 as HTK's, then widened as correlate1d does."""
    if width not in _DELTA_KERNELS:
        n = np.arange(-width, width + 1, dtype=np.float32)
        _DELTA_KERNELS[width] = (n / np.float32(2 * (n[width + 1:] ** 2).sum())).astype(np.float64)
    return _DELTA_KERNELS[width]


def _delta(x: np.ndarray, width: int) -> np.ndarray:
    """HTK regression deltas of ``x`` (T, D) along time, edges repeated; float32.

    The arithmetic of ``scipy.ndimage.correlate1d(x, kernel, axis=0, mode="nearest")`` for an
    antisymmetric kernel, step by step in float64 (a test checks they are identical), without
    importing scipy: ``d_t = 0 * x_t + sum_{j=-W..-1} (x_{t+j} - x_{t-j}) w_j``.
    """
    fw = _delta_kernel(width)
    T = len(x)
    pad = np.concatenate((x[:1],) * width + (x,) + (x[-1:],) * width, dtype=np.float64)
    acc = pad[width:width + T] * fw[width]
    for j in range(-width, 0):
        term = np.subtract(pad[width + j:width + j + T], pad[width - j:width - j + T])
        term *= fw[width + j]
        acc += term
    return acc.astype(np.float32)


def _deltas_in_place(feats: np.ndarray, n: int, widths, block_frames: int, delta=None) -> None:
    """Fill ``feats[:, n:]`` with the deltas (and deltas of deltas ...) of the statics ``feats[:, :n]``, a block
    at a time; ``widths`` gives each order's regression half-width, ``delta(part, width)`` computes one
    order (default: ours; HTK's front end passes its own).

    A block takes ``sum(widths)`` frames of context on each side, so that every one of its
    deltas is what the whole utterance at once would give.
    """
    delta = delta or _delta
    T, context = len(feats), sum(widths)
    for a in range(0, T, block_frames):
        b = min(T, a + block_frames)
        lo, hi = max(0, a - context), min(T, b + context)
        part = feats[lo:hi, :n]
        for k, width in enumerate(widths, 1):
            part = delta(part, width)
            feats[a:b, k * n:(k + 1) * n] = part[a - lo:b - lo]


def mfcc_frames(y: np.ndarray, sr: int, cfg: MfccConfig, *,
                block_frames: int = FRAME_BLOCK) -> tuple[np.ndarray, np.ndarray]:
    """Static cepstra (T, n_mfcc) and per-frame log energy (T,), both float32; no deltas, no CMVN.

    With an HTK configuration: HTK's statics (c1 ... cN or the filter bank, c0, E), before
    ENORMALISE, _Z and _N, and the raw log energies.
    """
    y = np.asarray(y)
    n = cfg.n_mfcc if not cfg.htk else cfg.htk_settings.n_statics
    return _stream_statics(_reader(y), len(y), frontend(cfg, sr), cfg, n, _check_block(block_frames))


def _reader(y: np.ndarray):
    pos = 0

    def read(k):
        nonlocal pos
        part = y[pos:pos + k]
        pos += len(part)
        return part
    return read


def add_deltas(ceps: np.ndarray, order: int, width: int) -> np.ndarray:
    """Append HTK regression deltas (and deltas of deltas): ``d_t = sum n (c_{t+n} - c_{t-n}) / 2 sum n^2``.

    Edges repeat the first and last frame, as HTK does.
    """
    if not order:
        return ceps
    n = ceps.shape[1]
    out = np.empty((len(ceps), n * (1 + order)), dtype=np.float32)
    out[:, :n] = ceps
    _deltas_in_place(out, n, (width,) * order, FRAME_BLOCK)
    return out


# --------------------------------------------------------------------------- VAD and CMVN

# Kaldi's compute-vad defaults: --vad-energy-threshold, --vad-energy-mean-scale, --vad-frames-context, and
# --vad-proportion-threshold=0.6 as a ratio of integers, so that "at least 60%" is decided exactly (Kaldi's float
# product 5 * 0.6f also rounds to exactly 3).
KALDI_VAD_THRESHOLD, KALDI_VAD_MEAN_SCALE, KALDI_VAD_CONTEXT, KALDI_VAD_PROPORTION = 5.5, 0.5, 2, (3, 5)


def kaldi_energy_offset(window: np.ndarray) -> float:
    """What to add to our frame log energy to get Kaldi's (the c0 ``compute-vad`` thresholds), on average.

    Our log energy is ``log(sum(|rfft(frame)|^2) / n_fft)`` of the pre-emphasised, windowed frame of
    samples in [-1, 1]: by Parseval on the one-sided spectrum, half the frame's sum of squares (plus a
    DC and Nyquist share that is negligible for speech).  Kaldi's (``--use-energy --raw-energy``, its
    defaults) is ``log(sum(x^2))`` of the raw frame (DC removed, before pre-emphasis and window) in
    16-bit units.  Three of the differences are constants, added here: the 16-bit scale
    (``2 log 32768`` = 20.79), the one-sided spectrum (``log 2``) and the window (``-log mean(w^2)``:
    0.92 for Hamming); 22.41 in all for a Hamming window.  The fourth, pre-emphasis, depends on the
    spectrum and is left out: it lowers our energy of speech by a further 1.6 (median over FSDD's
    voiced frames; 5-95%: -0.8 to +3.2) and raises that of white noise by ``log(1 + 0.97^2)`` = 0.66.
    Because the threshold follows the mean at half its rate, a shift d of all energies acts as Kaldi's
    rule with its 5.5 raised by d / 2: about 0.8 for speech.  On FSDD, the frames' voiced/unvoiced
    decisions agree with Kaldi's rule on Kaldi's own raw energy for 92% of frames (88% with the 16-bit
    scale alone).
    """
    w = np.asarray(window, dtype=np.float64)
    return float(2 * np.log(32768.0) + np.log(2.0) - np.log(np.mean(w * w)))


def _kaldi_vad(energy: np.ndarray) -> np.ndarray:
    """Kaldi's ``compute-vad`` on log energies on its scale: above ``5.5 + 0.5 * mean`` in >= 60% of t-2 ... t+2.

    The context window is clipped at the edges: the first frame looks at frames 0, 1 and 2 and needs 2
    of them above the threshold.  The comparison with the threshold is strict, as Kaldi's.
    """
    T = len(energy)
    threshold = KALDI_VAD_THRESHOLD + KALDI_VAD_MEAN_SCALE * energy.mean(dtype=np.float64)
    above = np.zeros(T + 1, dtype=np.intp)
    np.cumsum(energy > threshold, out=above[1:])
    t = np.arange(T)
    lo, hi = np.maximum(t - KALDI_VAD_CONTEXT, 0), np.minimum(t + KALDI_VAD_CONTEXT + 1, T)
    num, den = KALDI_VAD_PROPORTION
    return den * (above[hi] - above[lo]) >= num * (hi - lo)


def vad_mask(log_energy: np.ndarray, vad_db: float = 40.0, rule: str = "peak",
             energy_offset: float = 0.0) -> np.ndarray:
    """The voiced frames (a boolean mask) of one utterance from its frames' log energies.

    Parameters
    ----------
    log_energy : (T,) natural-log frame energies (:attr:`Analysis.log_energy`).
    vad_db : with ``rule="peak"``, frames within this many dB of the loudest frame are voiced.
    rule : ``"peak"`` (the above) or ``"kaldi"``, Kaldi's ``compute-vad`` with its defaults: with
        ``E = log_energy + energy_offset``, a frame is voiced if at least 60% of the frames within two
        of it (fewer at the utterance's edges) have ``E > 5.5 + 0.5 * mean(E)``.
    energy_offset : with ``rule="kaldi"``, what puts ``log_energy`` on Kaldi's scale:
        :func:`kaldi_energy_offset` of the front end's window for our log energies (as
        :func:`utterance_frames` and :func:`segment_frames` do), 0 for energies already on it.

    Examples
    --------
    >>> vad_mask(np.array([0.0, 30.0, 30.0, 30.0, 0.0, 0.0, 0.0]), rule="kaldi")   # threshold 5.5 + 0.5 * 90 / 7
    array([ True,  True,  True,  True, False, False, False])
    """
    if rule == "peak":
        return log_energy >= log_energy.max() - vad_db * np.log(10) / 10
    if rule == "kaldi":
        return _kaldi_vad(np.asarray(log_energy, dtype=np.float64) + energy_offset)
    raise ParameterError(f"vad rule must be 'peak' or 'kaldi', got {rule!r}")


def _compact(feats: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """``feats[keep]`` without a second copy: the kept rows moved to the front, in place (a view is returned)."""
    idx = np.flatnonzero(keep)
    if len(idx) == len(feats):
        return feats
    for a in range(0, len(idx), FRAME_BLOCK):
        rows = idx[a:a + FRAME_BLOCK]  # rows[i] >= a + i: nothing is overwritten before it is read
        feats[a:a + len(rows)] = feats[rows]
    return feats[:len(idx)]


def _column_mean(x: np.ndarray, keep: np.ndarray | None, about: np.ndarray | None = None) -> np.ndarray:
    """Mean over the ``keep`` rows of ``x`` (of ``(x - about)**2`` when ``about`` is given), float32, a block at a time.

    numpy sums an axis-0 reduction row after row; carrying the running sum into the next
    block's sum continues that sequence, so this is ``x[keep].mean(0)`` (and the variance
    ``x[keep].var(0)`` computes) without a copy of ``x``.
    """
    total, count = None, 0
    for a in range(0, len(x), FRAME_BLOCK):
        part = x[a:a + FRAME_BLOCK] if keep is None else x[a:a + FRAME_BLOCK][keep[a:a + FRAME_BLOCK]]
        if not len(part):
            continue
        count += len(part)
        if about is not None:
            part = part - about
            np.multiply(part, part, out=part)
        if total is not None:
            part = np.concatenate([total[None], part])
        total = np.add.reduce(part, axis=0)
    if total is None:
        return np.full(x.shape[1], np.nan, dtype=np.float32)
    return np.true_divide(total, np.intp(count), out=total, casting="unsafe")


def _window_starts(t: np.ndarray, window: int, T: int) -> np.ndarray:
    """First frame of the window of each frame ``t`` of ``T``: Kaldi's ``apply-cmvn-sliding --center=true``.

    Centred (``window // 2`` frames before ``t``), then moved inwards so as to lie inside the
    utterance whole; the window is the whole utterance when that is shorter.
    """
    return np.maximum(np.minimum(np.maximum(t - window // 2, 0), T - window), 0)


def _sliding(feats: np.ndarray, keep: np.ndarray | None, window: int, block) -> np.ndarray:
    """Replace each (``keep``) row of ``feats`` by ``block``'s function of it and its window, a block at a time.

    The ``keep`` rows, taken as one sequence, are done :data:`FRAME_BLOCK` at a time; a block
    needs the original values of its frames' windows, so the rows before it that they reach are
    kept aside before the block before it is overwritten.  ``block(src, starts, pos, n)`` gets the
    block's windows' rows ``src`` (S, D), each frame's window start and own position in ``src``,
    and the window length, and returns the block's new rows, float32.
    """
    rows = None if keep is None else np.flatnonzero(keep)
    T = len(feats) if rows is None else len(rows)
    if T == 0:
        return feats
    n = min(window, T)
    saved = feats[:0].copy()  # original rows [lo of this block, a): already overwritten in feats
    for a in range(0, T, FRAME_BLOCK):
        b = min(T, a + FRAME_BLOCK)
        t = np.arange(a, b)
        starts = _window_starts(t, window, T)
        lo, hi = int(starts[0]), int(starts[-1]) + n  # every window contains its frame: lo <= a < b <= hi
        new = feats[a:hi] if rows is None else feats[rows[a:hi]]
        src = np.concatenate([saved, new]) if len(saved) else new
        out = block(src, starts - lo, t - lo, n)
        if b < T:
            saved = src[int(_window_starts(b, window, T)) - lo:b - lo].copy()
        if rows is None:
            feats[a:b] = out
        else:
            feats[rows[a:b]] = out
    return feats


def _sliding_cmvn_block(src: np.ndarray, starts: np.ndarray, pos: np.ndarray, n: int, variance: bool) -> np.ndarray:
    # Sums about the span's first row: smaller than about 0 (cepstra have large means), so the differences of
    # cumulative sums lose less, and a constant stretch has exactly zero sums and variance.
    x = src.astype(np.float64)
    ref = x[0].copy()
    x -= ref
    c = np.zeros((len(x) + 1, x.shape[1]))
    np.cumsum(x, axis=0, out=c[1:])
    mean = (c[starts + n] - c[starts]) / n
    out = x[pos] - mean
    if variance:
        np.square(x, out=x)
        np.cumsum(x, axis=0, out=c[1:])
        msq = (c[starts + n] - c[starts]) / n
        var = msq - mean * mean
        # A window whose standard deviation is below 1e-6 of its values' size is constant but for the float32
        # rounding of the features (or of these sums: the mean square about ref is what var lost precision to),
        # and is left unscaled, as mean/meanvar leave a constant column: dividing would blow rounding noise up to
        # unit variance.
        size = np.maximum(msq, np.square(mean + ref) + var)
        out /= np.where(var > 1e-12 * size, np.sqrt(np.maximum(var, 0)), 1.0)
    return out.astype(np.float32)


_WARP_TABLES: dict = {}


def _warp_table(n: int) -> np.ndarray:
    """``Phi^-1(k / 2n)`` for k = 0 ... 2n - 1 (float32; k = 0, never used, is -inf): the warped values."""
    table = _WARP_TABLES.get(n)
    if table is None:
        # Wichura's AS241 (statistics.NormalDist): full double precision, without importing scipy
        from statistics import NormalDist

        inv = NormalDist().inv_cdf
        table = np.array([-np.inf] + [inv(k / (2 * n)) for k in range(1, 2 * n)], dtype=np.float32)
        _WARP_TABLES[n] = table
    return table


def _warp_ranks(srcT, starts, pos, n, table, outT):  # compiled by numba on first use: see _warp_kernel
    """``outT[d, i] = table[k]``, ``k = #(window < x) + #(window <= x)`` for the value x of frame i, coefficient d.

    With ``less`` values below x and ``equal`` equal to it (x included), x's mean rank among its
    ties is ``r = less + (equal + 1) / 2``, and ``(r - 0.5) / n = (2 less + equal) / 2n = k / 2n``.
    """
    for d in range(srcT.shape[0]):
        col = srcT[d]
        for i in range(len(pos)):
            x = col[pos[i]]
            w = col[starts[i]:starts[i] + n]
            k = np.int32(0)
            for j in range(n):  # int32 counts and a slice: LLVM vectorises this (0.4 ns a value, 2x a plain loop)
                k += np.int32(w[j] < x) + np.int32(w[j] <= x)
            outT[d, i] = table[k]


_WARP_KERNEL = []


def _warp_kernel():
    """:func:`_warp_ranks` compiled (numba, cached on disk as kernels.py's are): imported only when warping."""
    if not _WARP_KERNEL:
        from numba import njit

        _WARP_KERNEL.append(njit(nogil=True, cache=True)(_warp_ranks))
    return _WARP_KERNEL[0]


def _warp_block(src: np.ndarray, starts: np.ndarray, pos: np.ndarray, n: int) -> np.ndarray:
    srcT = np.ascontiguousarray(src.T, dtype=np.float32)  # a coefficient's values side by side: the count vectorises
    outT = np.empty((src.shape[1], len(pos)), dtype=np.float32)
    _warp_kernel()(srcT, starts.astype(np.int64), pos.astype(np.int64), n, _warp_table(n), outT)
    return outT.T


def normalise(feats: np.ndarray, cmvn: str, keep: np.ndarray | None = None, cmvn_window: int = 300) -> np.ndarray:
    """Cepstral mean (and variance) normalisation or feature warping, in place, of each column of ``feats``.

    Parameters
    ----------
    feats : (T, D) float32 frames of one utterance; changed in place and returned.
    cmvn : ``"none"``; per utterance: ``"mean"``, ``"meanvar"`` (and ``"speaker"``: an utterance
        alone is its own speaker), over the ``keep`` frames, applied to every frame; or over a
        window of ``cmvn_window`` frames around each frame:

        - ``"sliding"``: minus the window's mean, ``"sliding-var"``: and divided by its standard
          deviation, as Kaldi's ``apply-cmvn-sliding --center=true`` (with ``--norm-vars=true``
          for ``sliding-var``).  A window whose standard deviation is below 1e-6 of its values'
          root mean square (constant but for float32 rounding) is not divided, as ``meanvar``
          does not divide a constant column (Kaldi floors the variance at 1e-10 instead).
        - ``"warp"``: feature warping (Pelecanos and Sridharan, 2001): the value becomes
          ``Phi^-1((r - 0.5) / N)``, ``r`` its rank (1 = smallest) among the N values of its
          window and ``Phi`` the standard normal distribution function.  Tied values share the
          mean of their ranks, so that equal inputs stay equal (and a window of equal values
          gives 0).  Only ranks count: a strictly increasing function of the input changes
          nothing.  The outputs lie in ``[Phi^-1(0.5 / N), Phi^-1(1 - 0.5 / N)]`` (+-2.94 for
          N = 300).
    keep : boolean (T,) mask of the frames to use (the voiced ones), or None for all.  With the
        sliding modes, the windows run over the ``keep`` frames taken as one sequence, and only
        those rows are normalised: the others are left as they are (for the caller to drop).
    cmvn_window : the window length N, in frames.

    Notes
    -----
    The sliding window of frame t is ``t - N // 2 ... t + (N - 1) // 2`` (centred; for even N one
    more frame before than after), as Kaldi places it.  Near the utterance's edges it is not
    shortened but moved inwards so as to stay N frames long, as Kaldi does: frames ``0 ... N // 2``
    all use frames ``0 ... N - 1``, and the last ``(N + 1) // 2`` frames use ``T - N ... T - 1``.
    An utterance of fewer than N frames is one window: the sliding modes then give the
    per-utterance ones.
    (Kaldi's ``--min-cmn-window`` only applies to its non-centred windows, and has no counterpart.)

    Memory: a block of frames at a time (:data:`FRAME_BLOCK`, and the N frames before it for the
    sliding modes); no temporary the size of ``feats``.  Sliding means and variances come from
    differences of cumulative sums in float64 (no loop over frames); warping counts ranks, O(N)
    per value, in a compiled loop (numba, imported on first use).
    """
    if cmvn == "none" or len(feats) == 0:
        return feats
    if cmvn in ("sliding", "sliding-var", "warp"):
        if not (isinstance(cmvn_window, (int, np.integer)) and 2 <= cmvn_window <= MAX_CMVN_WINDOW):
            raise ParameterError(f"cmvn_window must be between 2 and {MAX_CMVN_WINDOW} frames, got {cmvn_window!r}")
        if cmvn == "warp":
            return _sliding(feats, keep, int(cmvn_window), _warp_block)
        variance = cmvn == "sliding-var"
        return _sliding(feats, keep, int(cmvn_window),
                        lambda src, starts, pos, n: _sliding_cmvn_block(src, starts, pos, n, variance))
    if cmvn not in ("mean", "meanvar", "speaker"):
        raise ParameterError(f"unknown cmvn {cmvn!r}")
    feats -= _column_mean(feats, keep)
    if cmvn in ("meanvar", "speaker"):  # alone, an utterance is its own speaker
        sd = np.sqrt(_column_mean(feats, keep, about=_column_mean(feats, keep)))
        feats /= np.where(sd > 0, sd, 1)
    return feats


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


def _too_short(n: int, sr: int, cfg: MfccConfig, fe: _Frontend, where) -> DataError:
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
    _deltas_in_place(feats, cfg.n_mfcc, (cfg.delta_width,) * cfg.deltas, block_frames)
    return Analysis(feats, energy, sr, cfg, duration)


def _htk_finish(feats: np.ndarray, s: htkfront.HtkSettings, block_frames: int) -> np.ndarray:
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
            e[a:a + block_frames] = htkfront.normalise_log_energy(e[a:a + block_frames], e_max, s.sil_floor, s.escale)
    if s.windows:
        _deltas_in_place(feats, S, s.windows, block_frames,
                         lambda part, width: htkfront.regression(part, width, s.simple_diffs))
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
    cfg = config or _default_config()
    block_frames = _check_block(block_frames)
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
    feats, energy = _stream_statics(_reader(y), len(y), fe, cfg, _n_columns(cfg), block_frames)
    return _finish(feats, energy, sr, cfg, duration, block_frames)


def analyse_file(source, *, config: MfccConfig | None = None, block_frames: int = FRAME_BLOCK) -> Analysis:
    """:func:`analyse` of a sound file, read a block at a time: memory is the frames, not the signal.

    ``source`` is a path or an :class:`AudioFile` not read from yet.  The frames are
    identical, bit for bit, to ``analyse(*read_audio(path))``, and the same problems raise the
    same :class:`DataError` (naming the file).  The one exception to bounded memory: when
    ``config.sample_rate`` asks for another rate, the whole file is read and resampled at once
    (``librosa.resample``), then framed in blocks.
    """
    cfg = config or _default_config()
    if not isinstance(source, AudioFile):
        with AudioFile(source) as audio:
            return analyse_file(audio, config=cfg, block_frames=block_frames)
    audio, block_frames = source, _check_block(block_frames)
    if audio.n_read:
        raise ParameterError(f"{audio.path}: analyse_file needs the file from its start; {audio.n_read} samples "
                             f"were already read")
    sr = audio.sample_rate
    if cfg.sample_rate and cfg.sample_rate != sr:
        return analyse(audio.read(audio.n_samples), sr, config=cfg, where=str(audio.path), block_frames=block_frames)
    fe = frontend(cfg, sr)
    read = audio.read
    if audio.n_samples <= (block_frames - 1) * fe.hop + fe.win + fe.hop:
        read = _reader(audio.read(audio.n_samples))  # one block: one read (soundfile costs ~0.1 ms a call)
    feats, energy = _stream_statics(read, audio.n_samples, fe, cfg, _n_columns(cfg), block_frames)
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
        feats = _compact(feats, keep)
    return normalise(feats, cfg.cmvn, cmvn_window=cfg.cmvn_window)


def segment_frames(analysis: Analysis, spans) -> list[np.ndarray]:
    """The features of several segments ``[(start_s, end_s), ...]`` of one analysed recording.

    CMVN uses the recording's (voiced, with ``vad``) frames, sliding windows included, and deltas
    see their context across segment edges; a segment takes the frames whose centres fall inside
    it (widened by ``context_ms`` on each side), or the one nearest its middle if none does.  Each
    segment is its own array.
    """
    cfg, sr = analysis.config, analysis.sample_rate
    fe = frontend(cfg, sr)
    keep = _voiced(analysis) if cfg.vad else None
    feats = normalise(analysis.feats, cfg.cmvn, keep, cfg.cmvn_window)
    centres = (np.arange(len(feats)) * fe.hop + fe.win / 2) / sr
    ctx = cfg.context_ms / 1000
    out = []
    for start, end in spans:
        lo, hi = np.searchsorted(centres, [start - ctx, end + ctx])
        if hi <= lo:
            lo = int(np.clip(np.searchsorted(centres, (start + end) / 2), 0, len(feats) - 1))
            hi = lo + 1
        out.append(feats[lo:hi].copy() if keep is None else feats[lo:hi][keep[lo:hi]])
    return out


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
