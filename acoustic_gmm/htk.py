"""HTK files: parameter (feature) files and text MMF model files holding a diagonal GMM, read and written.

Parameter files (HTK Book, "Speech Input/Output", parameter file format) are a 12-byte big-endian header

    nSamples (int32), sampPeriod (int32, units of 100 ns), sampSize (int16, bytes per vector), parmKind (int16)

then the vectors, big-endian.  Plain files hold float32 columns.  With ``_C`` every column ``j`` is stored
as 16-bit integers ``s`` with ``x = (s + B[j]) / A[j]``, the float32 vectors ``A`` then ``B`` coming first
and counted as 4 extra "samples" in nSamples (HTK's ``SaveBuffer`` adds 4; its reader subtracts 4).  IREFC
files are shorts too, with ``A = 32767``, ``B = 0`` and no stored vectors (HTK saves LPREFC that way when
asked to compress).  With ``_K`` a 2-byte check value follows the data.

HTK's ``_K`` check value is *not* a CCITT CRC-16, whatever its name suggests: HTK (``UpdateCRCC`` in
HParm.c) reads everything after the header (A, B, then the data) as big-endian unsigned 16-bit words
``w_1 .. w_m`` and folds them as ``c = (c * 65536 + w_i) mod 36897`` from ``c = 0``, i.e. the remainder of
the data read as one base-65536 number, divided by 36897; the value is stored as a big-endian 16-bit word.
That is what :func:`write_htk` writes and what :func:`read_htk` verifies (refusing a mismatch).

The parameter kind's qualifiers are printed in HTK's order (``ParmKind2Str``): ``_E _D _N _A _T _C _K _Z
_0 _V``.  ``_N`` (absolute energy suppressed) does not change the storage, only what the columns mean:
it is reported in ``info`` and the columns are returned as stored.  (HTK itself never writes ``_N`` or
``_V`` into a file; we write ``_N`` if asked and refuse ``_V``, whose files carry VQ indices.)

Model files are HTK's text "master macro files" (HTK Book, "HMM Definition Files").  :func:`write_mmf`
writes a GMM as the one emitting state (state 2) of a 3-state HMM, the usual way to hand a GMM to HTK;
:func:`read_mmf` reads such files, including ones written by HHEd/HERest (see its notes for what it
accepts).  Numbers are written with 17 significant digits (``%.16e``), so a float64 model reads back
bit for bit (HTK itself reads them into floats).

Examples
--------
>>> import numpy as np, tempfile, os
>>> d = tempfile.mkdtemp()
>>> X = np.arange(6, dtype=np.float32).reshape(3, 2)
>>> write_htk(os.path.join(d, "a.htk"), X, kind="MFCC_E")
>>> Y, info = read_htk(os.path.join(d, "a.htk"))
>>> bool((Y == X).all()), info["kind"], info["period_s"]
(True, 'MFCC_E', 0.01)
"""

from __future__ import annotations

import math
import re
import struct
import warnings
from pathlib import Path

import numpy as np

from .errors import ArchiveError, DataError, ModelFileError, OutputError, ParameterError, check_frames
from .htkfront import _BASE_NAMES, _BASEMASK, BASE_KINDS, QUALIFIERS, kind_name, parse_kind
from .outputs import atomic_path

__all__ = ["BASE_KINDS", "QUALIFIERS", "parse_kind", "kind_name", "htk_checksum", "write_htk", "read_htk",
           "export_features", "import_features",
           "write_mmf", "read_mmf", "GconstWarning"]

_E, _N, _C, _K, _V = (QUALIFIERS[q] for q in "ENCKV")
_HEADER = struct.Struct(">iiHH")  # sampSize and parmKind unsigned: _T is the sign bit of the int16
_CRC_MOD = 36897
_MAX_SAMPSIZE = 5000       # HTK's ReadHTKHeader refuses larger vectors
_MAX_PERIOD = 1_000_000    # ... and sample periods above 0.1 s (in 100 ns units)
_LOG_2PI = math.log(2.0 * math.pi)


class GconstWarning(UserWarning):
    """An MMF mixture's ``<GCONST>`` disagrees with its variances (the variances are used)."""


# ----------------------------------------------------------------------------------------------- kinds

