"""HTK's signal processing, step by step as HSigP and HParm do it: windows, filter bank, DCT, energy, deltas.

Each function is one step of the list in ``_htk_config``'s description, in HTK's float32 arithmetic where HTK
uses it, so that ``MfccConfig.from_htk_config`` reproduces HCopy's frames.
"""

from __future__ import annotations

import math

import numpy as np

from ._htk_config import LZERO, MINLARG, HtkSettings

__all__ = []


_PI = 3.14159265358979     # HMath.h's PI and TPI: the constants HTK's windows and cosines are computed with


_TPI = 6.28318530717959


_F32 = np.float32


def frame_geometry(settings: HtkSettings, sample_rate: int):
    return settings.geometry(sample_rate)


def fft_size(frame_size: int, double: bool = False) -> int:
    """HTK's: the smallest power of two >= the frame (at least 2), doubled with DOUBLEFFT."""
    n = 2
    while frame_size > n:
        n *= 2
    return 2 * n if double else n


# --------------------------------------------------------------------------- constants, HTK's way

def hamming_window(n: int) -> np.ndarray:
    """HTK's symmetric Hamming window ``0.54 - 0.46 cos(2 pi i / (n - 1))``, float32 as HSigP computes it."""
    if n <= 1:
        return np.ones(n, dtype=_F32)
    a = _F32(_TPI / (n - 1))
    arg = a * np.arange(n, dtype=_F32)  # float * int in float, as HSigP's a*(i-1)
    return (0.54 - 0.46 * np.cos(arg.astype(np.float64))).astype(_F32)


def _mel_of_bin(k: np.ndarray, fres) -> np.ndarray:
    """HSigP's Mel(k, fres) for 1-based FFT index k: ``1127 ln(1 + (k - 1) fres)``, float32 like HTK's."""
    x = _F32(1) + (k - 1).astype(_F32) * fres
    return (1127 * np.log(x.astype(np.float64))).astype(_F32)


def _warp(fcl, fcu, freq, min_freq, max_freq, alpha):
    """HTK's piecewise-linear VTLN warping of a frequency (Hz), float32 arithmetic (HSigP's WarpFreq)."""
    scale = _F32(1.0 / float(alpha))
    cu = _F32(fcu) * _F32(2) / (_F32(1) + scale)
    cl = _F32(fcl) * _F32(2) / (_F32(1) + scale)
    au = (max_freq - cu * scale) / (max_freq - cu)
    al = (cl * scale - min_freq) / (cl - min_freq)
    if freq > cu:
        return au * (freq - cu) + scale * cu
    if freq < cl:
        return al * (freq - min_freq) + min_freq
    return scale * freq


def mel_filterbank(num_chans: int, fbank_period: int, n_fft: int, lo_freq: float = -1.0, hi_freq: float = -1.0,
                   warp_freq: float = 1.0, warp_lcutoff: float = 0.0, warp_ucutoff: float = 0.0):
    """HTK's filter bank (HSigP's InitFBank) as a matrix: ``(weights, centres, klo, khi)``.

    ``weights`` is float32 (n_fft // 2 + 1, num_chans): row j is FFT bin j (frequency
    ``j / (n_fft period)``), HTK's index k = j + 1; rows outside HTK's passband ``klo ... khi``
    (1-based; DC and the Nyquist bin are always outside) are zero.  ``centres`` are the mel
    frequencies ``cf[0 ... num_chans + 1]`` (float32): cf[0] the low edge, cf[c] channel c's
    centre, cf[num_chans + 1] the high edge.  ``fbank_period`` is the sample period in 100 ns
    truncated to an integer, as HTK passes it.
    """
    nby2 = n_fft // 2
    fres = _F32(1.0e7 / (fbank_period * n_fft * 700.0))
    max_chan = num_chans + 1
    klo, khi = 2, nby2
    mlo = _F32(0.0)
    mhi = _mel_of_bin(np.array([nby2 + 1]), fres)[0]
    lo32, hi32 = _F32(lo_freq), _F32(hi_freq)
    if lo32 >= 0:
        mlo = _F32(1127 * math.log(1 + float(lo32) / 700.0))
        klo = max(2, int(float(lo32 * _F32(fbank_period)) * 1.0e-7 * n_fft + 2.5))
    if hi32 >= 0:
        mhi = _F32(1127 * math.log(1 + float(hi32) / 700.0))
        khi = min(nby2, int(float(hi32 * _F32(fbank_period)) * 1.0e-7 * n_fft + 0.5))
    ms = mhi - mlo
    cf = np.empty(max_chan + 1, dtype=_F32)
    cf[0] = mlo
    for chan in range(1, max_chan + 1):
        pos = _F32(chan) / _F32(max_chan) * ms + mlo
        if warp_freq == 1.0:
            cf[chan] = pos
        else:
            min_freq = _F32(700.0 * (math.exp(float(mlo) / 1127.0) - 1.0))
            max_freq = _F32(700.0 * (math.exp(float(mhi) / 1127.0) - 1.0))
            hz = _F32(700 * (math.exp(float(pos) / 1127.0) - 1.0))
            warped = _warp(warp_lcutoff, warp_ucutoff, hz, min_freq, max_freq, _F32(warp_freq))
            cf[chan] = _F32(1127.0 * math.log(1.0 + float(warped) / 700.0))
    k = np.arange(1, nby2 + 1)
    melk = _mel_of_bin(k, fres)
    weights = np.zeros((nby2 + 1, num_chans), dtype=_F32)
    chan = 1
    for kk in range(klo, khi + 1):
        m = melk[kk - 1]
        while chan <= max_chan and cf[chan] < m:
            chan += 1
        lo_chan = min(chan, max_chan) - 1  # channel below bin kk (0: none)
        upper = cf[lo_chan + 1]
        lower = cf[lo_chan] if lo_chan > 0 else mlo
        lo_wt = (upper - m) / (upper - lower)  # float32, HTK's loWt
        if lo_chan > 0:
            weights[kk - 1, lo_chan - 1] = lo_wt
        if lo_chan < num_chans:
            weights[kk - 1, lo_chan] = _F32(1) - lo_wt
    return weights, cf, klo, khi


