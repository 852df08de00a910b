"""The front end's configuration: :class:`MfccConfig`, every field a CLI option, JSON in and out.

It follows HTK/Kaldi conventions (25 ms Hamming windows every 10 ms, 0.97 pre-emphasis, 40 mel bands, 13
cepstra with c0, lifter 22, deltas of half-width 2, CMVN, optional energy VAD); ``MfccConfig.from_htk_config``
holds an HCopy configuration instead.  :func:`config_differences` names the fields in which two configurations
differ, which every reader of features and models uses to refuse frames made another way.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ParameterError
from ._htk_config import HtkSettings, htk_settings

__all__ = ["MfccConfig", "config_differences", "VIEW_FIELDS"]


VIEW_FIELDS = ("cmvn", "cmvn_window", "vad", "n_mfcc", "deltas")  # what reading a raw archive may change (_view)


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
                settings = htk_settings(self.htk)
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
    def htk_settings(self) -> HtkSettings | None:
        """The parsed HTK settings (None for this package's own front end)."""
        return htk_settings(self.htk) if self.htk else None

    @property
    def htk_kind(self) -> str | None:
        """HTK's parameter kind of the frames (``"MFCC_D_A_0"``, HTK's spelling), None without ``htk``."""
        return htk_settings(self.htk).target_kind if self.htk else None

    @property
    def n_features(self) -> int:
        if self.htk:
            return htk_settings(self.htk).n_features
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
            settings = HtkSettings.from_text(text)
        except ParameterError as exc:
            raise ParameterError(f"{path}: {exc}") from None
        if options.pop("htk", None) is not None:
            raise ParameterError("from_htk_config: the HTK settings come from the file, not the htk option")
        return cls.from_options(None, **options, htk=settings.canonical())


def config_differences(ours: MfccConfig, theirs: MfccConfig, *, names=("models", "features")) -> list[str]:
    """The fields in which two configurations differ, as ``"field: models X vs features Y"``."""
    a, b = ours.to_dict(), theirs.to_dict()
    return [f"{k}: {names[0]} {a.get(k)!r} vs {names[1]} {b.get(k)!r}"
            for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
