"""The block-wise MFCC front end: framing, FFT, mel energies, DCT and deltas, a block of frames at a time.

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
frames as HCopy does, in HTK's column layout (``_htk_config`` and ``_htk_dsp`` define each step);
``win_ms`` and ``hop_ms`` then follow HTK's WINDOWSIZE and TARGETRATE, the other analysis fields keep
their defaults, and there is no dither and no CMVN (``_Z`` in TARGETKIND is HTK's mean subtraction).
The same block-by-block path gives them, bit for bit; ENORMALISE and ``_Z``, which need the whole
utterance, are applied to the utterance's frames afterwards.
"""

from __future__ import annotations

import functools

import numpy as np

from ..errors import ParameterError
from ._config import MfccConfig
from ._filters import dct_matrix, mel_filters, window_function
from ._htk_dsp import (
    fft_size,
    hamming_window,
    htk_dct_matrix,
    log_energy,
    mel_filterbank,
    preemphasise,
    sum_of_squares,
    zero_mean_frames,
)

__all__ = ["add_deltas"]


LOG_FLOOR = 1e-10  # floor on mel and frame energies: log(0) never reaches an archive


FRAME_BLOCK = 2048  # frames computed at once: a block's temporaries are a few MB, whatever the recording's length


_GEMM_ROWS = 64  # most rows of a matrix product call; FRAME_BLOCK and any block_frames are multiples of it


_GEMM_ONE_THREAD = 1 << 18  # OpenBLAS runs a product on one thread below m * n * k = 65536 * 4


# --------------------------------------------------------------------------- front-end constants

@functools.lru_cache(maxsize=1)
def default_config() -> MfccConfig:
    """``MfccConfig()``, made once: its checks cost as much as a short file's frames."""
    return MfccConfig()


class Frontend:
    """Constants for one (config, sample rate): window, filter bank, DCT with lifter folded in.

    With an HTK configuration (``htk``): HTK's frame sizes, window, filter bank and DCT (lifter and
    CEPSCALE folded in, c0 as a last column; the identity for FBANK), float32 as stored with models,
    and float64 copies (``melfb64``, ``dct64``) for the products.
    """

    def __init__(self, cfg: MfccConfig, sr: int, arrays: dict | None = None):
        self.htk = cfg.htk_settings
        if self.htk is not None:
            _, self.win, self.hop, fbank_period = self.htk.geometry(sr)
            self.n_fft = fft_size(self.win, self.htk.double_fft)
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
            self.window = hamming_window(self.win) if s.use_hamming else np.ones(self.win, np.float32)
            self.melfb = mel_filterbank(s.num_chans, fbank_period, self.n_fft, s.lo_freq, s.hi_freq,
                                                 s.warp_freq, s.warp_lcutoff, s.warp_ucutoff)[0]
            self.dct = (htk_dct_matrix(s.num_chans, s.num_ceps, s.cep_lifter, s.has("0"), s.cep_scale)
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


def frontend(cfg: MfccConfig, sr: int) -> Frontend:
    """The (cached) front-end constants for a configuration and sample rate."""
    if cfg.computed_by:  # a model trained on imported frames must not meet frames of our own front end
        raise ParameterError(f"these features were computed by {cfg.computed_by}, not by acoustic_gmm, which "
                             f"cannot compute them from audio: compute them with that tool and import them "
                             f"(acoustic-gmm import)")
    key = (cfg, sr)
    fe = _FRONTENDS.get(key)  # one lookup: hashing a config costs ~10 us, extracting a short file ~300 us
    if fe is None:
        fe = _FRONTENDS[key] = Frontend(cfg, sr)
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
        _FRONTENDS.setdefault((cfg, sr), Frontend(cfg, sr, arrays))


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


def _count_frames(n_samples: int, fe: Frontend) -> int:
    return 0 if n_samples < fe.win else 1 + (n_samples - fe.win) // fe.hop


# --------------------------------------------------------------------------- frames, block by block

def check_block(block_frames: int) -> int:
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


def _block_statics(fe: Frontend, cfg: MfccConfig, x: np.ndarray, start: int, lead: int):
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


def _htk_block_statics(fe: Frontend, x: np.ndarray):
    """HTK's statics (B, n_statics) and raw log energies (B,) of the frames starting at ``x[0]``, float32.

    Each frame on its own, in HCopy's order (see :mod:`acoustic_gmm.features`): 16-bit units,
    ZMEANSOURCE, raw energy, pre-emphasis within the frame, window, FFT, magnitudes (powers),
    filter bank, ``ln(max(., 1))``, DCT with lifter, c0, log energy.  The columns are c1 ... cN
    (or the filter bank values), c0, E.
    """
    s = fe.htk
    x = x * np.float32(32768)  # the 16-bit amplitudes HTK reads (exact for 16-bit PCM)
    n = 1 + (len(x) - fe.win) // fe.hop
    frames = np.ndarray((n, fe.win), dtype=np.float32, buffer=x, strides=(fe.hop * 4, 4)).copy()
    if s.zmean_source:
        frames = zero_mean_frames(frames)
    raw = sum_of_squares(frames)
    if s.preemphasis > 0:
        frames = preemphasise(frames, s.preemphasis)
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
        out[:, -1] = log_energy(raw if s.raw_energy else sum_of_squares(frames))
    return out, np.log(np.maximum(raw, LOG_FLOOR)).astype(np.float32)


def stream_statics(read, n_samples: int, fe: Frontend, cfg: MfccConfig, n_columns: int, block_frames: int):
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


def deltas_in_place(feats: np.ndarray, n: int, widths, block_frames: int, delta=None) -> None:
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
    return stream_statics(block_reader(y), len(y), frontend(cfg, sr), cfg, n, check_block(block_frames))


def block_reader(y: np.ndarray):
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
    deltas_in_place(out, n, (width,) * order, FRAME_BLOCK)
    return out
