"""Filter banks and transforms of the MFCC front end: windows, librosa's Slaney mel filters, the DCT.

Computed with numpy so that extraction never imports librosa or scipy (about a second of a new process's
start-up), with the same numbers as ``librosa.filters.mel`` and ``scipy.signal.get_window`` (tests).
"""

from __future__ import annotations

import warnings

import numpy as np

from ..errors import ParameterError

__all__ = ["mel_filters", "dct_matrix", "window_function"]


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
