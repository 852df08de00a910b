"""HTK's MFCC and FBANK front end (what HCopy computes): configuration files, settings and each step.

:class:`~acoustic_gmm.features.MfccConfig` holds an HTK configuration in its ``htk`` field, as the
canonical text :meth:`HtkSettings.canonical` writes; :mod:`acoustic_gmm.features` runs the frames
block by block with the steps defined here.  The definitions are those of the HTK Book, chapter 5
("Speech Input/Output": signal processing, filter bank analysis, energy measures, delta and
acceleration coefficients, storage of parameter files) and HTK's HParm, HSigP and HWave modules:

1. Samples are 16-bit amplitudes (our floats in [-1, 1] times 32768).  A frame of ``WINDOWSIZE``
   starts every ``TARGETRATE`` (both in 100 ns units); HTK truncates both to whole samples,
   ``int(WINDOWSIZE / period)``, with ``period`` = ``SOURCERATE`` or ``1e7 / rate`` of the file.
2. ``ZMEANSOURCE``: the frame's mean is removed.
3. Energy, ``RAWENERGY T``: ``sum(s^2)`` of that raw frame.
4. Pre-emphasis within the frame: ``s[n] -= k s[n-1]`` for n >= 1, and ``s[0] *= 1 - k``.
5. Hamming window ``0.54 - 0.46 cos(2 pi n / (N - 1))`` (symmetric); ``RAWENERGY F``: the energy is
   taken here instead.
6. FFT of the frame zero-padded to the next power of two (twice that with ``DOUBLEFFT``);
   magnitudes, or powers with ``USEPOWER``.
7. Triangular filters on the FFT bins, centred uniformly on the mel scale ``1127 ln(1 + f / 700)``
   between ``LOFREQ`` and ``HIFREQ`` (0 and Nyquist by default), each rising from its left
   neighbour's centre to its own and falling to its right neighbour's: bin k gives a weight ``w``
   to the channel below it and ``1 - w`` to the one above, as HTK's ``loChan``/``loWt`` tables do.
   Filter areas are not normalised.  ``WARPFREQ``: the centres are moved by HTK's piecewise-linear
   VTLN warping between ``WARPLCUTOFF`` and ``WARPUCUTOFF``.
8. ``ln(max(output, 1))`` of each filter (HTK's floor is 1.0, not a small number): FBANK's values.
9. MFCC: ``c_j = sqrt(2 / N) sum_k f_k cos(pi j (k - 0.5) / N)``, j = 1 ... NUMCEPS, liftered by
   ``1 + (L / 2) sin(pi j / L)`` (``CEPLIFTER`` = L) and scaled by ``CEPSCALE``; ``_0`` adds
   ``c0 = sqrt(2 / N) sum_k f_k`` (not liftered).
10. ``_E``: ``ln(energy)``, or HTK's ``LZERO`` = -1e10 for an energy of 0 (HTK takes the log unless
    the energy is below ``MINLARG`` = 2.45e-308, which a float energy only is when it is 0).
    ``ENORMALISE`` (the default): over the utterance, ``E = 1 - ESCALE (Emax - max(E, Emax - SILFLOOR
    ln 10 / 10))``.
11. Deltas, accelerations (and ``_T`` third differentials) of all the statics, by HTK's
    regression ``d_t = sum_{n=1..W} n (c_{t+n} - c_{t-n}) / (2 sum n^2)`` with the first and last
    frame repeated beyond the utterance's edges; ``DELTAWINDOW``, ``ACCWINDOW``, ``THIRDWINDOW``.
12. ``_Z``: the mean over the utterance of the cepstra (or filter bank values) and c0 is
    subtracted, after the deltas are computed (the energy is left alone), as HParm does.
13. ``_N``: the absolute energy (E, or c0 for ``_0`` without ``_E``) is dropped from the statics;
    its deltas stay.  HCopy itself refuses to write ``_N`` files: these are the vectors HTK's
    HParm hands a recogniser or trainer configured with that TARGETKIND.

Column order, HTK's: c1 ... cN (or the N filter bank values), c0 (``_0``), E (``_E``); then the
deltas of all of these in the same order, then the accelerations, then the third differentials.

Numbers: HTK computes in single precision with its own FFT.  The constants here (window, filter
weights, cosines, lifter) are computed as HTK computes them, rounding to float where HTK stores a
float; pre-emphasis, zero mean, frame energies, energy normalisation and the regressions are done
in float32 in HTK's order of operations; the FFT, filter bank, logarithms and DCT in float64 (more
exact than HTK's float arithmetic).  The frames then agree with HCopy's to float rounding.

Examples
--------
>>> s = HtkSettings.from_text("TARGETKIND = MFCC_0_D_A\\nTARGETRATE = 100000.0\\nWINDOWSIZE = 250000.0")
>>> s.n_features, s.n_statics, s.column_names()[:3], s.column_names()[12:14]
(39, 13, ['c1', 'c2', 'c3'], ['c0', 'd_c1'])
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field, fields

import numpy as np

from ..errors import ParameterError

__all__ = ["parse_kind", "kind_name", "HtkSettings", "parse_htk_config"]


LZERO = -1.0e10     # HTK's log(0) (HMath.h)


MINLARG = 2.45e-308  # below this HTK does not take a log (HMath.h)


# --------------------------------------------------------------------------- settings


# Settings that do not change the frames computed from a decoded signal: accepted, left out of the canonical text.
_NO_EFFECT = {
    "TRACE", "SOURCEFORMAT", "TARGETFORMAT", "SAVECOMPRESSED", "SAVEWITHCRC", "NSTREAMS", "NATURALWRITEORDER",
    "LPCORDER", "COMPRESSFACT",  # LPC and PLP only
    "FOURTHWINDOW",  # only with HIGHDIFF
    # HParm's silence detector: only with USESILDET T
    "SPEECHTHRESH", "SILDISCARD", "SILENERGY", "SPCSEQCOUNT", "SPCGLCHCOUNT", "SILGLCHCOUNT", "SILSEQCOUNT",
    "SILMARGIN", "MEASURESIL", "OUTSILWARN", "SELFCALSILDET", "MAXSPCFRAMES", "CALWINDOW", "CALPERIOD",
    "SILUPDATERATE", "INITIALSIL", "ENABLEINHIBIT",
}


# HTK settings accepted only at the value that leaves the frames alone (HTK's default, or WAV's byte order).
_ONLY = {"SOURCEKIND": "WAVEFORM", "BYTEORDER": "VAX", "USESILDET": False, "V1COMPAT": False, "ADDDITHER": 0.0,
         "SAVEASVQ": False, "HIGHDIFF": False, "NATURALREADORDER": False}


# HTK settings this front end does not implement, whatever their value.
_UNSUPPORTED = {
    "MATTRANFN", "MATTRAN", "VQTABLE", "CMEANDIR", "CMEANMASK", "CMEANPATHMASK", "VARSCALEDIR", "VARSCALEMASK",
    "VARSCALEPATHMASK", "VARSCALEFN", "SIDEXFORMMASK", "SIDEXFORMEXT", "SIDEXFORMDIR", "HEADERSIZE", "NSAMPLES",
    "STEREOMODE", "FORCEPKIND", "USEOLDXFORMCVN", "CMNTCONST", "CMNRESETONSTOP", "CMNMINFRAMES", "CMNDEFAULT",
    "AUDIOSIG",
}


# Which HTK module reads which setting (a 'MODULE: NAME = value' line is seen by that module only).
_HWAVE_READS = {"SOURCERATE", "SOURCEFORMAT", "BYTEORDER", "NATURALREADORDER", "NATURALWRITEORDER", "STEREOMODE",
                "NSAMPLES", "HEADERSIZE", "TRACE"}


_HCOPY_READS = {"TARGETKIND", "SOURCEKIND", "SOURCEFORMAT", "TARGETFORMAT", "TRACE", "SAVEASVQ", "NSTREAMS"}


def _bool(value: str, name: str) -> bool:
    v = value.upper()
    if v in ("T", "TRUE"):
        return True
    if v in ("F", "FALSE"):
        return False
    raise ParameterError(f"{name} = {value}: expected T or F (TRUE or FALSE)")


def _number(value: str, name: str, kind: str):
    try:
        x = int(value) if kind == "int" else float(value)
    except ValueError:
        raise ParameterError(f"{name} = {value}: expected {'an integer' if kind == 'int' else 'a number'}") from None
    if kind == "float" and not math.isfinite(x):
        raise ParameterError(f"{name} = {value}: expected a finite number")
    return x


def _convert(name: str, value: str, kind: str):
    if kind == "bool":
        return _bool(value, name)
    if kind in ("int", "float"):
        return _number(value, name, kind)
    return value.upper()


def _format(value) -> str:
    if isinstance(value, bool):
        return "T" if value else "F"
    return repr(value) if isinstance(value, float) else str(value)


# --------------------------------------------------------------------------- parameter kinds
# (shared with acoustic_gmm.interop, which reads and writes them in file headers)

#: HTK's base parameter kinds (the low 6 bits of parmKind).
BASE_KINDS = {"WAVEFORM": 0, "LPC": 1, "LPREFC": 2, "LPCEPSTRA": 3, "LPDELCEP": 4, "IREFC": 5, "MFCC": 6,
              "FBANK": 7, "MELSPEC": 8, "USER": 9, "DISCRETE": 10, "PLP": 11}


#: Qualifier bits, in the order HTK prints them (``ParmKind2Str``).
QUALIFIERS = {"E": 0o100, "D": 0o400, "N": 0o200, "A": 0o1000, "T": 0o100000, "C": 0o2000, "K": 0o10000,
              "Z": 0o4000, "0": 0o20000, "V": 0o40000}


BASE_NAMES = {v: k for k, v in BASE_KINDS.items()}


BASEMASK = 0o77


def parse_kind(kind: str) -> int:
    """The parmKind code of a kind name such as ``"MFCC_E_D_A"``.

    Parameters
    ----------
    kind : str
        A base kind (``WAVEFORM LPC LPREFC LPCEPSTRA LPDELCEP IREFC MFCC FBANK MELSPEC USER DISCRETE
        PLP``) followed by qualifiers ``_E _N _D _A _C _Z _K _0 _V _T`` in any order; case-insensitive.

    Returns
    -------
    int
        The 16-bit code (base | qualifier bits).

    Raises
    ------
    ParameterError
        Unknown base kind or qualifier, a repeated qualifier, an empty piece.

    Examples
    --------
    >>> parse_kind("MFCC_E_D_A"), oct(parse_kind("MFCC_0_D_A_Z"))
    (838, '0o25406')
    """
    if isinstance(kind, (bool, np.bool_)) or not isinstance(kind, str):
        raise ParameterError(f"parameter kind must be a string such as 'MFCC_E_D_A', got {kind!r}")
    pieces = kind.strip().upper().split("_")
    base = pieces[0]
    if base not in BASE_KINDS:
        raise ParameterError(f"parameter kind {kind!r}: unknown base kind {base!r} "
                             f"(one of {', '.join(BASE_KINDS)})")
    code = BASE_KINDS[base]
    seen = set()
    for q in pieces[1:]:
        if q not in QUALIFIERS:
            raise ParameterError(f"parameter kind {kind!r}: unknown qualifier {'_' + q!r} "
                                 f"(known: {' '.join('_' + k for k in QUALIFIERS)})")
        if q in seen:
            raise ParameterError(f"parameter kind {kind!r}: qualifier _{q} given twice")
        seen.add(q)
        code |= QUALIFIERS[q]
    return code


def kind_name(code: int) -> str:
    """The HTK name of a parmKind code, qualifiers in HTK's order (``_E _D _N _A _T _C _K _Z _0 _V``).

    Raises :class:`ParameterError` for a code outside 0..65535 or with an unknown base kind.

    Examples
    --------
    >>> kind_name(parse_kind("mfcc_a_0_d_z"))
    'MFCC_D_A_Z_0'
    """
    if isinstance(code, (bool, np.bool_)) or not isinstance(code, (int, np.integer)):
        raise ParameterError(f"parameter kind code must be an integer, got {code!r}")
    code = int(code)
    if not 0 <= code <= 0xFFFF:
        raise ParameterError(f"parameter kind code {code} is outside 0..65535 (a 16-bit field)")
    base = code & BASEMASK
    if base not in BASE_NAMES:
        raise ParameterError(f"parameter kind code {code} (octal {code:o}): unknown base kind {base} "
                             f"(0..{max(BASE_NAMES)} are defined)")
    return BASE_NAMES[base] + "".join("_" + q for q, bit in QUALIFIERS.items() if code & bit)


def _parse_kind(text: str) -> tuple[str, frozenset]:
    """A TARGETKIND's base kind and set of ``_X`` qualifiers, read as HTK files' kinds are
    (:func:`parse_kind`), then limited to what this front end computes."""
    try:
        code = parse_kind(text)
    except ParameterError as exc:
        raise ParameterError(f"TARGETKIND = {text}: {exc}") from None
    base = text.strip().upper().split("_")[0]
    quals = frozenset(q for q, bit in QUALIFIERS.items() if code & bit)
    if base not in ("MFCC", "FBANK"):
        raise ParameterError(f"TARGETKIND = {text}: only MFCC and FBANK are supported, not {base}")
    if "V" in quals:
        raise ParameterError(f"TARGETKIND = {text}: _V (vector quantised) is not supported")
    return base, quals


_LINE = re.compile(r"""\s*(?:([A-Za-z][A-Za-z0-9]*)\s*:\s*)?([A-Za-z][A-Za-z0-9_]*)\s*=\s*
                       ("[^"]*"|'[^']*'|[^\s"'#]+)""", re.VERBOSE)