def _read_bytes(path: Path, error, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise error(f"{path}: no such {what}") from None
    except OSError as exc:
        raise error(f"{path}: cannot read ({exc.strerror or exc})") from None


def _kind_code(kind, path) -> int:
    try:
        return parse_kind(kind) if isinstance(kind, str) else parse_kind(kind_name(kind))
    except ParameterError as exc:
        raise ParameterError(f"{path}: {exc}") from None


# ------------------------------------------------------------------------------------------- checksum

_BLOCK = 4096


def _block_powers() -> tuple[np.ndarray, int]:
    pw = np.empty(_BLOCK, dtype=np.int64)
    v = 1
    for j in range(_BLOCK - 1, -1, -1):
        pw[j] = v
        v = v * 65536 % _CRC_MOD
    return pw, v


_POWERS, _BLOCK_SHIFT = _block_powers()


def htk_checksum(data) -> int:
    """HTK's ``_K`` check value of the bytes after the header (see the module notes): 0..36896.

    ``data`` is bytes (even length, read as big-endian 16-bit words) or an array of uint16 word values.
    Computed a block of 4096 words at a time (a leading zero word leaves the value unchanged, so the
    words are left-padded to whole blocks).

    Examples
    --------
    >>> htk_checksum(bytes([0, 1, 0, 2]))   # (1 * 65536 + 2) mod 36897
    28641
    """
    if isinstance(data, (bytes, bytearray, memoryview)):
        if len(data) % 2:
            raise ParameterError(f"htk_checksum: {len(data)} bytes is not a whole number of 16-bit words")
        words = np.frombuffer(data, dtype=">u2")
    else:
        words = np.asarray(data)
    w = words.astype(np.int64)
    pad = (-len(w)) % _BLOCK
    if pad:
        w = np.concatenate([np.zeros(pad, dtype=np.int64), w])
    partial = (w.reshape(-1, _BLOCK) * _POWERS).sum(axis=1) % _CRC_MOD  # < 4096 * 65535 * 36896: fits
    c = 0
    for h in partial.tolist():
        c = (c * _BLOCK_SHIFT + h) % _CRC_MOD
    return int(c)


# ----------------------------------------------------------------------------------- parameter files

def _round_half_away(y: np.ndarray) -> np.ndarray:
    return np.sign(y) * np.floor(np.abs(y) + 0.5)


def _compression(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """HTK's per-column A, B (float32) for ``X`` (n, d) float32, kept inside +-32767 after rounding."""
    xmin, xmax = X.min(axis=0), X.max(axis=0)
    span = (xmax - xmin).astype(np.float32)                 # HTK: float arithmetic, then double
    flat = span == 0
    safe = np.where(flat, 1.0, span.astype(np.float64))
    A = np.where(flat, 1.0, 2.0 * 32767.0 / safe).astype(np.float32)
    B = np.where(flat, xmax, (xmax + xmin).astype(np.float64) * 32767.0 / safe).astype(np.float32)
    lo64, hi64 = xmin.astype(np.float64), xmax.astype(np.float64)
    A64, B64 = A.astype(np.float64), B.astype(np.float64)
    out = (_round_half_away(A64 * hi64 - B64) > 32767) | (_round_half_away(A64 * lo64 - B64) < -32767)
    for j in np.flatnonzero(out & ~flat):
        a, b = A[j], B[j]
        for _ in range(60):
            top = _round_half_away(np.array([a * hi64[j] - b, a * lo64[j] - b]))
            if top[0] <= 32767 and top[1] >= -32767:
                break
            # float32 rounding of B (a column whose offset is hundreds of times its range) pushed an
            # extreme out of range, where HTK stops with "short out of range": shrink A by B's rounding
            # error and centre B again, so that nothing is clipped.
            ulp = float(np.spacing(np.float32(abs(b))))
            a = np.float32((65534.0 - 2.0 * ulp - 1.0) / float(span[j]) if a * span[j] > 2.0 * ulp + 1.0
                           else a * 0.5)
            b = np.float32(float(a) * (lo64[j] + hi64[j]) / 2.0)
        A[j], B[j] = a, b
    return A, B


def write_htk(path, frames, *, kind="USER", period_s: float = 0.01, compress: bool = False,
              crc: bool = False) -> None:
    """Write frames as an HTK parameter file (big-endian, as HTK writes by default).

    Parameters
    ----------
    path : str or Path
        The file; written to a temporary file beside it and renamed into place
        (:func:`acoustic_gmm.outputs.atomic_path`), so a failed write leaves the old file.
    frames : array_like, (n_frames, n_features)
        Finite values, stored as float32 (or 16-bit with ``compress``); at least one frame, as HTK can
        neither save nor read an empty file.
    kind : str or int
        Parameter kind, e.g. ``"MFCC_E_D_A"`` or its code.  ``_C``/``_K`` in it mean ``compress``/``crc``.
        WAVEFORM and DISCRETE (not float feature matrices) and ``_V`` are refused.
    period_s : float
        Frame period in seconds, stored in units of 100 ns (rounded); HTK reads 100 ns to 0.1 s.
    compress : bool
        Store 16-bit values with ``_C``: per column ``A = 2 * 32767 / (xmax - xmin)``,
        ``B = (xmax + xmin) * 32767 / (xmax - xmin)`` (``A = 1, B = xmax`` for a constant column), as HTK's
        ``CalcCompress``; ``s = round(A x - B)`` (half away from zero, in double precision), so
        ``|x - (s + B) / A| <= 0.5 / A`` plus float rounding.  Should float32 rounding of B push an extreme
        row past +-32767 (a column offset by hundreds of times its range; HTK stops there), A is reduced
        by that rounding error and B re-centred instead.  LPREFC is stored as IREFC, as HTK does.
    crc : bool
        Append HTK's ``_K`` check value (:func:`htk_checksum`, see the module notes).

    Raises
    ------
    DataError
        Empty, non-2-D or non-finite frames, values beyond float32, IREFC values outside [-1, 1].
    ParameterError
        Unknown or unstorable kind, a period or vector size HTK would refuse.
    OutputError
        The file cannot be written.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "c.htk")
    >>> write_htk(p, np.linspace(-1, 1, 20).reshape(10, 2), kind="FBANK", compress=True, crc=True)
    >>> X, info = read_htk(p)
    >>> info["kind"], info["n_samples"], X.shape
    ('FBANK_C_K', 14, (10, 2))
    """
    path = Path(path)
    X = check_frames(frames, what=f"{path}: frames")
    with np.errstate(over="ignore"):
        X32 = X.astype(np.float32)
    if not np.isfinite(X32).all():
        raise DataError(f"{path}: frames hold values beyond the float32 range (|x| > 3.4e38)")
    n, d = X32.shape
    code = _kind_code(kind, path)
    base = code & _BASEMASK
    if base in (BASE_KINDS["WAVEFORM"], BASE_KINDS["DISCRETE"]):
        raise ParameterError(f"{path}: kind {kind_name(code)} is not a float feature matrix; write another kind")
    if code & _V:
        raise ParameterError(f"{path}: kind {kind_name(code)}: _V files carry VQ indices, which are not written")
    if compress:
        code |= _C
    if crc:
        code |= _K
    if code & _C and base == BASE_KINDS["LPREFC"]:
        code = (code & ~_BASEMASK & ~_C) | BASE_KINDS["IREFC"]   # HTK's SaveBuffer does the same
        base = BASE_KINDS["IREFC"]
    shorts = bool(code & _C) or base == BASE_KINDS["IREFC"]
    if base == BASE_KINDS["IREFC"]:
        code &= ~_C
    if isinstance(period_s, (bool, np.bool_)) or not isinstance(period_s, (int, float, np.integer, np.floating)) \
            or not math.isfinite(period_s) or period_s <= 0:
        raise ParameterError(f"{path}: period_s must be a positive number of seconds, got {period_s!r}")
    period = round(float(period_s) * 1e7)
    if not 1 <= period <= _MAX_PERIOD:
        raise ParameterError(f"{path}: period_s={period_s} is {period} units of 100 ns; HTK reads 1 to "
                             f"{_MAX_PERIOD} (100 ns to 0.1 s)")
    samp_size = d * (2 if shorts else 4)
    if samp_size > _MAX_SAMPSIZE:
        raise ParameterError(f"{path}: {d} columns make {samp_size}-byte vectors; HTK reads at most "
                             f"{_MAX_SAMPSIZE} bytes a vector ({_MAX_SAMPSIZE // (2 if shorts else 4)} columns)")
    n_samples = n + (4 if code & _C else 0)
    if n_samples > 2**31 - 1:
        raise ParameterError(f"{path}: {n} frames do not fit HTK's 32-bit sample count")

    if base == BASE_KINDS["IREFC"]:
        if np.abs(X32).max() > 1.0:
            raise DataError(f"{path}: IREFC values must lie in [-1, 1] (stored as x * 32767), got "
                            f"max |x| = {float(np.abs(X32).max())}")
        body = _round_half_away(X32.astype(np.float64) * 32767.0).astype(">i2").tobytes()
    elif code & _C:
        A, B = _compression(X32)
        s = _round_half_away(X32.astype(np.float64) * A.astype(np.float64) - B.astype(np.float64))
        body = A.astype(">f4").tobytes() + B.astype(">f4").tobytes() + s.astype(">i2").tobytes()
    else:
        body = X32.astype(">f4").tobytes()
    header = _HEADER.pack(n_samples, period, samp_size, code)
    tail = struct.pack(">H", htk_checksum(body)) if code & _K else b""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(header + body + tail)


def read_htk(path) -> tuple[np.ndarray, dict]:
    """Read an HTK parameter file (big-endian, as HTK writes by default).

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    frames : ndarray, float32, (n_frames, n_features)
        ``_C`` and IREFC files decompressed (``(s + B) / A`` in double precision, then float32); the
        columns are as stored, also with ``_N``.
    info : dict
        ``kind`` (HTK name, e.g. ``"MFCC_E_D_A_C_K"``), ``kind_code``, ``base_kind``, ``period_s``,
        ``sample_size`` (bytes a stored vector), ``n_samples`` (the header's count, A/B rows included),
        ``n_frames``, ``compressed``, ``crc`` (checked when true), ``energy_suppressed`` (``_N``).

    Raises
    ------
    ArchiveError
        Missing or unreadable file; a file shorter or longer than its header says (truncated); an
        impossible header (count or period not positive, vector size not a whole number of columns,
        unknown kind); WAVEFORM, DISCRETE or ``_V`` data, which are not feature matrices; a ``_K``
        check value that does not match.  Messages name the file.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "u.htk")
    >>> write_htk(p, np.ones((4, 3)), kind="USER_Z", period_s=0.025)
    >>> X, info = read_htk(p)
    >>> X.shape, info["kind_code"], info["period_s"], info["sample_size"]
    ((4, 3), 2057, 0.025, 12)
    """
    path = Path(path)
    raw = _read_bytes(path, ArchiveError, "HTK parameter file")
    if len(raw) < _HEADER.size:
        raise ArchiveError(f"{path}: {len(raw)} bytes, shorter than the 12-byte HTK header (truncated or "
                           f"not an HTK parameter file)")
    n_samples, period, samp_size, code = _HEADER.unpack_from(raw)

    def bad(problem: str):
        hint = ""
        ls, lp, lz, lk = struct.unpack_from("<iiHH", raw)
        if ls > 0 and 0 < lp <= _MAX_PERIOD and 0 < lz and (lk & _BASEMASK) in _BASE_NAMES \
                and 12 + ls * lz <= len(raw) <= 12 + ls * lz + 2:
            hint = " (it reads as a little-endian file, e.g. written with NATURALWRITEORDER; only big-endian is read)"
        return ArchiveError(f"{path}: {problem}{hint}")

    base = code & _BASEMASK
    if base not in _BASE_NAMES:
        raise bad(f"impossible header: parmKind {code} (octal {code:o}) has unknown base kind {base}")
    name = kind_name(code)
    if n_samples <= 0:
        raise bad(f"impossible header: nSamples = {n_samples} (HTK requires at least one)")
    if period <= 0:
        raise bad(f"impossible header: sampPeriod = {period} (units of 100 ns; must be positive)")
    if base in (BASE_KINDS["WAVEFORM"], BASE_KINDS["DISCRETE"]):
        raise bad(f"kind {name} is not a feature matrix ({'waveform samples' if base == 0 else 'VQ indices'}); "
                  f"read it with a waveform/VQ tool")
    if code & _V:
        raise bad(f"kind {name}: _V files carry VQ indices after each vector; not supported")
    compressed = bool(code & _C)
    shorts = compressed or base == BASE_KINDS["IREFC"]
    width = 2 if shorts else 4
    if samp_size == 0 or samp_size % width:
        raise bad(f"impossible header: sampSize = {samp_size} bytes is not a positive multiple of {width} "
                  f"({'16-bit' if shorts else 'float32'} columns of kind {name})")
    d = samp_size // width
    n_frames = n_samples - (4 if compressed else 0)
    if n_frames <= 0:
        raise bad(f"impossible header: nSamples = {n_samples} leaves {n_frames} frames after the 4 rows of the "
                  f"compression vectors A and B")
    has_crc = bool(code & _K)
    n_body = n_samples * samp_size
    expected = _HEADER.size + n_body + (2 if has_crc else 0)
    if len(raw) < expected:
        raise bad(f"truncated: the header ({name}, {n_samples} samples of {samp_size} bytes"
                  f"{', plus a 2-byte check value' if has_crc else ''}) needs {expected} bytes, the file has "
                  f"{len(raw)}")
    if len(raw) > expected:
        raise bad(f"{len(raw) - expected} bytes more than the header ({name}, {n_samples} samples of "
                  f"{samp_size} bytes{', plus a 2-byte check value' if has_crc else ''}) accounts for "
                  f"({expected}); not an HTK parameter file, or a wrong header")
    body = raw[_HEADER.size:_HEADER.size + n_body]
    if has_crc:
        stored = struct.unpack_from(">H", raw, _HEADER.size + n_body)[0]
        computed = htk_checksum(body)
        if stored != computed:
            raise ArchiveError(f"{path}: _K check value mismatch: the file says {stored}, its data give "
                               f"{computed}; the file is corrupt")
    if compressed:
        A = np.frombuffer(body, dtype=">f4", count=d).astype(np.float64)
        B = np.frombuffer(body, dtype=">f4", count=d, offset=4 * d).astype(np.float64)
        if not (np.isfinite(A).all() and np.isfinite(B).all()) or (A == 0).any():
            raise ArchiveError(f"{path}: compression vectors hold zero or non-finite scale factors A "
                               f"(or non-finite B); the file is corrupt")
        s = np.frombuffer(body, dtype=">i2", offset=8 * d).reshape(n_frames, d).astype(np.float64)
        frames = ((s + B) / A).astype(np.float32)
    elif shorts:  # IREFC
        s = np.frombuffer(body, dtype=">i2").reshape(n_frames, d)
        frames = (s.astype(np.float64) / 32767.0).astype(np.float32)
    else:
        frames = np.frombuffer(body, dtype=">f4").reshape(n_frames, d).astype(np.float32)
    info = {"kind": name, "kind_code": int(code), "base_kind": _BASE_NAMES[base], "period_s": period / 1e7,
            "sample_size": int(samp_size), "n_samples": int(n_samples), "n_frames": int(n_frames),
            "compressed": compressed, "crc": has_crc, "energy_suppressed": bool(code & _N)}
    return frames, info


# ---------------------------------------------------------------------------------------- MMF files

def _fmt(v: float) -> str:
    return f"{float(v):.16e}"


def _check_name(name) -> str:
    if not isinstance(name, str) or not name or re.search(r'[\s"\\<>~]', name) or not name.isprintable():
        raise ParameterError(f"model name must be a non-empty printable string without spaces, quotes, "
                             f"backslashes, '<', '>' or '~', got {name!r}")
    return name


def write_mmf(path, weights, means, variances, *, name: str = "gmm", kind="USER") -> None:
    """Write a diagonal GMM as a text HTK MMF: the one emitting state of a 3-state HMM.

    The file is ``~o <STREAMINFO> 1 D <VECSIZE> D<NULLD><kind><DIAGC>``, then ``~h "name"`` and
    ``<BEGINHMM> <NUMSTATES> 3 <STATE> 2 <NUMMIXES> K``, per component ``<MIXTURE> k w <MEAN> D ...
    <VARIANCE> D ... <GCONST> g`` with ``g = D log(2 pi) + sum(log var)`` (HTK's GCONST), then
    ``<TRANSP> 3`` with rows ``0 1 0 / 0 0.5 0.5 / 0 0 0`` (enter the state; stay or leave with
    probability 1/2: the transitions do not matter for GMM scores) and ``<ENDHMM>``.  Numbers have 17
    significant digits, so :func:`read_mmf` gives back the float64 parameters exactly.  Written
    atomically (:func:`acoustic_gmm.outputs.atomic_path`).

    Parameters
    ----------
    path : str or Path
    weights : array_like, (K,)
        Non-negative, summing to 1 (within 1e-5).
    means : array_like, (K, D)
    variances : array_like, (K, D)
        Positive.
    name : str
        The model's ``~h`` name (no spaces, quotes, backslashes).
    kind : str or int
        The parameter kind of the features the model is for, e.g. ``"MFCC_E_D_A_Z"``; the storage
        qualifiers ``_C``/``_K`` and ``_V`` are refused, as HTK's models never carry them.

    Raises
    ------
    ParameterError
        Inconsistent shapes, non-finite values, negative weights or weights not summing to 1,
        non-positive variances, a bad name or kind.

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "g.mmf")
    >>> write_mmf(p, [0.25, 0.75], [[0.0, 1.0], [2.0, 3.0]], [[1.0, 2.0], [0.5, 0.5]], name="ubm")
    >>> w, m, v, info = read_mmf(p)
    >>> w.tolist(), info["name"], info["kind"]
    ([0.25, 0.75], 'ubm', 'USER')
    """
    path = Path(path)
    try:
        name = _check_name(name)
    except ParameterError as exc:
        raise ParameterError(f"{path}: {exc}") from None
    code = _kind_code(kind, path)
    if code & (_C | _K | _V):
        raise ParameterError(f"{path}: model kind {kind_name(code)}: _C, _K and _V describe how a parameter file "
                             f"is stored, not the features; give the kind without them")
    w = np.asarray(weights, dtype=np.float64)
    mu = np.asarray(means, dtype=np.float64)
    var = np.asarray(variances, dtype=np.float64)
    if w.ndim != 1 or mu.ndim != 2 or var.shape != mu.shape or mu.shape[0] != w.shape[0] or w.size == 0 \
            or mu.shape[1] == 0:
        raise ParameterError(f"{path}: weights (K,), means (K, D) and variances (K, D) expected, got shapes "
                             f"{w.shape}, {mu.shape}, {var.shape}")
    for what, a in (("weights", w), ("means", mu), ("variances", var)):
        if not np.isfinite(a).all():
            raise ParameterError(f"{path}: {what} hold non-finite values")
    if (w < 0).any() or abs(w.sum() - 1.0) > 1e-5:
        raise ParameterError(f"{path}: weights must be non-negative and sum to 1, got sum {float(w.sum())!r}, "
                             f"min {float(w.min())!r}")
    if (var <= 0).any():
        raise ParameterError(f"{path}: variances must be positive (min {float(var.min())!r})")
    K, D = mu.shape
    gconst = D * _LOG_2PI + np.log(var).sum(axis=1)
    lines = ["~o", f"<STREAMINFO> 1 {D}", f"<VECSIZE> {D}<NULLD><{kind_name(code)}><DIAGC>",
             f'~h "{name}"', "<BEGINHMM>", "<NUMSTATES> 3", "<STATE> 2", f"<NUMMIXES> {K}"]
    for k in range(K):
        lines += [f"<MIXTURE> {k + 1} {_fmt(w[k])}",
                  f"<MEAN> {D}", " " + " ".join(map(_fmt, mu[k])),
                  f"<VARIANCE> {D}", " " + " ".join(map(_fmt, var[k])),
                  f"<GCONST> {_fmt(gconst[k])}"]
    lines += ["<TRANSP> 3", " " + " ".join(map(_fmt, (0, 1, 0))), " " + " ".join(map(_fmt, (0, 0.5, 0.5))),
              " " + " ".join(map(_fmt, (0, 0, 0))), "<ENDHMM>"]
    text = "\n".join(lines) + "\n"
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="ascii")


_TOKEN = re.compile(r'<[^<>\s]*>|~[A-Za-z]|"(?:[^"\\\n]|\\.)*"|[^\s<>"~]+|\S')

# covariance kinds and options we cannot honour
_VECTOR_MACROS = {"u": "MEAN", "v": "VARIANCE", "d": "DURATION", "w": "SWEIGHTS"}
_FULL_COV = {"INVCOVAR", "LLTCOVAR", "XFORM", "FULLC", "LLTC", "XFORMC", "INVDIAGC"}
_DUR_KINDS = {"NULLD", "POISSOND", "GAMMAD", "GEND"}


class _Tokens:
    def __init__(self, path: Path, text: str):
        self.path = path
        self.toks = []
        line = 1
        last = 0
        for m in _TOKEN.finditer(text):
            line += text.count("\n", last, m.start())
            last = m.start()
            self.toks.append((m.group(), line))
        self.i = 0

    def err(self, msg: str, at: int | None = None) -> ModelFileError:
        i = self.i if at is None else at
        where = f"line {self.toks[i][1]}" if i < len(self.toks) else "end of file"
        return ModelFileError(f"{self.path}: {where}: {msg}")

    def peek(self) -> str | None:
        return self.toks[self.i][0] if self.i < len(self.toks) else None

    def peek_kw(self) -> str | None:
        t = self.peek()
        return t[1:-1].upper() if t and t.startswith("<") and t.endswith(">") else None

    def next(self, what: str) -> str:
        if self.i >= len(self.toks):
            raise self.err(f"file ends where {what} was expected (truncated?)")
        t = self.toks[self.i][0]
        self.i += 1
        return t

    def expect(self, kw: str) -> None:
        t = self.peek_kw()
        if t != kw:
            if self.peek() is None:
                raise self.err(f"file ends where <{kw}> was expected (truncated?)")
            raise self.err(f"expected <{kw}>, found {self.peek()!r}")
        self.i += 1

    def integer(self, what: str) -> int:
        t = self.next(what)
        try:
            return int(t)
        except ValueError:
            raise self.err(f"expected an integer ({what}), found {t!r}", self.i - 1) from None

    def number(self, what: str) -> float:
        t = self.next(what)
        try:
            v = float(t)
        except ValueError:
            raise self.err(f"expected a number ({what}), found {t!r}", self.i - 1) from None
        if not math.isfinite(v):
            raise self.err(f"{what} is {t}", self.i - 1)
        return v

    def vector(self, n: int, what: str) -> np.ndarray:
        return np.array([self.number(f"{what} value {j + 1} of {n}") for j in range(n)], dtype=np.float64)

    def string(self, what: str) -> str:
        t = self.next(what)
        if t.startswith(("<", "~")):
            raise self.err(f"expected {what}, found {t!r}", self.i - 1)
        if t.startswith('"'):
            if len(t) < 2 or not t.endswith('"'):
                raise self.err(f"unterminated quoted {what} {t!r}", self.i - 1)
            return re.sub(r"\\(.)", r"\1", t[1:-1])
        return t


class _MMF:
    """Recursive-descent reader of the text MMF grammar (HTK Book, "HMM Definition Files"), diagonal only."""

    def __init__(self, path: Path, text: str):
        self.t = _Tokens(path, text)
        self.path = path
        self.macros: dict = {}      # (type, name) -> parsed structure
        self.models: dict = {}      # name -> hmm dict
        self.opts: dict = {"kind": None, "vecsize": None, "covkind": None}

    # -- options
    def option(self, opts: dict) -> bool:
        t = self.t
        kw = t.peek_kw()
        if kw is None:
            return False
        if kw == "VECSIZE":
            t.i += 1
            opts["vecsize"] = t.integer("<VECSIZE>")
        elif kw == "STREAMINFO":
            t.i += 1
            s = t.integer("number of streams")
            widths = [t.integer("stream width") for _ in range(max(s, 0))]
            if s != 1:
                raise t.err(f"<STREAMINFO> {s} {' '.join(map(str, widths))}: multi-stream models are not supported")
            opts["vecsize"] = opts["vecsize"] or widths[0]
        elif kw == "HMMSETID":
            t.i += 1
            opts["hmmsetid"] = t.string("HMM set id")
        elif kw == "DIAGC":
            t.i += 1
            opts["covkind"] = "DIAGC"
        elif kw in _FULL_COV:
            raise t.err(f"<{kw}>: only diagonal covariances (<DIAGC>) are supported")
        elif kw in _DUR_KINDS:
            t.i += 1
        elif kw in ("INPUTXFORM", "PARENTXFORM", "PROJSIZE", "MSDINFO"):
            raise t.err(f"<{kw}>: not supported here (a plain GMM file has no transforms or MSD streams)")
        else:
            try:
                code = parse_kind(kw)
            except ParameterError:
                if kw.split("_")[0] == "ANON":
                    t.i += 1
                    opts["kind"] = kw
                    return True
                return False
            t.i += 1
            opts["kind"] = kind_name(code)
        return True

    def macro_ref(self, typ: str, what: str):
        t = self.t
        t.i += 1
        name = t.string(f"~{typ} macro name")
        key = (typ, name)
        if key not in self.macros:
            raise t.err(f'~{typ} "{name}" ({what}) is used before it is defined', t.i - 1)
        return self.macros[key]

    # -- pieces
    def mean(self) -> np.ndarray:
        t = self.t
        if t.peek() == "~u":
            return self.macro_ref("u", "a mean")
        t.expect("MEAN")
        return t.vector(t.integer("<MEAN> size"), "<MEAN>")

    def variance(self) -> np.ndarray:
        t = self.t
        tok = t.peek()
        if tok == "~v":
            return self.macro_ref("v", "a variance")
        kw = t.peek_kw()
        if kw in _FULL_COV or tok in ("~i", "~c", "~x"):
            raise t.err(f"{tok}: full or transformed covariances are not supported, only diagonal <VARIANCE>")
        t.expect("VARIANCE")
        return t.vector(t.integer("<VARIANCE> size"), "<VARIANCE>")

    def mixpdf(self) -> dict:
        t = self.t
        if t.peek() == "~m":
            return self.macro_ref("m", "a mixture component")
        if t.peek_kw() == "RCLASS":
            t.i += 1
            t.integer("<RCLASS>")
        start = t.i
        mu = self.mean()
        var = self.variance()
        if len(mu) != len(var):
            raise t.err(f"mean of size {len(mu)} but variance of size {len(var)}", start)
        g = None
        if t.peek_kw() == "GCONST":
            t.i += 1
            g = t.number("<GCONST>")
        return {"mean": mu, "var": var, "gconst": g, "line": t.toks[start][1] if start < len(t.toks) else 0}

    def duration(self) -> None:
        t = self.t
        if t.peek() == "~d":
            self.macro_ref("d", "a duration")
        elif t.peek_kw() == "DURATION":
            t.i += 1
            t.vector(t.integer("<DURATION> size"), "<DURATION>")

    def stateinfo(self) -> dict:
        t = self.t
        if t.peek() == "~s":
            return self.macro_ref("s", "a state")
        n_mix = None
        if t.peek_kw() == "NUMMIXES":
            t.i += 1
            n_mix = t.integer("<NUMMIXES>")
            if n_mix < 1:
                raise t.err(f"<NUMMIXES> {n_mix}: at least one mixture component needed", t.i - 1)
        if t.peek() == "~w":
            self.macro_ref("w", "stream weights")
        elif t.peek_kw() == "SWEIGHTS":
            t.i += 1
            t.vector(t.integer("<SWEIGHTS> size"), "<SWEIGHTS>")
        if t.peek_kw() == "STREAM":
            t.i += 1
            s = t.integer("<STREAM>")
            if s != 1:
                raise t.err(f"<STREAM> {s}: multi-stream models are not supported", t.i - 1)
        if t.peek_kw() in ("TMIX", "DPROB"):
            raise t.err(f"<{t.peek_kw()}>: tied-mixture and discrete models are not supported")
        mixes: dict = {}
        if t.peek_kw() != "MIXTURE":
            mixes[1] = (1.0, self.mixpdf())       # no <MIXTURE>: a single Gaussian of weight 1
        while t.peek_kw() == "MIXTURE":
            at = t.i
            t.i += 1
            k = t.integer("<MIXTURE> number")
            w = t.number("<MIXTURE> weight")
            if k < 1 or (n_mix is not None and k > n_mix) or k in mixes:
                raise t.err(f"<MIXTURE> {k}: " + ("given twice" if k in mixes else
                            f"outside 1..{n_mix if n_mix is not None else 'NUMMIXES'}"), at)
            if w < 0:
                raise t.err(f"<MIXTURE> {k}: negative weight {w}", at)
            mixes[k] = (w, self.mixpdf())
        if n_mix is not None and len(mixes) > n_mix:
            raise t.err(f"{len(mixes)} mixture components but <NUMMIXES> {n_mix}")
        self.duration()
        # fewer components than <NUMMIXES> is fine: HTK leaves defunct ones (weight <= MINMIX) out
        return {"mixes": dict(sorted(mixes.items())), "nummixes": n_mix}

    def transp(self, n: int) -> np.ndarray:
        t = self.t
        if t.peek() == "~t":
            m = self.macro_ref("t", "a transition matrix")
        else:
            t.expect("TRANSP")
            size = t.integer("<TRANSP> size")
            m = t.vector(size * size, "<TRANSP>").reshape(size, size)
        if m.shape != (n, n):
            raise t.err(f"transition matrix is {m.shape[0]}x{m.shape[1]} but the model has {n} states")
        return m

    def hmm(self, name: str) -> dict:
        t = self.t
        t.expect("BEGINHMM")
        opts = dict(self.opts)
        while t.peek_kw() != "NUMSTATES":
            if not self.option(opts):
                raise t.err(f"expected <NUMSTATES> or a global option in model {name!r}, found {t.peek()!r}")
        t.i += 1
        n = t.integer("<NUMSTATES>")
        if n < 3:
            raise t.err(f"<NUMSTATES> {n}: an HTK model has at least 3 states (entry, emitting, exit)", t.i - 1)
        states = {}
        while t.peek_kw() == "STATE":
            at = t.i
            t.i += 1
            j = t.integer("<STATE> number")
            if not 2 <= j <= n - 1 or j in states:
                raise t.err(f"<STATE> {j}: " + ("given twice" if j in states else f"emitting states are 2..{n - 1}"),
                            at)
            states[j] = self.stateinfo()
        missing = sorted(set(range(2, n)) - set(states))
        if missing:
            raise t.err(f"model {name!r}: emitting state(s) {missing} missing")
        if t.peek() == "~r" or t.peek_kw() == "REGTREE":
            raise t.err("regression trees are not supported")
        trans = self.transp(n)
        self.duration()
        t.expect("ENDHMM")
        return {"states": states, "transp": trans, "n_states": n, "opts": opts}

    def parse(self) -> None:
        t = self.t
        while t.peek() is not None:
            tok = t.peek()
            if tok == "~o":
                t.i += 1
                while t.peek() is not None and not t.peek().startswith("~") and t.peek_kw() != "BEGINHMM":
                    if not self.option(self.opts):
                        raise t.err(f"unknown global option {t.peek()!r}")
                continue
            if t.peek_kw() == "BEGINHMM":       # a single definition without ~h: named after the file
                self.add_model(self.path.stem, t.i)
                continue
            if not (tok.startswith("~") and len(tok) == 2):
                raise t.err(f"expected a macro (~o, ~h, ~s, ~m, ...) or <BEGINHMM>, found {tok!r}")
            typ = tok[1].lower()
            at = t.i
            t.i += 1
            name = t.string(f"~{typ} macro name")
            if typ == "h":
                self.add_model(name, at)
            elif typ in "smuvtdw" and (typ, name) in self.macros:
                raise t.err(f'~{typ} "{name}" is defined twice', at)
            elif typ == "s":
                self.macros[("s", name)] = self.stateinfo()
            elif typ == "m":
                self.macros[("m", name)] = self.mixpdf()
            elif typ in _VECTOR_MACROS:  # ~u <MEAN> n ..., ~v <VARIANCE> n ..., ~d <DURATION> ..., ~w <SWEIGHTS> ...
                key = _VECTOR_MACROS[typ]
                t.expect(key)
                self.macros[(typ, name)] = t.vector(t.integer(f"<{key}> size"), f"<{key}>")
            elif typ == "t":
                t.expect("TRANSP")
                size = t.integer("<TRANSP> size")
                self.macros[("t", name)] = t.vector(size * size, "<TRANSP>").reshape(size, size)
            elif typ in "icx":
                raise t.err(f'~{typ} "{name}": full or transformed covariances are not supported', at)
            else:
                raise t.err(f'~{typ} "{name}": macro type ~{typ} (transforms, regression trees, ...) is not '
                            f"supported", at)

    def add_model(self, name: str, at: int) -> None:
        if name in self.models:
            raise self.t.err(f'model "{name}" is defined twice', at)
        self.models[name] = self.hmm(name)


def read_mmf(path, name: str | None = None, *, state: int | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """Read a diagonal GMM from a text HTK MMF (the mixture of one emitting state of one model).

    Reads what :func:`write_mmf` writes and what HTK's HHEd/HERest write in text form: ``~o`` global
    options, one or more ``~h`` models (``name`` picks one; without it the file must hold exactly one),
    shared ``~s ~m ~u ~v ~t ~d ~w`` macros (defined before use, as HTK requires), ``<NUMMIXES>`` absent
    meaning one Gaussian, ``<MIXTURE>`` weights (components HTK left out as defunct are simply absent),
    optional ``<GCONST>`` and ``<RCLASS>``, keywords in any case.  Full or transformed covariances
    (``<INVCOVAR>``, ``<FULLC>``, ...), several streams, tied mixtures, regression trees, transforms and
    binary MMFs are refused with a clear error.

    Each ``<GCONST>`` is checked against ``D log(2 pi) + sum(log var)``: a difference above 1e-3 relative
    (of ``max(1, |gconst|)``) gives a :class:`GconstWarning`, not an error, and the variances are used
    (HTK would use the stale GCONST; the variances are the model).

    Parameters
    ----------
    path : str or Path
    name : str, optional
        The ``~h`` model to read.
    state : int, optional
        The emitting state (2..N-1) to read; needed only if the model has more than one.

    Returns
    -------
    weights : ndarray, float64, (K,)
    means : ndarray, float64, (K, D)
    variances : ndarray, float64, (K, D)
    info : dict
        ``name``, ``names`` (all models in the file), ``kind`` (parameter kind or None), ``vecsize``,
        ``n_states``, ``state``, ``transp`` ((N, N) ndarray), ``gconst`` ((K,) ndarray, NaN where absent),
        ``mixture_ids`` (the ``<MIXTURE>`` numbers read), ``nummixes`` (``<NUMMIXES>`` or None).

    Raises
    ------
    ModelFileError
        (an :class:`~acoustic_gmm.errors.ArchiveError`) Missing or unreadable file, a syntax error (with
        its line), an unsupported construct, inconsistent sizes, weights not summing to 1 (within 1e-3),
        non-positive variances, a name not in the file (the message lists the names).

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "one.mmf")
    >>> _ = open(p, "w").write('~h "sil" <BeginHMM> <NumStates> 3 <State> 2 <Mean> 2 0 1 <Variance> 2 1 4 '
    ...                        '<TransP> 3 0 1 0 0 .6 .4 0 0 0 <EndHMM>')
    >>> w, m, v, info = read_mmf(p)
    >>> w.tolist(), m.tolist(), v.tolist(), info["name"]
    ([1.0], [[0.0, 1.0]], [[1.0, 4.0]], 'sil')
    """
    path = Path(path)
    raw = _read_bytes(path, ModelFileError, "MMF file")
    if re.search(rb"[\x00-\x08\x0e-\x1f]", raw):
        raise ModelFileError(f"{path}: holds binary data (an HTK binary MMF, saved with -B?); only text MMFs "
                             f"are read: convert with HHEd without -B")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    p = _MMF(path, text)
    p.parse()
    names = list(p.models)
    if not names:
        raise ModelFileError(f"{path}: no model (~h ... <BEGINHMM>) in the file")
    if name is None:
        if len(names) > 1:
            raise ModelFileError(f"{path}: holds {len(names)} models ({', '.join(names)}); pass name= to pick one")
        name = names[0]
    elif name not in p.models:
        raise ModelFileError(f"{path}: no model named {name!r}; the file holds {', '.join(names)}")
    hmm = p.models[name]
    n = hmm["n_states"]
    if state is None:
        if n != 3:
            raise ModelFileError(f"{path}: model {name!r} has {n - 2} emitting states (2..{n - 1}); pass state= "
                                 f"to pick the one holding the GMM")
        state = 2
    if state not in hmm["states"]:
        raise ModelFileError(f"{path}: model {name!r} has no emitting state {state} (its states are 2..{n - 1})")
    mixes = hmm["states"][state]["mixes"]
    ids = list(mixes)
    w = np.array([mixes[k][0] for k in ids], dtype=np.float64)
    dims = {len(mixes[k][1]["mean"]) for k in ids}
    vecsize = hmm["opts"].get("vecsize")
    if len(dims) != 1 or (vecsize is not None and dims != {vecsize}):
        raise ModelFileError(f"{path}: model {name!r} state {state}: mean sizes {sorted(dims)} "
                             f"disagree{'' if vecsize is None else f' with <VECSIZE> {vecsize}'}")
    means = np.array([mixes[k][1]["mean"] for k in ids], dtype=np.float64)
    variances = np.array([mixes[k][1]["var"] for k in ids], dtype=np.float64)
    if (variances <= 0).any():
        k = ids[int(np.flatnonzero((variances <= 0).any(axis=1))[0])]
        raise ModelFileError(f"{path}: model {name!r} state {state} mixture {k}: non-positive variance")
    if abs(w.sum() - 1.0) > 1e-3:
        raise ModelFileError(f"{path}: model {name!r} state {state}: mixture weights sum to {float(w.sum())!r}, not 1")
    D = means.shape[1]
    expected = D * _LOG_2PI + np.log(variances).sum(axis=1)
    gconst = np.array([np.nan if mixes[k][1]["gconst"] is None else mixes[k][1]["gconst"] for k in ids])
    off = np.abs(gconst - expected) > 1e-3 * np.maximum(1.0, np.abs(expected))
    if off.any():
        j = int(np.flatnonzero(off)[0])
        warnings.warn(f"{path}: model {name!r} state {state}: <GCONST> of {int(off.sum())} mixture(s) disagrees "
                      f"with the variances (mixture {ids[j]}: file {float(gconst[j])!r}, D log 2pi + sum log var = "
                      f"{float(expected[j])!r}); the variances are used", GconstWarning, stacklevel=2)
    info = {"name": name, "names": names, "kind": hmm["opts"].get("kind"), "vecsize": vecsize if vecsize else D,
            "n_states": n, "state": state, "transp": hmm["transp"], "gconst": gconst, "mixture_ids": ids,
            "nummixes": hmm["states"][state]["nummixes"]}
    return w, means, variances, info


# --------------------------------------------------------------------------- feature archives in and out

def _safe_name(utt: str, where) -> str:
    if not utt or "/" in utt or utt in (".", "..") or "\0" in utt:
        raise DataError(f"{where}: utterance id {utt!r} cannot be a file name")
    return utt


def export_features(archive, out_dir, *, ids=None, kind: str | None = None, compress: bool = False) -> int:
    """Write every utterance of a feature archive as an HTK parameter file ``OUT_DIR/<utt>.htk``.

    Parameters
    ----------
    archive : str, Path or FeatureArchive
    out_dir : path
        Made if missing; existing ``.htk`` files of the same names are replaced (each atomically).
    ids : list of str, optional
        These utterances only, in this order.
    kind : str, optional
        The parameter kind in the headers; default: the archive's own HTK kind when its frames were made
        with an HTK configuration (``MfccConfig.htk_kind``), else ``USER``.
    compress : bool
        Write HTK's 16-bit compressed form (``_C``).

    Returns
    -------
    int
        Files written.  The sample period is the archive's frame hop.
    """
    from .archive import opened

    out_dir = Path(out_dir)
    with opened(archive) as fa:
        ids = fa.ids if ids is None else fa.check_ids(ids)
        names = [_safe_name(u, fa.path) for u in ids]
        kind = kind or getattr(fa.config, "htk_kind", None) or "USER"
        parse_kind(kind)
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{out_dir}: cannot make the folder ({exc.strerror or exc})") from None
        period = fa.config.hop_ms / 1000
        for u, name in zip(ids, names):
            write_htk(out_dir / f"{name}.htk", fa[u], kind=kind, period_s=period, compress=compress)
    return len(ids)


def _listing(path) -> list:
    """``(utt, file)`` pairs from an HTK script file: one parameter file per line, either ``file`` (the id
    is its name without the extension) or ``utt file``; relative paths are relative to the list."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ArchiveError(f"{path}: cannot be read ({exc})") from None
    pairs = []
    for lineno, line in enumerate(lines, 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) > 2:
            raise DataError(f"{path}:{lineno}: expected 'file' or 'utt file', got {line!r}")
        file = Path(parts[-1]) if Path(parts[-1]).is_absolute() else path.parent / parts[-1]
        pairs.append((parts[0] if len(parts) == 2 else Path(parts[0]).stem, file))
    return pairs


def import_features(listing, data_dir, out, *, config=None, sample_rate: int | None = None, overwrite: bool = False):
    """Write a feature archive from the HTK parameter files named in ``listing``, with ``data_dir``'s
    speakers and labels (see :func:`acoustic_gmm.interop.import_matrices`).

    ``listing`` has one file per line, ``file`` (the utterance id is the file's name without its
    extension) or ``utt file``.  Every file must have the same width and sample period.
    """
    from .interop import import_matrices
    from .manifest import read_data_dir

    out = Path(out)
    if out.exists() and not overwrite:
        raise OutputError(f"{out}: exists; choose a new name, or pass overwrite=True")
    pairs = _listing(listing)
    dd = read_data_dir(data_dir)
    hop_ms = read_htk(pairs[0][1])[1]["period_s"] * 1000 if pairs else None  # every file must agree with it

    def entries():
        period = None
        for utt, file in pairs:
            X, info = read_htk(file)
            if period is None:
                period = info["period_s"]
            elif abs(info["period_s"] - period) > 1e-9:
                raise DataError(f"{file}: sample period {info['period_s']} s, the first file's is {period} s")
            yield utt, X

    return import_matrices(entries(), listing, dd, out, config=config, sample_rate=sample_rate,
                           computed_by=f"HTK ({Path(listing).name})", hop_ms=hop_ms)
