"""Frame selection and normalisation on an utterance's frames: energy VAD, CMVN, sliding CMVN, warping.

:func:`normalise` applies the configuration's VAD (ours, or Kaldi's ``compute-vad``), CMN or CMVN (per utterance,
or with given per-speaker statistics from :func:`speaker_cmvn`), sliding-window CMVN or feature warping, in place
and a block at a time where the method allows.
"""

from __future__ import annotations

import numpy as np

from ..errors import ParameterError
from ._config import MAX_CMVN_WINDOW
from ._frontend import FRAME_BLOCK

__all__ = ["speaker_cmvn", "vad_mask", "normalise"]


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


def compact(feats: np.ndarray, keep: np.ndarray) -> np.ndarray:
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
    """:func:`_warp_ranks` compiled (numba, cached on disk as the GMM engine's kernels are): imported only when warping."""
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


def speaker_cmvn(pairs) -> dict:
    """``{speaker: (mean, 1 / std)}`` over all frames of each speaker's utterances, from ``(speaker, frames)``.

    The sums are float64 about 0 (not about the mean), added utterance by utterance: these are the numbers every
    archive with per-speaker CMVN was made with, and float32 features lose nothing to it.

    Examples
    --------
    >>> import numpy as np
    >>> mean, scale = speaker_cmvn([("a", np.array([[1.0], [3.0]])), ("a", np.array([[5.0]]))])["a"]
    >>> float(mean[0]), round(float(1 / scale[0]) ** 2, 4)
    (3.0, 2.6667)
    """
    sums: dict = {}
    for spk, x in pairs:
        Y = np.asarray(x, dtype=np.float64)
        part = (len(Y), Y.sum(0), (Y * Y).sum(0))
        sums[spk] = tuple(a + b for a, b in zip(sums[spk], part)) if spk in sums else part
    out = {}
    for spk, (n, s, ss) in sums.items():
        n = max(n, 1)
        mean = s / n
        sd = np.sqrt(np.maximum(ss / n - mean * mean, 0))
        out[spk] = (mean, 1.0 / np.where(sd > 0, sd, 1))
    return out
