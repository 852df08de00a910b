"""HTK parameter (feature) files, read and written, and feature archives exported to and imported from them.

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
import struct
from pathlib import Path

import numpy as np

from ..errors import ArchiveError, DataError, OutputError, ParameterError, check_frames
from ..features._htk_config import BASE_KINDS, BASE_NAMES, BASEMASK, QUALIFIERS, kind_name, parse_kind
from ..storage._datadir import check_unique
from ..storage._outputs import atomic_path, writing

__all__ = ["write_htk", "read_htk"]


QUAL_E, QUAL_N, QUAL_C, QUAL_K, QUAL_V = (QUALIFIERS[q] for q in "ENCKV")


_HEADER = struct.Struct(">iiHH")  # sampSize and parmKind unsigned: _T is the sign bit of the int16


_CRC_MOD = 36897


_MAX_SAMPSIZE = 5000       # HTK's ReadHTKHeader refuses larger vectors


_MAX_PERIOD = 1_000_000    # ... and sample periods above 0.1 s (in 100 ns units)


LOG_2PI = math.log(2.0 * math.pi)


# ----------------------------------------------------------------------------------------------- kinds

def read_bytes(path: Path, error, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise error(f"{path}: no such {what}") from None
    except OSError as exc:
        raise error(f"{path}: cannot read ({exc.strerror or exc})") from None


def kind_code(kind, path) -> int:
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
        (:func:`acoustic_gmm.storage.atomic_path`), so a failed write leaves the old file.
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
    code = kind_code(kind, path)
    base = code & BASEMASK
    if base in (BASE_KINDS["WAVEFORM"], BASE_KINDS["DISCRETE"]):
        raise ParameterError(f"{path}: kind {kind_name(code)} is not a float feature matrix; write another kind")
    if code & QUAL_V:
        raise ParameterError(f"{path}: kind {kind_name(code)}: _V files carry VQ indices, which are not written")
    if compress:
        code |= QUAL_C
    if crc:
        code |= QUAL_K
    if code & QUAL_C and base == BASE_KINDS["LPREFC"]:
        code = (code & ~BASEMASK & ~QUAL_C) | BASE_KINDS["IREFC"]   # HTK's SaveBuffer does the same
        base = BASE_KINDS["IREFC"]
    shorts = bool(code & QUAL_C) or base == BASE_KINDS["IREFC"]
    if base == BASE_KINDS["IREFC"]:
        code &= ~QUAL_C
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
    n_samples = n + (4 if code & QUAL_C else 0)
    if n_samples > 2**31 - 1:
        raise ParameterError(f"{path}: {n} frames do not fit HTK's 32-bit sample count")

    if base == BASE_KINDS["IREFC"]:
        if np.abs(X32).max() > 1.0:
            raise DataError(f"{path}: IREFC values must lie in [-1, 1] (stored as x * 32767), got "
                            f"max |x| = {float(np.abs(X32).max())}")
        body = _round_half_away(X32.astype(np.float64) * 32767.0).astype(">i2").tobytes()
    elif code & QUAL_C:
        A, B = _compression(X32)
        s = _round_half_away(X32.astype(np.float64) * A.astype(np.float64) - B.astype(np.float64))
        body = A.astype(">f4").tobytes() + B.astype(">f4").tobytes() + s.astype(">i2").tobytes()
    else:
        body = X32.astype(">f4").tobytes()
    header = _HEADER.pack(n_samples, period, samp_size, code)
    tail = struct.pack(">H", htk_checksum(body)) if code & QUAL_K else b""
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
    raw = read_bytes(path, ArchiveError, "HTK parameter file")
    if len(raw) < _HEADER.size:
        raise ArchiveError(f"{path}: {len(raw)} bytes, shorter than the 12-byte HTK header (truncated or "
                           f"not an HTK parameter file)")
    n_samples, period, samp_size, code = _HEADER.unpack_from(raw)

    def bad(problem: str):
        hint = ""
        ls, lp, lz, lk = struct.unpack_from("<iiHH", raw)
        if ls > 0 and 0 < lp <= _MAX_PERIOD and 0 < lz and (lk & BASEMASK) in BASE_NAMES \
                and 12 + ls * lz <= len(raw) <= 12 + ls * lz + 2:
            hint = " (it reads as a little-endian file, e.g. written with NATURALWRITEORDER; only big-endian is read)"
        return ArchiveError(f"{path}: {problem}{hint}")

    base = code & BASEMASK
    if base not in BASE_NAMES:
        raise bad(f"impossible header: parmKind {code} (octal {code:o}) has unknown base kind {base}")
    name = kind_name(code)
    if n_samples <= 0:
        raise bad(f"impossible header: nSamples = {n_samples} (HTK requires at least one)")
    if period <= 0:
        raise bad(f"impossible header: sampPeriod = {period} (units of 100 ns; must be positive)")
    if base in (BASE_KINDS["WAVEFORM"], BASE_KINDS["DISCRETE"]):
        raise bad(f"kind {name} is not a feature matrix ({'waveform samples' if base == 0 else 'VQ indices'}); "
                  f"read it with a waveform/VQ tool")
    if code & QUAL_V:
        raise bad(f"kind {name}: _V files carry VQ indices after each vector; not supported")
    compressed = bool(code & QUAL_C)
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
    has_crc = bool(code & QUAL_K)
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
    info = {"kind": name, "kind_code": int(code), "base_kind": BASE_NAMES[base], "period_s": period / 1e7,
            "sample_size": int(samp_size), "n_samples": int(n_samples), "n_frames": int(n_frames),
            "compressed": compressed, "crc": has_crc, "energy_suppressed": bool(code & QUAL_N)}
    return frames, info


# --------------------------------------------------------------------------- feature archives in and out

def _safe_name(utt: str, where) -> str:
    if not utt or "/" in utt or utt in (".", "..") or "\0" in utt:
        raise DataError(f"{where}: utterance id {utt!r} cannot be a file name")
    return utt


def export_htk(archive, out_dir, *, ids=None, kind: str | None = None, compress: bool = False) -> int:
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
    from ..storage._archive import opened

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
    pairs, seen = [], {}
    for lineno, line in enumerate(lines, 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) > 2:
            raise DataError(f"{path}:{lineno}: expected 'file' or 'utt file', got {line!r}")
        file = Path(parts[-1]) if Path(parts[-1]).is_absolute() else path.parent / parts[-1]
        utt = parts[0] if len(parts) == 2 else Path(parts[0]).stem
        check_unique(path, seen, utt, lineno, f"utterance {utt!r}", DataError)
        pairs.append((utt, file))
    return pairs


def import_htk(listing, data_dir, out, *, config=None, sample_rate: int | None = None, overwrite: bool = False):
    """Write a feature archive from the HTK parameter files named in ``listing``, with ``data_dir``'s
    speakers and labels (see :func:`acoustic_gmm.interop.import_matrices`).

    ``listing`` has one file per line, ``file`` (the utterance id is the file's name without its
    extension) or ``utt file``.  Every file must have the same width and sample period.
    """
    from ..storage._datadir import read_data_dir
    from ._bridge import import_matrices

    out = Path(out)
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

    with writing({out: "out"}, [listing], overwrite=overwrite):  # the package's one output policy
        return import_matrices(entries(), listing, dd, out, config=config, sample_rate=sample_rate,
                               computed_by=f"HTK ({Path(listing).name})", hop_ms=hop_ms)