def _strip_comment(line: str) -> str:
    quote = None
    for i, c in enumerate(line):
        if quote:
            quote = None if c == quote else quote
        elif c in "\"'":
            quote = c
        elif c == "#":
            return line[:i]
    return line


def parse_htk_config(text: str) -> list[tuple[str | None, str, str, int]]:
    """The assignments of an HTK configuration: ``[(MODULE or None, NAME, value, line), ...]``.

    Lines are ``NAME = value`` or ``MODULE: NAME = value``; ``#`` starts a comment; names and
    modules are case-insensitive (upper-cased here, as HTK does); values may be quoted (the
    quotes are removed).  Several assignments may share a line (as in MfccConfig's ``htk``
    field).  ``#include`` is refused, as is anything that is not an assignment.
    """
    out = []
    for number, raw in enumerate(text.splitlines(), 1):
        if raw.lstrip().lower().startswith("#include"):
            raise ParameterError(f"line {number}: #include is not supported; put the settings in one file")
        line = _strip_comment(raw).strip()
        pos = 0
        while pos < len(line):
            m = _LINE.match(line, pos)
            if not m or (m.end() < len(line) and not line[m.end()].isspace()):
                raise ParameterError(f"line {number}: cannot read {line[pos:].strip()!r} (expected NAME = value)")
            module, name, value = m.groups()
            if value[:1] in "\"'":
                value = value[1:-1]
            out.append((module.upper() if module else None, name.upper(), value, number))
            pos = m.end()
            while pos < len(line) and line[pos].isspace():
                pos += 1
    return out