def htk_dct_matrix(num_chans: int, num_ceps: int, lifter: int = 0, c0: bool = False, cep_scale: float = 1.0) -> np.ndarray:
    """HTK's cepstra as a matrix (num_chans, num_ceps + c0), float32: log filter bank @ it = c1 ... cN [c0].

    ``c_j = sqrt(2 / N) sum_k f_k cos(pi j (k - 0.5) / N)`` (HSigP's FBank2MFCC, its float
    ``j * pi / N`` kept), times HTK's lifter ``1 + (L / 2) sin(pi j / L)`` and CEPSCALE; the last
    column, with ``c0``, is ``sqrt(2 / N) sum_k f_k`` (FBank2C0) times CEPSCALE, not liftered.
    """
    mfnorm = _F32(math.sqrt(2.0 / num_chans))
    pi_factor = _F32(_PI / num_chans)
    j = np.arange(1, num_ceps + 1)
    x = j.astype(_F32) * pi_factor
    k = np.arange(1, num_chans + 1) - 0.5
    m = np.cos(np.outer(k, x.astype(np.float64))) * float(mfnorm)
    if lifter > 0:
        a, half = _F32(_PI / lifter), _F32(lifter / 2.0)
        lift = (1.0 + float(half) * np.sin((j.astype(_F32) * a).astype(np.float64))).astype(_F32)
        m = m * lift.astype(np.float64)
    m = m * float(_F32(cep_scale))
    if c0:
        m = np.concatenate([m, np.full((num_chans, 1), float(mfnorm) * float(_F32(cep_scale)))], axis=1)
    return np.ascontiguousarray(m, dtype=_F32)


# --------------------------------------------------------------------------- per-frame steps (float32, HTK's order)

def zero_mean_frames(frames: np.ndarray) -> np.ndarray:
    """ZMEANSOURCE: each row minus its mean, summed in float32 left to right as HParm's ZeroMeanFrame."""
    total = np.cumsum(frames, axis=1, dtype=_F32)[:, -1]
    return frames - (total / _F32(frames.shape[1]))[:, None]


def sum_of_squares(frames: np.ndarray) -> np.ndarray:
    """Each row's ``sum(s^2)``, accumulated in float32 left to right as HTK does."""
    return np.cumsum(frames * frames, axis=1, dtype=_F32)[:, -1]


def preemphasise(frames: np.ndarray, k: float) -> np.ndarray:
    """HTK's pre-emphasis within each frame: ``s[n] - k s[n-1]`` for n >= 1 and ``s[0] (1 - k)``."""
    k32 = _F32(k)
    out = np.empty_like(frames)
    np.subtract(frames[:, 1:], frames[:, :-1] * k32, out=out[:, 1:])
    out[:, 0] = (frames[:, 0].astype(np.float64) * (1.0 - float(k32))).astype(_F32)
    return out


def log_energy(energy: np.ndarray) -> np.ndarray:
    """``ln(energy)``, or HTK's LZERO (-1e10) where the energy is below MINLARG (0 for a float energy)."""
    e = np.asarray(energy, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return np.where(e < MINLARG, LZERO, np.log(np.maximum(e, MINLARG))).astype(_F32)


def normalise_log_energy(e: np.ndarray, e_max, sil_floor: float, escale: float) -> np.ndarray:
    """ENORMALISE: ``1 - escale (max - max(e, max - sil_floor ln 10 / 10))``, float32 as HSigP's NormaliseLogEnergy.

    ``e_max`` is the utterance's largest log energy (given, so that an utterance can be done in pieces).
    """
    mx = _F32(e_max)
    floor = _F32(float(mx) - (float(_F32(sil_floor)) * math.log(10.0)) / 10.0)
    d = (mx - np.maximum(np.asarray(e, dtype=_F32), floor)) * _F32(escale)
    return (1.0 - d.astype(np.float64)).astype(_F32)


def regression(x: np.ndarray, width: int, simple: bool = False) -> np.ndarray:
    """HTK's regression coefficients of the rows of ``x`` (T, D), edge rows repeated, in float32.

    ``d_t = sum_{n=1..W} n (x_{t+n} - x_{t-n}) / (2 sum n^2)``, the sum taken in HTK's order and
    precision (HSigP's Regress); ``simple`` (SIMPLEDIFFS): ``(x_{t+W} - x_{t-W}) / 2W``.
    Indices beyond the edges stand for the first or last row.
    """
    x = np.asarray(x, dtype=_F32)
    T = len(x)
    t = np.arange(T)
    if simple:
        return (x[np.minimum(t + width, T - 1)] - x[np.maximum(t - width, 0)]) / _F32(2 * width)
    sigma = _F32(0)
    for n in range(1, width + 1):
        sigma = sigma + _F32(n * n)
    sigma = sigma * _F32(2)
    acc = np.zeros_like(x)
    for n in range(1, width + 1):
        acc += _F32(n) * (x[np.minimum(t + n, T - 1)] - x[np.maximum(t - n, 0)])
    return acc / sigma