def _hparm_values(assignments) -> dict:
    """The value of each setting as HCopy's front end sees it, from :func:`parse_htk_config`'s list."""
    seen: dict = {}
    wave_rate = None

    def put(name, value, where):
        if name in seen and seen[name][0] != value:
            raise ParameterError(f"{where}: {name} is set twice, to {seen[name][0]} and {value}")
        seen.setdefault(name, (value, where))

    for module, name, value, line in assignments:
        where = f"line {line}"
        label = f"{module}: {name}" if module else name
        known = name in _HPARM_READS or name in _HWAVE_READS or name in _HCOPY_READS
        if module not in (None, "HPARM", "HWAVE", "HCOPY", "HSIGP"):  # another module's (HSHELL, HMODEL ...)
            if name in _BY_NAME or name in _ONLY or name in _UNSUPPORTED:
                raise ParameterError(f"{where}: {label}: {module} is not HCopy's front end, so HCopy would ignore "
                                     f"this line; remove the prefix or the line")
            continue
        if not known:
            raise ParameterError(f"{where}: {label} is not an HCopy front-end setting (misspelt?)")
        if module in (None, "HPARM"):
            if name in _HPARM_READS:
                put(name, value, where)
            elif module is None:
                put(name, value, where)  # read by HWave or HCopy only
            else:
                raise ParameterError(f"{where}: {label}: HParm does not read {name}; write it without a prefix")
        elif module == "HWAVE" and name in _HWAVE_READS:
            if name == "SOURCERATE":
                wave_rate = (value, where)  # HWave's own SOURCERATE counts only when HParm has none
            else:
                put(name, value, where)
        elif module == "HCOPY" and name in _HCOPY_READS:
            if name == "TARGETKIND":
                seen.setdefault("HCOPY:TARGETKIND", (value, where))
            else:
                put(name, value, where)
        elif module == "HSIGP" and name == "TRACE":
            continue
        else:
            reader = "HParm (no prefix, or HPARM:)" if name in _HPARM_READS else \
                "HWave (HWAVE:)" if name in _HWAVE_READS else "HCopy (HCOPY:)"
            raise ParameterError(f"{where}: {label}: {module} does not read {name} ({reader} does), so HCopy "
                                 f"would ignore this line; remove the prefix or the line")
    if "SOURCERATE" not in seen and wave_rate is not None:
        seen["SOURCERATE"] = wave_rate
    copy_kind = seen.pop("HCOPY:TARGETKIND", None)
    if copy_kind is not None:
        mine = seen.get("TARGETKIND")
        if mine is None:
            raise ParameterError(f"{copy_kind[1]}: HCOPY: TARGETKIND is not seen by HParm, which computes the "
                                 f"frames (HCopy would fail); write TARGETKIND without a prefix")
        if _parse_kind(mine[0].upper()) != _parse_kind(copy_kind[0].upper()):
            raise ParameterError(f"{copy_kind[1]}: HCOPY: TARGETKIND = {copy_kind[0]} differs from the "
                                 f"front end's TARGETKIND = {mine[0]}")
    return {name: value for name, (value, _) in seen.items()}


def _htk(name: str, default, kind: str | None = None):
    """An :class:`HtkSettings` field: the setting's HTK name, HParm's default (None: required) and, if not the
    field's type, how its text is read."""
    return field(metadata={"htk": name, "default": default, "kind": kind})


@dataclass(frozen=True)
class HtkSettings:
    """An HCopy front-end configuration, every setting given (HTK's defaults filled in) and checked.

    Build one with :meth:`from_text` (an HTK configuration file's text, or the ``htk`` field of an
    :class:`~acoustic_gmm.features.MfccConfig`); :meth:`canonical` is the text stored in archives.
    """

    # every HTK setting: its name and HParm's defConf default (HTK 3.4 / 3.5; None: required)
    target_kind: str = _htk("TARGETKIND", None, kind="kind")
    source_rate: float = _htk("SOURCERATE", 0.0)  # 100 ns; 0: the file's own sample period
    target_rate: float = _htk("TARGETRATE", None)  # HTK's default 0 is refused by HTK itself: required
    window_size: float = _htk("WINDOWSIZE", 256000.0)
    zmean_source: bool = _htk("ZMEANSOURCE", False)
    use_hamming: bool = _htk("USEHAMMING", True)
    preemphasis: float = _htk("PREEMCOEF", 0.97)
    double_fft: bool = _htk("DOUBLEFFT", False)
    num_chans: int = _htk("NUMCHANS", 20)
    lo_freq: float = _htk("LOFREQ", -1.0)
    hi_freq: float = _htk("HIFREQ", -1.0)
    use_power: bool = _htk("USEPOWER", False)
    warp_freq: float = _htk("WARPFREQ", 1.0)
    warp_lcutoff: float = _htk("WARPLCUTOFF", 0.0)
    warp_ucutoff: float = _htk("WARPUCUTOFF", 0.0)
    num_ceps: int = _htk("NUMCEPS", 12)
    cep_lifter: int = _htk("CEPLIFTER", 22)
    cep_scale: float = _htk("CEPSCALE", 1.0)
    raw_energy: bool = _htk("RAWENERGY", True)
    enormalise: bool = _htk("ENORMALISE", True)
    escale: float = _htk("ESCALE", 0.1)
    sil_floor: float = _htk("SILFLOOR", 50.0)
    delta_window: int = _htk("DELTAWINDOW", 2)
    acc_window: int = _htk("ACCWINDOW", 2)
    third_window: int = _htk("THIRDWINDOW", 2)
    simple_diffs: bool = _htk("SIMPLEDIFFS", False)

    @classmethod
    def from_text(cls, text: str) -> HtkSettings:
        """Parse and check an HTK configuration (raises :class:`ParameterError` naming the setting)."""
        if not isinstance(text, str):
            raise ParameterError(f"an HTK configuration must be text, got {type(text).__name__}")
        values = _hparm_values(parse_htk_config(text))
        for name, allowed in _ONLY.items():
            if name in values:
                kind = "bool" if isinstance(allowed, bool) else "float" if isinstance(allowed, float) else "str"
                if _convert(name, values[name], kind) != allowed:
                    raise ParameterError(f"{name} = {values[name]} is not supported (only {_format(allowed)})")
        for name in sorted(set(values) & _UNSUPPORTED):
            raise ParameterError(f"{name} is an HTK setting this front end does not support")
        kwargs = {}
        for name, attr, kind, default in _SETTINGS:
            if name in values:
                kwargs[attr] = _convert(name, values[name], kind)
            elif default is None:
                raise ParameterError(f"{name} must be set (HTK has no usable default)")
            else:
                kwargs[attr] = default
        base, quals = _parse_kind(kwargs["target_kind"])
        order = "".join(q for q in "EDNATZ0" if q in quals)  # _C and _K concern files only: dropped
        kwargs["target_kind"] = base + "".join("_" + q for q in order)
        return cls(**kwargs)

    def __post_init__(self):
        def check(ok, what):
            if not ok:
                raise ParameterError(what)
        for f in fields(self):  # built by hand (from_dict of a damaged configuration): types first
            value = getattr(self, f.name)
            kind = {"str": str, "bool": bool, "int": int, "float": (int, float)}[f.type]
            check(isinstance(value, kind) and (f.type == "bool" or not isinstance(value, bool)),
                  f"HTK setting {f.name} must be {f.type}, got {value!r}")
        _parse_kind(self.target_kind)
        q = self.qualifiers
        kind = self.target_kind
        check("A" not in q or "D" in q, f"TARGETKIND = {kind}: _A needs _D")
        check("T" not in q or "A" in q, f"TARGETKIND = {kind}: _T needs _A")
        check("N" not in q or ("D" in q and ("E" in q or "0" in q)),
              f"TARGETKIND = {kind}: _N needs _D and _E (or _0)")
        check(not ("E" in q and "0" in q and ("D" in q or "N" in q)),
              f"TARGETKIND = {kind}: HTK refuses _0 with _E together with _D or _N (HParm's ValidConversion)")
        check(not (self.base == "FBANK" and "0" in q), f"TARGETKIND = {kind}: _0 (c0) is for MFCC only")
        check(self.source_rate >= 0 and self.source_rate <= 1e7, f"SOURCERATE = {self.source_rate} is unlikely "
              f"(0 < SOURCERATE <= 10000000, in 100 ns units; 0 or unset: the files' own rate)")
        check(0 < self.target_rate <= 1e7, f"TARGETRATE = {self.target_rate}: must be in (0, 10000000] (100 ns units)")
        check(self.target_rate <= self.window_size <= 100 * self.target_rate,
              f"WINDOWSIZE = {self.window_size}: HTK needs TARGETRATE <= WINDOWSIZE <= 100 TARGETRATE")
        check(self.window_size <= 1e8, f"WINDOWSIZE = {self.window_size}: at most 10 s (100000000) here")
        check(0 <= self.preemphasis <= 1, f"PREEMCOEF = {self.preemphasis}: must be in [0, 1]")
        check(2 <= self.num_chans <= 1000, f"NUMCHANS = {self.num_chans}: must be in 2 ... 1000")
        check(not self.lo_freq > self.hi_freq, f"LOFREQ = {self.lo_freq} > HIFREQ = {self.hi_freq}: HTK refuses "
              f"this (an unset HIFREQ is -1: set it too)")
        if self.base == "MFCC":
            check(2 <= self.num_ceps <= self.num_chans, f"NUMCEPS = {self.num_ceps}: must be in 2 ... NUMCHANS")
            check(0 <= self.cep_lifter <= 1000, f"CEPLIFTER = {self.cep_lifter}: must be in 0 ... 1000")
        check(0.5 <= self.warp_freq <= 2.0, f"WARPFREQ = {self.warp_freq}: must be in [0.5, 2]")
        if self.warp_freq != 1.0:
            check(self.warp_lcutoff != 0 and self.warp_ucutoff != 0 and self.warp_lcutoff <= self.warp_ucutoff,
                  f"WARPFREQ = {self.warp_freq} needs 0 < WARPLCUTOFF <= WARPUCUTOFF, got {self.warp_lcutoff} "
                  f"and {self.warp_ucutoff}")
        for name, w in (("DELTAWINDOW", self.delta_window), ("ACCWINDOW", self.acc_window),
                        ("THIRDWINDOW", self.third_window)):
            check(1 <= w <= 1000, f"{name} = {w}: must be in 1 ... 1000")

    # ------------------------------------------------------------------ derived
    @property
    def base(self) -> str:
        return self.target_kind.split("_")[0]

    @property
    def qualifiers(self) -> frozenset:
        return frozenset(self.target_kind.split("_")[1:])

    def has(self, q: str) -> bool:
        return q in self.qualifiers

    @property
    def n_base(self) -> int:
        """Cepstra (MFCC) or filter bank values (FBANK) per frame."""
        return self.num_ceps if self.base == "MFCC" else self.num_chans

    @property
    def n_statics(self) -> int:
        """Static columns before ``_N``: the base ones, c0 (``_0``), E (``_E``)."""
        return self.n_base + self.has("0") + self.has("E")

    @property
    def windows(self) -> tuple:
        """The regression half-widths, one per order of differences: deltas, accelerations, thirds."""
        return tuple(w for q, w in (("D", self.delta_window), ("A", self.acc_window), ("T", self.third_window))
                     if self.has(q))

    @property
    def n_features(self) -> int:
        return self.n_statics * (1 + len(self.windows)) - self.has("N")

    def column_names(self) -> list[str]:
        """The output columns in HTK's order, e.g. ``c1 ... c12 c0 E d_c1 ... dd_E`` (no absolute E with _N)."""
        stat = [f"c{j}" if self.base == "MFCC" else f"fb{j}" for j in range(1, self.n_base + 1)]
        stat += ["c0"] * self.has("0") + ["E"] * self.has("E")
        names = list(stat[:-1] if self.has("N") else stat)
        for prefix in ("d_", "dd_", "ddd_")[:len(self.windows)]:
            names += [prefix + s for s in stat]
        return names

    def canonical(self) -> str:
        """Every setting as ``NAME=value``, in a fixed order: what MfccConfig stores and compares."""
        return " ".join(f"{name}={_format(getattr(self, attr))}" for name, attr, _, _ in _SETTINGS)

    def geometry(self, sample_rate: int):
        """``(period, frame_size, frame_rate, fbank_period)`` for audio at ``sample_rate``, as HTK computes them.

        ``period`` is ``SOURCERATE`` when set (it overrides the file's header in HTK), else
        ``1e7 / rate``; sizes are truncated to whole samples; the filter bank uses the period
        truncated to a whole number of 100 ns (HTK passes it as a ``long``: at 44.1 kHz,
        226 instead of 226.76).  A ``SOURCERATE`` more than 0.1% from the audio's rate is an error.
        """
        native = 1e7 / float(sample_rate)
        period = self.source_rate if self.source_rate > 0 else native
        if abs(period / native - 1) > 1e-3:
            raise ParameterError(f"SOURCERATE = {self.source_rate} ({1e7 / period:.6g} Hz) does not match the "
                                 f"audio's {sample_rate} Hz: HCopy would take the samples for {1e7 / period:.6g} Hz "
                                 f"ones; resample the audio (MfccConfig.sample_rate) or remove SOURCERATE")
        if not self.target_rate > period:
            raise ParameterError(f"TARGETRATE = {self.target_rate} is not above the sample period {period:.6g}")
        if self.hi_freq > 0.5e7 / period:
            raise ParameterError(f"HIFREQ = {self.hi_freq} is above the Nyquist frequency {0.5e7 / period:g} Hz")
        return period, int(self.window_size / period), int(self.target_rate / period), int(period)


# (HTK name, field, how its text is read, default), from HtkSettings' fields in their order
_SETTINGS = tuple((f.metadata["htk"], f.name, f.metadata["kind"] or f.type, f.metadata["default"])
                  for f in fields(HtkSettings))


_BY_NAME = {name: (attr, kind, default) for name, attr, kind, default in _SETTINGS}


_HPARM_READS = set(_BY_NAME) | _NO_EFFECT | set(_ONLY) | _UNSUPPORTED


@functools.lru_cache(maxsize=64)
def htk_settings(text: str) -> HtkSettings:
    """:meth:`HtkSettings.from_text`, cached (MfccConfig's ``htk`` field is parsed where a config is built)."""
    return HtkSettings.from_text(text)
